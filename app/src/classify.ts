/**
 * On-device inference for the phone app: decode a photo in the browser, resize it as sharp does
 * (./sharpResize.ts), apply the model's preprocessing (lib/models/preprocess.ts, pure) and run the
 * exported tfjs model. Imports from lib only modules without node built-ins.
 */
import * as tf from "@tensorflow/tfjs";
import { createTtaVariants } from "../../lib/data/augment.js";
import { preprocessToFloat32 } from "../../lib/models/preprocess.js";
import type { PreprocessingSpec } from "../../lib/models/types.js";
import type { TriageModelMetadata } from "../../lib/export/triageModel.js";
import { resizeSquareLikeSharp, type PixelImage } from "./sharpResize.js";

/** One model input: its square side in pixels and its preprocessing (one per ensemble member). */
export interface ModelInputSpec {
  inputSizePx: number;
  preprocessing: PreprocessingSpec;
}

/** The inputs of an exported model in input order: the ensemble members, else the one backbone. */
export function listModelInputs(metadata: TriageModelMetadata): ModelInputSpec[] {
  if (metadata.ensembleMembers && metadata.ensembleMembers.length > 0) {
    return metadata.ensembleMembers.map((m) => ({ inputSizePx: m.inputSizePx, preprocessing: m.preprocessing }));
  }
  return [{ inputSizePx: metadata.inputSizePx, preprocessing: metadata.preprocessing }];
}

/**
 * Decodes an image file in the browser to full-size RGBA pixels, EXIF orientation applied and
 * no colour-profile conversion (sharp's raw output does not convert embedded profiles either).
 */
export async function decodePhoto(file: Blob): Promise<PixelImage> {
  const bitmap = await createImageBitmap(file, {
    colorSpaceConversion: "none",
    premultiplyAlpha: "none",
    imageOrientation: "from-image",
  });
  const canvas = new OffscreenCanvas(bitmap.width, bitmap.height);
  const ctx = canvas.getContext("2d", { willReadFrequently: true });
  if (!ctx) throw new Error("this browser has no 2D canvas to read the photo's pixels");
  ctx.drawImage(bitmap, 0, 0);
  const { data } = ctx.getImageData(0, 0, bitmap.width, bitmap.height);
  const image: PixelImage = { width: bitmap.width, height: bitmap.height, channels: 4, data };
  bitmap.close();
  return image;
}

/** P(malignant) for the photo (view 0, as `npm run score`) and for each of its 8 dihedral views. */
export interface PhotoScore {
  probability: number;
  viewProbabilities: number[];
  /** Milliseconds of the model call (views included), preprocessing excluded. */
  inferenceMs: number;
}

/**
 * Scores one decoded photo: the 8 flipped/rotated views go through the model as one batch; view 0
 * is the photo itself.
 *
 * @example const score = await scorePhoto(model, metadata, await decodePhoto(file)); // { probability: 0.31, … }
 */
export async function scorePhoto(
  model: tf.LayersModel,
  metadata: TriageModelMetadata,
  image: PixelImage,
  options: { views?: number } = {},
): Promise<PhotoScore> {
  const views = options.views ?? 8;
  const inputs = listModelInputs(metadata).map(({ inputSizePx, preprocessing }) => {
    const rgb = resizeSquareLikeSharp(image, inputSizePx, metadata.resizePolicy);
    const variants = createTtaVariants(rgb, inputSizePx, { variantCount: views });
    const batch = new Float32Array(views * inputSizePx * inputSizePx * 3);
    variants.forEach((v, i) => batch.set(preprocessToFloat32(v, preprocessing), i * v.length));
    return tf.tensor4d(batch, [views, inputSizePx, inputSizePx, 3]);
  });
  const start = performance.now();
  const output = model.predict(inputs.length === 1 ? inputs[0] : inputs) as tf.Tensor;
  const values = Array.from(await output.data());
  const inferenceMs = performance.now() - start;
  output.dispose();
  inputs.forEach((t) => t.dispose());
  return { probability: values[0], viewProbabilities: values, inferenceMs };
}
