import fs from "node:fs";
import path from "node:path";
import { loadDataset, summarizeProblems } from "../data/loadDataset.js";
import { IMAGE_EXTENSIONS } from "../data/imageIndex.js";
import type { InputProblem } from "../data/types.js";
import {
  describeInferenceRuntime,
  selectInferenceRuntime,
  type InferenceRuntimeSelection,
} from "../backend/selectRuntime.js";
import { openOnnxTriageScorer } from "../export/onnxScoring.js";
import {
  loadTriageModel,
  predictMalignantProbability,
  readTriageMetadata,
  type ImagePrediction,
} from "../export/triageModel.js";
import { MelanomaLabError } from "../util/errors.js";
import { triageDecision } from "./triage.js";

/** Thrown when the scoring input is neither a dataset folder, a labels.csv nor a folder of images. */
export class ScoreInputError extends MelanomaLabError {}

/** What {@link scoreImagesToCsv} did. */
export interface ScoreSummary {
  outPath: string;
  scoredCount: number;
  urgentCount: number;
  problems: InputProblem[];
  thresholdProb: number;
  /** Which runtime scored the images and why (ONNX Runtime when the model folder has model.onnx). */
  runtime: InferenceRuntimeSelection;
}

/**
 * The images to score: a `labels.csv` file or a dataset folder (labels.csv + images/, folder per
 * class) gives its records; any other folder gives its image files (.jpg, .jpeg, .png), sorted.
 *
 * @example listImagesToScore("../shared/data/ham10000-dev") // [{ imageId: "ISIC_0024307", imagePath: "…/ISIC_0024307.jpg" }, …]
 */
export function listImagesToScore(input: string): {
  images: { imageId: string; imagePath: string }[];
  problems: InputProblem[];
} {
  if (!fs.existsSync(input)) {
    throw new ScoreInputError(
      `--input ${input}: no such file or folder (expected a folder of images, a dataset folder or a labels.csv)`,
    );
  }
  const stat = fs.statSync(input);
  if (stat.isFile()) {
    if (path.basename(input) !== "labels.csv") {
      throw new ScoreInputError(
        `--input ${input}: a file must be a labels.csv (image_id,label columns); received ${path.basename(input)}`,
      );
    }
    const { records, problems } = loadDataset(path.dirname(input), { layout: "labels-csv" });
    return { images: records.map((r) => ({ imageId: r.imageId, imagePath: r.imagePath })), problems };
  }
  const hasDatasetLayout =
    fs.existsSync(path.join(input, "labels.csv")) ||
    ["train", "valid", "validation", "test"].some(
      (d) => fs.existsSync(path.join(input, d, "benign")) || fs.existsSync(path.join(input, d, "malignant")),
    );
  if (hasDatasetLayout) {
    const { records, problems } = loadDataset(input);
    return { images: records.map((r) => ({ imageId: r.imageId, imagePath: r.imagePath })), problems };
  }
  const files = fs
    .readdirSync(input)
    .filter((f) => IMAGE_EXTENSIONS.includes(path.extname(f).toLowerCase()))
    .sort();
  if (files.length === 0) {
    throw new ScoreInputError(`--input ${input}: folder has no .jpg, .jpeg or .png files and no labels.csv`);
  }
  return {
    images: files.map((f) => ({ imageId: path.basename(f, path.extname(f)), imagePath: path.join(input, f) })),
    problems: [],
  };
}

/**
 * Scores images with an exported triage model and writes `image_id,probability,triage` rows
 * (probability of malignant 0..1; `urgent` when it reaches the model's threshold). Rows are
 * appended batch by batch, so an interrupted run keeps what it wrote; images that fail are
 * listed in `problems` and the rest go on.
 *
 * @example await scoreImagesToCsv({ modelDir: "models/default", input: "data/synthetic", outPath: "preds.csv" })
 */
export async function scoreImagesToCsv(options: {
  modelDir: string;
  input: string;
  outPath: string;
  batchSize?: number;
  /** "onnx", "tfjs" or "auto" (default: MELANOMA_LAB_RUNTIME, else auto). */
  runtime?: string;
  onProgress?: (done: number, total: number) => void;
}): Promise<ScoreSummary> {
  const batchSize = options.batchSize ?? 32;
  // Checked first: a batch of 0 never advanced the loop below, NaN ended it before any image.
  if (!Number.isInteger(batchSize) || batchSize < 1) {
    throw new ScoreInputError(
      `batchSize: received ${batchSize}, expected a whole number ≥ 1 (images per forward pass)`,
    );
  }
  const metadata = readTriageMetadata(options.modelDir);
  const { images, problems } = listImagesToScore(options.input);
  // model.onnx (exportTriageModelOnnx) runs in ONNX Runtime when it is installed, else tfjs runs
  // model.json (loaded only then); MELANOMA_LAB_RUNTIME or `runtime` forces either.
  const onnxFile = metadata.onnx ? path.join(options.modelDir, metadata.onnx.file) : undefined;
  const runtime = await selectInferenceRuntime({
    modelName: options.modelDir,
    onnxPath: onnxFile,
    preferred: options.runtime,
  });
  const onnxScorer =
    runtime.runtime === "onnx"
      ? await openOnnxTriageScorer(options.modelDir, { batchSize, threads: runtime.ortThreads })
      : undefined;
  const loaded = onnxScorer ? undefined : await loadTriageModel(options.modelDir);
  const predictBatch = (paths: string[]): Promise<ImagePrediction[]> =>
    onnxScorer ? onnxScorer.predict(paths) : predictMalignantProbability(loaded!, paths);
  const thresholdProb = metadata.thresholdProb;
  fs.mkdirSync(path.dirname(path.resolve(options.outPath)), { recursive: true });
  fs.writeFileSync(options.outPath, "image_id,probability,triage\n");
  let scoredCount = 0;
  let urgentCount = 0;
  for (let start = 0; start < images.length; start += batchSize) {
    const batch = images.slice(start, start + batchSize);
    const predictions = await predictBatch(batch.map((b) => b.imagePath));
    const lines: string[] = [];
    predictions.forEach((p, i) => {
      if ("problem" in p) {
        problems.push(p.problem);
        return;
      }
      const triage = triageDecision(p.probability, thresholdProb);
      if (triage === "urgent") urgentCount++;
      scoredCount++;
      lines.push(`${csvField(batch[i].imageId)},${p.probability.toFixed(6)},${triage}`);
    });
    if (lines.length > 0) fs.appendFileSync(options.outPath, lines.join("\n") + "\n");
    options.onProgress?.(Math.min(start + batchSize, images.length), images.length);
  }
  loaded?.model.dispose();
  await onnxScorer?.release();
  return { outPath: options.outPath, scoredCount, urgentCount, problems, thresholdProb, runtime };
}

function csvField(value: string): string {
  return /[",\n]/.test(value) ? `"${value.replace(/"/g, '""')}"` : value;
}

/**
 * Lines that summarise a scoring run for the terminal.
 *
 * @example console.log(describeScoreSummary(summary).join("\n"))
 */
export function describeScoreSummary(summary: ScoreSummary): string[] {
  const lines = [
    describeInferenceRuntime(summary.runtime),
    `scored ${summary.scoredCount} images → ${summary.outPath} (${summary.urgentCount} urgent at threshold ${summary.thresholdProb.toFixed(4)})`,
  ];
  if (summary.problems.length > 0)
    lines.push(`${summary.problems.length} skipped:`, ...summarizeProblems(summary.problems));
  return lines;
}
