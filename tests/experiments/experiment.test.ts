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
} from "../../lib/index.js";
import { runExperiment, EXPERIMENT_RUN_SCHEMA, computeDataFingerprint, type ExperimentResult } from "../../lib/experiments/runExperiment.js";
import { buildLeaderboardFigure, buildLeaderboardRows, formatLeaderboardTable, loadExperimentRuns } from "../../lib/experiments/leaderboard.js";

let workDir: string;
let dataDir: string;
let result: ExperimentResult;
let tensorsBefore = 0;
let tensorsAfter = 0;

beforeAll(async () => {
  workDir = fs.mkdtempSync(path.join(os.tmpdir(), "melanoma-experiment-"));
  dataDir = path.join(workDir, "data");
  await generateSyntheticDataset({ outDir: dataDir, imageCount: 40, seed: 7 });
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
    progress: "quiet",
    log: () => {},
  });
  tensorsAfter = tf.memory().numTensors;
}, 120_000);

afterAll(() => fs.rmSync(workDir, { recursive: true, force: true }));

describe("runExperiment on a 40-image synthetic dataset (2 folds, 2 epochs)", () => {
  it("writes runs/<run>.json with config, backend, data fingerprint, fold spread and timings", () => {
    const { summary, runJsonPath } = result;
    expect(runJsonPath).toBe(path.join(workDir, "runs", "data-mobilenet_v2-lesion2-e2-s3.json"));
    const onDisk = JSON.parse(fs.readFileSync(runJsonPath, "utf8"));
    expect(onDisk).toEqual(JSON.parse(JSON.stringify(summary)));
    expect(onDisk.schema).toBe(EXPERIMENT_RUN_SCHEMA);
    expect(onDisk.config).toMatchObject({ backbone: "mobilenet_v2", epochs: 2, folds: 2, seed: 3, split: "lesion", fineTuneEpochs: 0, targetSensitivity: 0.9 });
    expect(onDisk.backend.name).toBe("wasm");
    expect(onDisk.data.images).toBe(40);
    expect(onDisk.data.malignant + onDisk.data.benign).toBe(40);
    expect(onDisk.data.fingerprint).toMatch(/^[0-9a-f]{64}$/);
    expect(onDisk.data.fingerprint).toBe(computeDataFingerprint(loadDataset(dataDir).records));
    // Relabelling one image changes the fingerprint.
    const relabelled = loadDataset(dataDir).records.map((r, i) => (i === 0 ? { ...r, label: r.label === "benign" ? ("malignant" as const) : ("benign" as const) } : r));
    expect(computeDataFingerprint(relabelled)).not.toBe(onDisk.data.fingerprint);
    expect(onDisk.folds).toHaveLength(2);
    expect(onDisk.folds.map((f: { validationImages: number }) => f.validationImages).reduce((a: number, b: number) => a + b, 0)).toBe(40);
    // The spread is the mean and sample sd of the per-fold AUCs written beside it.
    const aucs = onDisk.folds.map((f: { rocAuc: number }) => f.rocAuc) as number[];
    const mean = (aucs[0] + aucs[1]) / 2;
    expect(onDisk.metrics.rocAuc.mean).toBeCloseTo(mean, 12);
    expect(onDisk.metrics.rocAuc.sd).toBeCloseTo(Math.abs(aucs[0] - aucs[1]) / Math.SQRT2, 12);
    expect(onDisk.metrics.rocAuc.n).toBe(2);
    for (const f of onDisk.folds) expect(f.epochs).toBe(2);
    for (const key of ["totalMs", "featuresMs", "crossValidationMs", "finalModelMs", "exportMs"]) expect(onDisk.timings[key]).toBeGreaterThan(0);
    expect(onDisk.timings.featuresComputed).toBe(40);
  });

  it("writes TensorBoard fold runs and an hparams session that readLogDir reads", () => {
    const logs = readLogDir(result.logDir);
    const names = logs.runs.map((r) => r.name).sort();
    expect(names).toEqual([".", "all/train", "all/validation", "fold-1/train", "fold-1/validation", "fold-2/train", "fold-2/validation"]);
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
    const images = fs.readdirSync(path.join(dataDir, "images")).slice(0, 4).map((f) => path.join(dataDir, "images", f));
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
    expect(runs.map((r) => r.runName).sort()).toEqual(["data-mobilenet_v2-lesion2-e2-s3", "other-run"]);
    expect(skipped.map((s) => path.basename(s.file))).toEqual(["quality-x.json"]);
    const rows = buildLeaderboardRows(runs);
    expect(rows.map((r) => r.runName)).toEqual(["other-run", "data-mobilenet_v2-lesion2-e2-s3"]);
    const table = formatLeaderboardTable(rows).split("\n");
    expect(table).toHaveLength(4);
    expect(table[2]).toMatch(/^1 {2}other-run .* 0\.990 ± 0\.010 /);
    expect(table[3]).toContain(`${result.summary.metrics.rocAuc.mean!.toFixed(3)} ± ${result.summary.metrics.rocAuc.sd!.toFixed(3)}`);
    const fig = buildLeaderboardFigure(runs);
    expect(fig.data).toHaveLength(2);
    expect(fig.data[0].x).toEqual(["other-run", "data-mobilenet_v2-lesion2-e2-s3"]);
    expect(fig.data[0].y).toEqual([0.99, result.summary.metrics.rocAuc.mean]);
    expect((fig.data[0].error_y as { array: number[] }).array).toEqual([0.01, result.summary.metrics.rocAuc.sd]);
  });
});
