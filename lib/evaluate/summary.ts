import {
  MetricInputError,
  computeAveragePrecision,
  computeBrierScore,
  computeExpectedCalibrationError,
  computeMetricsAtThreshold,
  computePartialAucAboveTpr,
  computeRocAuc,
  validateBinaryInputs,
} from "./metrics.js";
import type { BinaryLabels, ProbabilityScores } from "./metrics.js";
import { countBootstrapGroups, forEachStratifiedResample, summarizeReplicates } from "./bootstrap.js";
import type { BootstrapGroupIds, BootstrapInterval } from "./bootstrap.js";
import type { ReportTable } from "./report.js";

/** One metric with its bootstrap interval. */
export interface MetricSummaryRow {
  metric: string;
  interval: BootstrapInterval;
}

/**
 * The standard validation metrics, each with a stratified percentile bootstrap CI: ROC AUC,
 * pAUC above 80% TPR, average precision, Brier score, ECE (10 bins), and sensitivity,
 * specificity, PPV, NPV, F1 at `thresholdProb`. All metrics share the same resamples, so each
 * interval equals `bootstrapMetric(labels, probs, metric, { iterations, seed, groupIds })`.
 * Pass `groupIds` (one per example, e.g. `assignGroupIds(records)`) to resample patients/lesions
 * instead of images (see {@link forEachStratifiedResample}).
 *
 * @example const rows = summarizeMetricsWithIntervals(labels, probs, { thresholdProb: 0.31, iterations: 1000, seed: 42, groupIds: assignGroupIds(testRecords) });
 * writeHtmlReport("out/report.html", { title: "Validation", sections: [{ heading: "Metrics", table: buildMetricTable(rows) }] });
 */
export function summarizeMetricsWithIntervals(
  labels: BinaryLabels,
  probs: ProbabilityScores,
  options: {
    thresholdProb: number;
    iterations?: number;
    seed: number;
    confidenceLevel?: number;
    groupIds?: BootstrapGroupIds;
  },
): MetricSummaryRow[] {
  const iterations = options.iterations ?? 1000;
  const confidenceLevel = options.confidenceLevel ?? 0.95;
  if (!(Number.isInteger(iterations) && iterations >= 1)) {
    throw new MetricInputError(
      `metric summary: iterations is ${iterations}; expected a whole number >= 1 such as 1000`,
    );
  }
  validateBinaryInputs(labels, probs, {
    requireBothClasses: true,
    requireProbabilities: true,
    metricName: "metric summary",
  });
  const t = options.thresholdProb;
  const shownT = Number.isFinite(t) ? Number(t.toFixed(3)) : t;
  const metrics: Array<[string, (y: number[], p: number[]) => number]> = [
    ["ROC AUC", computeRocAuc],
    ["pAUC above 80% TPR (0–0.2)", (y, p) => computePartialAucAboveTpr(y, p, 0.8)],
    ["Average precision", computeAveragePrecision],
    ["Brier score", computeBrierScore],
    ["Expected calibration error (10 bins)", (y, p) => computeExpectedCalibrationError(y, p, 10)],
    [`Sensitivity at t=${shownT}`, (y, p) => computeMetricsAtThreshold(y, p, t).sensitivity],
    [`Specificity at t=${shownT}`, (y, p) => computeMetricsAtThreshold(y, p, t).specificity],
    [`PPV at t=${shownT}`, (y, p) => computeMetricsAtThreshold(y, p, t).ppv],
    [`NPV at t=${shownT}`, (y, p) => computeMetricsAtThreshold(y, p, t).npv],
    [`F1 at t=${shownT}`, (y, p) => computeMetricsAtThreshold(y, p, t).f1],
  ];
  const y0 = Array.from(labels);
  const p0 = Array.from(probs);
  const estimates = metrics.map(([, fn]) => fn(y0, p0));
  const replicates = metrics.map(() => [] as number[]);
  forEachStratifiedResample(labels, probs, { iterations, seed: options.seed, groupIds: options.groupIds }, (y, p) => {
    metrics.forEach(([, fn], k) => replicates[k].push(fn(y, p)));
  });
  const groupCount = countBootstrapGroups(options.groupIds);
  return metrics.map(([metric], k) => ({
    metric,
    interval: summarizeReplicates(estimates[k], replicates[k], {
      iterations,
      seed: options.seed,
      confidenceLevel,
      groupCount,
    }),
  }));
}

/**
 * A report table ("metric", "estimate (95% CI)", "bootstrap resamples") from summary rows.
 *
 * @example buildMetricTable(summarizeMetricsWithIntervals(labels, probs, { thresholdProb: 0.5, seed: 1 }))
 */
export function buildMetricTable(rows: readonly MetricSummaryRow[]): ReportTable {
  const level = rows[0] ? Math.round(rows[0].interval.confidenceLevel * 100) : 95;
  return {
    columns: ["metric", `estimate (${level}% CI)`, "valid resamples"],
    rows: rows.map((r) => [r.metric, r.interval, `${r.interval.validIterations}/${r.interval.iterations}`]),
    caption:
      rows[0]?.interval.groupCount !== undefined
        ? `Stratified percentile bootstrap over ${rows[0].interval.groupCount} patient/lesion groups, seed ${rows[0].interval.seed}.`
        : `Stratified percentile bootstrap, seed ${rows[0]?.interval.seed ?? "n/a"}.`,
  };
}
