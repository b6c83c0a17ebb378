import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import * as tf from "@tensorflow/tfjs";
import { beforeAll, describe, expect, it } from "vitest";
import { selectBackend } from "../../lib/index.js";
import { computeRocAucExact } from "../../lib/util/rocAuc.js";
import { createTensorBoardCallback } from "../../lib/logging/tensorBoardCallback.js";
import { readLogDir } from "../../lib/logging/readLogDir.js";
import { formatEpochMetrics } from "../../lib/train/trainingLog.js";
import { predictHeadProbabilities } from "../../lib/train/predictBatches.js";
import { toBinaryLabels, TrainHeadError } from "../../lib/train/binaryLabels.js";
import { trainHead } from "../../lib/train/trainHead.js";
import { createRandom } from "../../lib/util/random.js";

/** Two Gaussian clouds in `dim` dimensions whose means differ by `gap` along every axis. */
function makeClouds(
  n: number,
  dim: number,
  positiveFraction: number,
  gap: number,
  seed: number,
): { features: Float32Array; labels: number[] } {
  const rand = createRandom(seed);
  const normal = () => Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
  const labels = Array.from({ length: n }, () => (rand() < positiveFraction ? 1 : 0));
  const features = new Float32Array(n * dim);
  for (let i = 0; i < n; i++)
    for (let j = 0; j < dim; j++) features[i * dim + j] = normal() + (labels[i] === 1 ? gap : 0);
  return { features, labels };
}

describe("trainHead", () => {
  beforeAll(async () => {
    await selectBackend();
  });

  it("learns separable synthetic features to high validation AUC, deterministically by seed, without leaking tensors", async () => {
    const train = makeClouds(400, 32, 0.25, 0.6, 1);
    const val = makeClouds(200, 32, 0.25, 0.6, 2);
    const before = tf.memory().numTensors;
    const epochsSeen: number[] = [];
    const options = {
      seed: 5,
      hiddenUnits: 16,
      dropoutRate: 0.2,
      l2: 1e-4,
      epochs: 8,
      batchSize: 32,
      learningRate: 0.01,
      classWeights: "balanced" as const,
      validation: { features: val.features, labels: val.labels },
    };
    const tensorsAtEpochEnd: number[] = [];
    const a = await trainHead(train.features, train.labels, {
      ...options,
      onEpochEnd: (m) => {
        epochsSeen.push(m.epoch);
        tensorsAtEpochEnd.push(tf.memory().numTensors);
      },
    });
    expect(epochsSeen).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    // Flat from epoch 2 on (epoch 1 creates the Adam moments once).
    expect(new Set(tensorsAtEpochEnd.slice(1)).size).toBe(1);
    const last = a.history.at(-1)!;
    expect(last.valAuc!).toBeGreaterThan(0.95);
    expect(last.trainAuc).toBeGreaterThan(0.95);
    expect(last.valAccuracy!).toBeGreaterThan(0.85);
    expect(a.history[0].trainLoss).toBeGreaterThan(last.trainLoss);
    // Output bias starts at log(pos / neg) of the training labels.
    const positives = train.labels.filter((l) => l === 1).length;
    expect(a.initialBias).toBeCloseTo(Math.log(positives / (400 - positives)), 12);
    const b = await trainHead(train.features, train.labels, options);
    expect(b.history.map((h) => h.valAuc)).toEqual(a.history.map((h) => h.valAuc));
    expect(b.history.map((h) => h.trainLoss)).toEqual(a.history.map((h) => h.trainLoss));
    const c = await trainHead(train.features, train.labels, { ...options, seed: 6 });
    expect(c.history.map((h) => h.trainLoss)).not.toEqual(a.history.map((h) => h.trainLoss));
    // Probabilities of the returned model agree with the AUC it reported.
    const probs = tf.tidy(() => (a.model.predict(tf.tensor2d(val.features, [200, 32])) as tf.Tensor).dataSync());
    expect(computeRocAucExact(val.labels, probs)).toBeCloseTo(last.valAuc!, 10);
    for (const r of [a, b, c]) r.model.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  it("starts from the prior: before any useful signal, mean probability ≈ positive rate", async () => {
    // Features carry no signal; with tiny learning rate the output stays at sigmoid(log(p/n)) = p/(p+n).
    const n = 300;
    const labels = Array.from({ length: n }, (_, i) => (i % 5 === 0 ? 1 : 0)); // 20 % positive
    const features = Float32Array.from({ length: n * 4 }, () => 0);
    const r = await trainHead(features, labels, { seed: 1, hiddenUnits: 0, epochs: 1, learningRate: 1e-9, l2: 0 });
    const probs = tf.tidy(() => (r.model.predict(tf.zeros([2, 4])) as tf.Tensor).dataSync());
    expect(probs[0]).toBeCloseTo(0.2, 5);
    r.model.dispose();
  });

  it("keeps the best epoch by validation AUC when asked", async () => {
    const train = makeClouds(200, 8, 0.3, 0.8, 11);
    const val = makeClouds(100, 8, 0.3, 0.8, 12);
    const r = await trainHead(train.features, train.labels, {
      seed: 9,
      hiddenUnits: 8,
      epochs: 6,
      learningRate: 0.05,
      validation: { features: val.features, labels: val.labels },
      restoreBestWeights: true,
    });
    const best = Math.max(...r.history.map((h) => h.valAuc!));
    expect(r.history[r.keptEpoch - 1].valAuc).toBe(best);
    const probs = tf.tidy(() => (r.model.predict(tf.tensor2d(val.features, [100, 8])) as tf.Tensor).dataSync());
    expect(computeRocAucExact(val.labels, probs)).toBeCloseTo(best, 10);
    r.model.dispose();
  });

  it("rejects labels and shapes that do not fit, naming the field and value", async () => {
    expect(Array.from(toBinaryLabels(["benign", "malignant", 1, 0] as never))).toEqual([0, 1, 1, 0]);
    expect(() => toBinaryLabels([0, 2])).toThrow(/labels\[1\]: received 2, expected 0, 1, "benign" or "malignant"/);
    await expect(trainHead(new Float32Array(5), [0, 1], { seed: 1 })).rejects.toThrow(/received 5 values for 2 labels/);
    await expect(trainHead(new Float32Array(4), [1, 1], { seed: 1 })).rejects.toThrow(TrainHeadError);
    await expect(
      trainHead(new Float32Array(4), [0, 1], {
        seed: 1,
        validation: { features: new Float32Array(3), labels: [0, 1] },
      }),
    ).rejects.toThrow(/validation.features: received 3 values, expected 2 labels × featureDim 2/);
  });

  it("checkpoints every epoch and resumes to exactly the uninterrupted result", async () => {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "ml-ckpt-"));
    const train = makeClouds(160, 12, 0.3, 0.5, 31);
    const val = makeClouds(80, 12, 0.3, 0.5, 32);
    const options = {
      seed: 4,
      hiddenUnits: 8,
      dropoutRate: 0.25,
      epochs: 6,
      batchSize: 16,
      learningRate: 0.02,
      restoreBestWeights: true,
      validation: { features: val.features, labels: val.labels },
    };
    const before = tf.memory().numTensors;
    const full = await trainHead(train.features, train.labels, options);
    const dir = path.join(tmp, "ckpt");
    const firstHalf = await trainHead(train.features, train.labels, { ...options, epochs: 3, checkpointDir: dir });
    expect(fs.readdirSync(dir).sort()).toEqual(["epoch-0001", "epoch-0002", "epoch-0003", "latest.json"]);
    expect(firstHalf.resumedFromEpoch).toBe(0);
    const resumed = await trainHead(train.features, train.labels, { ...options, checkpointDir: dir, resume: true });
    expect(resumed.resumedFromEpoch).toBe(3);
    expect(resumed.history.map((h) => [h.epoch, h.trainLoss, h.valAuc])).toEqual(
      full.history.map((h) => [h.epoch, h.trainLoss, h.valAuc]),
    );
    expect(resumed.keptEpoch).toBe(full.keptEpoch);
    const wa = full.model.getWeights().map((t) => Array.from(t.dataSync()));
    const wb = resumed.model.getWeights().map((t) => Array.from(t.dataSync()));
    expect(wb).toEqual(wa);
    // Another seed must not silently continue this checkpoint.
    await expect(
      trainHead(train.features, train.labels, { ...options, seed: 5, checkpointDir: dir, resume: true }),
    ).rejects.toThrow(/checkpoint was written with seed 4, this run has 5/);
    for (const r of [full, firstHalf, resumed]) r.model.dispose();
    expect(tf.memory().numTensors).toBe(before);
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  it("drives tf.Callback-style callbacks with Keras log names (TensorBoard reads them back)", async () => {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "ml-cb-"));
    const train = makeClouds(120, 6, 0.4, 1, 41);
    const val = makeClouds(60, 6, 0.4, 1, 42);
    const events: string[] = [];
    let seenModel: tf.LayersModel | undefined;
    const recorder = {
      setModel: (m: tf.LayersModel) => void (seenModel = m),
      onTrainBegin: () => void events.push("begin"),
      onEpochBegin: (e: number) => void events.push(`epoch-begin ${e}`),
      onEpochEnd: (e: number, logs?: Record<string, number>) =>
        void events.push(
          `epoch-end ${e} ${Object.keys(logs ?? {})
            .sort()
            .join(",")}`,
        ),
      onTrainEnd: () => void events.push("end"),
    };
    const tensorboard = createTensorBoardCallback(path.join(tmp, "logs"));
    const r = await trainHead(train.features, train.labels, {
      seed: 2,
      hiddenUnits: 4,
      epochs: 2,
      learningRate: 0.01,
      validation: { features: val.features, labels: val.labels },
      callbacks: [recorder, tensorboard],
    });
    const keys = "accuracy,auc,learning_rate,loss,val_accuracy,val_auc,val_loss";
    expect(events).toEqual([
      "begin",
      "epoch-begin 0",
      `epoch-end 0 ${keys}`,
      "epoch-begin 1",
      `epoch-end 1 ${keys}`,
      "end",
    ]);
    expect(seenModel).toBe(r.model);
    const logs = readLogDir(path.join(tmp, "logs"));
    const trainRun = logs.runs.find((run) => run.name === "train")!;
    const valRun = logs.runs.find((run) => run.name === "validation")!;
    expect(trainRun.scalars.epoch_loss.points.map((p) => p.step)).toEqual([0, 1]);
    expect(trainRun.scalars.epoch_loss.points[1].value).toBeCloseTo(r.history[1].trainLoss, 6);
    expect(valRun.scalars.epoch_auc.points[1].value).toBeCloseTo(r.history[1].valAuc!, 6);
    // formatEpochMetrics and predictHeadProbabilities agree with the history and the model.
    expect(
      formatEpochMetrics({
        epoch: 3,
        trainLoss: 0.51234,
        trainAccuracy: 0.75,
        trainAuc: 0.8,
        valLoss: 0.6,
        valAccuracy: 0.7,
        valAuc: 0.81234,
        elapsedMs: 1234,
      }),
    ).toBe("epoch 3: loss 0.5123 acc 0.750 auc 0.800 | val loss 0.6000 acc 0.700 auc 0.812 (1.2 s)");
    const probs = predictHeadProbabilities(r.model, val.features, 6, 7);
    expect(computeRocAucExact(val.labels, probs)).toBeCloseTo(r.history[1].valAuc!, 10);
    expect(() => predictHeadProbabilities(r.model, new Float32Array(5), 6)).toThrow(
      /received 5 values, expected a multiple of featureDim 6/,
    );
    r.model.dispose();
    fs.rmSync(tmp, { recursive: true, force: true });
  });
});
