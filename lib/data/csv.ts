import fs from "node:fs";
import Papa from "papaparse";
import { MelanomaLabError } from "../util/errors.js";

/** Thrown when a CSV file cannot be read or lacks the columns a layout needs. */
export class DatasetFormatError extends MelanomaLabError {
  readonly file: string;
  constructor(file: string, reason: string) {
    super(`${file}: ${reason}`);
    this.file = file;
  }
}

/** A parsed CSV: header names (trimmed, BOM removed) and one string map per data row. */
export interface CsvTable {
  file: string;
  columns: string[];
  /** Data rows; `rowNumber` is the 1-based line of the row counting the header as line 1. */
  rows: { rowNumber: number; values: Record<string, string> }[];
}

/**
 * Reads a CSV file with a header row using papaparse (quoted fields, embedded commas and
 * newlines, UTF-8 BOM, CRLF). Blank lines are skipped; values are trimmed.
 * Throws {@link DatasetFormatError} when the file is missing or empty.
 *
 * @example const table = readCsvTable("data/labels.csv"); table.columns // ["image_id", "label"]
 */
export function readCsvTable(file: string): CsvTable {
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch (err) {
    throw new DatasetFormatError(file, `cannot read CSV file (${(err as Error).message})`);
  }
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  if (text.trim() === "") throw new DatasetFormatError(file, "CSV file is empty; expected a header row and data rows");
  const parsed = Papa.parse<Record<string, string>>(text, {
    header: true,
    skipEmptyLines: "greedy",
    transformHeader: (h) => h.trim(),
    transform: (v) => v.trim(),
  });
  const columns = (parsed.meta.fields ?? []).filter((c) => c !== "");
  const rows = parsed.data.map((values, i) => ({ rowNumber: i + 2, values }));
  return { file, columns, rows };
}

/**
 * Throws {@link DatasetFormatError} unless every name in `required` is a column of `table`;
 * the message lists the columns found and the ones expected.
 *
 * @example requireCsvColumns(table, ["image_id", "label"]);
 */
export function requireCsvColumns(table: CsvTable, required: readonly string[]): void {
  const missing = required.filter((c) => !table.columns.includes(c));
  if (missing.length > 0) {
    throw new DatasetFormatError(
      table.file,
      `missing required column(s) ${missing.map((c) => JSON.stringify(c)).join(", ")}; ` +
        `found columns ${table.columns.map((c) => JSON.stringify(c)).join(", ") || "(none)"}; ` +
        `expected at least ${required.map((c) => JSON.stringify(c)).join(", ")}`,
    );
  }
}
