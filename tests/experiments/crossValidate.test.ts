import * as tf from "@tensorflow/tfjs";
import { describe, expect, it } from "vitest";
import { computeRocAuc, createRandom, predictHeadProbabilities, selectBackend } from "../../lib/index.js";
import { crossValidateHead, CrossValidationError, type FoldRows, type HeadConfig } from "../../lib/experiments/crossValidate.js";

// 60 rows, 8 features: label 1 shifts feature 0, so a head learns it; sources alternate.
function makeRows() {
  const rand = createRandom(5);
  const labels = Array.from({ length: 60 }, (_, i) => (i % 3 === 0 ? 1 : 0));
  const features = new Float32Array(60 * 8).map((_, k) => rand() + (k % 8 === 0 && labels[Math.floor(k / 8)] === 1 ? 1.5 : 0));
  const sources = labels.map((_, i) => (i % 2 === 0 ? "even" : "odd"));
  return { features, featureDim: 8, labels, sources };
}
const folds: FoldRows[] = [
  { name: "a", trainRows: Array.from({ length: 30 }, (_, i) => i + 30), validationRows: Array.from({ length: 30 }, (_, i) => i) },
  { name: "b", trainRows: Array.from({ length: 30 }, (_, i) => i), validationRows: Array.from({ length: 30 }, (_, i) => i + 30) },
];
const head: HeadConfig = { hiddenUnits: 0, dropoutRate: 0, l2: 0, epochs: 15, batchSize: 16, learningRate: 0.05 };

describe("crossValidateHead", () => {
  it("scores each fold, fills out-of-fold probabilities, and leaks no tensors", async () => {
    await selectBackend();
    const rows = makeRows();
    const before = tf.memory().numTensors;
    const seen: number[] = [];
    const cv = await crossValidateHead(rows, folds, {
      head,
      seed: 1,
      scoreFold: async (fold, _i, model) => {
        const valFeatures = new Float32Array(fold.validationRows.flatMap((r) => Array.from(rows.features.subarray(r * 8, r * 8 + 8))));
        const probs = predictHeadProbabilities(model, valFeatures, 8);
        seen.push(probs.length);
        return probs;
      },
    });
    expect(tf.memory().numTensors).toBe(before);
    expect(seen).toEqual([30, 30]);
    expect(cv.outOfFoldProbs.every((p) => p >= 0 && p <= 1)).toBe(true);
    for (const [i, fold] of folds.entries()) {
      const y = fold.validationRows.map((r) => rows.labels[r]);
      const p = fold.validationRows.map((r) => cv.outOfFoldProbs[r]);
      expect(cv.folds[i].rocAuc).toBeCloseTo(computeRocAuc(y, p), 12);
      expect(cv.folds[i].rocAuc).toBeGreaterThan(0.8); // feature 0 separates the classes
      expect(cv.folds[i].validationPositives).toBe(10);
    }
    expect(cv.spread.rocAuc.mean).toBeCloseTo((cv.folds[0].rocAuc + cv.folds[1].rocAuc) / 2, 12);
    // The default path (head on the same features) gives the same probabilities as scoreFold did.
    const plain = await crossValidateHead(rows, folds, { head, seed: 1 });
    expect(Array.from(plain.outOfFoldProbs)).toEqual(Array.from(cv.outOfFoldProbs));
    // Averaging over an identical extra view leaves the probabilities unchanged (up to float rounding).
    const tta = await crossValidateHead({ ...rows, extraViews: [rows.features.slice()] }, folds, { head, seed: 1 });
    tta.outOfFoldProbs.forEach((p, i) => expect(p).toBeCloseTo(plain.outOfFoldProbs[i], 6));
  });

  it("rejects rows outside the matrix and mis-sized views", async () => {
    const rows = makeRows();
    await expect(crossValidateHead(rows, [{ name: "x", trainRows: [0, 1], validationRows: [60] }], { head, seed: 1 })).rejects.toThrow(/fold x: row 60 is outside 0..59/);
    await expect(crossValidateHead({ ...rows, extraViews: [new Float32Array(8)] }, folds, { head, seed: 1 })).rejects.toThrow(CrossValidationError);
  });
});
