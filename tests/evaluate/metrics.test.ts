import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import {
  MetricInputError,
  SingleClassError,
  TargetNotReachableError,
  computeAveragePrecision,
  computeBrierScore,
  computeCalibration,
  computeConfusionMatrix,
  computeExpectedCalibrationError,
  computeMetricsAtThreshold,
  computePartialAucAboveTpr,
  computePrecisionRecallCurve,
  computeRocAuc,
  computeRocCurve,
  findThresholdForSensitivity,
  findThresholdForSpecificity,
  findYoudenThreshold,
} from "../../lib/evaluate/metrics.js";

interface ReferenceCase {
  name: string;
  labels: number[];
  scores: number[];
  rocAuc: number;
  roc: { fpr: number[]; tpr: number[]; thresholds: number[] };
  pr: { precision: number[]; recall: number[]; thresholds: number[] };
  averagePrecision: number;
  brierScore: number;
  atThreshold: Array<{
    thresholdProb: number;
    tp: number;
    fp: number;
    tn: number;
    fn: number;
    sensitivity: number;
    specificity: number;
    ppv: number | null;
    npv: number | null;
    f1: number;
    balancedAccuracy: number;
  }>;
  thresholdForSensitivity: Array<{ target: number; thresholdProb: number }>;
  thresholdForSpecificity: Array<{ target: number; thresholdProb: number | null }>;
  youden: { thresholdProb: number; j: number };
  calibration: { nBins: number; probTrue: number[]; probPred: number[]; counts: number[]; ece: number };
  partialAucAbove80Tpr: number;
}

const reference = JSON.parse(
  fs.readFileSync(path.join(import.meta.dirname, "fixtures", "sklearn_reference.json"), "utf8"),
) as { sklearnVersion: string; cases: ReferenceCase[] };

const close = (a: number, b: number, digits = 12) => expect(a).toBeCloseTo(b, digits);
const closeArrays = (a: readonly number[], b: readonly number[], digits = 12) => {
  expect(a.length).toBe(b.length);
  a.forEach((v, i) => close(v, b[i], digits));
};

describe("hand-checkable worked examples", () => {
  // Sorted by score: 0.8(M) 0.4(B) 0.35(M) 0.1(B). Pairs (M, B): (0.8>0.4) (0.8>0.1) (0.35<0.4) (0.35>0.1) → 3/4.
  const labels = [0, 0, 1, 1];
  const probs = [0.1, 0.4, 0.35, 0.8];

  it("ROC curve and AUC", () => {
    const roc = computeRocCurve(labels, probs);
    expect(roc.falsePositiveRate).toEqual([0, 0, 0.5, 0.5, 1]);
    expect(roc.truePositiveRate).toEqual([0, 0.5, 0.5, 1, 1]);
    expect(roc.thresholdsProb).toEqual([Infinity, 0.8, 0.4, 0.35, 0.1]);
    expect(computeRocAuc(labels, probs)).toBe(0.75);
  });

  it("a tie between classes counts half", () => {
    // M at 0.5 ties with B at 0.5: pairs (0.9>0.5)=1, (0.9>0.2)=1, (0.5=0.5)=0.5, (0.5>0.2)=1 → 3.5/4.
    expect(computeRocAuc([1, 1, 0, 0], [0.9, 0.5, 0.5, 0.2])).toBe(0.875);
    expect(computeRocAuc([1, 0, 1, 0], [0.3, 0.3, 0.3, 0.3])).toBe(0.5);
  });

  it("typed arrays work the same as plain arrays", () => {
    expect(computeRocAuc(new Uint8Array(labels), new Float32Array(probs))).toBeCloseTo(0.75, 12);
  });

  it("confusion matrix and metrics at a threshold (prob >= threshold is malignant)", () => {
    // At 0.35: predicted M = {0.8, 0.4, 0.35} → TP 2 (0.8, 0.35), FP 1 (0.4), TN 1 (0.1), FN 0.
    const m = computeMetricsAtThreshold(labels, probs, 0.35);
    expect(m.matrix).toEqual([
      [1, 1],
      [0, 2],
    ]);
    expect(m.sensitivity).toBe(1);
    expect(m.specificity).toBe(0.5);
    expect(m.ppv).toBeCloseTo(2 / 3, 15);
    expect(m.npv).toBe(1);
    expect(m.f1).toBeCloseTo(0.8, 15);
    expect(m.balancedAccuracy).toBe(0.75);
    expect(m.youdenJ).toBe(0.5);
    // Nothing called malignant: PPV is 0/0 and must be NaN, not 0.
    const none = computeMetricsAtThreshold(labels, probs, 0.95);
    expect(none.truePositives + none.falsePositives).toBe(0);
    expect(none.ppv).toBeNaN();
    expect(none.npv).toBe(0.5);
  });

  it("threshold for a sensitivity is the highest score reaching it", () => {
    expect(findThresholdForSensitivity(labels, probs, 0.5).thresholdProb).toBe(0.8);
    expect(findThresholdForSensitivity(labels, probs, 0.51).thresholdProb).toBe(0.35);
    expect(findThresholdForSensitivity(labels, probs, 1).thresholdProb).toBe(0.35);
    expect(findThresholdForSpecificity(labels, probs, 1).thresholdProb).toBe(0.8);
    expect(findThresholdForSpecificity(labels, probs, 0.5).thresholdProb).toBe(0.35);
    expect(findYoudenThreshold(labels, probs).thresholdProb).toBe(0.8); // J = 0.5 at 0.8 and at 0.35: highest wins
  });

  it("precision-recall curve and average precision", () => {
    const pr = computePrecisionRecallCurve(labels, probs);
    expect(pr.recall).toEqual([0, 0.5, 0.5, 1, 1]);
    expect(pr.precision.map((v) => +v.toFixed(6))).toEqual([1, 1, 0.5, 0.666667, 0.5]);
    // AP = 0.5·1 + 0·0.5 + 0.5·(2/3) + 0·0.5 = 5/6.
    expect(computeAveragePrecision(labels, probs)).toBeCloseTo(5 / 6, 15);
  });

  it("Brier score and expected calibration error by hand", () => {
    expect(computeBrierScore([0, 1], [0.2, 0.6])).toBeCloseTo(0.1, 15);
    // 0.1 → bin (0, 0.1]: gap 0.1; 0.8 → bin (0.7, 0.8]: gap 0.2; each weight 1/2.
    expect(computeExpectedCalibrationError([0, 1], [0.1, 0.8])).toBeCloseTo(0.15, 15);
    // Bin (0.6, 0.7]: four at 0.65, three malignant → |0.75 − 0.65| = 0.1; perfect elsewhere none.
    const cal = computeCalibration([1, 1, 1, 0], [0.65, 0.65, 0.65, 0.65], { binCount: 10 });
    expect(cal.bins[6].count).toBe(4);
    expect(cal.bins[6].observedFraction).toBe(0.75);
    expect(cal.expectedCalibrationError).toBeCloseTo(0.1, 12);
    expect(cal.bins.filter((b) => b.count === 0).every((b) => Number.isNaN(b.meanPredictedProb))).toBe(true);
  });

  it("partial AUC above 80% TPR: perfect 0.2, random 0.02, inverted 0", () => {
    const y = [0, 0, 0, 0, 0, 1, 1, 1, 1, 1];
    const p = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95];
    close(computePartialAucAboveTpr(y, p), 0.2);
    close(
      computePartialAucAboveTpr(
        y,
        p.map((v) => 1 - v),
      ),
      0,
    );
    close(
      computePartialAucAboveTpr(
        y,
        p.map(() => 0.5),
      ),
      0.02,
    );
    close(computePartialAucAboveTpr(y, p, 0), computeRocAuc(y, p));
  });
});

describe("degenerate input gives a named error", () => {
  it("one class only", () => {
    expect(() => computeRocAuc([1, 1, 1], [0.2, 0.5, 0.9])).toThrow(SingleClassError);
    expect(() => computeRocAuc([0, 0], [0.2, 0.5])).toThrow(/all 2 labels are benign \(0\)/);
    expect(() => computeMetricsAtThreshold([0, 0], [0.2, 0.5], 0.5)).toThrow(SingleClassError);
    expect(() => computeAveragePrecision([0, 0], [0.2, 0.5])).toThrow(SingleClassError);
  });
  it("NaN scores, bad labels, length mismatch, empty", () => {
    expect(() => computeRocAuc([0, 1, 1], [0.2, NaN, 0.9])).toThrow(/probs\[1\] is NaN/);
    expect(() => computeRocAuc([0, 2, 1], [0.2, 0.3, 0.9])).toThrow(/labels\[1\] is 2; expected 0 \(benign\) or 1/);
    expect(() => computeRocAuc([0, 1, 1], [0.2, 0.9])).toThrow(/labels has 3 entries but probs has 2/);
    expect(() => computeRocAuc([], [])).toThrow(MetricInputError);
    expect(() => computeBrierScore([0, 1], [0.2, 1.5])).toThrow(
      /probs\[1\] is 1.5; expected a probability between 0 and 1/,
    );
    expect(() => computeConfusionMatrix([0, 1], [0.2, 0.5], NaN)).toThrow(/thresholdProb is NaN/);
    expect(() => findThresholdForSensitivity([0, 1], [0.2, 0.5], 1.2)).toThrow(/targetSensitivity is 1.2/);
  });
  it("a specificity no score reaches", () => {
    expect(() => findThresholdForSpecificity([0, 1, 0], [0.4, 0.4, 0.4], 0.5)).toThrow(TargetNotReachableError);
  });
});

describe(`agrees with scikit-learn ${reference.sklearnVersion} (fixtures/sklearn_reference.json)`, () => {
  it("has the reference cases", () => expect(reference.cases.length).toBeGreaterThanOrEqual(6));

  for (const c of reference.cases) {
    describe(c.name, () => {
      it("roc_curve (drop_intermediate=False) and roc_auc_score", () => {
        const roc = computeRocCurve(c.labels, c.scores);
        expect(roc.thresholdsProb[0]).toBe(Infinity);
        expect(roc.falsePositiveRate[0]).toBe(0);
        expect(roc.truePositiveRate[0]).toBe(0);
        closeArrays(roc.falsePositiveRate.slice(1), c.roc.fpr);
        closeArrays(roc.truePositiveRate.slice(1), c.roc.tpr);
        closeArrays(roc.thresholdsProb.slice(1), c.roc.thresholds, 15);
        close(computeRocAuc(c.labels, c.scores), c.rocAuc);
        // Float32 probabilities (a model's output) give the same AUC to float precision.
        expect(computeRocAuc(new Float32Array(c.labels), new Float32Array(c.scores))).toBeCloseTo(c.rocAuc, 2);
      });

      it("precision_recall_curve and average_precision_score", () => {
        const pr = computePrecisionRecallCurve(c.labels, c.scores);
        closeArrays([...pr.precision].reverse(), c.pr.precision);
        closeArrays([...pr.recall].reverse(), c.pr.recall);
        closeArrays(pr.thresholdsProb.slice(1).reverse(), c.pr.thresholds, 15);
        close(computeAveragePrecision(c.labels, c.scores), c.averagePrecision);
      });

      it("confusion_matrix, recall, precision, f1, balanced accuracy at 0.3 / 0.5 / 0.7", () => {
        for (const r of c.atThreshold) {
          const m = computeMetricsAtThreshold(c.labels, c.scores, r.thresholdProb);
          expect(m.matrix).toEqual([
            [r.tn, r.fp],
            [r.fn, r.tp],
          ]);
          close(m.sensitivity, r.sensitivity);
          close(m.specificity, r.specificity);
          if (r.ppv === null) expect(m.ppv).toBeNaN();
          else close(m.ppv, r.ppv);
          if (r.npv === null) expect(m.npv).toBeNaN();
          else close(m.npv, r.npv);
          close(m.f1, r.f1);
          close(m.balancedAccuracy, r.balancedAccuracy);
        }
      });

      it("thresholds for sensitivity / specificity and Youden's J from roc_curve", () => {
        for (const t of c.thresholdForSensitivity) {
          const m = findThresholdForSensitivity(c.labels, c.scores, t.target);
          expect(m.thresholdProb).toBe(t.thresholdProb);
          expect(m.sensitivity).toBeGreaterThanOrEqual(t.target - 1e-12);
        }
        for (const t of c.thresholdForSpecificity) {
          if (t.thresholdProb === null) {
            expect(() => findThresholdForSpecificity(c.labels, c.scores, t.target)).toThrow(TargetNotReachableError);
          } else {
            const m = findThresholdForSpecificity(c.labels, c.scores, t.target);
            expect(m.thresholdProb).toBe(t.thresholdProb);
            expect(m.specificity).toBeGreaterThanOrEqual(t.target - 1e-12);
          }
        }
        const y = findYoudenThreshold(c.labels, c.scores);
        expect(y.thresholdProb).toBe(c.youden.thresholdProb);
        close(y.youdenJ, c.youden.j);
      });

      it("brier_score_loss, calibration_curve bins and ECE", () => {
        close(computeBrierScore(c.labels, c.scores), c.brierScore);
        const cal = computeCalibration(c.labels, c.scores, { binCount: c.calibration.nBins });
        const nonEmpty = cal.bins.filter((b) => b.count > 0);
        expect(nonEmpty.map((b) => b.count)).toEqual(c.calibration.counts);
        closeArrays(
          nonEmpty.map((b) => b.observedFraction),
          c.calibration.probTrue,
        );
        closeArrays(
          nonEmpty.map((b) => b.meanPredictedProb),
          c.calibration.probPred,
        );
        close(cal.expectedCalibrationError, c.calibration.ece);
      });

      it("partial AUC above 80% TPR (ISIC 2024 scoring via roc_auc_score(max_fpr=0.2))", () => {
        close(computePartialAucAboveTpr(c.labels, c.scores, 0.8), c.partialAucAbove80Tpr);
      });
    });
  }
});
