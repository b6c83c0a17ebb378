import * as tf from "@tensorflow/tfjs";
import { computeBalancedClassWeightsFromCounts } from "../data/imbalance.js";

/**
 * Per-example binary cross-entropy (natural log) of labels y ∈ {0, 1} and probabilities p,
 * with p clipped to [1e-7, 1 − 1e-7].
 *
 * @example binaryCrossEntropy(tf.tensor1d([1]), tf.tensor1d([0.5])) // [0.693…]
 */
export function binaryCrossEntropy(y: tf.Tensor1D, p: tf.Tensor1D): tf.Tensor1D {
  const eps = 1e-7;
  const pc = p.clipByValue(eps, 1 - eps);
  return tf.neg(tf.add(tf.mul(y, tf.log(pc)), tf.mul(tf.sub(1, y), tf.log(tf.sub(1, pc))))) as tf.Tensor1D;
}

/**
 * Per-example categorical cross-entropy (natural log) of one-hot targets [n, K] and logits
 * [n, K]: −Σ_k y_k · log softmax(logits)_k. The loss of a diagnosis-target head, in trainHead
 * and fineTuneTopBlocks alike.
 *
 * @example categoricalCrossEntropyFromLogits(tf.tensor2d([[0, 1]]), tf.tensor2d([[0, 0]])) // [0.693…]
 */
export function categoricalCrossEntropyFromLogits(oneHot: tf.Tensor2D, logits: tf.Tensor2D): tf.Tensor1D {
  // log-softmax of the logits: exact where a softmax then log would round to -inf.
  return tf.neg(tf.sum(tf.mul(oneHot, tf.logSoftmax(logits)), 1)) as tf.Tensor1D;
}

/**
 * Σ w² over all elements of `weights` (a scalar), with its gradient 2w written out: tfjs's own
 * gradient of tf.sum builds a tensor of ones of the weights' shape in JavaScript at every step
 * (163,840 values for a 1280×128 kernel), a quarter of a small head's training time on wasm.
 * The L2 penalty of trainHead.
 *
 * @example sumOfSquares(tf.tensor1d([1, 2])) // 5; gradient [2, 4]
 */
export function sumOfSquares(weights: tf.Tensor): tf.Scalar {
  const withGradient = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [w, save] = args as [tf.Tensor, tf.GradSaveFunc];
    save([w]);
    return {
      value: tf.sum(tf.square(w)) as tf.Scalar,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => tf.mul(dy, tf.mul(saved[0], 2)),
    };
  });
  return withGradient(weights) as tf.Scalar;
}

/**
 * The `classWeights` option of trainHead and fineTuneTopBlocks as [benign, malignant] weights:
 * "balanced" → n / (2·n_class) (lib/data's computeBalancedClassWeightsFromCounts), a pair as
 * given, absent → [1, 1].
 *
 * @example resolveClassWeights("balanced", 6, 2) // [0.667, 2]
 */
export function resolveClassWeights(
  option: [number, number] | "balanced" | undefined,
  benign: number,
  malignant: number,
): [number, number] {
  if (option !== "balanced") return option ?? [1, 1];
  const [w0, w1] = computeBalancedClassWeightsFromCounts([benign, malignant]);
  return [w0, w1];
}

/**
 * Loss weight of each diagnosis class of a diagnosis-target head: with `classWeights:
 * "balanced"`, n / (K·n_k) over the K classes with rows; otherwise the weight of the class's
 * label (`classWeights` [benign, malignant], by `malignantMask`).
 *
 * @example resolveDiagnosisWeights("balanced", [1, 1, 2], Float32Array.from([1, 1, 0]), [1, 1]) // [1.333, 1.333, 0.667]
 */
export function resolveDiagnosisWeights(
  option: [number, number] | "balanced" | undefined,
  counts: readonly number[],
  malignantMask: ArrayLike<number>,
  classWeights: [number, number],
): number[] {
  if (option === "balanced") return computeBalancedClassWeightsFromCounts(counts);
  return counts.map((_, k) => classWeights[malignantMask[k]]);
}
