import fs from "node:fs";
import path from "node:path";
import { decodeImageRgb } from "../data/decodeImage.js";
import { preprocessToFloat32 } from "../models/preprocess.js";
import { ModelFileError } from "../models/modelFiles.js";
import { METADATA_JSON_FILE, TriageModelError, type ImagePrediction, type TriageModelMetadata } from "./triageModel.js";

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
  if (!fs.existsSync(metaPath)) {
    throw new ModelFileError(metaPath, "missing (exportTriageModel and exportTriageModelOnnx write it)");
  }
  const metadata = JSON.parse(fs.readFileSync(metaPath, "utf8")) as TriageModelMetadata;
  if (!metadata.onnx) {
    throw new ModelFileError(metaPath, "lacks field onnx (written by exportTriageModelOnnx beside model.onnx)");
  }
  const onnxPath = path.join(dir, metadata.onnx.file);
  if (!fs.existsSync(onnxPath)) throw new ModelFileError(onnxPath, "missing (exportTriageModelOnnx writes it)");
  const members = metadata.ensembleMembers ?? [
    { inputSizePx: metadata.inputSizePx, preprocessing: metadata.preprocessing },
  ];
  const { inputNames, outputName } = metadata.onnx;
  if (inputNames.length !== members.length) {
    throw new ModelFileError(
      metaPath,
      `onnx.inputNames lists ${inputNames.length} inputs, but the metadata describes ${members.length}; expected one per backbone`,
    );
  }
  // Loaded on first use: the ONNX Runtime native library is only needed here.
  const ort = await import("onnxruntime-node");
  const session = await ort.InferenceSession.create(onnxPath, {
    graphOptimizationLevel: "all",
    ...(options.threads ? { intraOpNumThreads: options.threads } : {}),
  });
  const sizesPx = [...new Set(members.map((m) => m.inputSizePx))];
  const predict = async (imagePaths: readonly string[]): Promise<ImagePrediction[]> => {
    const results: ImagePrediction[] = [];
    for (let start = 0; start < imagePaths.length; start += batchSize) {
      const batch = imagePaths.slice(start, start + batchSize);
      const decoded = await Promise.all(
        batch.map(async (imagePath) => {
          const imageId = path.basename(imagePath).replace(/\.[^.]+$/, "");
          try {
            const pixels = new Map<number, Uint8Array>();
            for (const size of sizesPx) pixels.set(size, await decodeImageRgb(imagePath, size, metadata.resizePolicy));
            return { imageId, imagePath, pixels };
          } catch (err) {
            const reason = err instanceof Error ? err.message : String(err);
            return { imageId, imagePath, problem: { file: imagePath, reason } };
          }
        }),
      );
      const ok = decoded.filter((d) => d.pixels !== undefined);
      let probabilities: Float32Array = new Float32Array(0);
      if (ok.length > 0) {
        const feeds: Record<string, InstanceType<typeof ort.Tensor>> = {};
        members.forEach((member, m) => {
          const size = member.inputSizePx;
          const perImage = size * size * 3;
          const packed = new Float32Array(ok.length * perImage);
          ok.forEach((d, i) =>
            packed.set(preprocessToFloat32(d.pixels!.get(size)!, member.preprocessing), i * perImage),
          );
          feeds[inputNames[m]] = new ort.Tensor("float32", packed, [ok.length, size, size, 3]);
        });
        const output = (await session.run(feeds))[outputName];
        probabilities = output.data as Float32Array;
      }
      let next = 0;
      for (const d of decoded) {
        results.push(
          d.pixels
            ? { imageId: d.imageId, imagePath: d.imagePath, probability: probabilities[next++] }
            : { imageId: d.imageId, imagePath: d.imagePath, problem: d.problem! },
        );
      }
    }
    return results;
  };
  return { onnxPath, predict, release: () => session.release() };
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
