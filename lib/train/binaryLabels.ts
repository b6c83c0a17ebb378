import type { LesionLabel } from "../data/types.js";
import { MelanomaLabError } from "../util/errors.js";

/** Thrown for training input that does not fit together (lengths, labels, options). */
export class TrainHeadError extends MelanomaLabError {}

/**
 * Turns labels ("benign"/"malignant" or 0/1) into a 0/1 Int32Array, rejecting anything else
 * with a {@link TrainHeadError} naming the index and value.
 *
 * @example toBinaryLabels(["benign", "malignant"]) // Int32Array [0, 1]
 */
export function toBinaryLabels(labels: ArrayLike<number> | readonly LesionLabel[], field = "labels"): Int32Array {
  const out = new Int32Array(labels.length);
  for (let i = 0; i < labels.length; i++) {
    const v = (labels as ArrayLike<number | string>)[i];
    if (v === 1 || v === "malignant") out[i] = 1;
    else if (v === 0 || v === "benign") out[i] = 0;
    else
      throw new TrainHeadError(`${field}[${i}]: received ${JSON.stringify(v)}, expected 0, 1, "benign" or "malignant"`);
  }
  return out;
}
