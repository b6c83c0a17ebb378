// npm run leaderboard [-- --runs runs --out out/leaderboard.html]; `--help` lists the options.
// Compares the experiment runs in runs/: a table in the terminal and a Plotly chart in an HTML report.
import path from "node:path";
import {
  defineCli,
  findProjectRoot,
  MelanomaLabError,
  parseCommandLineOrExit,
  writeHtmlReport,
  buildLeaderboardFigure,
  buildLeaderboardReportTable,
  buildLeaderboardSections,
  formatLeaderboardTable,
  loadExperimentRuns,
  LeaderboardError,
  LEADERBOARD_SORT_KEYS,
  type LeaderboardSortKey,
} from "../lib/index.js";

const cli = defineCli({
  name: "leaderboard",
  usage: "npm run leaderboard --",
  summary: "Compares the experiment runs (runs/*.json): a table in the terminal and a Plotly chart in an HTML report.",
  examples: [
    "npm run leaderboard",
    "npm run leaderboard -- --runs runs --out out/leaderboard.html",
    "npm run leaderboard -- --sort worst-source",
  ],
  options: {
    runs: {
      type: "string",
      default: "runs",
      valueName: "<dir>",
      description: "folder of runs/<run>.json files (relative to the project root)",
    },
    out: {
      type: "string",
      default: path.join("out", "leaderboard.html"),
      valueName: "<file.html>",
      description: "HTML report to write (relative to the project root)",
    },
    sort: {
      type: "string",
      choices: LEADERBOARD_SORT_KEYS,
      default: "cv",
      description:
        "rank by cv (mean cross-validated ROC AUC), worst-source (lowest leave-one-source-out AUC) or external (external-set AUC)",
    },
  },
});

function main(): void {
  const { values: args } = parseCommandLineOrExit(cli, process.argv.slice(2));
  const root = findProjectRoot();
  const runsDir = path.resolve(root, args.runs);
  const outPath = path.resolve(root, args.out);
  const { runs, skipped } = loadExperimentRuns(runsDir);
  for (const s of skipped) console.log(`skipped ${path.relative(root, s.file)}: ${s.reason}`);
  if (runs.length === 0)
    throw new LeaderboardError(
      `no experiment runs in ${runsDir}; run \`npm run experiment -- --data <dir> --backbone <name>\` first`,
    );
  // K-fold and leave-one-source-out runs answer different questions: each is ranked on its own.
  const sections = buildLeaderboardSections(runs, { sortBy: args.sort as LeaderboardSortKey });
  console.log(sections.map((s) => `${s.heading}\n${formatLeaderboardTable(s.rows)}`).join("\n\n"));
  const rows = sections.flatMap((s) => s.rows);
  if (new Set(rows.map((r) => r.dataFingerprint)).size > 1)
    console.log("note: the runs used different data (see the data column); compare like with like");
  writeHtmlReport(outPath, {
    title: "melanoma-lab leaderboard",
    sections: [
      { heading: "Cross-validated ROC AUC", figures: [buildLeaderboardFigure(runs)] },
      ...sections.map((s) => ({
        heading: s.heading,
        table: {
          ...buildLeaderboardReportTable(s.rows),
          caption:
            "spec@thr: specificity at the exported threshold (≥ target sensitivity on pooled out-of-fold predictions); " +
            "worst source (LOSO): lowest ROC AUC of a source scored by a head trained without it; external AUC: the final " +
            `model on the --external set, 95% bootstrap CI over patients. Ranked by ${args.sort}.`,
        },
      })),
    ],
  });
  console.log(`wrote ${path.relative(root, outPath)}`);
}

try {
  main();
} catch (err) {
  console.error(err instanceof MelanomaLabError ? `error: ${err.message}` : err);
  process.exit(1);
}
