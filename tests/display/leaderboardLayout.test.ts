import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { checkChartsRendered } from "../../lib/display/checkChartsRendered.js";
import { wrapAxisLabel } from "../../lib/evaluate/charts.js";
import { writeHtmlReport } from "../../lib/evaluate/report.js";
import { buildLeaderboardFigure, loadExperimentRuns } from "../../lib/experiments/leaderboard.js";
import { findProjectRoot } from "../../lib/util/paths.js";
import { commandExists, requireTool } from "../helpers/shared.js";

const root = findProjectRoot();

describe("wrapAxisLabel", () => {
  it("breaks long run names after - _ . into short lines, at most maxLines, cutting with …", () => {
    expect(wrapAxisLabel("ham10000-dev-mobilenet_v2-lesion5-e20-s42", 15)).toBe(
      "ham10000-dev-<br>mobilenet_v2-<br>lesion5-e20-s42",
    );
    expect(wrapAxisLabel("ham10000-dev-mobilenet_v2-lesion5-e20-s42", 14)).toBe(
      "ham10000-dev-<br>mobilenet_v2-<br>lesion5-e20-…",
    );
    expect(wrapAxisLabel("short", 14)).toBe("short");
    expect(wrapAxisLabel("abcdefghijklmnopqrstuvwxyz", 10, 2)).toBe("abcdefghij<br>klmnopqrs…");
    expect(wrapAxisLabel("ham10000-dev-mobilenet_v2_inception_v3_mobilenet_v1_1.0-lesion5-e20-s42-dx", 18, 3)).toBe(
      "ham10000-dev-<br>mobilenet_v2_<br>inception_v3_…",
    );
    for (const line of wrapAxisLabel("a-b-c-d-e-f-g-h-i-j-k-l-m-n-o-p-q-r-s-t-u-v-w-x-y-z-aa-bb-cc-dd", 8, 3).split(
      "<br>",
    ))
      expect(line.length).toBeLessThanOrEqual(8);
  });
});

describe("the leaderboard chart as drawn", () => {
  it("gives most of its height to the bars, not to the run-name labels (the runs/ in this repository)", async (ctx) => {
    requireTool(ctx, commandExists("/usr/bin/chromium"), "Chromium (/usr/bin/chromium)", "apt-get install chromium");
    const { runs } = loadExperimentRuns(path.join(root, "runs"));
    expect(runs.length).toBeGreaterThanOrEqual(3);
    const outDir = path.join(root, "out", "test-display");
    fs.mkdirSync(outDir, { recursive: true });
    const html = writeHtmlReport(path.join(outDir, "leaderboard.html"), {
      title: "leaderboard",
      sections: [{ heading: "runs", figures: [buildLeaderboardFigure(runs)] }],
    });
    const report = await checkChartsRendered(html, { screenshotDir: path.join(root, "out", "screenshots") });
    expect(report.charts).toHaveLength(1);
    const chart = report.charts[0];
    expect(chart.rendered, chart.problems.join("; ")).toBe(true);
    // With rotated full run names the plotting area was under a third of the chart.
    expect(
      chart.plotAreaHeightPx / chart.heightPx,
      `${chart.plotAreaHeightPx} of ${chart.heightPx} px`,
    ).toBeGreaterThan(0.5);
  }, 120_000);
});
