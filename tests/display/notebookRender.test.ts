import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { checkChartsRendered } from "../../lib/display/checkChartsRendered.js";
import { findProjectRoot } from "../../lib/util/paths.js";
import { startClassicNotebook } from "../helpers/notebookServer.js";
import { commandExists, requireTool } from "../helpers/shared.js";

const PYTHON = "/usr/bin/python3";
const root = findProjectRoot();
const outDir = path.join(root, "out", "test-display");

function hasJupyter(): boolean {
  return (
    commandExists(PYTHON) &&
    spawnSync(PYTHON, ["-c", "import nbclient, nbformat, nbconvert"], { stdio: "ignore" }).status === 0
  );
}

// Executes a two-chart notebook in the real tslab kernel, exports it with nbconvert and opens
// the export in headless Chromium: what a person sees in the offline HTML.
describe("charts in an executed notebook", () => {
  it("showFigure outputs carry plotly JSON + HTML; the nbconvert HTML and the classic Notebook UI draw every chart", async (ctx) => {
    requireTool(
      ctx,
      hasJupyter(),
      "Jupyter for /usr/bin/python3 (nbclient, nbconvert)",
      "apt-get install python3-nbclient jupyter-nbconvert",
    );
    requireTool(ctx, commandExists("/usr/bin/chromium"), "Chromium (/usr/bin/chromium)", "apt-get install chromium");
    fs.mkdirSync(outDir, { recursive: true });
    const cells = [
      'import { buildRocFigure, buildConfusionMatrixFigureAt } from "./lib/evaluate/charts.js";\n' +
        'import { showFigure } from "./lib/display/showFigure.js";\n' +
        "const labels = [0, 1, 0, 1, 1, 0, 0, 1, 0, 0];\nconst probs = [0.1, 0.8, 0.3, 0.6, 0.9, 0.2, 0.55, 0.4, 0.05, 0.35];",
      "showFigure(buildRocFigure(labels, probs, { operatingPoint: { thresholdProb: 0.4 } }));",
      "showFigure(buildConfusionMatrixFigureAt(labels, probs, 0.5));",
    ];
    const script = `
import json, sys, nbformat
from nbclient import NotebookClient
from nbconvert import HTMLExporter
out_ipynb, out_html = sys.argv[1], sys.argv[2]
nb = nbformat.v4.new_notebook()
nb.metadata["kernelspec"] = {"name": "tslab-melanoma", "display_name": "TypeScript (melanoma-lab)", "language": "typescript"}
nb.cells = [nbformat.v4.new_code_cell(src) for src in json.loads(sys.stdin.read())]
NotebookClient(nb, timeout=180, kernel_name="tslab-melanoma", resources={"metadata": {"path": sys.argv[3]}}).execute()
nbformat.write(nb, out_ipynb)
html, _ = HTMLExporter().from_notebook_node(nb)
open(out_html, "w").write(html)
`;
    const ipynb = path.join(outDir, "charts.ipynb");
    const html = path.join(outDir, "charts.html");
    const run = spawnSync(PYTHON, ["-c", script, ipynb, html, root], {
      input: JSON.stringify(cells),
      cwd: root,
      env: { ...process.env, JUPYTER_PATH: path.join(root, "jupyter"), MELANOMA_LAB_ROOT: root },
      encoding: "utf8",
      timeout: 240_000,
    });
    expect(run.status, run.stderr.slice(-3000)).toBe(0);

    const nb = JSON.parse(fs.readFileSync(ipynb, "utf8")) as {
      cells: Array<{ outputs?: Array<{ output_type: string; data?: Record<string, unknown> }> }>;
    };
    const displays = nb.cells.flatMap((c) => c.outputs ?? []).filter((o) => o.output_type === "display_data");
    expect(displays).toHaveLength(2);
    for (const d of displays)
      expect(Object.keys(d.data ?? {}).sort()).toEqual(["application/vnd.plotly.v1+json", "text/html", "text/plain"]);
    const htmlSizes = displays.map((d) => String(d.data!["text/html"]).length);
    expect(htmlSizes[0]).toBeGreaterThan(3_000_000); // plotly.js inlined in the first chart
    expect(htmlSizes[1]).toBeLessThan(20_000); // and not again

    const result = await checkChartsRendered(html, { screenshotDir: path.join(root, "out", "screenshots") });
    const summary = result.charts.map((c) => `${c.title}: ${c.rendered ? "ok" : c.problems.join("; ")}`).join("\n");
    expect(result.charts, summary).toHaveLength(2);
    expect(result.allRendered, summary).toBe(true);

    // The same executed notebook, signed (trusted) and opened in the classic Notebook UI (which
    // renders only text/html and runs its scripts only when trusted).
    const env = {
      ...process.env,
      JUPYTER_PATH: path.join(root, "jupyter"),
      JUPYTER_DATA_DIR: path.join(outDir, "jupyter-data"),
      JUPYTER_RUNTIME_DIR: path.join(outDir, "jupyter-runtime"),
      MELANOMA_LAB_ROOT: root,
    };
    const sign = spawnSync(
      PYTHON,
      [
        "-c",
        "import sys, nbformat; from nbformat.sign import NotebookNotary; nb = nbformat.read(sys.argv[1], 4); NotebookNotary().sign(nb)",
        ipynb,
      ],
      { env, encoding: "utf8" },
    );
    expect(sign.status, sign.stderr).toBe(0);
    requireTool(
      ctx,
      spawnSync(PYTHON, ["-c", "import notebook"], { stdio: "ignore" }).status === 0,
      "classic Jupyter Notebook for /usr/bin/python3",
      "apt-get install python3-notebook",
    );
    const server = await startClassicNotebook({
      python: PYTHON,
      notebookDir: outDir,
      env,
      token: "melanoma-lab-test",
      readyTimeoutMs: 30_000,
    });
    try {
      const live = await checkChartsRendered(server.urlOf("charts.ipynb"), {
        screenshotDir: path.join(root, "out", "screenshots"),
        waitForSelector: ".melanoma-lab-chart",
        timeoutMs: 60_000,
      });
      const liveSummary = live.charts.map((c) => `${c.title}: ${c.rendered ? "ok" : c.problems.join("; ")}`).join("\n");
      expect(live.charts, liveSummary).toHaveLength(2);
      expect(live.allRendered, liveSummary).toBe(true);
    } finally {
      await server.stop();
    }
  });
});
