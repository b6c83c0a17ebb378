import { describe, expect, it } from "vitest";
import { bootstrapMetric, forEachStratifiedResample } from "../../lib/evaluate/bootstrap.js";
import { computeRocBootstrapBand } from "../../lib/evaluate/charts.js";
import { MetricInputError, computeMetricsAtThreshold, computeRocAuc } from "../../lib/evaluate/metrics.js";
import { buildMetricTable, summarizeMetricsWithIntervals } from "../../lib/evaluate/summary.js";
import { assignGroupIds } from "../../lib/data/split.js";
import type { LesionRecord } from "../../lib/data/types.js";
import { makeSyntheticScores } from "./fixtures/syntheticScores.js";

const prevalence = (y: number[]) => y.reduce((s, v) => s + v, 0) / y.length;

/** Each example repeated `copies` times in a row (the same lesion photographed `copies` times), with its group id. */
function duplicate(
  labels: number[],
  probs: number[],
  copies: number,
): { labels: number[]; probs: number[]; groupIds: string[] } {
  const out = { labels: [] as number[], probs: [] as number[], groupIds: [] as string[] };
  labels.forEach((y, i) => {
    for (let c = 0; c < copies; c++) {
      out.labels.push(y);
      out.probs.push(probs[i]);
      out.groupIds.push(`lesion:L${i}`);
    }
  });
  return out;
}

describe("grouped bootstrap (resampling patients/lesions, not images)", () => {
  it("hand-checkable case: one malignant lesion, benign lesions of 1 and 3 images", () => {
    // Benign stratum: 2 draws from {a (1 image), b (3 images)} → 2, 4 or 6 benign images with
    // probabilities 1/4, 1/2, 1/4; the malignant stratum always gives its 1 image. Prevalence is
    // therefore 1/3, 1/5 or 1/7. Image resampling would keep it at 1/5 in every replicate.
    const labels = [1, 0, 0, 0, 0];
    const probs = [0.9, 0.2, 0.3, 0.3, 0.3];
    const groupIds = ["m", "a", "b", "b", "b"];
    const counts = new Map<number, number>();
    forEachStratifiedResample(labels, probs, { iterations: 4000, seed: 3, groupIds }, (y) => {
      const v = Math.round(1 / prevalence(y));
      counts.set(v, (counts.get(v) ?? 0) + 1);
    });
    expect([...counts.keys()].sort()).toEqual([3, 5, 7]);
    expect(counts.get(3)! / 4000).toBeCloseTo(0.25, 1);
    expect(counts.get(5)! / 4000).toBeCloseTo(0.5, 1);
    expect(counts.get(7)! / 4000).toBeCloseTo(0.25, 1);
    const r = bootstrapMetric(labels, probs, prevalence, { iterations: 4000, seed: 3, groupIds });
    expect(r.estimate).toBe(0.2);
    expect(r.lower).toBeCloseTo(1 / 7, 12);
    expect(r.upper).toBeCloseTo(1 / 3, 12);
    expect(r.groupCount).toBe(3);
  });

  const base = makeSyntheticScores({ count: 150, prevalence: 0.3, separation: 1.5, seed: 17 });
  const dup = duplicate(base.labels, base.probs, 4);

  it("with every lesion photographed 4 times, the AUC interval equals the one-image-per-lesion interval, and is wider than image resampling", () => {
    // Independent check: repeating each example 4 times leaves the AUC unchanged, so resampling
    // the 150 lesions of the duplicated set must give exactly the intervals of the 150 originals.
    const grouped = bootstrapMetric(dup.labels, dup.probs, computeRocAuc, {
      iterations: 400,
      seed: 9,
      groupIds: dup.groupIds,
    });
    const reference = bootstrapMetric(base.labels, base.probs, computeRocAuc, { iterations: 400, seed: 9 });
    expect(grouped.estimate).toBeCloseTo(reference.estimate, 12);
    expect(grouped.lower).toBeCloseTo(reference.lower, 12);
    expect(grouped.upper).toBeCloseTo(reference.upper, 12);
    expect(grouped.standardError).toBeCloseTo(reference.standardError, 12);
    expect(grouped.groupCount).toBe(150);
    // Image resampling treats the 600 copies as independent: about half as wide (1/√4).
    const byImage = bootstrapMetric(dup.labels, dup.probs, computeRocAuc, { iterations: 400, seed: 9 });
    expect(byImage.groupCount).toBeUndefined();
    const ratio = (byImage.upper - byImage.lower) / (grouped.upper - grouped.lower);
    expect(ratio).toBeGreaterThan(0.35);
    expect(ratio).toBeLessThan(0.7);
  });

  it("is seeded: same seed and groups give the same interval, another seed another", () => {
    const a = bootstrapMetric(dup.labels, dup.probs, computeRocAuc, {
      iterations: 200,
      seed: 5,
      groupIds: dup.groupIds,
    });
    expect(
      bootstrapMetric(dup.labels, dup.probs, computeRocAuc, { iterations: 200, seed: 5, groupIds: dup.groupIds }),
    ).toEqual(a);
    expect(
      bootstrapMetric(dup.labels, dup.probs, computeRocAuc, { iterations: 200, seed: 6, groupIds: dup.groupIds }).lower,
    ).not.toBe(a.lower);
  });

  it("one image per group gives exactly the image bootstrap", () => {
    const ids = base.labels.map((_, i) => `image:${i}`);
    const grouped = bootstrapMetric(base.labels, base.probs, computeRocAuc, {
      iterations: 200,
      seed: 2,
      groupIds: ids,
    });
    const { groupCount, ...rest } = grouped;
    expect(groupCount).toBe(150);
    expect(rest).toEqual(bootstrapMetric(base.labels, base.probs, computeRocAuc, { iterations: 200, seed: 2 }));
  });

  it("group ids from assignGroupIds: a lesion with and without patient_id is one group", () => {
    const records: LesionRecord[] = [
      { imageId: "a", imagePath: "/x/a.jpg", label: "malignant", lesionId: "L1", patientId: "P1" },
      { imageId: "b", imagePath: "/x/b.jpg", label: "malignant", lesionId: "L1" },
      { imageId: "c", imagePath: "/x/c.jpg", label: "benign", lesionId: "L2" },
      { imageId: "d", imagePath: "/x/d.jpg", label: "benign", lesionId: "L3" },
    ];
    const labels = records.map((r) => (r.label === "malignant" ? 1 : 0));
    const seen = new Set<string>();
    forEachStratifiedResample(
      labels,
      [0.9, 0.8, 0.1, 0.2],
      { iterations: 50, seed: 1, groupIds: assignGroupIds(records) },
      (y, p) => {
        seen.add(
          p
            .filter((_, k) => y[k] === 1)
            .sort()
            .join(","),
        );
      },
    );
    // The malignant stratum is the one group {a, b}: both images, every time (never a twice).
    expect([...seen]).toEqual(["0.8,0.9"]);
  });

  it("summarizeMetricsWithIntervals and the ROC band pass the groups through", () => {
    const rows = summarizeMetricsWithIntervals(dup.labels, dup.probs, {
      thresholdProb: 0.3,
      iterations: 100,
      seed: 12,
      groupIds: dup.groupIds,
    });
    expect(rows.find((r) => r.metric === "ROC AUC")!.interval).toEqual(
      bootstrapMetric(dup.labels, dup.probs, computeRocAuc, { iterations: 100, seed: 12, groupIds: dup.groupIds }),
    );
    const sens = bootstrapMetric(dup.labels, dup.probs, (y, p) => computeMetricsAtThreshold(y, p, 0.3).sensitivity, {
      iterations: 100,
      seed: 12,
      groupIds: dup.groupIds,
    });
    expect(rows.find((r) => r.metric === "Sensitivity at t=0.3")!.interval).toEqual(sens);
    expect(buildMetricTable(rows).caption).toMatch(/over 150 patient\/lesion groups, seed 12/);
    const band = computeRocBootstrapBand(dup.labels, dup.probs, {
      iterations: 100,
      seed: 4,
      gridPoints: 21,
      groupIds: dup.groupIds,
    });
    const reference = computeRocBootstrapBand(base.labels, base.probs, { iterations: 100, seed: 4, gridPoints: 21 });
    band.lowerTpr.forEach((v, g) => expect(v).toBeCloseTo(reference.lowerTpr[g], 9));
    band.upperTpr.forEach((v, g) => expect(v).toBeCloseTo(reference.upperTpr[g], 9));
  });

  it("refuses group ids that do not line up with the examples", () => {
    expect(() => bootstrapMetric([1, 0, 0], [0.9, 0.1, 0.2], computeRocAuc, { seed: 1, groupIds: ["a", "b"] })).toThrow(
      MetricInputError,
    );
    expect(() => bootstrapMetric([1, 0, 0], [0.9, 0.1, 0.2], computeRocAuc, { seed: 1, groupIds: ["a", "b"] })).toThrow(
      /groupIds has 2 entries; expected one per example \(3\)/,
    );
    expect(() =>
      bootstrapMetric([1, 0, 0], [0.9, 0.1, 0.2], computeRocAuc, { seed: 1, groupIds: ["a", "", "c"] }),
    ).toThrow(/groupIds\[1\] is ""/);
  });
});
