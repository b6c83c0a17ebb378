import { describe, expect, it } from "vitest";
import { ClassImbalanceError, computeClassWeights, computeOutputBiasInit } from "../../lib/data/imbalance.js";
import { assertNoGroupLeakage, createGroupedKFolds, SplitError } from "../../lib/data/split.js";
import type { LesionLabel, LesionRecord } from "../../lib/data/types.js";
import { createRandom } from "../../lib/util/random.js";

const labels = (benign: number, malignant: number) => [
  ...Array.from({ length: benign }, () => ({ label: "benign" as const })),
  ...Array.from({ length: malignant }, () => ({ label: "malignant" as const })),
];

describe("computeClassWeights / computeOutputBiasInit", () => {
  it("match sklearn's 'balanced' weights n / (2 × count) and log(pos/neg)", () => {
    expect(computeClassWeights(labels(800, 200))).toEqual({ 0: 0.625, 1: 2.5 });
    expect(computeClassWeights(labels(3, 3))).toEqual({ 0: 1, 1: 1 });
    const w = computeClassWeights(labels(1060, 938));
    expect(w[0]).toBeCloseTo(1998 / 2120, 12);
    expect(w[1]).toBeCloseTo(1998 / 1876, 12);
    // Weighted class totals are equal: each class carries half the loss.
    expect(w[0] * 1060).toBeCloseTo(w[1] * 938, 9);
    expect(computeOutputBiasInit(labels(800, 200))).toBeCloseTo(Math.log(0.25), 12);
    expect(computeOutputBiasInit(labels(5, 5))).toBe(0);
    // sigmoid(bias) is the malignant fraction.
    expect(1 / (1 + Math.exp(-computeOutputBiasInit(labels(700, 300))))).toBeCloseTo(0.3, 12);
  });
  it("refuse a single-class set with a named error", () => {
    expect(() => computeClassWeights(labels(4, 0))).toThrow(ClassImbalanceError);
    expect(() => computeOutputBiasInit(labels(0, 2))).toThrow(/received 0 benign and 2 malignant/);
  });
});

/** Patients with several lesions, lesions with several images; some images with neither id. */
function makeRecords(seed: number): LesionRecord[] {
  const rand = createRandom(seed);
  const records: LesionRecord[] = [];
  let image = 0;
  for (let p = 0; p < 30; p++) {
    const lesions = 1 + Math.floor(rand() * 3);
    for (let l = 0; l < lesions; l++) {
      const label: LesionLabel = rand() < 0.3 ? "malignant" : "benign";
      const images = 1 + Math.floor(rand() * 3);
      for (let i = 0; i < images; i++) {
        image++;
        records.push({ imageId: `IMG_${image}`, imagePath: `/x/${image}.jpg`, label, lesionId: `L_${p}_${l}`, patientId: p < 20 ? `P_${p}` : undefined });
      }
    }
  }
  for (let i = 0; i < 12; i++) records.push({ imageId: `SOLO_${i}`, imagePath: `/x/s${i}.jpg`, label: i % 3 === 0 ? "malignant" : "benign" });
  return records;
}

describe("createGroupedKFolds", () => {
  const records = makeRecords(11);

  it("puts every record in exactly one validation fold, never splitting a patient or lesion", () => {
    const folds = createGroupedKFolds(records, { folds: 5, seed: 42 });
    expect(folds).toHaveLength(5);
    const seen = folds.flatMap((f) => f.validation.map((r) => r.imageId)).sort();
    expect(seen).toEqual(records.map((r) => r.imageId).sort());
    // 20 patients with ids, each lesion of the 10 patients without one, and the 12 solo images.
    const lesionsWithoutPatient = new Set(records.filter((r) => r.lesionId && !r.patientId).map((r) => r.lesionId)).size;
    expect(assertNoGroupLeakage(folds.map((f) => f.validation))).toBe(20 + lesionsWithoutPatient + 12);
    for (const f of folds) {
      expect(f.train.length + f.validation.length).toBe(records.length);
      expect(() => assertNoGroupLeakage([f.train, f.validation])).not.toThrow();
      const trainPatients = new Set(f.train.map((r) => r.patientId).filter(Boolean));
      expect(f.validation.some((r) => r.patientId && trainPatients.has(r.patientId))).toBe(false);
      const trainLesions = new Set(f.train.map((r) => r.lesionId).filter(Boolean));
      expect(f.validation.some((r) => r.lesionId && trainLesions.has(r.lesionId))).toBe(false);
    }
  });

  it("stratifies: each fold's malignant share is near the overall share, and sizes are even", () => {
    const folds = createGroupedKFolds(records, { folds: 4, seed: 3 });
    const overall = records.filter((r) => r.label === "malignant").length / records.length;
    const sizes = folds.map((f) => f.validation.length);
    expect(Math.max(...sizes) - Math.min(...sizes)).toBeLessThanOrEqual(8);
    for (const f of folds) {
      const share = f.validation.filter((r) => r.label === "malignant").length / f.validation.length;
      expect(Math.abs(share - overall)).toBeLessThan(0.12);
    }
  });

  it("is deterministic by seed and independent of input order", () => {
    const ids = (fs: ReturnType<typeof createGroupedKFolds>) => fs.map((f) => f.validation.map((r) => r.imageId).sort());
    const a = ids(createGroupedKFolds(records, { folds: 5, seed: 42 }));
    expect(ids(createGroupedKFolds(records.slice().reverse(), { folds: 5, seed: 42 }))).toEqual(a);
    expect(ids(createGroupedKFolds(records, { folds: 5, seed: 43 }))).not.toEqual(a);
  });

  it("rejects bad fold counts with a named error", () => {
    expect(() => createGroupedKFolds(records, { folds: 1, seed: 1 })).toThrow(SplitError);
    expect(() => createGroupedKFolds(records.slice(0, 2), { folds: 5, seed: 1 })).toThrow(/5 folds need at least 5 patient\/lesion groups/);
  });
});
