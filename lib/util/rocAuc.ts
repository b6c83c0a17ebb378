/**
 * Exact ROC AUC as the Mann–Whitney U statistic (each positive against the negatives below it, ties ½): the chance a
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
  let positives = 0;
  for (let i = 0; i < labels.length; i++) if (labels[i] === 1) positives++;
  const negatives = labels.length - positives;
  if (positives === 0 || negatives === 0) return NaN;
  // Each class's scores sorted natively (a typed-array sort, no comparator: this runs inside the
  // bootstrap and every training epoch), then one merge: for each positive, the negatives below it
  // count 1 and the negatives equal to it ½.
  const positiveScores = new Float64Array(positives);
  const negativeScores = new Float64Array(negatives);
  for (let i = 0, ip = 0, ineg = 0; i < labels.length; i++) {
    if (labels[i] === 1) positiveScores[ip++] = scores[i];
    else negativeScores[ineg++] = scores[i];
  }
  positiveScores.sort();
  negativeScores.sort();
  let below = 0;
  let belowOrEqual = 0;
  let concordant = 0;
  for (const p of positiveScores) {
    while (below < negatives && negativeScores[below] < p) below++;
    if (belowOrEqual < below) belowOrEqual = below;
    while (belowOrEqual < negatives && negativeScores[belowOrEqual] === p) belowOrEqual++;
    concordant += below + 0.5 * (belowOrEqual - below);
  }
  return concordant / (positives * negatives);
}
