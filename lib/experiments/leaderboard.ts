import fs from "node:fs";
import path from "node:path";
import { wrapAxisLabel, type PlotlyFigure } from "../evaluate/charts.js";
import { MelanomaLabError } from "../util/errors.js";
import { EXPERIMENT_RUN_SCHEMA, type ExperimentRunSummary } from "./runExperiment.js";

/** Thrown when the runs folder is missing or holds no experiment run. */
export class LeaderboardError extends MelanomaLabError {}

/** Experiment runs read from a folder, and the files that were not runs. */
export interface LoadedExperimentRuns {
  runs: ExperimentRunSummary[];
  /** JSON files skipped (another schema, e.g. the quality benchmark, or unreadable), with why. */
  skipped: { file: string; reason: string }[];
}

/** One leaderboard line. */
export interface LeaderboardRow {
  rank: number;
  runName: string;
  backbone: string;
  split: string;
  folds: number;
  epochs: number;
  rocAucMean: number;
  rocAucSd: number;
  withinSourceRocAucMean: number;
  outOfFoldRocAuc: number;
  /** Specificity at the exported threshold (≥ target sensitivity on out-of-fold predictions). */
  specificityAtThreshold: number;
  totalSeconds: number;
  backend: string;
  /** First 12 hex digits of the data fingerprint: runs on different data do not compare. */
  dataFingerprint: string;
}

const nan = (v: number | null | undefined): number => (typeof v === "number" ? v : NaN);

/**
 * Reads every `*.json` in `runsDir` written by runExperiment (schema
 * "melanoma-lab/experiment-run@1"), sorted by file name; other JSON files are listed in `skipped`.
 *
 * @example const { runs } = loadExperimentRuns("runs"); runs.length
 */
export function loadExperimentRuns(runsDir: string): LoadedExperimentRuns {
  if (!fs.existsSync(runsDir)) {
    throw new LeaderboardError(`runs folder ${runsDir} does not exist; run \`npm run experiment -- --data <dir> --backbone <name>\` first`);
  }
  const runs: ExperimentRunSummary[] = [];
  const skipped: LoadedExperimentRuns["skipped"] = [];
  for (const name of fs.readdirSync(runsDir).filter((f) => f.endsWith(".json")).sort()) {
    const file = path.join(runsDir, name);
    try {
      const parsed = JSON.parse(fs.readFileSync(file, "utf8")) as Partial<ExperimentRunSummary>;
      if (parsed.schema !== EXPERIMENT_RUN_SCHEMA) {
        skipped.push({ file, reason: `not an experiment run (schema ${JSON.stringify(parsed.schema ?? null)}, expected ${JSON.stringify(EXPERIMENT_RUN_SCHEMA)})` });
      } else if (!parsed.metrics || !parsed.config || !parsed.runName) {
        skipped.push({ file, reason: "lacks runName, config or metrics" });
      } else runs.push(parsed as ExperimentRunSummary);
    } catch (err) {
      skipped.push({ file, reason: `not valid JSON (${err instanceof Error ? err.message : String(err)})` });
    }
  }
  return { runs, skipped };
}

/**
 * Leaderboard rows, best mean cross-validated ROC AUC first (runs without one last).
 *
 * @example buildLeaderboardRows(loadExperimentRuns("runs").runs)[0].runName
 */
export function buildLeaderboardRows(runs: readonly ExperimentRunSummary[]): LeaderboardRow[] {
  const rows = runs.map((r) => ({
    rank: 0,
    runName: r.runName,
    backbone: r.config.backbone + (r.config.alpha !== null && r.config.alpha !== undefined ? ` α${r.config.alpha}` : "") + (r.config.fineTuneEpochs > 0 ? ` +ft${r.config.fineTuneEpochs}` : "") +
      // Runs written before the target option have none: they trained on the label.
      (r.config.target === "diagnosis" ? " (dx head)" : ""),
    split: r.config.split === "source" ? "leave-one-source-out" : `lesion ${r.config.folds}-fold`,
    folds: r.config.folds,
    epochs: r.config.epochs,
    rocAucMean: nan(r.metrics.rocAuc.mean),
    rocAucSd: nan(r.metrics.rocAuc.sd),
    withinSourceRocAucMean: nan(r.metrics.withinSourceRocAuc.mean),
    outOfFoldRocAuc: nan(r.metrics.outOfFoldRocAuc),
    specificityAtThreshold: nan(r.metrics.threshold.specificity),
    totalSeconds: r.timings.totalMs / 1000,
    backend: r.backend.name,
    dataFingerprint: r.data.fingerprint.slice(0, 12),
  }));
  const key = (v: number) => (Number.isNaN(v) ? -Infinity : v);
  rows.sort((a, b) => key(b.rocAucMean) - key(a.rocAucMean) || a.runName.localeCompare(b.runName));
  rows.forEach((r, i) => (r.rank = i + 1));
  return rows;
}

const COLUMNS: { title: string; cell: (r: LeaderboardRow) => string; right?: boolean }[] = [
  { title: "#", cell: (r) => String(r.rank), right: true },
  { title: "run", cell: (r) => r.runName },
  { title: "backbone", cell: (r) => r.backbone },
  { title: "split", cell: (r) => r.split },
  { title: "epochs", cell: (r) => String(r.epochs), right: true },
  { title: "ROC AUC (mean ± sd)", cell: (r) => (Number.isNaN(r.rocAucMean) ? "n/a" : `${r.rocAucMean.toFixed(3)} ± ${r.rocAucSd.toFixed(3)}`), right: true },
  { title: "within-source", cell: (r) => (Number.isNaN(r.withinSourceRocAucMean) ? "n/a" : r.withinSourceRocAucMean.toFixed(3)), right: true },
  { title: "OOF AUC", cell: (r) => (Number.isNaN(r.outOfFoldRocAuc) ? "n/a" : r.outOfFoldRocAuc.toFixed(3)), right: true },
  { title: "spec@thr", cell: (r) => (Number.isNaN(r.specificityAtThreshold) ? "n/a" : r.specificityAtThreshold.toFixed(3)), right: true },
  { title: "time", cell: (r) => `${r.totalSeconds.toFixed(0)} s`, right: true },
  { title: "data", cell: (r) => r.dataFingerprint },
];

/**
 * The leaderboard as an aligned plain-text table for a terminal (one header line, a rule, one
 * line per run). "spec@thr" is the specificity at the exported ≥ 90%-sensitivity threshold.
 *
 * @example console.log(formatLeaderboardTable(buildLeaderboardRows(runs)))
 */
export function formatLeaderboardTable(rows: readonly LeaderboardRow[]): string {
  const cells = rows.map((r) => COLUMNS.map((c) => c.cell(r)));
  const widths = COLUMNS.map((c, i) => Math.max(c.title.length, ...cells.map((line) => line[i].length)));
  const pad = (text: string, i: number) => (COLUMNS[i].right ? text.padStart(widths[i]) : text.padEnd(widths[i]));
  return [
    COLUMNS.map((c, i) => pad(c.title, i)).join("  "),
    widths.map((w) => "-".repeat(w)).join("  "),
    ...cells.map((line) => line.map(pad).join("  ")),
  ].join("\n");
}

/**
 * Columns and rows (text cells, as in the terminal table) for writeHtmlReport's table.
 *
 * @example writeHtmlReport("out/leaderboard.html", { title: "Runs", sections: [{ heading: "Runs", table: buildLeaderboardReportTable(rows) }] })
 */
export function buildLeaderboardReportTable(rows: readonly LeaderboardRow[]): { columns: string[]; rows: string[][] } {
  return { columns: COLUMNS.map((c) => c.title), rows: rows.map((r) => COLUMNS.map((c) => c.cell(r))) };
}

/**
 * A Plotly bar chart comparing runs: mean cross-validated ROC AUC with ± sd error bars, and
 * beside it the within-source ROC AUC, best run first. Show it in a notebook with showFigure.
 *
 * @example showFigure(buildLeaderboardFigure(loadExperimentRuns("runs").runs))
 */
export function buildLeaderboardFigure(runs: readonly ExperimentRunSummary[]): PlotlyFigure {
  if (runs.length === 0) throw new LeaderboardError("no experiment runs to chart; run `npm run experiment` first");
  const rows = buildLeaderboardRows(runs);
  const x = rows.map((r) => r.runName);
  const bar = (name: string, y: number[], sd: number[] | undefined, color: string) => ({
    type: "bar",
    name,
    x,
    y: y.map((v) => (Number.isNaN(v) ? null : v)),
    error_y: sd ? { type: "data", array: sd.map((v) => (Number.isNaN(v) ? 0 : v)), visible: true } : undefined,
    marker: { color },
    hovertemplate: "%{x}<br>" + name + " %{y:.3f}<extra></extra>",
  });
  const withinSd = rows.map((r) => nan(runs.find((run) => run.runName === r.runName)!.metrics.withinSourceRocAuc.sd));
  // Runs usually share a data-set prefix ("ham10000-dev-"): said once in the title, not under every bar.
  const commonPrefix = rows.length < 2 ? "" : (x.reduce((a, b) => a.slice(0, [...a].findIndex((ch, i) => ch !== b[i]) >>> 0)).match(/^.*-/)?.[0] ?? "");
  const tickText = x.map((name) => wrapAxisLabel(name.slice(commonPrefix.length), 18, 4));
  return {
    data: [
      bar("ROC AUC (mean ± sd over folds)", rows.map((r) => r.rocAucMean), rows.map((r) => r.rocAucSd), "#1f77b4"),
      bar("within-source ROC AUC", rows.map((r) => r.withinSourceRocAucMean), withinSd, "#ff7f0e"),
    ],
    layout: {
      title: { text: `Leaderboard: ${rows.length} run${rows.length === 1 ? "" : "s"}${commonPrefix ? ` (${commonPrefix}…)` : ""}` },
      barmode: "group",
      // Run names are long; rotated, they took two thirds of the chart. Wrapped on "-"/"_" into at
      // most four short horizontal lines (the full name stays in the hover text).
      xaxis: { tickmode: "array", tickvals: x, ticktext: tickText, tickangle: 0, automargin: true },
      yaxis: { title: { text: "ROC AUC" }, range: [0, 1] },
      shapes: [{ type: "line", xref: "paper", x0: 0, x1: 1, y0: 0.5, y1: 0.5, line: { color: "#999999", dash: "dash" } }],
      legend: { orientation: "h", x: 0, y: 1.12 },
      height: 450,
      margin: { t: 80, b: 40 },
    },
  };
}
