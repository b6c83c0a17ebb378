import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { decodeImageRgb, type ResizePolicy } from "../data/decodeImage.js";
import type { PixelTransform } from "../data/augment.js";
import type { InputProblem, LesionRecord } from "../data/types.js";
import { MelanomaLabError } from "../util/errors.js";
import {
  loadOnnxRuntime,
  parseRuntimeName,
  RUNTIME_ENV,
  selectInferenceRuntime,
  type InferenceRuntimeSelection,
} from "../backend/selectRuntime.js";
import { predictOnnxFeatures } from "./onnxFeatures.js";
import { predictBackboneFeatures } from "./inferencePlan.js";
import { preprocessImages } from "./preprocess.js";
import { OnnxRuntimeOnlyError, requireTfjsBackbone } from "./runtimeOnlyBackbone.js";
import type { FeatureBackbone } from "./types.js";

/** Thrown for feature-extraction input that cannot be used at all (wrong pixel count, batch size). */
export class FeatureInputError extends MelanomaLabError {}

/**
 * What {@link extractFeatures} accepts: lesion records, image file paths, or already decoded
 * 8-bit RGB pixels (HWC, `count` images of backbone.inputSizePx² × 3 bytes back to back).
 */
export type FeatureInput =
  | readonly LesionRecord[]
  | readonly string[]
  | { pixels: Uint8Array; count: number; imageIds?: readonly string[] };

/** Options of {@link extractFeatures}. */
export interface ExtractFeaturesOptions {
  /** Images per forward pass (default 16). */
  batchSize?: number;
  /** Folder of the on-disk feature cache; omitted = no cache. */
  cacheDir?: string;
  /** How files are made square (default "center-crop"); part of the cache key. */
  resizePolicy?: ResizePolicy;
  /**
   * Called after the cache lookup and after each batch with images done so far and the total;
   * a multi-pass extraction (ensemble members, augmented views) names the pass in `detail`.
   */
  onProgress?: (done: number, total: number, detail?: string) => void;
  /**
   * A change made to each decoded image (size × size × 3 RGB) before the backbone, e.g. a flip
   * for test-time augmentation or colour constancy. Its `name` is part of the cache key, so a
   * cached image under this transform is neither decoded nor transformed again.
   */
  pixelTransform?: PixelTransform;
  /**
   * "onnx" or "tfjs" forces the runtime of the forward passes (default: `MELANOMA_LAB_RUNTIME`,
   * else ONNX Runtime when it loads and `backbone.onnx` is set; see selectInferenceRuntime).
   */
  runtime?: "onnx" | "tfjs" | "auto";
  /** ONNX Runtime intra-op threads (default: `MELANOMA_LAB_ORT_THREADS`, else "auto"). */
  ortThreads?: number;
  /** Where a tfjs backbone converted for ONNX Runtime is cached (default: ensureBackboneOnnx's, .cache/onnx). */
  onnxCacheDir?: string;
}

/** Features of the images that could be read, in input order, plus what went wrong with the rest. */
export interface FeatureMatrix {
  /** Row-major [rows, featureDim]. */
  features: Float32Array;
  featureDim: number;
  /** Number of rows (inputs minus problems). */
  rows: number;
  /** imageId of each row (file name without extension for paths; `pixels-<i>` for pixels). */
  imageIds: string[];
  /** Index in the input of each row, to line rows up with labels. */
  sourceIndices: number[];
  /** One per input that could not be featurised; the others went on. */
  problems: InputProblem[];
  /** Rows read from the cache instead of computed. */
  cacheHits: number;
  /** Rows computed by a forward pass. */
  computed: number;
  elapsedMs: number;
  /** Folder the cache entries of this backbone live in, when a cache was used. */
  cacheFolder?: string;
  /** Which runtime ran the forward passes and why (describeInferenceRuntime prints it). */
  runtime?: InferenceRuntimeSelection;
}

interface Item {
  index: number;
  imageId: string;
  file?: string;
  pixels?: Uint8Array;
  key?: string;
}

function imageIdOfPath(file: string): string {
  return path.basename(file).replace(/\.[^.]+$/, "");
}

function toItems(input: FeatureInput, backbone: FeatureBackbone): Item[] {
  if (Array.isArray(input)) {
    return (input as readonly (string | LesionRecord)[]).map((entry, index) =>
      typeof entry === "string"
        ? { index, imageId: imageIdOfPath(entry), file: entry }
        : { index, imageId: entry.imageId, file: entry.imagePath },
    );
  }
  const { pixels, count, imageIds } = input as { pixels: Uint8Array; count: number; imageIds?: readonly string[] };
  const perImage = backbone.inputSizePx * backbone.inputSizePx * 3;
  if (pixels.length !== count * perImage) {
    throw new FeatureInputError(
      `pixels: received ${pixels.length} bytes for count ${count}; ${backbone.name} needs ${backbone.inputSizePx}×${backbone.inputSizePx}×3 = ${perImage} bytes per image (${count * perImage} in all)`,
    );
  }
  if (imageIds && imageIds.length !== count) {
    throw new FeatureInputError(`imageIds: received ${imageIds.length} ids for ${count} images`);
  }
  return Array.from({ length: count }, (_, index) => ({
    index,
    imageId: imageIds?.[index] ?? `pixels-${index}`,
    pixels: pixels.subarray(index * perImage, (index + 1) * perImage),
  }));
}

/**
 * The cache folder for one backbone + weights + resize policy: entries are
 * `<sha256 of the image file bytes (or pixel bytes)>.f32`, featureDim float32 values each.
 * The runtime is not part of the key: ONNX Runtime and tfjs run the same weights (same
 * weightsId) and agree within 1e-4, so an entry written by one is reused by the other.
 *
 * @example featureCacheFolder("/tmp/cache", backbone, "center-crop") // "/tmp/cache/mobilenet_v2-3f2a…"
 */
export function featureCacheFolder(cacheDir: string, backbone: FeatureBackbone, resizePolicy: ResizePolicy): string {
  const key = JSON.stringify([backbone.name, backbone.weightsId, backbone.featureLayerName, backbone.inputSizePx, backbone.preprocessing, resizePolicy]);
  const digest = crypto.createHash("sha256").update(key).digest("hex").slice(0, 16);
  return path.join(cacheDir, `${backbone.name.replace(/[^A-Za-z0-9_.-]/g, "_")}-${digest}`);
}

async function readCached(file: string, featureDim: number): Promise<Float32Array | undefined> {
  try {
    const buf = await fs.promises.readFile(file);
    if (buf.length !== featureDim * 4) return undefined;
    const out = new Float32Array(featureDim);
    new Uint8Array(out.buffer).set(buf);
    return out;
  } catch {
    return undefined;
  }
}

async function writeCached(file: string, row: Float32Array): Promise<void> {
  const tmp = `${file}.${process.pid}.${crypto.randomUUID()}.tmp`;
  await fs.promises.writeFile(tmp, new Uint8Array(row.buffer, row.byteOffset, row.byteLength));
  await fs.promises.rename(tmp, file);
}

function problemOf(item: Item, err: unknown): InputProblem {
  return { file: item.file ?? item.imageId, reason: err instanceof Error ? err.message : String(err) };
}

/**
 * Runs `backbone` over images in batches and returns pooled features [rows, featureDim].
 * Files are decoded with {@link decodeImageRgb} (the next batch decodes while the current one
 * runs), preprocessed with backbone.preprocessing, and each forward pass is tidied so tensor
 * count stays flat. The forward passes run on ONNX Runtime when onnxruntime-node loads — on
 * `backbone.onnx`, or on the tfjs model converted to ONNX once and cached (ensureBackboneOnnx,
 * `.cache/onnx`) — else on tfjs through `backbone.model` (`options.runtime` /
 * `MELANOMA_LAB_RUNTIME` force either; the result's `runtime` says which ran and why). With `cacheDir`, features are stored per image under a key of backbone
 * name + weightsId + sha256 of the file bytes, so reruns skip the forward pass. Unreadable
 * images become `problems` and the rest go on.
 *
 * @example
 * const { features, rows, featureDim, problems } = await extractFeatures(backbone, records, {
 *   batchSize: 16, cacheDir: ".cache/features", onProgress: (d, t) => console.log(`${d}/${t}`),
 * });
 */
export async function extractFeatures(backbone: FeatureBackbone, input: FeatureInput, options: ExtractFeaturesOptions = {}): Promise<FeatureMatrix> {
  const started = performance.now();
  const batchSize = options.batchSize ?? 16;
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new FeatureInputError(`batchSize: received ${batchSize}, expected a positive integer`);
  const resizePolicy = options.resizePolicy ?? "center-crop";
  const { featureDim, inputSizePx } = backbone;
  const transform = options.pixelTransform;
  const items = toItems(input, backbone);
  const total = items.length;
  const rowsByIndex = new Map<number, Float32Array>();
  const problems: InputProblem[] = [];
  const cacheFolder = options.cacheDir ? featureCacheFolder(options.cacheDir, backbone, resizePolicy) : undefined;
  if (cacheFolder) await fs.promises.mkdir(cacheFolder, { recursive: true });
  let cacheHits = 0;
  // Unless tfjs is forced, a tfjs backbone is converted to ONNX first (once per machine, cached)
  // when ONNX Runtime loads: 3–4× the img/s of tfjs wasm on the same weights. A model that does
  // not convert stays on tfjs, and the runtime line says why.
  let conversionProblem: string | undefined;
  const requested = parseRuntimeName(options.runtime ?? process.env[RUNTIME_ENV]);
  // `model` is read only when tfjs would run: the ONNX path never touches it.
  if (requested === "tfjs" && "tfjsUnavailableReason" in backbone) {
    throw new OnnxRuntimeOnlyError(`runtime: received "tfjs", but backbone ${backbone.name} runs only on ONNX Runtime (${backbone.tfjsUnavailableReason}); expected "onnx" or "auto"`);
  }
  const converting = !backbone.onnx && (requested === "onnx" || (requested === undefined && "ort" in (await loadOnnxRuntime())));
  // The converted file is used for this call only: `backbone` is left as it is, so a copy of it
  // with another model never inherits a file made from these weights.
  let onnxFile = backbone.onnx;
  if (converting) {
    // Loaded only here: the converter pulls in the ONNX protobuf schema.
    const { convertBackboneToOnnxFile, OnnxExportError } = await import("./onnxConvert.js");
    try {
      onnxFile = convertBackboneToOnnxFile(requireTfjsBackbone(backbone, "ONNX conversion"), { cacheDir: options.onnxCacheDir });
    } catch (err) {
      if (!(err instanceof OnnxExportError)) throw err;
      conversionProblem = err.message;
    }
  }
  // What ONNX Runtime needs, read field by field (a backbone may carry its fields on a prototype).
  const onnxRunner = {
    name: backbone.name,
    inputSizePx: backbone.inputSizePx,
    featureDim: backbone.featureDim,
    preprocessing: backbone.preprocessing,
    onnx: onnxFile,
  };
  const runtime = await selectInferenceRuntime({
    modelName: conversionProblem
      ? `${backbone.name} (does not convert to ONNX: ${conversionProblem})`
      : converting
        ? `${backbone.name} (converted from tfjs, cached)`
        : backbone.name,
    onnxPath: onnxFile?.path,
    preferred: options.runtime,
    ortThreads: options.ortThreads,
  });
  if (runtime.runtime !== "onnx" && !backbone.model) {
    throw new OnnxRuntimeOnlyError(`backbone ${backbone.name} runs only on ONNX Runtime, which is not available: ${runtime.reason}`);
  }

  const perImage = inputSizePx * inputSizePx * 3;
  type Prepared = { item: Item; cachedRow?: Float32Array; pixels?: Uint8Array };
  // Each file is read once: its bytes give the cache key and, on a miss, are what gets decoded.
  const prepare = async (item: Item): Promise<Prepared | undefined> => {
    let bytes: Uint8Array | undefined = item.pixels;
    if (cacheFolder) {
      try {
        bytes ??= await fs.promises.readFile(item.file!);
      } catch (err) {
        problems.push({ file: item.file ?? item.imageId, reason: `cannot read file (${err instanceof Error ? err.message : String(err)}); expected a readable image file` });
        return undefined;
      }
      const hash = crypto.createHash("sha256").update(item.pixels ? "pixels:" : "file:");
      if (transform) hash.update(`transform:${transform.name}:`);
      item.key = hash.update(bytes).digest("hex");
      const cachedRow = await readCached(path.join(cacheFolder, `${item.key}.f32`), featureDim);
      if (cachedRow) return { item, cachedRow };
    }
    try {
      const rgb = item.pixels ?? (await decodeImageRgb(item.file!, inputSizePx, resizePolicy, bytes));
      return { item, pixels: transform ? transform.apply(rgb, inputSizePx) : rgb };
    } catch (err) {
      problems.push(problemOf(item, err));
      return undefined;
    }
  };
  const prepareBatch = async (batch: Item[]): Promise<Prepared[]> =>
    (await Promise.all(batch.map(prepare))).filter((d): d is Prepared => d !== undefined);

  const batches: Item[][] = [];
  for (let i = 0; i < items.length; i += batchSize) batches.push(items.slice(i, i + batchSize));
  let done = 0;
  options.onProgress?.(done, total);
  // The next batch is read, looked up and decoded while the current one runs through the model.
  let next = batches.length > 0 ? prepareBatch(batches[0]) : undefined;
  let computed = 0;
  for (let b = 0; b < batches.length; b++) {
    const prepared = await next!;
    next = b + 1 < batches.length ? prepareBatch(batches[b + 1]) : undefined;
    const ready: { item: Item; pixels: Uint8Array }[] = [];
    for (const p of prepared) {
      if (p.cachedRow) {
        rowsByIndex.set(p.item.index, p.cachedRow);
        cacheHits++;
      } else ready.push({ item: p.item, pixels: p.pixels! });
    }
    if (ready.length > 0) {
      const packed = new Uint8Array(ready.length * perImage);
      ready.forEach((d, i) => packed.set(d.pixels, i * perImage));
      let values: Float32Array;
      if (runtime.runtime === "onnx") {
        // The ONNX path never touches backbone.model: an imported ONNX backbone may have none yet.
        values = await predictOnnxFeatures(onnxRunner, packed, ready.length, runtime.ortThreads!);
      } else {
        const x = preprocessImages(packed, ready.length, inputSizePx, backbone.preprocessing);
        try {
          const y = predictBackboneFeatures(requireTfjsBackbone(backbone, "tfjs feature extraction"), x);
          values = y.dataSync() as Float32Array;
          y.dispose();
        } finally {
          x.dispose();
        }
      }
      const writes: Promise<void>[] = [];
      ready.forEach((d, i) => {
        const row = values.slice(i * featureDim, (i + 1) * featureDim);
        rowsByIndex.set(d.item.index, row);
        if (cacheFolder && d.item.key) writes.push(writeCached(path.join(cacheFolder, `${d.item.key}.f32`), row));
      });
      await Promise.all(writes);
      computed += ready.length;
    }
    done += batches[b].length;
    options.onProgress?.(done, total);
  }

  const kept = items.filter((it) => rowsByIndex.has(it.index));
  const features = new Float32Array(kept.length * featureDim);
  kept.forEach((it, r) => features.set(rowsByIndex.get(it.index)!, r * featureDim));
  return {
    features,
    featureDim,
    rows: kept.length,
    imageIds: kept.map((it) => it.imageId),
    sourceIndices: kept.map((it) => it.index),
    problems,
    cacheHits,
    computed,
    elapsedMs: performance.now() - started,
    cacheFolder,
    runtime,
  };
}
