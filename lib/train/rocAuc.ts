/**
 * Exact ROC AUC by the rank-sum (Mann–Whitney U) formula with midranks for ties: the chance a
 * random positive scores above a random negative, ties counting ½. Private to lib/train (the
 * evaluate stage owns the public metric); returns NaN when a class is absent.
 *
 * @example computeRocAucExact([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) // 0.75
 */
export function computeRocAucExact(labels: ArrayLike<number>, scores: ArrayLike<number>): number {
  const n = labels.length;
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => scores[a] - scores[b]);
  let positives = 0;
  let rankSumPositives = 0;
  for (let i = 0; i < n; ) {
    let j = i;
    while (j + 1 < n && scores[order[j + 1]] === scores[order[i]]) j++;
    const midrank = (i + j) / 2 + 1;
    for (let k = i; k <= j; k++) {
      if (labels[order[k]] === 1) {
        positives++;
        rankSumPositives += midrank;
      }
    }
    i = j + 1;
  }
  const negatives = n - positives;
  if (positives === 0 || negatives === 0) return NaN;
  return (rankSumPositives - (positives * (positives + 1)) / 2) / (positives * negatives);
}

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
