import { describe, expect, it } from "vitest";
import { bootstrapMetric, bootstrapPairedDifference, computeRocAuc } from "../../lib/index.js";

describe("bootstrapPairedDifference", () => {
  // Four images: A ranks them perfectly (AUC 1); B ranks one positive above one negative of four
  // pairs: (0.8 > 0.2) only, so AUC 0.25 by hand.
  const labels = [0, 0, 1, 1];
  const probsA = [0.1, 0.2, 0.8, 0.9];
  const probsB = [0.9, 0.2, 0.8, 0.1];

  it("estimates metric(A) − metric(B) on all images (1 − 0.25 by hand)", () => {
    const d = bootstrapPairedDifference(labels, probsA, probsB, computeRocAuc, { seed: 1, iterations: 200 });
    expect(d.difference.estimate).toBeCloseTo(0.75, 12);
  });

  it("scores both models on the same resamples as bootstrapMetric draws for the seed", () => {
    // A is perfect on every resample, so each replicate is 1 − AUC_B(resample): the paired
    // interval is exactly 1 minus B's own interval, flipped, only if the resamples are shared.
    const groupIds = ["p1", "p2", "p3", "p4"];
    const b = bootstrapMetric(labels, probsB, computeRocAuc, { seed: 7, iterations: 500, groupIds });
    const d = bootstrapPairedDifference(labels, probsA, probsB, computeRocAuc, { seed: 7, iterations: 500, groupIds });
    expect(d.difference.lower).toBeCloseTo(1 - b.upper, 12);
    expect(d.difference.upper).toBeCloseTo(1 - b.lower, 12);
    expect(d.difference.validIterations).toBe(b.validIterations);
    expect(d.difference.groupCount).toBe(4);
    // A never loses to B; only ties count (resamples on which B is perfect too), and they are rare.
    expect(d.fractionAtOrBelowZero).toBeGreaterThan(0);
    expect(d.fractionAtOrBelowZero).toBeLessThan(0.2);
  });

  it("a model against itself differs by exactly 0 on every replicate", () => {
    const d = bootstrapPairedDifference(labels, probsB, probsB, computeRocAuc, { seed: 3, iterations: 100 });
    expect([d.difference.estimate, d.difference.lower, d.difference.upper]).toEqual([0, 0, 0]);
    expect(d.fractionAtOrBelowZero).toBe(1);
  });

  it("refuses score arrays of different lengths, naming both", () => {
    expect(() => bootstrapPairedDifference(labels, probsA, [0.1, 0.2], computeRocAuc, { seed: 1 })).toThrow(
      /model A has 4 scores and model B 2/,
    );
  });

  it("refuses a confidence level outside (0, 1) and a replicate count that is not a whole number, as bootstrapMetric does", () => {
    const run = (options: { iterations?: number; confidenceLevel?: number }) => () =>
      bootstrapPairedDifference(labels, probsA, probsB, computeRocAuc, { seed: 1, ...options });
    expect(run({ confidenceLevel: 95 })).toThrow(
      /paired bootstrap: confidenceLevel is 95; expected a number in \(0, 1\)/,
    );
    expect(run({ iterations: 2.5 })).toThrow(/paired bootstrap: iterations is 2.5; expected a whole number >= 1/);
  });
});
