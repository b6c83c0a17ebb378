import fs from "node:fs";
import path from "node:path";
import { wrapAxisLabel, type PlotlyFigure } from "../evaluate/charts.js";
import { MelanomaLabError } from "../util/errors.js";
import { EXPERIMENT_RUN_SCHEMA, type ExperimentRunSummary } from "./runRecord.js";

/** Thrown when the runs folder is missing or holds no experiment run. */
export class LeaderboardError extends MelanomaLabError {}

/** Experiment runs read from a folder, and the files that were not runs. */
export interface LoadedExperimentRuns {
  runs: ExperimentRunSummary[];
  /** JSON files skipped (another schema, e.g. the quality benchmark, or unreadable), with why. */
  skipped: { file: string; reason: string }[];
}

/**
 * How a run was evaluated. Lesion-grouped K-fold and leave-one-source-out answer different
 * questions (unseen lesions vs an unseen clinic/device), so they are ranked separately.
 */
export type LeaderboardEvaluation = "k-fold" | "leave-one-source-out";

/**
 * What ranks the leaderboard: "cv" the mean cross-validated ROC AUC, "worst-source" the lowest
 * leave-one-source-out ROC AUC of the transfer report, "external" the ROC AUC on the external set.
 */
export type LeaderboardSortKey = "cv" | "worst-source" | "external";

/** Valid {@link LeaderboardSortKey}s; "cv" is the default. */
export const LEADERBOARD_SORT_KEYS: readonly LeaderboardSortKey[] = ["cv", "worst-source", "external"];

/** One leaderboard line. */
export interface LeaderboardRow {
  /** Rank among the runs of the same `evaluation` (1 = best by the sort key, default mean ROC AUC). */
  rank: number;
  evaluation: LeaderboardEvaluation;
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
  /** Lowest leave-one-source-out ROC AUC (NaN: no transfer report or fewer than two sources). */
  worstSourceRocAuc: number;
  /** The left-out source with that AUC ("" when none). */
  worstSource: string;
  /** ROC AUC of the final model on the external set (NaN: none given). */
  externalRocAuc: number;
  externalRocAucLower: number;
  externalRocAucUpper: number;
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
    throw new LeaderboardError(
      `runs folder ${runsDir} does not exist; run \`npm run experiment -- --data <dir> --backbone <name>\` first`,
    );
  }
  const runs: ExperimentRunSummary[] = [];
  const skipped: LoadedExperimentRuns["skipped"] = [];
  for (const name of fs
    .readdirSync(runsDir)
    .filter((f) => f.endsWith(".json"))
    .sort()) {
    const file = path.join(runsDir, name);
    try {
      const parsed = JSON.parse(fs.readFileSync(file, "utf8")) as Partial<ExperimentRunSummary>;
      if (parsed.schema !== EXPERIMENT_RUN_SCHEMA) {
        skipped.push({
          file,
          reason: `not an experiment run (schema ${JSON.stringify(parsed.schema ?? null)}, expected ${JSON.stringify(EXPERIMENT_RUN_SCHEMA)})`,
        });
      } else if (!parsed.metrics || !parsed.config || !parsed.runName) {
        skipped.push({ file, reason: "lacks runName, config or metrics" });
      } else runs.push(parsed as ExperimentRunSummary);
    } catch (err) {
      skipped.push({ file, reason: `not valid JSON (${err instanceof Error ? err.message : String(err)})` });
    }
  }
  return { runs, skipped };
}

/** One ranking of the leaderboard: the runs of one evaluation kind. */
export interface LeaderboardSection {
  evaluation: LeaderboardEvaluation;
  /** e.g. "Lesion-grouped k-fold (3 runs)". */
  heading: string;
  /** Best mean ROC AUC first, ranked 1… within this section. */
  rows: LeaderboardRow[];
}

/** The leaderboard sections in display order. */
export const LEADERBOARD_EVALUATIONS: readonly LeaderboardEvaluation[] = ["k-fold", "leave-one-source-out"];

const evaluationOf = (r: ExperimentRunSummary): LeaderboardEvaluation =>
  r.config.split === "source" ? "leave-one-source-out" : "k-fold";

/**
 * Leaderboard rows: the k-fold runs, then the leave-one-source-out runs, each group ranked on
 * its own by mean cross-validated ROC AUC (best first, runs without one last), so a k-fold run
 * is never ranked against a leave-one-source-out one.
 *
 * @example buildLeaderboardRows(loadExperimentRuns("runs").runs).filter((r) => r.rank === 1) // the best of each kind
 */
export function buildLeaderboardRows(
  runs: readonly ExperimentRunSummary[],
  options: { sortBy?: LeaderboardSortKey } = {},
): LeaderboardRow[] {
  return buildLeaderboardSections(runs, options).flatMap((s) => s.rows);
}

/**
 * The leaderboard as separate rankings, one per evaluation kind present (k-fold first, then
 * leave-one-source-out); each ranked alone by `sortBy` (default "cv": mean cross-validated ROC
 * AUC; "worst-source" or "external" rank by the transfer report, runs without it last). Throws
 * LeaderboardError for an unknown sort key.
 *
 * @example for (const s of buildLeaderboardSections(runs, { sortBy: "worst-source" })) console.log(s.heading + "\n" + formatLeaderboardTable(s.rows))
 */
export function buildLeaderboardSections(
  runs: readonly ExperimentRunSummary[],
  options: { sortBy?: LeaderboardSortKey } = {},
): LeaderboardSection[] {
  const sortBy = options.sortBy ?? "cv";
  if (!LEADERBOARD_SORT_KEYS.includes(sortBy))
    throw new LeaderboardError(
      `sortBy: received ${JSON.stringify(sortBy)}, expected one of ${LEADERBOARD_SORT_KEYS.join(", ")}`,
    );
  return LEADERBOARD_EVALUATIONS.flatMap((evaluation) => {
    const rows = rankRuns(
      runs.filter((r) => evaluationOf(r) === evaluation),
      sortBy,
    );
    if (rows.length === 0) return [];
    const kind = evaluation === "k-fold" ? "Lesion-grouped k-fold" : "Leave-one-source-out";
    return [{ evaluation, heading: `${kind} (${rows.length} run${rows.length === 1 ? "" : "s"})`, rows }];
  });
}

function rankRuns(runs: readonly ExperimentRunSummary[], sortBy: LeaderboardSortKey): LeaderboardRow[] {
  const rows = runs.map((r) => ({
    rank: 0,
    evaluation: evaluationOf(r),
    runName: r.runName,
    backbone:
      r.config.backbone +
      (r.config.alpha !== null && r.config.alpha !== undefined ? ` α${r.config.alpha}` : "") +
      (r.config.fineTuneEpochs > 0 ? ` +ft${r.config.fineTuneEpochs}` : "") +
      (r.config.colourConstancy === "shades-of-gray" ? " +Shades of Gray" : "") +
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
    worstSourceRocAuc: nan(r.transfer?.leaveOneSourceOut?.worstSourceRocAuc),
    worstSource:
      r.transfer?.leaveOneSourceOut?.perSource.find(
        (s) => s.rocAuc !== null && s.rocAuc === r.transfer?.leaveOneSourceOut?.worstSourceRocAuc,
      )?.source ?? "",
    externalRocAuc: nan(r.transfer?.external?.rocAuc.estimate),
    externalRocAucLower: nan(r.transfer?.external?.rocAuc.lower),
    externalRocAucUpper: nan(r.transfer?.external?.rocAuc.upper),
    totalSeconds: r.timings.totalMs / 1000,
    backend: r.backend.name,
    dataFingerprint: r.data.fingerprint.slice(0, 12),
  }));
  const key = (v: number) => (Number.isNaN(v) ? -Infinity : v);
  const value = (row: LeaderboardRow) =>
    key(
      sortBy === "worst-source" ? row.worstSourceRocAuc : sortBy === "external" ? row.externalRocAuc : row.rocAucMean,
    );
  rows.sort(
    (a, b) => value(b) - value(a) || key(b.rocAucMean) - key(a.rocAucMean) || a.runName.localeCompare(b.runName),
  );
  rows.forEach((r, i) => (r.rank = i + 1));
  return rows;
}

const COLUMNS: { title: string; cell: (r: LeaderboardRow) => string; right?: boolean }[] = [
  { title: "#", cell: (r) => String(r.rank), right: true },
  { title: "run", cell: (r) => r.runName },
  { title: "backbone", cell: (r) => r.backbone },
  { title: "split", cell: (r) => r.split },
  { title: "epochs", cell: (r) => String(r.epochs), right: true },
  {
    title: "ROC AUC (mean ± sd)",
    cell: (r) => (Number.isNaN(r.rocAucMean) ? "n/a" : `${r.rocAucMean.toFixed(3)} ± ${r.rocAucSd.toFixed(3)}`),
    right: true,
  },
  {
    title: "within-source",
    cell: (r) => (Number.isNaN(r.withinSourceRocAucMean) ? "n/a" : r.withinSourceRocAucMean.toFixed(3)),
    right: true,
  },
  {
    title: "OOF AUC",
    cell: (r) => (Number.isNaN(r.outOfFoldRocAuc) ? "n/a" : r.outOfFoldRocAuc.toFixed(3)),
    right: true,
  },
  {
    title: "spec@thr",
    cell: (r) => (Number.isNaN(r.specificityAtThreshold) ? "n/a" : r.specificityAtThreshold.toFixed(3)),
    right: true,
  },
  {
    title: "worst source (LOSO)",
    cell: (r) => (Number.isNaN(r.worstSourceRocAuc) ? "n/a" : `${r.worstSourceRocAuc.toFixed(3)} ${r.worstSource}`),
    right: true,
  },
  {
    title: "external AUC (95% CI)",
    cell: (r) =>
      Number.isNaN(r.externalRocAuc)
        ? "n/a"
        : `${r.externalRocAuc.toFixed(3)} (${r.externalRocAucLower.toFixed(3)}–${r.externalRocAucUpper.toFixed(3)})`,
    right: true,
  },
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
 * beside it the within-source ROC AUC, best run first, in one panel per evaluation kind
 * (k-fold left, leave-one-source-out right when both are present: each ranked alone, never
 * side by side on one axis). Show it in a notebook with showFigure.
 *
 * @example showFigure(buildLeaderboardFigure(loadExperimentRuns("runs").runs))
 */
export function buildLeaderboardFigure(runs: readonly ExperimentRunSummary[]): PlotlyFigure {
  if (runs.length === 0) throw new LeaderboardError("no experiment runs to chart; run `npm run experiment` first");
  const sections = buildLeaderboardSections(runs);
  const gap = 0.08;
  const width = (1 - gap * (sections.length - 1)) / sections.length;
  // Runs usually share a data-set prefix ("ham10000-dev-"): said once in the title, not under every bar.
  const names = runs.map((r) => r.runName);
  const commonPrefix =
    names.length < 2
      ? ""
      : (names.reduce((a, b) => a.slice(0, [...a].findIndex((ch, i) => ch !== b[i]) >>> 0)).match(/^.*-/)?.[0] ?? "");
  const data: PlotlyFigure["data"] = [];
  const layout: PlotlyFigure["layout"] = {
    title: {
      text: `Leaderboard: ${sections.map((s) => s.heading.toLowerCase()).join("; ")}${commonPrefix ? ` (${commonPrefix}…)` : ""}`,
    },
    barmode: "group",
    legend: { orientation: "h", x: 0, y: 1.12 },
    height: 450,
    margin: { t: 80, b: 40 },
    shapes: [],
  };
  sections.forEach((section, i) => {
    // Plotly names the first axes "x"/"y", the next "x2"/"y2", with layout keys xaxis, xaxis2, ….
    const suffix = i === 0 ? "" : String(i + 1);
    const x = section.rows.map((r) => r.runName);
    const bar = (name: string, y: number[], sd: number[], color: string) => ({
      type: "bar",
      name,
      x,
      y: y.map((v) => (Number.isNaN(v) ? null : v)),
      error_y: { type: "data", array: sd.map((v) => (Number.isNaN(v) ? 0 : v)), visible: true },
      marker: { color },
      xaxis: `x${suffix}`,
      yaxis: `y${suffix}`,
      legendgroup: name,
      showlegend: i === 0,
      hovertemplate: "%{x}<br>" + name + " %{y:.3f}<extra></extra>",
    });
    const withinSd = section.rows.map((r) =>
      nan(runs.find((run) => run.runName === r.runName)!.metrics.withinSourceRocAuc.sd),
    );
    data.push(
      bar(
        "ROC AUC (mean ± sd over folds)",
        section.rows.map((r) => r.rocAucMean),
        section.rows.map((r) => r.rocAucSd),
        "#1f77b4",
      ),
      bar(
        "within-source ROC AUC",
        section.rows.map((r) => r.withinSourceRocAucMean),
        withinSd,
        "#ff7f0e",
      ),
    );
    const x0 = i * (width + gap);
    // Run names are long; rotated, they took two thirds of the chart. Wrapped on "-"/"_" into at
    // most four short horizontal lines (the full name stays in the hover text).
    const tickText = x.map((name) => wrapAxisLabel(name.slice(commonPrefix.length), 18, 4));
    layout[`xaxis${suffix}`] = {
      title: { text: section.heading },
      domain: [x0, x0 + width],
      anchor: `y${suffix}`,
      tickmode: "array",
      tickvals: x,
      ticktext: tickText,
      tickangle: 0,
      automargin: true,
    };
    layout[`yaxis${suffix}`] = { title: { text: i === 0 ? "ROC AUC" : "" }, range: [0, 1], anchor: `x${suffix}` };
    (layout.shapes as unknown[]).push({
      type: "line",
      xref: "paper",
      x0,
      x1: x0 + width,
      yref: `y${suffix}`,
      y0: 0.5,
      y1: 0.5,
      line: { color: "#999999", dash: "dash" },
    });
  });
  return { data, layout };
}
