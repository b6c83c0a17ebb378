import * as tf from "@tensorflow/tfjs";
import { parseOptionalText } from "../data/loadDataset.js";
import { MelanomaLabError } from "../util/errors.js";
import { predictRowsInBatches } from "./predictBatches.js";
import { DIAGNOSIS_HEAD_LAYERS } from "../models/headLayers.js";

/**
 * Diagnosis codes whose images are malignant, as lib/data's "malignant-vs-benign" label policy
 * labels them (HAM10000 has no scc; ISIC 2019 does): the default `malignantDiagnoses` of a
 * diagnosis-target head.
 */
export const DEFAULT_MALIGNANT_DIAGNOSES: readonly string[] = ["akiec", "bcc", "mel", "scc"];

/** Thrown when per-row diagnoses do not fit the labels or each other (missing code, label that contradicts it). */
export class DiagnosisTargetError extends MelanomaLabError {}

/** Training targets of a diagnosis head, from {@link encodeDiagnosisTargets}. */
export interface DiagnosisTargets {
  /** Diagnosis codes present in the training rows, sorted (lower case): the softmax's columns. */
  classes: string[];
  /** Column in `classes` of each row. */
  classIndex: Int32Array;
  /** Rows per class, in `classes` order. */
  counts: number[];
  /** 1 where the class is malignant, else 0 (the frozen sum layer's kernel), in `classes` order. */
  malignantMask: Float32Array;
  /** `malignantDiagnoses` as used (lower case, sorted). */
  malignantDiagnoses: string[];
}

/** A diagnosis code trimmed and lower-cased, or undefined for a value lib/data treats as missing ("", "unknown", …). */
export function normalizeDiagnosisCode(raw: unknown): string | undefined {
  return typeof raw === "string" ? parseOptionalText(raw.trim())?.toLowerCase() : undefined;
}

/**
 * Checks and encodes one diagnosis code per training row for a softmax head: codes are trimmed
 * and lower-cased, classes are the codes present (sorted). Every row whose code is in
 * `malignantDiagnoses` must be labelled malignant (1) and every other row benign (0).
 * Throws {@link DiagnosisTargetError} naming the row, the code and the label received.
 *
 * @example
 * encodeDiagnosisTargets(["nv", "mel", "bcc", "nv"], [0, 1, 1, 0])
 * // { classes: ["bcc", "mel", "nv"], classIndex: [2, 1, 0, 2], counts: [1, 1, 2], malignantMask: [1, 1, 0], … }
 */
export function encodeDiagnosisTargets(
  diagnoses: readonly (string | undefined | null)[],
  labels: ArrayLike<number>,
  malignantDiagnoses: readonly string[] = DEFAULT_MALIGNANT_DIAGNOSES,
): DiagnosisTargets {
  if (diagnoses.length !== labels.length) {
    throw new DiagnosisTargetError(
      `diagnoses: received ${diagnoses.length} codes, expected one per training row (${labels.length})`,
    );
  }
  const normalized = malignantDiagnoses.map(normalizeDiagnosisCode);
  const malignant = [...new Set(normalized.filter((d): d is string => d !== undefined))].sort();
  if (malignant.length === 0 || normalized.includes(undefined)) {
    throw new DiagnosisTargetError(
      `malignantDiagnoses: received ${JSON.stringify(malignantDiagnoses)}, expected at least one non-empty diagnosis code`,
    );
  }
  const malignantSet = new Set(malignant);
  const codes: string[] = new Array(diagnoses.length);
  for (let i = 0; i < diagnoses.length; i++) {
    const raw = diagnoses[i];
    const code = normalizeDiagnosisCode(raw);
    if (code === undefined) {
      throw new DiagnosisTargetError(
        `diagnoses[${i}]: received ${JSON.stringify(raw) ?? "undefined"}, expected a diagnosis code such as "mel" or "nv" (every training row needs one)`,
      );
    }
    const label = labels[i];
    const expected = malignantSet.has(code) ? 1 : 0;
    if (label !== expected) {
      throw new DiagnosisTargetError(
        `row ${i}: diagnosis ${JSON.stringify(code)} is ${expected === 1 ? "malignant" : "benign"} (malignantDiagnoses: ${malignant.join(", ")}) but its label is ` +
          `${label === 1 ? "malignant" : label === 0 ? "benign" : JSON.stringify(label)}; labels must agree with diagnoses (pass malignantDiagnoses to match your label policy)`,
      );
    }
    codes[i] = code;
  }
  const classes = [...new Set(codes)].sort();
  const column = new Map(classes.map((c, k) => [c, k]));
  const classIndex = Int32Array.from(codes, (c) => column.get(c)!);
  const counts = classes.map(() => 0);
  for (const k of classIndex) counts[k]++;
  const malignantMask = Float32Array.from(classes, (c) => (malignantSet.has(c) ? 1 : 0));
  return { classes, classIndex, counts, malignantMask, malignantDiagnoses: malignant };
}

/**
 * Per-diagnosis probabilities of a head trained with trainHead's `diagnoses` option: the
 * softmax's output, row-major [rows, K] with columns in the order of the result's
 * `diagnosisClasses`. Runs the head's layers up to the softmax (dropout off), in tidied chunks.
 *
 * @example
 * const { probabilities, classCount } = predictDiagnosisProbabilities(head.model, features, 1280);
 * probabilities[0 * classCount + head.diagnosisClasses!.indexOf("mel")] // P(mel) of row 0
 */
export function predictDiagnosisProbabilities(
  head: tf.LayersModel,
  features: Float32Array,
  featureDim: number,
  batchSize = 512,
): { probabilities: Float32Array; classCount: number } {
  const names = head.layers.map((l) => l.name);
  const stop = names.indexOf(DIAGNOSIS_HEAD_LAYERS.softmax);
  if (stop < 0) {
    throw new DiagnosisTargetError(
      `head ${head.name}: has no layer ${DIAGNOSIS_HEAD_LAYERS.softmax} (layers: ${names.join(", ")}); expected a head trained with trainHead's diagnoses option`,
    );
  }
  if (!(Number.isInteger(featureDim) && featureDim > 0) || features.length % featureDim !== 0) {
    throw new DiagnosisTargetError(
      `features: received ${features.length} values, expected a multiple of featureDim ${featureDim}`,
    );
  }
  const chain = head.layers.slice(0, stop + 1).filter((l) => l.getClassName() !== "InputLayer");
  const classCount = head.getLayer(DIAGNOSIS_HEAD_LAYERS.logits).getConfig().units as number;
  const out = predictRowsInBatches(features, [featureDim], batchSize, classCount, (x) => {
    let h = x;
    for (const layer of chain) h = layer.apply(h, { training: false }) as tf.Tensor;
    return h;
  });
  return { probabilities: out, classCount };
}
