import fs from "node:fs";
import path from "node:path";
import sharp from "sharp";
import { describe, expect, it } from "vitest";
import { commandExists, requireTool } from "../helpers/shared.js";
import { bootstrapMetric } from "../../lib/evaluate/bootstrap.js";
import {
  buildConfusionMatrixFigureAt,
  buildErrorGalleryHtml,
  buildPrecisionRecallFigure,
  buildReliabilityFigure,
  buildRocFigure,
  buildThresholdSweepFigure,
  buildTrainingCurvesFigure,
} from "../../lib/evaluate/charts.js";
import type { GalleryItem } from "../../lib/evaluate/charts.js";
import { computeRocAuc, findThresholdForSensitivity } from "../../lib/evaluate/metrics.js";
import { buildMetricTable, summarizeMetricsWithIntervals } from "../../lib/evaluate/summary.js";
import { ReportInputError, buildHtmlReport, formatReportCell, writeHtmlReport } from "../../lib/evaluate/report.js";
import { checkChartsRendered } from "../../lib/display/checkChartsRendered.js";
import { buildFigureHtml, buildPlotlyLoaderHtml } from "../../lib/display/plotlyHtml.js";
import { findProjectRoot } from "../../lib/util/paths.js";
import { makeSyntheticScores } from "./fixtures/syntheticScores.js";

const outDir = path.join(findProjectRoot(), "out", "test-evaluate");
const screenshotDir = path.join(findProjectRoot(), "out", "screenshots");
const CHROMIUM = "/usr/bin/chromium";

async function makeTileDataUrl(rgb: [number, number, number]): Promise<string> {
  const png = await sharp({
    create: { width: 16, height: 16, channels: 3, background: { r: rgb[0], g: rgb[1], b: rgb[2] } },
  })
    .png()
    .toBuffer();
  return `data:image/png;base64,${png.toString("base64")}`;
}

describe("HTML report", () => {
  it("formats intervals and rejects malformed tables", () => {
    expect(
      formatReportCell({
        estimate: 0.87312,
        lower: 0.84,
        upper: 0.9,
        standardError: 0.01,
        confidenceLevel: 0.95,
        iterations: 10,
        validIterations: 10,
        seed: 1,
      }),
    ).toBe("0.873 (0.840–0.900)");
    expect(formatReportCell(NaN)).toBe("n/a");
    expect(formatReportCell(412)).toBe("412");
    expect(() =>
      buildHtmlReport({ title: "t", sections: [{ heading: "h", table: { columns: ["a", "b"], rows: [["x"]] } }] }),
    ).toThrow(ReportInputError);
    // No figures: no 4.8 MB plotly.js in the file.
    const small = buildHtmlReport({ title: "<t>", sections: [{ heading: "only text", text: "a < b" }] });
    expect(small.length).toBeLessThan(5000);
    expect(small).toContain("&lt;t&gt;");
  });

  it("a report with every chart renders in headless Chromium (screenshots in out/screenshots)", async (ctx) => {
    const { labels, probs } = makeSyntheticScores({ count: 400, prevalence: 0.2, separation: 2, seed: 7 });
    const op = findThresholdForSensitivity(labels, probs, 0.9);
    const auc = bootstrapMetric(labels, probs, computeRocAuc, { iterations: 200, seed: 1 });
    const specAt90 = bootstrapMetric(labels, probs, (y, p) => findThresholdForSensitivity(y, p, 0.9).specificity, {
      iterations: 200,
      seed: 1,
    });
    const metricRows = summarizeMetricsWithIntervals(labels, probs, {
      thresholdProb: op.thresholdProb,
      iterations: 200,
      seed: 1,
    });
    const series = {
      "run-a": {
        loss: [0, 1, 2, 3, 4].map((s) => ({ step: s, value: 1 / (s + 1) })),
        val_auc: [0, 2, 4].map((s) => ({ step: s, value: 0.6 + 0.05 * s })),
      },
      "run-b": {
        loss: [0, 1, 2, 3, 4].map((s) => ({ step: s, value: 1.2 / (s + 1.5) })),
        val_auc: [0, 2, 4].map((s) => ({ step: s, value: 0.55 + 0.06 * s })),
      },
    };
    const tiles: GalleryItem[] = [];
    for (let i = 0; i < 6; i++)
      tiles.push({
        imageDataUrl: await makeTileDataUrl([40 * i, 80, 200 - 30 * i]),
        label: (i % 2) as 0 | 1,
        prob: i % 2 ? 0.05 * i : 0.9 - 0.05 * i,
        caption: `ISIC_${i}`,
      });
    const file = writeHtmlReport(path.join(outDir, "report.html"), {
      title: "Validation report (synthetic)",
      sections: [
        {
          heading: "Metrics",
          text: `Operating point: threshold ${op.thresholdProb.toFixed(3)} (90% sensitivity).`,
          table: buildMetricTable(metricRows),
        },
        {
          heading: "Threshold re-chosen in each resample",
          table: {
            columns: ["metric", "value (95% CI, 200 stratified bootstrap resamples)"],
            rows: [
              [`Specificity at 90% sensitivity`, specAt90],
              ["Examples", labels.length],
            ],
          },
        },
        {
          heading: "Curves",
          figures: [
            buildRocFigure(labels, probs, {
              bootstrap: { iterations: 100, seed: 3 },
              operatingPoint: { thresholdProb: op.thresholdProb, label: "90% sensitivity" },
            }),
            buildPrecisionRecallFigure(labels, probs, { operatingPoint: { thresholdProb: op.thresholdProb } }),
            buildConfusionMatrixFigureAt(labels, probs, op.thresholdProb),
            buildReliabilityFigure(labels, probs),
            buildThresholdSweepFigure(labels, probs, { markThresholdProb: op.thresholdProb }),
          ],
        },
        { heading: "Training", figures: [buildTrainingCurvesFigure(series)] },
        { heading: "Worst errors", html: buildErrorGalleryHtml(tiles, { thresholdProb: 0.5, topCount: 3 }) },
      ],
    });
    const html = fs.readFileSync(file, "utf8");
    // plotly.js is inlined exactly once however many charts there are.
    expect(html.match(/plotly\.js v\d/g)?.length).toBe(1);
    expect(html).toContain(formatReportCell(auc));

    requireTool(ctx, commandExists(CHROMIUM), "Chromium (/usr/bin/chromium)", "apt-get install chromium");
    const result = await checkChartsRendered(file, { screenshotDir });
    const summary = result.charts.map((c) => `${c.index} ${c.title}: ${c.rendered ? "ok" : c.problems.join("; ")}`);
    console.log(summary.join("\n"));
    expect(result.pageErrors).toEqual([]);
    expect(result.charts).toHaveLength(6);
    expect(result.allRendered, summary.join("\n")).toBe(true);
    for (const c of result.charts) {
      expect(c.xTickCount + c.yTickCount).toBeGreaterThan(2);
      expect(fs.existsSync(c.screenshotPath!)).toBe(true);
    }
    expect(result.charts[0].title).toMatch(/ROC curve/);
    // ROC: band fill + lines + the operating point marker.
    expect(result.charts[0].drawnMarkCount).toBeGreaterThanOrEqual(4);
  });

  it("the checker reports charts that did not draw", async (ctx) => {
    requireTool(ctx, commandExists(CHROMIUM), "Chromium (/usr/bin/chromium)", "apt-get install chromium");
    fs.mkdirSync(outDir, { recursive: true });
    // Plotly present, but one figure has no traces and one is drawn into a zero-size box.
    const emptyFigure = { data: [], layout: { title: { text: "empty" }, width: 300, height: 250 } };
    const page = path.join(outDir, "broken-charts.html");
    fs.writeFileSync(
      page,
      `<!doctype html><meta charset="utf-8">${buildPlotlyLoaderHtml()}${buildFigureHtml(emptyFigure, { includePlotlyJs: false })}`,
    );
    const broken = await checkChartsRendered(page);
    expect(broken.charts).toHaveLength(1);
    expect(broken.charts[0].rendered).toBe(false);
    expect(broken.charts[0].problems.join(" ")).toMatch(/no traces/);
    // plotly.js missing from the page (e.g. the first chart's output was cleared): the div says so.
    const missing = path.join(outDir, "missing-plotly.html");
    fs.writeFileSync(
      missing,
      `<!doctype html><meta charset="utf-8">${buildFigureHtml(buildThresholdSweepFigure([0, 1, 0, 1], [0.1, 0.8, 0.3, 0.6]), { includePlotlyJs: false })}`,
    );
    const noPlotly = await checkChartsRendered(missing, { timeoutMs: 15_000 });
    expect(noPlotly.charts).toHaveLength(1);
    expect(noPlotly.charts[0].rendered).toBe(false);
    expect(noPlotly.charts[0].problems.join(" ")).toMatch(/no \.main-svg.*plotly\.js is not loaded/);
  });
});
