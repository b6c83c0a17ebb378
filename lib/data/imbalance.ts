import { MelanomaLabError } from "../util/errors.js";
import type { LesionRecord } from "./types.js";

/** Thrown when class weights or a bias cannot be computed (a class has no examples). */
export class ClassImbalanceError extends MelanomaLabError {}

function countLabels(records: readonly Pick<LesionRecord, "label">[]): { benign: number; malignant: number } {
  let malignant = 0;
  for (const r of records) if (r.label === "malignant") malignant++;
  return { benign: records.length - malignant, malignant };
}

/**
 * Per-class loss weights, "balanced" as in scikit-learn: weight(c) = n / (2 × count(c)), so both
 * classes contribute equally to the loss. Keys are the class indices (0 = benign, 1 = malignant),
 * the shape tfjs `model.fit({ classWeight })` takes.
 *
 * @example computeClassWeights(records) // 800 benign, 200 malignant → { 0: 0.625, 1: 2.5 }
 */
export function computeClassWeights(records: readonly Pick<LesionRecord, "label">[]): { 0: number; 1: number } {
  const { benign, malignant } = countLabels(records);
  if (benign === 0 || malignant === 0) {
    throw new ClassImbalanceError(`class weights need both classes; received ${benign} benign and ${malignant} malignant records`);
  }
  const [w0, w1] = computeBalancedClassWeightsFromCounts([benign, malignant]);
  return { 0: w0, 1: w1 };
}

/**
 * "Balanced" loss weight of each class from its row count: n / (K × count_k), K = classes with
 * rows (scikit-learn's rule; a class with no rows gets weight 0). The one implementation behind
 * {@link computeClassWeights}, trainHead's and fineTuneTopBlocks's `classWeights: "balanced"`
 * (K = 2) and a diagnosis head's per-diagnosis weights (K = diagnoses present).
 *
 * @example computeBalancedClassWeightsFromCounts([800, 200]) // [0.625, 2.5]
 */
export function computeBalancedClassWeightsFromCounts(counts: readonly number[]): number[] {
  const n = counts.reduce((a, b) => a + b, 0);
  const present = counts.filter((c) => c > 0).length;
  if (present === 0) throw new ClassImbalanceError(`class weights: received counts ${JSON.stringify(counts)}, expected at least one class with rows`);
  return counts.map((c) => (c > 0 ? n / (present * c) : 0));
}

/**
 * Initial bias of a sigmoid output unit from the class counts: log(malignant / benign), the logit
 * of the malignant fraction, so the untrained unit predicts the base rate. The one implementation
 * behind {@link computeOutputBiasInit} and trainHead's output bias.
 *
 * @example computeOutputBiasFromCounts(800, 200) // log(0.25) ≈ -1.386
 */
export function computeOutputBiasFromCounts(benign: number, malignant: number): number {
  if (!(benign > 0 && malignant > 0)) {
    throw new ClassImbalanceError(`output bias log(pos/neg) needs both classes; received ${benign} benign and ${malignant} malignant`);
  }
  return Math.log(malignant / benign);
}

/**
 * Initial bias of a sigmoid output unit so that the untrained model predicts the base rate:
 * log(pos / neg) (the logit of the malignant fraction). Speeds up early training on skewed data.
 *
 * @example computeOutputBiasInit(records) // 200 malignant, 800 benign → log(0.25) ≈ -1.386
 */
export function computeOutputBiasInit(records: readonly Pick<LesionRecord, "label">[]): number {
  const { benign, malignant } = countLabels(records);
  if (benign === 0 || malignant === 0) {
    throw new ClassImbalanceError(`output bias log(pos/neg) needs both classes; received ${benign} benign and ${malignant} malignant records`);
  }
  return computeOutputBiasFromCounts(benign, malignant);
}
