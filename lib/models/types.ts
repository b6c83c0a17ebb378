import type * as tf from "@tensorflow/tfjs";

/**
 * How pixels (0..255 RGB) become model input, recorded with exported models so inference
 * repeats it exactly.
 * - "scale": x * scale + offset per channel (Keras MobileNet/Inception: scale 1/127.5, offset -1;
 *   the nsfwjs-tuned models: scale 1/255, offset 0).
 * - "caffe": RGB→BGR then subtract ImageNet channel means (Keras VGG16).
 */
export type PreprocessingSpec =
  | { kind: "scale"; scale: number; offset: number }
  | { kind: "caffe"; meanBgr: [number, number, number] };

/**
 * A pretrained feature extractor cut before its classification head.
 * `model` maps a float batch [n, inputSizePx, inputSizePx, 3] (already preprocessed) to
 * pooled features [n, featureDim].
 */
export interface Backbone {
  /** Registry name, e.g. "mobilenet_v2". */
  name: string;
  inputSizePx: number;
  /** Name of the layer whose output is pooled into features, e.g. "out_relu". */
  featureLayerName: string;
  featureDim: number;
  preprocessing: PreprocessingSpec;
  model: tf.LayersModel;
  /** Stable id of the weights (source + content hash) for cache keys. */
  weightsId: string;
  /** Where the weights came from (package path, URL or folder), for reports. */
  weightsSource?: string;
  /** Milliseconds spent reading and building the model (no warm-up forward pass). */
  loadMs?: number;
  /** Multiply-adds of one forward pass of `model` for one image (conv + dense layers). */
  multiplyAddsPerImage?: number;
}
