import { describe, expect, it, vi } from "vitest";
import { bootstrapMetric, computeQuantileOfSorted } from "../../lib/evaluate/bootstrap.js";
import { SingleClassError, computeMetricsAtThreshold, computeRocAuc } from "../../lib/evaluate/metrics.js";
import { computeSubgroupMetrics, describeAgeBand } from "../../lib/evaluate/subgroups.js";
import type { SubgroupRecord } from "../../lib/evaluate/subgroups.js";
import { UnknownNameError } from "../../lib/util/errors.js";
import { buildMetricTable, summarizeMetricsWithIntervals } from "../../lib/evaluate/summary.js";
import { makeSyntheticScores } from "./fixtures/syntheticScores.js";

describe("bootstrapMetric", () => {
  const { labels, probs } = makeSyntheticScores({ count: 400, prevalence: 0.25, separation: 1.5, seed: 11 });

  it("quantiles interpolate like numpy's default", () => {
    // numpy.percentile([1, 2, 3, 4], [25, 50, 97.5]) = [1.75, 2.5, 3.925]
    expect(computeQuantileOfSorted([1, 2, 3, 4], 0.25)).toBeCloseTo(1.75, 12);
    expect(computeQuantileOfSorted([1, 2, 3, 4], 0.5)).toBeCloseTo(2.5, 12);
    expect(computeQuantileOfSorted([1, 2, 3, 4], 0.975)).toBeCloseTo(3.925, 12);
  });

  it("is seeded: same seed same interval, another seed another", () => {
    const a = bootstrapMetric(labels, probs, computeRocAuc, { iterations: 300, seed: 5 });
    const b = bootstrapMetric(labels, probs, computeRocAuc, { iterations: 300, seed: 5 });
    const c = bootstrapMetric(labels, probs, computeRocAuc, { iterations: 300, seed: 6 });
    expect(b).toEqual(a);
    expect(c.lower).not.toBe(a.lower);
    expect(a.estimate).toBe(computeRocAuc(labels, probs));
    expect(a.lower).toBeLessThan(a.estimate);
    expect(a.upper).toBeGreaterThan(a.estimate);
  });

  it("resamples within each class (prevalence never varies)", () => {
    const prevalence = (y: number[]) => y.reduce((s, v) => s + v, 0) / y.length;
    const r = bootstrapMetric(labels, probs, prevalence, { iterations: 200, seed: 1 });
    expect(r.lower).toBe(r.estimate);
    expect(r.upper).toBe(r.estimate);
  });

  it("AUC standard error agrees with the Hanley–McNeil formula", () => {
    const r = bootstrapMetric(labels, probs, computeRocAuc, { iterations: 1000, seed: 2 });
    const a = r.estimate;
    const nP = labels.filter((y) => y === 1).length;
    const nN = labels.length - nP;
    const q1 = a / (2 - a);
    const q2 = (2 * a * a) / (1 + a);
    const hanley = Math.sqrt((a * (1 - a) + (nP - 1) * (q1 - a * a) + (nN - 1) * (q2 - a * a)) / (nP * nN));
    expect(r.standardError / hanley).toBeGreaterThan(0.75);
    expect(r.standardError / hanley).toBeLessThan(1.25);
    // Percentile interval roughly ±1.96 SE.
    expect((r.upper - r.lower) / (2 * 1.96 * r.standardError)).toBeGreaterThan(0.8);
    expect((r.upper - r.lower) / (2 * 1.96 * r.standardError)).toBeLessThan(1.2);
  });

  it("drops NaN replicates and counts them; all-NaN gives NaN with a warning", () => {
    const y = [0, 0, 0, 0, 0, 0, 1, 1];
    const p = [0.1, 0.2, 0.3, 0.4, 0.5, 0.99, 0.6, 0.7];
    // Only one benign image is above 0.9: replicates without it have PPV 0/0 = NaN.
    const ppv = bootstrapMetric(y, p, (yy, pp) => computeMetricsAtThreshold(yy, pp, 0.9).ppv, {
      iterations: 200,
      seed: 3,
    });
    expect(ppv.validIterations).toBeGreaterThan(0);
    expect(ppv.validIterations).toBeLessThan(200);
    const warn = vi.spyOn(console, "warn").mockImplementation(() => {});
    const never = bootstrapMetric(y, p, () => NaN, { iterations: 20, seed: 3 });
    expect(never.lower).toBeNaN();
    expect(warn).toHaveBeenCalledWith(expect.stringMatching(/NaN in all 20 replicates/));
    warn.mockRestore();
  });

  it("refuses one class and bad options", () => {
    expect(() => bootstrapMetric([1, 1], [0.2, 0.3], computeRocAuc, { seed: 1 })).toThrow(SingleClassError);
    expect(() => bootstrapMetric(labels, probs, computeRocAuc, { seed: 1, iterations: 0 })).toThrow(/iterations is 0/);
  });
});

describe("computeSubgroupMetrics", () => {
  const records: SubgroupRecord[] = [
    { label: "malignant", sex: "male", ageYears: 70, site: "back" },
    { label: "benign", sex: "male", ageYears: 66, site: "back" },
    { label: "malignant", sex: "male", ageYears: 52, site: "face" },
    { label: "benign", sex: "male", ageYears: 25, site: "back" },
    { label: "benign", sex: "female", ageYears: 31, site: "leg" },
    { label: "benign", sex: "female", ageYears: 44, site: "leg" },
    { label: "benign", sex: "female", ageYears: 80 },
    { label: "malignant", ageYears: undefined, site: "" },
  ];
  const probs = [0.9, 0.4, 0.3, 0.2, 0.6, 0.1, 0.05, 0.7];

  it("counts and metrics per sex, with an 'all' row and 'unknown' for missing values", () => {
    const rows = computeSubgroupMetrics(records, probs, { field: "sex", thresholdProb: 0.5 });
    expect(rows.map((r) => [r.group, r.count, r.positives, r.negatives])).toEqual([
      ["all", 8, 3, 5],
      ["male", 4, 2, 2],
      ["female", 3, 0, 3],
      ["unknown", 1, 1, 0],
    ]);
    const male = rows[1];
    // Male: M 0.9, 0.3; B 0.4, 0.2 → pairs won 0.9>0.4, 0.9>0.2, 0.3>0.2, lost 0.3<0.4 → 3/4.
    expect(male.rocAuc).toBe(0.75);
    expect(male.sensitivity).toBe(0.5);
    expect(male.specificity).toBe(1);
    expect(rows[0].rocAuc).toBe(computeRocAuc([1, 0, 1, 0, 0, 0, 0, 1], probs));
    const female = rows[2];
    expect(female.rocAuc).toBeNaN();
    expect(female.sensitivity).toBeNaN();
    expect(female.specificity).toBeCloseTo(2 / 3, 12);
    expect(female.note).toMatch(/no malignant examples/);
    expect(rows[3].note).toMatch(/no benign examples/);
  });

  it("age bands and sites", () => {
    expect([24, 30, 44, 45, 74, 75, undefined].map((a) => describeAgeBand(a))).toEqual([
      "<30",
      "30–44",
      "30–44",
      "45–59",
      "60–74",
      "75+",
      "unknown",
    ]);
    const bands = computeSubgroupMetrics(records, probs, { field: "ageBand", thresholdProb: 0.5 });
    expect(Object.fromEntries(bands.map((r) => [r.group, r.count]))).toEqual({
      all: 8,
      "60–74": 2,
      "30–44": 2,
      "<30": 1,
      "45–59": 1,
      "75+": 1,
      unknown: 1,
    });
    const sites = computeSubgroupMetrics(records, probs, { field: "site", thresholdProb: 0.5 });
    expect(sites.find((r) => r.group === "unknown")?.count).toBe(2);
  });

  it("names an unknown field and a bad label", () => {
    expect(() => computeSubgroupMetrics(records, probs, { field: "gender" as never, thresholdProb: 0.5 })).toThrow(
      UnknownNameError,
    );
    expect(() =>
      computeSubgroupMetrics([{ label: "melanoma" as never }], [0.5], { field: "sex", thresholdProb: 0.5 }),
    ).toThrow(/records\[0\]\.label is "melanoma"/);
    expect(() => computeSubgroupMetrics(records, probs.slice(1), { field: "sex", thresholdProb: 0.5 })).toThrow(
      /labels has 8 entries but probs has 7/,
    );
  });
});

describe("summarizeMetricsWithIntervals", () => {
  it("shares resamples: each interval equals bootstrapMetric with the same seed", () => {
    const { labels, probs } = makeSyntheticScores({ count: 200, prevalence: 0.3, separation: 1.5, seed: 8 });
    const rows = summarizeMetricsWithIntervals(labels, probs, { thresholdProb: 0.3, iterations: 100, seed: 12 });
    expect(rows.map((r) => r.metric)).toContain("ROC AUC");
    expect(rows.find((r) => r.metric === "ROC AUC")!.interval).toEqual(
      bootstrapMetric(labels, probs, computeRocAuc, { iterations: 100, seed: 12 }),
    );
    const sens = bootstrapMetric(labels, probs, (y, p) => computeMetricsAtThreshold(y, p, 0.3).sensitivity, {
      iterations: 100,
      seed: 12,
    });
    expect(rows.find((r) => r.metric === "Sensitivity at t=0.3")!.interval).toEqual(sens);
    const table = buildMetricTable(rows);
    expect(table.columns).toEqual(["metric", "estimate (95% CI)", "valid resamples"]);
    expect(table.rows).toHaveLength(10);
  });
});
