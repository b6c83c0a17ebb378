import { computeBrierScore, computeCalibration } from "../evaluate/metrics.js";
import type { CalibrationMetadata, CalibrationMethod, CalibrationQuality } from "../export/triageModel.js";
import { MelanomaLabError } from "../util/errors.js";

/** Thrown for calibration input that cannot be fitted or applied (lengths, labels, probabilities, method). */
export class CalibrationError extends MelanomaLabError {}

/** The calibration methods {@link fitCalibration} knows; "auto" picks the one with the lower validation NLL. */
export const CALIBRATION_METHODS: readonly CalibrationMethod[] = ["temperature", "platt"];

/**
 * Probabilities are clipped to [ε, 1 − ε] with this ε before taking their logit, so a float32
 * sigmoid that rounded to exactly 0 or 1 still has a finite logit (±16.1).
 */
export const LOGIT_CLIP_PROB = 1e-7;

/** Equal-width reliability bins used for ECE unless the caller says otherwise. */
export const DEFAULT_CALIBRATION_BIN_COUNT = 10;

/** A fitted map from raw to calibrated probability: p_cal = σ(slope · logit(p) + intercept). */
export interface CalibrationFit {
  method: CalibrationMethod;
  /** 1 / temperature for temperature scaling; Platt's a. */
  slope: number;
  /** 0 for temperature scaling; Platt's b. */
  intercept: number;
  /** Newton iterations until the gradient vanished (|g| < 1e-10 per image). */
  iterations: number;
}

/** What {@link fitCalibration} takes besides labels and probabilities. */
export interface FitCalibrationOptions {
  /** "temperature", "platt", or "auto" (default): the one with the lower validation NLL. */
  method?: CalibrationMethod | "auto";
  /** Equal-width bins for the ECE before/after (default 10). */
  binCount?: number;
}

function sigmoid(x: number): number {
  return x >= 0 ? 1 / (1 + Math.exp(-x)) : Math.exp(x) / (1 + Math.exp(x));
}

/**
 * log(1 + e^x) without overflow.
 */
function softplus(x: number): number {
  return x > 0 ? x + Math.log1p(Math.exp(-x)) : Math.log1p(Math.exp(x));
}

/**
 * The logit of a probability clipped to [ε, 1 − ε] (ε = {@link LOGIT_CLIP_PROB}).
 *
 * @example logitOfProbability(0.5) // 0
 */
export function logitOfProbability(probability: number): number {
  const p = Math.min(1 - LOGIT_CLIP_PROB, Math.max(LOGIT_CLIP_PROB, probability));
  return Math.log(p / (1 - p));
}

/**
 * Applies a fitted calibration to one raw probability of malignant: σ(slope · logit(p) + intercept).
 *
 * @example applyCalibration({ slope: 0.5, intercept: 0 }, 0.9) // σ(0.5 · logit 0.9) = 0.75
 */
export function applyCalibration(calibration: { slope: number; intercept: number }, probability: number): number {
  if (!(probability >= 0 && probability <= 1)) {
    throw new CalibrationError(`probability: received ${probability}, expected a probability in [0, 1]`);
  }
  return sigmoid(calibration.slope * logitOfProbability(probability) + calibration.intercept);
}

/**
 * The raw probability whose calibrated value is `calibratedProbability` (the inverse of
 * {@link applyCalibration}; slope must be > 0), e.g. to state a calibrated threshold on the
 * model's own output scale.
 *
 * @example invertCalibration({ slope: 0.5, intercept: 0 }, 0.75) // 0.9
 */
export function invertCalibration(
  calibration: { slope: number; intercept: number },
  calibratedProbability: number,
): number {
  if (!(calibration.slope > 0)) {
    throw new CalibrationError(`slope: received ${calibration.slope}, expected > 0 (an order-preserving calibration)`);
  }
  return sigmoid((logitOfProbability(calibratedProbability) - calibration.intercept) / calibration.slope);
}

/**
 * Mean negative log-likelihood (natural log, per image) of 0/1 labels under probabilities,
 * with probabilities clipped to [ε, 1 − ε] (ε = {@link LOGIT_CLIP_PROB}).
 *
 * @example computeNegativeLogLikelihood([1, 0], [0.8, 0.2]) // −ln 0.8 ≈ 0.2231
 */
export function computeNegativeLogLikelihood(labels: ArrayLike<number>, probabilities: ArrayLike<number>): number {
  checkInputs(labels, probabilities);
  let sum = 0;
  for (let i = 0; i < labels.length; i++) {
    const z = logitOfProbability(probabilities[i]);
    // −log σ(z) = softplus(−z), −log(1 − σ(z)) = softplus(z).
    sum += labels[i] === 1 ? softplus(-z) : softplus(z);
  }
  return sum / labels.length;
}

function checkInputs(labels: ArrayLike<number>, probabilities: ArrayLike<number>): void {
  if (labels.length !== probabilities.length) {
    throw new CalibrationError(
      `labels (${labels.length}) and probabilities (${probabilities.length}) must have the same length`,
    );
  }
  if (labels.length === 0) throw new CalibrationError("labels: received an empty array, expected at least one image");
  for (let i = 0; i < labels.length; i++) {
    if (labels[i] !== 0 && labels[i] !== 1) {
      throw new CalibrationError(`labels[${i}]: received ${labels[i]}, expected 0 (benign) or 1 (malignant)`);
    }
    const p = probabilities[i];
    if (!(p >= 0 && p <= 1)) {
      throw new CalibrationError(`probabilities[${i}]: received ${p}, expected a probability in [0, 1]`);
    }
  }
}

/**
 * Platt's (1999) targets: malignant images count as (N₊ + 1)/(N₊ + 2), benign ones as 1/(N₋ + 2),
 * so the optimum stays finite when validation scores separate the classes perfectly (plain 0/1
 * targets would send the slope to infinity). scikit-learn's sigmoid calibration uses the same.
 */
function plattTargets(labels: ArrayLike<number>): Float64Array {
  let positives = 0;
  for (let i = 0; i < labels.length; i++) positives += labels[i];
  const negatives = labels.length - positives;
  const hi = (positives + 1) / (positives + 2);
  const lo = 1 / (negatives + 2);
  return Float64Array.from({ length: labels.length }, (_, i) => (labels[i] === 1 ? hi : lo));
}

/** Mean cross-entropy of soft targets under σ(slope·z + intercept). */
function crossEntropy(z: Float64Array, targets: Float64Array, slope: number, intercept: number): number {
  let sum = 0;
  for (let i = 0; i < z.length; i++) {
    const s = slope * z[i] + intercept;
    sum += targets[i] * softplus(-s) + (1 - targets[i]) * softplus(s);
  }
  return sum / z.length;
}

/**
 * Newton's method with backtracking on the (convex) cross-entropy of σ(a·z + b) against the
 * targets; with `fitIntercept` false, b stays 0 (temperature scaling, a = 1/T).
 */
function fitLogistic(
  z: Float64Array,
  targets: Float64Array,
  fitIntercept: boolean,
): { slope: number; intercept: number; iterations: number } {
  let a = 1;
  let b = 0;
  const n = z.length;
  for (let iteration = 1; iteration <= 100; iteration++) {
    let ga = 0;
    let gb = 0;
    let haa = 0;
    let hab = 0;
    let hbb = 0;
    for (let i = 0; i < n; i++) {
      const q = sigmoid(a * z[i] + b);
      const r = q - targets[i];
      const w = q * (1 - q);
      ga += r * z[i];
      gb += r;
      haa += w * z[i] * z[i];
      hab += w * z[i];
      hbb += w;
    }
    if (Math.abs(ga) < 1e-10 * n && (!fitIntercept || Math.abs(gb) < 1e-10 * n)) {
      return { slope: a, intercept: b, iterations: iteration - 1 };
    }
    // A tiny ridge keeps the Newton system solvable when all logits are equal.
    let da: number;
    let db = 0;
    if (fitIntercept) {
      const h11 = haa + 1e-12;
      const h22 = hbb + 1e-12;
      const det = h11 * h22 - hab * hab;
      da = (h22 * ga - hab * gb) / det;
      db = (h11 * gb - hab * ga) / det;
    } else {
      da = ga / (haa + 1e-12);
    }
    const before = crossEntropy(z, targets, a, b);
    let step = 1;
    while (step > 1e-10 && crossEntropy(z, targets, a - step * da, b - step * db) > before + 1e-15) step /= 2;
    if (step <= 1e-10) return { slope: a, intercept: b, iterations: iteration };
    a -= step * da;
    b -= step * db;
  }
  return { slope: a, intercept: b, iterations: 100 };
}

/**
 * Fits temperature scaling (p_cal = σ(logit(p)/T)) and/or Platt scaling (p_cal = σ(a·logit(p) + b))
 * to validation labels by Newton's method on the cross-entropy (against Platt's regularised
 * targets, see below), and reports both candidates' validation NLL, the chosen method, and ECE
 * (`binCount` equal-width bins, default 10), Brier and NLL before and after on the same images.
 *
 * Targets: malignant images count as (N₊ + 1)/(N₊ + 2) and benign ones as 1/(N₋ + 2) (Platt 1999,
 * also scikit-learn's sigmoid calibration), so the fit stays finite when validation separates the
 * classes. Platt scaling nests temperature scaling (b = 0), so on the images it was fitted on its
 * NLL is almost always lower; "auto" still picks by NLL, pass a method to choose. A fit whose
 * slope is ≤ 0 (it would reverse the ranking) is listed in `candidates` but never chosen.
 * Throws {@link CalibrationError} when labels hold one class only, or no candidate has slope > 0.
 *
 * @example const cal = fitCalibration(validationLabels, validationProbs, { method: "temperature" }); // cal.after.ece
 */
export function fitCalibration(
  labels: ArrayLike<number>,
  probabilities: ArrayLike<number>,
  options: FitCalibrationOptions = {},
): CalibrationMetadata {
  checkInputs(labels, probabilities);
  const method = options.method ?? "auto";
  if (method !== "auto" && !CALIBRATION_METHODS.includes(method)) {
    throw new CalibrationError(
      `method: received ${JSON.stringify(method)}, expected "auto", ${CALIBRATION_METHODS.map((m) => JSON.stringify(m)).join(" or ")}`,
    );
  }
  const binCount = options.binCount ?? DEFAULT_CALIBRATION_BIN_COUNT;
  let positives = 0;
  for (let i = 0; i < labels.length; i++) positives += labels[i];
  const negatives = labels.length - positives;
  if (positives === 0 || negatives === 0) {
    throw new CalibrationError(
      `labels: received ${positives} malignant and ${negatives} benign images, expected both classes to fit a calibration`,
    );
  }
  const z = Float64Array.from({ length: labels.length }, (_, i) => logitOfProbability(probabilities[i]));
  const targets = plattTargets(labels);
  const candidates = (method === "auto" ? CALIBRATION_METHODS : [method]).map((m) => {
    const fit = fitLogistic(z, targets, m === "platt");
    const calibrated = Array.from(z, (zi) => sigmoid(fit.slope * zi + fit.intercept));
    return { method: m, ...fit, validationNll: computeNegativeLogLikelihood(labels, calibrated), calibrated };
  });
  // A slope ≤ 0 would reverse the ranking (temperature scaling does this when every score sits
  // on the wrong side of 0.5); such a candidate is reported but never chosen.
  const usable = candidates.filter((c) => c.slope > 0);
  if (usable.length === 0) {
    const slopes = candidates.map((c) => `${c.method} ${c.slope}`).join(", ");
    throw new CalibrationError(
      `fitted slope: received ${slopes}, expected > 0: ` +
        (method === "temperature"
          ? 'temperature scaling cannot fix scores that all lie on one side of 0.5 against the labels (try "platt"), or the scores rank benign images above malignant ones'
          : "the scores rank benign images above malignant ones, so no order-preserving calibration exists"),
    );
  }
  const chosen = usable.reduce((best, c) => (c.validationNll < best.validationNll ? c : best));
  const describeQuality = (p: ArrayLike<number>): CalibrationQuality => ({
    ece: computeCalibration(labels, p, { binCount }).expectedCalibrationError,
    brier: computeBrierScore(labels, p),
    nll: computeNegativeLogLikelihood(labels, p),
  });
  return {
    method: chosen.method,
    slope: chosen.slope,
    intercept: chosen.intercept,
    ...(chosen.method === "temperature" ? { temperature: 1 / chosen.slope } : {}),
    selection: method === "auto" ? "lower validation NLL" : "chosen by caller",
    candidates: candidates.map((c) => ({
      method: c.method,
      slope: c.slope,
      intercept: c.intercept,
      validationNll: c.validationNll,
      iterations: c.iterations,
    })),
    targets: "Platt (1999): malignant (N₊+1)/(N₊+2), benign 1/(N₋+2)",
    logitClipProb: LOGIT_CLIP_PROB,
    binCount,
    images: labels.length,
    malignant: positives,
    benign: negatives,
    before: describeQuality(probabilities),
    after: describeQuality(chosen.calibrated),
  };
}
