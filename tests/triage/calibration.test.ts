import { describe, expect, it } from "vitest";
import {
  applyCalibration,
  CalibrationError,
  computeNegativeLogLikelihood,
  fitCalibration,
  invertCalibration,
  logitOfProbability,
} from "../../lib/triage/calibration.js";

const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));
const logit = (p: number) => Math.log(p / (1 - p));

// Two score groups: 10 images at p = 0.9 (7 malignant), 10 at p = 0.1 (2 malignant).
const groupLabels = [1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0];
const groupProbs = [...Array<number>(10).fill(0.9), ...Array<number>(10).fill(0.1)];
// Platt's targets with N₊ = 9, N₋ = 11.
const tPos = 10 / 11;
const tNeg = 1 / 13;

describe("fitCalibration", () => {
  it("temperature scaling reaches the closed-form optimum when every logit is ±c", () => {
    // With z = ±c the gradient Σ(σ(βz) − t)z vanishes where σ(βc) is the mean target "agreeing
    // with the sign": 7 malignant + 3 benign above, 2 malignant + 8 benign below.
    const agreeing = (7 * tPos + 3 * tNeg + 2 * (1 - tPos) + 8 * (1 - tNeg)) / 20;
    const fit = fitCalibration(groupLabels, groupProbs, { method: "temperature" });
    expect(fit.method).toBe("temperature");
    expect(fit.intercept).toBe(0);
    expect(fit.slope).toBeCloseTo(logit(agreeing) / logit(0.9), 10);
    expect(fit.temperature).toBeCloseTo(logit(0.9) / logit(agreeing), 10);
    expect(applyCalibration(fit, 0.9)).toBeCloseTo(agreeing, 10);
    expect(applyCalibration(fit, 0.1)).toBeCloseTo(1 - agreeing, 10);
  });

  it("Platt scaling reaches the closed-form optimum with two distinct logits", () => {
    // Two parameters, two logit values: the fit reproduces each group's mean target exactly.
    // p = 0.8: 6 malignant, 4 benign; p = 0.3: 1 malignant, 9 benign → N₊ = 7, N₋ = 13.
    const labels = [1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    const probs = [...Array<number>(10).fill(0.8), ...Array<number>(10).fill(0.3)];
    const hi = 8 / 9;
    const lo = 1 / 15;
    const g1 = (6 * hi + 4 * lo) / 10;
    const g2 = (1 * hi + 9 * lo) / 10;
    const a = (logit(g1) - logit(g2)) / (logit(0.8) - logit(0.3));
    const b = logit(g1) - a * logit(0.8);
    const fit = fitCalibration(labels, probs, { method: "platt" });
    expect(fit.slope).toBeCloseTo(a, 8);
    expect(fit.intercept).toBeCloseTo(b, 8);
    expect(applyCalibration(fit, 0.8)).toBeCloseTo(g1, 8);
    expect(applyCalibration(fit, 0.3)).toBeCloseTo(g2, 8);
  });

  it("reports ECE, Brier and NLL before and after, computed by hand", () => {
    const fit = fitCalibration(groupLabels, groupProbs, { method: "temperature", binCount: 10 });
    const q = applyCalibration(fit, 0.9);
    expect(fit.binCount).toBe(10);
    // Before: bin (0.8, 0.9] holds 0.9 with 7/10 malignant; bin [0, 0.1] holds 0.1 with 2/10.
    expect(fit.before.ece).toBeCloseTo(0.5 * 0.2 + 0.5 * 0.1, 12);
    expect(fit.before.brier).toBeCloseTo((7 * 0.01 + 3 * 0.81 + 2 * 0.81 + 8 * 0.01) / 20, 12);
    expect(fit.before.nll).toBeCloseTo(
      -(7 * Math.log(0.9) + 3 * Math.log(0.1) + 2 * Math.log(0.1) + 8 * Math.log(0.9)) / 20,
      10,
    );
    // After: calibrated q above and 1 − q below.
    expect(fit.after.ece).toBeCloseTo(0.5 * Math.abs(0.7 - q) + 0.5 * Math.abs(0.2 - (1 - q)), 12);
    expect(fit.after.brier).toBeCloseTo((7 * (1 - q) ** 2 + 3 * q ** 2 + 2 * q ** 2 + 8 * (1 - q) ** 2) / 20, 12);
    expect(fit.after.nll).toBeCloseTo(
      -(7 * Math.log(q) + 3 * Math.log(1 - q) + 2 * Math.log(1 - q) + 8 * Math.log(q)) / 20,
      10,
    );
    expect(fit.after.ece).toBeLessThan(fit.before.ece);
    expect(fit.images).toBe(20);
    expect(fit.malignant).toBe(9);
    expect(fit.benign).toBe(11);
  });

  it('"auto" fits both and keeps the one with the lower validation NLL', () => {
    const fit = fitCalibration(groupLabels, groupProbs);
    expect(fit.candidates.map((c) => c.method)).toEqual(["temperature", "platt"]);
    const best = fit.candidates.reduce((a, c) => (c.validationNll < a.validationNll ? c : a));
    expect(fit.method).toBe(best.method);
    expect(fit.selection).toBe("lower validation NLL");
    expect(fit.after.nll).toBeCloseTo(best.validationNll, 12);
    const temperature = fitCalibration(groupLabels, groupProbs, { method: "temperature" });
    expect(temperature.candidates).toHaveLength(1);
    expect(temperature.selection).toBe("chosen by caller");
  });

  it('"auto" never picks a fit that would reverse the ranking', () => {
    // Every score is above 0.5 but most images are benign: temperature scaling can only pull
    // them below 0.5 with a negative slope (reversing the order); Platt's intercept shifts them.
    const labels = [1, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0];
    const probs = [0.95, 0.9, 0.9, 0.85, 0.8, 0.8, 0.7, 0.7, 0.6, 0.6, 0.55, 0.5];
    const fit = fitCalibration(labels, probs);
    const temperature = fit.candidates.find((c) => c.method === "temperature")!;
    expect(temperature.slope).toBeLessThan(0);
    expect(fit.method).toBe("platt");
    expect(fit.slope).toBeGreaterThan(0);
    expect(() => fitCalibration(labels, probs, { method: "temperature" })).toThrow(/try "platt"/);
  });

  it("is the optimum: nudging the parameters raises the fitted cross-entropy", () => {
    const labels = [1, 0, 1, 1, 0, 0, 1, 0, 0, 0, 1, 0];
    const probs = [0.9, 0.4, 0.7, 0.55, 0.3, 0.65, 0.8, 0.1, 0.2, 0.45, 0.35, 0.05];
    const fit = fitCalibration(labels, probs, { method: "platt" });
    const targets = labels.map((y) => (y ? 6 / 7 : 1 / 9));
    const objective = (a: number, b: number) =>
      targets.reduce((s, t, i) => {
        const q = sigmoid(a * logit(probs[i]) + b);
        return s - (t * Math.log(q) + (1 - t) * Math.log(1 - q));
      }, 0);
    const at = objective(fit.slope, fit.intercept);
    for (const [da, db] of [
      [1e-3, 0],
      [-1e-3, 0],
      [0, 1e-3],
      [0, -1e-3],
      [1e-3, 1e-3],
    ]) {
      expect(objective(fit.slope + da, fit.intercept + db)).toBeGreaterThan(at);
    }
  });

  it("names the problem for one class, mismatched lengths, an unknown method and anti-ranked scores", () => {
    expect(() => fitCalibration([1, 1], [0.2, 0.9])).toThrow(/2 malignant and 0 benign/);
    expect(() => fitCalibration([1, 0], [0.2])).toThrow(CalibrationError);
    expect(() => fitCalibration([1, 0], [0.2, 1.5])).toThrow(/probabilities\[1\]: received 1.5/);
    expect(() => fitCalibration([1, 0], [0.9, 0.1], { method: "isotonic" as never })).toThrow(
      /received "isotonic", expected "auto", "temperature" or "platt"/,
    );
    expect(() => fitCalibration([1, 1, 0, 0], [0.1, 0.2, 0.8, 0.9], { method: "temperature" })).toThrow(
      /scores rank benign images above malignant ones/,
    );
  });
});

describe("calibration helpers", () => {
  it("computeNegativeLogLikelihood matches the hand value", () => {
    expect(computeNegativeLogLikelihood([1, 0], [0.8, 0.2])).toBeCloseTo(-Math.log(0.8), 12);
    // Clipping keeps a confident miss finite: −ln(1e-7).
    expect(computeNegativeLogLikelihood([1], [0])).toBeCloseTo(-Math.log(1e-7), 6);
  });

  it("applyCalibration and invertCalibration are inverses and keep the order", () => {
    const c = { slope: 0.5, intercept: 0.3 };
    expect(applyCalibration(c, 0.9)).toBeCloseTo(sigmoid(0.5 * logit(0.9) + 0.3), 12);
    for (const p of [0.01, 0.2, 0.5, 0.77, 0.99])
      expect(invertCalibration(c, applyCalibration(c, p))).toBeCloseTo(p, 10);
    expect(applyCalibration(c, 0.2)).toBeLessThan(applyCalibration(c, 0.3));
    expect(logitOfProbability(1)).toBeCloseTo(logit(1 - 1e-7), 6);
    expect(() => applyCalibration(c, Number.NaN)).toThrow(/received NaN/);
    expect(() => invertCalibration({ slope: -1, intercept: 0 }, 0.5)).toThrow(/slope: received -1/);
  });
});
