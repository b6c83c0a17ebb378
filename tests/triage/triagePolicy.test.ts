import { describe, expect, it } from "vitest";
import { applyCalibration } from "../../lib/triage/calibration.js";
import {
  decideTriage,
  ESCALATION_SENTENCE,
  fitTriagePolicy,
  formatTriagePolicy,
  requireTriagePolicy,
  TRIAGE_SENTENCES,
  TriagePolicyError,
  type TriagePolicy,
} from "../../lib/triage/triagePolicy.js";

// Five malignant (0.95, 0.8, 0.6, 0.4, 0.1) and five benign (0.7, 0.5, 0.3, 0.2, 0.05).
const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));
const labels = [1, 1, 0, 1, 0, 1, 0, 0, 1, 0];
const probs = [0.95, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.05];
/** The policy of these ten images: 80% sensitivity, NPV 0.95, reassure allowed from one image below; `overrides` change one setting. */
const fitTenImages = (overrides: Partial<Parameters<typeof fitTriagePolicy>[0]> = {}) =>
  fitTriagePolicy({
    labels,
    probabilities: probs,
    targetSensitivity: 0.8,
    targetNpv: 0.95,
    minReassureImages: 1,
    ...overrides,
  });

describe("fitTriagePolicy", () => {
  it("places urgent at the highest threshold reaching the sensitivity target, with its counts", () => {
    const policy = fitTriagePolicy({ labels, probabilities: probs, targetSensitivity: 0.8, targetNpv: 0.99 });
    // 4 of 5 malignant needed → the 4th highest malignant raw score, 0.4 (calibration keeps the order).
    expect(policy.urgent.rawThresholdProb).toBeCloseTo(0.4, 9);
    expect(policy.urgent.thresholdProb).toBeCloseTo(applyCalibration(policy.calibration, 0.4), 12);
    // At ≥ 0.4: TP 0.95 0.8 0.6 0.4, FP 0.7 0.5, TN 0.3 0.2 0.05, FN 0.1.
    expect(policy.urgent.counts).toEqual({ truePositives: 4, falsePositives: 2, trueNegatives: 3, falseNegatives: 1 });
    expect(policy.urgent.validationSensitivity).toBe(0.8);
    expect(policy.urgent.validationSpecificity).toBe(0.6);
    expect(policy.urgent.validationNpv).toBe(0.75);
    expect(policy.urgent.validationPpv).toBeCloseTo(4 / 6, 12);
  });

  it("places reassure at the highest threshold whose NPV below reaches the target at the validation prevalence", () => {
    // Below 0.4: NPV 3/4; below 0.3: 2/3; below 0.2: 1/2; below 0.1: 1/1 → 0.1 is the highest with NPV ≥ 0.95.
    const policy = fitTenImages();
    expect(policy.prevalence).toBe(0.5);
    expect(policy.prevalenceSource).toBe("validation");
    expect(policy.reassure.enabled).toBe(true);
    if (!policy.reassure.enabled) return;
    expect(policy.reassure.rawThresholdProb).toBeCloseTo(0.1, 9);
    expect(policy.reassure.counts).toEqual({
      truePositives: 5,
      falsePositives: 4,
      trueNegatives: 1,
      falseNegatives: 0,
    });
    expect(policy.reassure.validationNpv).toBe(1);
    expect(policy.reassure.validationSpecificity).toBe(0.2);
    expect(policy.reassure.npvAtPrevalence).toBe(1);
    // A looser target reaches the urgent threshold itself (routine band empty): NPV below 0.4 is 0.75.
    const loose = fitTenImages({ targetNpv: 0.7 });
    expect(loose.reassure.enabled && loose.reassure.thresholdProb).toBe(loose.urgent.thresholdProb);
  });

  it("judges the NPV at a given prevalence by Bayes' rule", () => {
    // At prevalence 0.1, below 0.4: spec 0.6, miss 0.2 → 0.54 / (0.54 + 0.02) = 0.964 ≥ 0.95.
    const policy = fitTenImages({ prevalence: 0.1 });
    expect(policy.prevalenceSource).toBe("given");
    expect(policy.reassure.enabled).toBe(true);
    if (!policy.reassure.enabled) return;
    expect(policy.reassure.rawThresholdProb).toBeCloseTo(0.4, 9);
    expect(policy.reassure.npvAtPrevalence).toBeCloseTo(0.54 / 0.56, 12);
    expect(policy.reassure.validationNpv).toBe(0.75);
  });

  it("disables reassure with a reason when no threshold reaches the NPV target", () => {
    // Malignant 0.9, 0.8, 0.1; benign 0.6, 0.4. Urgent (2 of 3) at 0.8; below 0.8 NPV 2/3,
    // below 0.6 1/2, below 0.4 0 (only the malignant 0.1).
    const policy = fitTriagePolicy({
      labels: ["malignant", "malignant", "benign", "benign", "malignant"],
      probabilities: [0.9, 0.8, 0.6, 0.4, 0.1],
      targetSensitivity: 0.6,
      groupIds: ["p1", "p1", "p2", "p3", "p4"],
      minReassureImages: 1,
    });
    expect(policy.urgent.rawThresholdProb).toBeCloseTo(0.8, 9);
    expect(policy.reassure.enabled).toBe(false);
    if (policy.reassure.enabled) return;
    expect(policy.reassure.bestNpvAtPrevalence).toBeCloseTo(2 / 3, 12);
    expect(policy.reassure.reason).toMatch(
      /at least 1 validation images below it reached NPV ≥ 0.99 at prevalence 0.6000 \(the best was 0.6667/,
    );
    expect(policy.reassure.reason).toMatch(/disabled/);
    expect(policy.validation).toEqual({ images: 5, malignant: 3, benign: 2, groups: 4 });
    expect(formatTriagePolicy(policy)).toMatch(/reassure: disabled — no threshold/);
  });

  it("agrees with a brute-force search over every threshold on 400 seeded scores", () => {
    let seed = 7;
    const random = () => (seed = (seed * 16807) % 2147483647) / 2147483647;
    const y: number[] = [];
    const p: number[] = [];
    for (let i = 0; i < 400; i++) {
      y.push(random() < 0.2 ? 1 : 0);
      p.push(sigmoid(2.5 * (y[i] - 0.5) + 3 * (random() - 0.5)));
    }
    const malignant = y.filter((v) => v === 1).length;
    const enabled: boolean[] = [];
    for (const targetNpv of [0.97, 0.995, 0.99999]) {
      const policy = fitTriagePolicy({ labels: y, probabilities: p, targetSensitivity: 0.95, targetNpv });
      const q = p.map((pi) => applyCalibration(policy.calibration, pi));
      const sensitivityAt = (t: number) => q.filter((qi, i) => y[i] === 1 && qi >= t).length / malignant;
      // At least ⌈1/(1 − target)⌉ images below (34, 200, 100000): the default minimum.
      const minBelow = Math.ceil(1 / (1 - targetNpv) - 1e-9);
      const npvBelow = (t: number) => {
        const below = q.map((qi, i) => (qi < t ? y[i] : -1)).filter((v) => v >= 0);
        return below.length >= minBelow ? below.filter((v) => v === 0).length / below.length : Number.NaN;
      };
      const candidates = [...new Set(q)].sort((a, b) => b - a);
      const urgent = candidates.find((t) => sensitivityAt(t) >= 0.95)!;
      expect(policy.urgent.thresholdProb).toBe(urgent);
      expect(policy.urgent.validationSensitivity).toBe(sensitivityAt(urgent));
      const reassure = candidates.find((t) => t <= urgent && npvBelow(t) >= targetNpv);
      expect(policy.reassure.enabled).toBe(reassure !== undefined);
      enabled.push(policy.reassure.enabled);
      if (policy.reassure.enabled) {
        expect(policy.reassure.thresholdProb).toBe(reassure);
        expect(policy.reassure.validationNpv).toBe(npvBelow(reassure!));
      }
    }
    // Both branches ran: the strictest target needs more images than there are, the others do not.
    expect(enabled).toEqual([true, true, false]);
  });

  it("needs enough images below the reassure threshold to show one miss at the target", () => {
    // Below 0.1 only one benign image: NPV 1, but 0.95 needs ⌈1/0.05⌉ = 20 images below by default.
    const strict = fitTriagePolicy({ labels, probabilities: probs, targetSensitivity: 0.8, targetNpv: 0.95 });
    expect(strict.minReassureImages).toBe(20);
    expect(strict.reassure.enabled).toBe(false);
    if (strict.reassure.enabled) return;
    expect(strict.reassure.reason).toMatch(
      /only 4 of 10 validation images lie below the urgent threshold \(\S+\), fewer than the 20 needed/,
    );
    expect(strict.reassure.bestNpvAtPrevalence).toBeNull();
    // With 2 required, 0.1 (one image below) no longer counts, and no higher threshold reaches 0.95.
    const two = fitTriagePolicy({
      labels,
      probabilities: probs,
      targetSensitivity: 0.8,
      targetNpv: 0.95,
      minReassureImages: 2,
    });
    expect(two.reassure.enabled).toBe(false);
    expect(fitTriagePolicy({ labels, probabilities: probs, targetNpv: 0.99 }).minReassureImages).toBe(100);
    expect(() => fitTriagePolicy({ labels, probabilities: probs, minReassureImages: 0 })).toThrow(
      /minReassureImages: received 0/,
    );
  });

  it("is plain JSON: it survives a round trip unchanged", () => {
    const policy = fitTenImages();
    expect(JSON.parse(JSON.stringify(policy))).toEqual(policy);
    expect(policy.calibration.binCount).toBe(10);
    expect(policy.calibration.after.ece).toBeGreaterThanOrEqual(0);
  });

  it("names the problem for mismatched lengths, one class, bad targets and prevalence", () => {
    expect(() => fitTriagePolicy({ labels: [1, 0], probabilities: [0.5] })).toThrow(
      /labels \(2\) and probabilities \(1\)/,
    );
    expect(() => fitTriagePolicy({ labels: [0, 0], probabilities: [0.5, 0.2] })).toThrow(/0 malignant and 2 benign/);
    expect(() => fitTriagePolicy({ labels, probabilities: probs, targetNpv: 1.2 })).toThrow(/targetNpv: received 1.2/);
    expect(() => fitTriagePolicy({ labels, probabilities: probs, prevalence: 0 })).toThrow(TriagePolicyError);
    expect(() => fitTriagePolicy({ labels: [2, 0], probabilities: [0.5, 0.2] })).toThrow(/labels\[0\]: received 2/);
    expect(() => fitTriagePolicy({ labels, probabilities: probs, groupIds: ["a"] })).toThrow(/groupIds \(1\)/);
  });
});

/** A hand-written policy with identity calibration: calibrated = raw (inside the clip). */
function makePolicy(overrides: Partial<TriagePolicy> = {}): TriagePolicy {
  const point = (thresholdProb: number, sensitivity: number, specificity: number) => ({
    thresholdProb,
    rawThresholdProb: thresholdProb,
    validationSensitivity: sensitivity,
    validationSpecificity: specificity,
    validationNpv: 0.99,
    validationPpv: 0.3,
    counts: { truePositives: 19, falsePositives: 40, trueNegatives: 60, falseNegatives: 1 },
  });
  return {
    formatVersion: 1,
    targetSensitivity: 0.95,
    targetNpv: 0.99,
    minReassureImages: 100,
    prevalence: 0.16,
    prevalenceSource: "validation",
    validation: { images: 120, malignant: 20, benign: 100, groups: null },
    calibration: {
      method: "temperature",
      slope: 1,
      intercept: 0,
      temperature: 1,
      selection: "chosen by caller",
      candidates: [],
      targets: "",
      logitClipProb: 1e-7,
      binCount: 10,
      images: 120,
      malignant: 20,
      benign: 100,
      before: { ece: 0, brier: 0, nll: 0 },
      after: { ece: 0, brier: 0, nll: 0 },
    },
    urgent: { ...point(0.5, 0.95, 0.6), rule: "" },
    reassure: { enabled: true, ...point(0.1, 1, 0.3), npvAtPrevalence: 1, rule: "" },
    uncertainty: { zValue: 1.96, maxIntervalWidthProb: 0.3, rule: "" },
    ...overrides,
  };
}

describe("decideTriage", () => {
  const policy = makePolicy();

  it("gives each level from the calibrated probability, with no interval without views", () => {
    const urgent = decideTriage(policy, { probability: 0.6 });
    expect(urgent.level).toBe("urgent");
    expect(urgent.interval).toBeNull();
    expect(urgent.escalated).toBe(false);
    expect(urgent.probability).toBeCloseTo(0.6, 12);
    expect(urgent.rawProbability).toBe(0.6);
    expect(urgent.operatingPoint).toEqual({
      level: "urgent",
      thresholdProb: 0.5,
      validationSensitivity: 0.95,
      validationSpecificity: 0.6,
      validationNpv: 0.99,
    });
    expect(decideTriage(policy, { probability: 0.5 }).level).toBe("urgent");
    expect(decideTriage(policy, { probability: 0.3 }).level).toBe("routine");
    expect(decideTriage(policy, { probability: 0.3 }).operatingPoint.level).toBe("urgent");
    const reassure = decideTriage(policy, { probability: 0.05 });
    expect(reassure.level).toBe("reassure");
    expect(reassure.operatingPoint.thresholdProb).toBe(0.1);
    expect(reassure.operatingPoint.validationSpecificity).toBe(0.3);
  });

  it("calibrates before comparing with the thresholds", () => {
    // slope 2: raw 0.4 → σ(2·logit 0.4) = 0.16/0.52 ≈ 0.3077 (routine); raw 0.6 → 0.6923 (urgent).
    const sharp = makePolicy({ calibration: { ...policy.calibration, slope: 2 } });
    const d = decideTriage(sharp, { probability: 0.4 });
    expect(d.probability).toBeCloseTo(0.16 / 0.52, 12);
    expect(d.rawProbability).toBe(0.4);
    expect(d.level).toBe("routine");
  });

  it("builds the interval from the views' sample sd and keeps a narrow one at its level", () => {
    // views 0.04 0.05 0.06 0.05: sd = √(0.0002/3); interval 0.05 ± 1.96 sd = [0.034, 0.066].
    const sd = Math.sqrt(0.0002 / 3);
    const d = decideTriage(policy, { probability: 0.05, views: [0.04, 0.05, 0.06, 0.05] });
    expect(d.interval![0]).toBeCloseTo(0.05 - 1.96 * sd, 9);
    expect(d.interval![1]).toBeCloseTo(0.05 + 1.96 * sd, 9);
    expect(d.level).toBe("reassure");
    expect(d.escalated).toBe(false);
    expect(d.escalationReason).toBeNull();
    // The same interval from the spread alone.
    const fromSpread = decideTriage(policy, { probability: 0.05, spread: sd });
    expect(fromSpread.interval![1]).toBeCloseTo(d.interval![1], 12);
  });

  it("escalates reassure → routine when the interval reaches the routine threshold, and says so", () => {
    // views 0.02 0.04 0.06 0.08: sd = √(0.002/3) ≈ 0.0258; upper end 0.05 + 0.0506 = 0.1006 ≥ 0.1.
    const d = decideTriage(policy, { probability: 0.05, views: [0.02, 0.04, 0.06, 0.08] });
    expect(d.interval![0]).toBe(0.0 + applyCalibration(policy.calibration, 0));
    expect(d.interval![1]).toBeCloseTo(0.05 + 1.96 * Math.sqrt(0.002 / 3), 9);
    expect(d.baseLevel).toBe("reassure");
    expect(d.level).toBe("routine");
    expect(d.escalated).toBe(true);
    expect(d.escalationReason).toMatch(/reaches the routine threshold 0.100.*from reassure to routine/);
    expect(d.sentence).toContain(ESCALATION_SENTENCE);
    expect(d.sentence.startsWith(TRIAGE_SENTENCES.routine)).toBe(true);
    expect(d.operatingPoint.level).toBe("urgent");
  });

  it("escalates routine → urgent on a crossing interval or a too-wide one; urgent stays urgent", () => {
    const crossing = decideTriage(policy, { probability: 0.4, views: [0.3, 0.5, 0.4, 0.4] });
    expect(crossing.level).toBe("urgent");
    expect(crossing.baseLevel).toBe("routine");
    // Urgent at 0.9: 0.4 ± 1.96·0.1 = [0.204, 0.596] stays below it but is 0.392 wide > 0.3.
    const high = makePolicy({ urgent: { ...policy.urgent, thresholdProb: 0.9, rawThresholdProb: 0.9 } });
    const wide = decideTriage(high, { probability: 0.4, spread: 0.1 });
    expect(wide.interval![1] - wide.interval![0]).toBeCloseTo(0.392, 9);
    expect(wide.level).toBe("urgent");
    expect(wide.escalationReason).toMatch(/0.392 wide \(more than 0.3\)/);
    const narrow = decideTriage(high, { probability: 0.4, spread: 0.05 });
    expect(narrow.level).toBe("routine");
    const top = decideTriage(policy, { probability: 0.8, views: [0.5, 0.9, 0.99, 0.8] });
    expect(top.level).toBe("urgent");
    expect(top.escalated).toBe(false);
  });

  it("never reassures when the policy disabled that level", () => {
    const disabled = makePolicy({
      reassure: { enabled: false, reason: "no threshold reached NPV ≥ 0.99", bestNpvAtPrevalence: 0.97, rule: "" },
    });
    expect(decideTriage(disabled, { probability: 0.01 }).level).toBe("routine");
    expect(decideTriage(disabled, { probability: 0.01, views: [0.4, 0.01] }).level).toBe("urgent");
  });

  it("words every sentence as advice, never as a diagnosis", () => {
    const forbidden = [
      /you have/i,
      /melanoma/i,
      /cancer/i,
      /diagnosed/i,
      /malignan/i,
      /benign/i,
      /\bsafe\b/i,
      /no need/i,
      /nothing to worry/i,
      /detected/i,
    ];
    const decisions = [
      decideTriage(policy, { probability: 0.9 }),
      decideTriage(policy, { probability: 0.3 }),
      decideTriage(policy, { probability: 0.02 }),
      decideTriage(policy, { probability: 0.05, views: [0.02, 0.04, 0.06, 0.08] }),
      decideTriage(policy, { probability: 0.4, views: [0.3, 0.5, 0.4, 0.4] }),
    ];
    expect(new Set(decisions.map((d) => d.level))).toEqual(new Set(["urgent", "routine", "reassure"]));
    for (const d of decisions) {
      expect(d.sentence).toContain("This is not a diagnosis");
      for (const pattern of forbidden) expect(d.sentence).not.toMatch(pattern);
    }
    expect(TRIAGE_SENTENCES.urgent).toMatch(/prompt visit to a doctor \(within 2 weeks\)/);
  });

  it("names bad input", () => {
    expect(() => decideTriage(policy, { probability: 1.2 })).toThrow(/probability: received 1.2/);
    expect(() => decideTriage(policy, { probability: 0.2, views: [0.2] })).toThrow(
      /received 1 view probabilities, expected at least 2/,
    );
    expect(() => decideTriage(policy, { probability: 0.2, views: [0.2, Number.NaN] })).toThrow(
      /views\[1\]: received NaN/,
    );
    expect(() => decideTriage(policy, { probability: 0.2, spread: -1 })).toThrow(/spread: received -1/);
    expect(() =>
      decideTriage(makePolicy({ calibration: { ...policy.calibration, slope: 0 } }), { probability: 0.2 }),
    ).toThrow(TriagePolicyError);
  });
});

describe("requireTriagePolicy", () => {
  it("returns the metadata's policy and names a folder without one", () => {
    const policy = makePolicy();
    const metadata = { policy } as unknown as Parameters<typeof requireTriagePolicy>[0];
    expect(requireTriagePolicy(metadata, "models/demo")).toBe(policy);
    expect(() => requireTriagePolicy({} as typeof metadata, "models/old")).toThrow(
      /models\/old: metadata.json has no triage policy/,
    );
  });
});
