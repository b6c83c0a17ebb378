import fs from "node:fs";
import path from "node:path";
import * as tf from "@tensorflow/tfjs";
import { MelanomaLabError } from "../util/errors.js";

/** Thrown when a model folder lacks a file, or a file is not what a tfjs layers model needs. */
export class ModelFileError extends MelanomaLabError {
  readonly file: string;
  constructor(file: string, reason: string) {
    super(`${file}: ${reason}`);
    this.file = file;
  }
}

/** File name of the topology + weights manifest in a saved model folder. */
export const MODEL_JSON_FILE = "model.json";
/** File name of the single weights file {@link saveLayersModelToDir} writes. */
export const WEIGHTS_BIN_FILE = "weights.bin";

function joinWeightData(data: tf.io.WeightData): ArrayBuffer {
  return Array.isArray(data) ? tf.io.CompositeArrayBuffer.join(data) : data;
}

/**
 * A tf.io save handler writing `model.json` and one `weights.bin` into `dir` with node:fs
 * (tfjs's `file://` scheme needs tfjs-node, which is not installed). Creates `dir`.
 *
 * @example await model.save(createFsSaveHandler("out/model")); // out/model/model.json + weights.bin
 */
function createFsSaveHandler(dir: string): tf.io.IOHandler {
  return {
    save: async (artifacts: tf.io.ModelArtifacts): Promise<tf.io.SaveResult> => {
      if (artifacts.modelTopology === undefined || artifacts.modelTopology instanceof ArrayBuffer) {
        throw new ModelFileError(path.join(dir, MODEL_JSON_FILE), "model has no JSON topology to save (expected a tf.LayersModel)");
      }
      await fs.promises.mkdir(dir, { recursive: true });
      const weightData = artifacts.weightData === undefined ? new ArrayBuffer(0) : joinWeightData(artifacts.weightData);
      const modelJson: tf.io.ModelJSON = {
        modelTopology: artifacts.modelTopology,
        format: artifacts.format ?? "layers-model",
        generatedBy: artifacts.generatedBy ?? `TensorFlow.js tfjs-layers v${tf.version.tfjs}`,
        convertedBy: artifacts.convertedBy ?? null,
        weightsManifest: [{ paths: [`./${WEIGHTS_BIN_FILE}`], weights: artifacts.weightSpecs ?? [] }],
      };
      if (artifacts.trainingConfig) modelJson.trainingConfig = artifacts.trainingConfig;
      if (artifacts.userDefinedMetadata) modelJson.userDefinedMetadata = artifacts.userDefinedMetadata;
      await fs.promises.writeFile(path.join(dir, WEIGHTS_BIN_FILE), Buffer.from(weightData));
      await fs.promises.writeFile(path.join(dir, MODEL_JSON_FILE), JSON.stringify(modelJson));
      return {
        modelArtifactsInfo: {
          dateSaved: new Date(),
          modelTopologyType: "JSON",
          modelTopologyBytes: JSON.stringify(artifacts.modelTopology).length,
          weightSpecsBytes: JSON.stringify(artifacts.weightSpecs ?? []).length,
          weightDataBytes: weightData.byteLength,
        },
      };
    },
  };
}

/**
 * Saves a layers model into `dir` as `model.json` + `weights.bin`.
 *
 * @example await saveLayersModelToDir(head, "/tmp/head");
 */
export async function saveLayersModelToDir(model: tf.LayersModel, dir: string): Promise<void> {
  await model.save(createFsSaveHandler(dir));
}

/**
 * Reads a tfjs layers-model folder (`model.json` + the shard files its weightsManifest lists,
 * any number of groups/shards) into memory artifacts, checking every file exists and that the
 * shard bytes add up to what the weight specs need.
 *
 * @example const artifacts = readModelArtifactsFromDir("/work/shared/weights/mobilenet_v1_0.25_224");
 */
export function readModelArtifactsFromDir(dir: string): tf.io.ModelArtifacts {
  const jsonPath = path.join(dir, MODEL_JSON_FILE);
  if (!fs.existsSync(jsonPath)) {
    throw new ModelFileError(jsonPath, `missing (expected a tfjs layers model folder holding ${MODEL_JSON_FILE} and its weight shards)`);
  }
  let modelJson: tf.io.ModelJSON;
  try {
    modelJson = JSON.parse(fs.readFileSync(jsonPath, "utf8")) as tf.io.ModelJSON;
  } catch (err) {
    throw new ModelFileError(jsonPath, `is not valid JSON (${err instanceof Error ? err.message : String(err)})`);
  }
  if (!modelJson.modelTopology || !Array.isArray(modelJson.weightsManifest)) {
    throw new ModelFileError(jsonPath, "lacks modelTopology or weightsManifest (expected a tfjs layers-model model.json)");
  }
  const buffers: Buffer[] = [];
  const weightSpecs: tf.io.WeightsManifestEntry[] = [];
  for (const group of modelJson.weightsManifest) {
    for (const shard of group.paths) {
      const shardPath = path.join(dir, shard);
      if (!fs.existsSync(shardPath)) {
        throw new ModelFileError(shardPath, `missing: weight shard listed in ${jsonPath} (expected ${group.paths.length} shard(s) for this group)`);
      }
      buffers.push(fs.readFileSync(shardPath));
    }
    weightSpecs.push(...group.weights);
  }
  const all = Buffer.concat(buffers);
  const needed = weightSpecs.reduce((n, s) => n + bytesOfWeightSpec(s), 0);
  if (all.length < needed) {
    throw new ModelFileError(dir, `weight shards hold ${all.length} bytes but ${jsonPath} specifies ${needed} bytes (truncated or mismatched shard)`);
  }
  return {
    modelTopology: modelJson.modelTopology,
    format: modelJson.format,
    generatedBy: modelJson.generatedBy,
    convertedBy: modelJson.convertedBy,
    trainingConfig: modelJson.trainingConfig,
    userDefinedMetadata: modelJson.userDefinedMetadata,
    weightSpecs,
    weightData: all.buffer.slice(all.byteOffset, all.byteOffset + all.length),
  };
}

function bytesOfWeightSpec(spec: tf.io.WeightsManifestEntry): number {
  const count = spec.shape.reduce((a, b) => a * b, 1);
  if (spec.quantization) {
    const bytes = spec.quantization.dtype === "uint8" ? 1 : 2;
    return count * bytes;
  }
  return count * (spec.dtype === "bool" ? 1 : 4);
}

/**
 * Loads a tfjs layers model from a folder with node:fs (no tfjs-node needed).
 * Throws {@link ModelFileError} naming a missing model.json or shard.
 *
 * @example const model = await loadLayersModelFromDir("exports/triage-2026-01-01");
 */
export async function loadLayersModelFromDir(dir: string): Promise<tf.LayersModel> {
  return tf.loadLayersModel(tf.io.fromMemory(readModelArtifactsFromDir(dir)));
}
