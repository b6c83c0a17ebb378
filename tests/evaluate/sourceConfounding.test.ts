import { describe, expect, it } from "vitest";
import { computeRocAuc, MetricInputError } from "../../lib/evaluate/metrics.js";
import { buildHtmlReport } from "../../lib/evaluate/report.js";
import {
  buildSourceConfoundingSection,
  computeSourceOnlyRocAuc,
  computeWithinSourceRocAuc,
  formatSourceConfounding,
  SourceInputError,
  summarizeSourceConfounding,
} from "../../lib/evaluate/sourceConfounding.js";
import { loadDataset } from "../../lib/data/loadDataset.js";
import { createRandom } from "../../lib/util/random.js";
import { requireSharedPath } from "../helpers/shared.js";

/** O(n²) reference: share of (positive, negative) pairs accepted by `sameGroup` ranked right, ties ½. */
function bruteForcePairAuc(labels: number[], scores: number[], sameGroup: (i: number, j: number) => boolean): number {
  let good = 0;
  let pairs = 0;
  for (let i = 0; i < labels.length; i++) {
    if (labels[i] !== 1) continue;
    for (let j = 0; j < labels.length; j++) {
      if (labels[j] !== 0 || !sameGroup(i, j)) continue;
      pairs++;
      good += scores[i] > scores[j] ? 1 : scores[i] === scores[j] ? 0.5 : 0;
    }
  }
  return good / pairs;
}

describe("computeWithinSourceRocAuc", () => {
  it("counts only same-source pairs (hand-checked)", () => {
    // Source a: 0.9 > 0.2 ✓. Source b: 0.4 < 0.6 ✗. Pooled adds 0.9 > 0.6 ✓ and 0.4 > 0.2 ✓ → 3/4.
    const r = computeWithinSourceRocAuc([1, 0, 1, 0], [0.9, 0.2, 0.4, 0.6], ["a", "a", "b", "b"]);
    expect(r.auc).toBe(0.5);
    expect(r.pairCount).toBe(2);
    expect(r.pooledPairCount).toBe(4);
    expect(r.perSource).toEqual([
      { source: "a", positives: 1, negatives: 1, pairCount: 1, auc: 1 },
      { source: "b", positives: 1, negatives: 1, pairCount: 1, auc: 0 },
    ]);
    expect(r.reason).toBeUndefined();
    expect(computeRocAuc([1, 0, 1, 0], [0.9, 0.2, 0.4, 0.6])).toBe(0.75);
  });

  it("weights pairs equally (a big source counts more), ties count ½, single-class sources add nothing", () => {
    // a: positives 0.8, 0.5; negatives 0.5, 0.1, 0.3 → pairs: 0.8 beats all 3; 0.5 ties 0.5 (½), beats 0.1, 0.3 → 5.5 of 6.
    // b: positive 0.2, negative 0.7 → 0 of 1. c: benign only.
    const labels = [1, 1, 0, 0, 0, 1, 0, 0, 0];
    const probs = [0.8, 0.5, 0.5, 0.1, 0.3, 0.2, 0.7, 0.9, 0.95];
    const sources = ["a", "a", "a", "a", "a", "b", "b", "c", "c"];
    const r = computeWithinSourceRocAuc(labels, probs, sources);
    expect(r.pairCount).toBe(7);
    expect(r.auc).toBeCloseTo(5.5 / 7, 12);
    expect(r.perSource.map((s) => [s.source, s.auc])).toEqual([
      ["a", 5.5 / 6],
      ["b", 0],
      ["c", NaN],
    ]);
    // Not the unweighted mean of per-source AUCs ((11/12 + 0) / 2).
    expect(r.auc).not.toBeCloseTo((5.5 / 6 + 0) / 2, 3);
  });

  it("agrees with an O(n²) pair count on random data with ties and unknown sources", () => {
    const rand = createRandom(21);
    const n = 300;
    const names = ["rosendahl", "vidir_modern", "vidir_molemax", "vienna_dias", undefined];
    const sources = Array.from({ length: n }, () => names[Math.floor(rand() * names.length)]);
    const labels = Array.from({ length: n }, () => (rand() < 0.3 ? 1 : 0));
    const probs = Array.from({ length: n }, () => Math.round(rand() * 20) / 20); // many ties
    const r = computeWithinSourceRocAuc(labels, probs, sources);
    const expected = bruteForcePairAuc(labels, probs, (i, j) => sources[i] !== undefined && sources[i] === sources[j]);
    expect(r.auc).toBeCloseTo(expected, 12);
    expect(r.unknownSourceCount).toBe(sources.filter((s) => s === undefined).length);
    expect(r.perSource.map((s) => s.source)).toEqual(["rosendahl", "vidir_modern", "vidir_molemax", "vienna_dias"]);
    // One source for everyone: the within-source AUC is the ordinary AUC.
    expect(
      computeWithinSourceRocAuc(
        labels,
        probs,
        labels.map(() => "x"),
      ).auc,
    ).toBeCloseTo(computeRocAuc(labels, probs), 12);
  });

  it("is NaN with a reason when no source has both classes or no source is known", () => {
    const r = computeWithinSourceRocAuc([1, 1, 0], [0.9, 0.8, 0.1], ["a", "a", "b"]);
    expect(r.auc).toBeNaN();
    expect(r.pairCount).toBe(0);
    expect(r.pooledPairCount).toBe(2);
    expect(r.reason).toBe(
      "no source holds both classes (a: 2 malignant, 0 benign; b: 0 malignant, 1 benign); expected at least one source with a melanoma and a benign lesion",
    );
    const unknown = computeWithinSourceRocAuc([1, 0], [0.9, 0.1], [undefined, ""]);
    expect(unknown.auc).toBeNaN();
    expect(unknown.reason).toMatch(/^no record has a known source \(2 unknown\)/);
  });

  it("rejects misaligned input, naming the lengths", () => {
    expect(() => computeWithinSourceRocAuc([1, 0], [0.9, 0.1], ["a"])).toThrow(SourceInputError);
    expect(() => computeWithinSourceRocAuc([1, 0], [0.9, 0.1], ["a"])).toThrow(
      /sources has 1 entries but labels has 2/,
    );
    expect(() => computeWithinSourceRocAuc([1, 2], [0.9, 0.1], ["a", "a"])).toThrow(MetricInputError);
  });
});

describe("computeSourceOnlyRocAuc", () => {
  it("scores each record by its source's malignant share (hand-checked)", () => {
    // Shares a: 2/3, b: 0 → scores [2/3, 2/3, 0, 2/3]; pairs: each positive beats the b negative and ties the a one → 3/4.
    const r = computeSourceOnlyRocAuc([1, 1, 0, 0], ["a", "a", "b", "a"]);
    expect(r.auc).toBe(0.75);
    expect(r.prevalenceBySource).toEqual({ a: 2 / 3, b: 0 });
    expect(r.overallPrevalence).toBe(0.5);
    // A source that separates the classes perfectly.
    expect(computeSourceOnlyRocAuc([1, 1, 0, 0], ["x", "x", "y", "y"]).auc).toBe(1);
    // Sources that say nothing: every share 1/2 → all ties → 0.5.
    expect(computeSourceOnlyRocAuc([1, 0, 1, 0], ["x", "x", "y", "y"]).auc).toBe(0.5);
  });

  it("uses the reference (training) shares, and the overall share for unseen sources", () => {
    const reference = { labels: [1, 1, 1, 0, 0, 0, 0, 0], sources: ["a", "a", "a", "a", "b", "b", "b", "b"] }; // a 3/4, b 0, overall 3/8
    const r = computeSourceOnlyRocAuc([1, 0, 1, 0], ["a", "b", "c", "a"], reference);
    expect(r.prevalenceBySource).toEqual({ a: 0.75, b: 0 });
    expect(r.unseenSourceCount).toBe(1);
    // scores [0.75, 0, 0.375, 0.75]: pos 0.75 vs negs {0, 0.75} → 1.5; pos 0.375 vs {0, 0.75} → 1 → 2.5 / 4
    expect(r.auc).toBe(0.625);
    const single = computeSourceOnlyRocAuc([0, 0], ["a", "b"], reference);
    expect(single.auc).toBeNaN();
    expect(single.reason).toBe("all 2 labels are benign; expected both classes");
  });
});

describe("summarizeSourceConfounding", () => {
  it("shows the lesson: a model that only recognises the clinic has a high pooled AUC and a within-source AUC of 0.5", () => {
    const rand = createRandom(5);
    // Clinic A sends 80% melanomas, clinic B 10%; the "model" outputs the clinic's share plus noise unrelated to the lesion.
    const sources: string[] = [];
    const labels: number[] = [];
    const probs: number[] = [];
    for (let i = 0; i < 400; i++) {
      const a = i % 2 === 0;
      sources.push(a ? "A" : "B");
      labels.push(rand() < (a ? 0.8 : 0.1) ? 1 : 0);
      probs.push((a ? 0.8 : 0.1) + (rand() - 0.5) * 0.01);
    }
    const s = summarizeSourceConfounding(labels, probs, sources);
    expect(s.pooledAuc).toBeCloseTo(computeRocAuc(labels, probs), 12);
    expect(s.pooledAuc).toBeGreaterThan(0.8);
    expect(Math.abs(s.withinSource.auc - 0.5)).toBeLessThan(0.1);
    expect(s.sourceOnly.auc).toBeGreaterThan(0.8);
    const text = formatSourceConfounding(s);
    expect(text).toMatch(/^pooled ROC AUC {8}0\.\d{3} /);
    expect(text).toContain(`  A: ${s.withinSource.perSource[0].positives} malignant`);
    const section = buildSourceConfoundingSection(s);
    expect(section.table!.rows).toHaveLength(2);
    expect(buildHtmlReport({ title: "t", sections: [section] })).toContain("<th>AUC within source</th>");
  });

  it("on HAM10000 (dev subset), the source alone predicts the label", async (ctx) => {
    const dir = requireSharedPath(ctx, "data/ham10000-dev");
    const { records } = await loadDataset(dir);
    const labels = records.map((r) => (r.label === "malignant" ? 1 : 0));
    const sources = records.map((r) => r.source);
    expect(sources.every((s) => typeof s === "string" && s.length > 0)).toBe(true);
    const r = computeSourceOnlyRocAuc(labels, sources);
    const shares = r.prevalenceBySource;
    const scores = sources.map((s) => shares[s!]);
    expect(r.auc).toBeCloseTo(
      bruteForcePairAuc(labels, scores, () => true),
      12,
    );
    console.log(
      `HAM10000 dev (${records.length} images): source-only ROC AUC ${r.auc.toFixed(3)}; malignant share by source ${Object.entries(
        shares,
      )
        .map(([k, v]) => `${k} ${(v * 100).toFixed(1)}%`)
        .join(", ")}`,
    );
    expect(r.auc).toBeGreaterThan(0.55);
  });
});
