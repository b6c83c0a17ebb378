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
});
