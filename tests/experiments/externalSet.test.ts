import { describe, expect, it } from "vitest";
import { computeRocAuc, selectBackend } from "../../lib/index.js";
import { ExternalSetError, scoreExternalSet, summarizeExternalScores } from "../../lib/experiments/externalSet.js";

describe("summarizeExternalScores", () => {
  // Patients P1 (malignant 0.9 + benign 0.2), P2 (malignant 0.4), P3 (benign 0.6, 0.1), P4 (benign 0.3).
  const labels = [1, 0, 1, 0, 0, 0];
  const probabilities = [0.9, 0.2, 0.4, 0.6, 0.1, 0.3];
  const groupIds = ["P1", "P1", "P2", "P3", "P3", "P4"];

  it("reports AUC and each threshold's sensitivity/specificity (hand-checked), grouped by patient", () => {
    const s = summarizeExternalScores(
      { labels, probabilities, groupIds },
      { pooled: 0.5, low: 0.3 },
      { seed: 7, iterations: 200 },
    );
    // Pairs malignant > benign: 0.9 beats all 4; 0.4 beats 0.2, 0.1, 0.3 but not 0.6 → 7/8.
    expect(s.rocAuc.estimate).toBe(7 / 8);
    expect(s).toMatchObject({ images: 6, positives: 2, groups: 4 });
    expect(s.rocAuc.groupCount).toBe(4);
    expect(s.rocAuc.lower).toBeLessThanOrEqual(s.rocAuc.estimate);
    expect(s.rocAuc.upper).toBeGreaterThanOrEqual(s.rocAuc.estimate);
    // 0.5: malignant ≥ 0.5 → 0.9 only (1/2); benign < 0.5 → 0.2, 0.1, 0.3 of 4 (3/4).
    expect(s.thresholds[0]).toMatchObject({ name: "pooled", thresholdProb: 0.5 });
    expect(s.thresholds[0].sensitivity.estimate).toBe(0.5);
    expect(s.thresholds[0].specificity.estimate).toBe(0.75);
    // 0.3: both malignant (2/2); benign < 0.3 → 0.2, 0.1 (2/4; 0.3 itself is urgent).
    expect(s.thresholds[1].sensitivity.estimate).toBe(1);
    expect(s.thresholds[1].specificity.estimate).toBe(0.5);
  });

  it("rejects rows that do not line up and thresholds outside [0, 1]", () => {
    expect(() => summarizeExternalScores({ labels, probabilities, groupIds: ["P1"] }, {}, { seed: 1 })).toThrow(
      /groupIds \(1\)/,
    );
    expect(() => summarizeExternalScores({ labels, probabilities, groupIds }, { bad: 1.2 }, { seed: 1 })).toThrow(
      ExternalSetError,
    );
  });
});

describe("scoreExternalSet", () => {
  it("trains on the dev rows only and scores the external rows with that head", async () => {
    await selectBackend();
    // Dev: feature 0 separates the classes. External: the same rule, shifted (another clinic).
    const devLabels = Array.from({ length: 40 }, (_, i) => i % 2);
    const dev = Float32Array.from(devLabels.flatMap((y, i) => [y ? 1 + (i % 5) / 10 : -1 - (i % 5) / 10, (i % 3) / 3]));
    const extLabels = [1, 0, 1, 0, 0, 1, 0, 0];
    const ext = Float32Array.from(extLabels.flatMap((y, i) => [y ? 0.8 + i / 100 : -0.5 - i / 100, 0.5]));
    const head = { hiddenUnits: 0, dropoutRate: 0, l2: 0, epochs: 30, batchSize: 8, learningRate: 0.05 };
    const groupIds = extLabels.map((_, i) => `P${Math.floor(i / 2)}`);
    const r = await scoreExternalSet(
      { features: dev, featureDim: 2, labels: devLabels },
      { features: ext, featureDim: 2, labels: extLabels, groupIds },
      { head, seed: 3, thresholds: { half: 0.5 }, bootstrapIterations: 50 },
    );
    expect(r.probabilities).toHaveLength(8);
    expect(r.summary.rocAuc.estimate).toBe(computeRocAuc(extLabels, r.probabilities));
    expect(r.summary.rocAuc.estimate).toBe(1);
    expect(r.summary.thresholds[0].sensitivity.estimate).toBe(1);
    expect(r.summary.thresholds[0].specificity.estimate).toBe(1);
    await expect(
      scoreExternalSet(
        { features: dev, featureDim: 2, labels: devLabels },
        { features: ext, featureDim: 1, labels: extLabels.concat(extLabels), groupIds },
        { head, seed: 3 },
      ),
    ).rejects.toThrow(/featureDim: received 1, expected the training rows' 2/);
  });
});
