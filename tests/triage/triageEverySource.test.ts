import { describe, expect, it } from "vitest";
import {
  chooseThresholdForEverySource,
  chooseThresholdForSensitivity,
  ThresholdError,
} from "../../lib/triage/triage.js";

describe("chooseThresholdForEverySource", () => {
  // Source a: malignant at 0.9, 0.7, 0.6; benign 0.8, 0.3. Source b: malignant 0.5, 0.2; benign 0.4, 0.1.
  // Source c: benign only (0.05). Unknown source: one malignant at 0.01.
  const labels = [1, 1, 1, 0, 0, 1, 1, 0, 0, 0, 1];
  const probs = [0.9, 0.7, 0.6, 0.8, 0.3, 0.5, 0.2, 0.4, 0.1, 0.05, 0.01];
  const sources = ["a", "a", "a", "a", "a", "b", "b", "b", "b", "c", undefined];

  it("takes the lowest of the per-source thresholds (hand-checked)", () => {
    // Target 0.5: a needs ⌈1.5⌉ = 2 of 3 → 0.7; b needs 1 of 2 → 0.5. Shared threshold 0.5 (b limits).
    const c = chooseThresholdForEverySource(labels, probs, sources, 0.5);
    expect(c.thresholdProb).toBe(0.5);
    expect(c.limitingSource).toBe("b");
    expect(c.sourcesWithoutPositives).toEqual(["c"]);
    expect(c.bySource.map((s) => [s.source, s.ownThresholdProb])).toEqual([
      ["a", 0.7],
      ["b", 0.5],
    ]);
    // At 0.5: a catches 3/3 malignant, keeps 1/2 benign below (0.3); b catches 1/2, keeps 2/2 benign.
    expect(c.bySource[0]).toMatchObject({ sensitivity: 1, specificity: 0.5, positives: 3, negatives: 2 });
    expect(c.bySource[1]).toMatchObject({ sensitivity: 0.5, specificity: 1, positives: 2, negatives: 2 });
    // Pooled over all 11 rows: malignant ≥ 0.5: 0.9, 0.7, 0.6, 0.5 of 6 → 4/6; benign < 0.5: 0.3, 0.4, 0.1, 0.05 of 5 → 4/5.
    expect(c.sensitivity).toBeCloseTo(4 / 6, 12);
    expect(c.specificity).toBeCloseTo(4 / 5, 12);
    expect(c.positives).toBe(6);
    expect(c.negatives).toBe(5);
  });

  it("is lower than the pooled threshold when one source scores its malignant images low", () => {
    // Pooled, target 0.5 → 3 of 6 malignant → 0.6; source b reaches 0.5 only at 0.5.
    expect(chooseThresholdForSensitivity(labels, probs, 0.5).thresholdProb).toBe(0.6);
    // Target 1: a → 0.6, b → 0.2; the unknown-source malignant (0.01) does not pull it down.
    const all = chooseThresholdForEverySource(labels, probs, sources, 1);
    expect(all.thresholdProb).toBe(0.2);
    expect(all.bySource.every((s) => s.sensitivity === 1)).toBe(true);
    expect(all.sensitivity).toBeCloseTo(5 / 6, 12);
  });

  it("rejects inputs that do not fit, naming what was received", () => {
    expect(() => chooseThresholdForEverySource([1, 0], [0.5, 0.4], ["a"], 0.9)).toThrow(
      /sources \(1\) and labels \(2\)/,
    );
    expect(() => chooseThresholdForEverySource([1, 0], [0.5, 0.4], [undefined, "a"], 0.9)).toThrow(
      /none of 1 named sources holds a malignant image/,
    );
    expect(() => chooseThresholdForEverySource([1, 0], [0.5, 0.4], ["a", "a"], 1.5)).toThrow(ThresholdError);
  });
});
