import { MelanomaLabError } from "../util/errors.js";
import { computeQuantileOfSorted, forEachStratifiedResample } from "./bootstrap.js";
import type { BootstrapGroupIds } from "./bootstrap.js";
import {
  MetricInputError,
  computeCalibration,
  computeConfusionMatrix,
  computePrecisionRecallCurve,
  computeRocAuc,
  computeRocCurve,
  computeMetricsAtThreshold,
  computeAveragePrecision,
  validateBinaryInputs,
} from "./metrics.js";
import type { BinaryLabels, ConfusionMatrix, ProbabilityScores } from "./metrics.js";
import { escapeHtml } from "../util/html.js";
import type { PlotlyFigure, PlotlyTrace } from "../display/plotlyFigure.js";

export type { PlotlyFigure, PlotlyTrace };

/** Thrown when a chart's input is unusable (empty series, bad options). */
export class ChartInputError extends MelanomaLabError {}

const COLORS = { model: "#1f77b4", band: "rgba(31,119,180,0.2)", chance: "#999999", point: "#d62728", spec: "#2ca02c" };

function baseLayout(title: string, xTitle: string, yTitle: string): Record<string, unknown> {
  return {
    title: { text: title },
    xaxis: { title: { text: xTitle }, range: [0, 1], zeroline: false },
    yaxis: { title: { text: yTitle }, range: [0, 1.02], zeroline: false },
    width: 560,
    height: 480,
    margin: { l: 60, r: 20, t: 50, b: 55 },
    legend: { x: 0.98, xanchor: "right", y: 0.02, yanchor: "bottom", bgcolor: "rgba(255,255,255,0.7)" },
  };
}

/** Where a chart marks the operating point: a threshold in probability of malignant. */
export interface OperatingPointOption {
  thresholdProb: number;
  /** Legend text, e.g. "90% sensitivity". */
  label?: string;
}

/**
 * Pointwise bootstrap band of the ROC curve: TPR interpolated on an even FPR grid for each
 * stratified resample (seeded), then the lower/upper percentiles at each grid point. `groupIds`
 * (one per example) resamples patients/lesions instead of images (see {@link forEachStratifiedResample}).
 *
 * @example const band = computeRocBootstrapBand(labels, probs, { iterations: 200, seed: 1, groupIds: assignGroupIds(testRecords) });
 */
export function computeRocBootstrapBand(
  labels: BinaryLabels,
  probs: ProbabilityScores,
  options: {
    iterations?: number;
    seed: number;
    confidenceLevel?: number;
    gridPoints?: number;
    groupIds?: BootstrapGroupIds;
  },
): { falsePositiveRate: number[]; lowerTpr: number[]; upperTpr: number[]; iterations: number; seed: number } {
  const iterations = options.iterations ?? 200;
  const gridPoints = options.gridPoints ?? 101;
  const level = options.confidenceLevel ?? 0.95;
  validateBinaryInputs(labels, probs, { requireBothClasses: true, metricName: "ROC bootstrap band" });
  const grid = Array.from({ length: gridPoints }, (_, k) => k / (gridPoints - 1));
  const columns = grid.map(() => [] as number[]);
  forEachStratifiedResample(labels, probs, { iterations, seed: options.seed, groupIds: options.groupIds }, (y, p) => {
    const roc = computeRocCurve(y, p);
    let j = 0;
    grid.forEach((f, g) => {
      // The highest TPR reached at FPR <= f (step-up at vertical segments), interpolating along sloped ones.
      while (j + 1 < roc.falsePositiveRate.length && roc.falsePositiveRate[j + 1] <= f) j++;
      let tpr = roc.truePositiveRate[j];
      if (j + 1 < roc.falsePositiveRate.length && roc.falsePositiveRate[j + 1] > roc.falsePositiveRate[j]) {
        const t = (f - roc.falsePositiveRate[j]) / (roc.falsePositiveRate[j + 1] - roc.falsePositiveRate[j]);
        tpr = roc.truePositiveRate[j] + t * (roc.truePositiveRate[j + 1] - roc.truePositiveRate[j]);
      }
      columns[g].push(tpr);
    });
  });
  const tail = (1 - level) / 2;
  const lowerTpr: number[] = [];
  const upperTpr: number[] = [];
  for (const col of columns) {
    col.sort((a, b) => a - b);
    lowerTpr.push(computeQuantileOfSorted(col, tail));
    upperTpr.push(computeQuantileOfSorted(col, 1 - tail));
  }
  return { falsePositiveRate: grid, lowerTpr, upperTpr, iterations, seed: options.seed };
}

/**
 * Indices of the ROC points a plot needs: the ends and every corner. Points in the middle of a
 * straight run (collinear with both neighbours, like scikit-learn's `drop_intermediate`) are
 * left out, which keeps the drawn curve and its area unchanged with far fewer points.
 *
 * @example selectRocCornerIndices([0, 0, 0, 0.5, 1], [0, 0.5, 1, 1, 1]) // [0, 2, 4]
 */
export function selectRocCornerIndices(
  falsePositiveRate: readonly number[],
  truePositiveRate: readonly number[],
): number[] {
  const n = falsePositiveRate.length;
  const keep: number[] = [];
  for (let k = 0; k < n; k++) {
    if (k === 0 || k === n - 1) {
      keep.push(k);
      continue;
    }
    const dx1 = falsePositiveRate[k] - falsePositiveRate[k - 1];
    const dy1 = truePositiveRate[k] - truePositiveRate[k - 1];
    const dx2 = falsePositiveRate[k + 1] - falsePositiveRate[k];
    const dy2 = truePositiveRate[k + 1] - truePositiveRate[k];
    // Cross product relative to the segment lengths: zero means the three points are collinear.
    if (Math.abs(dx1 * dy2 - dy1 * dx2) > 1e-12 * (Math.abs(dx1) + Math.abs(dy1)) * (Math.abs(dx2) + Math.abs(dy2)))
      keep.push(k);
  }
  return keep;
}

/**
 * ROC curve figure with the AUC in the legend, the chance diagonal, an optional seeded
 * bootstrap band (95% pointwise; `bootstrap.groupIds` resamples patients/lesions, see
 * {@link computeRocBootstrapBand}) and an optional operating point marker.
 *
 * @example showFigure(buildRocFigure(labels, probs, { bootstrap: { iterations: 200, seed: 42, groupIds: assignGroupIds(testRecords) }, operatingPoint: { thresholdProb: 0.31, label: "90% sensitivity" } }));
 */
export function buildRocFigure(
  labels: BinaryLabels,
  probs: ProbabilityScores,
  options: {
    title?: string;
    bootstrap?: { iterations?: number; seed: number; groupIds?: BootstrapGroupIds };
    operatingPoint?: OperatingPointOption;
    modelName?: string;
  } = {},
): PlotlyFigure {
  const roc = computeRocCurve(labels, probs);
  const auc = computeRocAuc(labels, probs);
  const corners = selectRocCornerIndices(roc.falsePositiveRate, roc.truePositiveRate);
  const data: PlotlyTrace[] = [];
  if (options.bootstrap) {
    const band = computeRocBootstrapBand(labels, probs, options.bootstrap);
    data.push(
      {
        type: "scatter",
        mode: "lines",
        x: band.falsePositiveRate,
        y: band.lowerTpr,
        line: { width: 0 },
        hoverinfo: "skip",
        showlegend: false,
        name: "band lower",
      },
      {
        type: "scatter",
        mode: "lines",
        x: band.falsePositiveRate,
        y: band.upperTpr,
        line: { width: 0 },
        fill: "tonexty",
        fillcolor: COLORS.band,
        name: `95% bootstrap band (${band.iterations} resamples)`,
        hoverinfo: "skip",
      },
    );
  }
  data.push(
    {
      type: "scatter",
      mode: "lines",
      x: [0, 1],
      y: [0, 1],
      line: { dash: "dash", color: COLORS.chance },
      name: "chance",
      hoverinfo: "skip",
    },
    {
      type: "scatter",
      mode: "lines",
      x: corners.map((k) => roc.falsePositiveRate[k]),
      y: corners.map((k) => roc.truePositiveRate[k]),
      line: { color: COLORS.model, width: 2, shape: "linear" },
      name: `${options.modelName ?? "model"} (AUC ${auc.toFixed(3)})`,
      text: corners
        .map((k) => roc.thresholdsProb[k])
        .map((t) => (Number.isFinite(t) ? `threshold ${t.toFixed(3)}` : "threshold ∞")),
      hovertemplate: "FPR %{x:.3f}<br>TPR %{y:.3f}<br>%{text}<extra></extra>",
    },
  );
  if (options.operatingPoint) {
    const m = computeMetricsAtThreshold(labels, probs, options.operatingPoint.thresholdProb);
    data.push({
      type: "scatter",
      mode: "markers",
      x: [1 - m.specificity],
      y: [m.sensitivity],
      marker: { color: COLORS.point, size: 12, symbol: "x" },
      name: `${options.operatingPoint.label ?? "operating point"}: t=${m.thresholdProb.toFixed(3)}, sens ${m.sensitivity.toFixed(2)}, spec ${m.specificity.toFixed(2)}`,
    });
  }
  return {
    data,
    layout: baseLayout(
      options.title ?? `ROC curve (n=${labels.length}, ${roc.positives} malignant)`,
      "False positive rate (1 − specificity)",
      "True positive rate (sensitivity)",
    ),
  };
}

/**
 * Precision–recall figure (step curve, AP in the legend) with the prevalence baseline and an
 * optional operating point.
 *
 * @example showFigure(buildPrecisionRecallFigure(labels, probs));
 */
export function buildPrecisionRecallFigure(
  labels: BinaryLabels,
  probs: ProbabilityScores,
  options: { title?: string; operatingPoint?: OperatingPointOption; modelName?: string } = {},
): PlotlyFigure {
  const pr = computePrecisionRecallCurve(labels, probs);
  const ap = computeAveragePrecision(labels, probs);
  const prevalence = pr.positives / labels.length;
  const data: PlotlyTrace[] = [
    {
      type: "scatter",
      mode: "lines",
      x: [0, 1],
      y: [prevalence, prevalence],
      line: { dash: "dash", color: COLORS.chance },
      name: `prevalence ${prevalence.toFixed(3)}`,
    },
    {
      type: "scatter",
      mode: "lines",
      x: pr.recall,
      y: pr.precision,
      line: { color: COLORS.model, width: 2, shape: "vh" },
      name: `${options.modelName ?? "model"} (AP ${ap.toFixed(3)})`,
    },
  ];
  if (options.operatingPoint) {
    const m = computeMetricsAtThreshold(labels, probs, options.operatingPoint.thresholdProb);
    data.push({
      type: "scatter",
      mode: "markers",
      x: [m.sensitivity],
      y: [m.ppv],
      marker: { color: COLORS.point, size: 12, symbol: "x" },
      name: `${options.operatingPoint.label ?? "operating point"}: t=${m.thresholdProb.toFixed(3)}`,
    });
  }
  const layout = baseLayout(options.title ?? "Precision–recall curve", "Recall (sensitivity)", "Precision (PPV)");
  layout.legend = { x: 0.02, xanchor: "left", y: 0.02, yanchor: "bottom", bgcolor: "rgba(255,255,255,0.7)" };
  return { data, layout };
}

/**
 * Confusion-matrix heatmap (rows = true class, columns = predicted) with counts and row
 * percentages written in each cell. Takes a {@link ConfusionMatrix} or labels, probs and a threshold.
 *
 * @example showFigure(buildConfusionMatrixFigure(computeConfusionMatrix(labels, probs, 0.3)));
 */
export function buildConfusionMatrixFigure(cm: ConfusionMatrix, options: { title?: string } = {}): PlotlyFigure {
  const names = ["benign", "malignant"];
  const z = cm.matrix.map((row) => [...row]);
  const text = z.map((row) => {
    const total = row[0] + row[1];
    return row.map((v) => `${v}<br>(${total ? ((100 * v) / total).toFixed(1) : "–"}% of row)`);
  });
  // Plotly draws heatmap row 0 at the bottom; reverse so "benign" (true) sits on top as printed.
  return {
    data: [
      {
        type: "heatmap",
        z: [...z].reverse(),
        x: names.map((n) => `predicted ${n}`),
        y: [...names].reverse().map((n) => `true ${n}`),
        text: [...text].reverse(),
        texttemplate: "%{text}",
        hovertemplate: "%{y}, %{x}: %{z}<extra></extra>",
        // Light to mid blue, so the black cell text stays readable and more cases look darker.
        colorscale: [
          [0, "#f7fbff"],
          [1, "#6baed6"],
        ],
        zmin: 0,
        showscale: false,
      },
    ],
    layout: {
      title: { text: options.title ?? `Confusion matrix at threshold ${formatThreshold(cm.thresholdProb)}` },
      width: 480,
      height: 420,
      margin: { l: 110, r: 20, t: 50, b: 60 },
      xaxis: { title: { text: "Predicted" }, side: "bottom" },
      yaxis: { title: { text: "True" } },
    },
  };
}

/**
 * Reliability diagram: observed malignant fraction against mean predicted probability per
 * non-empty bin (marker size ∝ count), the perfect-calibration diagonal, and the ECE in the title.
 *
 * @example showFigure(buildReliabilityFigure(labels, probs, { binCount: 10 }));
 */
export function buildReliabilityFigure(
  labels: BinaryLabels,
  probs: ProbabilityScores,
  options: { binCount?: number; title?: string } = {},
): PlotlyFigure {
  const cal = computeCalibration(labels, probs, { binCount: options.binCount ?? 10 });
  const bins = cal.bins.filter((b) => b.count > 0);
  const maxCount = Math.max(...bins.map((b) => b.count));
  return {
    data: [
      {
        type: "scatter",
        mode: "lines",
        x: [0, 1],
        y: [0, 1],
        line: { dash: "dash", color: COLORS.chance },
        name: "perfect calibration",
      },
      {
        type: "scatter",
        mode: "lines+markers",
        x: bins.map((b) => b.meanPredictedProb),
        y: bins.map((b) => b.observedFraction),
        marker: { size: bins.map((b) => 6 + 14 * Math.sqrt(b.count / maxCount)), color: COLORS.model },
        text: bins.map((b) => `bin (${b.lowerProb.toFixed(2)}, ${b.upperProb.toFixed(2)}]: n=${b.count}`),
        hovertemplate: "%{text}<br>mean predicted %{x:.3f}<br>observed %{y:.3f}<extra></extra>",
        name: "model",
      },
      {
        type: "bar",
        x: bins.map((b) => (b.lowerProb + b.upperProb) / 2),
        y: bins.map((b) => b.count),
        width: 1 / cal.binCount,
        yaxis: "y2",
        marker: { color: "rgba(150,150,150,0.35)" },
        name: "count per bin",
      },
    ],
    layout: {
      ...baseLayout(
        options.title ?? `Reliability diagram (ECE ${cal.expectedCalibrationError.toFixed(3)}, ${cal.binCount} bins)`,
        "Mean predicted probability of malignant",
        "Observed fraction malignant",
      ),
      yaxis2: { overlaying: "y", side: "right", showgrid: false, title: { text: "count" } },
      legend: { x: 0.02, xanchor: "left", y: 0.98, yanchor: "top", bgcolor: "rgba(255,255,255,0.7)" },
    },
  };
}

/**
 * Sensitivity and specificity against the threshold (every distinct score), with an optional
 * vertical line at the chosen threshold.
 *
 * @example showFigure(buildThresholdSweepFigure(labels, probs, { markThresholdProb: 0.3 }));
 */
export function buildThresholdSweepFigure(
  labels: BinaryLabels,
  probs: ProbabilityScores,
  options: { title?: string; markThresholdProb?: number } = {},
): PlotlyFigure {
  const roc = computeRocCurve(labels, probs);
  const t = roc.thresholdsProb.slice(1);
  const data: PlotlyTrace[] = [
    {
      type: "scatter",
      mode: "lines",
      x: t,
      y: roc.truePositiveRate.slice(1),
      name: "sensitivity",
      line: { color: COLORS.point, shape: "hv" },
    },
    {
      type: "scatter",
      mode: "lines",
      x: t,
      y: roc.falsePositiveRate.slice(1).map((f) => 1 - f),
      name: "specificity",
      line: { color: COLORS.spec, shape: "hv" },
    },
  ];
  const layout = baseLayout(
    options.title ?? "Sensitivity and specificity by threshold",
    "Threshold (probability of malignant)",
    "Rate",
  );
  layout.xaxis = {
    title: { text: "Threshold (probability of malignant)" },
    range: [Math.min(0, ...t), Math.max(1, ...t)],
  };
  if (options.markThresholdProb !== undefined) {
    layout.shapes = [
      {
        type: "line",
        x0: options.markThresholdProb,
        x1: options.markThresholdProb,
        y0: 0,
        y1: 1,
        yref: "paper",
        line: { dash: "dot", color: "#444" },
      },
    ];
  }
  layout.legend = { x: 0.5, xanchor: "center", y: 0.02, yanchor: "bottom", bgcolor: "rgba(255,255,255,0.7)" };
  return { data, layout };
}

/** One logged point of a scalar series. */
export interface TrainingCurvePoint {
  step: number;
  value: number;
}

/**
 * Scalar series per run and tag: `{[runName]: {[tag]: points}}`. A tag may also map to an
 * object with a `points` array, so the TensorBoard reader's `run.scalars` can be passed as is:
 * `Object.fromEntries(readLogDir(dir).runs.map((r) => [r.name, r.scalars]))`.
 */
export type ScalarSeriesByRun = Record<
  string,
  Record<string, readonly TrainingCurvePoint[] | { points: readonly TrainingCurvePoint[] }>
>;

function pointsOf(
  entry: readonly TrainingCurvePoint[] | { points: readonly TrainingCurvePoint[] } | undefined,
): readonly TrainingCurvePoint[] {
  if (!entry) return [];
  return Array.isArray(entry) ? entry : ((entry as { points: readonly TrainingCurvePoint[] }).points ?? []);
}

/**
 * Training curves: one subplot per tag (stacked), one line per run, same colour for a run in
 * every subplot. `tags` picks and orders the tags (default: all, sorted).
 *
 * @example showFigure(buildTrainingCurvesFigure(series, { tags: ["loss", "val_loss", "val_auc"] }));
 */
export function buildTrainingCurvesFigure(
  series: ScalarSeriesByRun,
  options: { tags?: string[]; title?: string } = {},
): PlotlyFigure {
  const runs = Object.keys(series);
  const allTags = [...new Set(runs.flatMap((r) => Object.keys(series[r])))].sort();
  if (allTags.length === 0)
    throw new ChartInputError(
      "training curves: the series map holds no tags; expected {[runName]: {[tag]: [{step, value}]}}",
    );
  const tags = options.tags ?? allTags;
  for (const tag of tags) {
    if (!allTags.includes(tag))
      throw new ChartInputError(
        `training curves: tag ${JSON.stringify(tag)} is in no run; expected one of ${allTags.join(", ")}`,
      );
  }
  const palette = [
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
  ];
  const data: PlotlyTrace[] = [];
  const layout: Record<string, unknown> = {
    title: { text: options.title ?? "Training curves" },
    grid: { rows: tags.length, columns: 1, pattern: "independent", roworder: "top to bottom" },
    width: 720,
    height: Math.max(320, 240 * tags.length),
    margin: { l: 70, r: 20, t: 50, b: 50 },
  };
  tags.forEach((tag, k) => {
    const axis = k === 0 ? "" : String(k + 1);
    layout[`xaxis${axis}`] = { title: { text: k === tags.length - 1 ? "step" : "" } };
    layout[`yaxis${axis}`] = { title: { text: tag } };
    runs.forEach((run, r) => {
      const points = pointsOf(series[run][tag]);
      if (points.length === 0) return;
      const sorted = [...points].sort((a, b) => a.step - b.step);
      data.push({
        type: "scatter",
        mode: sorted.length === 1 ? "markers" : "lines",
        x: sorted.map((p) => p.step),
        y: sorted.map((p) => p.value),
        name: run,
        legendgroup: run,
        showlegend: k === 0,
        line: { color: palette[r % palette.length] },
        marker: { color: palette[r % palette.length] },
        xaxis: `x${axis}`,
        yaxis: `y${axis}`,
        hovertemplate: `${run}<br>${tag} %{y:.4g} at step %{x}<extra></extra>`,
      });
    });
  });
  return { data, layout };
}

/** One image for the error gallery. */
export interface GalleryItem {
  /** `data:image/jpeg;base64,…` (or any URL the page can load). */
  imageDataUrl: string;
  label: 0 | 1;
  prob: number;
  caption?: string;
}

function formatThreshold(t: number): string {
  return Number.isFinite(t) ? String(Number(t.toFixed(3))) : String(t);
}

/**
 * HTML gallery of the worst errors at a threshold: the `topCount` melanomas with the lowest
 * probability among those called benign (false negatives, the dangerous misses) and the
 * `topCount` benign lesions with the highest probability among those called malignant
 * (false positives). Returns an HTML snippet for `display.html` or a report section.
 *
 * @example display.html(buildErrorGalleryHtml(items, { thresholdProb: 0.3, topCount: 8 }));
 */
export function buildErrorGalleryHtml(
  items: readonly GalleryItem[],
  options: { thresholdProb: number; topCount?: number; imageSizePx?: number },
): string {
  const topCount = options.topCount ?? 8;
  const sizePx = options.imageSizePx ?? 128;
  if (!Number.isFinite(options.thresholdProb))
    throw new MetricInputError(
      `error gallery: thresholdProb is ${options.thresholdProb}; expected a probability such as 0.5`,
    );
  const falseNegatives = items
    .filter((it) => it.label === 1 && it.prob < options.thresholdProb)
    .sort((a, b) => a.prob - b.prob)
    .slice(0, topCount);
  const falsePositives = items
    .filter((it) => it.label === 0 && it.prob >= options.thresholdProb)
    .sort((a, b) => b.prob - a.prob)
    .slice(0, topCount);
  const tile = (it: GalleryItem) =>
    `<figure style="margin:4px;display:inline-block;width:${sizePx}px;vertical-align:top;font:12px sans-serif">` +
    `<img src="${escapeHtml(it.imageDataUrl)}" width="${sizePx}" height="${sizePx}" style="object-fit:cover;display:block" alt="${it.label === 1 ? "malignant" : "benign"} p=${it.prob.toFixed(3)}">` +
    `<figcaption>p(malignant)=${it.prob.toFixed(3)}${it.caption ? `<br>${escapeHtml(it.caption)}` : ""}</figcaption></figure>`;
  const section = (heading: string, list: GalleryItem[]) =>
    `<h4 style="font:bold 14px sans-serif;margin:8px 0 4px">${escapeHtml(heading)} (${list.length})</h4>` +
    (list.length ? `<div>${list.map(tile).join("")}</div>` : `<p style="font:12px sans-serif">none</p>`);
  return (
    `<div class="melanoma-lab-gallery">` +
    section(
      `False negatives at threshold ${formatThreshold(options.thresholdProb)}: melanomas with the lowest probability`,
      falseNegatives,
    ) +
    section(
      `False positives at threshold ${formatThreshold(options.thresholdProb)}: benign lesions with the highest probability`,
      falsePositives,
    ) +
    `</div>`
  );
}

/**
 * Convenience: the confusion matrix figure straight from labels and probabilities.
 *
 * @example showFigure(buildConfusionMatrixFigureAt(labels, probs, 0.5));
 */
export function buildConfusionMatrixFigureAt(
  labels: BinaryLabels,
  probs: ProbabilityScores,
  thresholdProb: number,
  options: { title?: string } = {},
): PlotlyFigure {
  return buildConfusionMatrixFigure(computeConfusionMatrix(labels, probs, thresholdProb), options);
}

/** One logged histogram: the step (epoch) and its buckets, as the TensorBoard reader returns it. */
export interface HistogramSeriesStep {
  step: number;
  buckets: readonly { leftEdge: number; rightEdge: number; count: number }[];
}

/**
 * Histograms over training steps as a heatmap (x = step, y = value, colour = share of values),
 * TensorBoard's "histograms" view for notebooks and reports. Buckets of every step are
 * re-binned onto one common grid of `binCount` value bins (each bucket's count spread over the
 * grid bins it overlaps, in proportion), so steps with different bucket edges line up.
 *
 * @example buildHistogramsOverStepsFigure(run.histograms["dense_Dense1/kernel"].points, { title: "hidden-layer weights" })
 */
export function buildHistogramsOverStepsFigure(
  steps: readonly HistogramSeriesStep[],
  options: { title?: string; binCount?: number; valueTitle?: string } = {},
): PlotlyFigure {
  const withData = steps.filter((s) => s.buckets.length > 0);
  if (withData.length === 0)
    throw new ChartInputError(
      "histograms over steps: received no step with buckets; expected the points of a histogram series",
    );
  const binCount = options.binCount ?? 40;
  let low = Infinity;
  let high = -Infinity;
  for (const s of withData) {
    for (const b of s.buckets) {
      low = Math.min(low, b.leftEdge);
      high = Math.max(high, b.rightEdge);
    }
  }
  if (!(high > low)) high = low + 1;
  const width = (high - low) / binCount;
  const centres = Array.from({ length: binCount }, (_, i) => low + (i + 0.5) * width);
  const z: number[][] = centres.map(() => withData.map(() => 0));
  withData.forEach((s, col) => {
    const total = s.buckets.reduce((n, b) => n + b.count, 0) || 1;
    for (const b of s.buckets) {
      const span = b.rightEdge - b.leftEdge;
      if (span <= 0) {
        // A degenerate bucket (all values equal) goes to the bin that holds its value.
        const row = Math.min(binCount - 1, Math.max(0, Math.floor((b.leftEdge - low) / width)));
        z[row][col] += b.count / total;
        continue;
      }
      const first = Math.max(0, Math.floor((b.leftEdge - low) / width));
      const last = Math.min(binCount - 1, Math.floor((b.rightEdge - low) / width - 1e-12));
      for (let row = first; row <= last; row++) {
        const overlap = Math.min(b.rightEdge, low + (row + 1) * width) - Math.max(b.leftEdge, low + row * width);
        if (overlap > 0) z[row][col] += (b.count * overlap) / span / total;
      }
    }
  });
  return {
    data: [
      {
        type: "heatmap",
        x: withData.map((s) => s.step),
        y: centres,
        z,
        colorscale: "Viridis",
        colorbar: { title: { text: "share" } },
        hovertemplate: "step %{x}<br>value %{y:.3g}<br>share %{z:.3f}<extra></extra>",
      },
    ],
    layout: {
      title: { text: options.title ?? "Histograms over steps" },
      xaxis: { title: { text: "step (epoch)" } },
      yaxis: { title: { text: options.valueTitle ?? "value" } },
    },
  };
}

/**
 * Wraps a long category label (a run name such as
 * "ham10000-dev-mobilenet_v2_inception_v3_mobilenet_v1_1.0-lesion5-e20-s42-dx") for a Plotly axis:
 * breaks after "-", "_" or "." into lines of at most `maxLineChars`, joined by `<br>`, and keeps
 * at most `maxLines` lines, the last ending in "…" when cut. A label without break points is cut
 * every `maxLineChars` characters.
 *
 * @example wrapAxisLabel("ham10000-dev-mobilenet_v2-lesion5-e20-s42", 15) // "ham10000-dev-<br>mobilenet_v2-<br>lesion5-e20-s42"
 */
export function wrapAxisLabel(label: string, maxLineChars = 18, maxLines = 3): string {
  const pieces = label.match(/[^-_.]+[-_.]?|[-_.]/g) ?? [label];
  const lines: string[] = [];
  let line = "";
  for (let piece of pieces) {
    while (piece.length > maxLineChars) {
      if (line) lines.push(line);
      lines.push(piece.slice(0, maxLineChars));
      line = "";
      piece = piece.slice(maxLineChars);
    }
    if (line.length + piece.length > maxLineChars) {
      lines.push(line);
      line = piece;
    } else {
      line += piece;
    }
  }
  if (line) lines.push(line);
  if (lines.length <= maxLines) return lines.join("<br>");
  const kept = lines.slice(0, maxLines);
  kept[maxLines - 1] = kept[maxLines - 1].slice(0, maxLineChars - 1) + "…";
  return kept.join("<br>");
}
