import fs from "node:fs";
import path from "node:path";
import * as tf from "@tensorflow/tfjs";
import {
  applyColourConstancy,
  COLOUR_CONSTANCY_METHODS,
  TTA_DIHEDRAL_VIEWS,
  transformImageDihedral,
  type ColourConstancy,
} from "../data/augment.js";
import { decodeImageRgb, type ResizePolicy } from "../data/decodeImage.js";
import { LESION_LABELS, type InputProblem, type LesionLabel } from "../data/types.js";
import { compileInferencePlan, InferencePlanError } from "../models/inferencePlan.js";
import { compileNestedInferencePlan } from "../models/nestedInferencePlan.js";
import { preprocessToFloat32 } from "../models/preprocess.js";
import { requireTfjsBackbone } from "../models/runtimeOnlyBackbone.js";
import type { Backbone, PreprocessingSpec } from "../models/types.js";
import { MelanomaLabError } from "../util/errors.js";
import { loadLayersModelFromDir, ModelFileError, saveLayersModelToDir } from "../models/modelFiles.js";
import type { TriageMetricInterval, TriageModelCard } from "./modelCard.js";
import type { TriageVariantMetadata } from "./quantizedVariants.js";

/** Thrown when a head does not fit a backbone, or metadata is incomplete. */
export class TriageModelError extends MelanomaLabError {}

/** File name of the metadata written beside model.json. */
export const METADATA_JSON_FILE = "metadata.json";

/** One backbone of an ensemble triage model, as recorded in metadata.json (in model input order). */
export interface EnsembleMemberMetadata {
  /** Canonical member spec, e.g. "mobilenet_v1@1.0". */
  backboneName: string;
  backboneWeightsId: string;
  featureLayerName: string;
  featureDim: number;
  /** Side of this member's square input image. */
  inputSizePx: number;
  preprocessing: PreprocessingSpec;
}

/**
 * What an exported triage model records beside its weights, so inference repeats training.
 * For an ensemble (`ensembleMembers` set), the top-level fields describe the whole: backboneName
 * is the canonical spec ("mobilenet_v2+inception_v3"), featureDim the sum, inputSizePx (and
 * preprocessing) those of the member with the largest input, featureLayerName the members' joined by "+".
 */
export interface TriageModelMetadata {
  /** Format version of this file. */
  formatVersion: 1;
  /** Output order: probability is of labels[1]. */
  labels: readonly LesionLabel[];
  inputSizePx: number;
  preprocessing: PreprocessingSpec;
  resizePolicy: ResizePolicy;
  /**
   * Colour constancy applied to each decoded image before preprocessing, as in training (e.g.
   * "shades-of-gray"); absent in older files and for "none".
   */
  colourConstancy?: ColourConstancy;
  /** Probability of malignant at or above which an image is triaged "urgent". */
  thresholdProb: number;
  /**
   * Metrics on the images the threshold (and model choice) were tuned on: a validation split, or
   * the pooled out-of-fold predictions of cross-validation (see `description`). Absent when none.
   */
  validation?: TriageMetricsBlock;
  /** Metrics on held-out test images never used for training or tuning. Absent when none. */
  test?: TriageMetricsBlock;
  /** How `thresholdProb` was chosen and what it gave per fold and per source. Absent when not recorded. */
  threshold?: TriageThresholdProvenance;
  /**
   * Read-only back-compat: files written before `validation`/`test` existed hold their metrics
   * here, and they were not always validation metrics (the notebooks stored test-set AUC,
   * sensitivity and specificity; experiments pooled out-of-fold ones). Never written any more.
   * @deprecated read `validation` / `test`.
   */
  validationMetrics?: Record<string, number>;
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
  /**
   * Ensemble models only: one entry per model input, in input order (absent for a
   * single-backbone model, whose one input is inputSizePx with `preprocessing`).
   */
  ensembleMembers?: EnsembleMemberMetadata[];
  /** The same model as ONNX beside the tfjs files (written by exportTriageModelOnnx); absent when none. */
  onnx?: TriageOnnxMetadata;
  /** Model card: intended use, training data and licences, per-source results, limitations (see makeModelCard). */
  card?: TriageModelCard;
  /** Which weight variant this folder holds and how it re-measured (written by exportTriageModelVariants). */
  variant?: TriageVariantMetadata;
  /** Every exported variant side by side, float32 first (written by exportTriageModelVariants). */
  variants?: TriageVariantMetadata[];
  /** Calibrated three-level triage policy (fitTriagePolicy in lib/triage); absent in older files. */
  policy?: TriagePolicyMetadata;
}

// ── Triage policy as stored in metadata.json under `policy` (plain data, written by
// lib/triage's fitTriagePolicy; defined here because export must not import triage).

/** How raw probabilities are calibrated: temperature scaling or Platt scaling of the logit. */
export type CalibrationMethod = "temperature" | "platt";

/** Calibration quality on one set of probabilities: ECE (equal-width bins), Brier score, mean NLL (nats). */
export interface CalibrationQuality {
  ece: number;
  brier: number;
  nll: number;
}

/**
 * A calibration fitted on validation: p_cal = σ(slope · logit(clip(p)) + intercept), with ECE,
 * Brier and NLL on the same validation images before and after, e.g.
 * `{ method: "temperature", slope: 0.62, intercept: 0, temperature: 1.61, binCount: 10, before: { ece: 0.11, … }, after: { ece: 0.04, … }, … }`.
 */
export interface CalibrationMetadata {
  method: CalibrationMethod;
  /** 1 / temperature, or Platt's a (> 0: calibration keeps the order of the scores). */
  slope: number;
  /** 0 for temperature scaling, or Platt's b. */
  intercept: number;
  /** Temperature T = 1 / slope (temperature scaling only). */
  temperature?: number;
  /** How the method was picked: "lower validation NLL" or "chosen by caller". */
  selection: string;
  /** Every method fitted, with its validation NLL. */
  candidates: {
    method: CalibrationMethod;
    slope: number;
    intercept: number;
    validationNll: number;
    iterations: number;
  }[];
  /** Targets the fit minimised cross-entropy against. */
  targets: string;
  /** Probabilities are clipped to [ε, 1 − ε] before the logit; this is ε. */
  logitClipProb: number;
  /** Number of equal-width bins of the ECE. */
  binCount: number;
  /** Validation images the calibration was fitted on, and their classes. */
  images: number;
  malignant: number;
  benign: number;
  /** On the validation images, raw probabilities. */
  before: CalibrationQuality;
  /** On the validation images, calibrated probabilities. */
  after: CalibrationQuality;
}

/** Confusion counts at an operating point on validation (positive = at or above the threshold). */
export interface OperatingPointCounts {
  truePositives: number;
  falsePositives: number;
  trueNegatives: number;
  falseNegatives: number;
}

/**
 * One threshold on calibrated probability with what it achieved on validation, where "positive"
 * means at or above the threshold: sensitivity = malignant at/above / malignant, specificity =
 * benign below / benign, NPV = benign below / all below (null when nothing is below), PPV likewise.
 */
export interface TriageOperatingPointMetadata {
  /** Threshold on calibrated P(malignant). */
  thresholdProb: number;
  /** The same threshold on the model's raw output (calibration inverted). */
  rawThresholdProb: number;
  validationSensitivity: number;
  validationSpecificity: number;
  validationNpv: number | null;
  validationPpv: number | null;
  counts: OperatingPointCounts;
}

/** The `reassure` level: enabled with its operating point, or disabled with the reason shown to users. */
export type ReassureLevelMetadata =
  | (TriageOperatingPointMetadata & {
      enabled: true;
      /** NPV of "below the threshold" at the policy's prevalence (equals validationNpv at the validation prevalence). */
      npvAtPrevalence: number;
      /** The rule the threshold was chosen by, in words. */
      rule: string;
    })
  | {
      enabled: false;
      /** Plain-language reason, e.g. "no threshold reached NPV ≥ 0.99 on 120 validation images …". */
      reason: string;
      /** Highest NPV at prevalence of any threshold with enough images below it (null when none had). */
      bestNpvAtPrevalence: number | null;
      /** The rule that found no threshold, in words. */
      rule: string;
    };

/**
 * The calibrated three-level triage policy: `urgent` at calibrated P ≥ urgent.thresholdProb,
 * `reassure` below reassure.thresholdProb when that level is enabled, `routine` between; an
 * uncertain image (its TTA interval reaches the next level's threshold, or is wider than
 * `uncertainty.maxIntervalWidthProb`) moves up one level.
 */
export interface TriagePolicyMetadata {
  formatVersion: 1;
  targetSensitivity: number;
  targetNpv: number;
  /** Prevalence of malignant the NPV target is judged at. */
  prevalence: number;
  /** "validation" (the fitted images' malignant share) or "given" (passed by the caller). */
  prevalenceSource: "validation" | "given";
  /** Validation images the policy was fitted on; groups = distinct patient/lesion ids (null when not given). */
  validation: { images: number; malignant: number; benign: number; groups: number | null };
  calibration: CalibrationMetadata;
  /** Fewest validation images below the reassure threshold for that level to be enabled. */
  minReassureImages: number;
  /** Highest calibrated threshold with validation sensitivity ≥ targetSensitivity. */
  urgent: TriageOperatingPointMetadata & { rule: string };
  reassure: ReassureLevelMetadata;
  uncertainty: {
    /** Interval = calibrate(mean ± zValue · sd of the TTA view probabilities). */
    zValue: number;
    /** An interval wider than this (calibrated probability) escalates by one level. */
    maxIntervalWidthProb: number;
    /** The escalation rule in words. */
    rule: string;
  };
}

/** Where the ONNX copy of an exported triage model is, as recorded in metadata.json under `onnx`. */
export interface TriageOnnxMetadata {
  /** File name inside the model folder, e.g. "model.onnx". */
  file: string;
  /** ONNX operator set version, e.g. 13. */
  opset: number;
  /** Input names in model input order (one per ensemble member); each takes the preprocessed NHWC batch. */
  inputNames: string[];
  /** Output name: P(malignant), [n, 1]. */
  outputName: string;
}

/**
 * Metrics of an exported model on one set of images, with the counts they came from, e.g.
 * `{ description: "held-out test split", images: 200, malignant: 38, benign: 162, metrics: { rocAuc: 0.86, sensitivity: 0.9, specificity: 0.61 } }`.
 */
export interface TriageMetricsBlock {
  /** Which images and how they were scored. */
  description: string;
  images: number;
  /** Malignant images among them (absent when not known). */
  malignant?: number;
  /** Benign images among them (absent when not known). */
  benign?: number;
  /** Metric values (rates in [0, 1]; sensitivity/specificity at `thresholdProb`); null where undefined. */
  metrics: Record<string, number | null>;
  /** Intervals of some of `metrics`, by the same key, each naming its kind (see measureTriageMetricsBlock). */
  intervals?: Record<string, TriageMetricInterval>;
}

/** Sensitivity and specificity at the exported threshold on one group of scored images (a fold, a source). */
export interface ThresholdGroupCheck {
  /** Fold name ("fold-1", "source-clinicA") or source name. */
  name: string;
  images: number;
  malignant: number;
  benign: number;
  /** Malignant images scored ≥ threshold / malignant; null without malignant images. */
  sensitivity: number | null;
  /** Benign images scored < threshold / benign; null without benign images. */
  specificity: number | null;
}

/** How an exported threshold was chosen, and how it holds up per fold and per source. */
export interface TriageThresholdProvenance {
  /** Rule used, e.g. "highest threshold with sensitivity ≥ target". */
  method: string;
  targetSensitivity: number;
  /** Which scores the threshold was chosen on, e.g. "pooled out-of-fold predictions of 5 fold models (lesion-grouped 5-fold)". */
  scoredOn: string;
  /** Scored images the threshold was chosen on, and their classes. */
  images: number;
  malignant: number;
  benign: number;
  /** Pooled sensitivity and specificity at the threshold (specificity null without benign images). */
  sensitivity: number;
  specificity: number | null;
  /** At the threshold, per cross-validation fold (each fold's own model's out-of-fold scores). */
  perFold: ThresholdGroupCheck[];
  /** At the threshold, per image source ("unknown" for images without one). */
  perSource: ThresholdGroupCheck[];
  /** The source with the lowest sensitivity (null when no source has malignant images). */
  worstSource: ThresholdGroupCheck | null;
  /** One line per source whose sensitivity at the threshold is below the target. */
  warnings: string[];
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
  requireTfjsBackbone(backbone, "tfjs export of the triage model");
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
  if (units !== 1)
    throw new TriageModelError(`head output: received ${units} units, expected 1 (probability of malignant)`);
  return tf.model({ inputs: backbone.model.inputs, outputs: x, name: `triage_${backbone.name}` });
}

/** What {@link makeTriageMetadata} (and makeEnsembleTriageMetadata) take besides the backbone(s). */
export interface TriageMetadataFields {
  thresholdProb: number;
  /** Metrics on the images the threshold was tuned on (validation split or out-of-fold predictions). */
  validation?: TriageMetricsBlock;
  /** Metrics on held-out test images. */
  test?: TriageMetricsBlock;
  /** How the threshold was chosen (see {@link TriageThresholdProvenance}). */
  threshold?: TriageThresholdProvenance;
  /** Calibrated three-level policy (fitTriagePolicy), stored as `policy`. */
  policy?: TriagePolicyMetadata;
  resizePolicy?: ResizePolicy;
  /** Colour constancy the features were extracted with; scoring repeats it. Default "none" (not written). */
  colourConstancy?: ColourConstancy;
  /** Backend name to record (e.g. selectBackend()'s "wasm"); default tf.getBackend(). */
  backendName?: string;
  notes?: TriageModelMetadata["notes"];
  /** Model card block (see makeModelCard). */
  card?: TriageModelCard;
}

/**
 * Metadata for {@link exportTriageModel} from a backbone, filling labels, sizes, timestamps and
 * the current backend.
 *
 * @example makeTriageMetadata(backbone, { thresholdProb: 0.31, validation: { description: "validation split", images: 120, metrics: { rocAuc: 0.84 } } })
 */
export function makeTriageMetadata(backbone: Backbone, fields: TriageMetadataFields): TriageModelMetadata {
  return {
    formatVersion: 1,
    labels: LESION_LABELS,
    inputSizePx: backbone.inputSizePx,
    preprocessing: backbone.preprocessing,
    resizePolicy: fields.resizePolicy ?? "center-crop",
    ...(fields.colourConstancy !== undefined && fields.colourConstancy !== "none"
      ? { colourConstancy: fields.colourConstancy }
      : {}),
    thresholdProb: fields.thresholdProb,
    ...(fields.validation ? { validation: fields.validation } : {}),
    ...(fields.test ? { test: fields.test } : {}),
    ...(fields.threshold ? { threshold: fields.threshold } : {}),
    ...(fields.policy ? { policy: fields.policy } : {}),
    backboneName: backbone.name,
    backboneWeightsId: backbone.weightsId,
    featureLayerName: backbone.featureLayerName,
    featureDim: backbone.featureDim,
    createdAt: new Date().toISOString(),
    backend: fields.backendName ?? tf.getBackend(),
    notes: fields.notes,
    ...(fields.card ? { card: fields.card } : {}),
  };
}

/**
 * Writes `model.json`, `weights.bin` and `metadata.json` into `dir` (created if needed).
 *
 * @example await exportTriageModel("out/triage", triage, makeTriageMetadata(backbone, { thresholdProb: 0.3, test: { description: "held-out test split", images: 200, metrics: { rocAuc: 0.85 } } }));
 */
export async function exportTriageModel(
  dir: string,
  model: tf.LayersModel,
  metadata: TriageModelMetadata,
): Promise<{ dir: string; bytes: number }> {
  if (!(metadata.thresholdProb >= 0 && metadata.thresholdProb <= 1)) {
    throw new TriageModelError(
      `metadata.thresholdProb: received ${metadata.thresholdProb}, expected a probability in [0, 1]`,
    );
  }
  checkTriageModelInputs(model, metadata, "metadata");
  await saveLayersModelToDir(model, dir);
  await fs.promises.writeFile(path.join(dir, METADATA_JSON_FILE), JSON.stringify(metadata, null, 2));
  const bytes = fs.readdirSync(dir).reduce((n, f) => n + fs.statSync(path.join(dir, f)).size, 0);
  return { dir, bytes };
}

/**
 * Reads and checks an exported model folder's `metadata.json` (the fields needed to repeat
 * preprocessing and triage), without loading the model: for runtimes that run another file of
 * the folder (model.onnx). Throws {@link ModelFileError} naming the file and what is wrong.
 *
 * @example readTriageMetadata("models/demo").thresholdProb // 0.31
 */
export function readTriageMetadata(dir: string): TriageModelMetadata {
  const metaPath = path.join(dir, METADATA_JSON_FILE);
  if (!fs.existsSync(metaPath)) {
    throw new ModelFileError(
      metaPath,
      `missing (an exported triage model folder holds model.json, weights.bin and ${METADATA_JSON_FILE})`,
    );
  }
  let metadata: TriageModelMetadata;
  try {
    metadata = JSON.parse(fs.readFileSync(metaPath, "utf8")) as TriageModelMetadata;
  } catch (err) {
    throw new ModelFileError(metaPath, `is not valid JSON (${err instanceof Error ? err.message : String(err)})`);
  }
  for (const field of ["inputSizePx", "preprocessing", "thresholdProb", "resizePolicy"] as const) {
    if (metadata[field] === undefined)
      throw new ModelFileError(metaPath, `lacks field ${field} (needed to repeat preprocessing and triage)`);
  }
  // An unknown method would otherwise score images without the colour correction training had.
  if (metadata.colourConstancy !== undefined && !COLOUR_CONSTANCY_METHODS.includes(metadata.colourConstancy))
    throw new ModelFileError(
      metaPath,
      `colourConstancy: received ${JSON.stringify(metadata.colourConstancy)}; expected one of ${COLOUR_CONSTANCY_METHODS.join(", ")} (or absent)`,
    );
  return metadata;
}

/**
 * Loads an exported triage model folder (model.json + weights.bin + metadata.json) with node:fs.
 * Throws {@link ModelFileError} naming the missing or invalid file. Older metadata.json files
 * (metrics under `validationMetrics`, no `validation`/`test`) still load, as they are.
 *
 * @example const triage = await loadTriageModel("out/triage");
 */
export async function loadTriageModel(dir: string): Promise<LoadedTriageModel> {
  const metadata = readTriageMetadata(dir);
  const model = await loadLayersModelFromDir(dir);
  try {
    checkTriageModelInputs(model, metadata, path.join(dir, METADATA_JSON_FILE));
  } catch (err) {
    model.dispose();
    throw err;
  }
  return { model, metadata, dir };
}

/** Size and preprocessing of each model input, in input order. */
interface TriageInputSpec {
  label: string;
  inputSizePx: number;
  preprocessing: PreprocessingSpec;
}

function triageInputSpecs(metadata: TriageModelMetadata): TriageInputSpec[] {
  if (metadata.ensembleMembers === undefined) {
    return [
      {
        label: `backbone ${metadata.backboneName}`,
        inputSizePx: metadata.inputSizePx,
        preprocessing: metadata.preprocessing,
      },
    ];
  }
  return metadata.ensembleMembers.map((m, i) => ({
    label: `ensembleMembers[${i}] (${m.backboneName})`,
    inputSizePx: m.inputSizePx,
    preprocessing: m.preprocessing,
  }));
}

/**
 * Checks that `metadata` describes `model`'s inputs: one input for a single-backbone model,
 * one per `ensembleMembers` entry (same order, same image size) for an ensemble, and that an
 * ensemble's top-level featureDim and inputSizePx agree with its members. `where` prefixes
 * the message (the metadata file, or "metadata").
 */
function checkTriageModelInputs(model: tf.LayersModel, metadata: TriageModelMetadata, where: string): void {
  const members = metadata.ensembleMembers;
  if (members !== undefined) {
    if (!Array.isArray(members) || members.length === 0) {
      throw new TriageModelError(
        `${where}: ensembleMembers: received ${JSON.stringify(members)}, expected a non-empty array (one entry per model input)`,
      );
    }
    members.forEach((m, i) => {
      for (const field of ["backboneName", "featureDim", "inputSizePx", "preprocessing"] as const) {
        if (m?.[field] === undefined)
          throw new TriageModelError(
            `${where}: ensembleMembers[${i}] lacks field ${field} (needed to repeat that member's preprocessing)`,
          );
      }
    });
    const featureDim = members.reduce((sum, m) => sum + m.featureDim, 0);
    if (metadata.featureDim !== featureDim) {
      throw new TriageModelError(
        `${where}: featureDim: received ${metadata.featureDim}, expected ${featureDim} (the sum of ensembleMembers' featureDim ${members.map((m) => m.featureDim).join(" + ")})`,
      );
    }
    const largest = Math.max(...members.map((m) => m.inputSizePx));
    if (metadata.inputSizePx !== largest) {
      throw new TriageModelError(
        `${where}: inputSizePx: received ${metadata.inputSizePx}, expected ${largest} (the largest of ensembleMembers' inputSizePx)`,
      );
    }
  }
  const specs = triageInputSpecs(metadata);
  const shapes = model.inputs.map((t) => JSON.stringify(t.shape)).join(", ");
  if (model.inputs.length !== specs.length) {
    const described = members
      ? `lists ${members.length} ensemble members (${members.map((m) => m.backboneName).join(", ")})`
      : "describes a single-backbone model";
    throw new TriageModelError(
      `${where} ${described}, expecting ${specs.length} model input(s), but model ${model.name} has ${model.inputs.length}: ${shapes}`,
    );
  }
  specs.forEach((spec, i) => {
    const shape = model.inputs[i].shape;
    if (shape.length !== 4 || shape[1] !== spec.inputSizePx || shape[2] !== spec.inputSizePx || shape[3] !== 3) {
      throw new TriageModelError(
        `${where}: ${spec.label} has inputSizePx ${spec.inputSizePx}, but model input ${i} (${model.inputs[i].sourceLayer.name}) is ${JSON.stringify(shape)}, expected [null, ${spec.inputSizePx}, ${spec.inputSizePx}, 3]`,
      );
    }
  });
  if (members === undefined) return;
  // Members of equal input size could still be listed in the wrong order: their widths tell.
  for (const [i, branch] of [...findInputBranches(model)].sort((a, b) => a[0] - b[0])) {
    if (members[i] && branch.featureDim !== members[i].featureDim) {
      throw new TriageModelError(
        `${where}: ensembleMembers[${i}] (${members[i].backboneName}) has featureDim ${members[i].featureDim}, but model input ${i} (${model.inputs[i].sourceLayer.name}) feeds ${branch.modelName} with ${branch.featureDim} features`,
      );
    }
  }
}

/** For each model input fed straight into a nested model (an ensemble member's backbone): that model's name and output width. */
function findInputBranches(model: tf.LayersModel): Map<number, { modelName: string; featureDim: number }> {
  const inputIndex = new Map(model.inputs.map((t, i) => [t.id, i]));
  const branches = new Map<number, { modelName: string; featureDim: number }>();
  const seen = new Set<number>();
  const stack = [...model.outputs];
  while (stack.length > 0) {
    const t = stack.pop()!;
    if (seen.has(t.id)) continue;
    seen.add(t.id);
    const width = t.shape[t.shape.length - 1];
    if (
      t.sourceLayer instanceof tf.LayersModel &&
      t.inputs.length === 1 &&
      inputIndex.has(t.inputs[0].id) &&
      typeof width === "number"
    ) {
      branches.set(inputIndex.get(t.inputs[0].id)!, { modelName: t.sourceLayer.name, featureDim: width });
    }
    stack.push(...t.inputs);
  }
  return branches;
}

/** Probability for one image, or why it could not be scored. */
export type ImagePrediction =
  | { imageId: string; imagePath: string; probability: number }
  | { imageId: string; imagePath: string; problem: InputProblem };

/**
 * Probability of malignant for each image file, decoded and preprocessed as the metadata says,
 * in batches. An unreadable image gives a `problem` entry and the rest go on. An ensemble model
 * (metadata `ensembleMembers`) gets each image decoded once per distinct member input size and
 * preprocessed per member, one input tensor per member. Throws {@link TriageModelError} when
 * the metadata does not describe the model's inputs.
 *
 * @example const preds = await predictMalignantProbability(triage, ["a.jpg", "b.jpg"]);
 */
export async function predictMalignantProbability(
  loaded: LoadedTriageModel,
  imagePaths: readonly string[],
  options: { batchSize?: number } = {},
): Promise<ImagePrediction[]> {
  const batchSize = options.batchSize ?? 16;
  if (!(Number.isInteger(batchSize) && batchSize >= 1)) {
    throw new TriageModelError(`batchSize: received ${batchSize}; expected a whole number ≥ 1 (e.g. 16)`);
  }
  checkTriageModelInputs(
    loaded.model,
    loaded.metadata,
    loaded.dir ? path.join(loaded.dir, METADATA_JSON_FILE) : "metadata",
  );
  // BatchNorm folded and activations fused (about 2× on wasm); compiled per call, freed at its end.
  const tfjs = openTfjsBatchPredictor(loaded, { compile: imagePaths.length > 1 });
  try {
    const results: ImagePrediction[] = [];
    for (let start = 0; start < imagePaths.length; start += batchSize) {
      results.push(
        ...(await scoreImageBatch(loaded.metadata, imagePaths.slice(start, start + batchSize), tfjs.predict)),
      );
    }
    return results;
  } finally {
    tfjs.dispose();
  }
}

/**
 * The tfjs forward pass of a loaded triage model as a {@link PackedBatchPredictor}, for callers
 * that decode and pack images themselves (the point-inference service scores uploads, not
 * files). With `compile` (default true) BatchNorm is folded and activations fused once (an
 * ensemble's plan compiles each nested backbone); a model the plan cannot compile runs through
 * `model.predict`. Tensors are freed per call; `dispose` frees the compiled plan.
 *
 * @example const tfjs = openTfjsBatchPredictor(loaded); const probs = await tfjs.predict(packTriageInputs(loaded.metadata, [pixels]), 1); tfjs.dispose();
 */
export function openTfjsBatchPredictor(
  loaded: LoadedTriageModel,
  options: { compile?: boolean } = {},
): { predict: PackedBatchPredictor; dispose: () => void } {
  let plan: { predict: (xs: tf.Tensor[]) => tf.Tensor; dispose: () => void } | undefined;
  if (options.compile ?? true) {
    try {
      if (loaded.model.inputs.length === 1) {
        const single = compileInferencePlan(loaded.model);
        plan = { predict: ([x]) => single.predict(x), dispose: () => single.dispose() };
      } else {
        plan = compileNestedInferencePlan(loaded.model);
      }
    } catch (err) {
      if (!(err instanceof InferencePlanError)) throw err;
    }
  }
  const predictTensors = (xs: tf.Tensor[]) =>
    plan ? plan.predict(xs) : tf.tidy(() => loaded.model.predict(xs.length === 1 ? xs[0] : xs) as tf.Tensor);
  const predict: PackedBatchPredictor = async (inputs, count) => {
    const xs = inputs.map(({ values, sizePx }) => tf.tensor4d(values, [count, sizePx, sizePx, 3], "float32"));
    try {
      const y = predictTensors(xs);
      const values = y.dataSync();
      y.dispose();
      return values;
    } finally {
      tf.dispose(xs);
    }
  };
  return { predict, dispose: () => plan?.dispose() };
}

/** Test-time-augmented probability for one image (mean over its views), or why it could not be scored. */
export type TtaImagePrediction =
  | {
      imageId: string;
      imagePath: string;
      /** Mean of `viewProbabilities`: P(malignant) averaged over the views. */
      probability: number;
      /** P(malignant) of each view, in {@link TTA_DIHEDRAL_VIEWS} order; [0] is the image as is. */
      viewProbabilities: number[];
    }
  | { imageId: string; imagePath: string; problem: InputProblem };

/** Options of {@link predictMalignantProbabilityTta} (and the ONNX scorer's `predictTta`). */
export interface TtaPredictionOptions {
  /** Dihedral views per image, 1–8, the first `views` of TTA_DIHEDRAL_VIEWS (default 8). */
  views?: number;
  /**
   * Rows (image views) per forward pass (default 16): ⌊batchSize / views⌋ images per pass, at
   * least one image's views.
   */
  batchSize?: number;
}

/** Default number of test-time-augmentation views: all 8 dihedral views. */
export const DEFAULT_TTA_VIEWS = TTA_DIHEDRAL_VIEWS.length;

/**
 * Test-time augmentation: P(malignant) of each of the first `views` dihedral views of every
 * image (TTA_DIHEDRAL_VIEWS: identity, mirror, and their 90° turns; exact pixel permutations)
 * and their mean. Each file is decoded once (per input size), its views built from the decoded
 * pixels, and the views of several images go through the model together; view 0 is the image
 * as is, so it equals {@link predictMalignantProbability}'s probability. An unreadable image
 * gives a `problem` entry and the rest go on. Throws {@link TriageModelError} for a bad `views`
 * or `batchSize`.
 *
 * @example const [p] = await predictMalignantProbabilityTta(triage, ["a.jpg"]); // { imageId: "a", probability: 0.41, viewProbabilities: [0.4, 0.43, …] } (8 views)
 */
export async function predictMalignantProbabilityTta(
  loaded: LoadedTriageModel,
  imagePaths: readonly string[],
  options: TtaPredictionOptions = {},
): Promise<TtaImagePrediction[]> {
  const { views, batchSize } = checkTtaOptions(options);
  checkTriageModelInputs(
    loaded.model,
    loaded.metadata,
    loaded.dir ? path.join(loaded.dir, METADATA_JSON_FILE) : "metadata",
  );
  const predictor = openTfjsBatchPredictor(loaded, { compile: imagePaths.length * views > 1 });
  try {
    return await scoreImagesWithViews(loaded.metadata, imagePaths, predictor.predict, { views, batchSize });
  } finally {
    predictor.dispose();
  }
}

/**
 * Checks TTA options and fills their defaults. Throws {@link TriageModelError} naming the value
 * received and the range expected.
 */
export function checkTtaOptions(options: TtaPredictionOptions): Required<TtaPredictionOptions> {
  const views = options.views ?? DEFAULT_TTA_VIEWS;
  const batchSize = options.batchSize ?? 16;
  if (!(Number.isInteger(views) && views >= 1 && views <= TTA_DIHEDRAL_VIEWS.length)) {
    throw new TriageModelError(
      `views: received ${views}; expected a whole number in 1–${TTA_DIHEDRAL_VIEWS.length} (dihedral views per image, default ${DEFAULT_TTA_VIEWS})`,
    );
  }
  if (!(Number.isInteger(batchSize) && batchSize >= 1)) {
    throw new TriageModelError(`batchSize: received ${batchSize}; expected a whole number ≥ 1 (e.g. 16)`);
  }
  return { views, batchSize };
}

/**
 * TTA scoring of image files with any runtime's `predict`, in passes of at most `batchSize`
 * view rows (at least one image's views); see {@link predictMalignantProbabilityTta}. Used by
 * the tfjs and the ONNX Runtime scorer alike.
 */
export async function scoreImagesWithViews(
  metadata: TriageModelMetadata,
  imagePaths: readonly string[],
  predict: PackedBatchPredictor,
  options: Required<TtaPredictionOptions>,
): Promise<TtaImagePrediction[]> {
  const imagesPerPass = Math.max(1, Math.floor(options.batchSize / options.views));
  const results: TtaImagePrediction[] = [];
  for (let start = 0; start < imagePaths.length; start += imagesPerPass) {
    const batch = imagePaths.slice(start, start + imagesPerPass);
    for (const p of await scoreImageViewsBatch(metadata, batch, predict, options.views)) {
      results.push(
        "problem" in p
          ? p
          : {
              imageId: p.imageId,
              imagePath: p.imagePath,
              probability: p.viewProbabilities.reduce((a, b) => a + b, 0) / p.viewProbabilities.length,
              viewProbabilities: p.viewProbabilities,
            },
      );
    }
  }
  return results;
}

/**
 * Probability of malignant for every image, as one array in input order, for evaluation where
 * each image must be scored: the same scoring as {@link predictMalignantProbability}, but an
 * unreadable image throws {@link TriageModelError} naming the file and why.
 *
 * @example const probs = await predictMalignantProbabilities(triage, records.map((r) => r.imagePath)); // Float32Array
 */
export async function predictMalignantProbabilities(
  loaded: LoadedTriageModel,
  imagePaths: readonly string[],
  options: { batchSize?: number } = {},
): Promise<Float32Array> {
  return requireEveryImageScored(await predictMalignantProbability(loaded, imagePaths, options));
}

/**
 * The probabilities of per-image predictions (any runtime's), in order, when every image was
 * scored; else throws {@link TriageModelError} with how many failed and the first file and why.
 *
 * @example requireEveryImageScored([{ imageId: "a", probability: 0.2 }]) // Float32Array [0.2]
 */
export function requireEveryImageScored(predictions: readonly ImagePrediction[]): Float32Array {
  const failed = predictions.filter((p): p is Extract<ImagePrediction, { problem: InputProblem }> => "problem" in p);
  if (failed.length > 0) {
    const { file, reason } = failed[0].problem;
    throw new TriageModelError(
      `${failed.length} of ${predictions.length} images could not be scored; first: ${reason.startsWith(file) ? reason : `${file}: ${reason}`}`,
    );
  }
  return Float32Array.from(predictions, (p) => ("probability" in p ? p.probability : Number.NaN));
}

type DecodedImage = {
  imageId: string;
  imagePath: string;
  pixelsBySize?: Map<number, Uint8Array>;
  problem?: InputProblem;
};

/**
 * Decodes one image at every size the model's inputs need. With several sizes the file is read
 * once and its bytes decoded once per size, as extractFeatures decodes them for each backbone.
 */
async function decodeForInputs(
  imagePath: string,
  sizesPx: readonly number[],
  resizePolicy: ResizePolicy,
): Promise<DecodedImage> {
  const imageId = path.basename(imagePath).replace(/\.[^.]+$/, "");
  let bytes: Uint8Array | undefined;
  if (sizesPx.length > 1) {
    try {
      bytes = await fs.promises.readFile(imagePath);
    } catch (err) {
      return {
        imageId,
        imagePath,
        problem: {
          file: imagePath,
          reason: `cannot read file (${err instanceof Error ? err.message : String(err)}); expected a readable image file`,
        },
      };
    }
  }
  try {
    const pixelsBySize = new Map<number, Uint8Array>();
    for (const size of sizesPx) pixelsBySize.set(size, await decodeImageRgb(imagePath, size, resizePolicy, bytes));
    return { imageId, imagePath, pixelsBySize };
  } catch (err) {
    return {
      imageId,
      imagePath,
      problem: { file: imagePath, reason: err instanceof Error ? err.message : String(err) },
    };
  }
}

/**
 * Runs one batch of a triage model: the preprocessed float batch of each model input (NHWC
 * [count, sizePx, sizePx, 3], in input order) → P(malignant) per image. The tfjs scorer and
 * ONNX Runtime's (lib/export/onnxScoring) each supply one.
 */
export type PackedBatchPredictor = (
  inputs: { values: Float32Array; sizePx: number }[],
  count: number,
) => Promise<ArrayLike<number>>;

/**
 * Scores one batch of image files with `predict`: each file is read once and decoded once per
 * distinct input size, preprocessed per model input as `metadata` says, and an unreadable image
 * becomes a `problem` entry while the rest go on. The one decode-and-pack path of both runtimes.
 */
export async function scoreImageBatch(
  metadata: TriageModelMetadata,
  batch: readonly string[],
  predict: PackedBatchPredictor,
): Promise<ImagePrediction[]> {
  return (await scoreImageViewsBatch(metadata, batch, predict, 1)).map((p) =>
    "problem" in p ? p : { imageId: p.imageId, imagePath: p.imagePath, probability: p.viewProbabilities[0] },
  );
}

/**
 * {@link scoreImageBatch} with the first `views` dihedral views of each image (view 0: as is),
 * all views of all images in one `predict` call: rows are image-major ([image 0 view 0, image 0
 * view 1, …]).
 */
async function scoreImageViewsBatch(
  metadata: TriageModelMetadata,
  batch: readonly string[],
  predict: PackedBatchPredictor,
  views: number,
): Promise<
  (
    | { imageId: string; imagePath: string; viewProbabilities: number[] }
    | { imageId: string; imagePath: string; problem: InputProblem }
  )[]
> {
  const sizesPx = triageInputSizesPx(metadata);
  const decoded = await Promise.all(
    batch.map((imagePath) => decodeForInputs(imagePath, sizesPx, metadata.resizePolicy)),
  );
  const ok = decoded.filter(
    (d): d is DecodedImage & { pixelsBySize: Map<number, Uint8Array> } => d.pixelsBySize !== undefined,
  );
  const probs = new Map<DecodedImage, number[]>();
  if (ok.length > 0) {
    // Rows are image-major: [image 0 view 0, image 0 view 1, …].
    const rows = ok.flatMap((d) => buildDihedralViewRows(d.pixelsBySize, views));
    const values = await predict(packTriageInputs(metadata, rows), rows.length);
    ok.forEach((d, i) =>
      probs.set(
        d,
        Array.from({ length: views }, (_, v) => values[i * views + v]),
      ),
    );
  }
  return decoded.map((d) =>
    d.pixelsBySize
      ? { imageId: d.imageId, imagePath: d.imagePath, viewProbabilities: probs.get(d)! }
      : { imageId: d.imageId, imagePath: d.imagePath, problem: d.problem! },
  );
}

/**
 * The first `views` dihedral views (TTA_DIHEDRAL_VIEWS order; view 0 is the image as is) of one
 * decoded image, each as the pixels-by-input-size map {@link packTriageInputs} takes. Each view is
 * built once per input size and shared by the ensemble members of that size.
 *
 * @example packTriageInputs(metadata, buildDihedralViewRows(new Map([[224, rgb]]), 8)) // 8 rows
 */
export function buildDihedralViewRows(
  pixelsBySize: ReadonlyMap<number, Uint8Array>,
  views: number,
): Map<number, Uint8Array>[] {
  return Array.from({ length: views }, (_, v) => {
    const row = new Map<number, Uint8Array>();
    for (const [size, pixels] of pixelsBySize) {
      row.set(size, v === 0 ? pixels : transformImageDihedral(pixels, size, TTA_DIHEDRAL_VIEWS[v]));
    }
    return row;
  });
}

/**
 * The distinct square image sides (px) a triage model's inputs take: one for a single backbone,
 * one per distinct member size for an ensemble. Decode each image once per size.
 *
 * @example triageInputSizesPx(readTriageMetadata("models/demo")) // [224]
 */
export function triageInputSizesPx(metadata: TriageModelMetadata): number[] {
  return [...new Set(triageInputSpecs(metadata).map((s) => s.inputSizePx))];
}

/**
 * Packs decoded images (8-bit RGB HWC per input size, as decodeImageRgb returns) into the
 * preprocessed float batch of each model input, in input order: what a
 * {@link PackedBatchPredictor} takes. The metadata's `colourConstancy` (when set) is applied to
 * each image here, the one place every runtime and the service pass through. Every image must have pixels at every size of
 * {@link triageInputSizesPx}.
 *
 * @example const inputs = packTriageInputs(metadata, [new Map([[224, rgb]])]); // [{ values: Float32Array(150528), sizePx: 224 }]
 */
export function packTriageInputs(
  metadata: TriageModelMetadata,
  images: readonly ReadonlyMap<number, Uint8Array>[],
): { values: Float32Array; sizePx: number }[] {
  return triageInputSpecs(metadata).map((s) => {
    const perImage = s.inputSizePx * s.inputSizePx * 3;
    const packed = new Uint8Array(images.length * perImage);
    images.forEach((pixelsBySize, i) => {
      const pixels = pixelsBySize.get(s.inputSizePx);
      if (pixels?.length !== perImage) {
        throw new TriageModelError(
          `image ${i}: received ${pixels ? `${pixels.length} bytes` : "no pixels"} at ${s.inputSizePx} px for ${s.label}; expected ${perImage} (${s.inputSizePx}×${s.inputSizePx}×3)`,
        );
      }
      // Shades of Gray scales channels by global gains, so it commutes with the dihedral views.
      packed.set(applyColourConstancy(pixels, metadata.colourConstancy ?? "none"), i * perImage);
    });
    return { values: preprocessToFloat32(packed, s.preprocessing), sizePx: s.inputSizePx };
  });
}
