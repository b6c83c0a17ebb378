import type * as tf from "@tensorflow/tfjs";

/**
 * How pixels (0..255 RGB) become model input, recorded with exported models so inference
 * repeats it exactly.
 * - "scale": x * scale + offset per channel (Keras MobileNet/Inception: scale 1/127.5, offset -1;
 *   the nsfwjs-tuned models: scale 1/255, offset 0).
 * - "caffe": RGB→BGR then subtract ImageNet channel means (Keras VGG16).
 * - "normalize": RGB scaled to 0..1, then (x − mean[c]) / std[c] per channel (torchvision and the
 *   ONNX model zoo's ImageNet models: mean [0.485, 0.456, 0.406], std [0.229, 0.224, 0.225]).
 */
export type PreprocessingSpec =
  | { kind: "scale"; scale: number; offset: number }
  | { kind: "caffe"; meanBgr: [number, number, number] }
  | { kind: "normalize"; mean: [number, number, number]; std: [number, number, number] };

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
  /**
   * The same network as an ONNX file, when the backbone came from one (or was exported to one):
   * feature extraction may run it through ONNX Runtime instead of `model` (see lib/backend's
   * runtime selection). Input is the preprocessed batch in `layout`; `outputName` gives the
   * pooled features [n, featureDim].
   */
  onnx?: BackboneOnnxFile;
}

/**
 * A frozen feature extractor that runs only on ONNX Runtime: an ONNX graph the tfjs importer
 * cannot convert (e.g. the zoo's int8 MobileNetV2, made of QLinearConv). It has no tfjs `model`,
 * so fine-tuning, Grad-CAM and tfjs export are not available (they throw OnnxRuntimeOnlyError);
 * extractFeatures and the feature cache accept it.
 */
export interface OnnxRuntimeOnlyBackbone extends Omit<Backbone, "model" | "onnx"> {
  model?: undefined;
  /** The features-only ONNX file ONNX Runtime runs (outputName gives [n, featureDim]). */
  onnx: BackboneOnnxFile;
  /** Why there is no tfjs model (the importer's error message). */
  tfjsUnavailableReason: string;
}

/** What feature extraction accepts: a tfjs backbone (maybe with an ONNX twin) or an ONNX-Runtime-only one. */
export type FeatureBackbone = Backbone | OnnxRuntimeOnlyBackbone;

/** An ONNX file holding a backbone's network, for {@link Backbone.onnx}. */
export interface BackboneOnnxFile {
  /** Absolute path of the .onnx file. */
  path: string;
  /** sha256 of the file's bytes (hex). */
  sha256: string;
  inputName: string;
  /** Name of the output holding the pooled features [n, featureDim]. */
  outputName: string;
  /** Axis order of the input tensor: "NCHW" (the ONNX model zoo) or "NHWC". */
  layout: "NCHW" | "NHWC";
}
