import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import * as tf from "@tensorflow/tfjs";
import { BackboneLoadError, cutAtFeatureLayer } from "./cutBackbone.js";
import { countMultiplyAddsPerImage } from "./countMultiplyAdds.js";
import { downloadFileOnce, resolveWeightsCacheDir, WeightsDownloadError } from "./mobilenetV1.js";
import { decodeOnnxModel, importOnnxModel, OnnxImportError } from "./onnxImport.js";
import type { Backbone, PreprocessingSpec } from "./types.js";

/** torchvision / ONNX model zoo ImageNet input normalisation (RGB on 0..1). */
export const IMAGENET_NORMALIZE: PreprocessingSpec = { kind: "normalize", mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] };

/** Folder (in the weights cache or a local mirror) holding the ImageNet MobileNetV2 ONNX file. */
export const MOBILENET_V2_IMAGENET_FOLDER = "mobilenet_v2_1.0_imagenet";

/**
 * The ONNX model zoo's MobileNetV2-1.0 (Apache-2.0; BatchNormalization nodes and the 1000-class
 * classifier included, so it is cut at its last GlobalAveragePool).
 */
export const MOBILENET_V2_IMAGENET_URL = "https://github.com/onnx/models/raw/main/validated/vision/classification/mobilenet/model/mobilenetv2-7.onnx";

/** File names looked for in the folder, best first: the BatchNorm-folded backbone (../shared's mirror), then the zoo file. */
const MOBILENET_V2_IMAGENET_FILES = ["mobilenetv2-7-backbone.onnx", "mobilenetv2-7.onnx"];

/** Options of {@link loadOnnxBackbone}. */
export interface LoadOnnxBackboneOptions {
  /** Registry name recorded in the backbone (default `onnx:<absolute path>`). */
  name?: string;
  /**
   * The ONNX value holding the features: a graph output or any intermediate value (e.g. the
   * output of the last GlobalAveragePool). Default: the graph's only output. A 4-D output is
   * globally average-pooled.
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
}

/**
 * Loads an ONNX image model as a frozen feature extractor: the file is imported to tfjs
 * ({@link importOnnxModel}), the model takes NHWC input [n, H, W, 3] (the ONNX input is
 * NCHW [N, 3, H, W], H = W = inputSizePx) and outputs [n, featureDim]. `featureLayerName` is the
 * layer whose output is pooled (for Grad-CAM), weightsId includes the file's sha256, and `onnx`
 * describes the file for ONNX Runtime when the features are a graph output (not when they are
 * an intermediate value or a pooled 4-D output). Throws {@link BackboneLoadError} for a missing
 * file and {@link OnnxImportError} for a graph the importer cannot map.
 *
 * @example
 * const b = await loadOnnxBackbone("/data/resnet50-v2-7.onnx", { outputName: "resnetv24_pool1_fwd" });
 */
export async function loadOnnxBackbone(file: string, options: LoadOnnxBackboneOptions = {}): Promise<Backbone> {
  const started = performance.now();
  const absolute = path.resolve(file);
  if (!fs.existsSync(absolute)) throw new BackboneLoadError(`${absolute}: ONNX file not found (expected an .onnx image model)`);
  const bytes = await fs.promises.readFile(absolute);
  const sha256 = crypto.createHash("sha256").update(bytes).digest("hex");
  const proto = decodeOnnxModel(bytes);
  const graphOutputs = (proto.graph?.output ?? []).map((o) => o.name ?? "");
  let outputName = options.outputName;
  if (outputName === undefined) {
    if (graphOutputs.length !== 1) {
      throw new OnnxImportError(`${absolute}: the graph has ${graphOutputs.length} outputs (${graphOutputs.join(", ")}); pass outputName to choose the features`);
    }
    outputName = graphOutputs[0];
  }
  const name = options.name ?? `onnx:${absolute}`;
  const modelName = `${(options.name ?? path.basename(absolute, ".onnx")).replace(/[^A-Za-z0-9_]/g, "_")}_features`;
  const imported = importOnnxModel(proto, { outputName, modelName });
  const [, channels, heightPx, widthPx] = imported.inputShapeNchw as number[];
  if (channels !== 3 || heightPx !== widthPx) {
    imported.model.dispose();
    throw new OnnxImportError(`${absolute}: input ${imported.inputName} is [N, ${channels}, ${heightPx}, ${widthPx}]; expected an RGB square NCHW input [N, 3, S, S]`);
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
    backbone.onnx = { path: absolute, sha256, inputName: imported.inputName, outputName, layout: "NCHW" };
  }
  backbone.loadMs = performance.now() - started;
  return backbone;
}

/**
 * Where the ImageNet MobileNetV2 ONNX file is read from: `weightsPath` when given, else the first
 * of `<cacheDir>/mobilenet_v2_1.0_imagenet/{mobilenetv2-7-backbone.onnx, mobilenetv2-7.onnx,
 * <file name of url>}` that exists; `present` false means it must be downloaded from `url` to
 * `file` (`<folder>/<file name of url>`).
 *
 * @example resolveMobilenetV2ImagenetFile("/work/shared/weights") // { file: ".../mobilenetv2-7-backbone.onnx", present: true, … }
 */
export function resolveMobilenetV2ImagenetFile(cacheDir: string, url: string = MOBILENET_V2_IMAGENET_URL): { file: string; present: boolean; searched: string[] } {
  const folder = path.join(cacheDir, MOBILENET_V2_IMAGENET_FOLDER);
  const downloadName = path.basename(new URL(url).pathname);
  const names = [...new Set([...MOBILENET_V2_IMAGENET_FILES, downloadName])];
  const searched = names.map((n) => path.join(folder, n));
  const found = searched.find((f) => fs.existsSync(f));
  return { file: found ?? path.join(folder, downloadName), present: found !== undefined, searched };
}

/**
 * Loads "mobilenet_v2_imagenet": MobileNetV2-1.0 with ImageNet weights from the ONNX model zoo,
 * imported to tfjs. 224 px, ImageNet "normalize" preprocessing, 1280 features (the global
 * average pool after the last 1×1 conv + ReLU6; the graph output `features` when the file has it,
 * else the zoo file's last GlobalAveragePool). The file comes from `weightsPath`, else the weights
 * cache / local mirror (`weightsCacheDir`, `MELANOMA_LAB_WEIGHTS_DIR`, or <root>/.cache/weights;
 * see {@link resolveMobilenetV2ImagenetFile}), else it is downloaded once from `weightsUrl`
 * (default {@link MOBILENET_V2_IMAGENET_URL}) into the cache. A failed download throws
 * {@link WeightsDownloadError} naming the files searched.
 *
 * @example const b = await loadMobilenetV2ImagenetBackbone(); // b.featureDim === 1280, b.onnx?.outputName === "features"
 */
export async function loadMobilenetV2ImagenetBackbone(
  options: { weightsCacheDir?: string; weightsPath?: string; weightsUrl?: string; featureLayerName?: string } = {},
): Promise<Backbone> {
  const started = performance.now();
  const url = options.weightsUrl ?? MOBILENET_V2_IMAGENET_URL;
  let file = options.weightsPath;
  if (file === undefined) {
    const source = resolveMobilenetV2ImagenetFile(resolveWeightsCacheDir(options.weightsCacheDir), url);
    file = source.file;
    if (!source.present) {
      try {
        await downloadFileOnce(url, file);
      } catch (err) {
        if (!(err instanceof WeightsDownloadError)) throw err;
        throw new WeightsDownloadError(`mobilenet_v2_imagenet: none of ${source.searched.join(", ")} exists, and downloading failed: ${err.message}`);
      }
    }
  }
  const proto = decodeOnnxModel(await fs.promises.readFile(file));
  const graph = proto.graph;
  let outputName = "features";
  if (!(graph?.output ?? []).some((o) => o.name === "features")) {
    const lastPool = (graph?.node ?? []).filter((n) => n.opType === "GlobalAveragePool").at(-1);
    if (!lastPool) throw new OnnxImportError(`${file}: no output "features" and no GlobalAveragePool node; expected MobileNetV2 from the ONNX model zoo`);
    outputName = (lastPool.output ?? [])[0];
  }
  const backbone = await loadOnnxBackbone(file, {
    name: "mobilenet_v2_imagenet",
    outputName,
    preprocessing: IMAGENET_NORMALIZE,
    weightsIdPrefix: "onnx-model-zoo",
    featureLayerName: options.featureLayerName,
  });
  if ((options.featureLayerName === undefined && backbone.featureDim !== 1280) || backbone.inputSizePx !== 224) {
    backbone.model.dispose();
    throw new BackboneLoadError(`${file}: ${backbone.inputSizePx} px input and ${backbone.featureDim} features; expected MobileNetV2-1.0 (224 px, 1280 features)`);
  }
  backbone.loadMs = performance.now() - started;
  return backbone;
}
