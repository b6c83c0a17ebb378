import { describe, expect, it } from "vitest";
import { computeRocAuc, computeWithinSourceRocAuc, SplitError, SourceInputError } from "../../lib/index.js";
import type { LesionRecord } from "../../lib/index.js";
import { createLeaveOneSourceOutFolds } from "../../lib/experiments/sourceFolds.js";
import {
  summarizeFoldSpread,
  formatFoldSpread,
  toFoldRows,
  CrossValidationError,
} from "../../lib/experiments/crossValidate.js";
import { createProgressBar, formatDurationSeconds } from "../../lib/util/progress.js";

// Within-source AUC lives in lib/evaluate/sourceConfounding.ts; experiments report it per fold,
// so its behaviour on the experiment's own hand example is pinned here too.
describe("computeWithinSourceRocAuc (as used by experiments)", () => {
  // Source A: positives 0.4, 0.9; negatives 0.1, 0.5 → pairs won 0.4>0.1, 0.9>0.1, 0.9>0.5 = 3 of 4.
  // Source B: one positive and one negative tied at 0.7 → ½ of 1 pair. Source C: one negative, no pairs.
  // Within-source: (3 + 0.5) / (4 + 1) = 0.7. Pooled (12 pairs, counted by hand): 1 + 3 + 2.5 = 6.5 / 12.
  const labels = [0, 1, 0, 1, 0, 1, 0];
  const probs = [0.1, 0.4, 0.5, 0.9, 0.7, 0.7, 0.99];
  const sources = ["A", "A", "A", "A", "B", "B", "C"];

  it("counts only same-source pairs (hand-computed example)", () => {
    const result = computeWithinSourceRocAuc(labels, probs, sources);
    expect(result.auc).toBeCloseTo(0.7, 12);
    expect(result.pairCount).toBe(5);
    expect(result.perSource).toEqual([
      { source: "A", positives: 2, negatives: 2, pairCount: 4, auc: 0.75 },
      { source: "B", positives: 1, negatives: 1, pairCount: 1, auc: 0.5 },
      { source: "C", positives: 0, negatives: 1, pairCount: 0, auc: NaN },
    ]);
    expect(computeRocAuc(labels, probs)).toBeCloseTo(6.5 / 12, 12);
  });

  it("gives 0.5 to a score that only knows the source, while pooled AUC rewards it", () => {
    // Source X is 3/4 malignant, Y 1/4: scoring each image by its source's prevalence.
    const y = [1, 1, 1, 0, 1, 0, 0, 0];
    const s = ["X", "X", "X", "X", "Y", "Y", "Y", "Y"];
    const p = s.map((v) => (v === "X" ? 0.75 : 0.25));
    expect(computeRocAuc(y, p)).toBeCloseTo(0.75, 12); // 12 of 16 pairs cross sources the right way, 4 tie
    expect(computeWithinSourceRocAuc(y, p, s).auc).toBe(0.5);
  });

  it("rejects mismatched lengths and says why there is no value without same-source pairs", () => {
    expect(() => computeWithinSourceRocAuc([0, 1], [0.2, 0.3], ["a"])).toThrow(SourceInputError);
    const none = computeWithinSourceRocAuc([0, 1], [0.2, 0.3], ["a", "b"]);
    expect(none.auc).toBeNaN();
    expect(none.reason).toMatch(/a: 0 malignant, 1 benign; b: 1 malignant, 0 benign/);
  });
});

function record(
  imageId: string,
  source: string | undefined,
  label: "benign" | "malignant",
  lesionId = `L-${imageId}`,
): LesionRecord {
  return { imageId, imagePath: `/nowhere/${imageId}.jpg`, label, lesionId, source };
}

describe("createLeaveOneSourceOutFolds", () => {
  const records = [
    record("a1", "clinic-a", "benign"),
    record("a2", "clinic-a", "malignant"),
    record("b1", "clinic-b", "benign"),
    record("b2", "clinic-b", "malignant", "shared-lesion"),
    record("c1", "clinic-c", "malignant"),
    record("c2", "clinic-c", "benign", "shared-lesion"),
    record("c3", "clinic-c", "benign"),
  ];

  it("holds out each source once and never has a source (or lesion) on both sides", () => {
    const folds = createLeaveOneSourceOutFolds(records);
    expect(folds.map((f) => f.heldOutSource)).toEqual(["clinic-a", "clinic-b", "clinic-c"]);
    for (const fold of folds) {
      const trainSources = new Set(fold.train.map((r) => r.source));
      expect(trainSources.has(fold.heldOutSource)).toBe(false);
      expect(fold.validation.every((r) => r.source === fold.heldOutSource)).toBe(true);
      const trainLesions = new Set(fold.train.map((r) => r.lesionId));
      expect(fold.validation.some((r) => trainLesions.has(r.lesionId))).toBe(false);
    }
    expect(folds.flatMap((f) => f.validation.map((r) => r.imageId)).sort()).toEqual(
      records.map((r) => r.imageId).sort(),
    );
    // The lesion photographed at clinics b and c is dropped from train when either is held out.
    expect(folds.map((f) => f.droppedFromTrain)).toEqual([0, 1, 1]);
    expect(folds[1].train.map((r) => r.imageId)).toEqual(["a1", "a2", "c1", "c3"]);
  });

  it("rejects a record without source and a single source", () => {
    expect(() => createLeaveOneSourceOutFolds([...records, record("x", undefined, "benign")])).toThrow(SplitError);
    expect(() => createLeaveOneSourceOutFolds([...records, record("x", undefined, "benign")])).toThrow(
      /record x: source is undefined/,
    );
    expect(() => createLeaveOneSourceOutFolds(records.filter((r) => r.source === "clinic-c"))).toThrow(
      /at least 2 sources; received 1/,
    );
  });
});

describe("fold helpers", () => {
  it("summarizeFoldSpread: mean and sample sd, NaN folds left out", () => {
    const s = summarizeFoldSpread([0.8, 0.9, NaN, 0.7]);
    expect(s.n).toBe(3);
    expect(s.mean).toBeCloseTo(0.8, 12);
    expect(s.sd).toBeCloseTo(0.1, 12); // squared deviations 0.01 + 0.01 + 0 over n − 1 = 2
    expect([s.min, s.max]).toEqual([0.7, 0.9]);
    expect(formatFoldSpread(s)).toBe("0.800 ± 0.100");
    expect(formatFoldSpread(summarizeFoldSpread([NaN]))).toBe("n/a");
  });

  it("toFoldRows maps records to feature rows by imageId and rejects duplicate ids", () => {
    const rows = [{ imageId: "b" }, { imageId: "a" }, { imageId: "c" }];
    const folds = toFoldRows(rows, [
      {
        name: "f",
        train: [{ imageId: "a" }, { imageId: "missing" }],
        validation: [{ imageId: "c" }, { imageId: "b" }],
      },
    ]);
    expect(folds).toEqual([{ name: "f", trainRows: [1], validationRows: [2, 0] }]);
    expect(() => toFoldRows([{ imageId: "a" }, { imageId: "a" }], [])).toThrow(CrossValidationError);
  });
});

describe("createProgressBar", () => {
  function fakeStream(isTTY: boolean) {
    const writes: string[] = [];
    return { writes, stream: { isTTY, columns: 100, write: (t: string) => writes.push(t) } };
  }

  it("redraws one line with ETA on a terminal and ends it with a newline", () => {
    let now = 0;
    const { writes, stream } = fakeStream(true);
    const bar = createProgressBar("features", { stream, nowMs: () => now, minRedrawMs: 100 });
    now = 2000;
    bar(10, 40); // 5/s, 30 left → 6 s
    now = 2050;
    bar(11, 40); // within minRedrawMs: skipped
    now = 8000;
    bar(40, 40);
    bar(40, 40); // after the end: nothing
    expect(writes).toHaveLength(2);
    expect(writes[0].startsWith("\rfeatures [")).toBe(true);
    expect(writes[0]).toContain(" 25% 10/40 5.0/s ETA 6s");
    expect(writes[0].endsWith("\n")).toBe(false);
    expect(writes[1]).toContain("100% 40/40 5.0/s in 8s");
    expect(writes[1].endsWith("\n")).toBe(true);
  });

  it("prints plain lines every stepPercent elsewhere", () => {
    let now = 0;
    const { writes, stream } = fakeStream(false);
    const bar = createProgressBar("train", { stream, nowMs: () => now, stepPercent: 50 });
    for (let done = 0; done <= 10; done++) {
      now = done * 1000;
      bar(done, 10);
    }
    expect(writes).toEqual([
      "train:   0% 0/10 0.0/s ETA ?\n",
      "train:  50% 5/10 1.0/s ETA 5s\n",
      "train: 100% 10/10 1.0/s in 10s\n",
    ]);
    expect([formatDurationSeconds(65), formatDurationSeconds(3725), formatDurationSeconds(NaN)]).toEqual([
      "1m05s",
      "1h02m",
      "?",
    ]);
  });
});
