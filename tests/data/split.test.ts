import { describe, expect, it } from "vitest";
import {
  assertNoGroupLeakage,
  assignGroupIds,
  createGroupedKFolds,
  splitByLesion,
  splitTrainValidationTest,
  SplitError,
} from "../../lib/data/split.js";
import { createLeaveOneSourceOutFolds } from "../../lib/experiments/sourceFolds.js";
import type { LesionLabel, LesionRecord } from "../../lib/data/types.js";
import { createRandom } from "../../lib/util/random.js";

function rec(imageId: string, ids: { lesionId?: string; patientId?: string; source?: string; label?: LesionLabel } = {}): LesionRecord {
  return { imageId, imagePath: `/x/${imageId}.jpg`, label: ids.label ?? "benign", lesionId: ids.lesionId, patientId: ids.patientId, source: ids.source };
}

/**
 * An ISIC-like export where patient_id is filled on only some images: 200 lesions of 120
 * patients, 2–3 images per lesion, each image carrying its patient_id with probability 0.5
 * (at least one image per lesion does, so the patient is knowable from the data), except
 * patients 100–119, whose id is never filled and who have one lesion each. A patient's lesions
 * may be at different sources (clinics). `truePatientOf` is the ground truth per image id.
 */
function makePartlyFilledRecords(seed: number): { records: LesionRecord[]; truePatientOf: Map<string, string> } {
  const rand = createRandom(seed);
  const records: LesionRecord[] = [];
  const truePatientOf = new Map<string, string>();
  for (let lesion = 0; lesion < 200; lesion++) {
    const patient = lesion < 120 ? lesion : Math.floor(rand() * 100);
    const label: LesionLabel = rand() < 0.25 ? "malignant" : "benign";
    const source = `clinic-${lesion % 3}`;
    const images = 2 + Math.floor(rand() * 2);
    const filled = Array.from({ length: images }, () => patient < 100 && rand() < 0.5);
    if (patient < 100 && !filled.includes(true)) filled[Math.floor(rand() * images)] = true;
    for (let k = 0; k < images; k++) {
      const imageId = `IMG_${lesion}_${k}`;
      records.push(rec(imageId, { lesionId: `L${lesion}`, patientId: filled[k] ? `P${patient}` : undefined, source, label }));
      truePatientOf.set(imageId, `P${patient}`);
    }
  }
  return { records, truePatientOf };
}

/**
 * Lesion ids, and true patients (from the fixture's ground truth, not from the records' partly
 * filled patient ids), that appear in more than one of `parts`; counted directly, not via the library.
 */
function crossingIds(parts: readonly (readonly LesionRecord[])[], truePatientOf: Map<string, string>): { lesions: string[]; patients: string[] } {
  const partsOf = (idOf: (r: LesionRecord) => string | undefined) => {
    const seen = new Map<string, Set<number>>();
    parts.forEach((part, p) => part.forEach((r) => {
      const id = idOf(r);
      if (id) (seen.get(id) ?? seen.set(id, new Set()).get(id)!).add(p);
    }));
    return [...seen].filter(([, ps]) => ps.size > 1).map(([id]) => id);
  };
  return { lesions: partsOf((r) => r.lesionId), patients: partsOf((r) => truePatientOf.get(r.imageId)) };
}

describe("assignGroupIds", () => {
  const records = [
    rec("a", { lesionId: "L1", patientId: "P1" }),
    rec("b", { lesionId: "L1" }), // same lesion, patient_id not filled
    rec("c", { lesionId: "L2" }),
    rec("d", { lesionId: "L3", patientId: "P1" }), // another lesion of P1
    rec("e", { lesionId: "L4", patientId: "P3" }),
    rec("f", { lesionId: "L4", patientId: "P2" }), // one lesion filed under two patient ids joins them
    rec("g"),
    rec("h", { patientId: "P2" }),
  ];

  it("gives the connected components over patient and lesion ids, named by smallest patient, else lesion, else image", () => {
    expect(assignGroupIds(records)).toEqual(["patient:P1", "patient:P1", "lesion:L2", "patient:P1", "patient:P2", "patient:P2", "image:g", "patient:P2"]);
  });

  it("does not depend on record order", () => {
    expect(assignGroupIds(records.slice().reverse())).toEqual(assignGroupIds(records).reverse());
  });
});

describe("grouped splits when patient_id is filled on only some images of a lesion", () => {
  const { records, truePatientOf } = makePartlyFilledRecords(7);

  it("the fixture has lesions whose images disagree on patient_id (the case that leaked)", () => {
    const mixed = new Set<string>();
    const withPatient = new Set(records.filter((r) => r.patientId).map((r) => r.lesionId));
    for (const r of records) if (!r.patientId && withPatient.has(r.lesionId)) mixed.add(r.lesionId!);
    expect(mixed.size).toBeGreaterThan(100);
  });

  it("splitByLesion puts no lesion and no patient on both sides", () => {
    for (const seed of [1, 2, 3]) {
      const { train, validation } = splitByLesion(records, { validationFraction: 0.3, seed });
      expect(crossingIds([train, validation], truePatientOf)).toEqual({ lesions: [], patients: [] });
      expect(train.length + validation.length).toBe(records.length);
    }
  });

  it("splitTrainValidationTest puts no lesion and no patient in two splits", () => {
    const { train, validation, test } = splitTrainValidationTest(records, { validationFraction: 0.2, testFraction: 0.2, seed: 42 });
    expect(crossingIds([train, validation, test], truePatientOf)).toEqual({ lesions: [], patients: [] });
  });

  it("createGroupedKFolds puts no lesion and no patient in two folds, nor on both sides of a fold", () => {
    const folds = createGroupedKFolds(records, { folds: 5, seed: 42 });
    expect(crossingIds(folds.map((f) => f.validation), truePatientOf)).toEqual({ lesions: [], patients: [] });
    for (const f of folds) expect(crossingIds([f.train, f.validation], truePatientOf)).toEqual({ lesions: [], patients: [] });
  });

  it("createLeaveOneSourceOutFolds keeps every lesion and patient on one side of each fold", () => {
    const folds = createLeaveOneSourceOutFolds(records);
    expect(folds).toHaveLength(3);
    // Patients with lesions at two clinics exist, so some folds must drop train images.
    expect(folds.some((f) => f.droppedFromTrain > 0)).toBe(true);
    for (const f of folds) expect(crossingIds([f.train, f.validation], truePatientOf)).toEqual({ lesions: [], patients: [] });
  });
});

describe("assertNoGroupLeakage", () => {
  it("throws for a lesion in two folds even when its images carry different or missing patient ids", () => {
    expect(() => assertNoGroupLeakage([[rec("a", { lesionId: "L1", patientId: "P1" })], [rec("b", { lesionId: "L1" })]])).toThrow(SplitError);
    expect(() => assertNoGroupLeakage([[rec("a", { lesionId: "L1", patientId: "P1" })], [rec("b", { lesionId: "L1" })]])).toThrow(
      /lesion L1 is in fold 0 \(image a\) and fold 1 \(image b\)/,
    );
    expect(() => assertNoGroupLeakage([[rec("a", { lesionId: "L1", patientId: "P1" })], [rec("b", { lesionId: "L1", patientId: "P2" })]])).toThrow(/lesion L1/);
  });

  it("throws for a patient in two folds whatever the lesion ids, and for one image in two folds", () => {
    expect(() => assertNoGroupLeakage([[rec("a", { lesionId: "L1", patientId: "P1" })], [rec("b", { lesionId: "L2", patientId: "P1" })]])).toThrow(/patient P1/);
    expect(() => assertNoGroupLeakage([[rec("a", { patientId: "P1" })], [], [rec("b", { lesionId: "L9", patientId: "P1" })]])).toThrow(/fold 0 .* fold 2/);
    expect(() => assertNoGroupLeakage([[rec("x")], [rec("x")]])).toThrow(/image x/);
  });

  it("passes a clean split and returns the number of connected groups", () => {
    const folds = [
      [rec("a", { lesionId: "L1", patientId: "P1" }), rec("b", { lesionId: "L1" }), rec("c", { lesionId: "L2", patientId: "P1" })],
      [rec("d", { lesionId: "L3" }), rec("e", { lesionId: "L3", patientId: "P2" }), rec("f")],
    ];
    // {a, b, c} via L1 and P1; {d, e} via L3; {f}.
    expect(assertNoGroupLeakage(folds)).toBe(3);
  });
});

describe("createLeaveOneSourceOutFolds with a group imaged at two sources", () => {
  const records = [
    rec("a", { lesionId: "L1", patientId: "P1", source: "s1", label: "malignant" }),
    rec("b", { lesionId: "L1", source: "s2", label: "malignant" }), // same lesion at s2, patient_id not filled
    rec("c", { lesionId: "L2", patientId: "P1", source: "s2" }), // another lesion of the same patient at s2
    rec("d", { lesionId: "L3", source: "s1" }),
    rec("e", { lesionId: "L4", source: "s2", label: "malignant" }),
    rec("f", { lesionId: "L5", source: "s2" }),
  ];

  it("keeps the group whole in the held-out source, drops its other images from train and names it", () => {
    const [s1, s2] = createLeaveOneSourceOutFolds(records);
    expect(s1.heldOutSource).toBe("s1");
    expect(s1.validation.map((r) => r.imageId)).toEqual(["a", "d"]);
    expect(s1.train.map((r) => r.imageId)).toEqual(["e", "f"]);
    expect(s1.droppedFromTrain).toBe(2);
    expect(s1.crossSourceGroupIds).toEqual(["patient:P1"]);
    expect(s2.validation.map((r) => r.imageId)).toEqual(["b", "c", "e", "f"]);
    expect(s2.train.map((r) => r.imageId)).toEqual(["d"]);
    expect(s2.droppedFromTrain).toBe(1);
    expect(s2.crossSourceGroupIds).toEqual(["patient:P1"]);
  });
});
