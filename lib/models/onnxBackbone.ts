import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import * as tf from "@tensorflow/tfjs";
import { BackboneLoadError, cutAtFeatureLayer } from "./cutBackbone.js";
import { countMultiplyAddsPerImage } from "./countMultiplyAdds.js";
import { downloadFileOnce, resolveWeightsCacheDir, WeightsDownloadError } from "./mobilenetV1.js";
import { findLastGlobalPooling, writeOnnxFeaturesFile } from "./onnxFeatureFile.js";
import { decodeOnnxModel, importOnnxModel, OnnxImportError } from "./onnxImport.js";
import { loadOnnxRuntime, RuntimeUnavailableError } from "../backend/selectRuntime.js";
import { getOnnxSession } from "./onnxFeatures.js";
import type { Backbone, OnnxRuntimeOnlyBackbone, PreprocessingSpec } from "./types.js";

/** torchvision / ONNX model zoo ImageNet input normalisation (RGB on 0..1). */
export const IMAGENET_NORMALIZE: PreprocessingSpec = { kind: "normalize", mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] };

/** A classifier of the ONNX model zoo registered as a backbone (see {@link ONNX_ZOO_BACKBONES}). */
export interface OnnxZooBackboneSpec {
  /** Folder (in the weights cache or a local mirror) holding the .onnx file. */
  folder: string;
  /** The ONNX model zoo's published download URL. */
  url: string;
  /** File names looked for in the folder before downloading, best first (the URL's file name is always looked for last). */
  localFiles: string[];
  /**
   * sha256 of the file at `url`, from the zoo's git-LFS pointer; undefined when no published hash
   * was found. A download of another file name (a mirror URL), or of a file without a published
   * hash, has its hash recorded beside it (`<file>.sha256`, trust on first use) and checked on
   * every later load.
   */
  sha256?: string;
  preprocessing: PreprocessingSpec;
  inputSizePx: number;
  /** Width of the features (the last global pooling before the classifier). */
  featureDim: number;
}

/** Names of the ONNX model zoo backbones. */
export type OnnxZooBackboneName = "mobilenet_v2_imagenet" | "resnet50_v2_imagenet" | "efficientnet_lite4_imagenet";

/**
 * The ONNX model zoo's ImageNet classifiers (Apache-2.0) usable as backbones, cut at their last
 * global pooling (or at the graph output `features` of a cut file such as ../shared's mirror):
 * - mobilenet_v2_imagenet: MobileNetV2-1.0 (mobilenetv2-7.onnx), 224 px, torchvision
 *   normalisation, NCHW, 1280 features.
 * - resnet50_v2_imagenet: ResNet50-v2 (resnet50-v2-7.onnx, MXNet Gluon export), 224 px,
 *   torchvision normalisation, NCHW, 2048 features (resnetv24_pool1_fwd).
 * - efficientnet_lite4_imagenet: EfficientNet-Lite4 (efficientnet-lite4-11.onnx, tf2onnx export),
 *   224 px, NHWC input "images:0", (x − 127) / 128, 1280 features.
 */
export const ONNX_ZOO_BACKBONES: Record<OnnxZooBackboneName, OnnxZooBackboneSpec> = {
  mobilenet_v2_imagenet: {
    folder: "mobilenet_v2_1.0_imagenet",
    url: "https://github.com/onnx/models/raw/main/validated/vision/classification/mobilenet/model/mobilenetv2-7.onnx",
    // The BatchNorm-folded backbone (../shared's mirror, rebuilt from the zoo's weights) first.
    localFiles: ["mobilenetv2-7-backbone.onnx"],
    // git-LFS oid of vision/classification/mobilenet/model/mobilenetv2-7.onnx in github.com/onnx/models (14,246,826 bytes).
    sha256: "c1c513582d56afceff8516c73804e484c81c6a830712ab6d682253f4a3cd042f",
    preprocessing: IMAGENET_NORMALIZE,
    inputSizePx: 224,
    featureDim: 1280,
  },
  resnet50_v2_imagenet: {
    folder: "resnet50_v2_imagenet",
    url: "https://github.com/onnx/models/raw/main/validated/vision/classification/resnet/model/resnet50-v2-7.onnx",
    localFiles: [],
    // git-LFS oid of vision/classification/resnet/model/resnet50-v2-7.onnx in github.com/onnx/models (102,442,450 bytes).
    sha256: "1e80e8a7c8eec8e8b20c440d7dd7f2f8590779c7c2859dc4514870dc463845d3",
    preprocessing: IMAGENET_NORMALIZE,
    inputSizePx: 224,
    featureDim: 2048,
  },
  efficientnet_lite4_imagenet: {
    folder: "efficientnet_lite4_imagenet",
    url: "https://github.com/onnx/models/raw/main/validated/vision/classification/efficientnet-lite4/model/efficientnet-lite4-11.onnx",
    localFiles: [],
    // No published hash found for this file name: trust on first use.
    preprocessing: { kind: "scale", scale: 1 / 128, offset: -127 / 128 },
    inputSizePx: 224,
    featureDim: 1280,
  },
};

/** Folder (in the weights cache or a local mirror) holding the ImageNet MobileNetV2 ONNX file. */
export const MOBILENET_V2_IMAGENET_FOLDER = ONNX_ZOO_BACKBONES.mobilenet_v2_imagenet.folder;

/**
 * The ONNX model zoo's MobileNetV2-1.0 (Apache-2.0; BatchNormalization nodes and the 1000-class
 * classifier included, so it is cut at its last GlobalAveragePool).
 */
export const MOBILENET_V2_IMAGENET_URL = ONNX_ZOO_BACKBONES.mobilenet_v2_imagenet.url;

/** Options of {@link loadOnnxBackbone}. */
export interface LoadOnnxBackboneOptions {
  /** Registry name recorded in the backbone (default `onnx:<absolute path>`). */
  name?: string;
  /**
   * The ONNX value holding the features: a graph output or any intermediate value (e.g. the
   * output of the last GlobalAveragePool). Default: the graph output `features` when there is
   * one, else the output of the last global pooling (a classifier's features, not its scores),
   * else the graph's only output. A 4-D output is globally average-pooled.
   */
  outputName?: string;
  /** Input preprocessing (default {@link IMAGENET_NORMALIZE}). */
  preprocessing?: PreprocessingSpec;
  /** Prefix of the weightsId (default "onnx"). */
  weightsIdPrefix?: string;
  /**
   * Pool this tfjs layer (a sanitised ONNX node name, e.g. "conv_94") instead of the feature
   * output; an unknown name throws UnknownNameError listing the layers. The backbone then has no
   * `onnx` file info (ONNX Runtime cannot fetch the layer).
   */
  featureLayerName?: string;
  /** Layout of the file's input (default: "NHWC" for an [N, S, S, 3] input, else "NCHW"; see ImportOnnxOptions.inputLayout). */
  inputLayout?: "NCHW" | "NHWC";
  /**
   * Where the features-only cut of the file (for ONNX Runtime, when the features are the last
   * global pooling rather than a graph output) is written (default <root>/.cache/onnx).
   */
  onnxCacheDir?: string;
}

/** Reads an ONNX file once: its absolute path, bytes, sha256 (hex) and decoded protobuf. */
async function readOnnxModelFile(
  file: string,
): Promise<{ absolute: string; bytes: Buffer; sha256: string; proto: ReturnType<typeof decodeOnnxModel> }> {
  const absolute = path.resolve(file);
  if (!fs.existsSync(absolute)) throw new BackboneLoadError(`${absolute}: ONNX file not found (expected an .onnx image model)`);
  const bytes = await fs.promises.readFile(absolute);
  const sha256 = crypto.createHash("sha256").update(bytes).digest("hex");
  return { absolute, bytes, sha256, proto: decodeOnnxModel(bytes) };
}

/**
 * Loads an ONNX image model as a frozen feature extractor: the file is imported to tfjs
 * ({@link importOnnxModel}), the model takes NHWC input [n, H, W, 3] (the ONNX input is
 * NCHW [N, 3, H, W] or NHWC, H = W = inputSizePx) and outputs [n, featureDim]. `featureLayerName`
 * is the layer whose output is pooled (for Grad-CAM), weightsId includes the file's sha256, and
 * `onnx` describes a file for ONNX Runtime when the features are a graph output (the file
 * itself) or the last global pooling (a features-only cut of it, see writeOnnxFeaturesFile), not
 * when they are another intermediate value or a pooled 4-D output. Throws {@link BackboneLoadError} for a missing
 * file and {@link OnnxImportError} for a graph the importer cannot map.
 *
 * @example
 * const b = await loadOnnxBackbone("/data/resnet50-v2-7.onnx", { outputName: "resnetv24_pool1_fwd" });
 */
export async function loadOnnxBackbone(file: string, options: LoadOnnxBackboneOptions = {}): Promise<Backbone> {
  const started = performance.now();
  const { absolute, bytes, sha256, proto } = await readOnnxModelFile(file);
  const graphOutputs = (proto.graph?.output ?? []).map((o) => o.name ?? "");
  let outputName = options.outputName;
  if (outputName === undefined) {
    const pooling = proto.graph ? findLastGlobalPooling(proto.graph) : undefined;
    if (graphOutputs.includes("features")) outputName = "features";
    else if (pooling) outputName = pooling.outputName;
    else if (graphOutputs.length === 1) outputName = graphOutputs[0];
    else {
      throw new OnnxImportError(
        `${absolute}: the graph has ${graphOutputs.length} outputs (${graphOutputs.join(", ")}), none named "features", and no global pooling; pass outputName to choose the features`,
      );
    }
  }
  const name = options.name ?? `onnx:${absolute}`;
  const modelName = `${(options.name ?? path.basename(absolute, ".onnx")).replace(/[^A-Za-z0-9_]/g, "_")}_features`;
  const imported = importOnnxModel(proto, { outputName, modelName, inputLayout: options.inputLayout });
  const [, channels, heightPx, widthPx] = imported.inputShapeNchw as number[];
  if (channels !== 3 || heightPx !== widthPx) {
    imported.model.dispose();
    throw new OnnxImportError(`${absolute}: input ${imported.inputName} is [N, ${channels}, ${heightPx}, ${widthPx}] (NCHW order); expected an RGB square input [N, 3, S, S] (or NHWC [N, S, S, 3])`);
  }
  const preprocessing = options.preprocessing ?? IMAGENET_NORMALIZE;
  const weightsId = `${options.weightsIdPrefix ?? "onnx"}/${path.basename(absolute)}:${outputName}/sha256:${sha256.slice(0, 16)}`;
  if (options.featureLayerName !== undefined) {
    // An earlier layer, pooled: a tfjs-only backbone (ONNX Runtime cannot fetch that layer).
    let cut: Backbone;
    try {
      cut = cutAtFeatureLayer(imported.model, name, options.featureLayerName, heightPx, preprocessing, weightsId);
    } catch (err) {
      imported.model.dispose();
      throw err;
    }
    cut.weightsSource = absolute;
    cut.loadMs = performance.now() - started;
    return cut;
  }
  let model = imported.model;
  let featureLayerName = imported.pooledLayerName;
  let pooledHere = false;
  const out = model.outputs[0];
  if (out.shape.length === 4) {
    const last = model.layers[model.layers.length - 1];
    const pooled = tf.layers.globalAveragePooling2d({ name: `${model.name}_gap` }).apply(out) as tf.SymbolicTensor;
    model = tf.model({ inputs: model.inputs, outputs: pooled, name: model.name });
    featureLayerName = last.name;
    pooledHere = true;
  } else if (out.shape.length !== 2) {
    model.dispose();
    throw new OnnxImportError(`${absolute}: output ${outputName} has shape [${out.shape.join(", ")}]; expected [N, features] or a 4-D map to pool`);
  }
  const featureDim = model.outputs[0].shape[1];
  if (typeof featureDim !== "number") throw new OnnxImportError(`${absolute}: output ${outputName} has an unknown feature count`);
  const backbone: Backbone = {
    name,
    inputSizePx: heightPx,
    featureLayerName: featureLayerName ?? model.layers[model.layers.length - 1].name,
    featureDim,
    preprocessing,
    model,
    weightsId,
    weightsSource: absolute,
    multiplyAddsPerImage: countMultiplyAddsPerImage(model),
  };
  if (!pooledHere && graphOutputs.includes(outputName)) {
    backbone.onnx = { path: absolute, sha256, inputName: imported.inputName, outputName, layout: imported.inputLayout };
  } else if (!pooledHere && proto.graph && findLastGlobalPooling(proto.graph)?.outputName === outputName) {
    // The last global pooling of a classifier: ONNX Runtime runs a cut of the file that outputs it.
    const cut = writeOnnxFeaturesFile(absolute, bytes, imported.inputLayout, options.onnxCacheDir);
    backbone.onnx = { path: cut.path, sha256: cut.sha256, inputName: cut.inputName, outputName: cut.outputName, layout: cut.layout };
  }
  backbone.loadMs = performance.now() - started;
  return backbone;
}

/**
 * Where a zoo backbone's ONNX file is read from: the first of `<cacheDir>/<folder>/{localFiles…,
 * <file name of url>}` that exists; `present` false means it must be downloaded from `url` to
 * `file` (`<folder>/<file name of url>`).
 *
 * @example resolveOnnxZooFile(ONNX_ZOO_BACKBONES.mobilenet_v2_imagenet, "/work/shared/weights") // { file: ".../mobilenetv2-7-backbone.onnx", present: true, … }
 */
export function resolveOnnxZooFile(spec: OnnxZooBackboneSpec, cacheDir: string, url: string = spec.url): { file: string; present: boolean; searched: string[] } {
  const folder = path.join(cacheDir, spec.folder);
  const downloadName = path.basename(new URL(url).pathname);
  const names = [...new Set([...spec.localFiles, downloadName])];
  const searched = names.map((n) => path.join(folder, n));
  const found = searched.find((f) => fs.existsSync(f));
  return { file: found ?? path.join(folder, downloadName), present: found !== undefined, searched };
}

/**
 * {@link resolveOnnxZooFile} for mobilenet_v2_imagenet.
 *
 * @example resolveMobilenetV2ImagenetFile("/work/shared/weights") // { file: ".../mobilenetv2-7-backbone.onnx", present: true, … }
 */
export function resolveMobilenetV2ImagenetFile(cacheDir: string, url: string = MOBILENET_V2_IMAGENET_URL): { file: string; present: boolean; searched: string[] } {
  return resolveOnnxZooFile(ONNX_ZOO_BACKBONES.mobilenet_v2_imagenet, cacheDir, url);
}

/** Options of {@link loadOnnxZooBackbone}. */
export interface LoadOnnxZooBackboneOptions {
  /** Weights cache / local mirror (default `MELANOMA_LAB_WEIGHTS_DIR`, else <root>/.cache/weights). */
  weightsCacheDir?: string;
  /** A local .onnx file (skips cache and download; no hash check). */
  weightsPath?: string;
  /** URL to download from when the cache lacks the file (default the zoo's). */
  weightsUrl?: string;
  /** Pool this tfjs layer instead (tfjs only; see {@link LoadOnnxBackboneOptions.featureLayerName}). */
  featureLayerName?: string;
  /** Where the features-only ONNX file for ONNX Runtime is written (default <root>/.cache/onnx). */
  onnxCacheDir?: string;
}

async function sha256OfFile(file: string): Promise<string> {
  return crypto
    .createHash("sha256")
    .update(await fs.promises.readFile(file))
    .digest("hex");
}

/**
 * Checks a zoo file against its published sha256, or against the hash recorded when it was
 * first downloaded (`<file>.sha256`, trust on first use); `downloaded` records it for a zoo
 * file without a published hash. A mismatch deletes a fresh download and throws
 * {@link WeightsDownloadError}.
 */
async function checkZooFileHash(name: string, spec: OnnxZooBackboneSpec, file: string, downloadName: string, downloaded: boolean): Promise<void> {
  if (path.basename(file) !== downloadName) return; // a local mirror's own file (e.g. the cut backbone), not the zoo's
  const record = `${file}.sha256`;
  // The published hash is that of the zoo's own file name; another URL's file is trusted on first use.
  const published = path.basename(file) === path.basename(new URL(spec.url).pathname) ? spec.sha256 : undefined;
  const expected = published ?? (fs.existsSync(record) ? fs.readFileSync(record, "utf8").trim() : undefined);
  const actual = await sha256OfFile(file);
  if (expected === undefined) {
    if (downloaded) await fs.promises.writeFile(record, `${actual}\n`);
    return;
  }
  if (actual !== expected) {
    if (downloaded) await fs.promises.rm(file, { force: true });
    const source = published ? "the ONNX model zoo's published hash" : `the hash recorded on first download in ${record}`;
    throw new WeightsDownloadError(`${name}: ${file} has sha256 ${actual}, expected ${expected} (${source})${downloaded ? "; the download was deleted" : ""}`);
  }
}

/**
 * Loads an ONNX model zoo classifier as a backbone ({@link ONNX_ZOO_BACKBONES}), imported to
 * tfjs and cut at its feature value: the graph output `features` when the file has one (a cut
 * mirror), else the output of its last global pooling. The file comes from `weightsPath`, else
 * the weights cache / local mirror (`weightsCacheDir`, `MELANOMA_LAB_WEIGHTS_DIR`, or
 * <root>/.cache/weights; see {@link resolveOnnxZooFile}), else it is downloaded once from
 * `weightsUrl` (default the zoo's URL) into the cache and its sha256 checked (published hash, or
 * recorded on first download). `backbone.onnx` is a features-only cut of the file for ONNX
 * Runtime. Throws {@link WeightsDownloadError} naming the files searched when the download fails,
 * and {@link BackboneLoadError} when the file is not the expected network (input size, features).
 *
 * @example const b = await loadOnnxZooBackbone("resnet50_v2_imagenet"); // b.featureDim === 2048
 */
export async function loadOnnxZooBackbone(name: OnnxZooBackboneName, options: LoadOnnxZooBackboneOptions = {}): Promise<Backbone> {
  const started = performance.now();
  const spec = ONNX_ZOO_BACKBONES[name];
  const url = options.weightsUrl ?? spec.url;
  let file = options.weightsPath;
  if (file === undefined) {
    const source = resolveOnnxZooFile(spec, resolveWeightsCacheDir(options.weightsCacheDir), url);
    file = source.file;
    let downloaded = false;
    if (!source.present) {
      try {
        downloaded = (await downloadFileOnce(url, file)).downloaded;
      } catch (err) {
        if (!(err instanceof WeightsDownloadError)) throw err;
        throw new WeightsDownloadError(`${name}: none of ${source.searched.join(", ")} exists, and downloading failed: ${err.message}`);
      }
    }
    await checkZooFileHash(name, spec, file, path.basename(new URL(url).pathname), downloaded);
  }
  const proto = decodeOnnxModel(await fs.promises.readFile(file));
  const graph = proto.graph;
  let outputName = "features";
  if (!(graph?.output ?? []).some((o) => o.name === "features")) {
    const pooling = graph ? findLastGlobalPooling(graph) : undefined;
    if (!pooling) throw new OnnxImportError(`${file}: no output "features" and no global pooling node; expected ${name} from the ONNX model zoo`);
    outputName = pooling.outputName;
  }
  const backbone = await loadOnnxBackbone(file, {
    name,
    outputName,
    preprocessing: spec.preprocessing,
    weightsIdPrefix: "onnx-model-zoo",
    featureLayerName: options.featureLayerName,
    onnxCacheDir: options.onnxCacheDir,
  });
  if ((options.featureLayerName === undefined && backbone.featureDim !== spec.featureDim) || backbone.inputSizePx !== spec.inputSizePx) {
    backbone.model.dispose();
    throw new BackboneLoadError(`${file}: ${backbone.inputSizePx} px input and ${backbone.featureDim} features; expected ${name} (${spec.inputSizePx} px, ${spec.featureDim} features)`);
  }
  backbone.loadMs = performance.now() - started;
  return backbone;
}

/**
 * Loads "mobilenet_v2_imagenet" ({@link loadOnnxZooBackbone}): MobileNetV2-1.0 with ImageNet
 * weights from the ONNX model zoo, imported to tfjs. 224 px, ImageNet "normalize"
 * preprocessing, 1280 features (the global average pool after the last 1×1 conv + ReLU6; the
 * graph output `features` when the file has it, else the zoo file's last GlobalAveragePool).
 *
 * @example const b = await loadMobilenetV2ImagenetBackbone(); // b.featureDim === 1280, b.onnx?.outputName === "features"
 */
export async function loadMobilenetV2ImagenetBackbone(options: LoadOnnxZooBackboneOptions = {}): Promise<Backbone> {
  return loadOnnxZooBackbone("mobilenet_v2_imagenet", options);
}

/** Options of {@link loadOnnxRuntimeBackbone}. */
export interface LoadOnnxRuntimeBackboneOptions {
  /** Registry name recorded in the backbone (default `onnx:<absolute path>`). */
  name?: string;
  /** Input preprocessing (default {@link IMAGENET_NORMALIZE}). */
  preprocessing?: PreprocessingSpec;
  /** Layout of the file's input (default: "NHWC" for an [N, S, S, 3] input, else "NCHW"). */
  inputLayout?: "NCHW" | "NHWC";
  /** Where the features-only cut of the file is written (default <root>/.cache/onnx). */
  onnxCacheDir?: string;
  /** Why the tfjs importer cannot convert the file (recorded in the backbone; default: not tried). */
  tfjsUnavailableReason?: string;
}

/**
 * Loads any ONNX image classifier as a frozen feature extractor that runs on ONNX Runtime only,
 * without importing it to tfjs (for graphs the importer cannot convert, e.g. int8 QLinearConv
 * files): features are the output of the last global pooling (dequantized for int8), written as
 * a features-only cut of the file ({@link writeOnnxFeaturesFile}); the feature width is read from
 * one ONNX Runtime pass on a blank image. weightsId names the source file's sha256, so the
 * feature cache keys it like any backbone. Throws {@link BackboneLoadError} for a missing file or
 * a non-RGB-square input, {@link OnnxImportError} for a graph without global pooling, and
 * RuntimeUnavailableError when onnxruntime-node does not load.
 *
 * @example
 * const b = await loadOnnxRuntimeBackbone("../shared/weights/mobilenet_v2_1.0_imagenet_int8/mobilenetv2-12-int8.onnx");
 * b.featureDim // 1280; b.model === undefined
 */
export async function loadOnnxRuntimeBackbone(file: string, options: LoadOnnxRuntimeBackboneOptions = {}): Promise<OnnxRuntimeOnlyBackbone> {
  const started = performance.now();
  const { absolute, bytes, sha256, proto } = await readOnnxModelFile(file);
  const graph = proto.graph;
  const initializers = new Set((graph?.initializer ?? []).map((t) => t.name ?? ""));
  const input = (graph?.input ?? []).find((i) => !initializers.has(i.name ?? ""));
  const dims = (input?.type?.tensorType?.shape?.dim ?? []).map((d) => Number(d.dimValue ?? 0));
  const layout = options.inputLayout ?? (dims[3] === 3 && dims[1] !== 3 ? "NHWC" : "NCHW");
  const [channels, heightPx, widthPx] = layout === "NCHW" ? dims.slice(1) : [dims[3], dims[1], dims[2]];
  if (dims.length !== 4 || channels !== 3 || heightPx !== widthPx || !(heightPx > 0)) {
    throw new BackboneLoadError(`${absolute}: input ${input?.name ?? "(none)"} has dims [${dims.join(", ")}] (${layout}); expected an RGB square image input [N, 3, S, S] or [N, S, S, 3]`);
  }
  const cut = writeOnnxFeaturesFile(absolute, bytes, layout, options.onnxCacheDir);
  const onnx = { path: cut.path, sha256: cut.sha256, inputName: cut.inputName, outputName: cut.outputName, layout };
  const loaded = await loadOnnxRuntime();
  if ("error" in loaded) throw new RuntimeUnavailableError(`${absolute} runs only on ONNX Runtime: ${loaded.error}`);
  const session = await getOnnxSession(onnx, 1);
  const shape = layout === "NCHW" ? [1, 3, heightPx, heightPx] : [1, heightPx, heightPx, 3];
  const blank = new loaded.ort.Tensor("float32", new Float32Array(3 * heightPx * heightPx), shape);
  const out = (await session.run({ [onnx.inputName]: blank }, [onnx.outputName]))[onnx.outputName];
  const featureDim = Number(out.dims[1]);
  blank.dispose();
  out.dispose();
  return {
    name: options.name ?? `onnx:${absolute}`,
    inputSizePx: heightPx,
    featureLayerName: cut.pooling.pooledValueName,
    featureDim,
    preprocessing: options.preprocessing ?? IMAGENET_NORMALIZE,
    weightsId: `onnx-runtime/${path.basename(absolute)}:${cut.pooling.outputName}/sha256:${sha256.slice(0, 16)}`,
    weightsSource: absolute,
    onnx,
    tfjsUnavailableReason: options.tfjsUnavailableReason ?? "not imported",
    loadMs: performance.now() - started,
  };
}
