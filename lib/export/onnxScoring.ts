import fs from "node:fs";
import path from "node:path";
import { loadOnnxRuntime, RuntimeUnavailableError } from "../backend/selectRuntime.js";
import { ModelFileError } from "../models/modelFiles.js";
import {
  checkTtaOptions,
  METADATA_JSON_FILE,
  readTriageMetadata,
  scoreImageBatch,
  scoreImagesWithViews,
  TriageModelError,
  type ImagePrediction,
  type PackedBatchPredictor,
  type TtaImagePrediction,
} from "./triageModel.js";

/** Options of {@link predictMalignantProbabilityWithOnnx}. */
export interface OnnxScoringOptions {
  /** Images per ONNX Runtime call (default 16). */
  batchSize?: number;
  /** ONNX Runtime intra-op threads (default: ONNX Runtime's own choice). */
  threads?: number;
}

/** A `model.onnx` opened once in ONNX Runtime, scoring batches of image files until released. */
export interface OnnxTriageScorer {
  /** Path of the model.onnx being run. */
  onnxPath: string;
  /** P(malignant) per image file, or why it could not be scored (as predictMalignantProbability). */
  predict(imagePaths: readonly string[]): Promise<ImagePrediction[]>;
  /**
   * Test-time augmentation as predictMalignantProbabilityTta does for tfjs: the mean over the
   * first `views` dihedral views (default 8) and each view's probability, at most the scorer's
   * batch size of view rows per ONNX Runtime call.
   */
  predictTta(imagePaths: readonly string[], options?: { views?: number }): Promise<TtaImagePrediction[]>;
  /** One ONNX Runtime run on inputs already decoded and packed (packTriageInputs): for uploads held in memory. */
  predictPacked: PackedBatchPredictor;
  /** Frees the ONNX Runtime session. */
  release(): Promise<void>;
}

/**
 * Opens the `model.onnx` that exportTriageModelOnnx wrote into `dir` in ONNX Runtime
 * (onnxruntime-node, graph optimisations "all"), once, for scoring many batches: images are
 * decoded and preprocessed as `dir`'s metadata.json says (per member for an ensemble), the same
 * as predictMalignantProbability does for the tfjs files. Throws {@link ModelFileError} when
 * metadata.json, its `onnx` entry or the file is missing, and {@link TriageModelError} for a bad
 * batch size.
 *
 * @example const scorer = await openOnnxTriageScorer("models/demo"); await scorer.predict(paths); await scorer.release();
 */
export async function openOnnxTriageScorer(dir: string, options: OnnxScoringOptions = {}): Promise<OnnxTriageScorer> {
  const batchSize = options.batchSize ?? 16;
  if (!(Number.isInteger(batchSize) && batchSize >= 1)) {
    throw new TriageModelError(`batchSize: received ${batchSize}; expected a whole number ≥ 1 (e.g. 16)`);
  }
  const metaPath = path.join(dir, METADATA_JSON_FILE);
  const metadata = readTriageMetadata(dir);
  if (!metadata.onnx) {
    throw new ModelFileError(metaPath, "lacks field onnx (written by exportTriageModelOnnx beside model.onnx)");
  }
  const onnxPath = path.join(dir, metadata.onnx.file);
  if (!fs.existsSync(onnxPath)) throw new ModelFileError(onnxPath, "missing (exportTriageModelOnnx writes it)");
  const memberCount = metadata.ensembleMembers?.length ?? 1;
  const { inputNames, outputName } = metadata.onnx;
  if (inputNames.length !== memberCount) {
    throw new ModelFileError(
      metaPath,
      `onnx.inputNames lists ${inputNames.length} inputs, but the metadata describes ${memberCount}; expected one per backbone`,
    );
  }
  // The one ONNX Runtime loader (lib/backend): a missing or broken package is a named error.
  const loaded = await loadOnnxRuntime();
  if ("error" in loaded) throw new RuntimeUnavailableError(`cannot run ${onnxPath}: ${loaded.error}`);
  const { ort } = loaded;
  const session = await ort.InferenceSession.create(onnxPath, {
    graphOptimizationLevel: "all",
    ...(options.threads ? { intraOpNumThreads: options.threads } : {}),
  });
  // Decoding, packing and preprocessing are the tfjs scorer's (scoreImageBatch); only the run differs.
  const runBatch: PackedBatchPredictor = async (inputs, count) => {
    const feeds: Record<string, InstanceType<typeof ort.Tensor>> = {};
    inputs.forEach(({ values, sizePx }, m) => {
      feeds[inputNames[m]] = new ort.Tensor("float32", values, [count, sizePx, sizePx, 3]);
    });
    return (await session.run(feeds))[outputName].data as Float32Array;
  };
  const predict = async (imagePaths: readonly string[]): Promise<ImagePrediction[]> => {
    const results: ImagePrediction[] = [];
    for (let start = 0; start < imagePaths.length; start += batchSize) {
      results.push(...(await scoreImageBatch(metadata, imagePaths.slice(start, start + batchSize), runBatch)));
    }
    return results;
  };
  const predictTta = (imagePaths: readonly string[], ttaOptions: { views?: number } = {}) =>
    scoreImagesWithViews(metadata, imagePaths, runBatch, checkTtaOptions({ views: ttaOptions.views, batchSize }));
  return { onnxPath, predict, predictTta, predictPacked: runBatch, release: () => session.release() };
}

/**
 * Probability of malignant for each image file, computed by ONNX Runtime from the `model.onnx`
 * that exportTriageModelOnnx wrote into `dir` (see {@link openOnnxTriageScorer}; the session is
 * opened and released within the call), so the two runtimes can be compared with
 * checkExportParity. An unreadable image gives a `problem` entry.
 *
 * @example const viaOnnx = await predictMalignantProbabilityWithOnnx("models/demo", paths);
 */
export async function predictMalignantProbabilityWithOnnx(
  dir: string,
  imagePaths: readonly string[],
  options: OnnxScoringOptions = {},
): Promise<ImagePrediction[]> {
  const scorer = await openOnnxTriageScorer(dir, options);
  try {
    return await scorer.predict(imagePaths);
  } finally {
    await scorer.release();
  }
}
