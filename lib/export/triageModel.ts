import fs from "node:fs";
import path from "node:path";
import * as tf from "@tensorflow/tfjs";
import { decodeImageRgb, type ResizePolicy } from "../data/decodeImage.js";
import { LESION_LABELS, type InputProblem, type LesionLabel } from "../data/types.js";
import { compileInferencePlan, InferencePlanError, type InferencePlan } from "../models/inferencePlan.js";
import { preprocessImages } from "../models/preprocess.js";
import type { Backbone, PreprocessingSpec } from "../models/types.js";
import { MelanomaLabError } from "../util/errors.js";
import { loadLayersModelFromDir, ModelFileError, saveLayersModelToDir } from "./modelFiles.js";

/** Thrown when a head does not fit a backbone, or metadata is incomplete. */
export class TriageModelError extends MelanomaLabError {}

/** File name of the metadata written beside model.json. */
export const METADATA_JSON_FILE = "metadata.json";

/** What an exported triage model records beside its weights, so inference repeats training. */
export interface TriageModelMetadata {
  /** Format version of this file. */
  formatVersion: 1;
  /** Output order: probability is of labels[1]. */
  labels: readonly LesionLabel[];
  inputSizePx: number;
  preprocessing: PreprocessingSpec;
  resizePolicy: ResizePolicy;
  /** Probability of malignant at or above which an image is triaged "urgent". */
  thresholdProb: number;
  /** Validation metrics at export (e.g. rocAuc, sensitivity, specificity, images). */
  validationMetrics: Record<string, number>;
  backboneName: string;
  backboneWeightsId: string;
  featureLayerName: string;
  featureDim: number;
  /** ISO 8601 time of export. */
  createdAt: string;
  /** Compute backend that trained the head, e.g. "wasm". */
  backend: string;
  /** Free-form notes (dataset, split seed, …). */
  notes?: Record<string, string | number | boolean>;
}

/** A triage model loaded from disk, ready for {@link predictMalignantProbability}. */
export interface LoadedTriageModel {
  model: tf.LayersModel;
  metadata: TriageModelMetadata;
  dir: string;
}

/**
 * One model from preprocessed image to probability of malignant: the backbone's layers, its
 * pooled features, then the head's layers (shared, not copied), so it can be saved as one file
 * set. The head must be a chain of layers taking [featureDim] (as trainHead makes).
 * Weights are shared with `backbone.model` and `head`: disposing the triage model frees the
 * backbone's weights too, so dispose it only when the backbone is no longer needed.
 *
 * @example const triage = buildTriageModel(backbone, head); // [n,224,224,3] → [n,1]
 */
export function buildTriageModel(backbone: Backbone, head: tf.LayersModel): tf.LayersModel {
  const headInputDim = head.inputs[0].shape[head.inputs[0].shape.length - 1];
  if (head.inputs.length !== 1 || headInputDim !== backbone.featureDim) {
    throw new TriageModelError(
      `head input: received shape ${JSON.stringify(head.inputs[0].shape)}, expected [null, ${backbone.featureDim}] (featureDim of ${backbone.name})`,
    );
  }
  let x = backbone.model.outputs[0];
  for (const layer of head.layers) {
    if (layer.getClassName() === "InputLayer") continue;
    x = layer.apply(x) as tf.SymbolicTensor;
  }
  const units = x.shape[x.shape.length - 1];
  if (units !== 1) throw new TriageModelError(`head output: received ${units} units, expected 1 (probability of malignant)`);
  return tf.model({ inputs: backbone.model.inputs, outputs: x, name: `triage_${backbone.name}` });
}

/**
 * Metadata for {@link exportTriageModel} from a backbone, filling labels, sizes, timestamps and
 * the current backend.
 *
 * @example makeTriageMetadata(backbone, { thresholdProb: 0.31, validationMetrics: { rocAuc: 0.84 } })
 */
export function makeTriageMetadata(
  backbone: Backbone,
  fields: {
    thresholdProb: number;
    validationMetrics: Record<string, number>;
    resizePolicy?: ResizePolicy;
    /** Backend name to record (e.g. selectBackend()'s "wasm"); default tf.getBackend(). */
    backendName?: string;
    notes?: TriageModelMetadata["notes"];
  },
): TriageModelMetadata {
  return {
    formatVersion: 1,
    labels: LESION_LABELS,
    inputSizePx: backbone.inputSizePx,
    preprocessing: backbone.preprocessing,
    resizePolicy: fields.resizePolicy ?? "center-crop",
    thresholdProb: fields.thresholdProb,
    validationMetrics: fields.validationMetrics,
    backboneName: backbone.name,
    backboneWeightsId: backbone.weightsId,
    featureLayerName: backbone.featureLayerName,
    featureDim: backbone.featureDim,
    createdAt: new Date().toISOString(),
    backend: fields.backendName ?? tf.getBackend(),
    notes: fields.notes,
  };
}

/**
 * Writes `model.json`, `weights.bin` and `metadata.json` into `dir` (created if needed).
 *
 * @example await exportTriageModel("out/triage", triage, makeTriageMetadata(backbone, { thresholdProb: 0.3, validationMetrics: { rocAuc: 0.85 } }));
 */
export async function exportTriageModel(dir: string, model: tf.LayersModel, metadata: TriageModelMetadata): Promise<{ dir: string; bytes: number }> {
  if (!(metadata.thresholdProb >= 0 && metadata.thresholdProb <= 1)) {
    throw new TriageModelError(`metadata.thresholdProb: received ${metadata.thresholdProb}, expected a probability in [0, 1]`);
  }
  const inputSize = model.inputs[0].shape[1];
  if (inputSize !== metadata.inputSizePx) {
    throw new TriageModelError(`metadata.inputSizePx: received ${metadata.inputSizePx}, but the model input is ${JSON.stringify(model.inputs[0].shape)}`);
  }
  await saveLayersModelToDir(model, dir);
  await fs.promises.writeFile(path.join(dir, METADATA_JSON_FILE), JSON.stringify(metadata, null, 2));
  const bytes = fs.readdirSync(dir).reduce((n, f) => n + fs.statSync(path.join(dir, f)).size, 0);
  return { dir, bytes };
}

/**
 * Loads an exported triage model folder (model.json + weights.bin + metadata.json) with node:fs.
 * Throws {@link ModelFileError} naming the missing or invalid file.
 *
 * @example const triage = await loadTriageModel("out/triage");
 */
export async function loadTriageModel(dir: string): Promise<LoadedTriageModel> {
  const metaPath = path.join(dir, METADATA_JSON_FILE);
  if (!fs.existsSync(metaPath)) {
    throw new ModelFileError(metaPath, `missing (an exported triage model folder holds model.json, weights.bin and ${METADATA_JSON_FILE})`);
  }
  let metadata: TriageModelMetadata;
  try {
    metadata = JSON.parse(fs.readFileSync(metaPath, "utf8")) as TriageModelMetadata;
  } catch (err) {
    throw new ModelFileError(metaPath, `is not valid JSON (${err instanceof Error ? err.message : String(err)})`);
  }
  for (const field of ["inputSizePx", "preprocessing", "thresholdProb", "resizePolicy"] as const) {
    if (metadata[field] === undefined) throw new ModelFileError(metaPath, `lacks field ${field} (needed to repeat preprocessing and triage)`);
  }
  const model = await loadLayersModelFromDir(dir);
  return { model, metadata, dir };
}

/** Probability for one image, or why it could not be scored. */
export type ImagePrediction =
  | { imageId: string; imagePath: string; probability: number }
  | { imageId: string; imagePath: string; problem: InputProblem };

/**
 * Probability of malignant for each image file, decoded and preprocessed as the metadata says,
 * in batches. An unreadable image gives a `problem` entry and the rest go on.
 *
 * @example const preds = await predictMalignantProbability(triage, ["a.jpg", "b.jpg"]);
 */
export async function predictMalignantProbability(
  loaded: LoadedTriageModel,
  imagePaths: readonly string[],
  options: { batchSize?: number } = {},
): Promise<ImagePrediction[]> {
  const batchSize = options.batchSize ?? 16;
  // BatchNorm folded and activations fused (about 2× on wasm); compiled per call, freed at its end.
  let plan: InferencePlan | undefined;
  if (imagePaths.length > 1) {
    try {
      plan = compileInferencePlan(loaded.model);
    } catch (err) {
      if (!(err instanceof InferencePlanError)) throw err;
    }
  }
  const predict = (x: tf.Tensor) => (plan ? plan.predict(x) : tf.tidy(() => loaded.model.predict(x) as tf.Tensor));
  try {
    const results: ImagePrediction[] = [];
    for (let start = 0; start < imagePaths.length; start += batchSize) {
      results.push(...(await scoreImageBatch(loaded.metadata, imagePaths.slice(start, start + batchSize), predict)));
    }
    return results;
  } finally {
    plan?.dispose();
  }
}

/** Decodes one batch of files, runs `predict` on the readable ones, and reports the others. */
async function scoreImageBatch(
  metadata: TriageModelMetadata,
  batch: readonly string[],
  predict: (x: tf.Tensor) => tf.Tensor,
): Promise<ImagePrediction[]> {
  const { inputSizePx, preprocessing, resizePolicy } = metadata;
  const decoded = await Promise.all(
    batch.map(async (imagePath): Promise<{ imageId: string; imagePath: string; pixels?: Uint8Array; problem?: InputProblem }> => {
      const imageId = path.basename(imagePath).replace(/\.[^.]+$/, "");
      try {
        return { imageId, imagePath, pixels: await decodeImageRgb(imagePath, inputSizePx, resizePolicy) };
      } catch (err) {
        return { imageId, imagePath, problem: { file: imagePath, reason: err instanceof Error ? err.message : String(err) } };
      }
    }),
  );
  const ok = decoded.filter((d): d is { imageId: string; imagePath: string; pixels: Uint8Array } => d.pixels !== undefined);
  const probs = new Map<string, number>();
  if (ok.length > 0) {
    const perImage = inputSizePx * inputSizePx * 3;
    const packed = new Uint8Array(ok.length * perImage);
    ok.forEach((d, i) => packed.set(d.pixels, i * perImage));
    const x = preprocessImages(packed, ok.length, inputSizePx, preprocessing);
    const y = predict(x);
    const values = y.dataSync();
    tf.dispose([x, y]);
    ok.forEach((d, i) => probs.set(d.imagePath, values[i]));
  }
  return decoded.map((d) =>
    d.pixels
      ? { imageId: d.imageId, imagePath: d.imagePath, probability: probs.get(d.imagePath)! }
      : { imageId: d.imageId, imagePath: d.imagePath, problem: d.problem! },
  );
}
