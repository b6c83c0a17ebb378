import { createHash } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import Papa from "papaparse";
import { readCsvTable } from "../data/csv.js";
import { loadDataset, summarizeProblems } from "../data/loadDataset.js";
import { IMAGE_EXTENSIONS } from "../data/imageIndex.js";
import type { InputProblem } from "../data/types.js";
import { describeInferenceRuntime, type InferenceRuntimeSelection } from "../backend/selectRuntime.js";
import { openTriageScorer } from "../export/triageScorer.js";
import {
  checkTtaOptions,
  METADATA_JSON_FILE,
  readTriageMetadata,
  type ImagePrediction,
  type TtaImagePrediction,
} from "../export/triageModel.js";
import { MelanomaLabError } from "../util/errors.js";
import { decideTriageForModel } from "./triagePolicy.js";

/** Thrown when the scoring input is neither a dataset folder, a labels.csv nor a folder of images. */
export class ScoreInputError extends MelanomaLabError {}

/** An image the listing names but that cannot be scored: it gets an error row. */
export interface UnscorableImage {
  imageId: string;
  /** The listing's problem with it (file, row and reason). */
  problem: InputProblem;
}

/**
 * The images to score: a `labels.csv` file or a dataset folder (labels.csv + images/, folder per
 * class) gives its records; any other folder gives its image files (.jpg, .jpeg, .png), sorted.
 * A labels.csv row that names an image id but cannot be scored (missing image file, unknown
 * label) is in `unscorable`, so it gets an error row; problems without an id of their own (an
 * empty image_id, an id listed twice, a stray file) are in `problems`.
 *
 * @example listImagesToScore("../shared/data/ham10000-dev") // { images: [{ imageId: "ISIC_0024307", imagePath: "…/ISIC_0024307.jpg" }, …], unscorable: [], problems: [] }
 */
export function listImagesToScore(input: string): {
  images: { imageId: string; imagePath: string }[];
  unscorable: UnscorableImage[];
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
    return withUnscorableRows(loadDataset(path.dirname(input), { layout: "labels-csv" }));
  }
  const hasDatasetLayout =
    fs.existsSync(path.join(input, "labels.csv")) ||
    ["train", "valid", "validation", "test"].some(
      (d) => fs.existsSync(path.join(input, d, "benign")) || fs.existsSync(path.join(input, d, "malignant")),
    );
  if (hasDatasetLayout) return withUnscorableRows(loadDataset(input));
  const files = fs
    .readdirSync(input)
    .filter((f) => IMAGE_EXTENSIONS.includes(path.extname(f).toLowerCase()))
    .sort();
  if (files.length === 0) {
    throw new ScoreInputError(`--input ${input}: folder has no .jpg, .jpeg or .png files and no labels.csv`);
  }
  const images: { imageId: string; imagePath: string }[] = [];
  const problems: InputProblem[] = [];
  const firstFileOf = new Map<string, string>();
  for (const f of files) {
    const imageId = path.basename(f, path.extname(f));
    const imagePath = path.join(input, f);
    const earlier = firstFileOf.get(imageId);
    if (earlier !== undefined) {
      // One row per image id: a.jpg and a.png cannot both be "a".
      problems.push({
        file: imagePath,
        reason: `image id ${JSON.stringify(imageId)} also at ${earlier}; scored the first`,
      });
      continue;
    }
    firstFileOf.set(imageId, imagePath);
    images.push({ imageId, imagePath });
  }
  return { images, unscorable: [], problems };
}

/** Splits a dataset's problems into rows with an image id of their own (→ error rows) and the rest. */
function withUnscorableRows(dataset: { records: { imageId: string; imagePath: string }[]; problems: InputProblem[] }): {
  images: { imageId: string; imagePath: string }[];
  unscorable: UnscorableImage[];
  problems: InputProblem[];
} {
  const images = dataset.records.map((r) => ({ imageId: r.imageId, imagePath: r.imagePath }));
  const listed = new Set(images.map((i) => i.imageId));
  const idsByFileRow = new Map<string, string>();
  const idAt = (file: string, row: number): string => {
    if (!idsByFileRow.has(`${file}#0`)) {
      idsByFileRow.set(`${file}#0`, "");
      for (const r of readCsvTable(file).rows) idsByFileRow.set(`${file}#${r.rowNumber}`, r.values.image_id ?? "");
    }
    return idsByFileRow.get(`${file}#${row}`) ?? "";
  };
  const unscorable: UnscorableImage[] = [];
  const problems: InputProblem[] = [];
  for (const problem of dataset.problems) {
    const imageId = problem.row !== undefined && problem.file.endsWith(".csv") ? idAt(problem.file, problem.row) : "";
    // An id that is scored anyway (listed twice: the first is kept) or already has an error row gets no second row.
    if (imageId === "" || listed.has(imageId)) {
      problems.push(problem);
      continue;
    }
    listed.add(imageId);
    unscorable.push({ imageId, problem });
  }
  return { images, unscorable, problems };
}

/** Thrown when `--out` already holds scores from another model or other options (or of unknown origin). */
export class ScoreOutputMismatchError extends MelanomaLabError {}

/** Columns of a scores CSV: `tta_sd` only with test-time augmentation. `error` is empty on scored rows. */
export function scoreCsvColumns(ttaViews: number): string[] {
  return ttaViews > 0
    ? ["image_id", "probability", "triage", "tta_sd", "error"]
    : ["image_id", "probability", "triage", "error"];
}

/**
 * What a scores CSV was written with, kept beside it in `<out>.meta.json`: a rerun appends only
 * when the model (the SHA-256 of its metadata.json, which holds its export time and threshold)
 * and the options that change the values (TTA views) are the same.
 */
export interface ScoreOutputMeta {
  format: "melanoma-lab-scores/1";
  model: {
    /** Model folder as given when the file was started (informative; the hash decides). */
    dir: string;
    backboneName: string;
    createdAt: string;
    /** SHA-256 (hex) of the model folder's metadata.json. */
    metadataSha256: string;
  };
  /** Dihedral views averaged per image; 0 without test-time augmentation. */
  ttaViews: number;
  columns: string[];
}

/** What {@link scoreImagesToCsv} did. */
export interface ScoreSummary {
  outPath: string;
  /** Images given a probability in this run. */
  scoredCount: number;
  /** Images skipped because the output already had their row (scored or error). */
  alreadyScoredCount: number;
  /** Error rows written in this run (unreadable images, listing rows that name an unscorable image). */
  errorCount: number;
  /** Error rows of an earlier run removed to be retried (`retryErrors`). */
  retriedCount: number;
  /** Rows written in this run per triage level, e.g. { urgent: 3, routine: 40 }. */
  levelCounts: Record<string, number>;
  /** Listing problems that name no image of their own (no row), and the reason of each error row. */
  problems: InputProblem[];
  thresholdProb: number;
  /** Dihedral views averaged per image; 0 without TTA. */
  ttaViews: number;
  /** Wall time of the run, listing and model loading included, in seconds. */
  wallSeconds: number;
  /** (scored + error rows written) / wallSeconds. */
  imagesPerSecond: number;
  /** Which runtime scored the images and why (ONNX Runtime when the model folder has model.onnx). */
  runtime: InferenceRuntimeSelection;
}

/** What a run will do, told to `onStart` before the first image is scored. */
export interface ScorePlan {
  /** Images (and unscorable listing rows) this run writes a row for. */
  toScore: number;
  alreadyScored: number;
  /** Earlier error rows removed to be retried. */
  retried: number;
  /** True when the output file already existed (the run appends). */
  resumed: boolean;
}

/** Options of {@link scoreImagesToCsv}. */
export interface ScoreImagesOptions {
  modelDir: string;
  input: string;
  outPath: string;
  /** Images per written batch (and per forward pass without TTA; view rows per pass with it). Default 32. */
  batchSize?: number;
  /** "onnx", "tfjs" or "auto" (default: MELANOMA_LAB_RUNTIME, else auto). */
  runtime?: string;
  /** Test-time augmentation: number of dihedral views to average (1–8; true = 8); default off. */
  tta?: boolean | number;
  /** Score again the images whose row in the output is an error row (else they count as done). */
  retryErrors?: boolean;
  /** Replace an output written by another model or with other options (else that is refused). */
  overwrite?: boolean;
  onStart?: (plan: ScorePlan) => void;
  onProgress?: (done: number, total: number) => void;
}

/**
 * Scores images with an exported triage model into a CSV file, streaming and resumable:
 * `image_id,probability,triage[,tta_sd],error` rows, one row per image id: the probability of
 * malignant 0..1 (the mean over the views with `tta`; calibrated when the model has a triage
 * policy) and the level decideTriageForModel gives (the policy's urgent/routine/reassure, with
 * the TTA spread escalating uncertain images; else urgent/routine at `thresholdProb`), `tta_sd`
 * the views' population standard deviation.
 * An image that cannot be scored gets an error row (`image_id,,,…,<file: reason>`); nothing is
 * dropped silently.
 *
 * Resuming: when `outPath` exists, the ids in it are skipped (error rows too, unless
 * `retryErrors`), and new rows are appended. `<out>.meta.json` records the model (SHA-256 of its
 * metadata.json) and the TTA views; a rerun with another model or other views throws
 * {@link ScoreOutputMismatchError} naming both, unless `overwrite`.
 *
 * Crash safety (kill -9, at any moment): each batch's rows are complete lines written with one
 * write() to the file opened for append, then fsync'd before the next batch; a run killed
 * mid-write can leave at most one partial last line, and the next run truncates the file to its
 * last '\n' before reading it, so no row is ever truncated; a row is either wholly in the file
 * (its id is then skipped) or not at all (it is scored again), so none is duplicated. The header
 * is written once, with the file; the meta file is written (to a temporary name, then renamed)
 * before the CSV exists. Removing error rows for `retryErrors` rewrites the file the same way
 * (temporary file, fsync, rename).
 *
 * @example await scoreImagesToCsv({ modelDir: "models/default", input: "data/synthetic", outPath: "preds.csv", tta: true })
 */
export async function scoreImagesToCsv(options: ScoreImagesOptions): Promise<ScoreSummary> {
  const startedMs = performance.now();
  const batchSize = options.batchSize ?? 32;
  // Checked first: a batch of 0 never advanced the loop below, NaN ended it before any image.
  if (!Number.isInteger(batchSize) || batchSize < 1) {
    throw new ScoreInputError(
      `batchSize: received ${batchSize}, expected a whole number ≥ 1 (images per forward pass)`,
    );
  }
  const ttaViews =
    options.tta === undefined || options.tta === false
      ? 0
      : checkTtaOptions({ views: options.tta === true ? undefined : options.tta }).views;
  const metadata = readTriageMetadata(options.modelDir);
  const listing = listImagesToScore(options.input);
  const problems = [...listing.problems];
  const meta: ScoreOutputMeta = {
    format: "melanoma-lab-scores/1",
    model: {
      dir: options.modelDir,
      backboneName: metadata.backboneName,
      createdAt: metadata.createdAt,
      metadataSha256: createHash("sha256")
        .update(fs.readFileSync(path.join(options.modelDir, METADATA_JSON_FILE)))
        .digest("hex"),
    },
    ttaViews,
    columns: scoreCsvColumns(ttaViews),
  };
  const output = openScoresCsv(options.outPath, meta, {
    overwrite: options.overwrite === true,
    retryErrors: options.retryErrors === true,
  });
  const unscorable = listing.unscorable.filter((u) => !output.doneIds.has(u.imageId));
  const images = listing.images.filter((i) => !output.doneIds.has(i.imageId));
  const alreadyScoredCount = listing.images.length + listing.unscorable.length - images.length - unscorable.length;
  const total = images.length + unscorable.length;
  options.onStart?.({
    toScore: total,
    alreadyScored: alreadyScoredCount,
    retried: output.retriedCount,
    resumed: output.resumed,
  });
  let scoredCount = 0;
  let errorCount = 0;
  const levelCounts: Record<string, number> = {};
  const errorLine = (imageId: string, reason: string): string => {
    errorCount++;
    const empties = meta.columns.length - 2;
    return [
      csvField(imageId),
      ...Array<string>(empties).fill(""),
      csvField(reason.replace(/\s*[\r\n]+\s*/g, " ")),
    ].join(",");
  };
  let runtime: InferenceRuntimeSelection | undefined;
  try {
    if (unscorable.length > 0) {
      output.appendLines(
        unscorable.map((u) => errorLine(u.imageId, `${u.problem.file} row ${u.problem.row}: ${u.problem.reason}`)),
      );
      for (const u of unscorable) problems.push(u.problem);
    }
    options.onProgress?.(unscorable.length, total);
    // model.onnx (exportTriageModelOnnx) runs in ONNX Runtime when it is installed, else tfjs runs
    // model.json (loaded only then); MELANOMA_LAB_RUNTIME or `runtime` forces either.
    const scorer = await openTriageScorer(options.modelDir, { runtime: options.runtime, batchSize });
    runtime = scorer.runtime;
    try {
      for (let start = 0; start < images.length; start += batchSize) {
        const batch = images.slice(start, start + batchSize);
        const paths = batch.map((b) => b.imagePath);
        const predictions: (ImagePrediction | TtaImagePrediction)[] =
          ttaViews > 0 ? await scorer.predictTta(paths, { views: ttaViews }) : await scorer.predict(paths);
        const lines = predictions.map((p, i) => {
          const imageId = batch[i].imageId;
          if ("problem" in p) {
            problems.push(p.problem);
            const { file, reason } = p.problem;
            return errorLine(imageId, reason.includes(file) ? reason : `${file}: ${reason}`);
          }
          scoredCount++;
          const viewProbabilities = (p as { viewProbabilities?: number[] }).viewProbabilities;
          // The same decision as the service and the app: the model's policy when it has one.
          const decision = decideTriageForModel(metadata, { probability: p.probability, viewProbabilities });
          levelCounts[decision.level] = (levelCounts[decision.level] ?? 0) + 1;
          const fields = [csvField(imageId), decision.probability.toFixed(6), decision.level];
          if (ttaViews > 0) fields.push(populationSd(viewProbabilities!).toFixed(6));
          fields.push("");
          return fields.join(",");
        });
        output.appendLines(lines);
        options.onProgress?.(unscorable.length + Math.min(start + batchSize, images.length), total);
      }
    } finally {
      await scorer.release();
    }
  } finally {
    output.close();
  }
  const wallSeconds = (performance.now() - startedMs) / 1000;
  return {
    outPath: options.outPath,
    scoredCount,
    alreadyScoredCount,
    errorCount,
    retriedCount: output.retriedCount,
    levelCounts,
    problems,
    thresholdProb: metadata.thresholdProb,
    ttaViews,
    wallSeconds,
    imagesPerSecond: wallSeconds > 0 ? (scoredCount + errorCount) / wallSeconds : 0,
    runtime: runtime!,
  };
}

function populationSd(values: readonly number[]): number {
  const mean = values.reduce((a, b) => a + b, 0) / values.length;
  return Math.sqrt(values.reduce((a, v) => a + (v - mean) ** 2, 0) / values.length);
}

function csvField(value: string): string {
  return /[",\n\r]/.test(value) ? `"${value.replace(/"/g, '""')}"` : value;
}

/** Path of the meta file kept beside a scores CSV. */
export function scoreMetaPath(outPath: string): string {
  return `${outPath}.meta.json`;
}

/** Writes `text` to `file` through a temporary file in the same folder, fsync'd, then renamed over it. */
function writeFileAtomically(file: string, text: string): void {
  const tmp = `${file}.tmp-${process.pid}`;
  const fd = fs.openSync(tmp, "w");
  try {
    writeAll(fd, Buffer.from(text, "utf8"));
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, file);
}

function writeAll(fd: number, bytes: Buffer): void {
  let offset = 0;
  // One write() for the whole buffer on a regular file; the loop only covers a short write.
  while (offset < bytes.length) offset += fs.writeSync(fd, bytes, offset, bytes.length - offset);
}

/**
 * Opens (or starts) a scores CSV for appending, as {@link scoreImagesToCsv} describes: checks the
 * meta file, repairs a partial last line, reads the ids already done and (with `retryErrors`)
 * removes the error rows.
 */
function openScoresCsv(
  outPath: string,
  meta: ScoreOutputMeta,
  options: { overwrite: boolean; retryErrors: boolean },
): {
  doneIds: Set<string>;
  retriedCount: number;
  resumed: boolean;
  appendLines: (lines: string[]) => void;
  close: () => void;
} {
  const metaPath = scoreMetaPath(outPath);
  const header = meta.columns.join(",") + "\n";
  fs.mkdirSync(path.dirname(path.resolve(outPath)), { recursive: true });
  if (options.overwrite) fs.rmSync(outPath, { force: true });
  const resumed = fs.existsSync(outPath);
  const doneIds = new Set<string>();
  let retriedCount = 0;
  if (!resumed) {
    // The meta file first: a CSV never exists without the record of what wrote it.
    writeFileAtomically(metaPath, JSON.stringify(meta, null, 2) + "\n");
    writeFileAtomically(outPath, header);
  } else {
    checkScoreOutputMeta(outPath, metaPath, meta);
    let text = fs.readFileSync(outPath, "utf8");
    const lastNewline = text.lastIndexOf("\n");
    if (lastNewline + 1 < text.length) {
      // A run killed mid-write left a partial last line: drop it (its image is scored again).
      fs.truncateSync(outPath, Buffer.byteLength(text.slice(0, lastNewline + 1), "utf8"));
      text = text.slice(0, lastNewline + 1);
    }
    if (text === "") {
      writeFileAtomically(outPath, header);
    } else {
      if (!text.startsWith(header)) {
        throw new ScoreOutputMismatchError(
          `${outPath}: header ${JSON.stringify(text.slice(0, text.indexOf("\n")))} differs from ${JSON.stringify(header.trimEnd())} (the columns of this run); rerun with --overwrite to replace the file, or choose another --out`,
        );
      }
      const keep: string[] = [];
      // Every row is one line (the writer puts no newline inside a field), so lines are rows.
      for (const line of text.slice(header.length).split("\n")) {
        if (line === "") continue;
        const fields = Papa.parse<string[]>(line, { header: false }).data[0] ?? [];
        const isError = (fields[meta.columns.length - 1] ?? "") !== "";
        if (options.retryErrors && isError) {
          retriedCount++;
          continue;
        }
        doneIds.add(fields[0] ?? "");
        keep.push(line);
      }
      if (retriedCount > 0) writeFileAtomically(outPath, header + keep.map((l) => l + "\n").join(""));
    }
  }
  const fd = fs.openSync(outPath, "a");
  return {
    doneIds,
    retriedCount,
    resumed,
    appendLines: (lines) => {
      if (lines.length === 0) return;
      writeAll(fd, Buffer.from(lines.map((l) => l + "\n").join(""), "utf8"));
      fs.fsyncSync(fd);
    },
    close: () => fs.closeSync(fd),
  };
}

/** Throws {@link ScoreOutputMismatchError} unless `outPath`'s meta file records this run's model and options. */
function checkScoreOutputMeta(outPath: string, metaPath: string, meta: ScoreOutputMeta): void {
  const again = "rerun with --overwrite to replace it, or choose another --out";
  if (!fs.existsSync(metaPath)) {
    throw new ScoreOutputMismatchError(
      `${outPath} exists without ${path.basename(metaPath)} (written by another program or an older npm run score), so its model is unknown; this run scores with ${describeScoreModel(meta)}; ${again}`,
    );
  }
  let recorded: ScoreOutputMeta;
  try {
    recorded = JSON.parse(fs.readFileSync(metaPath, "utf8")) as ScoreOutputMeta;
  } catch (err) {
    throw new ScoreOutputMismatchError(
      `${metaPath} is not valid JSON (${err instanceof Error ? err.message : String(err)}); expected the record of the run that wrote ${outPath}; ${again}`,
    );
  }
  if (recorded.model?.metadataSha256 !== meta.model.metadataSha256) {
    throw new ScoreOutputMismatchError(
      `${outPath} was written by ${describeScoreModel(recorded)}, but this run scores with ${describeScoreModel(meta)}; ${again}`,
    );
  }
  if (recorded.ttaViews !== meta.ttaViews) {
    throw new ScoreOutputMismatchError(
      `${outPath} was written with ${describeTta(recorded.ttaViews)}, but this run uses ${describeTta(meta.ttaViews)}; ${again}`,
    );
  }
}

function describeScoreModel(meta: ScoreOutputMeta): string {
  const m: Partial<ScoreOutputMeta["model"]> = meta.model ?? {};
  return `model ${m.dir} (${m.backboneName}, exported ${m.createdAt}, metadata.json sha256 ${String(m.metadataSha256).slice(0, 12)})`;
}

function describeTta(views: number): string {
  return views > 0 ? `--tta (${views} views)` : "no --tta";
}

/**
 * Lines that summarise a scoring run for the terminal: the runtime, then counts and images/s.
 *
 * @example console.log(describeScoreSummary(summary).join("\n"))
 */
export function describeScoreSummary(summary: ScoreSummary): string[] {
  const levels = Object.entries(summary.levelCounts)
    .map(([level, n]) => `${n} ${level}`)
    .join(", ");
  const lines = [
    describeInferenceRuntime(summary.runtime),
    `scored ${summary.scoredCount} images${summary.ttaViews > 0 ? ` (TTA, mean of ${summary.ttaViews} views)` : ""}, ` +
      `skipped ${summary.alreadyScoredCount} already scored, ${summary.errorCount} error rows → ${summary.outPath}` +
      ` in ${summary.wallSeconds.toFixed(1)} s wall (${summary.imagesPerSecond.toFixed(1)} images/s)` +
      (levels ? `; ${levels} at threshold ${summary.thresholdProb.toFixed(4)}` : ""),
  ];
  if (summary.retriedCount > 0) lines.push(`retried ${summary.retriedCount} earlier error rows`);
  if (summary.problems.length > 0)
    lines.push(`${summary.problems.length} problems:`, ...summarizeProblems(summary.problems));
  return lines;
}
