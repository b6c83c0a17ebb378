import fs from "node:fs";
import path from "node:path";
import type * as tf from "@tensorflow/tfjs";
import { convertLayersModelToOnnx } from "../models/onnxConvert.js";
import { METADATA_JSON_FILE, TriageModelError, type TriageModelMetadata } from "./triageModel.js";

export type { TriageOnnxMetadata } from "./triageModel.js";

/** File name of the ONNX model written beside model.json by {@link exportTriageModelOnnx}. */
export const ONNX_MODEL_FILE = "model.onnx";
/** Name of the ONNX output of a triage model (P(malignant), [n, 1]). */
export const ONNX_TRIAGE_OUTPUT_NAME = "probability_malignant";

/**
 * Writes `model.onnx` (the triage model as ONNX, see convertLayersModelToOnnx (lib/models/onnxConvert)) into
 * `dir`, beside the tfjs files of exportTriageModel, and records it in the folder's
 * metadata.json under `onnx` ({ file, opset, inputNames, outputName }); the rest of the
 * metadata is `metadata` as given. Throws {@link TriageModelError} when the model's output is
 * not [n, 1], and OnnxExportError for a layer it cannot translate.
 *
 * @example await exportTriageModel(dir, triage, metadata); await exportTriageModelOnnx(dir, triage, metadata);
 */
export async function exportTriageModelOnnx(
  dir: string,
  model: tf.LayersModel,
  metadata: TriageModelMetadata,
): Promise<{ path: string; bytes: number; metadata: TriageModelMetadata }> {
  const outShape = model.outputs[0]?.shape;
  if (model.outputs.length !== 1 || outShape?.length !== 2 || outShape[1] !== 1) {
    throw new TriageModelError(
      `model ${model.name}: output shape ${JSON.stringify(outShape)}; expected [null, 1] (probability of malignant)`,
    );
  }
  if (model.inputs.length !== (metadata.ensembleMembers?.length ?? 1)) {
    throw new TriageModelError(
      `model ${model.name} has ${model.inputs.length} inputs, but metadata describes ${metadata.ensembleMembers?.length ?? 1}; expected one per backbone`,
    );
  }
  const conversion = convertLayersModelToOnnx(model, { outputName: ONNX_TRIAGE_OUTPUT_NAME });
  await fs.promises.mkdir(dir, { recursive: true });
  const file = path.join(dir, ONNX_MODEL_FILE);
  await fs.promises.writeFile(file, conversion.bytes);
  const withOnnx: TriageModelMetadata = {
    ...metadata,
    onnx: {
      file: ONNX_MODEL_FILE,
      opset: conversion.opset,
      inputNames: conversion.inputNames,
      outputName: conversion.outputName,
    },
  };
  await fs.promises.writeFile(path.join(dir, METADATA_JSON_FILE), JSON.stringify(withOnnx, null, 2));
  return { path: file, bytes: conversion.bytes.length, metadata: withOnnx };
}
