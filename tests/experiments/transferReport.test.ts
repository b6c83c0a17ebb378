import * as tf from "@tensorflow/tfjs";
import { beforeAll, describe, expect, it } from "vitest";
import { bootstrapMetric, computeRocAuc, selectBackend, type LesionRecord } from "../../lib/index.js";
import {
  crossValidateLeaveOneSourceOut,
  evaluateExternalScores,
  formatTransferReport,
  summarizeLeaveOneSourceOut,
  TransferReportError,
} from "../../lib/experiments/transferReport.js";

describe("summarizeLeaveOneSourceOut", () => {
  // Hand-checked: source a separates perfectly (AUC 1); in b one of two malignant scores below
  // both benign (pairs won 2 of 4: AUC 0.5); c holds only benign images (no AUC).
  const labels = [1, 0, 1, 0, 1, 1, 0, 0, 0, 0];
  const probs = [0.9, 0.2, 0.8, 0.3, 0.7, 0.1, 0.4, 0.35, 0.6, 0.2];
  const sources = ["a", "a", "a", "a", "b", "b", "b", "b", "c", "c"];

  it("gives per-source AUC, sensitivity and specificity at the threshold, worst AUC first", () => {
    const r = summarizeLeaveOneSourceOut(labels, probs, sources, 0.5);
    expect(r.perSource.map((s) => s.source)).toEqual(["b", "a", "c"]);
    expect(r.perSource[0]).toEqual({
      source: "b",
      images: 4,
      malignant: 2,
      benign: 2,
      rocAuc: 0.5,
      sensitivity: 0.5,
      specificity: 1,
    });
    expect(r.perSource[1]).toMatchObject({ source: "a", rocAuc: 1, sensitivity: 1, specificity: 1 });
    // c: one of two benign at 0.6 ≥ 0.5 is a false alarm; no malignant, so no AUC and no sensitivity.
    expect(r.perSource[2]).toMatchObject({ source: "c", malignant: 0, benign: 2, specificity: 0.5 });
    expect(r.perSource[2].rocAuc).toBeNaN();
    expect(r.perSource[2].sensitivity).toBeNaN();
    expect(r.worstSourceRocAuc).toBe(0.5);
    expect(r.thresholdProb).toBe(0.5);
  });

  it("leaves unscored (NaN) rows out and groups rows without a source as unknown", () => {
    const r = summarizeLeaveOneSourceOut([1, 0, 1, 0], [0.9, NaN, 0.6, 0.1], ["a", "a", undefined, undefined], 0.5);
    expect(r.perSource.map((s) => [s.source, s.images])).toEqual([
      ["unknown", 2],
      ["a", 1],
    ]);
  });

  it("refuses mismatched lengths and a threshold outside [0, 1], naming what it received", () => {
    expect(() => summarizeLeaveOneSourceOut([1, 0], [0.5], ["a", "a"], 0.5)).toThrow(
      /received 2 labels, 1 scores and 2 sources/,
    );
    expect(() => summarizeLeaveOneSourceOut([1, 0], [0.5, 0.2], ["a", "a"], 1.5)).toThrow(TransferReportError);
  });

  it("formats worst first, then the external set", () => {
    const lines = formatTransferReport({ leaveOneSourceOut: summarizeLeaveOneSourceOut(labels, probs, sources, 0.5) });
    expect(lines[1]).toBe("  b: ROC AUC 0.500, sensitivity 0.500, specificity 1.000 (4 images, 2 malignant)");
    expect(lines[3]).toContain("c: ROC AUC n/a, sensitivity n/a");
  });
});

describe("evaluateExternalScores: patient-grouped bootstrap", () => {
  // 12 images of 4 patients: P1 and P2 each hold one malignant, P3 and P4 are benign only.
  const labels = [1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0];
  const probs = [0.9, 0.3, 0.6, 0.4, 0.5, 0.2, 0.1, 0.7, 0.3, 0.2, 0.35, 0.45];
  const patients = ["P1", "P1", "P1", "P2", "P2", "P2", "P3", "P3", "P3", "P4", "P4", "P4"];

  it("reports the AUC, the threshold's sensitivity/specificity and the patients resampled", () => {
    const r = evaluateExternalScores({
      dataDir: "ext",
      labels,
      probs,
      patientIds: patients,
      thresholdProb: 0.5,
      seed: 1,
    });
    // By hand: malignant 0.9 beats all 10 benign; 0.4 beats 0.3, 0.2, 0.1, 0.3, 0.2, 0.35 (6 of 10): AUC 16/20.
    expect(r.rocAuc.estimate).toBeCloseTo(0.8, 12);
    expect(r.rocAuc.estimate).toBeCloseTo(computeRocAuc(labels, probs), 12);
    expect(r.patients).toBe(4);
    expect(r.sensitivity).toBe(0.5); // 0.9 ≥ 0.5, 0.4 < 0.5
    expect(r.specificity).toBeCloseTo(7 / 10, 12); // 0.6, 0.5, 0.7 flagged
    expect(r.rocAuc.lower).toBeLessThanOrEqual(r.rocAuc.estimate);
    expect(r.rocAuc.upper).toBeGreaterThanOrEqual(r.rocAuc.estimate);
  });

  it("gives another interval when the grouping changes (per image vs per patient)", () => {
    const common = { dataDir: "ext", labels, probs, thresholdProb: 0.5, seed: 3, iterations: 400 };
    const byPatient = evaluateExternalScores({ ...common, patientIds: patients });
    // No patient ids: every image is its own resampling unit.
    const byImage = evaluateExternalScores({ ...common, patientIds: labels.map(() => undefined) });
    expect(byImage.patients).toBe(12);
    expect(byImage.rocAuc.estimate).toBe(byPatient.rocAuc.estimate);
    expect([byImage.rocAuc.lower, byImage.rocAuc.upper]).not.toEqual([byPatient.rocAuc.lower, byPatient.rocAuc.upper]);
    // The patient interval is the bootstrap that resamples these patients, nothing else.
    const direct = bootstrapMetric(labels, probs, computeRocAuc, { iterations: 400, seed: 3, groupIds: patients });
    expect([byPatient.rocAuc.lower, byPatient.rocAuc.upper]).toEqual([direct.lower, direct.upper]);
  });

  it("has no AUC (NaN) when the external set holds one class, and refuses mismatched lengths", () => {
    const r = evaluateExternalScores({
      dataDir: "ext",
      labels: [0, 0],
      probs: [0.2, 0.7],
      patientIds: ["A", "B"],
      thresholdProb: 0.5,
      seed: 1,
    });
    expect(r.rocAuc.estimate).toBeNaN();
    expect(r.specificity).toBe(0.5);
    expect(() =>
      evaluateExternalScores({
        dataDir: "x",
        labels: [0, 1],
        probs: [0.2],
        patientIds: ["A", "B"],
        thresholdProb: 0.5,
        seed: 1,
      }),
    ).toThrow(/external x: received 2 labels, 1 scores and 2 patient ids/);
  });
});

describe("crossValidateLeaveOneSourceOut", () => {
  beforeAll(async () => {
    await selectBackend();
  });

  it("trains without each source and scores it: a source whose malignant image looks benign gets AUC 0.75", async () => {
    // Feature 0 = +1 malignant / −1 benign everywhere except one malignant image of source c at −1
    // (identical to c's benign images). Any head increasing in feature 0 scores a and b perfectly
    // (AUC 1) and ties c's odd malignant image with both benign ones: AUC (2 + 0.5·2) / 4 = 0.75,
    // and at threshold 0.5 sensitivity 1/2 on c.
    const rows: { source: string; label: 0 | 1; x: number }[] = [];
    for (const source of ["a", "b"])
      for (let k = 0; k < 4; k++) rows.push({ source, label: k % 2 === 0 ? 1 : 0, x: k % 2 === 0 ? 1 : -1 });
    rows.push(
      { source: "c", label: 1, x: 1 },
      { source: "c", label: 1, x: -1 },
      { source: "c", label: 0, x: -1 },
      { source: "c", label: 0, x: -1 },
    );
    const records: LesionRecord[] = rows.map((r, i) => ({
      imageId: `IMG_${i}`,
      imagePath: `/nonexistent/IMG_${i}.jpg`,
      label: r.label === 1 ? "malignant" : "benign",
      lesionId: `L${i}`,
      source: r.source,
    }));
    const features = new Float32Array(rows.flatMap((r) => [r.x, 0]));
    const before = tf.memory().numTensors;
    const loso = await crossValidateLeaveOneSourceOut(
      { features, featureDim: 2, labels: rows.map((r) => r.label) },
      records,
      {
        head: { hiddenUnits: 0, dropoutRate: 0, l2: 0, epochs: 40, batchSize: 4, learningRate: 0.1 },
        seed: 5,
        thresholdProb: 0.5,
      },
    );
    expect(tf.memory().numTensors).toBe(before);
    expect(loso.perSource.map((s) => s.source)).toEqual(["c", "a", "b"]);
    expect(loso.perSource[0]).toMatchObject({ source: "c", images: 4, malignant: 2, rocAuc: 0.75, sensitivity: 0.5 });
    expect(loso.perSource[1]).toMatchObject({ rocAuc: 1, sensitivity: 1, specificity: 1 });
    expect(loso.perSource[2]).toMatchObject({ rocAuc: 1, sensitivity: 1, specificity: 1 });
    expect(loso.worstSourceRocAuc).toBe(0.75);
    expect(loso.outOfFoldProbs.every((p) => p >= 0 && p <= 1)).toBe(true);
  }, 60_000);

  it("needs two sources", async () => {
    const records: LesionRecord[] = [0, 1].map((i) => ({
      imageId: `I${i}`,
      imagePath: "/x.jpg",
      label: i === 1 ? "malignant" : "benign",
      source: "only",
    }));
    await expect(
      crossValidateLeaveOneSourceOut({ features: new Float32Array([1, -1]), featureDim: 1, labels: [0, 1] }, records, {
        head: { hiddenUnits: 0, dropoutRate: 0, l2: 0, epochs: 1, batchSize: 2, learningRate: 0.1 },
        seed: 1,
        thresholdProb: 0.5,
      }),
    ).rejects.toThrow(/at least 2 sources; received 1 \(only\)/);
  });
});
