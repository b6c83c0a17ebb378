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
