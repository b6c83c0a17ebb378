import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import * as tf from "@tensorflow/tfjs";
import { loadOnnxRuntime, selectInferenceRuntime } from "../backend/selectRuntime.js";
import { bootstrapMetric, type BootstrapGroupIds } from "../evaluate/bootstrap.js";
import { computeMetricsAtThreshold, computeRocAuc } from "../evaluate/metrics.js";
import { MODEL_JSON_FILE, readModelArtifactsFromDir, WEIGHTS_BIN_FILE } from "../models/modelFiles.js";
import { OnnxExportError } from "../models/onnxConvert.js";
import { MelanomaLabError } from "../util/errors.js";
import { MODEL_CARD_MD_FILE, renderModelCardMarkdown, type TriageMetricInterval } from "./modelCard.js";
import { exportTriageModelOnnx } from "./onnxExport.js";
import { openOnnxTriageScorer } from "./onnxScoring.js";
import {
  exportTriageModel,
  loadTriageModel,
  METADATA_JSON_FILE,
  predictMalignantProbabilities,
  requireEveryImageScored,
  type LoadedTriageModel,
  type TriageModelMetadata,
} from "./triageModel.js";

/** Thrown when a variant cannot be written or measured as asked (unknown dtype, bad operating point, …). */
export class TriageVariantError extends MelanomaLabError {}

/** Storage type of a triage model variant's weights: as trained, half precision, or 8-bit affine-quantized. */
export type TriageWeightDtype = "float32" | "float16" | "uint8";

/** Every variant dtype, largest first (the order of the comparison table). */
export const TRIAGE_WEIGHT_DTYPES: readonly TriageWeightDtype[] = ["float32", "float16", "uint8"];

/** Folder inside the float32 model folder holding one loadable model folder per smaller variant: `variants/<dtype>/`. */
export const VARIANTS_DIR = "variants";

/** A named probability threshold to re-measure each variant at, e.g. `{ name: "urgent", thresholdProb: 0.31 }`. */
export interface TriageOperatingPoint {
  /** Level or rule name, e.g. "urgent" or "reassure". */
  name: string;
  /** Probability of malignant at or above which an image counts as positive for this point. */
  thresholdProb: number;
}

/** A variant's sensitivity and specificity at one operating point, re-measured on validation images. */
export interface TriageVariantOperatingPoint extends TriageOperatingPoint {
  /** Malignant validation images scored ≥ thresholdProb / malignant images. */
  sensitivity: number;
  /** Benign validation images scored < thresholdProb / benign images. */
  specificity: number;
}

/** A variant re-measured on validation images from its own files (decode → preprocess → its dequantized weights). */
export interface TriageVariantValidation {
  /** Which images, e.g. "validation split (re-scored from image files by this variant)". */
  description: string;
  images: number;
  malignant: number;
  benign: number;
  rocAuc: number;
  /** ROC AUC interval, named as what it is (absent when no bootstrap was asked for). */
  rocAucInterval?: TriageMetricInterval;
  operatingPoints: TriageVariantOperatingPoint[];
  /** max over validation images of |P(variant) − P(float32 files)|; 0 for the float32 model itself. */
  maxAbsProbabilityDifferenceFromFloat32: number;
  /** Mean over validation images of |P(variant) − P(float32 files)|. */
  meanAbsProbabilityDifferenceFromFloat32: number;
  /**
   * Where the variant's files were re-scored: the tfjs backend (e.g. "wasm"), or ONNX Runtime on
   * the variant's dequantized weights converted to ONNX, e.g. "onnxruntime-node 1.30.0 (…)"
   * (float rounding differs between runtimes by ~1e-6, far below the quantization error).
   */
  scoredOnBackend: string;
}

/** What a variant is, how big, and how it scored: `metadata.variant` of each variant folder, and one row of `metadata.variants`. */
export interface TriageVariantMetadata {
  dtype: TriageWeightDtype;
  /** How the weights are stored, in words. */
  weightEncoding: string;
  /** Folder relative to the float32 model folder ("." for float32 itself, e.g. "variants/uint8"). */
  relativeDir: string;
  /** Bytes of model.json + weights.bin (what a browser downloads, metadata aside). */
  modelBytes: number;
  /** Bytes of weights.bin alone. */
  weightsBytes: number;
  /** weightsBytes / the float32 variant's weightsBytes (≈ 1, 0.5, 0.25). */
  weightsBytesRelativeToFloat32: number;
  /** Absent when the export was given no validation images. */
  validation?: TriageVariantValidation;
}

const WEIGHT_ENCODING: Record<TriageWeightDtype, string> = {
  float32: "float32 weights as trained",
  float16: "float16 weights (tfjs weight quantization, dequantized to float32 on load)",
  uint8:
    "uint8 affine-quantized weights per tensor (tfjs weight quantization: value = q·scale + min; 0 exact); BatchNorm parameters and statistics float16",
};

const float32Scratch = new Float32Array(1);
const uint32Scratch = new Uint32Array(float32Scratch.buffer);

/**
 * IEEE 754 half-precision bits of a number, rounded to nearest, ties to even (as numpy's
 * `astype(np.float16)` that tfjs-converter uses); overflow gives ±Infinity, NaN stays NaN.
 *
 * @example encodeFloat16(1) // 0x3c00
 */
export function encodeFloat16(value: number): number {
  float32Scratch[0] = value;
  const bits = uint32Scratch[0];
  const sign = (bits >>> 16) & 0x8000;
  const exponent = (bits >>> 23) & 0xff;
  const mantissa = bits & 0x7fffff;
  if (exponent === 0xff) return sign | 0x7c00 | (mantissa !== 0 ? 0x200 : 0);
  const halfExponent = exponent - 127 + 15;
  if (halfExponent >= 0x1f) return sign | 0x7c00;
  if (halfExponent <= 0) {
    // Subnormal half (or zero): shift the full significand (implicit 1 included) into 10 bits.
    if (halfExponent < -10) return sign;
    const significand = mantissa | 0x800000;
    const shift = 14 - halfExponent;
    const half = significand >>> shift;
    const rest = significand & ((1 << shift) - 1);
    const halfway = 1 << (shift - 1);
    return sign | (rest > halfway || (rest === halfway && (half & 1) === 1) ? half + 1 : half);
  }
  const half = (halfExponent << 10) | (mantissa >>> 13);
  const rest = mantissa & 0x1fff;
  // A carry out of the mantissa correctly bumps the exponent (up to Infinity).
  return sign | (rest > 0x1000 || (rest === 0x1000 && (half & 1) === 1) ? half + 1 : half);
}

/**
 * 8-bit affine quantization of one tensor as tfjs-converter does it: the range [min, max] is
 * widened to hold 0, then nudged so 0 falls exactly on a code (zero padding and zero biases stay
 * exact); q = round((v − min) / scale), value on load = q·scale + min. A constant tensor gets
 * scale 1 and min its value.
 *
 * @example quantizeUint8Affine(Float32Array.of(-1, 0, 2)) // { codes: [0, 85, 255], scale: 3/255, min: -1 }
 */
export function quantizeUint8Affine(values: Float32Array): { codes: Uint8Array; scale: number; min: number } {
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of values) {
    if (!Number.isFinite(v))
      throw new TriageVariantError(`uint8 quantization: received weight value ${v}; expected finite numbers`);
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  if (values.length === 0 || lo === hi) {
    return { codes: new Uint8Array(values.length), scale: 1, min: values.length === 0 ? 0 : lo };
  }
  lo = Math.min(lo, 0);
  hi = Math.max(hi, 0);
  const scale = (hi - lo) / 255;
  const zeroPoint = Math.round(-lo / scale);
  const min = -zeroPoint * scale;
  const max = 255 * scale + min;
  const codes = new Uint8Array(values.length);
  for (let i = 0; i < values.length; i++) {
    const clipped = Math.min(Math.max(values[i], min), max);
    codes[i] = Math.min(255, Math.max(0, Math.round((clipped - min) / scale)));
  }
  return { codes, scale, min };
}

/**
 * BatchNorm parameters and statistics are stored float16 in the uint8 variant: one step of a
 * per-tensor uint8 grid over a moving variance spanning [0, 347] (MobileNetV2's first
 * depthwise BN) is 1.4, so small variances become 0 and their channels blow up (P(malignant)
 * moved by up to 0.24 on HAM10000 images). They are about 6% of MobileNetV2's weights.
 */
function isBatchNormWeight(name: string): boolean {
  return /(^|\/)(moving_mean|moving_variance|gamma|beta)$/.test(name);
}

/** Bytes of the files a variant folder is downloaded as (model.json + weights.bin). */
function measureModelFileBytes(dir: string): { modelBytes: number; weightsBytes: number } {
  const weightsBytes = fs.statSync(path.join(dir, WEIGHTS_BIN_FILE)).size;
  return { modelBytes: weightsBytes + fs.statSync(path.join(dir, MODEL_JSON_FILE)).size, weightsBytes };
}

/**
 * Writes `model.json` + `weights.bin` of a float16 or uint8 copy of the float32 tfjs model in
 * `sourceDir` into `destDir` (created): every float32 weight is stored quantized, its
 * weightsManifest entry carrying `quantization: { dtype: "float16" }` or `{ dtype: "uint8",
 * scale, min }` as tfjs-converter writes them, so tfjs's loadLayersModel dequantizes on load.
 * Other weights (int32) are copied as they are. Throws {@link TriageVariantError} for another
 * dtype, a source that is already quantized, or a weight too large for float16 (|w| > 65504).
 *
 * @example writeQuantizedModelFiles("models/demo", "models/demo/variants/uint8", "uint8") // { modelBytes: 3.6e6, weightsBytes: 3.5e6 }
 */
export function writeQuantizedModelFiles(
  sourceDir: string,
  destDir: string,
  dtype: Exclude<TriageWeightDtype, "float32">,
): { modelBytes: number; weightsBytes: number } {
  if (dtype !== "float16" && dtype !== "uint8") {
    throw new TriageVariantError(`quantized dtype: received ${JSON.stringify(dtype)}; expected "float16" or "uint8"`);
  }
  const artifacts = readModelArtifactsFromDir(sourceDir);
  const source = new Uint8Array(artifacts.weightData as ArrayBuffer);
  const parts: Uint8Array[] = [];
  const specs: tf.io.WeightsManifestEntry[] = [];
  let offset = 0;
  for (const spec of artifacts.weightSpecs ?? []) {
    if (spec.quantization) {
      throw new TriageVariantError(
        `${path.join(sourceDir, MODEL_JSON_FILE)}: weight ${spec.name} is already quantized (${spec.quantization.dtype}); expected the float32 model`,
      );
    }
    const count = spec.shape.reduce((a, b) => a * b, 1);
    const byteLength = count * (spec.dtype === "bool" ? 1 : 4);
    const bytes = source.slice(offset, offset + byteLength);
    offset += byteLength;
    if (spec.dtype !== "float32") {
      parts.push(bytes);
      specs.push(spec);
      continue;
    }
    const values = new Float32Array(bytes.buffer, 0, count);
    if (dtype === "float16" || isBatchNormWeight(spec.name)) {
      const halves = new Uint16Array(count);
      for (let i = 0; i < count; i++) {
        halves[i] = encodeFloat16(values[i]);
        if ((halves[i] & 0x7fff) === 0x7c00 && Number.isFinite(values[i])) {
          throw new TriageVariantError(
            `${path.join(sourceDir, MODEL_JSON_FILE)}: weight ${spec.name}[${i}] is ${values[i]}, beyond float16's largest finite value 65504; expected |weights| ≤ 65504 for a float16 variant (export float32 or uint8 instead)`,
          );
        }
      }
      parts.push(new Uint8Array(halves.buffer));
      specs.push({ ...spec, quantization: { dtype: "float16" } });
    } else {
      const { codes, scale, min } = quantizeUint8Affine(values);
      parts.push(codes);
      specs.push({ ...spec, quantization: { dtype: "uint8", scale, min } });
    }
  }
  const modelJson = JSON.parse(fs.readFileSync(path.join(sourceDir, MODEL_JSON_FILE), "utf8")) as tf.io.ModelJSON;
  modelJson.weightsManifest = [{ paths: [`./${WEIGHTS_BIN_FILE}`], weights: specs }];
  fs.mkdirSync(destDir, { recursive: true });
  fs.writeFileSync(path.join(destDir, WEIGHTS_BIN_FILE), Buffer.concat(parts));
  fs.writeFileSync(path.join(destDir, MODEL_JSON_FILE), JSON.stringify(modelJson));
  return measureModelFileBytes(destDir);
}

/** Validation images a variant is re-measured on: one label (1 malignant, 0 benign) per image path. */
export interface TriageVariantValidationImages {
  imagePaths: readonly string[];
  labels: ArrayLike<number>;
  /** Patient/lesion group per image (e.g. assignGroupIds(records)), so the AUC bootstrap resamples groups. */
  groupIds?: BootstrapGroupIds;
  /** Default "validation split (re-scored from image files by each variant)". */
  description?: string;
}

/** Options of {@link exportTriageModelVariants}. */
export interface TriageVariantExportOptions {
  /** Images to re-measure every variant on; without them sizes are recorded but no metrics. */
  validation?: TriageVariantValidationImages;
  /** Thresholds to re-measure at; default `[{ name: "urgent", thresholdProb: metadata.thresholdProb }]`. */
  operatingPoints?: readonly TriageOperatingPoint[];
  /** Variants to write besides float32 (always written); default ["float16", "uint8"]. */
  quantizedDtypes?: readonly Exclude<TriageWeightDtype, "float32">[];
  /** Percentile bootstrap of each variant's validation ROC AUC; absent = no interval. */
  bootstrap?: { seed: number; iterations?: number; confidenceLevel?: number };
  /** Images per inference batch; default 16. */
  batchSize?: number;
}

/** One written variant: its folder and what its metadata.json records under `variant`. */
export interface ExportedTriageVariant extends TriageVariantMetadata {
  /** Absolute or caller-relative path of the loadable model folder. */
  dir: string;
}

function checkOperatingPoints(points: readonly TriageOperatingPoint[]): void {
  if (points.length === 0)
    throw new TriageVariantError(
      'operatingPoints: received []; expected at least one, e.g. [{ name: "urgent", thresholdProb: 0.3 }]',
    );
  const seen = new Set<string>();
  for (const p of points) {
    if (typeof p.name !== "string" || p.name === "" || seen.has(p.name)) {
      throw new TriageVariantError(
        `operatingPoints: name ${JSON.stringify(p.name)} is empty or repeated; expected distinct names such as "urgent", "reassure"`,
      );
    }
    seen.add(p.name);
    if (!(p.thresholdProb >= 0 && p.thresholdProb <= 1)) {
      throw new TriageVariantError(
        `operatingPoints ${p.name}: thresholdProb received ${p.thresholdProb}; expected a probability in [0, 1]`,
      );
    }
  }
}

/**
 * ROC AUC, sensitivity/specificity at each operating point, and the distance to the float32
 * probabilities, of one variant's probabilities on validation images.
 */
function measureVariantValidation(
  probs: Float32Array,
  reference: Float32Array,
  images: TriageVariantValidationImages,
  points: readonly TriageOperatingPoint[],
  bootstrap: TriageVariantExportOptions["bootstrap"],
): TriageVariantValidation {
  const labels = Array.from(images.labels);
  let maxDiff = 0;
  let sumDiff = 0;
  for (let i = 0; i < probs.length; i++) {
    const d = Math.abs(probs[i] - reference[i]);
    maxDiff = Math.max(maxDiff, d);
    sumDiff += d;
  }
  const malignant = labels.filter((y) => y === 1).length;
  let rocAucInterval: TriageMetricInterval | undefined;
  if (bootstrap) {
    const interval = bootstrapMetric(labels, probs, computeRocAuc, {
      seed: bootstrap.seed,
      iterations: bootstrap.iterations,
      confidenceLevel: bootstrap.confidenceLevel,
      groupIds: images.groupIds,
    });
    rocAucInterval = {
      kind: `${Math.round(interval.confidenceLevel * 100)}% percentile bootstrap confidence interval`,
      lower: interval.lower,
      upper: interval.upper,
      confidenceLevel: interval.confidenceLevel,
      iterations: interval.iterations,
      seed: interval.seed,
      resampled: images.groupIds ? "patient/lesion groups" : "images",
    };
  }
  return {
    description: images.description ?? "validation split (re-scored from image files by each variant)",
    images: labels.length,
    malignant,
    benign: labels.length - malignant,
    rocAuc: computeRocAuc(labels, probs),
    ...(rocAucInterval ? { rocAucInterval } : {}),
    operatingPoints: points.map((p) => {
      const m = computeMetricsAtThreshold(labels, probs, p.thresholdProb);
      return { name: p.name, thresholdProb: p.thresholdProb, sensitivity: m.sensitivity, specificity: m.specificity };
    }),
    maxAbsProbabilityDifferenceFromFloat32: maxDiff,
    meanAbsProbabilityDifferenceFromFloat32: probs.length === 0 ? 0 : sumDiff / probs.length,
    scoredOnBackend: tf.getBackend(),
  };
}

/**
 * A loaded variant's probabilities for image files: on ONNX Runtime when it loads (its
 * dequantized weights written as ONNX to a temporary folder: 4–5× the img/s of tfjs wasm),
 * else, or when the model does not convert, on tfjs. The runtime and ONNX Runtime's threads are
 * chosen as for every other frozen model (selectInferenceRuntime: `MELANOMA_LAB_RUNTIME`,
 * `MELANOMA_LAB_ORT_THREADS`).
 */
async function scoreVariantImages(
  loaded: LoadedTriageModel,
  imagePaths: readonly string[],
  batchSize: number | undefined,
): Promise<{ probs: Float32Array; scoredOn: string }> {
  const ort = await loadOnnxRuntime();
  if ("ort" in ort) {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "melanoma-variant-"));
    try {
      const { onnx: _onnx, ...metadata } = loaded.metadata;
      const exported = await exportTriageModelOnnx(tmp, loaded.model, metadata);
      const runtime = await selectInferenceRuntime({ modelName: "the variant", onnxPath: exported.path });
      if (runtime.runtime === "onnx") {
        const scorer = await openOnnxTriageScorer(tmp, { batchSize, threads: runtime.ortThreads });
        try {
          return {
            probs: requireEveryImageScored(await scorer.predict(imagePaths)),
            scoredOn: `onnxruntime-node ${ort.version} (the variant's dequantized weights converted to ONNX)`,
          };
        } finally {
          await scorer.release();
        }
      }
    } catch (err) {
      if (!(err instanceof OnnxExportError)) throw err;
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  }
  return {
    probs: await predictMalignantProbabilities(loaded, imagePaths, { batchSize }),
    scoredOn: tf.getBackend(),
  };
}

function writeMetadataAndCard(dir: string, metadata: TriageModelMetadata): void {
  fs.writeFileSync(path.join(dir, METADATA_JSON_FILE), JSON.stringify(metadata, null, 2));
  fs.writeFileSync(path.join(dir, MODEL_CARD_MD_FILE), renderModelCardMarkdown(metadata));
}

/**
 * The one-call export of a triage model (single backbone or ensemble) in every weight size:
 * float32 into `dir` (exportTriageModel: model.json, weights.bin, metadata.json), then float16
 * and uint8 copies into `dir/variants/<dtype>/`, each a folder loadTriageModel loads. Every
 * variant is loaded back from its own files and re-scored on the validation images: ROC AUC
 * (with a bootstrap interval when `bootstrap` is given), sensitivity and specificity at each
 * operating point, and its distance to the float32 probabilities. Each folder's metadata.json
 * records its own `variant` and the comparison of all (`variants`), and a MODEL_CARD.md
 * (renderModelCardMarkdown) is written beside it, so a user can pick the smallest acceptable one.
 * Returns the variants, the comparison as markdown, and the float32 folder's metadata as written.
 * With ONNX: call exportTriageModelOnnx first and pass the metadata it returns, so metadata.json
 * and MODEL_CARD.md of the float32 folder keep `onnx` (the quantized folders, which hold no
 * model.onnx, drop it); exportTriageModelOnnx afterwards would rewrite metadata.json without
 * the variants.
 *
 * @example
 * const { variants, comparisonMarkdown } = await exportTriageModelVariants(config.paths.modelDir, triageModel, metadata, {
 *   validation: { imagePaths: validationRecords.map((r) => r.imagePath), labels: validation.labels, groupIds: assignGroupIds(validationRecords) },
 *   operatingPoints: [{ name: "urgent", thresholdProb: metadata.thresholdProb }],
 *   bootstrap: { seed: config.seed, iterations: 500 },
 * });
 * console.log(comparisonMarkdown); // | variant | size | ROC AUC | urgent sens. / spec. | max |Δp| |
 */
export async function exportTriageModelVariants(
  dir: string,
  model: tf.LayersModel,
  metadata: TriageModelMetadata,
  options: TriageVariantExportOptions = {},
): Promise<{ variants: ExportedTriageVariant[]; comparisonMarkdown: string; metadata: TriageModelMetadata }> {
  const quantized = options.quantizedDtypes ?? ["float16", "uint8"];
  for (const dtype of quantized) {
    if (dtype !== "float16" && dtype !== "uint8") {
      throw new TriageVariantError(`quantizedDtypes: received ${JSON.stringify(dtype)}; expected "float16" or "uint8"`);
    }
  }
  const points = options.operatingPoints ?? [{ name: "urgent", thresholdProb: metadata.thresholdProb }];
  checkOperatingPoints(points);
  const images = options.validation;
  if (images && images.imagePaths.length !== images.labels.length) {
    throw new TriageVariantError(
      `validation: received ${images.imagePaths.length} image paths and ${images.labels.length} labels; expected one label per image`,
    );
  }
  // Older runs' variant folders would otherwise be listed in the float32 folder's byte count.
  fs.rmSync(path.join(dir, VARIANTS_DIR), { recursive: true, force: true });
  const { variant: _v, variants: _vs, ...base } = metadata;
  // model.onnx is the float32 model and lives only in the float32 folder.
  const { onnx: _onnx, ...quantizedBase } = base;
  await exportTriageModel(dir, model, base);
  const folders: { dtype: TriageWeightDtype; dir: string; relativeDir: string }[] = [
    { dtype: "float32", dir, relativeDir: "." },
    ...[...new Set(quantized)].map((dtype) => ({
      dtype,
      dir: path.join(dir, VARIANTS_DIR, dtype),
      relativeDir: `${VARIANTS_DIR}/${dtype}`,
    })),
  ];
  const float32Bytes = measureModelFileBytes(dir);
  const variants: ExportedTriageVariant[] = [];
  let reference: Float32Array | undefined;
  for (const folder of folders) {
    const bytes = folder.dtype === "float32" ? float32Bytes : writeQuantizedModelFiles(dir, folder.dir, folder.dtype);
    if (folder.dtype !== "float32")
      fs.writeFileSync(path.join(folder.dir, METADATA_JSON_FILE), JSON.stringify(quantizedBase, null, 2));
    let validation: TriageVariantValidation | undefined;
    if (images) {
      const loaded = await loadTriageModel(folder.dir);
      try {
        const scored = await scoreVariantImages(loaded, images.imagePaths, options.batchSize);
        reference ??= scored.probs;
        validation = {
          ...measureVariantValidation(scored.probs, reference, images, points, options.bootstrap),
          scoredOnBackend: scored.scoredOn,
        };
      } finally {
        loaded.model.dispose();
      }
    }
    variants.push({
      dtype: folder.dtype,
      weightEncoding: WEIGHT_ENCODING[folder.dtype],
      relativeDir: folder.relativeDir,
      dir: folder.dir,
      ...bytes,
      weightsBytesRelativeToFloat32: bytes.weightsBytes / float32Bytes.weightsBytes,
      ...(validation ? { validation } : {}),
    });
  }
  const table: TriageVariantMetadata[] = variants.map(({ dir: _dir, ...row }) => row);
  const written = folders.map((folder, i) => {
    const own = { ...(folder.dtype === "float32" ? base : quantizedBase), variant: table[i], variants: table };
    writeMetadataAndCard(folder.dir, own);
    return own;
  });
  return { variants, comparisonMarkdown: formatVariantComparisonMarkdown(table), metadata: written[0] };
}

/**
 * The variants side by side as a markdown table: size, ROC AUC on validation (with its interval
 * when measured), sensitivity / specificity at each operating point, and max |Δp| from float32.
 *
 * @example formatVariantComparisonMarkdown(metadata.variants!) // "| variant | model MB | …"
 */
export function formatVariantComparisonMarkdown(variants: readonly TriageVariantMetadata[]): string {
  const pointNames = [...new Set(variants.flatMap((v) => v.validation?.operatingPoints.map((p) => p.name) ?? []))];
  const pct = (x: number) => (Number.isFinite(x) ? `${(100 * x).toFixed(1)}%` : "n/a");
  const header = [
    "variant",
    "model MB (model.json + weights.bin)",
    "weights vs float32",
    "validation ROC AUC",
    ...pointNames.map((n) => `${n}: sensitivity / specificity`),
    "max |p − p(float32)|",
  ];
  const rows = variants.map((v) => {
    const val = v.validation;
    const auc = val
      ? `${val.rocAuc.toFixed(4)}${val.rocAucInterval ? ` (${val.rocAucInterval.kind}: ${val.rocAucInterval.lower.toFixed(3)}–${val.rocAucInterval.upper.toFixed(3)})` : ""}`
      : "not measured";
    return [
      v.dtype,
      (v.modelBytes / 1e6).toFixed(2),
      `${(100 * v.weightsBytesRelativeToFloat32).toFixed(1)}%`,
      auc,
      ...pointNames.map((n) => {
        const p = val?.operatingPoints.find((q) => q.name === n);
        return p ? `${pct(p.sensitivity)} / ${pct(p.specificity)} (≥ ${p.thresholdProb.toFixed(4)})` : "not measured";
      }),
      val ? val.maxAbsProbabilityDifferenceFromFloat32.toExponential(2) : "not measured",
    ];
  });
  return [header, header.map(() => "---"), ...rows].map((r) => `| ${r.join(" | ")} |`).join("\n");
}
