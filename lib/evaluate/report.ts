import fs from "node:fs";
import path from "node:path";
import { MelanomaLabError } from "../util/errors.js";
import { buildFigureHtml, buildPlotlyLoaderHtml } from "../display/plotlyHtml.js";
import type { BootstrapInterval } from "./bootstrap.js";
import type { PlotlyFigure } from "./charts.js";
import { escapeHtml } from "../util/html.js";

/** Thrown when a report's content is malformed (a table row of the wrong width, no title). */
export class ReportInputError extends MelanomaLabError {}

/** A table cell: text, a number (3 decimals, NaN → "n/a"), or an estimate with its CI ("0.873 (0.841–0.905)"). */
export type ReportCell = string | number | BootstrapInterval;

/** A table with a header row. */
export interface ReportTable {
  columns: string[];
  rows: ReportCell[][];
  caption?: string;
}

/** One report section: a heading and any of figures, a table, an HTML snippet, a paragraph. */
export interface ReportSection {
  heading: string;
  text?: string;
  figures?: PlotlyFigure[];
  table?: ReportTable;
  /** Trusted HTML inserted as is (e.g. {@link buildErrorGalleryHtml}). */
  html?: string;
}

function isInterval(cell: ReportCell): cell is BootstrapInterval {
  return typeof cell === "object" && cell !== null && "estimate" in cell && "lower" in cell && "upper" in cell;
}

/**
 * Text of a table cell: numbers with `digits` decimals, NaN as "n/a", intervals as
 * "estimate (lower–upper)".
 *
 * @example formatReportCell({ estimate: 0.8731, lower: 0.84, upper: 0.9, … }) // "0.873 (0.840–0.900)"
 */
export function formatReportCell(cell: ReportCell, digits = 3): string {
  const num = (v: number) =>
    Number.isFinite(v) ? (Number.isInteger(v) && Math.abs(v) > 1 ? String(v) : v.toFixed(digits)) : "n/a";
  if (typeof cell === "number") return num(cell);
  if (isInterval(cell)) return `${num(cell.estimate)} (${num(cell.lower)}–${num(cell.upper)})`;
  return String(cell);
}

function renderTable(table: ReportTable, where: string): string {
  table.rows.forEach((row, i) => {
    if (row.length !== table.columns.length) {
      throw new ReportInputError(
        `${where}: table row ${i} has ${row.length} cells; expected ${table.columns.length} (one per column: ${table.columns.join(", ")})`,
      );
    }
  });
  const head = `<tr>${table.columns.map((c) => `<th>${escapeHtml(c)}</th>`).join("")}</tr>`;
  const body = table.rows
    .map((row) => `<tr>${row.map((c) => `<td>${escapeHtml(formatReportCell(c))}</td>`).join("")}</tr>`)
    .join("\n");
  return `<table class="metrics">${table.caption ? `<caption>${escapeHtml(table.caption)}</caption>` : ""}<thead>${head}</thead><tbody>\n${body}\n</tbody></table>`;
}

/**
 * Builds the standalone HTML report as a string (see {@link writeHtmlReport}).
 *
 * @example const html = buildHtmlReport({ title: "Run 3", sections: [{ heading: "ROC", figures: [roc] }] });
 */
export function buildHtmlReport(report: { title: string; sections: ReportSection[]; generatedAt?: Date }): string {
  if (!report.title || typeof report.title !== "string") {
    throw new ReportInputError(`report title is ${JSON.stringify(report.title)}; expected a non-empty string`);
  }
  const hasFigures = report.sections.some((s) => s.figures && s.figures.length > 0);
  const sections = report.sections
    .map((s, k) => {
      const parts = [`<h2>${escapeHtml(s.heading)}</h2>`];
      if (s.text) parts.push(`<p>${escapeHtml(s.text)}</p>`);
      if (s.table) parts.push(renderTable(s.table, `section ${k} (${s.heading})`));
      if (s.figures?.length)
        parts.push(
          `<div class="figures">${s.figures.map((f) => `<div class="figure">${buildFigureHtml(f, { includePlotlyJs: false })}</div>`).join("\n")}</div>`,
        );
      if (s.html) parts.push(s.html);
      return `<section>\n${parts.join("\n")}\n</section>`;
    })
    .join("\n");
  const generatedAt = (report.generatedAt ?? new Date()).toISOString();
  return [
    "<!doctype html>",
    '<html lang="en"><head><meta charset="utf-8">',
    `<title>${escapeHtml(report.title)}</title>`,
    "<style>body{font-family:system-ui,sans-serif;margin:24px;max-width:1200px}h1{font-size:22px}h2{font-size:18px;margin-top:28px;border-bottom:1px solid #ddd}" +
      "table.metrics{border-collapse:collapse;margin:8px 0}table.metrics th,table.metrics td{border:1px solid #ccc;padding:4px 8px;text-align:right}" +
      "table.metrics th{background:#f3f3f3}table.metrics td:first-child,table.metrics th:first-child{text-align:left}.figures{display:flex;flex-wrap:wrap;gap:12px}caption{text-align:left;color:#555;padding:4px 0}</style>",
    // plotly.js goes in the head once, so every chart below finds window.Plotly (offline, no CDN).
    hasFigures ? buildPlotlyLoaderHtml() : "",
    "</head><body>",
    `<h1>${escapeHtml(report.title)}</h1>`,
    `<p style="color:#666">Generated ${generatedAt} by melanoma-lab.</p>`,
    sections,
    "</body></html>",
    "",
  ].join("\n");
}

/**
 * Writes a standalone, offline HTML report: plotly.js inlined once (~4.8 MB), each section's
 * figures, metric table (cells may be bootstrap intervals, shown "0.873 (0.841–0.905)") and
 * HTML snippets. Creates the folder. Returns the absolute path.
 *
 * @example writeHtmlReport("out/report.html", { title: "Validation", sections: [
 *   { heading: "Metrics", table: { columns: ["metric", "value (95% CI)"], rows: [["ROC AUC", aucInterval]] } },
 *   { heading: "ROC", figures: [buildRocFigure(labels, probs)] },
 * ] });
 */
export function writeHtmlReport(
  filePath: string,
  report: { title: string; sections: ReportSection[]; generatedAt?: Date },
): string {
  const html = buildHtmlReport(report);
  const full = path.resolve(filePath);
  fs.mkdirSync(path.dirname(full), { recursive: true });
  fs.writeFileSync(full, html);
  return full;
}
