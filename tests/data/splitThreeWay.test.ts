import { describe, expect, it } from "vitest";
import { assertNoGroupLeakage, splitTrainValidationTest, SplitError } from "../../lib/index.js";
import type { LesionRecord } from "../../lib/index.js";

function makeRecords(): LesionRecord[] {
  const records: LesionRecord[] = [];
  // 100 lesions, 2 images each; every 4th lesion malignant (25%).
  for (let lesion = 0; lesion < 100; lesion++) {
    for (let image = 0; image < 2; image++) {
      const id = `IMG_${lesion}_${image}`;
      records.push({ imageId: id, imagePath: `/x/${id}.jpg`, label: lesion % 4 === 0 ? "malignant" : "benign", lesionId: `L${lesion}` });
    }
  }
  return records;
}

describe("splitTrainValidationTest", () => {
  it("holds out test and validation by lesion, stratified, with the fractions of all images", () => {
    const records = makeRecords();
    const { train, validation, test } = splitTrainValidationTest(records, { validationFraction: 0.2, testFraction: 0.2, seed: 42 });
    expect(train.length + validation.length + test.length).toBe(200);
    expect(test.length).toBe(40);
    expect(validation.length).toBe(40);
    assertNoGroupLeakage([train, validation, test]);
    for (const part of [train, validation, test]) {
      const malignant = part.filter((r) => r.label === "malignant").length / part.length;
      expect(malignant).toBeCloseTo(0.25, 1);
    }
  });

  it("is deterministic by seed and differs across seeds", () => {
    const records = makeRecords();
    const a = splitTrainValidationTest(records, { validationFraction: 0.2, testFraction: 0.2, seed: 1 });
    const b = splitTrainValidationTest(records.slice().reverse(), { validationFraction: 0.2, testFraction: 0.2, seed: 1 });
    const c = splitTrainValidationTest(records, { validationFraction: 0.2, testFraction: 0.2, seed: 2 });
    const ids = (r: LesionRecord[]) => r.map((x) => x.imageId).sort();
    expect(ids(a.test)).toEqual(ids(b.test));
    expect(ids(a.validation)).toEqual(ids(b.validation));
    expect(ids(a.test)).not.toEqual(ids(c.test));
  });

  it("rejects fractions that leave nothing to train on", () => {
    expect(() => splitTrainValidationTest(makeRecords(), { validationFraction: 0.5, testFraction: 0.5, seed: 1 })).toThrow(SplitError);
    expect(() => splitTrainValidationTest(makeRecords(), { validationFraction: 0.5, testFraction: 0.5, seed: 1 })).toThrow(/sum to less than 1/);
  });
});
