import { describe, expect, it } from "vitest";
import {
  ChartInputError,
  buildConfusionMatrixFigureAt,
  buildErrorGalleryHtml,
  buildPrecisionRecallFigure,
  buildReliabilityFigure,
  buildRocFigure,
  buildThresholdSweepFigure,
  buildTrainingCurvesFigure,
  computeRocBootstrapBand,
  selectRocCornerIndices,
} from "../../lib/evaluate/charts.js";
import type { GalleryItem, PlotlyTrace } from "../../lib/evaluate/charts.js";
import {
  computeCalibration,
  computeMetricsAtThreshold,
  computeRocAuc,
  computeRocCurve,
} from "../../lib/evaluate/metrics.js";
import { makeSyntheticScores } from "./fixtures/syntheticScores.js";

const { labels, probs } = makeSyntheticScores({ count: 300, prevalence: 0.2, separation: 2, seed: 21 });
const byName = (data: PlotlyTrace[], pattern: RegExp) => data.find((t) => pattern.test(String(t.name)))!;

describe("figures carry the metric values, not decoration", () => {
  it("ROC: curve points, AUC in the legend, operating point, bootstrap band around the curve", () => {
    const threshold = 0.4;
    const fig = buildRocFigure(labels, probs, {
      bootstrap: { iterations: 100, seed: 4 },
      operatingPoint: { thresholdProb: threshold, label: "op" },
    });
    const roc = computeRocCurve(labels, probs);
    const model = byName(fig.data, /AUC/);
    const x = model.x as number[];
    const y = model.y as number[];
    // Only corners are drawn, but they are real ROC points and enclose the same area.
    expect(x.length).toBeLessThan(roc.falsePositiveRate.length);
    x.forEach((f, i) =>
      expect(roc.falsePositiveRate.some((rf, k) => rf === f && roc.truePositiveRate[k] === y[i])).toBe(true),
    );
    let area = 0;
    for (let i = 1; i < x.length; i++) area += ((x[i] - x[i - 1]) * (y[i] + y[i - 1])) / 2;
    expect(area).toBeCloseTo(computeRocAuc(labels, probs), 12);
    expect(model.name).toContain(computeRocAuc(labels, probs).toFixed(3));
    const m = computeMetricsAtThreshold(labels, probs, threshold);
    const op = byName(fig.data, /^op:/);
    expect(op.x).toEqual([1 - m.specificity]);
    expect(op.y).toEqual([m.sensitivity]);
    const lower = byName(fig.data, /band lower/).y as number[];
    const upper = byName(fig.data, /bootstrap band/).y as number[];
    expect(lower.every((v, i) => v <= upper[i])).toBe(true);
    expect(upper.some((v, i) => v - lower[i] > 0.02)).toBe(true);
  });

  it("corner selection drops only collinear points", () => {
    expect(selectRocCornerIndices([0, 0, 0, 0.5, 1], [0, 0.5, 1, 1, 1])).toEqual([0, 2, 4]);
    expect(selectRocCornerIndices([0, 0.25, 0.5, 0.5], [0, 0.25, 0.5, 1])).toEqual([0, 2, 3]);
  });

  it("bootstrap band: TPR at FPR 0 and 1 is sensible and the curve mostly lies inside", () => {
    const band = computeRocBootstrapBand(labels, probs, { iterations: 200, seed: 9, gridPoints: 51 });
    expect(band.upperTpr[50]).toBe(1);
    expect(band.lowerTpr[50]).toBe(1);
    const roc = computeRocCurve(labels, probs);
    const tprAt = (f: number) => Math.max(...roc.truePositiveRate.filter((_, k) => roc.falsePositiveRate[k] <= f));
    const inside = band.falsePositiveRate.filter(
      (f, g) => tprAt(f) >= band.lowerTpr[g] - 1e-9 && tprAt(f) <= band.upperTpr[g] + 1e-9,
    ).length;
    expect(inside / band.falsePositiveRate.length).toBeGreaterThan(0.9);
  });

  it("confusion matrix heatmap: true benign row on top, counts in cells", () => {
    const fig = buildConfusionMatrixFigureAt(labels, probs, 0.5);
    const m = computeMetricsAtThreshold(labels, probs, 0.5);
    const heat = fig.data[0];
    // Plotly draws row 0 at the bottom, so the figure lists malignant first.
    expect(heat.y).toEqual(["true malignant", "true benign"]);
    expect(heat.z).toEqual([
      [m.falseNegatives, m.truePositives],
      [m.trueNegatives, m.falsePositives],
    ]);
    expect(String((heat.text as string[][])[1][0])).toMatch(new RegExp(`^${m.trueNegatives}<br>`));
  });

  it("PR, reliability and threshold sweep", () => {
    const pr = buildPrecisionRecallFigure(labels, probs);
    const prevalence = labels.filter((y) => y === 1).length / labels.length;
    expect(byName(pr.data, /prevalence/).y).toEqual([prevalence, prevalence]);
    const rel = buildReliabilityFigure(labels, probs, { binCount: 5 });
    const cal = computeCalibration(labels, probs, { binCount: 5 });
    const nonEmpty = cal.bins.filter((b) => b.count > 0);
    expect(byName(rel.data, /^model$/).y).toEqual(nonEmpty.map((b) => b.observedFraction));
    expect(byName(rel.data, /count per bin/).y).toEqual(nonEmpty.map((b) => b.count));
    const sweep = buildThresholdSweepFigure(labels, probs, { markThresholdProb: 0.3 });
    const sens = byName(sweep.data, /sensitivity/).y as number[];
    expect(sens[sens.length - 1]).toBe(1);
    expect((sweep.layout.shapes as Array<{ x0: number }>)[0].x0).toBe(0.3);
  });

  it("training curves: a subplot per tag, a line per run, steps sorted", () => {
    const series = {
      a: {
        loss: [
          { step: 2, value: 0.5 },
          { step: 1, value: 0.9 },
        ],
        val_auc: [{ step: 1, value: 0.7 }],
      },
      b: { loss: [{ step: 1, value: 1 }] },
    };
    const fig = buildTrainingCurvesFigure(series);
    expect(fig.data).toHaveLength(3);
    expect(fig.data[0]).toMatchObject({ name: "a", x: [1, 2], y: [0.9, 0.5], xaxis: "x", yaxis: "y" });
    expect(fig.data[2]).toMatchObject({ name: "a", xaxis: "x2", yaxis: "y2", mode: "markers" });
    expect(fig.layout.grid).toMatchObject({ rows: 2, columns: 1 });
    expect(() => buildTrainingCurvesFigure(series, { tags: ["val_loss"] })).toThrow(
      /tag "val_loss" is in no run; expected one of loss, val_auc/,
    );
    expect(() => buildTrainingCurvesFigure({})).toThrow(ChartInputError);
    // The TensorBoard reader's run.scalars shape ({tag: {points}}) works as is.
    const fromReader = buildTrainingCurvesFigure({
      a: {
        loss: {
          points: [
            { step: 1, value: 0.9 },
            { step: 2, value: 0.5 },
          ],
        },
      },
    });
    expect(fromReader.data[0]).toMatchObject({ name: "a", x: [1, 2], y: [0.9, 0.5] });
  });

  it("error gallery: lowest-probability melanomas and highest-probability benign, escaped", () => {
    const items: GalleryItem[] = [
      { imageDataUrl: "data:image/png;base64,AAA", label: 1, prob: 0.2, caption: "<m1>" },
      { imageDataUrl: "data:image/png;base64,BBB", label: 1, prob: 0.05, caption: "m2" },
      { imageDataUrl: "data:image/png;base64,CCC", label: 1, prob: 0.8, caption: "caught" },
      { imageDataUrl: "data:image/png;base64,DDD", label: 0, prob: 0.95, caption: "b1" },
      { imageDataUrl: "data:image/png;base64,EEE", label: 0, prob: 0.1, caption: "fine" },
    ];
    const html = buildErrorGalleryHtml(items, { thresholdProb: 0.5, topCount: 5 });
    expect(html).toContain("False negatives at threshold 0.5: melanomas with the lowest probability (2)");
    expect(html.indexOf("m2")).toBeLessThan(html.indexOf("&lt;m1&gt;"));
    expect(html).not.toContain("<m1>");
    expect(html).not.toContain("caught");
    expect(html).not.toContain("fine");
    expect(html).toContain("False positives at threshold 0.5: benign lesions with the highest probability (1)");
  });
});
