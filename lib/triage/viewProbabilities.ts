import path from "node:path";
import * as tf from "@tensorflow/tfjs";
import { createTtaVariants, TTA_DIHEDRAL_VIEWS } from "../data/augment.js";
import { decodeImageRgb, ImageDecodeError } from "../data/decodeImage.js";
import type { LoadedTriageModel } from "../export/triageModel.js";
import { preprocessToFloat32 } from "../models/preprocess.js";
import { TriagePolicyError } from "./triagePolicy.js";

/** One image scored on its dihedral test-time views. */
export interface ViewProbabilities {
  imageId: string;
  /** Mean raw P(malignant) over the views. */
  probability: number;
  /** Raw P(malignant) of each view, in TTA_DIHEDRAL_VIEWS order (view 0 is the image itself). */
  viewProbabilities: number[];
}

/**
 * Scores one image file on its first `views` exact dihedral views (flips and 90° turns,
 * TTA_DIHEDRAL_VIEWS order, default all 8) with an exported triage model, decoded and
 * preprocessed as its metadata says (each ensemble member at its own size), in one batch.
 * Feed the result to decideTriage for an interval. Throws ImageDecodeError for an unreadable
 * image and {@link TriagePolicyError} for `views` outside 1–8.
 *
 * @example const v = await predictDihedralViewProbabilities(loaded, "lesion.jpg"); decideTriage(policy, { probability: v.probability, views: v.viewProbabilities })
 */
export async function predictDihedralViewProbabilities(
  loaded: LoadedTriageModel,
  imagePath: string,
  options: { views?: number } = {},
): Promise<ViewProbabilities> {
  const views = options.views ?? TTA_DIHEDRAL_VIEWS.length;
  if (!(Number.isInteger(views) && views >= 1 && views <= TTA_DIHEDRAL_VIEWS.length)) {
    throw new TriagePolicyError(`views: received ${views}, expected a whole number 1–${TTA_DIHEDRAL_VIEWS.length}`);
  }
  const { metadata } = loaded;
  const inputs = metadata.ensembleMembers ?? [
    { inputSizePx: metadata.inputSizePx, preprocessing: metadata.preprocessing },
  ];
  const variantsBySize = new Map<number, Uint8Array[]>();
  for (const { inputSizePx } of inputs) {
    if (variantsBySize.has(inputSizePx)) continue;
    let rgb: Uint8Array;
    try {
      rgb = await decodeImageRgb(imagePath, inputSizePx, metadata.resizePolicy);
    } catch (err) {
      if (err instanceof ImageDecodeError) throw err;
      throw new ImageDecodeError(imagePath, err instanceof Error ? err.message : String(err));
    }
    variantsBySize.set(inputSizePx, createTtaVariants(rgb, inputSizePx, { variantCount: views }));
  }
  const xs = inputs.map(({ inputSizePx, preprocessing }) => {
    const perView = inputSizePx * inputSizePx * 3;
    const packed = new Uint8Array(views * perView);
    variantsBySize.get(inputSizePx)!.forEach((v, i) => packed.set(v, i * perView));
    return tf.tensor4d(preprocessToFloat32(packed, preprocessing), [views, inputSizePx, inputSizePx, 3], "float32");
  });
  let viewProbabilities: number[];
  try {
    const y = tf.tidy(() => loaded.model.predict(xs.length === 1 ? xs[0] : xs) as tf.Tensor);
    viewProbabilities = Array.from(y.dataSync());
    y.dispose();
  } finally {
    tf.dispose(xs);
  }
  return {
    imageId: path.basename(imagePath).replace(/\.[^.]+$/, ""),
    probability: viewProbabilities.reduce((a, b) => a + b, 0) / views,
    viewProbabilities,
  };
}
