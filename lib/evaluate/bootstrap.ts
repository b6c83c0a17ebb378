import { createRandom } from "../util/random.js";
import { MetricInputError, validateBinaryInputs } from "./metrics.js";
import type { BinaryLabels, ProbabilityScores } from "./metrics.js";

/** A metric of labels and probabilities, e.g. {@link computeRocAuc} or `(y, p) => computeMetricsAtThreshold(y, p, 0.5).sensitivity`. */
export type MetricFunction = (labels: number[], probs: number[]) => number;

/** A point estimate with its percentile bootstrap confidence interval. */
export interface BootstrapInterval {
  /** The metric on the full data. */
  estimate: number;
  lower: number;
  upper: number;
  /** Standard deviation of the bootstrap replicates. */
  standardError: number;
  /** e.g. 0.95. */
  confidenceLevel: number;
  iterations: number;
  /** Replicates that gave a finite number (NaN replicates, e.g. PPV with nothing predicted, are dropped). */
  validIterations: number;
  seed: number;
}

/**
 * Quantile of sorted values with linear interpolation between order statistics (numpy's
 * default "linear" method).
 *
 * @example computeQuantileOfSorted([1, 2, 3, 4], 0.25) // 1.75
 */
export function computeQuantileOfSorted(sortedValues: readonly number[], quantile: number): number {
  if (sortedValues.length === 0) return NaN;
  const position = quantile * (sortedValues.length - 1);
  const lo = Math.floor(position);
  const hi = Math.min(lo + 1, sortedValues.length - 1);
  return sortedValues[lo] + (position - lo) * (sortedValues[hi] - sortedValues[lo]);
}

/**
 * Draws stratified bootstrap resamples: malignant and benign examples are each resampled with
 * replacement to their own count, so every replicate holds both classes at the original
 * prevalence. Calls `visit(labels, probs)` once per replicate (the arrays are reused: copy to keep).
 *
 * @example forEachStratifiedResample(labels, probs, { iterations: 100, seed: 1 }, (y, p) => aucs.push(computeRocAuc(y, p)));
 */
export function forEachStratifiedResample(
  labels: BinaryLabels,
  probs: ProbabilityScores,
  options: { iterations: number; seed: number },
  visit: (labels: number[], probs: number[], iteration: number) => void,
): void {
  const positiveIdx: number[] = [];
  const negativeIdx: number[] = [];
  for (let i = 0; i < labels.length; i++) (labels[i] === 1 ? positiveIdx : negativeIdx).push(i);
  const rand = createRandom(options.seed);
  const n = labels.length;
  const y = new Array<number>(n);
  const p = new Array<number>(n);
  for (let it = 0; it < options.iterations; it++) {
    let k = 0;
    for (const stratum of [positiveIdx, negativeIdx]) {
      for (let j = 0; j < stratum.length; j++) {
        const i = stratum[Math.floor(rand() * stratum.length)];
        y[k] = labels[i];
        p[k] = probs[i];
        k++;
      }
    }
    visit(y, p, it);
  }
}

/**
 * Percentile bootstrap confidence interval of any metric, with stratified resampling (see
 * {@link forEachStratifiedResample}), seeded so the same seed gives the same interval.
 * Replicates where the metric is NaN are dropped and counted; if none is finite the interval
 * is NaN and a warning is printed.
 *
 * @example const auc = bootstrapMetric(labels, probs, computeRocAuc, { iterations: 1000, seed: 42 });
 * // { estimate: 0.87, lower: 0.83, upper: 0.91, … }
 */
export function bootstrapMetric(
  labels: BinaryLabels,
  probs: ProbabilityScores,
  metricFn: MetricFunction,
  options: { iterations?: number; seed: number; confidenceLevel?: number },
): BootstrapInterval {
  const iterations = options.iterations ?? 1000;
  const confidenceLevel = options.confidenceLevel ?? 0.95;
  if (!(Number.isInteger(iterations) && iterations >= 1)) {
    throw new MetricInputError(`bootstrap: iterations is ${iterations}; expected a whole number >= 1 such as 1000`);
  }
  if (!(confidenceLevel > 0 && confidenceLevel < 1)) {
    throw new MetricInputError(`bootstrap: confidenceLevel is ${confidenceLevel}; expected a number in (0, 1) such as 0.95`);
  }
  if (typeof options.seed !== "number" || !Number.isFinite(options.seed)) {
    throw new MetricInputError(`bootstrap: seed is ${String(options.seed)}; expected a number such as 42`);
  }
  validateBinaryInputs(labels, probs, { requireBothClasses: true, metricName: "bootstrap" });
  const estimate = metricFn(Array.from(labels), Array.from(probs));
  const values: number[] = [];
  forEachStratifiedResample(labels, probs, { iterations, seed: options.seed }, (y, p) => {
    values.push(metricFn(y, p));
  });
  return summarizeReplicates(estimate, values, { iterations, seed: options.seed, confidenceLevel });
}

/**
 * Percentile interval from bootstrap replicate values (NaN replicates dropped and counted;
 * all NaN → NaN interval and a warning).
 *
 * @example summarizeReplicates(0.87, replicateAucs, { iterations: 1000, seed: 42, confidenceLevel: 0.95 })
 */
export function summarizeReplicates(
  estimate: number,
  replicateValues: readonly number[],
  options: { iterations: number; seed: number; confidenceLevel: number },
): BootstrapInterval {
  const values = replicateValues.filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
  if (values.length === 0) {
    console.warn(`bootstrapMetric: the metric was NaN in all ${options.iterations} replicates; the interval is NaN`);
  }
  const mean = values.reduce((s, v) => s + v, 0) / values.length;
  const variance = values.reduce((s, v) => s + (v - mean) ** 2, 0) / Math.max(values.length - 1, 1);
  const tail = (1 - options.confidenceLevel) / 2;
  return {
    estimate,
    lower: computeQuantileOfSorted(values, tail),
    upper: computeQuantileOfSorted(values, 1 - tail),
    standardError: values.length ? Math.sqrt(variance) : NaN,
    confidenceLevel: options.confidenceLevel,
    iterations: options.iterations,
    validIterations: values.length,
    seed: options.seed,
  };
}
