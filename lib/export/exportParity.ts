import { MelanomaLabError } from "../util/errors.js";
import type { ImagePrediction } from "./triageModel.js";

/** Thrown when the exported model does not reproduce the in-memory model's probabilities. */
export class ExportParityError extends MelanomaLabError {}

/** What {@link checkExportParity} measured. */
export interface ExportParityResult {
  /** Largest |exported − reference| probability over the compared images. */
  maxAbsDifference: number;
  /** Image of that largest difference. */
  worstImageId: string;
  comparedCount: number;
  toleranceProb: number;
}

/**
 * Compares the exported model's probabilities (from predictMalignantProbability on the exported
 * files) with the in-memory model's, image by image (same order), and returns the largest
 * absolute difference. Throws {@link ExportParityError} when it exceeds `toleranceProb` (default
 * 1e-3, in probability units), when an image could not be scored, when a value is not a finite
 * probability, or when the two lists differ in length. So a notebook that calls it stops on a
 * broken export instead of printing a number nobody reads.
 *
 * @example const parity = checkExportParity(await predictMalignantProbability(loaded, paths), inMemoryProbs, { toleranceProb: 1e-3 });
 */
export function checkExportParity(
  exported: readonly ImagePrediction[],
  reference: ArrayLike<number>,
  options: { toleranceProb?: number } = {},
): ExportParityResult {
  const toleranceProb = options.toleranceProb ?? 1e-3;
  if (!(Number.isFinite(toleranceProb) && toleranceProb >= 0 && toleranceProb < 1)) {
    throw new ExportParityError(`checkExportParity: toleranceProb must be in [0, 1); received ${toleranceProb}`);
  }
  if (exported.length === 0)
    throw new ExportParityError(
      "checkExportParity: received no exported predictions; expected at least one image to compare",
    );
  if (exported.length !== reference.length) {
    throw new ExportParityError(
      `checkExportParity: received ${exported.length} exported predictions and ${reference.length} reference probabilities; expected the same images in the same order`,
    );
  }
  let maxAbsDifference = -1;
  let worstImageId = "";
  exported.forEach((prediction, i) => {
    if (!("probability" in prediction)) {
      throw new ExportParityError(
        `checkExportParity: the exported model could not score ${prediction.imageId} (${prediction.problem.reason}); expected every compared image to be scored`,
      );
    }
    const ref = reference[i];
    for (const [what, p] of [
      ["exported", prediction.probability],
      ["reference", ref],
    ] as const) {
      if (!(Number.isFinite(p) && p >= 0 && p <= 1)) {
        throw new ExportParityError(
          `checkExportParity: ${what} probability of ${prediction.imageId} is ${p}; expected a number in [0, 1]`,
        );
      }
    }
    const difference = Math.abs(prediction.probability - ref);
    if (difference > maxAbsDifference) {
      maxAbsDifference = difference;
      worstImageId = prediction.imageId;
    }
  });
  if (maxAbsDifference > toleranceProb) {
    throw new ExportParityError(
      `checkExportParity: the exported model differs from the in-memory model by ${maxAbsDifference.toExponential(2)} in probability on ${worstImageId}; ` +
        `expected at most ${toleranceProb} (export, preprocessing or weights do not match)`,
    );
  }
  return { maxAbsDifference, worstImageId, comparedCount: exported.length, toleranceProb };
}
