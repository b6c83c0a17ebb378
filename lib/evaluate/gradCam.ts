import sharp from "sharp";
import * as tf from "@tensorflow/tfjs";
import type { PixelTransform } from "../data/augment.js";
import { decodeImageRgb, type ResizePolicy } from "../data/decodeImage.js";
import { preprocessImages } from "../models/preprocess.js";
import { requireTfjsBackbone } from "../models/runtimeOnlyBackbone.js";
import type { Backbone } from "../models/types.js";
import { DIAGNOSIS_HEAD_LAYERS } from "../models/headLayers.js";
import { MelanomaLabError } from "../util/errors.js";

/** Thrown for Grad-CAM input that cannot be used: wrong pixel count or size, a head or backbone of an unsupported shape, a bad heatmap. */
export class GradCamError extends MelanomaLabError {}

/** What {@link computeGradCam} returns for one image. */
export interface GradCamResult {
  /**
   * Row-major [featureMapSizePx, featureMapSizePx] map in 0..1: ReLU of the gradient-weighted
   * sum of the feature-map channels, divided by its maximum (all zeros when nothing in the image
   * pushes the malignant logit up; see `camMax`).
   */
  heatmap: Float32Array;
  /** Side of the feature map in cells, e.g. 7 for MobileNetV2 `out_relu` at 224 px. */
  featureMapSizePx: number;
  /** Probability of malignant, the head's output for this image (the same as the feature pipeline's). */
  probability: number;
  /** The head's pre-sigmoid output: the malignant logit the gradients are taken of. */
  logit: number;
  /** Maximum of the ReLU'd map before normalising; 0 means the heatmap carries no evidence. */
  camMax: number;
}

/** Options of {@link renderGradCamOverlayPng}. */
export interface GradCamOverlayOptions {
  /** Weight of the colour map in the blend, 0 (image only) … 1 (colour map only). Default 0.4. */
  alpha?: number;
}

const featureMapModels = new WeakMap<tf.LayersModel, tf.LayersModel>();

function inputNameOf(layer: tf.layers.Layer): string {
  const input = layer.input;
  if (Array.isArray(input)) throw new GradCamError(`layer ${layer.name}: has ${input.length} inputs; expected one`);
  return input.name;
}

/** The sub-model backbone input → feature layer output, built once per backbone (it shares the backbone's weights). */
function featureMapModelOf(backbone: Backbone): tf.LayersModel {
  const cached = featureMapModels.get(backbone.model);
  if (cached) return cached;
  let featureLayer: tf.layers.Layer;
  try {
    featureLayer = backbone.model.getLayer(backbone.featureLayerName);
  } catch {
    throw new GradCamError(
      `backbone ${backbone.name}: featureLayerName ${JSON.stringify(backbone.featureLayerName)} is not a layer of backbone.model; expected the layer whose output is pooled into features`,
    );
  }
  const output = featureLayer.output;
  if (Array.isArray(output) || output.shape.length !== 4) {
    throw new GradCamError(
      `backbone ${backbone.name}: feature layer ${backbone.featureLayerName} output is ${Array.isArray(output) ? `${output.length} tensors` : `shape [${output.shape.join(", ")}]`}; expected one [n, h, w, channels] map`,
    );
  }
  const model = tf.model({ inputs: backbone.model.inputs, outputs: output, name: `${backbone.name}_feature_map` });
  featureMapModels.set(backbone.model, model);
  return model;
}

/**
 * The backbone's pooling layer (what comes after the feature layer): a single global pooling
 * layer whose input is the feature map, as {@link cutAtFeatureLayer} builds.
 */
function poolingLayerOf(backbone: Backbone): tf.layers.Layer {
  const layers = backbone.model.layers;
  const last = layers[layers.length - 1];
  const featureOutput = backbone.model.getLayer(backbone.featureLayerName).output as tf.SymbolicTensor;
  if (!/^Global(Average|Max)Pooling2D$/.test(last.getClassName()) || inputNameOf(last) !== featureOutput.name) {
    throw new GradCamError(
      `backbone ${backbone.name}: last layer is ${last.getClassName()} ${last.name} on ${inputNameOf(last)}; expected a global pooling layer on the feature layer ${backbone.featureLayerName} (as cutAtFeatureLayer builds)`,
    );
  }
  return last;
}

/**
 * A diagnosis-target head (trainHead's `diagnoses`) ends softmax → frozen sum of the malignant
 * columns, so its output is P(malignant) and the gradient of that saturates like a sigmoid's.
 * Its logit is the malignant log-odds from the diagnosis logits z, computed without the softmax:
 * log Σ_malignant e^z − log Σ_benign e^z (with two classes, exactly the binary logit).
 */
function diagnosisLogitFunctionOf(
  head: tf.LayersModel,
  sumLayer: tf.layers.Layer,
): (pooled: tf.Tensor2D) => tf.Tensor2D {
  const mask = Array.from(sumLayer.getWeights()[0].dataSync());
  const malignant = mask.flatMap((m, k) => (m === 1 ? [k] : []));
  const benign = mask.flatMap((m, k) => (m === 1 ? [] : [k]));
  if (malignant.length === 0 || benign.length === 0) {
    throw new GradCamError(
      `head ${head.name}: ${sumLayer.name} sums ${malignant.length} of ${mask.length} diagnosis classes; expected at least one malignant and one benign class`,
    );
  }
  // Walk this model's own graph back from its output (its layers may be shared with a triage model).
  let logitsTensor: tf.SymbolicTensor | undefined = head.outputs[0];
  while (logitsTensor && logitsTensor.sourceLayer.name !== DIAGNOSIS_HEAD_LAYERS.logits)
    logitsTensor = logitsTensor.inputs[0];
  if (!logitsTensor)
    throw new GradCamError(
      `head ${head.name}: no ${DIAGNOSIS_HEAD_LAYERS.logits} layer before ${sumLayer.name}; expected a diagnosis head as trainHead builds`,
    );
  const logits = tf.model({ inputs: head.inputs, outputs: logitsTensor, name: `${head.name}_diagnosis_logits` });
  return (pooled: tf.Tensor2D): tf.Tensor2D => {
    const z = logits.apply(pooled, { training: false }) as tf.Tensor2D;
    const logSumExpOf = (columns: number[]) => tf.logSumExp(tf.gather(z, tf.tensor1d(columns, "int32"), 1), 1, true);
    return tf.sub(logSumExpOf(malignant), logSumExpOf(benign)) as tf.Tensor2D;
  };
}

/**
 * Splits the head into "everything before the last dense layer" and that layer's kernel and
 * bias, so the logit is computed as h·kernel + bias. Taking the logit as log(p / (1 - p)) of
 * the sigmoid output instead would fail exactly where Grad-CAM is most wanted: for a confident
 * prediction float32 rounds p to 1 (logit ∞), and the gradient of p itself vanishes there
 * (dp/dz = p(1 - p) → 0), so the map would be empty or noise.
 */
const logitFunctions = new WeakMap<tf.LayersModel, (pooled: tf.Tensor2D) => tf.Tensor2D>();

function logitFunctionOf(head: tf.LayersModel): (pooled: tf.Tensor2D) => tf.Tensor2D {
  const cached = logitFunctions.get(head);
  if (cached) return cached;
  const layers = head.layers;
  const last = layers[layers.length - 1];
  if (last.name === DIAGNOSIS_HEAD_LAYERS.malignantSum) {
    const logitOf = diagnosisLogitFunctionOf(head, last);
    logitFunctions.set(head, logitOf);
    return logitOf;
  }
  const config = last.getConfig() as { activation?: unknown; units?: unknown; useBias?: unknown };
  if (
    last.getClassName() !== "Dense" ||
    config.units !== 1 ||
    (config.activation !== "sigmoid" && config.activation !== "linear")
  ) {
    throw new GradCamError(
      `head ${head.name}: last layer is ${last.getClassName()} ${last.name} (units ${String(config.units)}, activation ${String(config.activation)}); expected Dense with 1 unit and sigmoid (or linear) activation, as trainHead builds`,
    );
  }
  const headInput = head.inputs[0];
  // This model's own node (the layer may also be applied in a triage model built from the head).
  const beforeLast = head.outputs[0].inputs[0];
  // With no hidden layer the last dense reads the head input directly; a model input → input is not allowed.
  const body =
    beforeLast.name === headInput.name
      ? undefined
      : tf.model({ inputs: head.inputs, outputs: beforeLast, name: `${head.name}_body` });
  // Weights are read at call time so a head trained further after the first call is honoured.
  const logitOf = (pooled: tf.Tensor2D): tf.Tensor2D => {
    const weights = last.getWeights();
    const h = body ? (body.apply(pooled, { training: false }) as tf.Tensor2D) : pooled;
    const z = tf.matMul(h, weights[0] as tf.Tensor2D);
    return (config.useBias === false ? z : tf.add(z, weights[1])) as tf.Tensor2D;
  };
  logitFunctions.set(head, logitOf);
  return logitOf;
}

/**
 * Grad-CAM (Selvaraju et al. 2017) of the malignant logit for one image: the gradient of the
 * head's pre-sigmoid output with respect to the backbone's last convolutional feature map
 * (`backbone.featureLayerName`, e.g. MobileNetV2 `out_relu` 7×7×1280), averaged over space to
 * one weight per channel; the map is ReLU(Σ_k weight_k · map_k), divided by its maximum.
 *
 * Gradients flow only through the pooling and the dense head, never through a convolution, so
 * this works on the wasm backend (which has no conv gradient kernels). Because the backbone pools
 * by global average, every cell of a channel gets the same gradient: Grad-CAM here equals CAM
 * with the head linearised at this image.
 *
 * `rgbPixels` are 8-bit RGB (HWC) of one square image of `imageSizePx` = backbone.inputSizePx,
 * decoded as the feature pipeline does (e.g. `decodeImageRgb(file, backbone.inputSizePx)`), so
 * `probability` equals the pipeline's. Every intermediate tensor is disposed.
 *
 * @example
 * const rgb = await decodeImageRgb(record.imagePath, backbone.inputSizePx);
 * const cam = computeGradCam(backbone, head, rgb, backbone.inputSizePx);
 * // cam.heatmap: Float32Array(49) in 0..1, cam.featureMapSizePx 7, cam.probability 0.83
 */
export function computeGradCam(
  backbone: Backbone,
  head: tf.LayersModel,
  rgbPixels: Uint8Array,
  imageSizePx: number,
): GradCamResult {
  requireTfjsBackbone(backbone, "Grad-CAM");
  if (imageSizePx !== backbone.inputSizePx) {
    throw new GradCamError(
      `imageSizePx: received ${imageSizePx}; ${backbone.name} needs ${backbone.inputSizePx} (decode with decodeImageRgb(file, backbone.inputSizePx) so the probability matches the feature pipeline)`,
    );
  }
  const expectedBytes = imageSizePx * imageSizePx * 3;
  if (rgbPixels.length !== expectedBytes) {
    throw new GradCamError(
      `rgbPixels: received ${rgbPixels.length} bytes; expected ${imageSizePx} × ${imageSizePx} × 3 = ${expectedBytes} (one RGB image, HWC)`,
    );
  }
  const featureMapModel = featureMapModelOf(backbone);
  const pooling = poolingLayerOf(backbone);
  const logitOf = logitFunctionOf(head);
  const scalarLogitOf = (map: tf.Tensor): tf.Scalar => tf.sum(logitOf(pooling.apply(map) as tf.Tensor2D));

  const { cam, logit } = tf.tidy(() => {
    const x = preprocessImages(rgbPixels, 1, imageSizePx, backbone.preprocessing);
    const map = featureMapModel.predict(x) as tf.Tensor4D;
    const gradient = tf.grad(scalarLogitOf)(map) as tf.Tensor4D;
    const channelWeights = tf.mean(gradient, [1, 2], true); // [1, 1, 1, channels]
    return {
      cam: tf.relu(tf.sum(tf.mul(map, channelWeights), -1)).squeeze([0]) as tf.Tensor2D,
      logit: scalarLogitOf(map),
    };
  });
  const [heightCells, widthCells] = cam.shape;
  const values = cam.dataSync() as Float32Array;
  const logitValue = logit.dataSync()[0];
  tf.dispose([cam, logit]);
  if (heightCells !== widthCells) {
    throw new GradCamError(
      `backbone ${backbone.name}: feature map is ${heightCells}×${widthCells}; expected a square map from a square input`,
    );
  }
  let camMax = 0;
  for (const v of values) if (v > camMax) camMax = v;
  const heatmap = new Float32Array(values.length);
  if (camMax > 0) for (let i = 0; i < values.length; i++) heatmap[i] = values[i] / camMax;
  return {
    heatmap,
    featureMapSizePx: heightCells,
    probability: 1 / (1 + Math.exp(-logitValue)),
    logit: logitValue,
    camMax,
  };
}

/**
 * The "jet" colour map: 0 → dark blue, 0.5 → green, 1 → dark red. Returns 8-bit [r, g, b].
 *
 * @example mapJetColour(1) // [128, 0, 0]
 */
export function mapJetColour(value: number): [number, number, number] {
  const t = Math.min(1, Math.max(0, value));
  const channel = (centre: number) => Math.round(255 * Math.min(1, Math.max(0, 1.5 - Math.abs(4 * t - centre))));
  return [channel(3), channel(2), channel(1)];
}

/**
 * Draws a Grad-CAM heatmap over its image and returns PNG bytes (imageSizePx square): the
 * [featureMapSizePx²] heatmap is upsampled bilinearly to the image by sharp, coloured with the
 * jet map (blue = no evidence, red = strongest evidence for malignant) and alpha-blended:
 * out = (1 - alpha) · image + alpha · colour.
 *
 * @example
 * const png = await renderGradCamOverlayPng(rgb, 224, cam.heatmap, cam.featureMapSizePx, { alpha: 0.4 });
 * showPng(png, "Grad-CAM");
 */
export async function renderGradCamOverlayPng(
  rgbPixels: Uint8Array,
  imageSizePx: number,
  heatmap: Float32Array | readonly number[],
  featureMapSizePx: number,
  options: GradCamOverlayOptions = {},
): Promise<Uint8Array> {
  const overlay = await blendGradCamOverlay(rgbPixels, imageSizePx, heatmap, featureMapSizePx, options);
  const png = await sharp(Buffer.from(overlay.buffer, overlay.byteOffset, overlay.length), {
    raw: { width: imageSizePx, height: imageSizePx, channels: 3 },
  })
    .png()
    .toBuffer();
  return new Uint8Array(png.buffer, png.byteOffset, png.length);
}

/** The blended RGB pixels of {@link renderGradCamOverlayPng} before PNG encoding (imageSizePx² × 3 bytes). */
export async function blendGradCamOverlay(
  rgbPixels: Uint8Array,
  imageSizePx: number,
  heatmap: Float32Array | readonly number[],
  featureMapSizePx: number,
  options: GradCamOverlayOptions = {},
): Promise<Uint8Array> {
  const alpha = options.alpha ?? 0.4;
  if (!(alpha >= 0 && alpha <= 1)) throw new GradCamError(`alpha: received ${alpha}; expected a number in [0, 1]`);
  if (!(Number.isInteger(imageSizePx) && imageSizePx > 0) || rgbPixels.length !== imageSizePx * imageSizePx * 3) {
    throw new GradCamError(
      `rgbPixels: received ${rgbPixels.length} bytes for imageSizePx ${imageSizePx}; expected imageSizePx² × 3 = ${imageSizePx * imageSizePx * 3}`,
    );
  }
  if (
    !(Number.isInteger(featureMapSizePx) && featureMapSizePx > 0) ||
    heatmap.length !== featureMapSizePx * featureMapSizePx
  ) {
    throw new GradCamError(
      `heatmap: received ${heatmap.length} values for featureMapSizePx ${featureMapSizePx}; expected featureMapSizePx² = ${featureMapSizePx * featureMapSizePx}`,
    );
  }
  const heat8 = new Uint8Array(heatmap.length);
  for (let i = 0; i < heatmap.length; i++) {
    const v = heatmap[i];
    if (!(v >= 0 && v <= 1))
      throw new GradCamError(`heatmap[${i}] is ${v}; expected a value in [0, 1] (as computeGradCam returns)`);
    heat8[i] = Math.round(v * 255);
  }
  // "b-w" keeps one channel: without it sharp returns the grey map as 3-channel sRGB.
  const { data: upsampled, info } = await sharp(Buffer.from(heat8.buffer), {
    raw: { width: featureMapSizePx, height: featureMapSizePx, channels: 1 },
  })
    .resize(imageSizePx, imageSizePx, { kernel: "linear", fit: "fill" })
    .toColourspace("b-w")
    .raw()
    .toBuffer({ resolveWithObject: true });
  if (info.channels !== 1 || upsampled.length !== imageSizePx * imageSizePx) {
    throw new GradCamError(
      `upsampled heatmap is ${info.width}×${info.height}×${info.channels}; expected ${imageSizePx}×${imageSizePx}×1`,
    );
  }
  const palette = Array.from({ length: 256 }, (_, v) => mapJetColour(v / 255));
  const out = new Uint8Array(rgbPixels.length);
  for (let p = 0; p < imageSizePx * imageSizePx; p++) {
    const colour = palette[upsampled[p]];
    for (let c = 0; c < 3; c++) out[3 * p + c] = Math.round((1 - alpha) * rgbPixels[3 * p + c] + alpha * colour[c]);
  }
  return out;
}

/** One image explained by {@link explainImageWithGradCam}. */
export interface ExplainedImage extends GradCamResult {
  /** The image with its Grad-CAM overlay, PNG bytes, backbone.inputSizePx square. */
  overlayPng: Uint8Array;
  /** The image as the model saw it (decoded, then the pixel transform), 8-bit RGB HWC, backbone.inputSizePx square. */
  rgbPixels: Uint8Array;
}

/**
 * The pixels the model sees for an image file, as extractFeatures makes them: decoded to
 * `backbone.inputSizePx` square by `resizePolicy` (default "center-crop"), then the run's
 * `pixelTransform` (e.g. Shades of Gray colour constancy) when it has one. 8-bit RGB HWC.
 *
 * @example const rgb = await decodeImageForModel(record.imagePath, backbone, { pixelTransform });
 */
export async function decodeImageForModel(
  imagePath: string,
  backbone: Pick<Backbone, "inputSizePx">,
  options: { resizePolicy?: ResizePolicy; pixelTransform?: PixelTransform } = {},
): Promise<Uint8Array> {
  const rgb = await decodeImageRgb(imagePath, backbone.inputSizePx, options.resizePolicy ?? "center-crop");
  return options.pixelTransform ? options.pixelTransform.apply(rgb, backbone.inputSizePx) : rgb;
}

/**
 * Decodes an image file as the feature pipeline does ({@link decodeImageForModel}: with the
 * run's pixel transform, so the overlay shows what the model saw), computes its Grad-CAM
 * ({@link computeGradCam}) and renders the overlay ({@link renderGradCamOverlayPng}).
 *
 * @example
 * const explained = await explainImageWithGradCam(backbone, head, record.imagePath);
 * showPng(explained.overlayPng, `p(malignant) = ${explained.probability.toFixed(3)}`);
 */
export async function explainImageWithGradCam(
  backbone: Backbone,
  head: tf.LayersModel,
  imagePath: string,
  options: GradCamOverlayOptions & { resizePolicy?: ResizePolicy; pixelTransform?: PixelTransform } = {},
): Promise<ExplainedImage> {
  const rgbPixels = await decodeImageForModel(imagePath, backbone, options);
  const cam = computeGradCam(backbone, head, rgbPixels, backbone.inputSizePx);
  const overlayPng = await renderGradCamOverlayPng(
    rgbPixels,
    backbone.inputSizePx,
    cam.heatmap,
    cam.featureMapSizePx,
    options,
  );
  return { ...cam, overlayPng, rgbPixels };
}
