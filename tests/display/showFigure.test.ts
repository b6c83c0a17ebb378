import path from "node:path";
import { createRequire } from "node:module";
import { afterEach, describe, expect, it } from "vitest";
import {
  NotebookDisplayUnavailableError,
  buildFigureMimeBundle,
  resetPlotlyJsSent,
  showFigure,
  showHtml,
} from "../../lib/display/showFigure.js";
import type { DisplayDataContent } from "../../lib/display/showFigure.js";
import { buildFigureHtml, loadPlotlyJsSource, serializeJsonForScript } from "../../lib/display/plotlyHtml.js";
import { buildConfusionMatrixFigureAt, buildRocFigure } from "../../lib/evaluate/charts.js";
import { findProjectRoot } from "../../lib/util/paths.js";

// The same module instance tslab's kernel writes its display_data function into.
const tslabJupyter = createRequire(path.join(findProjectRoot(), "package.json"))("tslab/dist/jupyter.js") as {
  lastWriteDisplayData: ((content: DisplayDataContent, update: boolean) => void) | null;
};

const labels = [0, 1, 0, 1, 1, 0, 0, 1, 0, 0];
const probs = [0.1, 0.8, 0.3, 0.6, 0.9, 0.2, 0.55, 0.4, 0.05, 0.35];

afterEach(() => {
  tslabJupyter.lastWriteDisplayData = null;
  resetPlotlyJsSent();
});

describe("notebook display", () => {
  it("outside a kernel, showFigure says so by name", () => {
    expect(() => showFigure(buildRocFigure(labels, probs))).toThrow(NotebookDisplayUnavailableError);
  });

  it("sends one display_data with plotly JSON, HTML and text, inlining plotly.js only in the first", () => {
    const sent: Array<{ content: DisplayDataContent; update: boolean }> = [];
    tslabJupyter.lastWriteDisplayData = (content, update) => sent.push({ content, update });
    const roc = buildRocFigure(labels, probs);
    showFigure(roc);
    showFigure(buildConfusionMatrixFigureAt(labels, probs, 0.5));
    showHtml("<b>gallery</b>", "gallery");
    expect(sent).toHaveLength(3);
    const [first, second, third] = sent.map((s) => s.content.data);
    expect(Object.keys(first).sort()).toEqual(["application/vnd.plotly.v1+json", "text/html", "text/plain"]);
    expect(first["application/vnd.plotly.v1+json"]).toMatchObject({ data: roc.data, layout: roc.layout });
    const { version } = loadPlotlyJsSource();
    expect(first["text/html"] as string).toContain(`plotly.js ${version}, inlined once`);
    expect((first["text/html"] as string).length).toBeGreaterThan(3_000_000);
    expect(second["text/html"] as string).not.toContain("inlined once");
    expect((second["text/html"] as string).length).toBeLessThan(20_000);
    expect(second["text/plain"]).toMatch(/Confusion matrix at threshold 0.5/);
    expect(third).toEqual({ "text/html": "<b>gallery</b>", "text/plain": "gallery" });
    expect(sent.every((s) => s.update === false)).toBe(true);
    // After resetPlotlyJsSent (e.g. outputs cleared), the next chart carries plotly.js again.
    resetPlotlyJsSent();
    showFigure(roc);
    expect(sent[3].content.data["text/html"] as string).toContain("inlined once");
  });

  it("figure JSON cannot close its script element", () => {
    const fig = {
      data: [{ type: "scatter", x: [0], y: [0], name: "</script><script>alert(1)</script>" }],
      layout: { title: { text: "x" } },
    };
    const html = buildFigureHtml(fig, { includePlotlyJs: false });
    expect(html.match(/<\/script>/g)).toHaveLength(1);
    expect(JSON.parse(serializeJsonForScript(fig))).toEqual(fig);
    expect(buildFigureMimeBundle(fig, { includePlotlyJs: false })["text/plain"]).toBe("Plotly figure: x (1 traces)");
  });
});
