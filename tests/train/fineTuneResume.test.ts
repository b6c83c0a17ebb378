import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import * as tf from "@tensorflow/tfjs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateSyntheticDataset, loadDataset, selectBackend } from "../../lib/index.js";
import type { LesionRecord } from "../../lib/data/types.js";
import type { Backbone } from "../../lib/models/types.js";
import { loadBackbone } from "../../lib/models/backbones.js";
import { extractFeatures } from "../../lib/models/features.js";
import { registerWasmGradientKernels } from "../../lib/backend/wasmGradKernels.js";
import { CheckpointError, checkpointFolderName, computeValuesChecksum } from "../../lib/train/checkpoints.js";
import { loadLayersModelFromDir } from "../../lib/models/modelFiles.js";
import { fineTuneTopBlocks, type FineTuneOptions, type FineTuneResult } from "../../lib/train/fineTune.js";
import { trainHead } from "../../lib/train/trainHead.js";
import { type EpochMetrics } from "../../lib/train/trainingLog.js";

// 12 train + 4 validation synthetic images, block_16 unfrozen, batch 4: 3 steps per epoch, and
// augmentation on so the per-epoch view draws are exercised too.
const EPOCHS = 3;
let workDir: string;
let backbone: Backbone;
let head: tf.LayersModel;
let train: LesionRecord[];
let validation: LesionRecord[];
let options: FineTuneOptions;

function weightsOf(model: tf.LayersModel): Float32Array[] {
  return model.trainableWeights.map((w) => Float32Array.from(w.read().dataSync()));
}

beforeAll(async () => {
  workDir = fs.mkdtempSync(path.join(os.tmpdir(), "melanoma-ft-resume-"));
  const dataDir = path.join(workDir, "data");
  await generateSyntheticDataset({ outDir: dataDir, imageCount: 16, seed: 21, malignantFraction: 0.5 });
  registerWasmGradientKernels();
  await selectBackend({ preferred: "wasm" });
  const { records } = loadDataset(dataDir);
  const malignant = records.filter((r) => r.label === "malignant");
  const benign = records.filter((r) => r.label === "benign");
  validation = [...malignant.slice(0, 2), ...benign.slice(0, 2)];
  train = records.filter((r) => !validation.includes(r));
  backbone = await loadBackbone("mobilenet_v2");
  const features = await extractFeatures(backbone, train);
  head = (
    await trainHead(
      features.features,
      features.sourceIndices.map((i) => train[i].label),
      { seed: 4, epochs: 2, hiddenUnits: 8, batchSize: 4 },
    )
  ).model;
  options = {
    unfreezeBlocks: 1,
    epochs: EPOCHS,
    learningRate: 1e-3,
    batchSize: 4,
    seed: 9,
    augment: true,
    classWeights: "balanced",
    cacheDir: path.join(workDir, "activations"),
  };
}, 300_000);

afterAll(() => {
  head?.dispose();
  backbone?.model.dispose();
  if (workDir) fs.rmSync(workDir, { recursive: true, force: true });
});

describe("fineTuneTopBlocks checkpoints and resume (16 synthetic images, block_16, augmented)", () => {
  let straight: FineTuneResult;
  let resumed: FineTuneResult;
  let crash: unknown;
  const resumedEvents: string[] = [];
  let tensorsBefore = 0;

  beforeAll(async () => {
    tensorsBefore = tf.memory().numTensors;
    straight = await fineTuneTopBlocks(backbone, head, train, validation, {
      ...options,
      checkpointDir: path.join(workDir, "straight"),
    });
    // An interrupted run: it dies right after epoch 1's checkpoint (onEpochEnd runs after it).
    const dir = path.join(workDir, "interrupted");
    crash = await fineTuneTopBlocks(backbone, head, train, validation, {
      ...options,
      checkpointDir: dir,
      onEpochEnd: (m) => {
        if (m.epoch === 1) throw new Error("killed after epoch 1");
      },
    }).catch((e: unknown) => e);
    resumed = await fineTuneTopBlocks(backbone, head, train, validation, {
      ...options,
      checkpointDir: dir,
      resume: true,
      callbacks: [
        {
          onEpochEnd: (epoch, logs) =>
            void resumedEvents.push(
              `${epoch}:${Object.keys(logs ?? {})
                .sort()
                .join(",")}:${logs?.learning_rate}`,
            ),
        },
      ],
    });
  }, 300_000);

  it("a run that died after epoch 1 continues from epoch 2 and equals an uninterrupted run exactly", () => {
    expect((crash as Error).message).toBe("killed after epoch 1");
    expect(straight.resumedFromEpoch).toBe(0);
    expect(resumed.resumedFromEpoch).toBe(1);
    // Only epochs 2 and 3 ran in the resumed call: 3 steps each.
    expect(resumed.stepDurationsMs).toHaveLength(2 * 3);
    expect(straight.stepDurationsMs).toHaveLength(EPOCHS * 3);
    const strip = (h: EpochMetrics[]) => h.map(({ elapsedMs: _ms, ...rest }) => rest);
    expect(resumed.history.map((m) => m.epoch)).toEqual([1, 2, 3]);
    expect(strip(resumed.history)).toEqual(strip(straight.history));
    const a = weightsOf(straight.head);
    const b = weightsOf(resumed.head);
    expect(b.length).toBe(a.length);
    expect(a.length).toBeGreaterThan(4);
    // Same backend, same process: bit-identical weights (tolerance 0), and they did move.
    for (let i = 0; i < a.length; i++) expect(Array.from(b[i])).toEqual(Array.from(a[i]));
    const start = head.getLayer("head_output").getWeights()[0].dataSync();
    const tuned = straight.head.getLayer("head_output").getWeights()[0].dataSync();
    expect(computeValuesChecksum(tuned)).not.toBe(computeValuesChecksum(start));
  });

  it("with restoreBestWeights keeps the best validation epoch's weights, straight or resumed", async () => {
    const best = { ...options, restoreBestWeights: true };
    const dir = path.join(workDir, "best-straight");
    const a = await fineTuneTopBlocks(backbone, head, train, validation, { ...best, checkpointDir: dir });
    const aucs = a.history.map((m) => m.valAuc!);
    expect(a.keptEpoch).toBe(aucs.indexOf(Math.max(...aucs)) + 1);
    // The kept weights are that epoch's checkpoint, written before any later epoch trained.
    const atBest = await loadLayersModelFromDir(path.join(dir, checkpointFolderName(a.keptEpoch)));
    expect(weightsOf(a.head).map((w) => Array.from(w))).toEqual(weightsOf(atBest).map((w) => Array.from(w)));
    atBest.dispose();
    const interrupted = path.join(workDir, "best-interrupted");
    await fineTuneTopBlocks(backbone, head, train, validation, {
      ...best,
      checkpointDir: interrupted,
      onEpochEnd: (m) => {
        if (m.epoch === 2) throw new Error("killed after epoch 2");
      },
    }).catch(() => undefined);
    const b = await fineTuneTopBlocks(backbone, head, train, validation, {
      ...best,
      checkpointDir: interrupted,
      resume: true,
    });
    expect(b.keptEpoch).toBe(a.keptEpoch);
    expect(weightsOf(b.head).map((w) => Array.from(w))).toEqual(weightsOf(a.head).map((w) => Array.from(w)));
    expect(straight.keptEpoch).toBe(EPOCHS);
    a.head.dispose();
    b.head.dispose();
  });

  it("callbacks see only the resumed epochs, 0-based, with Keras log names", () => {
    expect(resumedEvents).toEqual(
      [1, 2].map((e) => `${e}:accuracy,auc,learning_rate,loss,val_accuracy,val_auc,val_loss:0.001`),
    );
  });

  it("writes one folder per epoch plus latest.json, and resuming a finished run trains nothing", async () => {
    const dir = path.join(workDir, "straight");
    expect(fs.readdirSync(dir).sort()).toEqual(["epoch-0001", "epoch-0002", "epoch-0003", "latest.json"]);
    expect(JSON.parse(fs.readFileSync(path.join(dir, "latest.json"), "utf8"))).toEqual({
      epoch: 3,
      folder: "epoch-0003",
    });
    const again = await fineTuneTopBlocks(backbone, head, train, validation, {
      ...options,
      checkpointDir: dir,
      resume: true,
    });
    expect(again.resumedFromEpoch).toBe(EPOCHS);
    expect(again.stepDurationsMs).toEqual([]);
    expect(Number.isNaN(again.imagesPerSecond)).toBe(true);
    const a = weightsOf(straight.head);
    weightsOf(again.head).forEach((w, i) => expect(Array.from(w)).toEqual(Array.from(a[i])));
    again.head.dispose();
  });

  it("refuses a checkpoint written with other options or another starting head, naming the field", async () => {
    const dir = path.join(workDir, "straight");
    await expect(
      fineTuneTopBlocks(backbone, head, train, validation, { ...options, seed: 10, checkpointDir: dir, resume: true }),
    ).rejects.toThrow(CheckpointError);
    await expect(
      fineTuneTopBlocks(backbone, head, train, validation, { ...options, seed: 10, checkpointDir: dir, resume: true }),
    ).rejects.toThrow(/checkpoint was written with seed 9, this run has 10/);
    // The same head with its output bias moved: another starting point than the checkpoint's.
    const original = head.getWeights().map((t) => t.clone());
    const shifted = tf.tidy(() => original.map((t, i) => (i === original.length - 1 ? t.add(0.5) : t.clone())));
    head.setWeights(shifted);
    try {
      await expect(
        fineTuneTopBlocks(backbone, head, train, validation, { ...options, checkpointDir: dir, resume: true }),
      ).rejects.toThrow(/checkpoint was written with initialWeightsChecksum -?\d+, this run has -?\d+/);
    } finally {
      head.setWeights(original);
      tf.dispose([...shifted, ...original]);
    }
  });

  it("leaks no tensors across straight, interrupted, resumed and refused runs", () => {
    straight.head.dispose();
    resumed.head.dispose();
    expect(tf.memory().numTensors).toBe(tensorsBefore);
  });
});
