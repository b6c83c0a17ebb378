import * as tf from "@tensorflow/tfjs";
import { beforeAll, describe, expect, it } from "vitest";
import { selectBackend } from "../../lib/backend/selectBackend.js";
import { predictHeadProbabilities } from "../../lib/train/predictBatches.js";
import { trainHead } from "../../lib/train/trainHead.js";
import { TrainHeadError } from "../../lib/train/binaryLabels.js";
import { createRandom } from "../../lib/util/random.js";

/** Two Gaussian clouds: exactly `positives` of `n` rows shifted by `gap` along every axis. */
function makeClouds(
  n: number,
  positives: number,
  dim: number,
  gap: number,
  seed: number,
): { features: Float32Array; labels: number[] } {
  const rand = createRandom(seed);
  const normal = () => Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
  const labels = Array.from({ length: n }, (_, i) =>
    i % Math.floor(n / positives) === 0 && i / Math.floor(n / positives) < positives ? 1 : 0,
  );
  const features = new Float32Array(n * dim);
  for (let i = 0; i < n; i++)
    for (let j = 0; j < dim; j++) features[i * dim + j] = normal() + (labels[i] === 1 ? gap : 0);
  return { features, labels };
}

const mean = (values: ArrayLike<number>) => Array.from(values).reduce((a, b) => a + b, 0) / values.length;

describe('trainHead sampling: "balanced"', () => {
  beforeAll(async () => {
    await selectBackend();
  });

  it("learns an imbalanced (5 % malignant) separable set to high AUC, deterministically, without leaking tensors", async () => {
    const train = makeClouds(600, 30, 16, 0.7, 11);
    const val = makeClouds(400, 20, 16, 0.7, 12);
    expect(train.labels.filter((l) => l === 1)).toHaveLength(30);
    const options = {
      seed: 3,
      hiddenUnits: 0,
      epochs: 15,
      batchSize: 32,
      learningRate: 0.02,
      l2: 0,
      sampling: "balanced" as const,
      validation: { features: val.features, labels: val.labels },
    };
    const before = tf.memory().numTensors;
    const tensorsAtEpochEnd: number[] = [];
    const a = await trainHead(train.features, train.labels, {
      ...options,
      onEpochEnd: () => void tensorsAtEpochEnd.push(tf.memory().numTensors),
    });
    expect(new Set(tensorsAtEpochEnd.slice(1)).size).toBe(1);
    expect(a.history.at(-1)!.valAuc!).toBeGreaterThan(0.9);
    const b = await trainHead(train.features, train.labels, options);
    expect(b.history.map((h) => h.trainLoss)).toEqual(a.history.map((h) => h.trainLoss));
    expect(b.history.map((h) => h.valAuc)).toEqual(a.history.map((h) => h.valAuc));

    // Balanced batches are 50 % malignant, so the head's log-odds sit about log(0.95 / 0.05) ≈ 2.9
    // above those of plain shuffling at the 5 % base rate (a check that the option changes the batches).
    const shuffled = await trainHead(train.features, train.labels, { ...options, sampling: "shuffle" });
    const meanLogit = (probs: Float32Array) => mean(Array.from(probs, (p) => Math.log(p / (1 - p))));
    const shift =
      meanLogit(predictHeadProbabilities(a.model, val.features, 16)) -
      meanLogit(predictHeadProbabilities(shuffled.model, val.features, 16));
    expect(shift).toBeGreaterThan(1.5);
    expect(shift).toBeLessThan(4.5);
    for (const r of [a, b, shuffled]) r.model.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  it("keeps today's behaviour by default and rejects an unknown sampling mode", async () => {
    const train = makeClouds(120, 20, 4, 1, 5);
    const base = { seed: 1, hiddenUnits: 0, epochs: 2, batchSize: 16 };
    const byDefault = await trainHead(train.features, train.labels, base);
    const explicit = await trainHead(train.features, train.labels, { ...base, sampling: "shuffle" });
    expect(explicit.history.map((h) => h.trainLoss)).toEqual(byDefault.history.map((h) => h.trainLoss));
    byDefault.model.dispose();
    explicit.model.dispose();
    await expect(trainHead(train.features, train.labels, { ...base, sampling: "stratified" as never })).rejects.toThrow(
      TrainHeadError,
    );
    await expect(trainHead(train.features, train.labels, { ...base, sampling: "stratified" as never })).rejects.toThrow(
      /sampling: received "stratified"/,
    );
  });
});
