import type * as tf from "@tensorflow/tfjs";
import type { LesionRecord } from "../data/types.js";
import { normalizeDiagnosisCode } from "./diagnosisHead.js";
import { DIAGNOSIS_HEAD_LAYERS } from "../models/headLayers.js";
import { FineTuneError } from "./fineTuneCut.js";

// What a fine-tuned head is trained against: a diagnosis-target head keeps its own softmax loss.

/** The diagnosis softmax of a diagnosis-target head (trainHead's `diagnoses`): its classes and which are malignant. */
export interface DiagnosisTarget {
  classes: readonly string[];
  /** 1 for the classes summed into P(malignant) (the head's frozen malignant-sum kernel), else 0. */
  malignantMask: Float32Array;
}

/**
 * Checks fineTuneTopBlocks's `diagnosisClasses` against the head: undefined for a binary head
 * (FineTuneError when classes are given), the softmax's classes and malignant mask for a
 * diagnosis head (FineTuneError when they are missing or of the wrong count).
 *
 * @example readDiagnosisTarget(dxHead.model, dxHead.diagnosisClasses) // { classes: ["bcc", "mel", "nv"], malignantMask: [1, 1, 0] }
 */
export function readDiagnosisTarget(
  head: tf.LayersModel,
  diagnosisClasses: readonly string[] | undefined,
): DiagnosisTarget | undefined {
  const isDiagnosisHead = head.layers.some((l) => l.name === DIAGNOSIS_HEAD_LAYERS.logits);
  if (!isDiagnosisHead) {
    if (diagnosisClasses !== undefined) {
      throw new FineTuneError(
        `diagnosisClasses: received ${JSON.stringify(diagnosisClasses)} for a binary head (no layer ${DIAGNOSIS_HEAD_LAYERS.logits}); expected none (it is only for a head trained with trainHead's diagnoses option)`,
      );
    }
    return undefined;
  }
  const classCount = head.getLayer(DIAGNOSIS_HEAD_LAYERS.logits).getConfig().units as number;
  if (diagnosisClasses === undefined) {
    throw new FineTuneError(
      `head: its target is the diagnosis (a ${classCount}-class softmax, layer ${DIAGNOSIS_HEAD_LAYERS.logits}), and fine-tuning trains it on its own loss (categorical cross-entropy over the diagnoses); ` +
        "expected diagnosisClasses: pass the trainHead result's diagnosisClasses (and records with a diagnosis each)",
    );
  }
  if (diagnosisClasses.length !== classCount) {
    throw new FineTuneError(
      `diagnosisClasses: received ${diagnosisClasses.length} classes (${diagnosisClasses.join(", ")}), expected the head's ${classCount} (its ${DIAGNOSIS_HEAD_LAYERS.logits} width)`,
    );
  }
  const malignantMask = Float32Array.from(head.getLayer(DIAGNOSIS_HEAD_LAYERS.malignantSum).getWeights()[0].dataSync());
  return { classes: diagnosisClasses.map((c) => normalizeDiagnosisCode(c) ?? String(c)), malignantMask };
}

/**
 * Column of each record's diagnosis in the head's softmax, one per record; FineTuneError naming a
 * record whose diagnosis is missing or unknown to the head, or contradicts its label.
 *
 * @example encodeRecordDiagnoses(records, { classes: ["mel", "nv"], malignantMask: Float32Array.from([1, 0]) }, "train") // Int32Array [1, 0, …]
 */
export function encodeRecordDiagnoses(
  records: readonly LesionRecord[],
  target: DiagnosisTarget,
  split: string,
): Int32Array {
  const column = new Map(target.classes.map((c, k) => [c, k]));
  return Int32Array.from(records, (r, i) => {
    const code = normalizeDiagnosisCode(r.diagnosis);
    const k = code === undefined ? undefined : column.get(code);
    if (k === undefined) {
      throw new FineTuneError(
        `${split}[${i}] (${r.imageId}): diagnosis ${JSON.stringify(r.diagnosis) ?? "undefined"}, expected one of the head's diagnosisClasses (${target.classes.join(", ")}); ` +
          "fine-tune a diagnosis head on records of the diagnoses it was trained on",
      );
    }
    const expected = target.malignantMask[k] === 1 ? "malignant" : "benign";
    if (r.label !== expected) {
      throw new FineTuneError(
        `${split}[${i}] (${r.imageId}): diagnosis ${JSON.stringify(code)} is ${expected} for the head but the label is ${JSON.stringify(r.label)}; expected labels that agree with the diagnoses`,
      );
    }
    return k;
  });
}
