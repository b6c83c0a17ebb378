/**
 * Exact ROC AUC by the rank-sum (Mann–Whitney U) formula with midranks for ties: the chance a
 * random positive (label 1) scores above a random negative (label 0), ties counting ½, equal to
 * the trapezoid area under the ROC curve (scikit-learn's `roc_auc_score`). The one implementation
 * in the library: lib/train uses it for per-epoch AUC (early stopping on validation AUC) and
 * lib/evaluate's `computeRocAuc` checks its inputs and calls it. It lives in lib/util because the
 * training stage cannot import the later evaluate stage. No input checks (labels are taken as
 * 0/1, scores as finite); returns NaN when a class is absent.
 *
 * @example computeRocAucExact([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) // 0.75
 */
export function computeRocAucExact(labels: ArrayLike<number>, scores: ArrayLike<number>): number {
  const n = labels.length;
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => scores[a] - scores[b]);
  let positives = 0;
  let rankSumPositives = 0;
  for (let i = 0; i < n;) {
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
