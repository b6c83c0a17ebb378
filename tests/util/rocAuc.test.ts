import { describe, expect, it } from "vitest";
import { computeRocAuc } from "../../lib/evaluate/metrics.js";
import { computeRocAucExact } from "../../lib/util/rocAuc.js";

describe("computeRocAucExact (the library's one ROC AUC)", () => {
  it("matches hand-computed values, ties counting one half", () => {
    // pairs (pos, neg): (0.35 > 0.1) yes, (0.35 > 0.4) no, (0.8 > both) yes yes → 3/4
    expect(computeRocAucExact([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])).toBe(0.75);
    expect(computeRocAucExact([0, 1], [0.5, 0.5])).toBe(0.5);
    // pos 0.5 vs negs 0.5 (tie, ½) and 0.2 (win, 1); pos 0.9 wins both → (1.5 + 2) / 4
    expect(computeRocAucExact([1, 0, 0, 1], [0.5, 0.5, 0.2, 0.9])).toBe(0.875);
    // pos 0.3, 0.7 vs negs 0.1, 0.7, 0.9: 0.3 beats 0.1 (1); 0.7 beats 0.1 (1), ties 0.7 (½) → 2.5 / 6
    expect(computeRocAucExact([1, 0, 1, 0, 0], [0.3, 0.1, 0.7, 0.7, 0.9])).toBeCloseTo(2.5 / 6, 15);
    expect(computeRocAucExact([1, 1], [0.1, 0.2])).toBeNaN();
  });

  it("equals an all-pairs count on random data, and is what lib/evaluate's checked computeRocAuc returns", () => {
    let state = 7;
    const next = () => (state = (state * 1103515245 + 12345) % 2147483648) / 2147483648;
    const labels = Array.from({ length: 200 }, () => (next() < 0.3 ? 1 : 0));
    // Rounded to 0.05 so many scores tie.
    const scores = labels.map((y) => Math.round((next() + 0.3 * y) * 20) / 20);
    let wins = 0;
    let pairs = 0;
    for (let i = 0; i < labels.length; i++) {
      for (let j = 0; j < labels.length; j++) {
        if (labels[i] !== 1 || labels[j] !== 0) continue;
        pairs++;
        wins += scores[i] > scores[j] ? 1 : scores[i] === scores[j] ? 0.5 : 0;
      }
    }
    expect(computeRocAucExact(labels, scores)).toBeCloseTo(wins / pairs, 12);
    expect(computeRocAuc(labels, scores)).toBe(computeRocAucExact(labels, scores));
  });
});
