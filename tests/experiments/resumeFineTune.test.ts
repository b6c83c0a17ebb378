import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateSyntheticDataset, readLogDir } from "../../lib/index.js";
import { runExperiment } from "../../lib/experiments/runExperiment.js";
import { type ExperimentRunSummary } from "../../lib/experiments/runRecord.js";
import {
  killProcessGroup,
  readLatestCheckpointEpoch,
  spawnExperimentScript,
  waitWhileRunning,
} from "../helpers/experimentChild.js";

// 24 images, 2 folds, 2 head epochs then 2 fine-tune epochs of block_16 (batch 16: one or two
// steps per epoch). The first process is SIGKILLed inside fold-2's fine-tuning, right after its
// epoch-1 checkpoint; a second process resumes it.
const HEAD_EPOCHS = 2;
const FT_EPOCHS = 2;
const RUN = "ft-killed";
const COMMON = {
  backboneName: "mobilenet_v2",
  epochs: HEAD_EPOCHS,
  fineTuneEpochs: FT_EPOCHS,
  unfreezeBlocks: 1,
  folds: 2,
  seed: 3,
  head: { hiddenUnits: 16 },
} as const;

let workDir: string;
let dataDir: string;
let cacheDir: string;
let killedAtEpoch = 0;
let fold2DoneAtKill = true;
let killedOutput = "";
let resumedOutput = "";
let resumed: ExperimentRunSummary;
let straight: ExperimentRunSummary;

function runScript(extraArgs: string[]) {
  const args = [
    "--data",
    dataDir,
    "--backbone",
    COMMON.backboneName,
    "--epochs",
    String(HEAD_EPOCHS),
    "--fine-tune",
    String(FT_EPOCHS),
    "--unfreeze-blocks",
    "1",
    "--folds",
    "2",
    "--seed",
    "3",
    "--hidden-units",
    "16",
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

const checkpointsOf = (...parts: string[]) => path.join(workDir, "out", "checkpoints", RUN, ...parts);

beforeAll(async () => {
  workDir = fs.mkdtempSync(path.join(os.tmpdir(), "melanoma-ft-resume-"));
  dataDir = path.join(workDir, "data");
  cacheDir = path.join(workDir, "cache", "features");
  await generateSyntheticDataset({ outDir: dataDir, imageCount: 24, seed: 11 });

  const first = runScript([]);
  await waitWhileRunning(first, () => readLatestCheckpointEpoch(checkpointsOf("fold-2", "fine-tune")) >= 1);
  killedAtEpoch = readLatestCheckpointEpoch(checkpointsOf("fold-2", "fine-tune"));
  fold2DoneAtKill = fs.existsSync(checkpointsOf("folds", "fold-2.json"));
  const killed = await killProcessGroup(first);
  expect(killed.signal).toBe("SIGKILL");
  killedOutput = killed.output;

  const second = await runScript(["--resume"]).exited;
  resumedOutput = second.output;
  if (second.code !== 0) throw new Error(`resumed run failed (${second.code}):\n${second.output}`);
  resumed = JSON.parse(fs.readFileSync(path.join(workDir, "runs", `${RUN}.json`), "utf8")) as ExperimentRunSummary;

  // The same experiment uninterrupted (activations come from the cache the killed run filled).
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
}, 170_000);

afterAll(() => {
  if (workDir) fs.rmSync(workDir, { recursive: true, force: true });
});

describe("runExperiment --fine-tune --resume after SIGKILL inside a fold's fine-tuning (24 images, 2 folds)", () => {
  it("the killed process was fine-tuning fold-2 (epoch 1 checkpointed, fold not finished)", () => {
    expect(killedAtEpoch).toBe(1);
    expect(fold2DoneAtKill).toBe(false);
    expect(killedOutput).toMatch(/fold-1: ROC AUC/);
    expect(killedOutput).toMatch(/fold-2 2\/2: /);
    expect(killedOutput).not.toMatch(/fold-2 fine-tune 2\/2/);
  });

  it("the resumed process reused fold-1 and continued fold-2's fine-tuning at epoch 2, nothing retrained", () => {
    expect(resumedOutput).toMatch(/resuming ft-killed from /);
    expect(resumedOutput).toMatch(/fold-1: finished before the interruption, reused/);
    expect(resumedOutput).not.toMatch(/fold-1 (fine-tune )?\d\/2/);
    // fold-2's head and its first fine-tune epoch came from checkpoints.
    expect(resumedOutput).not.toMatch(/fold-2 \d\/2: /);
    expect(resumedOutput).not.toMatch(/fold-2 fine-tune 1\/2/);
    expect(resumedOutput).toMatch(/fold-2 fine-tune 2\/2: /);
    expect(resumedOutput).toMatch(/all data fine-tune 2\/2: /);
    expect(fs.existsSync(checkpointsOf())).toBe(false);
  });

  it("runs/<run>.json has the metrics of an uninterrupted run (to 1e-6)", () => {
    expect(resumed.config.fineTuneEpochs).toBe(FT_EPOCHS);
    expect(resumed.folds.map((f) => [f.name, f.epochs])).toEqual([
      ["fold-1", HEAD_EPOCHS],
      ["fold-2", HEAD_EPOCHS],
    ]);
    for (const [i, f] of resumed.folds.entries()) {
      const s = straight.folds[i];
      expect([f.trainImages, f.validationImages, f.validationPositives]).toEqual([
        s.trainImages,
        s.validationImages,
        s.validationPositives,
      ]);
      expect(f.rocAuc).toBeCloseTo(s.rocAuc!, 6);
      expect(f.averagePrecision).toBeCloseTo(s.averagePrecision!, 6);
    }
    expect(resumed.metrics.outOfFoldRocAuc).toBeCloseTo(straight.metrics.outOfFoldRocAuc!, 6);
    expect(resumed.metrics.threshold.thresholdProb).toBeCloseTo(straight.metrics.threshold.thresholdProb, 6);
    // The exported (all-data, fine-tuned) model is the same to float precision.
    const a = fs.readFileSync(path.join(workDir, "models", RUN, "weights.bin"));
    const b = fs.readFileSync(path.join(workDir, "models", "straight", "weights.bin"));
    expect(a.length).toBe(b.length);
    const fa = new Float32Array(a.buffer, a.byteOffset, a.length / 4);
    const fb = new Float32Array(b.buffer, b.byteOffset, b.length / 4);
    let worst = 0;
    for (let i = 0; i < fa.length; i++) worst = Math.max(worst, Math.abs(fa[i] - fb[i]));
    expect(worst).toBeLessThan(1e-6);
  });

  it("every fine-tune series in TensorBoard reads back with exactly one point per epoch, equal to the uninterrupted run's", () => {
    const logs = readLogDir(path.join(workDir, "logs", RUN));
    const reference = readLogDir(path.join(workDir, "logs", "straight"));
    expect(logs.problems).toEqual([]);
    const runs = [
      "fold-1/fine-tune/train",
      "fold-1/fine-tune/validation",
      "fold-2/fine-tune/train",
      "fold-2/fine-tune/validation",
      "all/fine-tune/train",
    ];
    const series = [
      ...runs.map((r) => [r, FT_EPOCHS] as const),
      ...["fold-1/train", "fold-2/train", "all/train"].map((r) => [r, HEAD_EPOCHS] as const),
    ];
    for (const [runName, epochs] of series) {
      const run = logs.runs.find((r) => r.name === runName);
      const ref = reference.runs.find((r) => r.name === runName);
      expect(run, runName).toBeDefined();
      expect(Object.keys(run!.scalars).sort()).toEqual(Object.keys(ref!.scalars).sort());
      expect(Object.keys(run!.scalars).length).toBeGreaterThanOrEqual(3);
      for (const tag of Object.keys(ref!.scalars)) {
        const points = run!.scalars[tag].points;
        expect(
          points.map((p) => p.step),
          `${runName} ${tag}`,
        ).toEqual(Array.from({ length: epochs }, (_, i) => i));
        points.forEach((p, i) =>
          expect(p.value, `${runName} ${tag} step ${i}`).toBeCloseTo(ref!.scalars[tag].points[i].value, 6),
        );
      }
    }
    expect(
      logs.runs.find((r) => r.name === "fold-2/fine-tune/train")!.scalars.epoch_learning_rate.points[1].value,
    ).toBeCloseTo(1e-4, 9);
    expect(logs.runs.some((r) => r.name === "all/fine-tune/validation" && Object.keys(r.scalars).length > 0)).toBe(
      false,
    );
  });
});
