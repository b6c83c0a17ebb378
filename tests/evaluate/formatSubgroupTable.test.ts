import { describe, expect, it } from "vitest";
import { computeSubgroupMetrics, formatSubgroupTable } from "../../lib/index.js";

describe("formatSubgroupTable", () => {
  it("lays out counts and metrics, with n/a where a group has one class", () => {
    const records = [
      { label: "benign" as const, sex: "female" },
      { label: "malignant" as const, sex: "female" },
      { label: "benign" as const, sex: "male" },
      { label: "benign" as const, sex: "male" },
    ];
    const probs = [0.2, 0.9, 0.4, 0.1];
    const rows = [
      ...computeSubgroupMetrics(records, probs, { field: "sex", thresholdProb: 0.5 }),
      ...computeSubgroupMetrics(records, probs, { field: "site", thresholdProb: 0.5 }),
    ];
    const lines = formatSubgroupTable(rows).split("\n");
    expect(lines[0]).toMatch(/^field\s+group\s+images\s+malignant\s+AUC\s+sens\s+spec$/);
    const female = lines.find((l) => l.includes("female"))!;
    expect(female.trim().split(/\s+/)).toEqual(["sex", "female", "2", "1", "1.000", "1.000", "1.000"]);
    const male = lines.find((l) => /\bmale\b/.test(l) && !l.includes("female"))!;
    expect(male.trim().split(/\s+/)).toEqual(["sex", "male", "2", "0", "n/a", "n/a", "1.000"]);
    expect(lines.filter((l) => l.startsWith("all ")).length).toBe(1);
    expect(
      lines
        .find((l) => l.startsWith("site"))!
        .trim()
        .split(/\s+/)
        .slice(0, 4),
    ).toEqual(["site", "unknown", "4", "1"]);
  });
});
