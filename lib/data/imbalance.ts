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
  const n = benign + malignant;
  return { 0: n / (2 * benign), 1: n / (2 * malignant) };
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
  return Math.log(malignant / benign);
}
