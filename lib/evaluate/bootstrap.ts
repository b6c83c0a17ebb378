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
  /** Patient/lesion groups resampled, when `groupIds` was given; absent when images were resampled one by one. */
  groupCount?: number;
}

/**
 * One id per example naming its patient/lesion group (e.g. from {@link assignGroupIds} over the
 * records in the same order as the labels): the bootstrap then resamples whole groups.
 */
export type BootstrapGroupIds = ArrayLike<string | number>;

/**
 * Example indices per resampling unit, split into the malignant stratum (units holding at least
 * one positive) and the benign stratum, each in order of first appearance. Without `groupIds`
 * every example is its own unit.
 */
function collectResampleUnits(
  labels: BinaryLabels,
  groupIds: BootstrapGroupIds | undefined,
): { positive: number[][]; negative: number[][]; unitCount: number } {
  const units: number[][] = [];
  if (groupIds === undefined) {
    for (let i = 0; i < labels.length; i++) units.push([i]);
  } else {
    if (groupIds.length !== labels.length) {
      throw new MetricInputError(
        `bootstrap: groupIds has ${groupIds.length} entries; expected one per example (${labels.length}), in the same order as labels`,
      );
    }
    const unitOf = new Map<string | number, number[]>();
    for (let i = 0; i < labels.length; i++) {
      const id = groupIds[i];
      if (!((typeof id === "string" && id !== "") || (typeof id === "number" && Number.isFinite(id)))) {
        throw new MetricInputError(
          `bootstrap: groupIds[${i}] is ${JSON.stringify(id)}; expected a non-empty string or finite number such as "patient:P1" (see assignGroupIds)`,
        );
      }
      let unit = unitOf.get(id);
      if (!unit) {
        unitOf.set(id, (unit = []));
        units.push(unit);
      }
      unit.push(i);
    }
  }
  const positive: number[][] = [];
  const negative: number[][] = [];
  for (const unit of units) (unit.some((i) => labels[i] === 1) ? positive : negative).push(unit);
  return { positive, negative, unitCount: units.length };
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
 * Draws stratified bootstrap resamples. Without `groupIds`, malignant and benign examples are
 * each resampled with replacement to their own count, so every replicate holds both classes at
 * the original prevalence; that treats images as independent, which they are not when a lesion
 * or patient has several (intervals come out too narrow). With `groupIds` (one per example, e.g.
 * {@link assignGroupIds} of the records), whole groups are resampled instead: groups holding a
 * malignant image form one stratum and the others the second, each drawn with replacement to its
 * own group count, and every image of a drawn group enters the replicate. Replicate sizes then
 * vary, and a replicate may lack benign images when every group holds a malignant one (the metric
 * may then be NaN; {@link bootstrapMetric} drops and counts such replicates). With one image per
 * group the draws equal the ungrouped ones for the same seed.
 *
 * Calls `visit(labels, probs)` once per replicate (the arrays are reused: copy to keep).
 *
 * @example forEachStratifiedResample(labels, probs, { iterations: 100, seed: 1, groupIds: assignGroupIds(records) }, (y, p) => aucs.push(computeRocAuc(y, p)));
 */
export function forEachStratifiedResample(
  labels: BinaryLabels,
  probs: ProbabilityScores,
  options: { iterations: number; seed: number; groupIds?: BootstrapGroupIds },
  visit: (labels: number[], probs: number[], iteration: number) => void,
): void {
  const { positive, negative } = collectResampleUnits(labels, options.groupIds);
  const rand = createRandom(options.seed);
  const y: number[] = [];
  const p: number[] = [];
  for (let it = 0; it < options.iterations; it++) {
    y.length = 0;
    p.length = 0;
    for (const stratum of [positive, negative]) {
      for (let j = 0; j < stratum.length; j++) {
        for (const i of stratum[Math.floor(rand() * stratum.length)]) {
          y.push(labels[i]);
          p.push(probs[i]);
        }
      }
    }
    visit(y, p, it);
  }
}

/** A paired bootstrap of metric(A) − metric(B) on the same images, from {@link bootstrapPairedDifference}. */
export interface PairedBootstrapDifference {
  /** metric(A) − metric(B): the estimate on all images and its percentile interval over the shared resamples. */
  difference: BootstrapInterval;
  /** Fraction of finite replicates where the difference is ≤ 0 (a one-sided bootstrap p-value for A > B). */
  fractionAtOrBelowZero: number;
}

/** Replicates (default 1000) and confidence level (default 0.95) of a bootstrap, checked; `what` names it in errors. */
function resolveBootstrapSettings(
  options: { iterations?: number; confidenceLevel?: number },
  what: string,
): { iterations: number; confidenceLevel: number } {
  const iterations = options.iterations ?? 1000;
  const confidenceLevel = options.confidenceLevel ?? 0.95;
  if (!(Number.isInteger(iterations) && iterations >= 1)) {
    throw new MetricInputError(`${what}: iterations is ${iterations}; expected a whole number >= 1 such as 1000`);
  }
  if (!(confidenceLevel > 0 && confidenceLevel < 1)) {
    throw new MetricInputError(
      `${what}: confidenceLevel is ${confidenceLevel}; expected a number in (0, 1) such as 0.95`,
    );
  }
  return { iterations, confidenceLevel };
}

/**
 * Paired percentile bootstrap of the difference of one metric between two models scored on the
 * same images: each replicate draws one stratified resample (patients/lesions with `groupIds`,
 * as {@link forEachStratifiedResample} draws them for the same seed) and scores both models on
 * it, so their shared sampling noise cancels. Throws MetricInputError when the arrays differ in
 * length or the inputs are invalid.
 *
 * @example const d = bootstrapPairedDifference(labels, probsDefault, probsBaseline, computeRocAuc, { seed: 42, iterations: 1000, groupIds });
 * // d.difference: { estimate: 0.018, lower: -0.07, upper: 0.11, … }
 */
export function bootstrapPairedDifference(
  labels: BinaryLabels,
  probsA: ProbabilityScores,
  probsB: ProbabilityScores,
  metricFn: MetricFunction,
  options: { iterations?: number; seed: number; confidenceLevel?: number; groupIds?: BootstrapGroupIds },
): PairedBootstrapDifference {
  const { iterations, confidenceLevel } = resolveBootstrapSettings(options, "paired bootstrap");
  if (probsA.length !== probsB.length)
    throw new MetricInputError(
      `paired bootstrap: model A has ${probsA.length} scores and model B ${probsB.length}; expected one each per image (${labels.length})`,
    );
  validateBinaryInputs(labels, probsA, { requireBothClasses: true, metricName: "paired bootstrap (A)" });
  validateBinaryInputs(labels, probsB, { requireBothClasses: true, metricName: "paired bootstrap (B)" });
  // Resample row indices once per replicate; both models are scored on the same rows.
  const rowIndex = Array.from({ length: labels.length }, (_, i) => i);
  const values: number[] = [];
  const y = Array.from(labels, Number);
  forEachStratifiedResample(
    labels,
    rowIndex,
    { iterations, seed: options.seed, groupIds: options.groupIds },
    (_, rows) => {
      const yr = rows.map((r) => y[r]);
      values.push(
        metricFn(
          yr,
          rows.map((r) => probsA[r]),
        ) -
          metricFn(
            yr,
            rows.map((r) => probsB[r]),
          ),
      );
    },
  );
  const estimate = metricFn(y, Array.from(probsA)) - metricFn(y, Array.from(probsB));
  const finite = values.filter((v) => Number.isFinite(v));
  return {
    difference: summarizeReplicates(estimate, values, {
      iterations,
      seed: options.seed,
      confidenceLevel,
      groupCount: countBootstrapGroups(options.groupIds),
    }),
    fractionAtOrBelowZero: finite.length ? finite.filter((v) => v <= 0).length / finite.length : NaN,
  };
}

/**
 * How many resampling groups `groupIds` names (undefined without it), for {@link BootstrapInterval.groupCount}.
 *
 * @example countBootstrapGroups(["patient:P1", "patient:P1", "lesion:L2"]) // 2
 */
export function countBootstrapGroups(groupIds: BootstrapGroupIds | undefined): number | undefined {
  return groupIds === undefined ? undefined : new Set(Array.from(groupIds)).size;
}

/**
 * Percentile bootstrap confidence interval of any metric, with stratified resampling (see
 * {@link forEachStratifiedResample}), seeded so the same seed gives the same interval.
 * Pass `groupIds` (one per example, e.g. `assignGroupIds(records)`) to resample patients/lesions
 * rather than images: several images of one lesion are not independent evidence, and image
 * resampling then gives intervals that are too narrow.
 * Replicates where the metric is NaN are dropped and counted; if none is finite the interval
 * is NaN and a warning is printed.
 *
 * @example const auc = bootstrapMetric(labels, probs, computeRocAuc, { iterations: 1000, seed: 42, groupIds: assignGroupIds(testRecords) });
 * // { estimate: 0.87, lower: 0.82, upper: 0.92, groupCount: 310, … }
 */
export function bootstrapMetric(
  labels: BinaryLabels,
  probs: ProbabilityScores,
  metricFn: MetricFunction,
  options: { iterations?: number; seed: number; confidenceLevel?: number; groupIds?: BootstrapGroupIds },
): BootstrapInterval {
  const { iterations, confidenceLevel } = resolveBootstrapSettings(options, "bootstrap");
  if (typeof options.seed !== "number" || !Number.isFinite(options.seed)) {
    throw new MetricInputError(`bootstrap: seed is ${String(options.seed)}; expected a number such as 42`);
  }
  validateBinaryInputs(labels, probs, { requireBothClasses: true, metricName: "bootstrap" });
  const estimate = metricFn(Array.from(labels), Array.from(probs));
  const values: number[] = [];
  forEachStratifiedResample(labels, probs, { iterations, seed: options.seed, groupIds: options.groupIds }, (y, p) => {
    values.push(metricFn(y, p));
  });
  return summarizeReplicates(estimate, values, {
    iterations,
    seed: options.seed,
    confidenceLevel,
    groupCount: countBootstrapGroups(options.groupIds),
  });
}

/**
 * Percentile interval from bootstrap replicate values (NaN replicates dropped and counted;
 * all NaN → NaN interval and a warning). `groupCount`, when given, is recorded on the interval.
 *
 * @example summarizeReplicates(0.87, replicateAucs, { iterations: 1000, seed: 42, confidenceLevel: 0.95 })
 */
export function summarizeReplicates(
  estimate: number,
  replicateValues: readonly number[],
  options: { iterations: number; seed: number; confidenceLevel: number; groupCount?: number },
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
    ...(options.groupCount !== undefined ? { groupCount: options.groupCount } : {}),
  };
}
