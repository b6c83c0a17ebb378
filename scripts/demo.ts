// npm run demo [-- --data <dir>] [--run <name>] [--backbone <name>] [--epochs N] [--seed S] [--small] [--notebooks-out <dir>]
// Generates the synthetic default dataset if absent, executes the notebooks in order through the
// real tslab kernel (streaming each cell and the notebook's own output lines), and reports where
// everything went and the triage of a sample image.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import {
  BACKBONE_NAMES,
  decideAutoWasmThreads,
  DEFAULT_TRANSFER_RECIPE,
  defineCli,
  disposeBackbone,
  explainRecipeWeightsError,
  loadBackbone,
  executeNotebooks,
  isSyntheticDataDir,
  prepareDataset,
  findJupyterPython,
  findProjectRoot,
  JupyterMissingError,
  listNotebooks,
  measureIdleCores,
  MelanomaLabError,
  NotebookExecutionError,
  parseCommandLineOrExit,
  resolveRunConfig,
  selectDemoRecipe,
  INFERENCE_RUNTIMES,
  ORT_THREADS_ENV,
  WASM_THREADS_ENV,
} from "../lib/index.js";

const cli = defineCli({
  name: "demo",
  usage: "npm run demo --",
  summary:
    "Executes the notebooks in notebooks/ in order, headless, through the real tslab kernel, on the synthetic data " +
    "(generated when absent) or on --data; prints each cell as it starts and the notebooks' own output lines.",
  examples: [
    "npm run demo",
    "MELANOMA_LAB_WEIGHTS_DIR=../shared/weights npm run demo -- --data ../shared/data/ham10000-dev",
    "npm run demo -- --data ../shared/data/ham10000-dev --backbone mobilenet_v2 --epochs 20",
  ],
  options: {
    data: {
      type: "string",
      valueName: "<dir>",
      description:
        "data set folder (labels.csv + images/, or train/benign + train/malignant) (default: the synthetic data)",
    },
    run: {
      type: "string",
      valueName: "<name>",
      description: "run name for logs/, models/, out/ (default: <data>-<backbone>)",
    },
    backbone: {
      type: "string",
      choices: BACKBONE_NAMES,
      description:
        "pretrained feature extractor (default: mobilenet_v2, bundled, on the synthetic data; with --data the recipe " +
        `${DEFAULT_TRANSFER_RECIPE.name}'s ${DEFAULT_TRANSFER_RECIPE.backboneName}; or MELANOMA_LAB_BACKBONE)`,
    },
    epochs: {
      type: "integer",
      min: 1,
      description: "head training epochs (default 40; 5 with --small; or MELANOMA_LAB_EPOCHS)",
    },
    seed: {
      type: "integer",
      min: 0,
      description: "seed of the split, initialisation and shuffling (default 42, or MELANOMA_LAB_SEED)",
    },
    small: { type: "boolean", description: "small synthetic set and few epochs (a quick check)" },
    external: {
      type: "string",
      valueName: "<dir>",
      description:
        "a second data set (labels.csv + images/, e.g. ../shared/data/isic2020-ext) that notebook 4's transfer report scores with the trained model, AUC grouped by patient (or MELANOMA_LAB_EXTERNAL)",
    },
    runtime: {
      type: "string",
      choices: ["auto", ...INFERENCE_RUNTIMES],
      description:
        "runtime of frozen feature extraction: onnx converts the backbone to ONNX once and runs ONNX Runtime (default auto, or MELANOMA_LAB_RUNTIME)",
    },
    "notebooks-out": {
      type: "string",
      valueName: "<dir>",
      description: "where the executed notebooks and their HTML go (default out/notebooks)",
    },
  },
  notes: [
    `With --data and no --backbone (nor MELANOMA_LAB_BACKBONE) the notebooks run the default recipe ${DEFAULT_TRANSFER_RECIPE.name}: ` +
      `${DEFAULT_TRANSFER_RECIPE.backboneName}, ${DEFAULT_TRANSFER_RECIPE.colourConstancy} colour constancy, logistic ` +
      `${DEFAULT_TRANSFER_RECIPE.target} head (README). Its weights come from MELANOMA_LAB_WEIGHTS_DIR or a download; ` +
      `offline without them pass --backbone ${DEFAULT_TRANSFER_RECIPE.fallbackBackboneName}. The synthetic default keeps the bundled ` +
      "nsfwjs mobilenet_v2 and runs offline.",
    "MELANOMA_LAB_WASM_THREADS / MELANOMA_LAB_ORT_THREADS (default: every core when idle at demo start, else 1), MELANOMA_LAB_BACKEND, MELANOMA_LAB_FINE_TUNE_EPOCHS and",
    "MELANOMA_LAB_FINE_TUNE_BLOCKS are passed on to the notebooks; see the README.",
  ],
});

async function main(): Promise<void> {
  const started = Date.now();
  const { values: args } = parseCommandLineOrExit(cli, process.argv.slice(2));
  const root = findProjectRoot();
  const env: Record<string, string> = {};
  if (args.data !== undefined) {
    const dataDir = path.resolve(process.cwd(), args.data);
    if (!isSyntheticDataDir(dataDir) && !fs.existsSync(dataDir)) {
      throw new MelanomaLabError(
        `--data ${args.data}: folder ${dataDir} does not exist (expected labels.csv + images/, or train/benign + train/malignant)`,
      );
    }
    env.MELANOMA_LAB_DATA = dataDir;
  }
  if (args.external !== undefined) {
    const externalDir = path.resolve(process.cwd(), args.external);
    if (!fs.existsSync(externalDir)) {
      console.error(`demo: --external folder ${args.external} does not exist; expected labels.csv + images/`);
      process.exit(2);
    }
    env.MELANOMA_LAB_EXTERNAL = externalDir;
  }
  if (args.backbone !== undefined) env.MELANOMA_LAB_BACKBONE = args.backbone;
  const recipe = selectDemoRecipe(
    env.MELANOMA_LAB_DATA,
    env.MELANOMA_LAB_BACKBONE ?? process.env.MELANOMA_LAB_BACKBONE,
  );
  if (recipe !== undefined) env.MELANOMA_LAB_RECIPE = recipe.name;
  if (args.epochs !== undefined) env.MELANOMA_LAB_EPOCHS = String(args.epochs);
  if (args.seed !== undefined) env.MELANOMA_LAB_SEED = String(args.seed);
  if (args.small) env.MELANOMA_LAB_SMALL = "1";
  if (args.runtime !== undefined) env.MELANOMA_LAB_RUNTIME = args.runtime;
  // Multi-threaded wasm and ONNX Runtime when the machine is idle (1.6–2× here), decided here,
  // before the kernel starts: measured inside the kernel right after its own compile of lib/, the
  // "auto" setting read a busy machine in 2 of 4 back-to-back runs (0.9 of 2 cores idle) and ran
  // the whole demo on one thread (84.5 s vs 70.4 s). Set the variables to override.
  let threadsLine: string | undefined;
  if (process.env[WASM_THREADS_ENV] === undefined || process.env[ORT_THREADS_ENV] === undefined) {
    const auto = decideAutoWasmThreads(os.cpus().length, await measureIdleCores());
    threadsLine = `threads: ${auto.threadCount} (${auto.reason}, measured at demo start)`;
    env[WASM_THREADS_ENV] = process.env[WASM_THREADS_ENV] ?? String(auto.threadCount);
    env[ORT_THREADS_ENV] = process.env[ORT_THREADS_ENV] ?? String(auto.threadCount);
  }
  const dataName = env.MELANOMA_LAB_DATA ? path.basename(env.MELANOMA_LAB_DATA) : "synthetic";
  env.MELANOMA_LAB_RUN = args.run ?? `${dataName}-${recipe?.name ?? env.MELANOMA_LAB_BACKBONE ?? "mobilenet_v2"}`;
  Object.assign(process.env, env);
  const config = resolveRunConfig();
  if (recipe !== undefined) {
    // Checked before Jupyter starts: a missing mirror fails here in one line, not in notebook 2.
    try {
      disposeBackbone(await loadBackbone(recipe.backboneName));
    } catch (err) {
      const explained = explainRecipeWeightsError(err, recipe, `--backbone ${recipe.fallbackBackboneName}`);
      if (explained === err) throw err;
      console.error(`demo: ${(explained as Error).message}`);
      process.exit(2);
    }
    console.log(`default recipe ${recipe.name} (--data without --backbone): see the README for why`);
  }

  let python: string;
  try {
    python = findJupyterPython();
  } catch (err) {
    if (err instanceof JupyterMissingError) {
      console.error(`melanoma-lab demo needs Jupyter to execute the notebooks headless.\n${err.message}`);
      process.exit(2);
    }
    throw err;
  }

  console.log(
    `melanoma-lab demo: run ${config.runName} on ${config.useSyntheticData ? "the synthetic default data" : config.dataDir}`,
  );
  const outDir =
    args["notebooks-out"] !== undefined
      ? path.resolve(process.cwd(), args["notebooks-out"])
      : path.join(root, "out", "notebooks");
  const notebooks = listNotebooks(path.join(root, "notebooks"));
  // The synthetic data is generated here, on the core the kernel leaves idle while it starts and
  // compiles lib/ for notebook 1's first cell (~9 s): notebook 1 then loads it. Were it still
  // being written, notebook 1 would write the same bytes (atomic writes, labels.csv last).
  const syntheticDataReady = config.useSyntheticData ? prepareDataset(config).then(() => undefined) : Promise.resolve();
  // All notebooks run in one kernel, reset between them (executeNotebooks): the kernel start and
  // tslab's compile of lib/ are paid once, not once per notebook.
  const where = (k: number) => `notebook ${k + 1}/${notebooks.length} ${path.basename(notebooks[k], ".ipynb")}`;
  let current = 0;
  let runs;
  try {
    runs = await executeNotebooks(notebooks, {
      outDir,
      env,
      python,
      onProgress: (event) => {
        if (event.kind === "notebook") {
          current = event.index;
          console.log(`${where(current)}: starting`);
        } else if (event.kind === "notebook-end") {
          if (event.status === 0) console.log(`${where(event.index)}: done`);
        } else if (event.kind === "cell") console.log(`${where(current)}: cell ${event.cell}/${event.cells}`);
        else if (event.stream === "stdout") console.log(`  | ${event.text}`);
      },
    });
  } catch (err) {
    console.log(`${where(current)}: FAILED`);
    if (err instanceof NotebookExecutionError) {
      console.error(err.message);
      process.exit(1);
    }
    throw err;
  }
  await syntheticDataReady;
  for (const [k, run] of runs.entries()) console.log(`${where(k)}: ${run.seconds.toFixed(1)} s`);
  const allStdout = runs.map((r) => r.stdoutText).join("");
  const backendLine = allStdout.split("\n").find((l) => l.startsWith("backend:"));
  const triageLines = (runs.at(-1)?.stdoutText ?? "").split("\n").filter((l) => /^(triage|decision) /.test(l));
  console.log("");
  console.log(backendLine ?? "backend: (not reported by the notebooks)");
  if (threadsLine !== undefined) console.log(threadsLine);
  console.log(`executed notebooks + HTML: ${path.relative(root, outDir)}/`);
  console.log(`TensorBoard logs:          ${path.relative(root, config.paths.logDir)}/{train,validation}/`);
  console.log(`evaluation report:         ${path.relative(root, path.join(config.paths.reportDir, "report.html"))}`);
  console.log(
    `exported model:            ${path.relative(root, config.paths.modelDir)}/ (model.json, weights.bin, metadata.json, ` +
      "model.onnx, MODEL_CARD.md, variants/float16, variants/uint8)",
  );
  const modelArg = path.relative(root, config.paths.modelDir);
  console.log(`phone app:                 npm run app -- --model ${modelArg}`);
  console.log(`point-inference service:   npm run serve -- --model ${modelArg}`);
  for (const line of triageLines) console.log(line);
  console.log(`demo finished in ${((Date.now() - started) / 1000).toFixed(1)} s`);
}

main().catch((err) => {
  console.error(err instanceof MelanomaLabError ? `error: ${err.message}` : err);
  process.exit(1);
});
