import path from "node:path";
import { createRequire } from "node:module";
import { afterEach, describe, expect, it } from "vitest";
import { NotebookDisplayUnavailableError } from "../../lib/display/showFigure.js";
import type { DisplayDataContent } from "../../lib/display/showFigure.js";
import { buildTableHtml, buildTableText, showTable } from "../../lib/display/showTable.js";
import { findProjectRoot } from "../../lib/util/paths.js";

const requireFromRoot = createRequire(path.join(findProjectRoot(), "package.json"));
const tslabJupyter = requireFromRoot("tslab/dist/jupyter.js") as {
  lastWriteDisplayData: ((content: DisplayDataContent, update: boolean) => void) | null;
};
const dfd = requireFromRoot("danfojs-node") as typeof import("danfojs-node");

afterEach(() => {
  tslabJupyter.lastWriteDisplayData = null;
});

describe("showTable", () => {
  const table = {
    columns: ["value", "total", "share"],
    values: [
      ["<nv>", 3, 0.123456],
      ["mel", 1, null],
    ],
  };

  it("builds an HTML table (escaped, numbers to 4 significant digits, missing blank) and aligned text", () => {
    expect(buildTableHtml(table, "per diagnosis")).toBe(
      '<table class="melanoma-lab-table"><caption style="caption-side:top;text-align:left;font-weight:bold">per diagnosis</caption>' +
        "<thead><tr><th>value</th><th>total</th><th>share</th></tr></thead><tbody>" +
        '<tr><td style="text-align:left">&lt;nv&gt;</td><td style="text-align:right">3</td><td style="text-align:right">0.1235</td></tr>' +
        '<tr><td style="text-align:left">mel</td><td style="text-align:right">1</td><td style="text-align:left"></td></tr></tbody></table>',
    );
    expect(buildTableText(table)).toBe(["value  total   share", "<nv>       3  0.1235", "mel        1"].join("\n"));
  });

  it("shows a danfojs DataFrame with its row labels (describe()) as one display_data output", () => {
    const sent: DisplayDataContent[] = [];
    tslabJupyter.lastWriteDisplayData = (content) => sent.push(content);
    const summary = new dfd.DataFrame({ age_years: [2, 40] }, { index: ["count", "mean"] });
    showTable(summary, "age");
    expect(sent).toHaveLength(1);
    expect(sent[0].data["text/plain"]).toBe(
      ["age", "       age_years", "count          2", "mean          40"].join("\n"),
    );
    expect(sent[0].data["text/html"]).toContain(
      '<tr><th style="text-align:left">count</th><td style="text-align:right">2</td></tr>',
    );
  });

  it("outside a kernel says so by name", () => {
    expect(() => showTable(table)).toThrow(NotebookDisplayUnavailableError);
    expect(() => showTable(table)).toThrow(/^showTable: no Jupyter kernel/);
  });
});
