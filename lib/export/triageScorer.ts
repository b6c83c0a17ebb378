import path from "node:path";
import { selectInferenceRuntime, type InferenceRuntimeSelection } from "../backend/selectRuntime.js";
import { openOnnxTriageScorer } from "./onnxScoring.js";
import {
  checkTtaOptions,
  loadTriageModel,
  openTfjsBatchPredictor,
  readTriageMetadata,
  scoreImageBatch,
  scoreImagesWithViews,
  TriageModelError,
  type ImagePrediction,
  type PackedBatchPredictor,
  type TriageModelMetadata,
  type TtaImagePrediction,
} from "./triageModel.js";

/**
 * An exported triage model opened once in the runtime chosen for it, scoring image files (plain
 * or with test-time augmentation) and packed in-memory batches until released. The same
 * interface whichever runtime runs it, so `npm run score` and the service have one code path.
 */
export interface TriageScorer {
  metadata: TriageModelMetadata;
  /** Which runtime runs the model and why (ONNX Runtime when the folder has model.onnx and it loads, else tfjs). */
  runtime: InferenceRuntimeSelection;
  /** P(malignant) per image file, or why it could not be scored, at most `batchSize` images per forward pass. */
  predict(imagePaths: readonly string[]): Promise<ImagePrediction[]>;
  /** Mean P(malignant) over the first `views` dihedral views (default 8) and each view's, at most `batchSize` view rows per pass. */
  predictTta(imagePaths: readonly string[], options?: { views?: number }): Promise<TtaImagePrediction[]>;
  /** One forward pass on inputs already decoded and packed (packTriageInputs), e.g. an upload held in memory. */
  predictPacked: PackedBatchPredictor;
  /** Frees the model: the ONNX Runtime session, or the tfjs weights and compiled inference plan. */
  release(): Promise<void>;
}

/**
 * Opens the exported triage model in `modelDir` for scoring many batches: ONNX Runtime on
 * `model.onnx` when metadata.json lists one and onnxruntime-node loads, else tfjs on
 * `model.json`, whose inference plan (BatchNorm folded, activations fused) is compiled once here
 * rather than per batch. `runtime` ("onnx", "tfjs", "auto") or MELANOMA_LAB_RUNTIME forces
 * either. Throws {@link TriageModelError} for a bad batch size and ModelFileError for missing files.
 *
 * @example const scorer = await openTriageScorer("models/demo", { batchSize: 32 }); const preds = await scorer.predict(paths); await scorer.release();
 */
export async function openTriageScorer(
  modelDir: string,
  options: { runtime?: string; batchSize?: number; ortThreads?: number } = {},
): Promise<TriageScorer> {
  const batchSize = options.batchSize ?? 16;
  if (!(Number.isInteger(batchSize) && batchSize >= 1)) {
    throw new TriageModelError(`batchSize: received ${batchSize}; expected a whole number ≥ 1 (e.g. 16)`);
  }
  const metadata = readTriageMetadata(modelDir);
  const onnxPath = metadata.onnx ? path.join(modelDir, metadata.onnx.file) : undefined;
  const runtime = await selectInferenceRuntime({ modelName: modelDir, onnxPath, preferred: options.runtime });
  if (runtime.runtime === "onnx") {
    const onnx = await openOnnxTriageScorer(modelDir, { batchSize, threads: options.ortThreads ?? runtime.ortThreads });
    return {
      metadata,
      runtime,
      predict: (paths) => onnx.predict(paths),
      predictTta: (paths, tta) => onnx.predictTta(paths, tta),
      predictPacked: onnx.predictPacked,
      release: () => onnx.release(),
    };
  }
  const loaded = await loadTriageModel(modelDir);
  const tfjs = openTfjsBatchPredictor(loaded);
  return {
    metadata,
    runtime,
    async predict(paths) {
      const results: ImagePrediction[] = [];
      for (let start = 0; start < paths.length; start += batchSize) {
        results.push(...(await scoreImageBatch(metadata, paths.slice(start, start + batchSize), tfjs.predict)));
      }
      return results;
    },
    predictTta: (paths, tta = {}) =>
      scoreImagesWithViews(metadata, paths, tfjs.predict, checkTtaOptions({ views: tta.views, batchSize })),
    predictPacked: tfjs.predict,
    release: async () => {
      tfjs.dispose();
      loaded.model.dispose();
    },
  };
}
