import { UnknownNameError } from "../util/errors.js";
import type { LesionRecord } from "../data/types.js";
import {
  MetricInputError,
  computeConfusionMatrix,
  computeRocAuc,
  deriveThresholdMetrics,
  validateBinaryInputs,
} from "./metrics.js";

/** Record fields subgroups can be formed by. */
export const SUBGROUP_FIELDS = ["sex", "ageBand", "site", "source"] as const;
/** One of {@link SUBGROUP_FIELDS}. */
export type SubgroupField = (typeof SUBGROUP_FIELDS)[number];

/** What a subgroup row needs from a record: its label and, optionally, the grouping fields. */
export type SubgroupRecord = Pick<LesionRecord, "label"> &
  Partial<Pick<LesionRecord, "sex" | "ageYears" | "site" | "source">>;

/** Metrics of one subgroup. Undefined ratios (e.g. sensitivity in a group with no melanoma) are NaN, explained in `note`. */
export interface SubgroupMetrics {
  field: SubgroupField | "all";
  group: string;
  count: number;
  positives: number;
  negatives: number;
  rocAuc: number;
  sensitivity: number;
  specificity: number;
  ppv: number;
  npv: number;
  thresholdProb: number;
  /** Why some numbers are NaN, when they are. */
  note?: string;
}

/** Default age band lower edges in years: <30, 30–44, 45–59, 60–74, 75+. */
export const DEFAULT_AGE_BAND_EDGES_YEARS: readonly number[] = [30, 45, 60, 75];

/**
 * The age band label of an age: with edges [30, 45, 60, 75], 29 → "<30", 30 → "30–44", 80 → "75+".
 * A missing age gives "unknown".
 *
 * @example describeAgeBand(52) // "45–59"
 */
export function describeAgeBand(
  ageYears: number | undefined,
  edgesYears: readonly number[] = DEFAULT_AGE_BAND_EDGES_YEARS,
): string {
  if (ageYears === undefined || !Number.isFinite(ageYears)) return "unknown";
  if (ageYears < edgesYears[0]) return `<${edgesYears[0]}`;
  for (let k = 1; k < edgesYears.length; k++) {
    if (ageYears < edgesYears[k]) return `${edgesYears[k - 1]}–${edgesYears[k] - 1}`;
  }
  return `${edgesYears[edgesYears.length - 1]}+`;
}

function groupOf(record: SubgroupRecord, field: SubgroupField, edges: readonly number[]): string {
  if (field === "ageBand") return describeAgeBand(record.ageYears, edges);
  const value = record[field];
  return value === undefined || value === null || String(value).trim() === "" ? "unknown" : String(value);
}

function summarise(
  field: SubgroupField | "all",
  group: string,
  labels: number[],
  probs: number[],
  thresholdProb: number,
): SubgroupMetrics {
  const positives = labels.reduce((s, y) => s + y, 0);
  const negatives = labels.length - positives;
  const m = deriveThresholdMetrics(computeConfusionMatrix(labels, probs, thresholdProb));
  let note: string | undefined;
  let rocAuc = NaN;
  if (positives === 0) note = "no malignant examples: AUC and sensitivity undefined";
  else if (negatives === 0) note = "no benign examples: AUC and specificity undefined";
  else rocAuc = computeRocAuc(labels, probs);
  return {
    field,
    group,
    count: labels.length,
    positives,
    negatives,
    rocAuc,
    sensitivity: m.sensitivity,
    specificity: m.specificity,
    ppv: m.ppv,
    npv: m.npv,
    thresholdProb,
    ...(note ? { note } : {}),
  };
}

/**
 * Metrics per subgroup (sex, age band, anatomic site or source) at one threshold, with counts,
 * after an "all" row. Missing field values form the group "unknown". Groups holding one class
 * get NaN for the undefined metrics and a `note` (never a made-up number). Groups are sorted by
 * descending count.
 *
 * @example computeSubgroupMetrics(records, probs, { field: "sex", thresholdProb: 0.3 })
 * // [{ field: "all", group: "all", count: 200, … }, { field: "sex", group: "male", count: 110, rocAuc: 0.86, … }, …]
 */
export function computeSubgroupMetrics(
  records: readonly SubgroupRecord[],
  probs: ArrayLike<number>,
  options: { field: SubgroupField; thresholdProb: number; ageBandEdgesYears?: readonly number[] },
): SubgroupMetrics[] {
  if (!(SUBGROUP_FIELDS as readonly string[]).includes(options.field)) {
    throw new UnknownNameError("subgroup field", String(options.field), SUBGROUP_FIELDS);
  }
  const labels = records.map((r, i) => {
    if (r.label === "malignant") return 1;
    if (r.label === "benign") return 0;
    throw new MetricInputError(
      `subgroups: records[${i}].label is ${JSON.stringify(r.label)}; expected "benign" or "malignant"`,
    );
  });
  validateBinaryInputs(labels, probs, { metricName: "subgroup metrics" });
  const edges = options.ageBandEdgesYears ?? DEFAULT_AGE_BAND_EDGES_YEARS;
  const groups = new Map<string, { labels: number[]; probs: number[] }>();
  records.forEach((r, i) => {
    const key = groupOf(r, options.field, edges);
    let g = groups.get(key);
    if (!g) groups.set(key, (g = { labels: [], probs: [] }));
    g.labels.push(labels[i]);
    g.probs.push(probs[i]);
  });
  const rows = [...groups.entries()]
    .sort((a, b) => b[1].labels.length - a[1].labels.length || a[0].localeCompare(b[0]))
    .map(([group, g]) => summarise(options.field, group, g.labels, g.probs, options.thresholdProb));
  return [summarise("all", "all", labels, Array.from(probs), options.thresholdProb), ...rows];
}

/**
 * A fixed-width text table of subgroup metrics for notebook output (the "all" row once): field, group, images,
 * malignant count, ROC AUC, sensitivity and specificity ("n/a" where undefined, e.g. one class).
 *
 * @example console.log(formatSubgroupTable(computeSubgroupMetrics(records, probs, { field: "sex", thresholdProb: 0.3 })))
 */
export function formatSubgroupTable(rows: readonly SubgroupMetrics[]): string {
  const fmt = (x: number) => (Number.isFinite(x) ? x.toFixed(3) : "n/a");
  const table = [
    ["field", "group", "images", "malignant", "AUC", "sens", "spec"],
    // Each field's metrics start with the same "all" row; show it once.
    ...rows
      .filter((r, i) => r.field !== "all" || rows.findIndex((o) => o.field === "all") === i)
      .map((r) => [
        r.field,
        r.group,
        String(r.count),
        String(r.positives),
        fmt(r.rocAuc),
        fmt(r.sensitivity),
        fmt(r.specificity),
      ]),
  ];
  const widths = table[0].map((_, c) => Math.max(...table.map((row) => row[c].length)));
  return table
    .map((row) => row.map((cell, c) => (c < 2 ? cell.padEnd(widths[c]) : cell.padStart(widths[c]))).join("  "))
    .join("\n");
}
