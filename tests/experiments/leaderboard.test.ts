import path from "node:path";
import { describe, expect, it } from "vitest";
import {
  buildLeaderboardFigure,
  buildLeaderboardRows,
  buildLeaderboardSections,
  formatLeaderboardTable,
  loadExperimentRuns,
} from "../../lib/experiments/leaderboard.js";
import type { ExperimentRunSummary } from "../../lib/experiments/runRecord.js";

/** A run record as runExperiment writes it, with only what the leaderboard reads filled in. */
function fakeRun(runName: string, split: "lesion" | "source", rocAucMean: number): ExperimentRunSummary {
  const spread = (mean: number) => ({ mean, sd: 0.01, min: mean - 0.01, max: mean + 0.01, n: 5 });
  return {
    schema: "melanoma-lab/experiment-run@1",
    runName,
    createdAt: "2026-01-01T00:00:00.000Z",
    config: {
      dataDir: "data/x",
      backbone: "mobilenet_v2",
      alpha: null,
      epochs: 20,
      fineTuneEpochs: 0,
      unfreezeBlocks: 2,
      seed: 42,
      split,
      folds: split === "source" ? 3 : 5,
      head: { hiddenUnits: 128, dropoutRate: 0.3, l2: 1e-4, batchSize: 32, learningRate: 1e-3 },
      targetSensitivity: 0.9,
      target: "malignant",
    },
    backend: { name: "wasm", description: "wasm" },
    data: { fingerprint: "f".repeat(64), images: 100, malignant: 20, benign: 80, sources: {}, problems: 0 },
    metrics: {
      rocAuc: spread(rocAucMean),
      averagePrecision: spread(0.5),
      withinSourceRocAuc: spread(0.7),
      outOfFoldRocAuc: rocAucMean,
      outOfFoldWithinSourceRocAuc: 0.7,
      threshold: { thresholdProb: 0.3, sensitivity: 0.9, specificity: 0.5, targetSensitivity: 0.9 },
    },
    folds: [],
    timings: {
      totalMs: 1000,
      loadDataMs: 0,
      featuresMs: 0,
      featureCacheHits: 0,
      featuresComputed: 0,
      crossValidationMs: 0,
      finalModelMs: 0,
      exportMs: 0,
    },
    artifacts: { runJson: `runs/${runName}.json`, logDir: `logs/${runName}`, modelDir: `models/${runName}` },
  };
}

// The LOSO runs score higher here: ranked together they would push the k-fold runs down.
const runs = [
  fakeRun("kfold-b", "lesion", 0.8),
  fakeRun("loso-a", "source", 0.95),
  fakeRun("kfold-a", "lesion", 0.85),
  fakeRun("loso-b", "source", 0.6),
];

describe("leaderboard sections", () => {
  it("ranks k-fold and leave-one-source-out runs separately, each from 1", () => {
    const sections = buildLeaderboardSections(runs);
    expect(sections.map((s) => [s.evaluation, s.heading])).toEqual([
      ["k-fold", "Lesion-grouped k-fold (2 runs)"],
      ["leave-one-source-out", "Leave-one-source-out (2 runs)"],
    ]);
    expect(sections[0].rows.map((r) => [r.rank, r.runName])).toEqual([
      [1, "kfold-a"],
      [2, "kfold-b"],
    ]);
    expect(sections[1].rows.map((r) => [r.rank, r.runName])).toEqual([
      [1, "loso-a"],
      [2, "loso-b"],
    ]);
    expect(buildLeaderboardRows(runs).map((r) => `${r.evaluation} ${r.rank} ${r.runName}`)).toEqual([
      "k-fold 1 kfold-a",
      "k-fold 2 kfold-b",
      "leave-one-source-out 1 loso-a",
      "leave-one-source-out 2 loso-b",
    ]);
    expect(formatLeaderboardTable(sections[1].rows).split("\n")[2]).toMatch(/^1 {2}loso-a .* 0\.950 ± 0\.010 /);
  });

  it("charts each kind in its own panel, ranked alone", () => {
    const fig = buildLeaderboardFigure(runs);
    expect(fig.data.map((t) => [t.xaxis, t.x])).toEqual([
      ["x", ["kfold-a", "kfold-b"]],
      ["x", ["kfold-a", "kfold-b"]],
      ["x2", ["loso-a", "loso-b"]],
      ["x2", ["loso-a", "loso-b"]],
    ]);
    expect(fig.data[0].y).toEqual([0.85, 0.8]);
    expect(fig.data[2].y).toEqual([0.95, 0.6]);
    const [a, b] = [fig.layout.xaxis as { domain: number[] }, fig.layout.xaxis2 as { domain: number[] }];
    expect(a.domain[1]).toBeLessThan(b.domain[0]);
    // One kind only: one panel.
    expect(buildLeaderboardFigure(runs.filter((r) => r.config.split === "lesion")).data).toHaveLength(2);
  });

  it("reads the project's existing (old-format) run records into both sections", () => {
    const { runs: stored } = loadExperimentRuns(path.join(__dirname, "..", "..", "runs"));
    const sections = buildLeaderboardSections(stored);
    expect(sections.map((s) => s.evaluation)).toEqual(["k-fold", "leave-one-source-out"]);
    for (const s of sections) {
      expect(s.rows.map((r) => r.rank)).toEqual(s.rows.map((_, i) => i + 1));
      expect(s.rows.every((r) => (s.evaluation === "k-fold") === !r.split.startsWith("leave"))).toBe(true);
    }
  });

  it("names a run's colour constancy beside its backbone", () => {
    const sog = fakeRun("sog", "lesion", 0.8);
    sog.config = {
      ...sog.config,
      backbone: "mobilenet_v2_imagenet",
      target: "diagnosis",
      colourConstancy: "shades-of-gray",
    };
    const none = fakeRun("none", "lesion", 0.7);
    none.config = { ...none.config, colourConstancy: "none" };
    const [section] = buildLeaderboardSections([sog, none]);
    expect(section.rows.map((r) => r.backbone)).toEqual([
      "mobilenet_v2_imagenet +Shades of Gray (dx head)",
      "mobilenet_v2",
    ]);
  });
});

/** A k-fold run with a transfer report: worst left-out source and external AUC (null: none). */
function fakeTransferRun(
  runName: string,
  cv: number,
  worstSource: number | null,
  external: number | null,
): ExperimentRunSummary {
  const run = fakeRun(runName, "lesion", cv);
  run.transfer = {
    leaveOneSourceOut:
      worstSource === null
        ? null
        : {
            foldsReused: false,
            thresholdProb: 0.3,
            worstSourceRocAuc: worstSource,
            perSource: [
              {
                source: "rosendahl",
                images: 10,
                malignant: 5,
                benign: 5,
                rocAuc: worstSource,
                sensitivity: 0.8,
                specificity: 0.5,
              },
              {
                source: "vidir_modern",
                images: 10,
                malignant: 5,
                benign: 5,
                rocAuc: 0.9,
                sensitivity: 1,
                specificity: 0.4,
              },
            ],
            elapsedMs: 100,
          },
    external:
      external === null
        ? null
        : {
            dataDir: "../shared/data/isic2020-ext",
            images: 100,
            malignant: 5,
            benign: 95,
            patients: 20,
            rocAuc: {
              estimate: external,
              lower: external - 0.1,
              upper: external + 0.05,
              confidenceLevel: 0.95,
              iterations: 1000,
              resampled: "patients",
            },
            thresholdProb: 0.3,
            sensitivity: 0.8,
            specificity: 0.6,
            problems: 0,
            elapsedMs: 100,
          },
  };
  return run;
}

describe("leaderboard sort keys", () => {
  // Pooled CV, worst source and external disagree on purpose: each key gives another order.
  const transferRuns = [
    fakeTransferRun("best-cv", 0.9, 0.6, 0.7),
    fakeTransferRun("best-worst-source", 0.8, 0.75, 0.65),
    fakeTransferRun("best-external", 0.85, 0.7, 0.8),
    fakeTransferRun("no-transfer", 0.95, null, null),
  ];
  const order = (sortBy?: "cv" | "worst-source" | "external") =>
    buildLeaderboardRows(transferRuns, sortBy ? { sortBy } : {}).map((r) => r.runName);

  it("ranks by pooled CV by default, by worst-source or external AUC when asked (runs without one last)", () => {
    expect(order()).toEqual(["no-transfer", "best-cv", "best-external", "best-worst-source"]);
    expect(order("cv")).toEqual(order());
    expect(order("worst-source")).toEqual(["best-worst-source", "best-external", "best-cv", "no-transfer"]);
    expect(order("external")).toEqual(["best-external", "best-cv", "best-worst-source", "no-transfer"]);
    expect(buildLeaderboardRows(transferRuns, { sortBy: "worst-source" }).map((r) => r.rank)).toEqual([1, 2, 3, 4]);
  });

  it("shows the worst source with its name and the external AUC with its interval", () => {
    const rows = buildLeaderboardRows(transferRuns, { sortBy: "external" });
    expect(rows[0]).toMatchObject({ worstSourceRocAuc: 0.7, worstSource: "rosendahl", externalRocAuc: 0.8 });
    const table = formatLeaderboardTable(rows);
    expect(table).toContain("0.700 rosendahl");
    expect(table).toContain("0.800 (0.700–0.850)");
    expect(table.split("\n")[0]).toMatch(/worst source \(LOSO\).*external AUC \(95% CI\)/);
    expect(table.split("\n").at(-1)).toMatch(/no-transfer.* n\/a +n\/a/);
  });

  it("refuses an unknown sort key, naming it and the valid ones", () => {
    expect(() => buildLeaderboardSections(transferRuns, { sortBy: "auc" as "cv" })).toThrow(
      'sortBy: received "auc", expected one of cv, worst-source, external',
    );
  });
});
