import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import * as tf from "@tensorflow/tfjs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateSyntheticDataset, readLogDir, selectBackend } from "../../lib/index.js";
import { runExperiment } from "../../lib/experiments/runExperiment.js";
import { type ExperimentRunSummary } from "../../lib/experiments/runRecord.js";
import {
  backfillTensorBoardEpochs,
  describeResumeConfigDifferences,
  ExperimentResumeError,
} from "../../lib/experiments/experimentResume.js";
import { createEventWriter, readRunDir } from "../../lib/index.js";
import {
  killProcessGroup,
  readLatestCheckpointEpoch,
  spawnExperimentScript,
  waitWhileRunning,
} from "../helpers/experimentChild.js";

const EPOCHS = 4;
const RUN = "killed";
// 2048 hidden units make an epoch (with its checkpoint) take ~0.3 s, so the run is reliably
// still training when the poll below sees fold-2's second checkpoint and kills it.
const COMMON = {
  backboneName: "mobilenet_v2",
  epochs: EPOCHS,
  folds: 2,
  seed: 3,
  head: { hiddenUnits: 2048 },
} as const;

let workDir: string;
let dataDir: string;
let cacheDir: string;

function runScript(extraArgs: string[]) {
  const args = [
    "--data",
    dataDir,
    "--backbone",
    COMMON.backboneName,
    "--epochs",
    String(EPOCHS),
    "--folds",
    "2",
    "--seed",
    "3",
    "--hidden-units",
    "2048",
    "--run",
    RUN,
    "--output-root",
    workDir,
    "--progress",
    "lines",
    ...extraArgs,
  ];
  return spawnExperimentScript(args, { MELANOMA_LAB_FEATURE_CACHE: cacheDir });
}

function latestCheckpointEpoch(fold: string): number {
  return readLatestCheckpointEpoch(path.join(workDir, "out", "checkpoints", RUN, fold));
}

let killedOutput = "";
let killedAtEpoch = 0;
let resumedOutput = "";
let resumed: ExperimentRunSummary;
let straight: ExperimentRunSummary;
let mismatch: unknown;
let tensorsBefore = 0;

beforeAll(async () => {
  workDir = fs.mkdtempSync(path.join(os.tmpdir(), "melanoma-resume-"));
  dataDir = path.join(workDir, "data");
  cacheDir = path.join(workDir, "cache");
  await generateSyntheticDataset({ outDir: dataDir, imageCount: 40, seed: 7 });

  // 1. Start a run and SIGKILL its process group once fold-2 has checkpointed epoch 2.
  const first = runScript([]);
  await waitWhileRunning(first, () => latestCheckpointEpoch("fold-2") >= 2);
  killedAtEpoch = latestCheckpointEpoch("fold-2");
  const killed = await killProcessGroup(first);
  expect(killed.signal).toBe("SIGKILL");
  killedOutput = killed.output;

  // 2. Resuming with another seed is refused, naming what differs, and touches nothing.
  await selectBackend();
  tensorsBefore = tf.memory().numTensors;
  mismatch = await runExperiment({
    ...COMMON,
    seed: 4,
    dataDir,
    runName: RUN,
    outputRoot: workDir,
    featureCacheDir: cacheDir,
    resume: true,
    progress: "quiet",
    log: () => {},
  }).catch((e: unknown) => e);

  // 3. Resume to completion in a new process.
  const second = await runScript(["--resume"]).exited;
  resumedOutput = second.output;
  if (second.code !== 0) throw new Error(`resumed run failed (${second.code}):\n${second.output}`);
  resumed = JSON.parse(fs.readFileSync(path.join(workDir, "runs", `${RUN}.json`), "utf8")) as ExperimentRunSummary;

  // 4. The same experiment uninterrupted, for comparison.
  straight = (
    await runExperiment({
      ...COMMON,
      dataDir,
      runName: "straight",
      outputRoot: workDir,
      featureCacheDir: cacheDir,
      progress: "quiet",
      log: () => {},
    })
  ).summary;
}, 120_000);

afterAll(() => fs.rmSync(workDir, { recursive: true, force: true }));

describe("runExperiment --resume after SIGKILL mid-run (40 images, 2 folds, 4 epochs)", () => {
  it("the killed run was inside fold-2 and left no runs json", () => {
    expect(killedAtEpoch).toBeGreaterThanOrEqual(2);
    expect(killedAtEpoch).toBeLessThan(EPOCHS + 1);
    expect(killedOutput).toMatch(/fold-1: ROC AUC/);
    expect(killedOutput).not.toMatch(/all data 4\/4/);
  });

  it("a config mismatch on resume is an ExperimentResumeError naming the field, and leaks nothing", () => {
    expect(mismatch).toBeInstanceOf(ExperimentResumeError);
    expect((mismatch as Error).message).toMatch(/seed: checkpoint has 3, this run has 4/);
    expect(tf.memory().numTensors).toBe(tensorsBefore);
    expect(
      describeResumeConfigDifferences(
        { seed: 3, epochs: 4, dataFingerprint: "ab" },
        { seed: 3, epochs: 5, dataFingerprint: "cd" },
      ),
    ).toEqual(['dataFingerprint: checkpoint has "ab", this run has "cd"', "epochs: checkpoint has 4, this run has 5"]);
  });

  it("the resumed process reused fold-1 and continued fold-2 after its last checkpoint instead of retraining", () => {
    expect(resumedOutput).toMatch(/resuming killed from /);
    expect(resumedOutput).toMatch(/fold-1: finished before the interruption, reused/);
    expect(resumedOutput).not.toMatch(/fold-1 \d\/4/);
    for (let epoch = 1; epoch <= killedAtEpoch; epoch++) expect(resumedOutput).not.toContain(`fold-2 ${epoch}/4`);
    if (killedAtEpoch < EPOCHS) expect(resumedOutput).toContain(`fold-2 ${EPOCHS}/4`);
    // Checkpoints are dropped once the run has succeeded.
    expect(fs.existsSync(path.join(workDir, "out", "checkpoints", RUN))).toBe(false);
  });

  it("runs/<run>.json has every fold with the full epoch count and the metrics of an uninterrupted run", () => {
    expect(resumed.folds.map((f) => [f.name, f.epochs])).toEqual([
      ["fold-1", EPOCHS],
      ["fold-2", EPOCHS],
    ]);
    expect(straight.folds.map((f) => f.epochs)).toEqual([EPOCHS, EPOCHS]);
    for (const [i, f] of resumed.folds.entries()) {
      const s = straight.folds[i];
      expect([f.trainImages, f.validationImages, f.validationPositives]).toEqual([
        s.trainImages,
        s.validationImages,
        s.validationPositives,
      ]);
      expect(f.rocAuc).toBeCloseTo(s.rocAuc!, 9);
      expect(f.averagePrecision).toBeCloseTo(s.averagePrecision!, 9);
      expect(f.finalTrainLoss).toBeCloseTo(s.finalTrainLoss, 9);
      expect(f.finalValidationLoss).toBeCloseTo(s.finalValidationLoss!, 9);
    }
    expect(resumed.metrics.rocAuc.mean).toBeCloseTo(straight.metrics.rocAuc.mean!, 9);
    expect(resumed.metrics.outOfFoldRocAuc).toBeCloseTo(straight.metrics.outOfFoldRocAuc!, 9);
    expect(resumed.metrics.threshold.thresholdProb).toBeCloseTo(straight.metrics.threshold.thresholdProb, 9);
    expect(resumed.data.fingerprint).toBe(straight.data.fingerprint);
  });

  it("TensorBoard logs read back with one point per epoch per tag, equal to the uninterrupted run's", () => {
    const logs = readLogDir(path.join(workDir, "logs", RUN));
    const reference = readLogDir(path.join(workDir, "logs", "straight"));
    expect(logs.problems).toEqual([]);
    const steps = Array.from({ length: EPOCHS }, (_, i) => i);
    for (const runName of ["fold-1/train", "fold-1/validation", "fold-2/train", "fold-2/validation", "all/train"]) {
      const run = logs.runs.find((r) => r.name === runName)!;
      const ref = reference.runs.find((r) => r.name === runName)!;
      expect(Object.keys(run.scalars).sort()).toEqual(Object.keys(ref.scalars).sort());
      for (const tag of Object.keys(ref.scalars)) {
        const points = run.scalars[tag].points;
        expect(
          points.map((p) => p.step),
          `${runName} ${tag}`,
        ).toEqual(steps);
        points.forEach((p, i) => expect(p.value).toBeCloseTo(ref.scalars[tag].points[i].value, 6));
      }
    }
    // The interrupted fold's series spans the killed and the resumed process's event files.
    expect(logs.runs.find((r) => r.name === "fold-2/train")!.files.length).toBeGreaterThanOrEqual(2);
    const session = logs.runs.find((r) => r.name === ".")!;
    expect(Object.keys(session.hparams).sort()).toEqual(["_hparams_/session_end_info", "_hparams_/session_start_info"]);
    expect(session.scalars["cv/roc_auc_mean"].points.map((p) => p.value)).toHaveLength(1);
  });
});

describe("backfillTensorBoardEpochs", () => {
  it("writes only the checkpointed epochs missing from the logs, with the callback's tags and 0-based steps", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "melanoma-backfill-"));
    try {
      // Epochs 1-2 were logged before the kill; epoch 3 was checkpointed but not logged.
      const train = createEventWriter(path.join(dir, "train"), { flushIntervalMs: 0 });
      for (const step of [0, 1])
        for (const tag of ["epoch_loss", "epoch_accuracy", "epoch_auc", "epoch_learning_rate"])
          train.addScalar(tag, 0.5, step);
      train.close();
      const history = [1, 2, 3].map((epoch) => ({
        epoch,
        trainLoss: 0.9 - epoch / 10,
        trainAccuracy: 0.5,
        trainAuc: 0.6,
        valLoss: 0.7,
        valAccuracy: 0.25,
        valAuc: 0.75,
        elapsedMs: 1,
      }));
      // Validation logs are missing entirely (as if that writer never flushed): all 3 epochs are written there.
      expect(backfillTensorBoardEpochs(dir, history, 1e-3)).toBe(3);
      const trainRun = readRunDir(path.join(dir, "train"));
      expect(trainRun.scalars.epoch_loss.points.map((p) => [p.step, Number(p.value.toFixed(6))])).toEqual([
        [0, 0.5],
        [1, 0.5],
        [2, 0.6],
      ]);
      expect(trainRun.scalars.epoch_learning_rate.points.map((p) => p.step)).toEqual([0, 1, 2]);
      expect(trainRun.scalars.epoch_learning_rate.points[2].value).toBeCloseTo(1e-3, 9);
      const validation = readRunDir(path.join(dir, "validation"));
      expect(Object.keys(validation.scalars).sort()).toEqual(["epoch_accuracy", "epoch_auc", "epoch_loss"]);
      expect(validation.scalars.epoch_auc.points.map((p) => [p.step, p.value])).toEqual([
        [0, 0.75],
        [1, 0.75],
        [2, 0.75],
      ]);
      // A second call finds nothing missing.
      expect(backfillTensorBoardEpochs(dir, history, 1e-3)).toBe(0);
      expect(readRunDir(path.join(dir, "train")).scalars.epoch_loss.points).toHaveLength(3);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
