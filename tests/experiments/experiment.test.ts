import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import * as tf from "@tensorflow/tfjs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  loadDataset,
  generateSyntheticDataset,
  loadTriageModel,
  predictMalignantProbability,
  readLogDir,
  selectBackend,
  computeRocAuc,
} from "../../lib/index.js";
import { runExperiment, type ExperimentResult } from "../../lib/experiments/runExperiment.js";
import { EXPERIMENT_RUN_SCHEMA } from "../../lib/experiments/runRecord.js";
import { computeDataFingerprint, ExperimentConfigError } from "../../lib/experiments/runIdentity.js";
import {
  buildLeaderboardFigure,
  buildLeaderboardRows,
  formatLeaderboardTable,
  loadExperimentRuns,
} from "../../lib/experiments/leaderboard.js";

let workDir: string;
let dataDir: string;
let externalDir: string;
let result: ExperimentResult;
let tensorsBefore = 0;
let tensorsAfter = 0;
let linearHead: ExperimentResult;
let clash: unknown;
let firstFilesBefore: string[];

beforeAll(async () => {
  workDir = fs.mkdtempSync(path.join(os.tmpdir(), "melanoma-experiment-"));
  dataDir = path.join(workDir, "data");
  await generateSyntheticDataset({ outDir: dataDir, imageCount: 40, seed: 7 });
  externalDir = path.join(workDir, "external");
  await generateSyntheticDataset({ outDir: externalDir, imageCount: 12, seed: 8 });
  await selectBackend();
  tensorsBefore = tf.memory().numTensors;
  result = await runExperiment({
    dataDir,
    backboneName: "mobilenet_v2",
    epochs: 2,
    folds: 2,
    seed: 3,
    outputRoot: workDir,
    featureCacheDir: path.join(workDir, "cache"),
    externalDataDir: externalDir,
    progress: "quiet",
    log: () => {},
  });
  tensorsAfter = tf.memory().numTensors;
  const same = {
    dataDir,
    backboneName: "mobilenet_v2",
    epochs: 2,
    folds: 2,
    seed: 3,
    outputRoot: workDir,
    featureCacheDir: path.join(workDir, "cache"),
    progress: "quiet" as const,
    log: () => {},
  };
  firstFilesBefore = listRunFiles(result);
  // Same options but a linear head: a different configuration, so a different run (features are cached).
  // It also skips the transfer report's leave-one-source-out folds (not part of the run identity).
  linearHead = await runExperiment({ ...same, head: { hiddenUnits: 0 }, leaveOneSourceOut: false });
  // An explicit name that holds the first run's files, with another dropout: refused before anything is deleted.
  clash = await runExperiment({
    ...same,
    head: { dropoutRate: 0.5 },
    runName: path.basename(result.runJsonPath, ".json"),
  }).catch((e: unknown) => e);
}, 180_000);

/** Every file of a run (run JSON, logs, model), with sizes, to see that nothing was removed or replaced. */
function listRunFiles(r: ExperimentResult): string[] {
  const walk = (p: string): string[] =>
    fs.statSync(p).isDirectory()
      ? fs.readdirSync(p).flatMap((f) => walk(path.join(p, f)))
      : [`${p} ${fs.statSync(p).size} ${fs.statSync(p).mtimeMs}`];
  return [r.runJsonPath, r.logDir, r.modelDir].flatMap(walk).sort();
}

afterAll(() => fs.rmSync(workDir, { recursive: true, force: true }));

describe("runExperiment on a 40-image synthetic dataset (2 folds, 2 epochs)", () => {
  it("writes runs/<run>.json with config, backend, data fingerprint, fold spread and timings", () => {
    const { summary, runJsonPath } = result;
    expect(path.dirname(runJsonPath)).toBe(path.join(workDir, "runs"));
    expect(path.basename(runJsonPath)).toMatch(/^data-mobilenet_v2-lesion2-e2-s3-[0-9a-f]{8}\.json$/);
    const onDisk = JSON.parse(fs.readFileSync(runJsonPath, "utf8"));
    expect(onDisk).toEqual(JSON.parse(JSON.stringify(summary)));
    expect(onDisk.schema).toBe(EXPERIMENT_RUN_SCHEMA);
    expect(onDisk.config).toMatchObject({
      backbone: "mobilenet_v2",
      epochs: 2,
      folds: 2,
      seed: 3,
      split: "lesion",
      fineTuneEpochs: 0,
      targetSensitivity: 0.9,
    });
    expect(onDisk.backend.name).toBe("wasm");
    expect(onDisk.data.images).toBe(40);
    expect(onDisk.data.malignant + onDisk.data.benign).toBe(40);
    expect(onDisk.data.fingerprint).toMatch(/^[0-9a-f]{64}$/);
    expect(onDisk.data.fingerprint).toBe(computeDataFingerprint(loadDataset(dataDir).records));
    // Relabelling one image changes the fingerprint.
    const relabelled = loadDataset(dataDir).records.map((r, i) =>
      i === 0 ? { ...r, label: r.label === "benign" ? ("malignant" as const) : ("benign" as const) } : r,
    );
    expect(computeDataFingerprint(relabelled)).not.toBe(onDisk.data.fingerprint);
    expect(onDisk.folds).toHaveLength(2);
    expect(
      onDisk.folds
        .map((f: { validationImages: number }) => f.validationImages)
        .reduce((a: number, b: number) => a + b, 0),
    ).toBe(40);
    // The spread is the mean and sample sd of the per-fold AUCs written beside it.
    const aucs = onDisk.folds.map((f: { rocAuc: number }) => f.rocAuc) as number[];
    const mean = (aucs[0] + aucs[1]) / 2;
    expect(onDisk.metrics.rocAuc.mean).toBeCloseTo(mean, 12);
    expect(onDisk.metrics.rocAuc.sd).toBeCloseTo(Math.abs(aucs[0] - aucs[1]) / Math.SQRT2, 12);
    expect(onDisk.metrics.rocAuc.n).toBe(2);
    for (const f of onDisk.folds) expect(f.epochs).toBe(2);
    for (const key of ["totalMs", "featuresMs", "crossValidationMs", "finalModelMs", "exportMs"])
      expect(onDisk.timings[key]).toBeGreaterThan(0);
    expect(onDisk.timings.featuresComputed).toBe(40);
  });

  it("reports leave-one-source-out per clinic at the shipped threshold, worst first, beside the k-fold CV", () => {
    const onDisk = JSON.parse(fs.readFileSync(result.runJsonPath, "utf8"));
    const loso = onDisk.transfer.leaveOneSourceOut;
    const threshold = onDisk.metrics.threshold.thresholdProb;
    expect(loso.foldsReused).toBe(false);
    expect(loso.thresholdProb).toBe(threshold);
    // One row per synthetic clinic, covering every image once.
    expect(loso.perSource.map((r: { source: string }) => r.source).sort()).toEqual(Object.keys(onDisk.data.sources));
    expect(loso.perSource.reduce((a: number, r: { images: number }) => a + r.images, 0)).toBe(40);
    const aucs = loso.perSource
      .map((r: { rocAuc: number | null }) => r.rocAuc)
      .filter((v: number | null) => v !== null);
    expect(aucs).toEqual([...aucs].sort((a, b) => a - b));
    expect(loso.worstSourceRocAuc).toBe(aucs[0]);
    expect(loso.elapsedMs).toBeGreaterThan(0);
  });

  it("skips the leave-one-source-out folds when asked, and scores no external set unless given one", () => {
    expect(linearHead.summary.transfer).toEqual({ leaveOneSourceOut: null, external: null });
  });

  it("scores the external set with the exported model: AUC, patient-grouped CI, the threshold's sensitivity/specificity", async () => {
    const ext = result.summary.transfer!.external!;
    expect(ext).toMatchObject({ images: 12, patients: 12, problems: 0 });
    expect(ext.rocAuc).toMatchObject({ iterations: 1000, resampled: "patients", confidenceLevel: 0.95 });
    expect(ext.thresholdProb).toBe(result.summary.metrics.threshold.thresholdProb);
    // Independently: the exported model on the external images, judged at its own threshold.
    const loaded = await loadTriageModel(result.modelDir);
    const records = loadDataset(externalDir).records;
    const preds = await predictMalignantProbability(
      loaded,
      records.map((r) => r.imagePath),
    );
    const probs = preds.map((p) => ("probability" in p ? p.probability : NaN));
    const labels = records.map((r) => (r.label === "malignant" ? 1 : 0));
    const flagged = probs.map((p) => p >= loaded.metadata.thresholdProb);
    const malignant = labels.filter((y) => y === 1).length;
    expect(ext.malignant).toBe(malignant);
    expect(ext.sensitivity).toBeCloseTo(labels.filter((y, i) => y === 1 && flagged[i]).length / malignant, 12);
    expect(ext.specificity).toBeCloseTo(labels.filter((y, i) => y === 0 && !flagged[i]).length / (12 - malignant), 12);
    expect(ext.rocAuc.estimate).toBeCloseTo(computeRocAuc(labels, probs), 3);
    expect(ext.rocAuc.lower!).toBeLessThanOrEqual(ext.rocAuc.estimate!);
    expect(ext.rocAuc.upper!).toBeGreaterThanOrEqual(ext.rocAuc.estimate!);
  }, 60_000);

  it("writes TensorBoard fold runs and an hparams session that readLogDir reads", () => {
    const logs = readLogDir(result.logDir);
    const names = logs.runs.map((r) => r.name).sort();
    expect(names).toEqual([
      ".",
      "all/train",
      "all/validation",
      "fold-1/train",
      "fold-1/validation",
      "fold-2/train",
      "fold-2/validation",
    ]);
    const run = (name: string) => logs.runs.find((r) => r.name === name)!;
    expect(run("fold-1/train").scalars.epoch_loss.points.map((p) => p.step)).toEqual([0, 1]);
    expect(run("fold-2/validation").scalars.epoch_auc.points).toHaveLength(2);
    // The last validation epoch_auc of each fold is that fold's ROC AUC in the runs json.
    expect(run("fold-1/validation").scalars.epoch_auc.points[1].value).toBeCloseTo(result.summary.folds[0].rocAuc!, 5);
    const session = run(".");
    const tags = Object.keys(session.hparams).sort();
    expect(tags).toEqual(["_hparams_/session_end_info", "_hparams_/session_start_info"]);
    const start = JSON.stringify(session.hparams["_hparams_/session_start_info"]);
    expect(start).toContain("mobilenet_v2");
    expect(start).toContain("fine_tune_epochs");
    expect(session.scalars["cv/roc_auc_mean"].points[0].value).toBeCloseTo(result.summary.metrics.rocAuc.mean!, 5);
  });

  it("exports a triage model that loads, with the out-of-fold threshold, and leaks no tensors", async () => {
    expect(tensorsAfter).toBe(tensorsBefore);
    const loaded = await loadTriageModel(result.modelDir);
    expect(loaded.metadata.thresholdProb).toBe(result.summary.metrics.threshold.thresholdProb);
    expect(loaded.metadata.backboneName).toBe("mobilenet_v2");
    const images = fs
      .readdirSync(path.join(dataDir, "images"))
      .slice(0, 4)
      .map((f) => path.join(dataDir, "images", f));
    const preds = await predictMalignantProbability(loaded, images);
    for (const p of preds) {
      expect("probability" in p).toBe(true);
      if ("probability" in p) {
        expect(p.probability).toBeGreaterThanOrEqual(0);
        expect(p.probability).toBeLessThanOrEqual(1);
      }
    }
    loaded.model.dispose();
  });

  it("leaderboard: table and figure from two run files, best mean AUC first", () => {
    const runsDir = path.join(workDir, "runs");
    const second = JSON.parse(fs.readFileSync(result.runJsonPath, "utf8"));
    second.runName = "other-run";
    second.metrics.rocAuc = { mean: 0.99, sd: 0.01, min: 0.98, max: 1, n: 2 };
    fs.writeFileSync(path.join(runsDir, "other-run.json"), JSON.stringify(second));
    fs.writeFileSync(path.join(runsDir, "quality-x.json"), JSON.stringify({ kind: "quality-benchmark" }));
    const { runs, skipped } = loadExperimentRuns(runsDir);
    const first = result.summary.runName;
    expect(runs.map((r) => r.runName).sort()).toEqual([first, linearHead.summary.runName, "other-run"].sort());
    expect(skipped.map((s) => path.basename(s.file))).toEqual(["quality-x.json"]);
    const rows = buildLeaderboardRows(runs.filter((r) => r.runName !== linearHead.summary.runName));
    expect(rows.map((r) => r.runName)).toEqual(["other-run", first]);
    const table = formatLeaderboardTable(rows).split("\n");
    expect(table).toHaveLength(4);
    expect(table[2]).toMatch(/^1 {2}other-run .* 0\.990 ± 0\.010 /);
    expect(table[3]).toContain(
      `${result.summary.metrics.rocAuc.mean!.toFixed(3)} ± ${result.summary.metrics.rocAuc.sd!.toFixed(3)}`,
    );
    const fig = buildLeaderboardFigure(runs.filter((r) => r.runName !== linearHead.summary.runName));
    expect(fig.data).toHaveLength(2);
    expect(fig.data[0].x).toEqual(["other-run", first]);
    expect(fig.data[0].y).toEqual([0.99, result.summary.metrics.rocAuc.mean]);
    expect((fig.data[0].error_y as { array: number[] }).array).toEqual([0.01, result.summary.metrics.rocAuc.sd]);
  });

  it("runs differing only in the head get different names, and the second leaves the first's files alone", () => {
    expect(linearHead.summary.runName).not.toBe(result.summary.runName);
    expect(linearHead.summary.config.head.hiddenUnits).toBe(0);
    expect(linearHead.summary.configHash).not.toBe(result.summary.configHash);
    expect(listRunFiles(result)).toEqual(firstFilesBefore);
    expect(JSON.parse(fs.readFileSync(result.runJsonPath, "utf8")).config.head.hiddenUnits).toBe(128);
  });

  it("refuses an explicit run name that holds another configuration's files, deleting nothing", () => {
    expect(clash).toBeInstanceOf(ExperimentConfigError);
    expect((clash as Error).message).toContain(`configuration ${result.summary.configHash}`);
    expect(listRunFiles(result)).toEqual(firstFilesBefore);
  });

  it("records the threshold's provenance and its per-fold and per-source sensitivity/specificity in the run JSON and metadata.json", () => {
    const { summary } = result;
    const t = summary.metrics.threshold;
    expect(t.method).toBe("highest threshold with sensitivity ≥ target");
    expect(t.scoredOn).toMatch(/^pooled out-of-fold predictions of 2 fold models \(lesion-grouped 2-fold\)/);
    expect(t.perFold!.map((f) => f.name)).toEqual(["fold-1", "fold-2"]);
    // Each fold's counts are its validation images; the per-fold and per-source counts add up to the pooled ones.
    expect(t.perFold!.map((f) => f.images)).toEqual(summary.folds.map((f) => f.validationImages));
    expect(t.perFold!.map((f) => f.malignant)).toEqual(summary.folds.map((f) => f.validationPositives));
    const sum = (xs: { malignant: number }[]) => xs.reduce((n, x) => n + x.malignant, 0);
    expect(sum(t.perFold!)).toBe(summary.data.malignant);
    expect(sum(t.perSource!)).toBe(summary.data.malignant);
    expect(t.perSource!.map((s) => s.name)).toEqual(Object.keys(summary.data.sources));
    // Pooled sensitivity = malignant caught over all folds / all malignant.
    const caught = t.perFold!.reduce((n, f) => n + Math.round(f.sensitivity! * f.malignant), 0);
    expect(t.sensitivity).toBeCloseTo(caught / summary.data.malignant, 12);
    const worst = Math.min(...t.perSource!.flatMap((s) => (s.sensitivity === null ? [] : [s.sensitivity])));
    expect(t.worstSource!.sensitivity).toBe(worst);
    const below = t.perSource!.filter((s) => s.sensitivity !== null && s.sensitivity < 0.9);
    expect(summary.warnings).toHaveLength(below.length);
    expect(t.warnings).toEqual(summary.warnings);

    const metadata = JSON.parse(fs.readFileSync(path.join(result.modelDir, "metadata.json"), "utf8"));
    expect(metadata.threshold).toEqual(
      JSON.parse(JSON.stringify({ ...t, thresholdProb: undefined, specificity: t.specificity })),
    );
    expect(metadata.notes.configHash).toBe(summary.configHash);
  });

  it("files the out-of-fold metrics under validation with counts, no test block and no validationMetrics", () => {
    const metadata = JSON.parse(fs.readFileSync(path.join(result.modelDir, "metadata.json"), "utf8"));
    expect(metadata).not.toHaveProperty("validationMetrics");
    expect(metadata).not.toHaveProperty("test");
    expect(metadata.validation).toMatchObject({
      images: 40,
      malignant: result.summary.data.malignant,
      benign: result.summary.data.benign,
    });
    expect(metadata.validation.description).toMatch(/^pooled out-of-fold predictions of 2 fold models/);
    expect(metadata.validation.metrics).toEqual({
      rocAucMean: result.summary.metrics.rocAuc.mean,
      rocAucSd: result.summary.metrics.rocAuc.sd,
      outOfFoldRocAuc: result.summary.metrics.outOfFoldRocAuc,
      sensitivity: result.summary.metrics.threshold.sensitivity,
      specificity: result.summary.metrics.threshold.specificity,
    });
  });
});
