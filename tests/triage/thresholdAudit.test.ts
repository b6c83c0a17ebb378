import { describe, expect, it } from "vitest";
import { auditThreshold } from "../../lib/triage/thresholdAudit.js";

// 10 images, 2 folds, 2 sources; threshold 0.5. Hand count:
// row:     0    1    2    3    4    5    6    7    8    9
// label:   1    1    1    0    0    1    1    0    0    0
// prob:   .9   .6   .4   .2   .7   .8   .3   .1   .45  NaN (unscored)
// source:  A    A    B    A    B    B    B    A    B    A
// fold:    1    1    1    1    1    2    2    2    2    2
const input = {
  labels: [1, 1, 1, 0, 0, 1, 1, 0, 0, 0],
  probs: Float32Array.from([0.9, 0.6, 0.4, 0.2, 0.7, 0.8, 0.3, 0.1, 0.45, NaN]),
  sources: ["A", "A", "B", "A", "B", "B", "B", "A", "B", "A"],
  folds: [
    { name: "fold-1", validationRows: [0, 1, 2, 3, 4] },
    { name: "fold-2", validationRows: [5, 6, 7, 8, 9] },
  ],
  thresholdProb: 0.5,
  targetSensitivity: 0.6,
  scoredOn: "pooled out-of-fold predictions of 2 fold models (lesion-grouped 2-fold)",
};

describe("auditThreshold", () => {
  const audit = auditThreshold(input);

  it("records how the threshold was chosen and on which scores", () => {
    expect(audit.method).toBe("highest threshold with sensitivity ≥ target");
    expect(audit.targetSensitivity).toBe(0.6);
    expect(audit.scoredOn).toBe("pooled out-of-fold predictions of 2 fold models (lesion-grouped 2-fold)");
    // Pooled: malignant 0,1,2,5,6 → caught 0,1,5 = 3/5; benign 3,4,7,8 (9 unscored) → cleared 3,7,8 = 3/4.
    expect(audit).toMatchObject({ images: 9, malignant: 5, benign: 4, sensitivity: 3 / 5, specificity: 3 / 4 });
  });

  it("gives sensitivity and specificity per fold and per source at the threshold", () => {
    expect(audit.perFold).toEqual([
      { name: "fold-1", images: 5, malignant: 3, benign: 2, sensitivity: 2 / 3, specificity: 1 / 2 },
      { name: "fold-2", images: 4, malignant: 2, benign: 2, sensitivity: 1 / 2, specificity: 1 },
    ]);
    expect(audit.perSource).toEqual([
      { name: "A", images: 4, malignant: 2, benign: 2, sensitivity: 1, specificity: 1 },
      { name: "B", images: 5, malignant: 3, benign: 2, sensitivity: 1 / 3, specificity: 1 / 2 },
    ]);
    expect(audit.worstSource?.name).toBe("B");
  });

  it("warns for each source whose sensitivity is below the target, and only those", () => {
    expect(audit.warnings).toHaveLength(1);
    expect(audit.warnings[0]).toMatch(
      /^source B: sensitivity 0\.333 \(1\/3 malignant\) at threshold 0\.5000, below the target 0\.6$/,
    );
    expect(auditThreshold({ ...input, targetSensitivity: 0.3 }).warnings).toEqual([]);
  });

  it("names sources missing from records 'unknown' and gives null rates where a class is absent", () => {
    const a = auditThreshold({ ...input, sources: input.sources.map((s) => (s === "A" ? undefined : s)) });
    expect(a.perSource.map((s) => s.name)).toEqual(["B", "unknown"]);
    const onlyBenign = auditThreshold({ ...input, folds: [{ name: "f", validationRows: [3, 7] }] });
    expect(onlyBenign.perFold[0]).toEqual({
      name: "f",
      images: 2,
      malignant: 0,
      benign: 2,
      sensitivity: null,
      specificity: 1,
    });
  });

  it("audits a single validation split (no folds): per source only", () => {
    const { folds, ...rest } = input;
    expect(folds).toHaveLength(2);
    const single = auditThreshold({ ...rest, scoredOn: "validation split, scored by the exported model" });
    expect(single.perFold).toEqual([]);
    expect(single.scoredOn).toBe("validation split, scored by the exported model");
    expect(single.perSource.map((s) => s.sensitivity)).toEqual([1, 1 / 3]);
  });
});
