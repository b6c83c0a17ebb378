import { NotebookDisplayUnavailableError, showHtml } from "./showFigure.js";
import { escapeHtml } from "../util/html.js";

/**
 * What {@link showTable} needs of a table: a danfojs-node DataFrame fits (`columns`, `values`,
 * `index`), as does a plain `{ columns, values }`.
 */
export interface TableLike {
  columns: string[];
  /** One array per row, in column order. */
  values: unknown[][] | unknown[];
  /** Row labels; shown as a first column when they are not just 0, 1, 2, … */
  index?: (string | number)[];
}

function formatCell(value: unknown): string {
  if (value === null || value === undefined || (typeof value === "number" && Number.isNaN(value))) return "";
  if (typeof value === "number" && !Number.isInteger(value)) return String(Number(value.toPrecision(4)));
  return String(value);
}

function rowsOf(table: TableLike): unknown[][] {
  // danfojs gives a one-column frame's values as a flat array.
  return (table.values as unknown[]).map((row) => (Array.isArray(row) ? row : [row]));
}

function showsIndex(table: TableLike, rowCount: number): boolean {
  return table.index !== undefined && table.index.length === rowCount && table.index.some((label, i) => label !== i);
}

/**
 * An HTML `<table>` of a table (header row, an index column when the rows have labels, numbers
 * right-aligned and shown to 4 significant digits, missing values blank), with an optional caption.
 *
 * @example buildTableHtml({ columns: ["value", "total"], values: [["nv", 3]] }, "images per diagnosis")
 */
export function buildTableHtml(table: TableLike, caption?: string): string {
  const rows = rowsOf(table);
  const withIndex = showsIndex(table, rows.length);
  const head = (withIndex ? ["<th></th>"] : []).concat(table.columns.map((c) => `<th>${escapeHtml(c)}</th>`)).join("");
  const body = rows
    .map((row, i) => {
      const cells = row.map(
        (v) => `<td style="text-align:${typeof v === "number" ? "right" : "left"}">${escapeHtml(formatCell(v))}</td>`,
      );
      return `<tr>${withIndex ? `<th style="text-align:left">${escapeHtml(String(table.index![i]))}</th>` : ""}${cells.join("")}</tr>`;
    })
    .join("");
  const captionHtml = caption
    ? `<caption style="caption-side:top;text-align:left;font-weight:bold">${escapeHtml(caption)}</caption>`
    : "";
  return `<table class="melanoma-lab-table">${captionHtml}<thead><tr>${head}</tr></thead><tbody>${body}</tbody></table>`;
}

/**
 * The same table as fixed-width text (the `text/plain` fallback of {@link showTable}).
 *
 * @example buildTableText({ columns: ["value", "total"], values: [["nv", 3]] }) // "value  total\nnv         3"
 */
export function buildTableText(table: TableLike, caption?: string): string {
  const rows = rowsOf(table);
  const withIndex = showsIndex(table, rows.length);
  const grid = [
    (withIndex ? [""] : []).concat(table.columns),
    ...rows.map((row, i) => (withIndex ? [String(table.index![i])] : []).concat(row.map(formatCell))),
  ];
  const widths = grid[0].map((_, c) => Math.max(...grid.map((r) => r[c].length)));
  const lines = grid.map((r) =>
    r
      .map((cell, c) => (c === 0 ? cell.padEnd(widths[c]) : cell.padStart(widths[c])))
      .join("  ")
      .trimEnd(),
  );
  return (caption ? [caption, ...lines] : lines).join("\n");
}

/**
 * Shows a table (a danfojs-node DataFrame, or `{ columns, values }`) in a tslab notebook cell as
 * an HTML table with a text fallback, in one output. Outside a kernel throws
 * {@link NotebookDisplayUnavailableError}.
 *
 * @example showTable(describeDataset(records).frames.source, "images per source");
 */
export function showTable(table: TableLike, caption?: string): void {
  try {
    showHtml(buildTableHtml(table, caption), buildTableText(table, caption));
  } catch (err) {
    if (err instanceof NotebookDisplayUnavailableError)
      throw new NotebookDisplayUnavailableError(err.message.replace(/^showHtml/, "showTable"));
    throw err;
  }
}
