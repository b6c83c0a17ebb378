import fs from "node:fs";
import path from "node:path";
import { randomBytes } from "node:crypto";
import { createRequire } from "node:module";
import { MelanomaLabError } from "../util/errors.js";
import { findProjectRoot } from "../util/paths.js";
import type { PlotlyFigure } from "./plotlyFigure.js";
import { escapeHtml } from "../util/html.js";

/** Thrown when plotly.js cannot be found or a figure cannot be turned into HTML. */
export class PlotlyAssetError extends MelanomaLabError {}

let cachedPlotlySource: { path: string; source: string; version: string } | undefined;

/**
 * The plotly.js bundle from `node_modules/plotly.js-dist-min` (read once per process), made
 * safe to inline in a `<script>` element.
 *
 * @example const { source, version } = loadPlotlyJsSource(); // version "3.7.0", ~4.8 MB
 */
export function loadPlotlyJsSource(): { path: string; source: string; version: string } {
  if (cachedPlotlySource) return cachedPlotlySource;
  const requireFromRoot = createRequire(path.join(findProjectRoot(), "package.json"));
  let file: string;
  try {
    file = requireFromRoot.resolve("plotly.js-dist-min");
  } catch {
    throw new PlotlyAssetError(
      `plotly.js-dist-min is not installed under ${findProjectRoot()}/node_modules; expected the dependency from package.json (run npm install)`,
    );
  }
  const raw = fs.readFileSync(file, "utf8");
  const version = /plotly\.js v([\d.]+)/.exec(raw.slice(0, 400))?.[1] ?? "unknown";
  // An HTML parser ends a script at "</script" wherever it appears, even inside a JS string.
  const source = raw.replace(/<\/script/gi, "<\\/script");
  cachedPlotlySource = { path: file, source, version };
  return cachedPlotlySource;
}

/**
 * JSON for a `<script>` body: `<` escaped so no string in the figure can close the element.
 *
 * @example serializeJsonForScript({ name: "</script>" }) // '{"name":"\\u003c/script>"}'
 */
export function serializeJsonForScript(value: unknown): string {
  return JSON.stringify(value)
    .replace(/</g, "\\u003c")
    .replace(/\u2028/g, "\\u2028")
    .replace(/\u2029/g, "\\u2029");
}

/**
 * The `<script>` element that defines `window.Plotly` (about 4.8 MB).
 *
 * @example `<head>${buildPlotlyLoaderHtml()}</head>`
 */
export function buildPlotlyLoaderHtml(): string {
  const { source, version } = loadPlotlyJsSource();
  return `<script type="text/javascript">/* plotly.js ${version}, inlined once by melanoma-lab */\n${source}\n</script>`;
}

/**
 * The title text of a figure, or "chart" when it has none.
 *
 * @example describeFigureTitle(buildRocFigure(labels, probs)) // "ROC curve (n=400, 85 malignant)"
 */
export function describeFigureTitle(fig: PlotlyFigure): string {
  const title = fig.layout.title;
  if (typeof title === "string") return title;
  if (title && typeof title === "object" && typeof (title as { text?: unknown }).text === "string")
    return (title as { text: string }).text;
  return "chart";
}

/**
 * HTML that draws one figure: a `<div class="melanoma-lab-chart">` and a script calling
 * `Plotly.newPlot`. With `includePlotlyJs` the plotly.js bundle is inlined first; without it
 * the script waits (up to 10 s) for `window.Plotly` from an earlier output or page script, and
 * writes a visible message into the div if it never comes.
 *
 * @example fs.writeFileSync("roc.html", `<!doctype html><meta charset="utf-8">${buildFigureHtml(fig, { includePlotlyJs: true })}`);
 */
export function buildFigureHtml(fig: PlotlyFigure, options: { includePlotlyJs: boolean; divId?: string }): string {
  if (!fig || !Array.isArray(fig.data) || typeof fig.layout !== "object" || fig.layout === null) {
    throw new PlotlyAssetError(
      `buildFigureHtml: received ${JSON.stringify(fig)?.slice(0, 80)}; expected a Plotly figure {data: [...], layout: {...}}`,
    );
  }
  const divId = options.divId ?? `melanoma-lab-chart-${randomBytes(6).toString("hex")}`;
  const width = typeof fig.layout.width === "number" ? `${fig.layout.width}px` : "100%";
  const height = typeof fig.layout.height === "number" ? `${fig.layout.height}px` : "450px";
  const title = describeFigureTitle(fig);
  const payload = serializeJsonForScript({ data: fig.data, layout: fig.layout });
  const draw =
    `<script type="text/javascript">(function () {\n` +
    `  var fig = ${payload};\n` +
    `  var id = ${JSON.stringify(divId)}, waitedMs = 0;\n` +
    `  function draw() {\n` +
    `    var el = document.getElementById(id);\n` +
    `    if (!el) return;\n` +
    `    if (window.Plotly) { window.Plotly.newPlot(el, fig.data, fig.layout, { displaylogo: false, responsive: false }); return; }\n` +
    `    if (waitedMs >= 10000) { el.textContent = "plotly.js is not loaded on this page: rerun the notebook from the top (the first chart's output carries plotly.js)."; return; }\n` +
    `    waitedMs += 100; setTimeout(draw, 100);\n` +
    `  }\n` +
    `  draw();\n` +
    `})();</script>`;
  return (
    (options.includePlotlyJs ? buildPlotlyLoaderHtml() + "\n" : "") +
    `<div class="melanoma-lab-chart" id="${divId}" data-chart-title="${escapeHtml(title)}" style="width:${width};height:${height};max-width:100%"></div>\n` +
    draw
  );
}
