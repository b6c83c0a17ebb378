import type { LesionLabel } from "../data/types.js";
import type { FitCalibrationOptions } from "./calibration.js";
import { applyCalibration, CalibrationError, fitCalibration, invertCalibration } from "./calibration.js";
import type {
  TriageModelMetadata,
  OperatingPointCounts,
  ReassureLevelMetadata,
  TriageOperatingPointMetadata,
  TriagePolicyMetadata,
} from "../export/triageModel.js";
import { MelanomaLabError } from "../util/errors.js";
import { findThresholdForSensitivity } from "../evaluate/metrics.js";

/** Thrown for policy input that does not fit together (lengths, targets, prevalence, views, policy fields). */
export class TriagePolicyError extends MelanomaLabError {}

/** The calibrated three-level triage policy (plain data; stored in metadata.json as `policy`). */
export type TriagePolicy = TriagePolicyMetadata;

/** The three triage levels, most urgent first. */
export type TriageLevel = "urgent" | "routine" | "reassure";

/** Default interval multiplier: mean ± 1.96 sd of the TTA view probabilities (a normal 95% range). */
export const DEFAULT_INTERVAL_Z = 1.96;

/** Default width (calibrated probability) beyond which an interval counts as wide and escalates. */
export const DEFAULT_MAX_INTERVAL_WIDTH_PROB = 0.3;

/** What {@link fitTriagePolicy} takes: validation labels and raw probabilities, and the targets. */
export interface FitTriagePolicyInput {
  /** Validation labels: 0/1 or "benign"/"malignant". */
  labels: ArrayLike<number> | readonly LesionLabel[];
  /** Raw (uncalibrated) validation P(malignant) from the model being exported, one per label. */
  probabilities: ArrayLike<number>;
  /** Validation sensitivity the urgent threshold must keep (default 0.95). */
  targetSensitivity?: number;
  /** NPV of "below the reassure threshold" required at `prevalence` (default 0.99). */
  targetNpv?: number;
  /** Prevalence of malignant to judge the NPV at (default: the validation share of malignant). */
  prevalence?: number;
  /** Patient/lesion id per image, only to report how many independent groups the policy rests on. */
  groupIds?: ArrayLike<string | number>;
  /** Calibration method (default "auto": lower validation NLL) and ECE bin count (default 10). */
  calibration?: FitCalibrationOptions;
  /**
   * Fewest validation images that must lie below the reassure threshold (default
   * ⌈1 / (1 − targetNpv)⌉, 100 for 99%): with fewer, one missed malignant image could not even be
   * seen at the target's precision, and a handful of benign images would "reach" any NPV.
   */
  minReassureImages?: number;
  /** Interval multiplier for TTA spreads (default 1.96). */
  intervalZ?: number;
  /** Interval width (calibrated probability) beyond which a decision escalates (default 0.3). */
  maxIntervalWidthProb?: number;
}

function toBinary(labels: ArrayLike<number> | readonly LesionLabel[]): number[] {
  return Array.from({ length: labels.length }, (_, i) => {
    const label = (labels as ArrayLike<number | string>)[i];
    if (label === 1 || label === "malignant") return 1;
    if (label === 0 || label === "benign") return 0;
    throw new TriagePolicyError(
      `labels[${i}]: received ${JSON.stringify(label)}, expected 0, 1, "benign" or "malignant"`,
    );
  });
}

function checkRate(value: number, name: string, lowOpen: boolean): void {
  if (!(lowOpen ? value > 0 && value <= 1 : value >= 0 && value <= 1) || !Number.isFinite(value)) {
    throw new TriagePolicyError(`${name}: received ${value}, expected ${lowOpen ? "0 < " : "0 ≤ "}${name} ≤ 1`);
  }
}

function countAt(
  labels: readonly number[],
  calibrated: readonly number[],
  thresholdProb: number,
): OperatingPointCounts {
  const counts = { truePositives: 0, falsePositives: 0, trueNegatives: 0, falseNegatives: 0 };
  for (let i = 0; i < labels.length; i++) {
    const above = calibrated[i] >= thresholdProb;
    if (labels[i] === 1) counts[above ? "truePositives" : "falseNegatives"]++;
    else counts[above ? "falsePositives" : "trueNegatives"]++;
  }
  return counts;
}

function ratio(numerator: number, denominator: number): number | null {
  return denominator > 0 ? numerator / denominator : null;
}

function describeOperatingPoint(
  labels: readonly number[],
  calibrated: readonly number[],
  thresholdProb: number,
  calibration: { slope: number; intercept: number },
): TriageOperatingPointMetadata {
  const counts = countAt(labels, calibrated, thresholdProb);
  const { truePositives: tp, falsePositives: fp, trueNegatives: tn, falseNegatives: fn } = counts;
  return {
    thresholdProb,
    rawThresholdProb: invertCalibration(calibration, thresholdProb),
    validationSensitivity: tp / (tp + fn),
    validationSpecificity: tn / (tn + fp),
    validationNpv: ratio(tn, tn + fn),
    validationPpv: ratio(tp, tp + fp),
    counts,
  };
}

/** NPV of "below the threshold" at prevalence π from that threshold's specificity and miss rate. */
function npvAtPrevalence(specificity: number, missRate: number, prevalence: number): number | null {
  const denominator = specificity * (1 - prevalence) + missRate * prevalence;
  return denominator > 0 ? (specificity * (1 - prevalence)) / denominator : null;
}

/**
 * Fits the calibrated three-level triage policy on validation scores (the images the threshold is
 * tuned on, never the test set):
 * 1. calibration (temperature or Platt scaling of the logit, see fitCalibration), with ECE
 *    (10 equal-width bins unless `calibration.binCount` says otherwise), Brier and NLL before/after;
 * 2. `urgent`: the highest calibrated threshold whose validation sensitivity is ≥ `targetSensitivity`
 *    (the ROC walk chooseThresholdForSensitivity uses, run on the calibrated scores);
 * 3. `reassure`: the highest calibrated threshold t (one of the scores, t ≤ the urgent threshold)
 *    such that NPV of "P < t" is ≥ `targetNpv` at `prevalence`, i.e.
 *    spec(t)(1−π) / (spec(t)(1−π) + miss(t)·π) with miss(t) = malignant below t / malignant — at the
 *    validation prevalence that is benign below / all below — among thresholds with at least
 *    `minReassureImages` validation images below them (default ⌈1/(1 − targetNpv)⌉, so that one miss
 *    would show). When no t qualifies the level is disabled with a `reason`;
 * 4. the uncertainty rule decideTriage applies (interval z, the width that counts as wide).
 * Every operating point carries its validation sensitivity, specificity, NPV, PPV and counts.
 * Returns plain JSON-serialisable data for metadata.json. Throws {@link TriagePolicyError} (or
 * CalibrationError) for mismatched lengths, a single class, or targets/prevalence outside (0, 1].
 *
 * @example const policy = fitTriagePolicy({ labels: validation.labels, probabilities: validationProbs }); // policy.urgent.thresholdProb
 */
export function fitTriagePolicy(input: FitTriagePolicyInput): TriagePolicy {
  const targetSensitivity = input.targetSensitivity ?? 0.95;
  const targetNpv = input.targetNpv ?? 0.99;
  checkRate(targetSensitivity, "targetSensitivity", true);
  checkRate(targetNpv, "targetNpv", true);
  if (input.labels.length !== input.probabilities.length) {
    throw new TriagePolicyError(
      `labels (${input.labels.length}) and probabilities (${input.probabilities.length}) must have the same length`,
    );
  }
  const labels = toBinary(input.labels);
  const malignant = labels.reduce((n, y) => n + y, 0);
  const benign = labels.length - malignant;
  if (malignant === 0 || benign === 0) {
    throw new TriagePolicyError(
      `labels: received ${malignant} malignant and ${benign} benign images, expected both classes on validation`,
    );
  }
  const prevalence = input.prevalence ?? malignant / labels.length;
  if (!(prevalence > 0 && prevalence < 1)) {
    throw new TriagePolicyError(`prevalence: received ${input.prevalence}, expected 0 < prevalence < 1 (e.g. 0.1)`);
  }
  let groups: number | null = null;
  if (input.groupIds !== undefined) {
    if (input.groupIds.length !== labels.length) {
      throw new TriagePolicyError(
        `groupIds (${input.groupIds.length}) and labels (${labels.length}) must have the same length`,
      );
    }
    groups = new Set(Array.from(input.groupIds)).size;
  }
  const intervalZ = input.intervalZ ?? DEFAULT_INTERVAL_Z;
  if (!(intervalZ > 0 && Number.isFinite(intervalZ))) {
    throw new TriagePolicyError(`intervalZ: received ${intervalZ}, expected a positive number such as 1.96`);
  }
  const maxIntervalWidthProb = input.maxIntervalWidthProb ?? DEFAULT_MAX_INTERVAL_WIDTH_PROB;
  checkRate(maxIntervalWidthProb, "maxIntervalWidthProb", true);

  const minReassureImages = input.minReassureImages ?? Math.ceil(1 / (1 - targetNpv) - 1e-9);
  if (!(Number.isInteger(minReassureImages) && minReassureImages >= 1)) {
    throw new TriagePolicyError(
      `minReassureImages: received ${input.minReassureImages}, expected a whole number ≥ 1 (default ⌈1/(1 − targetNpv)⌉)`,
    );
  }

  const calibration = fitCalibration(labels, input.probabilities, input.calibration);
  const calibrated = Array.from(input.probabilities, (p) => applyCalibration(calibration, p));

  // The ROC walk behind chooseThresholdForSensitivity (both classes are present here); importing
  // triage.ts instead would make a cycle (it imports this module), which tslab's loader cannot load.
  const urgentChoice = findThresholdForSensitivity(labels, calibrated, targetSensitivity);
  const urgent = {
    ...describeOperatingPoint(labels, calibrated, urgentChoice.thresholdProb, calibration),
    rule: `highest calibrated threshold with validation sensitivity ≥ ${targetSensitivity}`,
  };

  // Walk the distinct calibrated scores from the urgent threshold down; "below t" grows as t rises.
  const order = calibrated.map((q, i) => ({ q, y: labels[i] })).sort((a, b) => a.q - b.q);
  let benignBelow = 0;
  let malignantBelow = 0;
  let best: { thresholdProb: number; npv: number; below: number } | null = null;
  let chosenThreshold: number | null = null;
  for (let k = 0; k < order.length && order[k].q <= urgent.thresholdProb;) {
    const t = order[k].q;
    if (k >= minReassureImages) {
      const npv = npvAtPrevalence(benignBelow / benign, malignantBelow / malignant, prevalence);
      if (npv !== null) {
        if (best === null || npv > best.npv) best = { thresholdProb: t, npv, below: k };
        if (npv >= targetNpv - 1e-12) chosenThreshold = t;
      }
    }
    while (k < order.length && order[k].q === t) {
      if (order[k].y === 1) malignantBelow++;
      else benignBelow++;
      k++;
    }
  }
  const reassureRule =
    `highest calibrated threshold t ≤ the urgent threshold with NPV of "below t" ≥ ${targetNpv} ` +
    `at prevalence ${prevalence.toFixed(4)} and at least ${minReassureImages} validation images below t`;
  let reassure: ReassureLevelMetadata;
  if (chosenThreshold !== null) {
    const point = describeOperatingPoint(labels, calibrated, chosenThreshold, calibration);
    reassure = {
      enabled: true,
      ...point,
      npvAtPrevalence: npvAtPrevalence(
        point.validationSpecificity,
        1 - point.validationSensitivity,
        prevalence,
      ) as number,
      rule: reassureRule,
    };
  } else {
    const belowUrgent = urgent.counts.trueNegatives + urgent.counts.falseNegatives;
    const reason =
      best === null
        ? `only ${belowUrgent} of ${labels.length} validation images lie below the urgent threshold ` +
          `(${urgent.thresholdProb.toPrecision(3)}), fewer than the ${minReassureImages} needed to show an NPV ` +
          `of ${targetNpv} (among fewer, a single missed malignant image would already break it)`
        : `no threshold at or below the urgent threshold (${urgent.thresholdProb.toPrecision(3)}) with at least ` +
          `${minReassureImages} validation images below it reached NPV ≥ ${targetNpv} at prevalence ` +
          `${prevalence.toFixed(4)} (the best was ${best.npv.toFixed(4)} at threshold ` +
          `${best.thresholdProb.toPrecision(3)} with ${best.below} images below it)`;
    reassure = {
      enabled: false,
      reason: `${reason}, so the reassure level is disabled and every image below the urgent threshold is routine`,
      bestNpvAtPrevalence: best ? best.npv : null,
      rule: reassureRule,
    };
  }
  return {
    formatVersion: 1,
    targetSensitivity,
    targetNpv,
    minReassureImages,
    prevalence,
    prevalenceSource: input.prevalence === undefined ? "validation" : "given",
    validation: { images: labels.length, malignant, benign, groups },
    calibration,
    urgent,
    reassure,
    uncertainty: {
      zValue: intervalZ,
      maxIntervalWidthProb,
      rule:
        `interval = calibrated (mean ± ${intervalZ} sd) of the TTA view probabilities, clipped to [0, 1]; ` +
        `a decision moves up one level (reassure → routine → urgent) when the interval reaches the next level's ` +
        `threshold or is wider than ${maxIntervalWidthProb}`,
    },
  };
}

/**
 * The triage policy stored in an exported model's metadata, or a {@link TriagePolicyError}
 * naming `where` (the model folder) when the file predates policies.
 *
 * @example const policy = requireTriagePolicy(loaded.metadata, loaded.dir);
 */
export function requireTriagePolicy(metadata: TriageModelMetadata, where: string): TriagePolicy {
  if (metadata.policy === undefined) {
    throw new TriagePolicyError(
      `${where}: metadata.json has no triage policy (field "policy"); expected one written with fitTriagePolicy (notebook 05)`,
    );
  }
  checkPolicy(metadata.policy);
  return metadata.policy;
}

/** What {@link decideTriage} takes for one image. */
export interface TriageDecisionInput {
  /** Raw P(malignant) from the model: with TTA, the mean over the views. */
  probability: number;
  /** Raw P(malignant) of each TTA view (≥ 2); their sample sd gives the interval. */
  views?: ArrayLike<number>;
  /** Standard deviation of the raw view probabilities, when the views themselves are not at hand (ignored when `views` is given). */
  spread?: number;
}

/** A triage decision for one image under a {@link TriagePolicy}. */
export interface TriageDecision {
  /** Calibrated P(malignant), 0..1. */
  probability: number;
  /** The model's raw P(malignant) (the TTA mean when views were used). */
  rawProbability: number;
  /**
   * Calibrated [low, high]: calibrate(clip(raw ± z·sd, 0, 1)) with sd the sample sd of the raw
   * view probabilities (or `spread`); null without views or spread (a single view says nothing
   * about uncertainty).
   */
  interval: [number, number] | null;
  level: TriageLevel;
  /** The level the calibrated probability alone gave, before escalation. */
  baseLevel: TriageLevel;
  escalated: boolean;
  /** Why the level moved up one (null when it did not). */
  escalationReason: string | null;
  /** The threshold this level was decided at: urgent's for urgent and routine, reassure's for reassure. */
  operatingPoint: {
    level: "urgent" | "reassure";
    thresholdProb: number;
    /** Null when the model records none (a model exported without a policy or threshold audit). */
    validationSensitivity: number | null;
    validationSpecificity: number | null;
    validationNpv: number | null;
  };
  /** Plain-language advice for the person; never a diagnosis. */
  sentence: string;
}

const NOT_A_DIAGNOSIS = "This is not a diagnosis: only a doctor who examines the skin can say what this spot is.";

/** The plain-language sentence for each level (never a diagnosis; no disease is named). */
export const TRIAGE_SENTENCES: Readonly<Record<TriageLevel, string>> = {
  urgent: `This image has features that call for a prompt visit to a doctor (within 2 weeks). ${NOT_A_DIAGNOSIS}`,
  routine:
    "This image does not call for an urgent visit, but it is worth showing to a doctor at a routine " +
    `appointment, and sooner if the spot changes, bleeds or itches. ${NOT_A_DIAGNOSIS}`,
  reassure:
    "This image shows few of the features that call for a visit to a doctor. The tool can miss a " +
    "spot that matters, so see a doctor if it changes, bleeds or itches, or if you are worried. " +
    NOT_A_DIAGNOSIS,
};

/** Added to the sentence when an uncertain result moved up one level. */
export const ESCALATION_SENTENCE =
  "The result varied between views of the same image, so it was moved up one level to be careful.";

function checkPolicy(policy: TriagePolicy): void {
  const u = policy?.urgent?.thresholdProb;
  if (!(u >= 0 && u <= 1)) {
    throw new TriagePolicyError(`policy.urgent.thresholdProb: received ${u}, expected a probability in [0, 1]`);
  }
  if (policy.reassure?.enabled && !(policy.reassure.thresholdProb >= 0 && policy.reassure.thresholdProb <= u)) {
    throw new TriagePolicyError(
      `policy.reassure.thresholdProb: received ${policy.reassure.thresholdProb}, expected 0 ≤ t ≤ the urgent threshold ${u}`,
    );
  }
  const c = policy.calibration;
  if (!(c && c.slope > 0 && Number.isFinite(c.intercept))) {
    throw new TriagePolicyError(
      `policy.calibration: received slope ${c?.slope} and intercept ${c?.intercept}, expected slope > 0 and a finite intercept`,
    );
  }
}

function levelOf(policy: TriagePolicy, calibrated: number): TriageLevel {
  if (calibrated >= policy.urgent.thresholdProb) return "urgent";
  if (policy.reassure.enabled && calibrated < policy.reassure.thresholdProb) return "reassure";
  return "routine";
}

/**
 * Decides one image under a triage policy: calibrates the raw probability, places it in a level
 * (urgent at or above the urgent threshold; reassure below the reassure threshold when enabled;
 * routine between), and, when TTA views (or their spread) are given, builds the interval
 * calibrate(clip(p ± z·sd, 0, 1)) — it always contains the calibrated probability. A wide
 * interval moves the decision up one level (reassure → routine, routine → urgent) and says why:
 * "wide" means its upper end reaches the next level's threshold, or it is wider than
 * `policy.uncertainty.maxIntervalWidthProb`. Without views or spread the interval is null and
 * nothing escalates. Throws {@link TriagePolicyError} for a probability outside [0, 1], fewer
 * than 2 views, or a negative spread.
 *
 * @example decideTriage(policy, { probability: 0.41, views: [0.35, 0.47, 0.4, 0.42] }).sentence
 */
export function decideTriage(policy: TriagePolicy, input: TriageDecisionInput): TriageDecision {
  checkPolicy(policy);
  const raw = input.probability;
  if (!(raw >= 0 && raw <= 1)) {
    throw new TriagePolicyError(`probability: received ${raw}, expected a probability in [0, 1]`);
  }
  let sd: number | null = null;
  let viewText = "";
  if (input.views !== undefined) {
    const views = Array.from(input.views);
    if (views.length < 2) {
      throw new TriagePolicyError(
        `views: received ${views.length} view probabilities, expected at least 2 (or leave views out)`,
      );
    }
    views.forEach((v, i) => {
      if (!(v >= 0 && v <= 1))
        throw new TriagePolicyError(`views[${i}]: received ${v}, expected a probability in [0, 1]`);
    });
    const mean = views.reduce((a, b) => a + b, 0) / views.length;
    sd = Math.sqrt(views.reduce((a, v) => a + (v - mean) ** 2, 0) / (views.length - 1));
    viewText = ` over ${views.length} views`;
  } else if (input.spread !== undefined) {
    if (!(input.spread >= 0 && Number.isFinite(input.spread))) {
      throw new TriagePolicyError(`spread: received ${input.spread}, expected a standard deviation ≥ 0`);
    }
    sd = input.spread;
  }
  let calibrated: number;
  let interval: [number, number] | null = null;
  try {
    calibrated = applyCalibration(policy.calibration, raw);
    if (sd !== null) {
      const z = policy.uncertainty?.zValue ?? DEFAULT_INTERVAL_Z;
      const lo = Math.max(0, raw - z * sd);
      const hi = Math.min(1, raw + z * sd);
      interval = [applyCalibration(policy.calibration, lo), applyCalibration(policy.calibration, hi)];
    }
  } catch (err) {
    if (err instanceof CalibrationError) throw new TriagePolicyError(err.message);
    throw err;
  }
  const baseLevel = levelOf(policy, calibrated);
  let level = baseLevel;
  let escalationReason: string | null = null;
  if (interval !== null && baseLevel !== "urgent") {
    const maxWidth = policy.uncertainty?.maxIntervalWidthProb ?? DEFAULT_MAX_INTERVAL_WIDTH_PROB;
    const next: TriageLevel = baseLevel === "reassure" ? "routine" : "urgent";
    const nextThreshold =
      baseLevel === "reassure" && policy.reassure.enabled ? policy.reassure.thresholdProb : policy.urgent.thresholdProb;
    const range = `${interval[0].toFixed(3)}–${interval[1].toFixed(3)}${viewText}`;
    if (interval[1] >= nextThreshold) {
      escalationReason =
        `the interval ${range} reaches the ${next} threshold ${nextThreshold.toFixed(3)}, ` +
        `so the level moved up from ${baseLevel} to ${next}`;
    } else if (interval[1] - interval[0] > maxWidth) {
      escalationReason =
        `the interval ${range} is ${(interval[1] - interval[0]).toFixed(3)} wide (more than ${maxWidth}), ` +
        `so the level moved up from ${baseLevel} to ${next}`;
    }
    if (escalationReason !== null) level = next;
  }
  const point = level === "reassure" && policy.reassure.enabled ? policy.reassure : policy.urgent;
  return {
    probability: calibrated,
    rawProbability: raw,
    interval,
    level,
    baseLevel,
    escalated: escalationReason !== null,
    escalationReason,
    operatingPoint: {
      level: level === "reassure" ? "reassure" : "urgent",
      thresholdProb: point.thresholdProb,
      validationSensitivity: point.validationSensitivity,
      validationSpecificity: point.validationSpecificity,
      validationNpv: point.validationNpv,
    },
    sentence: escalationReason === null ? TRIAGE_SENTENCES[level] : `${TRIAGE_SENTENCES[level]} ${ESCALATION_SENTENCE}`,
  };
}

/**
 * The policy's operating points on the model's raw probability (calibration inverted): `urgent`,
 * and `reassure` when that level is enabled. Re-measuring a model variant at these thresholds
 * (exportTriageModelVariants' `operatingPoints`) re-checks the levels it would decide.
 *
 * @example listRawOperatingPoints(policy) // [{ name: "urgent", thresholdProb: 0.31 }, { name: "reassure", thresholdProb: 0.04 }]
 */
export function listRawOperatingPoints(policy: TriagePolicy): { name: TriageLevel; thresholdProb: number }[] {
  checkPolicy(policy);
  return [
    { name: "urgent", thresholdProb: policy.urgent.rawThresholdProb },
    ...(policy.reassure.enabled
      ? [{ name: "reassure" as const, thresholdProb: policy.reassure.rawThresholdProb }]
      : []),
  ];
}

/** What {@link decideTriageForModel} takes: a raw probability and, with TTA, each view's raw probability. */
export interface ModelDecisionInput {
  /** Raw P(malignant) the model gave (view 0, or the views' mean when the caller reports that). */
  probability: number;
  /** Raw P(malignant) of each TTA view; with 2 or more, their spread gives the interval. */
  viewProbabilities?: readonly number[];
}

/**
 * The one decision every consumer makes (`npm run score`, the service, the phone app, triageImage)
 * for an exported model: under its `policy` when metadata.json has one (decideTriage: calibrated
 * probability, three levels, TTA interval and escalation); otherwise, for models exported before
 * policies existed, two levels at the exported `thresholdProb` on the raw probability (`urgent`
 * at or above, else `routine`), the interval raw p ± z·sd of the views (no calibration, no
 * escalation), the operating point from the threshold audit when recorded, and the same sentences.
 * Pure (no I/O), so the browser app bundles it.
 *
 * @example decideTriageForModel(readTriageMetadata("models/demo"), { probability: 0.41, viewProbabilities: [0.41, 0.38, 0.45] }).level // "urgent"
 */
export function decideTriageForModel(
  metadata: Pick<TriageModelMetadata, "policy" | "thresholdProb" | "threshold">,
  input: ModelDecisionInput,
): TriageDecision {
  const views = input.viewProbabilities && input.viewProbabilities.length >= 2 ? input.viewProbabilities : undefined;
  if (metadata.policy) return decideTriage(metadata.policy, { probability: input.probability, views });
  const raw = input.probability;
  const t = metadata.thresholdProb;
  if (!(raw >= 0 && raw <= 1)) {
    throw new TriagePolicyError(`probability: received ${raw}, expected a probability in [0, 1]`);
  }
  if (!(t >= 0 && t <= 1)) {
    throw new TriagePolicyError(`metadata.thresholdProb: received ${t}, expected a probability in [0, 1]`);
  }
  let interval: [number, number] | null = null;
  if (views) {
    const mean = views.reduce((a, b) => a + b, 0) / views.length;
    const sd = Math.sqrt(views.reduce((a, v) => a + (v - mean) ** 2, 0) / (views.length - 1));
    interval = [Math.max(0, raw - DEFAULT_INTERVAL_Z * sd), Math.min(1, raw + DEFAULT_INTERVAL_Z * sd)];
  }
  const level: TriageLevel = raw >= t ? "urgent" : "routine";
  return {
    probability: raw,
    rawProbability: raw,
    interval,
    level,
    baseLevel: level,
    escalated: false,
    escalationReason: null,
    operatingPoint: {
      level: "urgent",
      thresholdProb: t,
      validationSensitivity: metadata.threshold?.sensitivity ?? null,
      validationSpecificity: metadata.threshold?.specificity ?? null,
      validationNpv: null,
    },
    sentence: TRIAGE_SENTENCES[level],
  };
}

/**
 * The policy in a few plain lines for a notebook or a model card: calibration with ECE/Brier
 * before and after, each level with its threshold and validation sensitivity/specificity/NPV and
 * counts, or why reassure is disabled, and the uncertainty rule.
 *
 * @example console.log(formatTriagePolicy(policy));
 */
export function formatTriagePolicy(policy: TriagePolicy): string {
  const c = policy.calibration;
  const pct = (x: number | null) => (x === null ? "n/a" : `${(100 * x).toFixed(1)}%`);
  const point = (p: TriageOperatingPointMetadata) =>
    `calibrated P ${p.thresholdProb.toFixed(4)} (raw ${p.rawThresholdProb.toFixed(4)}): validation sensitivity ` +
    `${pct(p.validationSensitivity)} (${p.counts.truePositives}/${p.counts.truePositives + p.counts.falseNegatives}), ` +
    `specificity ${pct(p.validationSpecificity)} (${p.counts.trueNegatives}/${p.counts.trueNegatives + p.counts.falsePositives}), ` +
    `NPV ${pct(p.validationNpv)}`;
  const calibrationLine =
    c.method === "temperature"
      ? `temperature scaling, T = ${(c.temperature ?? 1 / c.slope).toFixed(3)}`
      : `Platt scaling, a = ${c.slope.toFixed(3)}, b = ${c.intercept.toFixed(3)}`;
  return [
    `fitted on ${policy.validation.images} validation images (${policy.validation.malignant} malignant, ` +
      `${policy.validation.benign} benign${policy.validation.groups === null ? "" : `, ${policy.validation.groups} patient/lesion groups`}); ` +
      `prevalence ${policy.prevalence.toFixed(4)} (${policy.prevalenceSource})`,
    `calibration: ${calibrationLine} (${c.selection}); ECE (${c.binCount} bins) ${c.before.ece.toFixed(4)} → ` +
      `${c.after.ece.toFixed(4)}, Brier ${c.before.brier.toFixed(4)} → ${c.after.brier.toFixed(4)}, NLL ` +
      `${c.before.nll.toFixed(4)} → ${c.after.nll.toFixed(4)}`,
    `urgent (target sensitivity ${policy.targetSensitivity}) at ${point(policy.urgent)}`,
    // `=== false` narrows in tslab's non-strict compile too, where a falsy check does not.
    policy.reassure.enabled === false
      ? `reassure: disabled — ${policy.reassure.reason}`
      : `reassure (target NPV ${policy.targetNpv}) below ${point(policy.reassure)}; NPV at prevalence ` +
        `${pct(policy.reassure.npvAtPrevalence)}`,
    `routine: between the two thresholds`,
    `uncertainty: ${policy.uncertainty.rule}`,
  ].join("\n");
}
