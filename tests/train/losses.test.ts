import * as tf from "@tensorflow/tfjs";
import { describe, expect, it } from "vitest";
import { computeBalancedClassWeightsFromCounts, computeOutputBiasFromCounts } from "../../lib/data/imbalance.js";
import {
  binaryCrossEntropy,
  categoricalCrossEntropyFromLogits,
  resolveClassWeights,
  resolveDiagnosisWeights,
  sumOfSquares,
} from "../../lib/train/losses.js";
import { predictRowsInBatches } from "../../lib/train/predictBatches.js";

describe("training losses and class weights (hand-computed)", () => {
  it("sumOfSquares: Σw² and gradient 2w, as tfjs's own gradient of tf.sum(tf.square(w)), without leaking", () => {
    const before = tf.memory().numTensors;
    const w = tf.tensor2d([
      [1, -2],
      [0.5, 3],
    ]);
    const value = tf.tidy(() => sumOfSquares(w).arraySync());
    expect(value).toBeCloseTo(1 + 4 + 0.25 + 9, 6);
    const ours = tf.tidy(() =>
      tf
        .grad((x: tf.Tensor) => tf.mul(sumOfSquares(x), 3))(w)
        .arraySync(),
    );
    const tfjs = tf.tidy(() =>
      tf
        .grad((x: tf.Tensor) => tf.mul(tf.sum(tf.square(x)), 3))(w)
        .arraySync(),
    );
    expect(ours).toEqual([
      [6, -12],
      [3, 18],
    ]);
    expect(ours).toEqual(tfjs);
    w.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  it("categorical cross-entropy from logits: −log softmax of the target column", () => {
    const ce = tf.tidy(() =>
      categoricalCrossEntropyFromLogits(
        tf.tensor2d([
          [0, 1, 0],
          [0, 0, 1],
        ]),
        tf.tensor2d([
          [0, 0, 0],
          [Math.log(2), 0, Math.log(2)],
        ]),
      ).arraySync(),
    );
    // Row 0: uniform over 3 → log 3. Row 1: softmax (2, 1, 2)/5 → −log(2/5).
    expect(ce[0]).toBeCloseTo(Math.log(3), 6);
    expect(ce[1]).toBeCloseTo(-Math.log(2 / 5), 6);
    const bce = tf.tidy(() => binaryCrossEntropy(tf.tensor1d([1, 0]), tf.tensor1d([0.5, 0.25])).arraySync());
    expect(bce[0]).toBeCloseTo(Math.log(2), 6);
    expect(bce[1]).toBeCloseTo(-Math.log(0.75), 6);
  });

  it("balanced weights n / (K·n_k), bias log(pos/neg), and the options that use them", () => {
    expect(computeBalancedClassWeightsFromCounts([6, 2])).toEqual([8 / 12, 2]);
    // An absent class gets 0 and does not count in K: n = 4, K = 2.
    expect(computeBalancedClassWeightsFromCounts([1, 0, 3])).toEqual([2, 0, 4 / 6]);
    expect(computeOutputBiasFromCounts(800, 200)).toBeCloseTo(Math.log(0.25), 12);
    expect(resolveClassWeights("balanced", 6, 2)).toEqual([8 / 12, 2]);
    expect(resolveClassWeights(undefined, 6, 2)).toEqual([1, 1]);
    expect(resolveClassWeights([1, 3], 6, 2)).toEqual([1, 3]);
    expect(resolveDiagnosisWeights("balanced", [1, 1, 2], Float32Array.from([1, 1, 0]), [1, 1])).toEqual([
      4 / 3,
      4 / 3,
      4 / 6,
    ]);
    expect(resolveDiagnosisWeights([1, 5], [1, 1, 2], Float32Array.from([1, 1, 0]), [1, 5])).toEqual([5, 5, 1]);
  });

  it("predictRowsInBatches gives the same rows whatever the batch size, and leaks nothing", () => {
    const values = Float32Array.from({ length: 7 * 3 }, (_, i) => i);
    const before = tf.memory().numTensors;
    // Per row: [sum, max] of its 3 values.
    const run = (x: tf.Tensor) => tf.stack([tf.sum(x, 1), tf.max(x, 1)], 1);
    const one = predictRowsInBatches(values, [3], 1, 2, run);
    expect(Array.from(one.slice(0, 4))).toEqual([3, 2, 12, 5]);
    expect(Array.from(predictRowsInBatches(values, [3], 3, 2, run))).toEqual(Array.from(one));
    expect(tf.memory().numTensors).toBe(before);
  });
});
