import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { beforeAll, expect, it } from "vitest";
import {
  executeNotebook,
  executeNotebooks,
  findJupyterPython,
  findProjectRoot,
  listNotebooks,
  NotebookExecutionError,
  readLogDir,
  SYNTHETIC_SOURCES,
} from "../../lib/index.js";
import { checkChartsRendered } from "../../lib/display/checkChartsRendered.js";
import { readStdoutText } from "../../lib/notebooks/executeNotebook.js";
import { commandExists, describeRequiring, missingTool, requireTool } from "../helpers/shared.js";

const root = findProjectRoot();
const runName = "test-small";
const outDir = path.join(root, "out", "test-notebooks");
const env = {
  MELANOMA_LAB_SMALL: "1",
  MELANOMA_LAB_RUN: runName,
  MELANOMA_LAB_DATA: path.join(root, "data", "synthetic-small"),
  MELANOMA_LAB_BACKEND: "",
};

/** Asks Jupyter's own notary whether an executed notebook is trusted (signed). */
function isNotebookTrusted(notebookPath: string): boolean {
  const check = spawnSync(findJupyterPython(), [
    "-c",
    "import sys, nbformat; from nbformat.sign import NotebookNotary; sys.exit(0 if NotebookNotary().check_signature(nbformat.read(sys.argv[1], as_version=4)) else 1)",
    notebookPath,
  ]);
  return check.status === 0;
}

function jupyterAvailable(): boolean {
  try {
    findJupyterPython();
    return true;
  } catch {
    return false;
  }
}

const haveJupyter = jupyterAvailable();
const JUPYTER_WHAT = "Jupyter (nbclient)";
const JUPYTER_INSTALL = "apt-get install python3-nbclient jupyter-nbconvert python3-notebook";

describeRequiring(
  missingTool(haveJupyter, JUPYTER_WHAT, JUPYTER_INSTALL),
  "npm run demo -- --small: notebooks through the real tslab kernel",
  () => {
    const runs: { notebook: string; executedNotebookPath: string; htmlPath: string; stdoutText: string }[] = [];

    let demoStdout = "";

    beforeAll(() => {
      for (const dir of [
        path.join(root, "logs", runName),
        path.join(root, "models", runName),
        path.join(root, "out", "runs", runName),
        outDir,
      ]) {
        fs.rmSync(dir, { recursive: true, force: true });
      }
      // The README's main command, in its small configuration: the same script users run.
      const demo = spawnSync(
        process.execPath,
        [
          path.join(root, "node_modules", "tsx", "dist", "cli.mjs"),
          path.join(root, "scripts", "demo.ts"),
          "--small",
          "--run",
          runName,
          "--data",
          env.MELANOMA_LAB_DATA,
          "--notebooks-out",
          outDir,
        ],
        { cwd: root, encoding: "utf8", timeout: 1_500_000, env: { ...process.env, MELANOMA_LAB_BACKEND: "" } },
      );
      demoStdout = demo.stdout;
      if (demo.status !== 0)
        throw new Error(`npm run demo -- --small failed (${demo.status}):\n${demo.stdout}\n${demo.stderr}`);
      for (const notebook of listNotebooks(path.join(root, "notebooks"))) {
        const base = path.basename(notebook, ".ipynb");
        const executedNotebookPath = path.join(outDir, `${base}.ipynb`);
        runs.push({
          notebook: `${base}.ipynb`,
          executedNotebookPath,
          htmlPath: path.join(outDir, `${base}.html`),
          stdoutText: readStdoutText(executedNotebookPath),
        });
      }
    });

    it("executes all six notebooks in pipeline order with no error output, saved and rendered", () => {
      expect(runs.map((r) => r.notebook)).toEqual([
        "01-data.ipynb",
        "02-transfer-learning.ipynb",
        "03-training.ipynb",
        "04-evaluation.ipynb",
        "05-export.ipynb",
        "06-triage.ipynb",
      ]);
      for (const run of runs) {
        const nb = JSON.parse(fs.readFileSync(run.executedNotebookPath, "utf8"));
        const outputs = nb.cells.flatMap((c: { outputs?: { output_type: string }[] }) => c.outputs ?? []);
        expect(outputs.filter((o: { output_type: string }) => o.output_type === "error")).toEqual([]);
        expect(
          nb.cells.filter(
            (c: { cell_type: string; execution_count: number | null }) => c.cell_type === "code" && !c.execution_count,
          ),
        ).toEqual([]);
        expect(isNotebookTrusted(run.executedNotebookPath), `${run.notebook} is signed (trusted)`).toBe(true);
        expect(fs.statSync(run.htmlPath).size).toBeGreaterThan(1000);
      }
    });

    it("keeps notebooks thin: one import cell, no function definitions, a sentence before every code cell", () => {
      for (const file of listNotebooks(path.join(root, "notebooks"))) {
        const nb = JSON.parse(fs.readFileSync(file, "utf8"));
        const cells = nb.cells as { cell_type: string; source: string | string[] }[];
        const text = (c: { source: string | string[] }) => (Array.isArray(c.source) ? c.source.join("") : c.source);
        expect(cells[0].cell_type, `${file}: first cell is markdown`).toBe("markdown");
        expect(text(cells[0]), `${file}: first cell says what you'll learn and what it needs`).toMatch(
          /What you'll learn[\s\S]*What it needs/,
        );
        const code = cells.filter((c) => c.cell_type === "code");
        expect(code.filter((c) => /^import /m.test(text(c))).length, `${file}: one import cell`).toBe(1);
        for (const c of code)
          expect(text(c), `${file}: no function definitions`).not.toMatch(
            /\bfunction\b|=>\s*\{|\bclass\s+[A-Z]\w*\s*(extends\b|\{)/,
          );
        cells.forEach((c, i) => {
          if (c.cell_type === "code")
            expect(cells[i - 1]?.cell_type, `${file} cell ${i}: sentence before code`).toBe("markdown");
        });
      }
    });

    it("says which backend ran and prints a triage result, in the notebooks and at the end of the demo", () => {
      const all = runs.map((r) => r.stdoutText).join("");
      expect(all).toMatch(/^backend: (tfjs-node-gpu|tfjs-node|wasm|cpu) \(/m);
      expect(runs.at(-1)!.stdoutText).toMatch(
        /^triage \S+: probability of malignant (0|1)\.\d{3} → (URGENT|ROUTINE) \(threshold /m,
      );
      expect(demoStdout).toMatch(/^backend: (tfjs-node-gpu|tfjs-node|wasm|cpu) \(/m);
      expect(demoStdout).toMatch(/^triage \S+: probability of malignant/m);
      expect(demoStdout).toMatch(/^demo finished in \d+\.\d s$/m);
    });

    it("words its narrative from the data it ran on, asserts export parity, and gives a true label only when known", async () => {
      const data = runs.find((r) => r.notebook === "01-data.ipynb")!.stdoutText;
      // The synthetic default is about half malignant and comes from three clinics.
      expect(data).toMatch(/^malignant: (4\d|5\d)\.\d% of \d+ images, about balanced on this data/m);
      expect(data).toMatch(/^malignant share by source: \d+% to \d+% over 3 source\(s\)$/m);
      const exportText = runs.find((r) => r.notebook === "05-export.ipynb")!.stdoutText;
      const parity = exportText.match(
        /^export parity OK: max \|exported − notebook\| probability difference on (\d+) test images (\S+) \(tolerance 0\.001\)$/m,
      );
      expect(parity, exportText).not.toBeNull();
      expect(Number(parity![2])).toBeLessThanOrEqual(1e-3);
      const onnxParity = exportText.match(
        /^ONNX parity OK: max \|ONNX Runtime − tfjs\| probability difference on (\d+) test images (\S+) \(tolerance 0\.0001\)/m,
      );
      expect(onnxParity, exportText).not.toBeNull();
      expect(Number(onnxParity![2])).toBeLessThanOrEqual(1e-4);
      // Notebook 05 fits the triage policy on validation and exports it; 06 decides with it.
      expect(exportText).toMatch(/^calibration: (temperature|Platt) scaling.*ECE \(10 bins\) \d\.\d{4} → \d\.\d{4}/m);
      const exportedPolicy = JSON.parse(
        fs.readFileSync(path.join(root, "models", runName, "metadata.json"), "utf8"),
      ).policy;
      expect(exportedPolicy.urgent.validationSensitivity).toBeGreaterThanOrEqual(0.95);
      expect(exportedPolicy.validation.images).toBeGreaterThan(0);
      const triage = runs.at(-1)!.stdoutText;
      expect(triage).toMatch(
        /^decision (URGENT|ROUTINE|REASSURE): calibrated probability \d\.\d{3} \(raw \d\.\d{3}\), interval \d\.\d{3}–\d\.\d{3} over 8 views/m,
      );
      expect(triage).toContain("This is not a diagnosis");
      expect(triage).toMatch(/^sample \S+: test-set image, labelled malignant$/m);
      expect(triage).toMatch(/; true label malignant\)$/m);
      // A file of one's own (here a copy of a test image, outside the split) has no known label.
      const split = JSON.parse(fs.readFileSync(path.join(root, "out", "runs", runName, "split.json"), "utf8"));
      const ownDir = fs.mkdtempSync(path.join(os.tmpdir(), "melanoma-sample-"));
      const ownSample = path.join(ownDir, "my-lesion.jpg");
      fs.copyFileSync(split.test[0].imagePath, ownSample);
      const own = await executeNotebook(path.join(root, "notebooks", "06-triage.ipynb"), {
        outDir: ownDir,
        env: {
          MELANOMA_LAB_SMALL: "1",
          MELANOMA_LAB_RUN: runName,
          MELANOMA_LAB_DATA: env.MELANOMA_LAB_DATA,
          MELANOMA_LAB_SAMPLE: ownSample,
        },
      });
      const ownText = readStdoutText(own.executedNotebookPath);
      expect(ownText).toContain(`sample ${ownSample}: not in the test split, true label unknown`);
      expect(ownText).toMatch(
        /^triage my-lesion: probability of malignant \d\.\d{3} → (URGENT|ROUTINE) \(threshold \d\.\d{3}; true label unknown\)$/m,
      );
    }, 300_000);

    it("leaves TensorBoard logs, an exported model and a report", () => {
      const logs = readLogDir(path.join(root, "logs", runName));
      const names = logs.runs.map((r) => r.name).sort();
      expect(names).toEqual(expect.arrayContaining(["train", "validation"]));
      expect(logs.problems).toEqual([]);
      const train = logs.runs.find((r) => r.name === "train")!;
      expect(train.scalars.epoch_loss.points.length).toBe(5);
      // Every TensorBoard dashboard of this work has data (graph = the Keras model's conceptual graph).
      const dashboards = new Set(logs.runs.flatMap((r) => Object.keys(r.tagsByPlugin)));
      const seven = ["scalars", "histograms", "images", "text", "hparams", "pr_curves", "graph_keras_model"];
      expect(seven.filter((plugin) => !dashboards.has(plugin))).toEqual([]);
      expect(Object.keys(train.images).sort()).toEqual(["train/samples/benign", "train/samples/malignant"]);
      expect(Object.keys(train.text).sort()).toEqual(["config", "model_card"]);
      const validationRun = logs.runs.find((r) => r.name === "validation")!;
      expect(validationRun.prCurves["pr_curve/malignant"].points.map((p) => p.step)).toEqual([0, 1, 2, 3, 4]);
      const modelDir = path.join(root, "models", runName);
      for (const f of ["model.json", "weights.bin", "metadata.json", "model.onnx"])
        expect(fs.existsSync(path.join(modelDir, f)), f).toBe(true);
      const metadata = JSON.parse(fs.readFileSync(path.join(modelDir, "metadata.json"), "utf8"));
      expect(metadata.onnx).toMatchObject({ file: "model.onnx", opset: 13, outputName: "probability_malignant" });
      // Notebook 05 writes float16 and uint8 variants, each re-measured on validation, and the model card.
      expect(metadata.variants.map((v: { dtype: string }) => v.dtype)).toEqual(["float32", "float16", "uint8"]);
      for (const v of metadata.variants as { dtype: string; relativeDir: string; validation: { rocAuc: number } }[]) {
        expect(fs.existsSync(path.join(modelDir, v.relativeDir, "model.json")), v.dtype).toBe(true);
        expect(fs.existsSync(path.join(modelDir, v.relativeDir, "MODEL_CARD.md")), v.dtype).toBe(true);
        expect(v.validation.rocAuc).toBeGreaterThan(0.5);
      }
      expect(metadata.card.trainingData[0].licence).toMatch(/generated/);
      const card = fs.readFileSync(path.join(modelDir, "MODEL_CARD.md"), "utf8");
      expect(card).toContain("- **urgent**: calibrated probability ≥");
      expect(card).toMatch(/ECE \(10 equal-width bins\) \d\.\d{4} → \d\.\d{4}/);
      expect(metadata.thresholdProb).toBeGreaterThan(0);
      expect(metadata.thresholdProb).toBeLessThan(1);
      // Validation and test are named as such, with counts; the threshold says how it was chosen
      // and what it gives per source of the validation split (the synthetic data has 3 clinics).
      expect(metadata.validationMetrics).toBeUndefined();
      expect(metadata.validation.images).toBeGreaterThan(0);
      expect(metadata.validation.metrics.sensitivity).toBeGreaterThanOrEqual(0.9);
      expect(metadata.test.images).toBeGreaterThan(0);
      expect(Object.keys(metadata.test.metrics).sort()).toEqual(["rocAuc", "sensitivity", "specificity"]);
      expect(metadata.threshold.scoredOn).toMatch(/^validation split/);
      expect(metadata.threshold.perSource.map((s: { name: string }) => s.name).sort()).toEqual(
        SYNTHETIC_SOURCES.map((s) => s.name).sort(),
      );
      expect(metadata.threshold.perSource.reduce((n: number, s: { images: number }) => n + s.images, 0)).toBe(
        metadata.validation.images,
      );
      expect(fs.existsSync(path.join(root, "out", "reports", runName, "report.html"))).toBe(true);
      // Notebook 3's second stage: the exported model is the fine-tuned one exactly when it won on validation.
      const fineTuning = JSON.parse(
        fs.readFileSync(path.join(root, "out", "runs", runName, "fine-tuning.json"), "utf8"),
      );
      expect(fineTuning.history.length).toBe(1);
      expect(fineTuning.useFineTuned).toBe(fineTuning.fineTunedValidationAuc > fineTuning.frozenValidationAuc);
      expect(metadata.notes.fineTuned).toBe(fineTuning.useFineTuned);
      const training = runs.find((r) => r.notebook === "03-training.ipynb")!.stdoutText;
      expect(training).toMatch(/^fine-tune epoch 1: .*auc \d\.\d{3}.* \d+\.\d img\/s$/m);
      expect(training).toMatch(
        /^validation ROC AUC: frozen backbone \+ head \d\.\d{3} → fine-tuned top 1 block\(s\) \d\.\d{3}: (using the fine-tuned model|keeping the frozen model)/m,
      );
    });

    it("draws every chart of the training and evaluation notebooks and the report in headless Chromium", async (ctx) => {
      requireTool(ctx, commandExists("/usr/bin/chromium"), "Chromium", "apt-get install chromium");
      const screenshotDir = path.join(root, "out", "screenshots");
      const expectedCharts: [string, number][] = [
        [path.join(outDir, "03-training.html"), 3],
        [path.join(outDir, "04-evaluation.html"), 5],
        [path.join(root, "out", "reports", runName, "report.html"), 7],
      ];
      for (const [html, minimumCharts] of expectedCharts) {
        const report = await checkChartsRendered(html, { screenshotDir });
        expect(report.charts.length, html).toBeGreaterThanOrEqual(minimumCharts);
        for (const chart of report.charts)
          expect(chart.rendered, `${html}: ${chart.title}: ${chart.problems.join("; ")}`).toBe(true);
        expect(report.pageErrors, html).toEqual([]);
      }
    });
  },
);

describeRequiring(missingTool(haveJupyter, JUPYTER_WHAT, JUPYTER_INSTALL), "a failing notebook", () => {
  it("is reported with the notebook and cell named, and its executed copy saved", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "melanoma-nb-"));
    const nbPath = path.join(dir, "99-broken.ipynb");
    const cell = (source: string, type = "code") => ({
      cell_type: type,
      metadata: {},
      source,
      ...(type === "code" ? { outputs: [], execution_count: null } : {}),
    });
    fs.writeFileSync(
      nbPath,
      JSON.stringify({
        cells: [
          cell("A broken notebook.", "markdown"),
          cell('console.log("first cell ran");'),
          cell('throw new Error("boom in cell two");'),
        ],
        metadata: {
          kernelspec: { name: "tslab-melanoma", display_name: "TypeScript (melanoma-lab)", language: "typescript" },
        },
        nbformat: 4,
        nbformat_minor: 5,
      }),
    );
    const err = await executeNotebook(nbPath, { outDir: dir }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(NotebookExecutionError);
    const message = (err as Error).message;
    expect(message).toContain("99-broken.ipynb cell 2");
    expect(message).toContain("boom in cell two");
    const saved = JSON.parse(fs.readFileSync((err as NotebookExecutionError).executedCopy, "utf8"));
    expect(JSON.stringify(saved.cells[1].outputs)).toContain("first cell ran");
  });
});

describeRequiring(missingTool(haveJupyter, JUPYTER_WHAT, JUPYTER_INSTALL), "notebooks run in one kernel", () => {
  const writeNotebook = (file: string, sources: string[]) =>
    fs.writeFileSync(
      file,
      JSON.stringify({
        cells: sources.map((source) => ({
          cell_type: "code",
          metadata: {},
          source,
          outputs: [],
          execution_count: null,
        })),
        metadata: {
          kernelspec: { name: "tslab-melanoma", display_name: "TypeScript (melanoma-lab)", language: "typescript" },
        },
        nbformat: 4,
        nbformat_minor: 5,
      }),
    );

  it("share the kernel but not declarations: a name from the notebook before does not compile", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "melanoma-batch-"));
    const first = path.join(dir, "01-first.ipynb");
    const second = path.join(dir, "02-second.ipynb");
    const third = path.join(dir, "03-third.ipynb");
    // The same const in each notebook (a redeclaration in one kernel unless reset), and a process-wide
    // value that survives the reset (the kernel really is shared).
    writeNotebook(first, [
      "const answer = 41;\n{\n  (globalThis as any).melanomaBatchProbe = process.pid;\n}",
      "console.log(answer + 1);",
    ]);
    writeNotebook(second, [
      "const answer = 1;\nconsole.log(`pid ${(globalThis as any).melanomaBatchProbe === process.pid}`);",
      "console.log(answer);",
    ]);
    writeNotebook(third, ["console.log(answer);"]);
    // Each notebook is its own page: a chart in the second must carry plotly.js again.
    const chartCell =
      'import { showFigure } from "./lib/index.js";\nshowFigure({ data: [{ y: [1, 2] }], layout: {} });';
    const firstChart = path.join(dir, "04-chart.ipynb");
    const secondChart = path.join(dir, "05-chart.ipynb");
    writeNotebook(firstChart, [chartCell]);
    writeNotebook(secondChart, [chartCell]);
    const events: string[] = [];
    const runs = await executeNotebooks([first, second], {
      outDir: dir,
      onProgress: (e) => {
        if (e.kind === "notebook") events.push(`start ${e.index}`);
        if (e.kind === "cell") events.push(`cell ${e.cell}/${e.cells}`);
      },
    });
    expect(events).toEqual(["start 0", "cell 1/2", "cell 2/2", "start 1", "cell 1/2", "cell 2/2"]);
    expect(runs.map((r) => r.stdoutText)).toEqual(["42\n", "pid true\n1\n"]);
    const saved = JSON.parse(fs.readFileSync(runs[1].executedNotebookPath, "utf8"));
    // The reset cell is not saved, and each notebook counts its cells from 1.
    expect(saved.cells.map((c: { execution_count: number }) => c.execution_count)).toEqual([1, 2]);
    const err = await executeNotebooks([first, third], { outDir: dir }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(NotebookExecutionError);
    expect((err as Error).message).toContain("03-third.ipynb cell 0");
    expect((err as Error).message).toMatch(/Cannot find name 'answer'/);
    const charts = await executeNotebooks([firstChart, secondChart], { outDir: dir });
    for (const run of charts)
      expect(fs.readFileSync(run.executedNotebookPath, "utf8"), run.notebook).toContain("inlined once by melanoma-lab");
  }, 300_000);

  it("re-checks a project file that changed: the kernel keeps lib's diagnostics only while no file changed", async () => {
    // The launcher keeps the type-check results of project files between cells (tslab would redo
    // all of lib/ for every import cell); a file edited between notebooks must be checked again.
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "melanoma-recheck-"));
    const probeDir = fs.mkdtempSync(path.join(root, "out", "kernel-probe-"));
    const probeFile = path.join(probeDir, "probe.ts");
    const probeImport = `./${path.relative(root, probeDir).split(path.sep).join("/")}/probe.js`;
    fs.writeFileSync(probeFile, "export const probeValue: number = 41;\n");
    try {
      const first = path.join(dir, "01-imports-probe.ipynb");
      const second = path.join(dir, "02-imports-broken-probe.ipynb");
      writeNotebook(first, [
        `import { probeValue } from "${probeImport}";\nconsole.log(probeValue + 1);`,
        `import fs from "node:fs";\nfs.writeFileSync(${JSON.stringify(probeFile)}, 'export const probeValue: number = "forty-one";\\n');`,
      ]);
      writeNotebook(second, [`import { probeValue } from "${probeImport}";\nconsole.log(probeValue);`]);
      const err = await executeNotebooks([first, second], { outDir: dir }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(NotebookExecutionError);
      expect((err as Error).message).toContain("02-imports-broken-probe.ipynb cell 0");
      expect((err as Error).message).toMatch(/Type 'string' is not assignable to type 'number'/);
      const saved = JSON.parse(fs.readFileSync(path.join(dir, "01-imports-probe.ipynb"), "utf8"));
      expect(JSON.stringify(saved.cells[0].outputs)).toContain("42");
    } finally {
      fs.rmSync(probeDir, { recursive: true, force: true });
    }
  }, 300_000);
});
