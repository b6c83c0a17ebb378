/**
 * On-device inference for the phone app: decode a photo in the browser, resize it as sharp does
 * (./sharpResize.ts), apply the model's preprocessing (lib/models/preprocess.ts, pure) and run the
 * exported model with tfjs or ONNX Runtime web (./onnxModel.ts). Imports from lib only modules without node built-ins.
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
 * A loaded model of either runtime: runs one batch of preprocessed NHWC float32 views, one array
 * per model input (ensemble members in metadata order), and returns P(malignant) per view.
 */
export interface PhotoModel {
  /** "tfjs" or "onnx", for the page and the benchmark. */
  runtime: "tfjs" | "onnx";
  run(inputs: { values: Float32Array; sizePx: number }[], views: number): Promise<Float32Array>;
  /** Frees the model's memory (tfjs weights or the ONNX Runtime session). */
  release(): Promise<void>;
}

/**
 * Wraps a tfjs layers model as a {@link PhotoModel}; input and output tensors are disposed after each run.
 *
 * @example const photoModel = wrapTfjsModel(await tf.loadLayersModel("./model/model.json"));
 */
export function wrapTfjsModel(model: tf.LayersModel): PhotoModel {
  return {
    runtime: "tfjs",
    async run(inputs, views) {
      const tensors = inputs.map(({ values, sizePx }) => tf.tensor4d(values, [views, sizePx, sizePx, 3]));
      try {
        const output = model.predict(tensors.length === 1 ? tensors[0] : tensors) as tf.Tensor;
        try {
          return (await output.data()) as Float32Array;
        } finally {
          output.dispose();
        }
      } finally {
        tensors.forEach((t) => t.dispose());
      }
    },
    async release() {
      model.dispose();
    },
  };
}

/**
 * Preprocesses one decoded photo for every model input: the first `views` flipped/rotated views
 * (view 0 is the photo itself), resized as sharp does, packed as one NHWC float32 batch per input.
 */
export function preparePhotoViews(
  metadata: TriageModelMetadata,
  image: PixelImage,
  views: number,
): { values: Float32Array; sizePx: number }[] {
  return listModelInputs(metadata).map(({ inputSizePx, preprocessing }) => {
    const rgb = resizeSquareLikeSharp(image, inputSizePx, metadata.resizePolicy);
    const variants = createTtaVariants(rgb, inputSizePx, { variantCount: views });
    const batch = new Float32Array(views * inputSizePx * inputSizePx * 3);
    variants.forEach((v, i) => batch.set(preprocessToFloat32(v, preprocessing), i * v.length));
    return { values: batch, sizePx: inputSizePx };
  });
}

/**
 * Scores one decoded photo with either runtime: the 8 flipped/rotated views go through the model
 * as one batch; view 0 is the photo itself.
 *
 * @example const score = await scorePhoto(photoModel, metadata, await decodePhoto(file)); // { probability: 0.31, … }
 */
export async function scorePhoto(
  model: PhotoModel,
  metadata: TriageModelMetadata,
  image: PixelImage,
  options: { views?: number } = {},
): Promise<PhotoScore> {
  const views = options.views ?? 8;
  const inputs = preparePhotoViews(metadata, image, views);
  const start = performance.now();
  const values = Array.from(await model.run(inputs, views));
  const inferenceMs = performance.now() - start;
  if (values.length !== views) {
    throw new Error(
      `the ${model.runtime} model returned ${values.length} probabilities; expected one per view (${views})`,
    );
  }
  return { probability: values[0], viewProbabilities: values, inferenceMs };
}
