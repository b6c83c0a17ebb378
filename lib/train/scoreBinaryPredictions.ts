import { computeRocAucExact } from "../util/rocAuc.js";

/**
 * Mean binary cross-entropy (probabilities clipped to [1e-7, 1 − 1e-7]), accuracy at 0.5 and
 * ROC AUC of predictions: the per-epoch numbers that training loops report.
 *
 * @example scoreBinaryPredictions(Int32Array.from([0, 1]), Float32Array.from([0.2, 0.9])) // { loss: 0.164…, accuracy: 1, auc: 1 }
 */
export function scoreBinaryPredictions(
  labels: ArrayLike<number>,
  probs: ArrayLike<number>,
  computeAuc: (labels: ArrayLike<number>, scores: ArrayLike<number>) => number = computeRocAucExact,
): { loss: number; accuracy: number; auc: number } {
  let loss = 0;
  let correct = 0;
  for (let i = 0; i < labels.length; i++) {
    const p = Math.min(Math.max(probs[i], 1e-7), 1 - 1e-7);
    loss -= labels[i] === 1 ? Math.log(p) : Math.log(1 - p);
    if ((probs[i] >= 0.5 ? 1 : 0) === labels[i]) correct++;
  }
  return { loss: loss / labels.length, accuracy: correct / labels.length, auc: computeAuc(labels, probs) };
}
