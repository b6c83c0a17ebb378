// npm run demo [-- --data <dir>] [--run <name>] [--backbone <name>] [--epochs N] [--seed S] [--small] [--notebooks-out <dir>]
// Generates the synthetic default dataset if absent, executes the notebooks in order through the
// real tslab kernel, and reports where everything went and the triage of a sample image.
import fs from "node:fs";
import path from "node:path";
import {
  executeNotebook,
  isSyntheticDataDir,
  findJupyterPython,
  findProjectRoot,
  JupyterMissingError,
  listNotebooks,
  MelanomaLabError,
  NotebookExecutionError,
  parseCliArgs,
  resolveRunConfig,
} from "../lib/index.js";

async function main(): Promise<void> {
  const started = Date.now();
  const args = parseCliArgs(process.argv.slice(2), { values: ["data", "run", "backbone", "epochs", "seed", "notebooks-out"], flags: ["small"] });
  const root = findProjectRoot();
  const env: Record<string, string> = {};
  if (typeof args.data === "string") {
    const dataDir = path.resolve(process.cwd(), args.data);
    if (!isSyntheticDataDir(dataDir) && !fs.existsSync(dataDir)) {
      throw new MelanomaLabError(`--data ${args.data}: folder ${dataDir} does not exist (expected labels.csv + images/, or train/benign + train/malignant)`);
    }
    env.MELANOMA_LAB_DATA = dataDir;
  }
  if (typeof args.backbone === "string") env.MELANOMA_LAB_BACKBONE = args.backbone;
  if (typeof args.epochs === "string") env.MELANOMA_LAB_EPOCHS = args.epochs;
  if (typeof args.seed === "string") env.MELANOMA_LAB_SEED = args.seed;
  if (args.small) env.MELANOMA_LAB_SMALL = "1";
  // Multi-threaded wasm when the machine is idle at kernel start (1.8–2× here); set the variable to override.
  env.MELANOMA_LAB_WASM_THREADS = process.env.MELANOMA_LAB_WASM_THREADS ?? "auto";
  const dataName = env.MELANOMA_LAB_DATA ? path.basename(env.MELANOMA_LAB_DATA) : "synthetic";
  env.MELANOMA_LAB_RUN = typeof args.run === "string" ? args.run : `${dataName}-${env.MELANOMA_LAB_BACKBONE ?? "mobilenet_v2"}`;
  Object.assign(process.env, env);
  const config = resolveRunConfig();

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

  console.log(`melanoma-lab demo: run ${config.runName} on ${config.useSyntheticData ? "the synthetic default data" : config.dataDir}`);
  const outDir = typeof args["notebooks-out"] === "string" ? path.resolve(process.cwd(), args["notebooks-out"]) : path.join(root, "out", "notebooks");
  const runs = [];
  for (const notebook of listNotebooks(path.join(root, "notebooks"))) {
    process.stdout.write(`  executing ${path.basename(notebook)} … `);
    try {
      const run = await executeNotebook(notebook, { outDir, env, python });
      runs.push(run);
      console.log(`done in ${run.seconds.toFixed(1)} s`);
    } catch (err) {
      console.log("FAILED");
      if (err instanceof NotebookExecutionError) {
        console.error(err.message);
        process.exit(1);
      }
      throw err;
    }
  }
  const allStdout = runs.map((r) => r.stdoutText).join("");
  const backendLine = allStdout.split("\n").find((l) => l.startsWith("backend:"));
  const triageLines = (runs.at(-1)?.stdoutText ?? "").split("\n").filter((l) => l.startsWith("triage"));
  console.log("");
  console.log(backendLine ?? "backend: (not reported by the notebooks)");
  console.log(`executed notebooks + HTML: ${path.relative(root, outDir)}/`);
  console.log(`TensorBoard logs:          ${path.relative(root, config.paths.logDir)}/{train,validation}/`);
  console.log(`evaluation report:         ${path.relative(root, path.join(config.paths.reportDir, "report.html"))}`);
  console.log(`exported model:            ${path.relative(root, config.paths.modelDir)}/ (model.json, weights.bin, metadata.json)`);
  for (const line of triageLines) console.log(line);
  console.log(`demo finished in ${((Date.now() - started) / 1000).toFixed(1)} s`);
}

main().catch((err) => {
  console.error(err instanceof MelanomaLabError ? `error: ${err.message}` : err);
  process.exit(1);
});
