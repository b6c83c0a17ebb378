import fs from "node:fs";
import path from "node:path";
import { generateSyntheticDataset, isSyntheticDatasetCurrent } from "../data/synthetic.js";
import { loadDataset, summarizeProblems } from "../data/loadDataset.js";
import type { LoadedDataset, DatasetLayout } from "../data/loadDataset.js";
import type { LesionRecord, InputProblem } from "../data/types.js";
import { buildHistogramsOverStepsFigure, buildTrainingCurvesFigure } from "../evaluate/charts.js";
import type { ReportSection } from "../evaluate/report.js";
import { METADATA_JSON_FILE } from "../export/triageModel.js";
import type { EventWriterOptions } from "../logging/eventWriter.js";
import { readLogDir } from "../logging/readLogDir.js";
import { formatJsonAsMarkdown, formatModelCardMarkdown, writeTextSummaries } from "../logging/runSummaries.js";
import { createTensorBoardCallback, type TensorBoardCallback } from "../logging/tensorBoardCallback.js";
import { createColourConstancyTransform, type PixelTransform } from "../data/augment.js";
import { alignRecordsByImageId } from "../evaluate/gallery.js";
import { findMalignantDiagnoses } from "../experiments/experimentData.js";
import type { TrainHeadOptions } from "../train/trainHead.js";
import { MelanomaLabError } from "../util/errors.js";
import { createProgressBar } from "../util/progress.js";
import { ConfigError, loadRunArtifact } from "./runConfig.js";
import type { RunConfig } from "./runConfig.js";

/** Thrown when a saved feature table does not match its metadata (truncated or edited file). */
export class FeatureArtifactError extends MelanomaLabError {}

/**
 * Loads the run's dataset; for the synthetic default, generates it first when absent or written by
 * an older generator without the source column (seeded by
 * `config.seed`, `config.syntheticImageCount` images). Bad rows and images are listed in
 * `problems` and the rest loads.
 *
 * @example const dataset = await prepareDataset(resolveRunConfig()); dataset.records.length
 */
export async function prepareDataset(
  config: RunConfig,
): Promise<LoadedDataset & { layout: DatasetLayout; generated: boolean }> {
  let generated = false;
  if (config.useSyntheticData && !isSyntheticDatasetCurrent(config.dataDir)) {
    await generateSyntheticDataset({
      outDir: config.dataDir,
      imageCount: config.syntheticImageCount,
      seed: config.seed,
    });
    generated = true;
  }
  if (!fs.existsSync(config.dataDir)) {
    throw new ConfigError(
      `data folder ${config.dataDir} does not exist (expected labels.csv + images/, or train/benign + train/malignant)`,
    );
  }
  return { ...loadDataset(config.dataDir), generated };
}

/**
 * A few lines that describe a loaded dataset: counts per label and the problems found.
 *
 * @example console.log(describeLoadedDataset(dataset))
 */
export function describeLoadedDataset(dataset: {
  records: readonly LesionRecord[];
  problems: readonly InputProblem[];
}): string {
  const malignant = dataset.records.filter((r) => r.label === "malignant").length;
  const lines = [
    `${dataset.records.length} images: ${dataset.records.length - malignant} benign, ${malignant} malignant` +
      ` (${((100 * malignant) / Math.max(1, dataset.records.length)).toFixed(1)}% malignant)`,
  ];
  if (dataset.problems.length > 0)
    lines.push(`${dataset.problems.length} input problems (skipped):`, ...summarizeProblems(dataset.problems));
  else lines.push("no input problems");
  return lines.join("\n");
}

/** Features of one split, as saved between notebooks. */
export interface FeatureTable {
  imageIds: string[];
  /** 0 = benign, 1 = malignant, one per row. */
  labels: number[];
  /** Row-major [rows, featureDim]. */
  features: Float32Array;
  featureDim: number;
}

/**
 * Saves a feature table as `<runDir>/<name>.features.bin` (float32 little-endian) +
 * `<name>.features.json` (ids, labels, featureDim). Written to temp files then renamed.
 *
 * @example saveFeatureTable(config, "train", { imageIds, labels, features, featureDim: 1280 });
 */
export function saveFeatureTable(config: RunConfig, name: string, table: FeatureTable): void {
  const rows = table.imageIds.length;
  if (table.labels.length !== rows || table.features.length !== rows * table.featureDim) {
    throw new FeatureArtifactError(
      `feature table ${name}: ${rows} ids, ${table.labels.length} labels and ${table.features.length} values do not fit featureDim ${table.featureDim}`,
    );
  }
  fs.mkdirSync(config.paths.runDir, { recursive: true });
  const bin = path.join(config.paths.runDir, `${name}.features.bin`);
  const meta = path.join(config.paths.runDir, `${name}.features.json`);
  const bytes = Buffer.from(table.features.buffer, table.features.byteOffset, table.features.byteLength);
  fs.writeFileSync(`${bin}.tmp`, bytes);
  fs.writeFileSync(
    `${meta}.tmp`,
    JSON.stringify({ imageIds: table.imageIds, labels: table.labels, featureDim: table.featureDim }),
  );
  fs.renameSync(`${bin}.tmp`, bin);
  fs.renameSync(`${meta}.tmp`, meta);
}

/**
 * Loads a feature table saved by {@link saveFeatureTable}; the error names the notebook to run.
 *
 * @example const train = loadFeatureTable(config, "train");
 */
export function loadFeatureTable(config: RunConfig, name: string): FeatureTable {
  const bin = path.join(config.paths.runDir, `${name}.features.bin`);
  const meta = path.join(config.paths.runDir, `${name}.features.json`);
  if (!fs.existsSync(bin) || !fs.existsSync(meta)) {
    throw new ConfigError(
      `${bin} is missing: run notebook 02-transfer-learning first for run ${JSON.stringify(config.runName)}`,
    );
  }
  const info = JSON.parse(fs.readFileSync(meta, "utf8")) as {
    imageIds: string[];
    labels: number[];
    featureDim: number;
  };
  const buf = fs.readFileSync(bin);
  const expectedBytes = info.imageIds.length * info.featureDim * 4;
  if (buf.length !== expectedBytes) {
    throw new FeatureArtifactError(
      `${bin}: ${buf.length} bytes, expected ${expectedBytes} (${info.imageIds.length} rows × ${info.featureDim} float32)`,
    );
  }
  const features = new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.length));
  return { imageIds: info.imageIds, labels: info.labels, features, featureDim: info.featureDim };
}

/**
 * {@link createProgressBar} in plain-line mode through console.log (one line at every
 * `stepPercent`, at most 30 s apart, and at the end), fit for notebooks, where a redrawn bar
 * would flood the output and the kernel captures console output.
 *
 * @example extractFeatures(backbone, records, { onProgress: createProgressPrinter("train features") })
 */
export function createProgressPrinter(label: string, stepPercent = 25): (done: number, total: number) => void {
  return createProgressBar(label, {
    stepPercent,
    stream: { isTTY: false, write: (text) => console.log(text.replace(/\n$/, "")) },
  });
}

/**
 * Turns the rows of a feature matrix back into a {@link FeatureTable} with the labels of the
 * records they came from (rows whose image failed are already absent from the matrix).
 *
 * @example featureTableFromMatrix(await extractFeatures(backbone, split.train), split.train)
 */
export function featureTableFromMatrix(
  matrix: { features: Float32Array; featureDim: number; imageIds: string[]; sourceIndices: number[] },
  records: readonly LesionRecord[],
): FeatureTable {
  const labels = matrix.sourceIndices.map((i) => {
    const record = records[i];
    if (!record)
      throw new FeatureArtifactError(`feature row source index ${i} is outside the ${records.length} records given`);
    return record.label === "malignant" ? 1 : 0;
  });
  return { imageIds: matrix.imageIds.slice(), labels, features: matrix.features, featureDim: matrix.featureDim };
}

/**
 * Scalar series of every run in a TensorBoard logdir read by `readLogDir`, in the
 * `{[run]: {[tag]: {step, value}[]}}` shape the chart builders take.
 *
 * @example buildTrainingCurvesFigure(scalarSeriesFromLogDir(readLogDir("logs/default")))
 */
export function scalarSeriesFromLogDir(logs: {
  runs: { name: string; scalars: Record<string, { points: { step: number; value: number }[] }> }[];
}): Record<string, Record<string, { step: number; value: number }[]>> {
  const out: Record<string, Record<string, { step: number; value: number }[]>> = {};
  for (const run of logs.runs) {
    out[run.name] = {};
    for (const [tag, series] of Object.entries(run.scalars)) {
      out[run.name][tag] = series.points.map((p) => ({ step: p.step, value: p.value }));
    }
  }
  return out;
}

/**
 * One line for a metric with its bootstrap interval: "ROC AUC 0.842 (95% CI 0.801–0.880)".
 *
 * @example formatMetricLine("ROC AUC", bootstrapMetric(labels, probs, computeRocAuc, { seed: 1 }))
 */
export function formatMetricLine(
  name: string,
  interval: { estimate: number; lower: number; upper: number; confidenceLevel: number },
): string {
  const level = Math.round(interval.confidenceLevel * 100);
  return `${name} ${interval.estimate.toFixed(3)} (${level}% CI ${interval.lower.toFixed(3)}–${interval.upper.toFixed(3)})`;
}

/**
 * Report sections for a run's TensorBoard logs, read back with the event-file reader: the
 * training curves (loss and AUC, train and validation overlaid) and, when the run logged them,
 * the weight histograms of each kernel over epochs. Empty when the folder has no scalars.
 *
 * @example writeHtmlReport("report.html", { title: "run", sections: [...buildTrainingLogSections("logs/default")] })
 */
export function buildTrainingLogSections(logDir: string): ReportSection[] {
  const logs = readLogDir(logDir);
  const series = scalarSeriesFromLogDir(logs);
  const hasScalars = Object.values(series).some((tags) => Object.keys(tags).length > 0);
  if (!hasScalars) return [];
  const sections: ReportSection[] = [
    {
      heading: "Training curves (read back from the TensorBoard logs)",
      figures: [buildTrainingCurvesFigure(series, { tags: ["epoch_loss", "epoch_auc"] })],
    },
  ];
  const histogramFigures = logs.runs.flatMap((run) =>
    Object.entries(run.histograms)
      .filter(([tag, hist]) => tag.includes("kernel") && hist.points.length > 0)
      .map(([tag, hist]) =>
        buildHistogramsOverStepsFigure(hist.points, { title: `${run.name}: ${tag} over epochs`, valueTitle: "weight" }),
      ),
  );
  if (histogramFigures.length > 0)
    sections.push({ heading: "Weight histograms over epochs", figures: histogramFigures });
  return sections;
}

/**
 * The run configuration as markdown for TensorBoard's text dashboard: the whole config as a
 * JSON block, paths relative to the project root.
 *
 * @example formatRunConfigMarkdown(config) // "## Run configuration `default`\n\n```json\n{ … }\n```"
 */
function formatRunConfigMarkdown(config: RunConfig): string {
  const rel = (p: string) => path.relative(config.paths.root, p) || ".";
  const paths = Object.fromEntries(
    Object.entries(config.paths).map(([name, p]) => [name, name === "root" ? p : rel(p)]),
  );
  return formatJsonAsMarkdown(
    { ...config, dataDir: rel(config.dataDir), paths },
    `Run configuration \`${config.runName}\``,
  );
}

/** Options of {@link createTrainingTensorBoardCallback}. */
export interface TrainingTensorBoardOptions {
  /** Training records whose images are shown per label; default the split saved by notebook 01. */
  trainRecords?: readonly LesionRecord[];
  /** Sample images per label. Default 8. */
  samplesPerLabel?: number;
  /** PR-curve thresholds. Default 201 (TensorBoard's). */
  prCurveThresholds?: number;
  /** Passed to the event writers (tests pin the clock). */
  writerOptions?: EventWriterOptions;
}

/**
 * The TensorBoard callback of a run's head training (notebook 03), filling every dashboard in
 * `config.paths.logDir`: epoch scalars and weight histograms every epoch, the head's graph, the
 * hparams session (backbone, learning rate, epochs, seed), the run configuration as text
 * (`config`), one labelled grid of training images per label (`train/samples/<label>`), and the
 * validation PR curve of each epoch (`pr_curve/malignant` in the validation run). The model card
 * is added at export by {@link writeModelCardToTensorBoard}.
 *
 * @example
 * const tensorboard = createTrainingTensorBoardCallback(config, validation);
 * await trainHead(train.features, train.labels, { seed: 42, callbacks: [tensorboard], validation });
 */
export function createTrainingTensorBoardCallback(
  config: RunConfig,
  validation: FeatureTable,
  options: TrainingTensorBoardOptions = {},
): TensorBoardCallback {
  const trainRecords =
    options.trainRecords ?? loadRunArtifact<{ train: LesionRecord[] }>(config, "split", "01-data").train;
  return createTensorBoardCallback(config.paths.logDir, {
    histogramFreq: 1,
    hparams: {
      backbone: config.backboneName,
      learning_rate: config.learningRate,
      epochs: config.epochs,
      seed: config.seed,
    },
    texts: { config: formatRunConfigMarkdown(config) },
    sampleImages: { records: trainRecords, perLabel: options.samplesPerLabel ?? 8 },
    validationPrCurve: {
      features: validation.features,
      labels: validation.labels,
      numThresholds: options.prCurveThresholds,
    },
    writerOptions: options.writerOptions,
  });
}

/**
 * Writes the exported model's `metadata.json` (in `config.paths.modelDir`) as a model card to the
 * run's TensorBoard logs: text tag `model_card` in `<logDir>/train`, step 0, in a new event file
 * beside the training ones. Call it after exporting (notebook 05). Returns the event file path.
 *
 * @example await exportTriageModel(config.paths.modelDir, model, metadata); writeModelCardToTensorBoard(config);
 */
export function writeModelCardToTensorBoard(config: RunConfig, options: EventWriterOptions = {}): string {
  const metadataPath = path.join(config.paths.modelDir, METADATA_JSON_FILE);
  if (!fs.existsSync(metadataPath)) {
    throw new ConfigError(
      `${metadataPath} is missing: export the model (notebook 05-export) before writing its model card`,
    );
  }
  const metadata = JSON.parse(fs.readFileSync(metadataPath, "utf8")) as Record<string, unknown>;
  const card = formatModelCardMarkdown(
    metadata,
    path.relative(config.paths.root, config.paths.modelDir) || config.paths.modelDir,
  );
  return writeTextSummaries(path.join(config.paths.logDir, "train"), { model_card: card }, 0, options);
}

/**
 * The `extractFeatures` pixel transform of a run's colour constancy (undefined for "none"), so
 * notebooks extract features the way the exported model will score images.
 *
 * @example extractFeatures(backbone, split.train, { cacheDir, pixelTransform: runPixelTransform(config) })
 */
export function runPixelTransform(config: Pick<RunConfig, "colourConstancy">): PixelTransform | undefined {
  return createColourConstancyTransform(config.colourConstancy);
}

/**
 * trainHead's head settings for a run: hidden units, dropout and L2 when the config sets them,
 * and for head target "diagnosis" the diagnosis of each feature row (`records` aligned to
 * `imageIds`) with the diagnoses labelled malignant in those records. Throws ExperimentConfigError
 * when a record has no diagnosis (e.g. the synthetic or folder-per-class data) or a diagnosis
 * carries both labels.
 *
 * @example trainHead(train.features, train.labels, { ...resolveRunHeadOptions(config, split.train, train.imageIds), seed: 42 })
 */
export function resolveRunHeadOptions(
  config: Pick<RunConfig, "headTarget" | "headHiddenUnits" | "headDropoutRate" | "headL2" | "dataDir">,
  records: readonly LesionRecord[],
  imageIds: readonly string[],
): Pick<TrainHeadOptions, "hiddenUnits" | "dropoutRate" | "l2" | "diagnoses" | "malignantDiagnoses"> {
  const options: Pick<TrainHeadOptions, "hiddenUnits" | "dropoutRate" | "l2" | "diagnoses" | "malignantDiagnoses"> = {};
  if (config.headHiddenUnits !== undefined) options.hiddenUnits = config.headHiddenUnits;
  if (config.headDropoutRate !== undefined) options.dropoutRate = config.headDropoutRate;
  if (config.headL2 !== undefined) options.l2 = config.headL2;
  if (config.headTarget === "diagnosis") {
    const rows = alignRecordsByImageId(records, imageIds);
    options.malignantDiagnoses = findMalignantDiagnoses(rows, config.dataDir);
    options.diagnoses = rows.map((r) => r.diagnosis);
  }
  return options;
}
