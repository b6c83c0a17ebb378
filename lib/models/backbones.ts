import crypto from "node:crypto";
import { createRequire } from "node:module";
import fs from "node:fs";
import path from "node:path";
import * as tf from "@tensorflow/tfjs";
import { UnknownNameError } from "../util/errors.js";
import { findProjectRoot } from "../util/paths.js";
import { BackboneLoadError, cutAtFeatureLayer } from "./cutBackbone.js";
import { loadMobilenetV1Backbone } from "./mobilenetV1.js";
import { loadOnnxBackbone, loadOnnxRuntimeBackbone, loadOnnxZooBackbone } from "./onnxBackbone.js";
import { OnnxImportError } from "./onnxImport.js";
import { describeOnnxRuntimeOnly } from "./runtimeOnlyBackbone.js";
import { describePreprocessing } from "./preprocess.js";
import type { Backbone, FeatureBackbone, PreprocessingSpec } from "./types.js";
import { loadVgg16Backbone } from "./vgg16.js";

/** Names {@link loadBackbone} accepts. */
export const BACKBONE_NAMES = [
  "mobilenet_v2",
  "inception_v3",
  "mobilenet_v1",
  "vgg16",
  "mobilenet_v2_imagenet",
  "resnet50_v2_imagenet",
  "efficientnet_lite4_imagenet",
] as const;

/** One of {@link BACKBONE_NAMES}, or `onnx:<path>` (any ONNX image model, see {@link loadBackbone}). */
export type BackboneName = (typeof BACKBONE_NAMES)[number] | `onnx:${string}`;

/** Options of {@link loadBackbone}. */
export interface LoadBackboneOptions {
  /** mobilenet_v1 only: width multiplier 0.25, 0.5, 0.75 or 1.0 (default 1.0). */
  alpha?: number;
  /** mobilenet_v1, vgg16: folder of downloaded weights (default `MELANOMA_LAB_WEIGHTS_DIR` or <root>/.cache/weights). */
  weightsCacheDir?: string;
  /** mobilenet_v1 only: base URL of the hosted models (default storage.googleapis.com/tfjs-models/tfjs). */
  baseUrl?: string;
  /**
   * vgg16: a local copy of Keras's vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5;
   * mobilenet_v2_imagenet, resnet50_v2_imagenet, efficientnet_lite4_imagenet: a local .onnx file (skips cache and download).
   */
  weightsPath?: string;
  /**
   * vgg16: URL of the .h5 to download when the cache lacks it (default keras-applications on
   * storage.googleapis.com); the ONNX model zoo backbones: URL of the .onnx (default the zoo's).
   */
  weightsUrl?: string;
  /** vgg16 only: input size in pixels (default 224). */
  inputSizePx?: number;
  /** vgg16 only: filter-count multiplier matching the weights file (default 1, the real VGG16). */
  filtersScale?: number;
  /**
   * mobilenet_v2, inception_v3, mobilenet_v2_imagenet, onnx:<path>: pool this layer instead of
   * the default feature layer, e.g. "block_16_expand_relu" (an earlier layer is less tuned to the
   * task the weights were trained on; imported ONNX models name layers after their nodes, e.g.
   * "conv_94"). An unknown name throws {@link UnknownNameError} listing the layers.
   */
  featureLayerName?: string;
  /** onnx:<path> only: the ONNX value holding the features (default: the output `features`, else the last global pooling, else the graph's only output; a 4-D map is average-pooled). */
  onnxOutputName?: string;
  /** onnx:<path> only: input preprocessing (default ImageNet "normalize": mean [0.485, 0.456, 0.406], std [0.229, 0.224, 0.225]). */
  preprocessing?: PreprocessingSpec;
  /** ONNX backbones: where a features-only cut of the file for ONNX Runtime is written (default <root>/.cache/onnx). */
  onnxCacheDir?: string;
}

/**
 * nsfwjs's MobileNetV2/InceptionV3 divide pixels by 255 before inference
 * (`img.toFloat().div(255)` in nsfwjs/dist/cjs/core.js), so their tuned weights expect [0, 1].
 */
const NSFWJS_PREPROCESSING: PreprocessingSpec = { kind: "scale", scale: 1 / 255, offset: 0 };

interface NsfwjsBackboneSpec {
  folder: string;
  inputSizePx: number;
  featureLayerName: string;
}

const NSFWJS_BACKBONES: Record<"mobilenet_v2" | "inception_v3", NsfwjsBackboneSpec> = {
  // out_relu [7,7,1280] is the last activation before nsfwjs's pooling + dense NSFW classifier.
  mobilenet_v2: { folder: "mobilenet_v2", inputSizePx: 224, featureLayerName: "out_relu" },
  // mixed10 [8,8,2048] is the last Inception block before the pooling + dense classifier.
  inception_v3: { folder: "inception_v3", inputSizePx: 299, featureLayerName: "mixed10" },
};

/**
 * Parses a backbone name (case-insensitive; `onnx:<path>` keeps the path as given), throwing
 * {@link UnknownNameError} with the valid names and the nearest one otherwise.
 *
 * @example parseBackboneName("MobileNet_V2") // "mobilenet_v2"
 * @example parseBackboneName("onnx:models/resnet50.onnx") // "onnx:models/resnet50.onnx"
 */
export function parseBackboneName(name: string): BackboneName {
  const trimmed = name.trim();
  if (/^onnx:/i.test(trimmed)) {
    const file = trimmed.slice("onnx:".length);
    if (file === "") throw new UnknownNameError("backbone", name, [...BACKBONE_NAMES, "onnx:<path of an .onnx file>"]);
    return `onnx:${file}`;
  }
  const lower = trimmed.toLowerCase();
  const found = BACKBONE_NAMES.find((n) => n === lower);
  if (!found) throw new UnknownNameError("backbone", name, BACKBONE_NAMES);
  return found;
}

/**
 * Loads a pretrained backbone cut before its classification head, with global average pooling
 * on the feature layer: `model` maps [n, size, size, 3] preprocessed floats to [n, featureDim].
 * - "mobilenet_v2": nsfwjs 4.4.0 weights (ImageNet, then tuned on NSFW classes), 224 px,
 *   features from `out_relu` → 1280.
 * - "inception_v3": nsfwjs weights, 299 px, `mixed10` → 2048.
 * - "mobilenet_v1": ImageNet weights from tfjs-models (downloaded once, then cached), 224 px,
 *   `conv_pw_13_relu` → 1024 × alpha; alpha 1.0 falls back to a local `mobilenet_v1_1.0_224_notop/`
 *   mirror cut at `conv_dw_13_relu` → 1024 (see {@link loadMobilenetV1Backbone}).
 * - "vgg16": Keras's ImageNet weights read from its notop .h5 file (local path, cache, or a
 *   one-time download), 224 px, caffe preprocessing, `block5_conv3` → 512 (see {@link loadVgg16Backbone}).
 * - "mobilenet_v2_imagenet": the ONNX model zoo's MobileNetV2-1.0 (ImageNet only), imported from
 *   ONNX to tfjs, 224 px, ImageNet "normalize" preprocessing, 1280 features; the .onnx comes from
 *   `weightsPath`, the weights cache / `MELANOMA_LAB_WEIGHTS_DIR` mirror, or a one-time download
 *   (see loadOnnxZooBackbone); `backbone.onnx` lets ONNX Runtime run the file.
 * - "resnet50_v2_imagenet": the ONNX model zoo's ResNet50-v2 (resnet50-v2-7.onnx), as above:
 *   224 px, ImageNet "normalize", 2048 features (the last GlobalAveragePool); the download is
 *   checked against the zoo's published sha256.
 * - "efficientnet_lite4_imagenet": the zoo's EfficientNet-Lite4 (efficientnet-lite4-11.onnx,
 *   NHWC input), 224 px, (x − 127) / 128, 1280 features (the last global pooling); its sha256 is
 *   recorded on first download and checked afterwards.
 * - "onnx:<path>": any ONNX image model with one RGB square input (NCHW [N, 3, S, S] or NHWC
 *   [N, S, S, 3]), imported to tfjs: S px, preprocessing `options.preprocessing` (default
 *   ImageNet "normalize"), features = `options.onnxOutputName` (any graph value), else the output
 *   `features`, else the last global pooling, else the graph's only output, average-pooled when
 *   4-D (see {@link loadOnnxBackbone}). The op set is that of importOnnxModel
 *   (lib/models/onnxImport.ts); anything else throws OnnxImportError (loadFeatureBackbone then
 *   runs the file on ONNX Runtime only).
 * Call `await selectBackend()` first. Unknown names throw {@link UnknownNameError}.
 *
 * @example
 * await selectBackend();
 * const backbone = await loadBackbone("mobilenet_v2"); // backbone.featureDim === 1280
 */
export async function loadBackbone(name: string, options: LoadBackboneOptions = {}): Promise<Backbone> {
  const parsed = parseBackboneName(name);
  if (parsed.startsWith("onnx:")) {
    return loadOnnxBackbone(parsed.slice("onnx:".length), {
      outputName: options.onnxOutputName,
      preprocessing: options.preprocessing,
      featureLayerName: options.featureLayerName,
      onnxCacheDir: options.onnxCacheDir,
    });
  }
  if (parsed === "mobilenet_v2_imagenet" || parsed === "resnet50_v2_imagenet" || parsed === "efficientnet_lite4_imagenet") {
    return loadOnnxZooBackbone(parsed, options);
  }
  if (parsed === "mobilenet_v1") {
    return loadMobilenetV1Backbone(options);
  }
  if (parsed === "vgg16") {
    return loadVgg16Backbone(options);
  }
  return loadNsfwjsBackbone(parsed as "mobilenet_v2" | "inception_v3", options.featureLayerName);
}

/**
 * {@link loadBackbone} for feature extraction only: an `onnx:<path>` model the tfjs importer cannot
 * convert (e.g. the zoo's int8 MobileNetV2) still loads, as an ONNX-Runtime-only backbone
 * (features = its last global pooling; see loadOnnxRuntimeBackbone), and one line says so
 * (`log`, default console.log). extractFeatures and the feature cache accept it; fine-tuning,
 * Grad-CAM and tfjs export throw OnnxRuntimeOnlyError on it. Every other name loads as in
 * {@link loadBackbone}.
 *
 * @example
 * const b = await loadFeatureBackbone("onnx:../shared/weights/mobilenet_v2_1.0_imagenet_int8/mobilenetv2-12-int8.onnx");
 * // onnx:/…/mobilenetv2-12-int8.onnx: features on ONNX Runtime only (…); fine-tuning, Grad-CAM and tfjs export are not available
 */
export async function loadFeatureBackbone(name: string, options: LoadBackboneOptions = {}, log: (line: string) => void = console.log): Promise<FeatureBackbone> {
  const parsed = parseBackboneName(name);
  try {
    return await loadBackbone(parsed, options);
  } catch (err) {
    if (!(err instanceof OnnxImportError) || !parsed.startsWith("onnx:") || options.onnxOutputName !== undefined || options.featureLayerName !== undefined) throw err;
    const backbone = await loadOnnxRuntimeBackbone(parsed.slice("onnx:".length), {
      preprocessing: options.preprocessing,
      onnxCacheDir: options.onnxCacheDir,
      tfjsUnavailableReason: err.message,
    });
    log(describeOnnxRuntimeOnly(backbone));
    return backbone;
  }
}

function nsfwjsModelsDir(): string {
  const req = createRequire(path.join(findProjectRoot(), "package.json"));
  let entry: string;
  try {
    entry = req.resolve("nsfwjs");
  } catch {
    throw new BackboneLoadError("package nsfwjs is not installed (expected nsfwjs 4.4.0 in node_modules; it ships the MobileNetV2/InceptionV3 weights)");
  }
  // The entry is <pkg>/dist/cjs/index.js and the models live in <pkg>/dist/models; the
  // package's "exports" map hides them, so they are required by absolute path.
  return path.join(path.dirname(entry), "..", "models");
}

interface NsfwjsModelJson {
  modelTopology: object;
  weightsManifest: { paths: string[]; weights: tf.io.WeightsManifestEntry[] }[];
}

async function loadNsfwjsBackbone(name: "mobilenet_v2" | "inception_v3", featureLayerName: string | undefined): Promise<Backbone> {
  const spec = NSFWJS_BACKBONES[name];
  const started = performance.now();
  const dir = path.join(nsfwjsModelsDir(), spec.folder);
  const modelFile = path.join(dir, "model.min.js");
  if (!fs.existsSync(modelFile)) {
    throw new BackboneLoadError(`${modelFile}: missing (expected nsfwjs 4.4.0's bundled ${name} model)`);
  }
  const req = createRequire(modelFile);
  const modelJson = req(modelFile) as NsfwjsModelJson;
  const shards: Buffer[] = [];
  const weightSpecs: tf.io.WeightsManifestEntry[] = [];
  for (const group of modelJson.weightsManifest) {
    for (const shardName of group.paths) {
      const shardFile = path.join(dir, `${shardName}.min.js`);
      if (!fs.existsSync(shardFile)) throw new BackboneLoadError(`${shardFile}: missing weight shard of ${name}`);
      const base64 = req(shardFile) as unknown;
      if (typeof base64 !== "string") throw new BackboneLoadError(`${shardFile}: expected module.exports to be a base64 string, got ${typeof base64}`);
      shards.push(Buffer.from(base64, "base64"));
    }
    weightSpecs.push(...group.weights);
  }
  const weights = Buffer.concat(shards);
  const weightData = weights.buffer.slice(weights.byteOffset, weights.byteOffset + weights.length);
  const full = await tf.loadLayersModel(tf.io.fromMemory({ modelTopology: modelJson.modelTopology, weightSpecs, weightData }));
  const hash = crypto.createHash("sha256").update(weights).digest("hex").slice(0, 16);
  const backbone = cutAtFeatureLayer(full, name, featureLayerName ?? spec.featureLayerName, spec.inputSizePx, NSFWJS_PREPROCESSING, `nsfwjs@4.4.0/${name}/sha256:${hash}`);
  backbone.weightsSource = dir;
  backbone.loadMs = performance.now() - started;
  return backbone;
}


/**
 * One line describing a loaded backbone: size, feature layer and width, preprocessing, cost
 * and weights.
 *
 * @example describeBackbone(backbone)
 * // "mobilenet_v2: 224 px input, features = global average of out_relu → 1280, input x * 0.00392157 + 0, 299.5 M multiply-adds/image, weights nsfwjs@4.4.0/mobilenet_v2/sha256:8e7d…, loaded in 160 ms"
 */
export function describeBackbone(backbone: FeatureBackbone): string {
  const parts = [
    `${backbone.name}: ${backbone.inputSizePx} px input`,
    `features = global average of ${backbone.featureLayerName} → ${backbone.featureDim}`,
    `input ${describePreprocessing(backbone.preprocessing)}`,
  ];
  if (backbone.multiplyAddsPerImage !== undefined) parts.push(`${(backbone.multiplyAddsPerImage / 1e6).toFixed(1)} M multiply-adds/image`);
  parts.push(`weights ${backbone.weightsId}`);
  if (backbone.loadMs !== undefined) parts.push(`loaded in ${backbone.loadMs.toFixed(0)} ms`);
  return parts.join(", ");
}
