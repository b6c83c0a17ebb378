import { MelanomaLabError } from "../util/errors.js";
import { computeRocAucExact } from "../util/rocAuc.js";

/**
 * Binary labels: 1 = malignant (positive class), 0 = benign. Plain arrays and typed arrays
 * (Float32Array, Uint8Array, …) are all accepted.
 */
export type BinaryLabels = ArrayLike<number>;

/** Predicted probability of malignant, one per label (any finite score works for ROC/PR/AUC). */
export type ProbabilityScores = ArrayLike<number>;

/** Thrown when metric input is malformed: length mismatch, a label not 0/1, a NaN score, an empty array, an out-of-range option. */
export class MetricInputError extends MelanomaLabError {}

/**
 * Thrown when a metric needs both classes (ROC AUC, sensitivity, specificity…) but the labels
 * hold only one, e.g. a subgroup with no melanoma.
 */
export class SingleClassError extends MetricInputError {}

/** Thrown when no score threshold reaches the requested sensitivity or specificity. */
export class TargetNotReachableError extends MelanomaLabError {}

/** Counts of each class after checking the inputs. */
export interface ClassCounts {
  positives: number;
  negatives: number;
}

/**
 * Checks labels and scores and counts each class. Throws {@link MetricInputError} on a length
 * mismatch, an empty input, a label other than 0/1, or a non-finite score (naming the index and
 * value), and {@link SingleClassError} when `requireBothClasses` is set and a class is missing.
 * `requireProbabilities` also demands every score lie in [0, 1].
 *
 * @example const { positives, negatives } = validateBinaryInputs([0, 1, 1], [0.2, 0.7, 0.9], { requireBothClasses: true, metricName: "ROC AUC" });
 */
export function validateBinaryInputs(
  labels: BinaryLabels,
  probs: ProbabilityScores,
  options: { requireBothClasses?: boolean; requireProbabilities?: boolean; metricName?: string } = {},
): ClassCounts {
  const metricName = options.metricName ?? "metric";
  if (labels.length !== probs.length) {
    throw new MetricInputError(
      `${metricName}: labels has ${labels.length} entries but probs has ${probs.length}; expected one probability per label`,
    );
  }
  if (labels.length === 0) {
    throw new MetricInputError(
      `${metricName}: labels and probs are empty; expected at least one example of each class`,
    );
  }
  let positives = 0;
  for (let i = 0; i < labels.length; i++) {
    const y = labels[i];
    if (y === 1) positives++;
    else if (y !== 0) {
      throw new MetricInputError(`${metricName}: labels[${i}] is ${String(y)}; expected 0 (benign) or 1 (malignant)`);
    }
    const p = probs[i];
    if (typeof p !== "number" || !Number.isFinite(p)) {
      throw new MetricInputError(
        `${metricName}: probs[${i}] is ${String(p)}; expected a finite probability of malignant`,
      );
    }
    if (options.requireProbabilities && (p < 0 || p > 1)) {
      throw new MetricInputError(`${metricName}: probs[${i}] is ${p}; expected a probability between 0 and 1`);
    }
  }
  const negatives = labels.length - positives;
  if (options.requireBothClasses && (positives === 0 || negatives === 0)) {
    const only = positives === 0 ? "benign (0)" : "malignant (1)";
    throw new SingleClassError(
      `${metricName}: all ${labels.length} labels are ${only}; expected at least one benign (0) and one malignant (1) example`,
    );
  }
  return { positives, negatives };
}

function checkFraction(value: number, name: string, allowZero = true): void {
  if (!(typeof value === "number" && Number.isFinite(value) && value <= 1 && (allowZero ? value >= 0 : value > 0))) {
    throw new MetricInputError(`${name} is ${String(value)}; expected a number in ${allowZero ? "[0, 1]" : "(0, 1]"}`);
  }
}

/**
 * Cumulative true- and false-positive counts at each distinct score, highest score first: at
 * `thresholdsProb[k]` everything with prob >= that value is called malignant. Ties share one
 * point, as in scikit-learn's `_binary_clf_curve`.
 */
interface CumulativeCounts {
  thresholdsProb: number[];
  truePositives: number[];
  falsePositives: number[];
  positives: number;
  negatives: number;
}

function computeCumulativeCounts(
  labels: BinaryLabels,
  probs: ProbabilityScores,
  counts: ClassCounts,
): CumulativeCounts {
  // Each class's scores sorted natively (fast typed-array sort), then merged from the top:
  // much faster than an index sort with a comparator, which matters inside the bootstrap.
  const positiveScores = new Float64Array(counts.positives);
  const negativeScores = new Float64Array(counts.negatives);
  let ip = 0;
  let ineg = 0;
  for (let i = 0; i < labels.length; i++) {
    if (labels[i] === 1) positiveScores[ip++] = probs[i];
    else negativeScores[ineg++] = probs[i];
  }
  positiveScores.sort();
  negativeScores.sort();
  const thresholdsProb: number[] = [];
  const truePositives: number[] = [];
  const falsePositives: number[] = [];
  let p = positiveScores.length - 1;
  let q = negativeScores.length - 1;
  let tp = 0;
  let fp = 0;
  while (p >= 0 || q >= 0) {
    const threshold = Math.max(p >= 0 ? positiveScores[p] : -Infinity, q >= 0 ? negativeScores[q] : -Infinity);
    while (p >= 0 && positiveScores[p] === threshold) {
      tp++;
      p--;
    }
    while (q >= 0 && negativeScores[q] === threshold) {
      fp++;
      q--;
    }
    thresholdsProb.push(threshold);
    truePositives.push(tp);
    falsePositives.push(fp);
  }
  return { thresholdsProb, truePositives, falsePositives, ...counts };
}

/**
 * A ROC curve, one point per distinct score plus a first point (0, 0) whose threshold is
 * `Infinity` (nothing called malignant). Threshold descending, FPR and TPR ascending.
 */
export interface RocCurve {
  falsePositiveRate: number[];
  truePositiveRate: number[];
  /** Probability thresholds (prob >= threshold → malignant), descending. */
  thresholdsProb: number[];
  positives: number;
  negatives: number;
}

/**
 * ROC curve over every distinct score (scikit-learn's `roc_curve(..., drop_intermediate=False)`,
 * except the first threshold is `Infinity`). Needs both classes.
 *
 * @example const roc = computeRocCurve([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]);
 * // roc.falsePositiveRate = [0, 0, 0.5, 0.5, 1], roc.truePositiveRate = [0, 0.5, 0.5, 1, 1]
 */
export function computeRocCurve(labels: BinaryLabels, probs: ProbabilityScores): RocCurve {
  const counts = validateBinaryInputs(labels, probs, { requireBothClasses: true, metricName: "ROC curve" });
  const c = computeCumulativeCounts(labels, probs, counts);
  return {
    falsePositiveRate: [0, ...c.falsePositives.map((f) => f / c.negatives)],
    truePositiveRate: [0, ...c.truePositives.map((t) => t / c.positives)],
    thresholdsProb: [Infinity, ...c.thresholdsProb],
    positives: c.positives,
    negatives: c.negatives,
  };
}

function integrateTrapezoid(x: readonly number[], y: readonly number[]): number {
  let area = 0;
  for (let k = 1; k < x.length; k++) area += ((x[k] - x[k - 1]) * (y[k] + y[k - 1])) / 2;
  return area;
}

/**
 * Area under the ROC curve (0..1), tied scores counting half, exactly like scikit-learn's
 * `roc_auc_score` (the trapezoid area of {@link computeRocCurve}). Checks its inputs as the other
 * metrics do, then computes it with the library's one AUC implementation (lib/util's rank-sum
 * `computeRocAucExact`, shared with training). Needs both classes ({@link SingleClassError}).
 *
 * @example computeRocAuc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) // 0.75
 */
export function computeRocAuc(labels: BinaryLabels, probs: ProbabilityScores): number {
  validateBinaryInputs(labels, probs, { requireBothClasses: true, metricName: "ROC AUC" });
  return computeRocAucExact(labels, probs);
}

/**
 * Partial AUC above a minimum TPR, the ISIC 2024 challenge metric: the area of the ROC region
 * with TPR in [minTpr, 1] (range 0..1-minTpr, so 0..0.2 for the default 0.8). Computed as the
 * challenge does: flip labels and scores, take the unstandardised pAUC up to FPR = 1-minTpr
 * with linear interpolation at the edge. A random model scores (1-minTpr)²/2 (0.02).
 *
 * @example computePartialAucAboveTpr(labels, probs) // 0.2 for a perfect model
 */
export function computePartialAucAboveTpr(labels: BinaryLabels, probs: ProbabilityScores, minTpr = 0.8): number {
  if (!(Number.isFinite(minTpr) && minTpr >= 0 && minTpr < 1)) {
    throw new MetricInputError(`partial AUC: minTpr is ${minTpr}; expected a number in [0, 1)`);
  }
  const roc = computeRocCurve(labels, probs);
  // Reflected curve (x = 1 - TPR, y = 1 - FPR), walked from (0, 0) to (1, 1).
  const x: number[] = [];
  const y: number[] = [];
  for (let k = roc.truePositiveRate.length - 1; k >= 0; k--) {
    x.push(1 - roc.truePositiveRate[k]);
    y.push(1 - roc.falsePositiveRate[k]);
  }
  const maxX = 1 - minTpr;
  let stop = 0;
  while (stop < x.length && x[stop] <= maxX) stop++;
  const xs = x.slice(0, stop);
  const ys = y.slice(0, stop);
  if (stop < x.length) {
    const t = (maxX - x[stop - 1]) / (x[stop] - x[stop - 1]);
    xs.push(maxX);
    ys.push(y[stop - 1] + t * (y[stop] - y[stop - 1]));
  }
  return integrateTrapezoid(xs, ys);
}

/**
 * Precision–recall curve, one point per distinct score, threshold descending (recall
 * ascending), starting at (recall 0, precision 1) with threshold `Infinity`. The same points as
 * scikit-learn's `precision_recall_curve`, in reverse order. Needs at least one malignant label.
 */
export interface PrecisionRecallCurve {
  precision: number[];
  recall: number[];
  thresholdsProb: number[];
  positives: number;
  negatives: number;
}

/**
 * Precision–recall curve (see {@link PrecisionRecallCurve}).
 *
 * @example computePrecisionRecallCurve([0, 1, 1], [0.3, 0.6, 0.9]).precision // [1, 1, 1, 0.6667]
 */
export function computePrecisionRecallCurve(labels: BinaryLabels, probs: ProbabilityScores): PrecisionRecallCurve {
  const counts = validateBinaryInputs(labels, probs, { metricName: "precision-recall curve" });
  if (counts.positives === 0) {
    throw new SingleClassError(
      `precision-recall curve: all ${labels.length} labels are benign (0); expected at least one malignant (1) example`,
    );
  }
  const c = computeCumulativeCounts(labels, probs, counts);
  return {
    precision: [1, ...c.truePositives.map((t, k) => t / (t + c.falsePositives[k]))],
    recall: [0, ...c.truePositives.map((t) => t / c.positives)],
    thresholdsProb: [Infinity, ...c.thresholdsProb],
    positives: c.positives,
    negatives: c.negatives,
  };
}

/**
 * Average precision as scikit-learn defines it: Σ (Rₙ − Rₙ₋₁)·Pₙ over distinct thresholds (a
 * step function, no interpolation). Equals the prevalence for a random model, 1 for a perfect one.
 *
 * @example computeAveragePrecision([0, 1, 1], [0.3, 0.6, 0.9]) // 1
 */
export function computeAveragePrecision(labels: BinaryLabels, probs: ProbabilityScores): number {
  const pr = computePrecisionRecallCurve(labels, probs);
  let ap = 0;
  for (let k = 1; k < pr.recall.length; k++) ap += (pr.recall[k] - pr.recall[k - 1]) * pr.precision[k];
  return ap;
}

/**
 * A 2×2 confusion matrix at one threshold. `matrix` is laid out like scikit-learn's
 * `confusion_matrix(labels=[0, 1])`: rows = true class, columns = predicted class, index 0 =
 * benign, 1 = malignant, i.e. [[tn, fp], [fn, tp]].
 */
export interface ConfusionMatrix {
  thresholdProb: number;
  truePositives: number;
  falsePositives: number;
  trueNegatives: number;
  falseNegatives: number;
  matrix: [[number, number], [number, number]];
}

/**
 * Confusion matrix when prob >= `thresholdProb` means malignant. Works with one class present.
 *
 * @example computeConfusionMatrix([0, 1, 1, 0], [0.2, 0.7, 0.4, 0.6], 0.5).matrix // [[1, 1], [1, 1]]
 */
export function computeConfusionMatrix(
  labels: BinaryLabels,
  probs: ProbabilityScores,
  thresholdProb: number,
): ConfusionMatrix {
  validateBinaryInputs(labels, probs, { metricName: "confusion matrix" });
  if (typeof thresholdProb !== "number" || Number.isNaN(thresholdProb)) {
    throw new MetricInputError(
      `confusion matrix: thresholdProb is ${String(thresholdProb)}; expected a number such as 0.5`,
    );
  }
  let tp = 0;
  let fp = 0;
  let tn = 0;
  let fn = 0;
  for (let i = 0; i < labels.length; i++) {
    const predictedMalignant = probs[i] >= thresholdProb;
    if (labels[i] === 1) {
      if (predictedMalignant) tp++;
      else fn++;
    } else if (predictedMalignant) fp++;
    else tn++;
  }
  return {
    thresholdProb,
    truePositives: tp,
    falsePositives: fp,
    trueNegatives: tn,
    falseNegatives: fn,
    matrix: [
      [tn, fp],
      [fn, tp],
    ],
  };
}

/**
 * Everything that follows from a confusion matrix. Ratios whose denominator is 0 (PPV when
 * nothing is called malignant, NPV when everything is) are `NaN`, never a made-up 0 or 1.
 */
export interface ThresholdMetrics extends ConfusionMatrix {
  /** TP / (TP + FN), recall of malignant. */
  sensitivity: number;
  /** TN / (TN + FP). */
  specificity: number;
  /** Positive predictive value (precision), TP / (TP + FP); NaN when nothing is called malignant. */
  ppv: number;
  /** Negative predictive value, TN / (TN + FN); NaN when everything is called malignant. */
  npv: number;
  /** 2TP / (2TP + FP + FN). */
  f1: number;
  /** (sensitivity + specificity) / 2. */
  balancedAccuracy: number;
  /** (TP + TN) / n. */
  accuracy: number;
  /** Youden's J = sensitivity + specificity − 1. */
  youdenJ: number;
}

/**
 * Ratios from confusion counts; NaN for 0/0 (used directly by subgroups, which may hold one class).
 *
 * @example deriveThresholdMetrics(computeConfusionMatrix(labels, probs, 0.5)).npv
 */
export function deriveThresholdMetrics(cm: ConfusionMatrix): ThresholdMetrics {
  const { truePositives: tp, falsePositives: fp, trueNegatives: tn, falseNegatives: fn } = cm;
  const ratio = (a: number, b: number) => (b === 0 ? NaN : a / b);
  const sensitivity = ratio(tp, tp + fn);
  const specificity = ratio(tn, tn + fp);
  return {
    ...cm,
    sensitivity,
    specificity,
    ppv: ratio(tp, tp + fp),
    npv: ratio(tn, tn + fn),
    f1: ratio(2 * tp, 2 * tp + fp + fn),
    balancedAccuracy: (sensitivity + specificity) / 2,
    accuracy: ratio(tp + tn, tp + tn + fp + fn),
    youdenJ: sensitivity + specificity - 1,
  };
}

/**
 * Sensitivity, specificity, PPV, NPV, F1, balanced accuracy and Youden's J when prob >=
 * `thresholdProb` means malignant. Needs both classes ({@link SingleClassError}).
 *
 * @example const m = computeMetricsAtThreshold(labels, probs, 0.5); m.sensitivity; m.specificity;
 */
export function computeMetricsAtThreshold(
  labels: BinaryLabels,
  probs: ProbabilityScores,
  thresholdProb: number,
): ThresholdMetrics {
  validateBinaryInputs(labels, probs, { requireBothClasses: true, metricName: "metrics at threshold" });
  return deriveThresholdMetrics(computeConfusionMatrix(labels, probs, thresholdProb));
}

/**
 * Slack when a rate is compared with a target: rates computed as counts / total can miss an exact
 * target by one ulp (9/10 vs 0.9). Shared by the threshold choice and the threshold audit.
 */
export const RATE_TARGET_SLACK = 1e-12;

/**
 * The highest threshold (one of the scores) at which sensitivity is at least
 * `targetSensitivity`, with all metrics there. Triage use: "catch 90% of melanomas, with as few
 * referrals as possible". Same threshold as scikit-learn's `roc_curve` first point with
 * TPR >= target.
 *
 * @example findThresholdForSensitivity(labels, probs, 0.9).thresholdProb
 */
export function findThresholdForSensitivity(
  labels: BinaryLabels,
  probs: ProbabilityScores,
  targetSensitivity: number,
): ThresholdMetrics {
  checkFraction(targetSensitivity, "targetSensitivity", false);
  const roc = computeRocCurve(labels, probs);
  for (let k = 1; k < roc.thresholdsProb.length; k++) {
    if (roc.truePositiveRate[k] >= targetSensitivity - RATE_TARGET_SLACK) {
      return computeMetricsAtThreshold(labels, probs, roc.thresholdsProb[k]);
    }
  }
  // TPR reaches 1 at the lowest score, so the loop always returns for targets <= 1.
  throw new TargetNotReachableError(`no threshold reaches sensitivity ${targetSensitivity}`);
}

/**
 * The lowest threshold (one of the scores) at which specificity is still at least
 * `targetSpecificity` — the most sensitive operating point with that specificity.
 * Throws {@link TargetNotReachableError} when even the highest score gives lower specificity
 * (benign images share the top score).
 *
 * @example findThresholdForSpecificity(labels, probs, 0.8).sensitivity
 */
export function findThresholdForSpecificity(
  labels: BinaryLabels,
  probs: ProbabilityScores,
  targetSpecificity: number,
): ThresholdMetrics {
  checkFraction(targetSpecificity, "targetSpecificity", false);
  const roc = computeRocCurve(labels, probs);
  let best = -1;
  for (let k = 1; k < roc.thresholdsProb.length; k++) {
    if (1 - roc.falsePositiveRate[k] >= targetSpecificity - RATE_TARGET_SLACK) best = k;
  }
  if (best < 0) {
    throw new TargetNotReachableError(
      `no score threshold reaches specificity ${targetSpecificity}: at the highest score (${roc.thresholdsProb[1]}) ` +
        `specificity is already ${1 - roc.falsePositiveRate[1]}; expected a lower target`,
    );
  }
  return computeMetricsAtThreshold(labels, probs, roc.thresholdsProb[best]);
}

/**
 * The threshold (one of the scores) maximising Youden's J = sensitivity + specificity − 1; on
 * ties the highest threshold wins.
 *
 * @example findYoudenThreshold(labels, probs).youdenJ
 */
export function findYoudenThreshold(labels: BinaryLabels, probs: ProbabilityScores): ThresholdMetrics {
  const roc = computeRocCurve(labels, probs);
  let best = 1;
  for (let k = 2; k < roc.thresholdsProb.length; k++) {
    if (roc.truePositiveRate[k] - roc.falsePositiveRate[k] > roc.truePositiveRate[best] - roc.falsePositiveRate[best]) {
      best = k;
    }
  }
  return computeMetricsAtThreshold(labels, probs, roc.thresholdsProb[best]);
}

/**
 * Balanced accuracy at a threshold: (sensitivity + specificity) / 2.
 *
 * @example computeBalancedAccuracy([0, 1], [0.2, 0.9], 0.5) // 1
 */
export function computeBalancedAccuracy(labels: BinaryLabels, probs: ProbabilityScores, thresholdProb: number): number {
  return computeMetricsAtThreshold(labels, probs, thresholdProb).balancedAccuracy;
}

/**
 * Brier score: mean squared difference between the probability of malignant and the label
 * (0 perfect, 0.25 for always answering 0.5). Probabilities must lie in [0, 1].
 *
 * @example computeBrierScore([0, 1], [0.2, 0.6]) // (0.04 + 0.16) / 2 = 0.1
 */
export function computeBrierScore(labels: BinaryLabels, probs: ProbabilityScores): number {
  validateBinaryInputs(labels, probs, { requireProbabilities: true, metricName: "Brier score" });
  let sum = 0;
  for (let i = 0; i < labels.length; i++) sum += (probs[i] - labels[i]) ** 2;
  return sum / labels.length;
}

/** One reliability bin. Empty bins have count 0 and NaN means. */
export interface CalibrationBin {
  binIndex: number;
  lowerProb: number;
  upperProb: number;
  count: number;
  /** Mean predicted probability of malignant in the bin. */
  meanPredictedProb: number;
  /** Fraction of the bin's examples that are malignant. */
  observedFraction: number;
}

/** Reliability bins with the expected and maximum calibration errors. */
export interface CalibrationSummary {
  binCount: number;
  bins: CalibrationBin[];
  /** Σ (count/n)·|observedFraction − meanPredictedProb| over non-empty bins. */
  expectedCalibrationError: number;
  /** Largest |observedFraction − meanPredictedProb| over non-empty bins. */
  maxCalibrationError: number;
}

/**
 * Reliability bins and expected calibration error with `binCount` equal-width bins. Binning
 * follows scikit-learn's `calibration_curve(strategy="uniform")`: edges k·(1+1e-8)/binCount,
 * bins closed on the right (lo, hi] with 0 in the first bin, so the meanPredictedProb and
 * observedFraction of non-empty bins equal its prob_pred and prob_true.
 *
 * @example computeCalibration(labels, probs, { binCount: 10 }).expectedCalibrationError
 */
export function computeCalibration(
  labels: BinaryLabels,
  probs: ProbabilityScores,
  options: { binCount?: number } = {},
): CalibrationSummary {
  const binCount = options.binCount ?? 10;
  if (!(Number.isInteger(binCount) && binCount >= 1)) {
    throw new MetricInputError(`calibration: binCount is ${binCount}; expected a whole number >= 1 such as 10`);
  }
  validateBinaryInputs(labels, probs, { requireProbabilities: true, metricName: "calibration" });
  const step = (1 + 1e-8) / binCount;
  const edges: number[] = [];
  for (let k = 0; k <= binCount; k++) edges.push(k * step);
  const counts = new Array<number>(binCount).fill(0);
  const sumProb = new Array<number>(binCount).fill(0);
  const sumLabel = new Array<number>(binCount).fill(0);
  for (let i = 0; i < labels.length; i++) {
    const p = probs[i];
    // Number of inner edges strictly below p, as numpy.searchsorted(edges[1:-1], p) gives.
    let bin = 0;
    while (bin < binCount - 1 && edges[bin + 1] < p) bin++;
    counts[bin]++;
    sumProb[bin] += p;
    sumLabel[bin] += labels[i];
  }
  const bins: CalibrationBin[] = [];
  let ece = 0;
  let mce = 0;
  for (let k = 0; k < binCount; k++) {
    const meanPredictedProb = counts[k] ? sumProb[k] / counts[k] : NaN;
    const observedFraction = counts[k] ? sumLabel[k] / counts[k] : NaN;
    if (counts[k]) {
      const gap = Math.abs(observedFraction - meanPredictedProb);
      ece += (counts[k] / labels.length) * gap;
      mce = Math.max(mce, gap);
    }
    bins.push({
      binIndex: k,
      lowerProb: k / binCount,
      upperProb: (k + 1) / binCount,
      count: counts[k],
      meanPredictedProb,
      observedFraction,
    });
  }
  return { binCount, bins, expectedCalibrationError: ece, maxCalibrationError: mce };
}

/**
 * Expected calibration error with `binCount` equal-width bins (see {@link computeCalibration}).
 *
 * @example computeExpectedCalibrationError([0, 1], [0.1, 0.8]) // 0.15
 */
export function computeExpectedCalibrationError(labels: BinaryLabels, probs: ProbabilityScores, binCount = 10): number {
  return computeCalibration(labels, probs, { binCount }).expectedCalibrationError;
}
