import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import * as tf from "@tensorflow/tfjs";
import { BackboneLoadError, cutAtFeatureLayer } from "./cutBackbone.js";
import { loadKerasH5IntoModel, readKerasH5Weights } from "./kerasH5.js";
import { downloadFileOnce, resolveWeightsCacheDir, WeightsDownloadError } from "./mobilenetV1.js";
import type { Backbone, PreprocessingSpec } from "./types.js";

/** File name of Keras's ImageNet VGG16 weights without the classifier (58.9 MB). */
export const VGG16_WEIGHTS_FILE_NAME = "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5";

/** Where keras-applications hosts {@link VGG16_WEIGHTS_FILE_NAME}. */
export const VGG16_WEIGHTS_URL = `https://storage.googleapis.com/tensorflow/keras-applications/vgg16/${VGG16_WEIGHTS_FILE_NAME}`;

/** Keras VGG16 input: RGB→BGR, then minus the ImageNet channel means (no scaling). */
const VGG16_PREPROCESSING: PreprocessingSpec = { kind: "caffe", meanBgr: [103.939, 116.779, 123.68] };

/** Convolutions per block and their filter counts, as in Keras's VGG16. */
const VGG16_BLOCKS: readonly { convs: number; filters: number }[] = [
  { convs: 2, filters: 64 },
  { convs: 2, filters: 128 },
  { convs: 3, filters: 256 },
  { convs: 3, filters: 512 },
  { convs: 3, filters: 512 },
];

/** Options of {@link buildVgg16}. */
export interface BuildVgg16Options {
  /** Add Keras's classifier (flatten, fc1 4096, fc2 4096, predictions 1000 softmax); needs 224 px. Default false. */
  includeTop?: boolean;
  /** Input height = width in pixels (default 224; at least 32 so five 2×2 pools leave ≥ 1 px). */
  inputSizePx?: number;
  /** Multiplies every block's filter count (rounded, at least 1); 1 (default) is VGG16, e.g. 1/16 gives 4…32 for tests. */
  filtersScale?: number;
}

/**
 * Builds VGG16 (randomly initialised) with Keras's exact layer names — `block1_conv1` …
 * `block5_conv3`, `block1_pool` … `block5_pool`, and with `includeTop` `flatten`, `fc1`, `fc2`,
 * `predictions` — so Keras HDF5 weights load by name ({@link loadKerasH5IntoModel}). Convolutions
 * are 3×3, stride 1, "same" padding, ReLU; pools are 2×2 max, stride 2. Input
 * [n, inputSizePx, inputSizePx, 3] caffe-preprocessed (see {@link VGG16_PREPROCESSING}); output
 * block5_pool [n, inputSizePx/32, inputSizePx/32, 512] (or [n, 1000] with the top).
 *
 * @example buildVgg16({ includeTop: false }).outputs[0].shape // [null, 7, 7, 512]
 */
export function buildVgg16(options: BuildVgg16Options = {}): tf.LayersModel {
  const includeTop = options.includeTop ?? false;
  const inputSizePx = options.inputSizePx ?? 224;
  const filtersScale = options.filtersScale ?? 1;
  if (!Number.isInteger(inputSizePx) || inputSizePx < 32) {
    throw new BackboneLoadError(`vgg16 inputSizePx: received ${inputSizePx}, expected an integer ≥ 32`);
  }
  if (includeTop && inputSizePx !== 224) {
    throw new BackboneLoadError(`vgg16 inputSizePx: received ${inputSizePx} with includeTop, expected 224 (the classifier's fc1 is sized for a 7×7×512 block5_pool)`);
  }
  if (!(filtersScale > 0) || !Number.isFinite(filtersScale)) {
    throw new BackboneLoadError(`vgg16 filtersScale: received ${filtersScale}, expected a positive number (1 = VGG16)`);
  }
  const input = tf.input({ shape: [inputSizePx, inputSizePx, 3], name: "input_1" });
  let x: tf.SymbolicTensor = input;
  VGG16_BLOCKS.forEach(({ convs, filters }, b) => {
    for (let c = 1; c <= convs; c++) {
      x = tf.layers
        .conv2d({
          name: `block${b + 1}_conv${c}`,
          filters: Math.max(1, Math.round(filters * filtersScale)),
          kernelSize: 3,
          padding: "same",
          activation: "relu",
        })
        .apply(x) as tf.SymbolicTensor;
    }
    x = tf.layers.maxPooling2d({ name: `block${b + 1}_pool`, poolSize: 2, strides: 2 }).apply(x) as tf.SymbolicTensor;
  });
  if (includeTop) {
    x = tf.layers.flatten({ name: "flatten" }).apply(x) as tf.SymbolicTensor;
    x = tf.layers.dense({ name: "fc1", units: Math.max(1, Math.round(4096 * filtersScale)), activation: "relu" }).apply(x) as tf.SymbolicTensor;
    x = tf.layers.dense({ name: "fc2", units: Math.max(1, Math.round(4096 * filtersScale)), activation: "relu" }).apply(x) as tf.SymbolicTensor;
    x = tf.layers.dense({ name: "predictions", units: 1000, activation: "softmax" }).apply(x) as tf.SymbolicTensor;
  }
  return tf.model({ inputs: input, outputs: x, name: "vgg16" });
}

/** Options of {@link loadVgg16Backbone}. */
export interface LoadVgg16Options {
  /** A local copy of the Keras notop .h5 file; when set nothing is downloaded or cached. */
  weightsPath?: string;
  /** Where to download from when the cache lacks the file (default {@link VGG16_WEIGHTS_URL}). */
  weightsUrl?: string;
  /** Cache folder (default `MELANOMA_LAB_WEIGHTS_DIR`, else <project root>/.cache/weights). */
  weightsCacheDir?: string;
  /** Input size in pixels (default 224; Keras's notop weights work for any size ≥ 32). */
  inputSizePx?: number;
  /** Filter-count multiplier matching the file (default 1, the real VGG16); see {@link buildVgg16}. */
  filtersScale?: number;
}

/** Finds the weights file: the given path, else the cache, else a download into the cache. */
async function resolveVgg16WeightsFile(options: LoadVgg16Options): Promise<string> {
  if (options.weightsPath !== undefined) {
    const file = path.resolve(options.weightsPath);
    if (!fs.existsSync(file)) throw new BackboneLoadError(`vgg16 weightsPath: ${file} does not exist (expected Keras's ${VGG16_WEIGHTS_FILE_NAME}, downloadable from ${VGG16_WEIGHTS_URL})`);
    return file;
  }
  const cacheDir = resolveWeightsCacheDir(options.weightsCacheDir);
  const file = path.join(cacheDir, VGG16_WEIGHTS_FILE_NAME);
  const url = options.weightsUrl ?? VGG16_WEIGHTS_URL;
  try {
    await downloadFileOnce(url, file);
  } catch (err) {
    const looked = options.weightsCacheDir !== undefined ? `weightsCacheDir ${cacheDir}` : `${cacheDir} (MELANOMA_LAB_WEIGHTS_DIR ${process.env.MELANOMA_LAB_WEIGHTS_DIR === undefined ? "unset; default <project root>/.cache/weights" : "= " + JSON.stringify(process.env.MELANOMA_LAB_WEIGHTS_DIR)})`;
    throw new WeightsDownloadError(
      `vgg16 weights: ${VGG16_WEIGHTS_FILE_NAME} is not in ${looked} and downloading it failed: ${(err as Error).message}. Put the file there (or set MELANOMA_LAB_WEIGHTS_DIR to a folder holding it, or pass weightsPath); source: ${VGG16_WEIGHTS_URL}`,
    );
  }
  return file;
}

/**
 * Loads VGG16 with Keras's ImageNet weights, cut at `block5_conv3` (after its ReLU) + global
 * average pooling → featureDim 512 (× filtersScale). Input 224 px, caffe preprocessing
 * ({@link VGG16_PREPROCESSING}). Weights come from, in order: `weightsPath`; else
 * `<weightsCacheDir or MELANOMA_LAB_WEIGHTS_DIR or <root>/.cache/weights>/vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5`;
 * else they are downloaded once from `weightsUrl` into that cache. A missing file throws an
 * error naming where it looked and the URL. 14.7 M parameters, 15.35 G multiply-adds per 224 px image
 * (about 1.8 s per image on single-threaded wasm).
 *
 * @example
 * await selectBackend();
 * const b = await loadVgg16Backbone(); // b.featureDim === 512, b.featureLayerName === "block5_conv3"
 */
export async function loadVgg16Backbone(options: LoadVgg16Options = {}): Promise<Backbone> {
  const started = performance.now();
  const file = await resolveVgg16WeightsFile(options);
  const inputSizePx = options.inputSizePx ?? 224;
  const weights = await readKerasH5Weights(file);
  const full = buildVgg16({ includeTop: false, inputSizePx, filtersScale: options.filtersScale });
  try {
    await loadKerasH5IntoModel(full, weights, { strict: true });
  } catch (err) {
    full.dispose();
    throw err;
  }
  const hash = crypto.createHash("sha256").update(fs.readFileSync(file)).digest("hex").slice(0, 16);
  const scaleTag = (options.filtersScale ?? 1) === 1 ? "" : `@x${options.filtersScale}`;
  const backbone = cutAtFeatureLayer(full, "vgg16", "block5_conv3", inputSizePx, VGG16_PREPROCESSING, `keras-applications/vgg16_notop${scaleTag}/sha256:${hash}`);
  backbone.weightsSource = file;
  backbone.loadMs = performance.now() - started;
  return backbone;
}
