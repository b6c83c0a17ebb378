import { describeInferenceRuntime, type InferenceRuntimeSelection } from "../backend/selectRuntime.js";
import { decodeImageRgbFromBuffer } from "../data/decodeImage.js";
import {
  buildDihedralViewRows,
  packTriageInputs,
  triageInputSizesPx,
  type TriageModelMetadata,
} from "../export/triageModel.js";
import { openTriageScorer } from "../export/triageScorer.js";

/** An exported triage model loaded once, scoring image bytes held in memory until released. */
export interface ImageBytesScorer {
  metadata: TriageModelMetadata;
  /** Which runtime runs the model and why (ONNX Runtime when the folder has model.onnx, else tfjs). */
  runtime: InferenceRuntimeSelection;
  /**
   * P(malignant) of one image's bytes, decoded and preprocessed as `npm run score` does for a
   * file; with `views` ≥ 2 also each of its first `views` dihedral views (view 0 = as sent), all
   * in one forward pass. Throws ImageBytesError ("too-large" before decoding when the header declares more than
   * `maxInputPixels`; "undecodable" otherwise).
   */
  scoreImageBytes(
    bytes: Uint8Array,
    options: { maxInputPixels: number; views?: number },
  ): Promise<{ probability: number; viewProbabilities?: number[] }>;
  /** Frees the model (tfjs weights and plan, or the ONNX Runtime session). */
  release(): Promise<void>;
}

/**
 * Loads the exported triage model in `modelDir` once, through the runtime selection `npm run
 * score` uses (selectInferenceRuntime: ONNX Runtime when model.onnx is present and loads, else
 * tfjs; `runtime` or MELANOMA_LAB_RUNTIME forces either), for scoring uploads one at a time.
 *
 * @example const scorer = await openImageBytesScorer("models/demo"); const p = await scorer.scoreImageBytes(jpegBytes, { maxInputPixels: 25e6 });
 */
export async function openImageBytesScorer(
  modelDir: string,
  options: { runtime?: string } = {},
): Promise<ImageBytesScorer> {
  const scorer = await openTriageScorer(modelDir, { runtime: options.runtime, batchSize: 1 });
  const { metadata, runtime, predictPacked: predict } = scorer;
  const sizesPx = triageInputSizesPx(metadata);
  return {
    metadata,
    runtime,
    async scoreImageBytes(bytes, { maxInputPixels, views = 1 }) {
      const pixelsBySize = new Map<number, Uint8Array>();
      for (const size of sizesPx) {
        pixelsBySize.set(
          size,
          await decodeImageRgbFromBuffer(bytes, size, metadata.resizePolicy, { maxInputPixels, label: "request body" }),
        );
      }
      const rows = buildDihedralViewRows(pixelsBySize, views);
      const values = await predict(packTriageInputs(metadata, rows), rows.length);
      const viewProbabilities = Array.from({ length: views }, (_, v) => values[v]);
      return views > 1
        ? { probability: viewProbabilities[0], viewProbabilities }
        : { probability: viewProbabilities[0] };
    },
    release: () => scorer.release(),
  };
}

/**
 * One line saying which runtime scores uploads and why, for the service's start-up output.
 *
 * @example describeScorerRuntime(scorer) // "runtime: onnx (onnxruntime-node 1.30.0 loaded and models/demo has an ONNX file; …)"
 */
export function describeScorerRuntime(scorer: Pick<ImageBytesScorer, "runtime">): string {
  return describeInferenceRuntime(scorer.runtime);
}
