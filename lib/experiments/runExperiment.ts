import fs from "node:fs";
import path from "node:path";
import * as tf from "@tensorflow/tfjs";
import { selectBackend, describeBackend } from "../backend/selectBackend.js";
import { loadDataset } from "../data/loadDataset.js";
import { createGroupedKFolds } from "../data/split.js";
import type { LesionRecord } from "../data/types.js";
import { computeRocAuc } from "../evaluate/metrics.js";
import { buildTriageModel, exportTriageModel, makeTriageMetadata, type TriageMetadataFields, type TriageThresholdProvenance } from "../export/triageModel.js";
import { createEventWriter } from "../logging/eventWriter.js";
import { listEventFiles } from "../logging/readLogDir.js";
import { createTensorBoardCallback } from "../logging/tensorBoardCallback.js";
import { loadBackbone, parseBackboneName, type BackboneName } from "../models/backbones.js";
import { disposeBackboneEnsemble, extractEnsembleFeatures, formatBackboneEnsemble, isBackboneEnsembleSpec, loadBackboneEnsemble, parseBackboneEnsemble } from "../models/ensemble.js";
import { buildEnsembleTriageModel, makeEnsembleTriageMetadata } from "../export/ensembleTriageModel.js";
import { extractFeatures } from "../models/features.js";
import { disposeBackbone, releaseInferencePlan } from "../models/inferencePlan.js";
import type { Backbone } from "../models/types.js";
import { buildFineTunedTriageModel, fineTuneTopBlocks, type FineTuneOptions } from "../train/fineTune.js";
import { formatEpochMetrics, trainHead, type EpochMetrics } from "../train/trainHead.js";
import { normalizeDiagnosisCode } from "../train/diagnosisHead.js";
import { chooseThresholdForSensitivity } from "../triage/triage.js";
import { UnknownNameError } from "../util/errors.js";
import { findProjectRoot, resolveFeatureCacheDir } from "../util/paths.js";
import {
  crossValidateHead,
  DEFAULT_HEAD_CONFIG,
  formatFoldSpread,
  HEAD_TARGETS,
  toFoldRows,
  type FoldRows,
  type FoldSpread,
  type HeadConfig,
  type HeadTarget,
} from "./crossValidate.js";
import { createProgressBar } from "./progress.js";
import { createLeaveOneSourceOutFolds } from "./sourceFolds.js";
import { backfillTensorBoardEpochs, ExperimentCheckpoints, FINE_TUNE_STAGE } from "./experimentResume.js";
import { computeWithinSourceRocAuc } from "../evaluate/sourceConfounding.js";
import {
  assertRunNameHoldsSameConfig,
  computeDataFingerprint,
  computeRunConfigHash,
  EXPERIMENT_SPLITS,
  ExperimentConfigError,
  formatExperimentRunName,
  resolveRunIdentity,
  type ExperimentSplit,
} from "./runIdentity.js";
import { auditOutOfFoldThreshold } from "./thresholdAudit.js";

export { ExperimentConfigError, EXPERIMENT_SPLITS, computeDataFingerprint, formatExperimentRunName } from "./runIdentity.js";
export type { ExperimentSplit } from "./runIdentity.js";

/** Value of `schema` in every runs/<run>.json written by {@link runExperiment}. */
export const EXPERIMENT_RUN_SCHEMA = "melanoma-lab/experiment-run@1";

/** Options of {@link runExperiment}. */
export interface ExperimentOptions {
  /** Dataset folder (labels.csv + images/, or folder per class). */
  dataDir: string;
  /** "mobilenet_v2", "inception_v3" or "mobilenet_v1". */
  backboneName: string;
  /** mobilenet_v1 width multiplier (0.25, 0.5, 0.75, 1.0). */
  alpha?: number;
  /** Epochs of the head per fold and for the final model. Default 30. */
  epochs?: number;
  /** Epochs of fine-tuning the backbone's top blocks after the head (fineTuneTopBlocks). Default 0. */
  fineTuneEpochs?: number;
  /** Backbone blocks unfrozen when fine-tuning. Default 2. */
  unfreezeBlocks?: number;
  seed?: number;
  /** K of the lesion-grouped K-fold (ignored for split "source"). Default 5. */
  folds?: number;
  /** Default "lesion". */
  split?: ExperimentSplit;
  /** Head hyperparameters (epochs comes from `epochs`, the target from `target`). */
  head?: Partial<Omit<HeadConfig, "epochs" | "target" | "malignantDiagnoses">>;
  /**
   * What every head (folds and final model) learns: "malignant" (binary) or "diagnosis" (softmax
   * over the records' diagnoses, P(malignant) = Σ of the diagnoses labelled malignant in the
   * data; the exported model still outputs P(malignant)). "diagnosis" needs a diagnosis on every
   * record, each diagnosis with one label. Default "malignant".
   */
  target?: HeadTarget;
  /** Sensitivity the exported threshold reaches on the out-of-fold predictions. Default 0.9. */
  targetSensitivity?: number;
  /**
   * Name under runs/, logs/ and models/; default derived from the options (stable across reruns,
   * different for any other configuration: see formatExperimentRunName). A name whose files
   * belong to another configuration is refused (ExperimentConfigError), never overwritten.
   */
  runName?: string;
  /** Folder holding runs/, logs/, models/ and out/checkpoints/. Default the project root. */
  outputRoot?: string;
  /**
   * Continue an interrupted run of the same name from `out/checkpoints/<run>/`: finished folds
   * are reused, the interrupted fold (or final model) continues from its last finished epoch,
   * logs/<run> is kept and appended to. Options and data must match the interrupted run's
   * (else ExperimentResumeError naming what differs). Without checkpoints, starts afresh.
   * Default false: a fresh run deletes old logs/<run>, models/<run> and checkpoints.
   */
  resume?: boolean;
  /** Feature cache. Default MELANOMA_LAB_FEATURE_CACHE or <project root>/data/cache/features. */
  featureCacheDir?: string;
  /**
   * "bar": progress bars with ETA (one redrawn line on a terminal); "lines": one compact line per
   * epoch (notebooks); "quiet": summary lines only. Default "bar" on a TTY, else "lines".
   */
  progress?: "bar" | "lines" | "quiet";
  /** Where lines go. Default console.log. */
  log?: (line: string) => void;
}

/** One fold in runs/<run>.json. */
export interface ExperimentFoldSummary {
  name: string;
  trainImages: number;
  validationImages: number;
  validationPositives: number;
  rocAuc: number | null;
  averagePrecision: number | null;
  withinSourceRocAuc: number | null;
  epochs: number;
  finalTrainLoss: number;
  finalValidationLoss: number | null;
  trainMs: number;
}

/** Spread of a metric over folds (null where no fold had a value: JSON has no NaN). */
export interface JsonFoldSpread {
  mean: number | null;
  sd: number | null;
  min: number | null;
  max: number | null;
  n: number;
}

/** Contents of runs/<run>.json. */
export interface ExperimentRunSummary {
  schema: typeof EXPERIMENT_RUN_SCHEMA;
  runName: string;
  /** computeRunConfigHash of the configuration (runs written before it existed have none). */
  configHash?: string;
  createdAt: string;
  config: {
    dataDir: string;
    backbone: string;
    alpha: number | null;
    epochs: number;
    fineTuneEpochs: number;
    unfreezeBlocks: number;
    seed: number;
    split: ExperimentSplit;
    folds: number;
    head: Omit<HeadConfig, "epochs" | "target" | "malignantDiagnoses">;
    targetSensitivity: number;
    /** What the heads learned (runs written before this field existed: "malignant"). */
    target: HeadTarget;
    /** Target "diagnosis": the diagnoses summed into P(malignant) (those labelled malignant in the data). */
    malignantDiagnoses?: string[];
    /** Target "diagnosis": the final model's softmax classes, in column order. */
    diagnosisClasses?: string[];
  };
  backend: { name: string; description: string };
  data: {
    /** sha256 of the sorted "imageId label fileBytes" lines: same data ⇔ same fingerprint. */
    fingerprint: string;
    images: number;
    malignant: number;
    benign: number;
    /** Images per source (clinic/device); "unknown" for records without one. */
    sources: Record<string, number>;
    /** Rows/images skipped by the loader or the backbone. */
    problems: number;
  };
  metrics: {
    rocAuc: JsonFoldSpread;
    averagePrecision: JsonFoldSpread;
    withinSourceRocAuc: JsonFoldSpread;
    /** ROC AUC of all out-of-fold predictions pooled. */
    outOfFoldRocAuc: number | null;
    /** Within-source ROC AUC of the pooled out-of-fold predictions. */
    outOfFoldWithinSourceRocAuc: number | null;
    /**
     * Threshold of the exported model, chosen on the pooled out-of-fold predictions, with how it
     * was chosen and what it gives per fold and per source (runs written before the provenance
     * existed have only thresholdProb, sensitivity, specificity and targetSensitivity).
     */
    threshold: { thresholdProb: number; sensitivity: number; specificity: number | null; targetSensitivity: number } & Partial<Omit<TriageThresholdProvenance, "sensitivity" | "specificity" | "targetSensitivity">>;
  };
  /** Warnings about the run's results (e.g. a source below the target sensitivity at the threshold); absent in older runs. */
  warnings?: string[];
  folds: ExperimentFoldSummary[];
  timings: {
    totalMs: number;
    loadDataMs: number;
    featuresMs: number;
    featureCacheHits: number;
    featuresComputed: number;
    crossValidationMs: number;
    finalModelMs: number;
    exportMs: number;
  };
  /** Relative to outputRoot. */
  artifacts: { runJson: string; logDir: string; modelDir: string };
}

/** What {@link runExperiment} returns: the summary written and absolute paths. */
export interface ExperimentResult {
  summary: ExperimentRunSummary;
  runJsonPath: string;
  logDir: string;
  modelDir: string;
}

function countBy(values: readonly string[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const v of [...values].sort()) counts[v] = (counts[v] ?? 0) + 1;
  return counts;
}

function jsonNumber(v: number): number | null {
  return Number.isFinite(v) ? v : null;
}

function jsonSpread(s: FoldSpread): JsonFoldSpread {
  return { mean: jsonNumber(s.mean), sd: jsonNumber(s.sd), min: jsonNumber(s.min), max: jsonNumber(s.max), n: s.n };
}

/**
 * The diagnoses counted as malignant for a diagnosis-target head: those whose records are
 * labelled malignant. Throws ExperimentConfigError when a record has no diagnosis (e.g. a
 * folder-per-class data set) or a diagnosis carries both labels.
 */
function findMalignantDiagnoses(records: readonly LesionRecord[], dataDir: string): string[] {
  // The rule trainHead applies to each row, checked here before any backbone work.
  const lacking = records.filter((r) => normalizeDiagnosisCode(r.diagnosis) === undefined);
  if (lacking.length > 0) {
    throw new ExperimentConfigError(
      `target "diagnosis": ${lacking.length} of ${records.length} images in ${dataDir} have no diagnosis (e.g. ${lacking[0].imageId}); ` +
        `expected a diagnosis column in labels.csv for every image (folder-per-class data sets have none: use target "malignant")`,
    );
  }
  const byDiagnosis = new Map<string, { malignant: string[]; benign: string[] }>();
  for (const r of records) {
    const dx = normalizeDiagnosisCode(r.diagnosis)!;
    if (!byDiagnosis.has(dx)) byDiagnosis.set(dx, { malignant: [], benign: [] });
    byDiagnosis.get(dx)![r.label].push(r.imageId);
  }
  for (const [dx, ids] of byDiagnosis) {
    if (ids.malignant.length > 0 && ids.benign.length > 0) {
      throw new ExperimentConfigError(
        `target "diagnosis": diagnosis ${JSON.stringify(dx)} has ${ids.malignant.length} images labelled malignant (e.g. ${ids.malignant[0]}) and ${ids.benign.length} benign (e.g. ${ids.benign[0]}); ` +
          `expected one label per diagnosis`,
      );
    }
  }
  return [...byDiagnosis].filter(([, ids]) => ids.malignant.length > 0).map(([dx]) => dx).sort();
}

/** Probability of malignant for records through an image → probability model, in batches (no cache). */
async function predictRecords(backbone: Backbone, model: tf.LayersModel, records: readonly LesionRecord[]): Promise<Float32Array> {
  // extractFeatures does the decoding, preprocessing and tidied batching; a 1-unit "feature" is the probability.
  const scorer: Backbone = { ...backbone, model, featureDim: 1 };
  let out: Awaited<ReturnType<typeof extractFeatures>>;
  try {
    out = await extractFeatures(scorer, records);
  } finally {
    // extractFeatures compiles (and keeps) an inference plan per model: this one is used once.
    releaseInferencePlan(scorer);
  }
  if (out.problems.length > 0) throw new ExperimentConfigError(`could not score ${out.problems[0].file}: ${out.problems[0].reason}`);
  return out.features;
}

/**
 * One experiment, as `npm run experiment` runs it: loads the dataset, extracts (cached) backbone
 * features, cross-validates a dense head (lesion-grouped K-fold or leave-one-source-out),
 * optionally fine-tunes the backbone's top blocks per fold, trains the final head on all data,
 * chooses the ≥ targetSensitivity threshold on the out-of-fold predictions and exports the
 * triage model. With `target: "diagnosis"` every head learns the diagnoses (softmax) and scores
 * P(malignant) as the sum of the malignant ones (see trainHead's `diagnoses`). Writes:
 * - `logs/<run>/<fold>/{train,validation}` TensorBoard scalars per fold, `logs/<run>/all/train`
 *   for the final model, and an hparams session in `logs/<run>` with the cross-validated
 *   metrics (cv/roc_auc_mean, …) so the HParams dashboard over `logs/` compares runs;
 * - `runs/<run>.json` ({@link ExperimentRunSummary});
 * - `models/<run>/` (model.json, weights.bin, metadata.json).
 * Old logs/<run> and models/<run> are replaced. Every epoch of every fold and of the final
 * model is checkpointed under `out/checkpoints/<run>/` (deleted when the run succeeds), so
 * `resume: true` continues a killed run with the same result as an uninterrupted one.
 *
 * @example
 * const { summary } = await runExperiment({ dataDir: "data/synthetic", backboneName: "mobilenet_v2", epochs: 20, folds: 5, seed: 42 });
 * summary.metrics.rocAuc // { mean: 0.86, sd: 0.02, … }
 */
export async function runExperiment(options: ExperimentOptions): Promise<ExperimentResult> {
  const startedMs = performance.now();
  const log = options.log ?? ((line: string) => console.log(line));
  const progressMode = options.progress ?? (process.stdout.isTTY ? "bar" : "lines");
  // "a+b+c": several backbones' features side by side, one head (see loadBackboneEnsemble).
  const isEnsemble = isBackboneEnsembleSpec(options.backboneName);
  const backboneName: string = isEnsemble ? formatBackboneEnsemble(parseBackboneEnsemble(options.backboneName)) : parseBackboneName(options.backboneName);
  const split = options.split ?? "lesion";
  if (!EXPERIMENT_SPLITS.includes(split)) throw new UnknownNameError("split", split, EXPERIMENT_SPLITS);
  const epochs = options.epochs ?? 30;
  const fineTuneEpochs = options.fineTuneEpochs ?? 0;
  const unfreezeBlocks = options.unfreezeBlocks ?? 2;
  const seed = options.seed ?? 42;
  const foldCount = options.folds ?? 5;
  const targetSensitivity = options.targetSensitivity ?? 0.9;
  const target = options.target ?? "malignant";
  if (!HEAD_TARGETS.includes(target)) throw new UnknownNameError("target", target, HEAD_TARGETS);
  for (const [name, value, min] of [["epochs", epochs, 1], ["fineTuneEpochs", fineTuneEpochs, 0], ["folds", foldCount, 2], ["seed", seed, 0]] as const) {
    if (!(Number.isInteger(value) && value >= min)) throw new ExperimentConfigError(`${name}: received ${value}, expected a whole number ≥ ${min}`);
  }
  if (!(targetSensitivity > 0 && targetSensitivity <= 1)) throw new ExperimentConfigError(`targetSensitivity: received ${targetSensitivity}, expected 0 < target ≤ 1`);
  const head: HeadConfig = { ...DEFAULT_HEAD_CONFIG, ...options.head, epochs, target };
  const fineTune = fineTuneEpochs > 0;
  if (isEnsemble && options.alpha !== undefined) {
    throw new ExperimentConfigError(`alpha: received ${options.alpha} with the ensemble ${backboneName}; expected it inside the spec (mobilenet_v1@${options.alpha})`);
  }
  if (isEnsemble && fineTune) {
    throw new ExperimentConfigError(`fineTuneEpochs: received ${fineTuneEpochs} with the ensemble ${backboneName}; expected 0 (fine-tuning takes a single backbone)`);
  }
  const dataDir = path.resolve(options.dataDir);
  if (!fs.existsSync(dataDir)) throw new ExperimentConfigError(`dataDir: ${dataDir} does not exist (expected labels.csv + images/, or train/benign + train/malignant)`);
  const outputRoot = path.resolve(options.outputRoot ?? findProjectRoot());
  const nameOptions = { ...options, backboneName, split, epochs, fineTuneEpochs, unfreezeBlocks, seed, folds: foldCount, target, targetSensitivity };
  const configHash = computeRunConfigHash(resolveRunIdentity(nameOptions));
  const runName = options.runName ?? formatExperimentRunName(nameOptions);
  if (!/^[A-Za-z0-9._-]+$/.test(runName)) throw new ExperimentConfigError(`runName: ${JSON.stringify(runName)} may use only letters, digits, '.', '_' and '-'`);
  const logDir = path.join(outputRoot, "logs", runName);
  const modelDir = path.join(outputRoot, "models", runName);
  const runJsonPath = path.join(outputRoot, "runs", `${runName}.json`);
  const checkpoints = new ExperimentCheckpoints(path.join(outputRoot, "out", "checkpoints", runName));
  const featureCacheDir = options.featureCacheDir ?? resolveFeatureCacheDir();
  // Before anything is deleted: this name's files must be this configuration's (or absent).
  assertRunNameHoldsSameConfig({ runJsonPath, modelDir, runName, configHash });

  const backend = await selectBackend();
  log(describeBackend(backend));
  const loadStarted = performance.now();
  const dataset = loadDataset(dataDir);
  const fingerprint = computeDataFingerprint(dataset.records);
  const loadDataMs = performance.now() - loadStarted;
  log(`run ${runName}: ${dataset.records.length} images from ${dataDir} (fingerprint ${fingerprint.slice(0, 12)}), ${dataset.problems.length} input problems`);
  // Checked before the backbone loads: a data set without diagnoses fails at once.
  const malignantDiagnoses = target === "diagnosis" ? findMalignantDiagnoses(dataset.records, dataDir) : undefined;
  if (malignantDiagnoses) {
    head.malignantDiagnoses = malignantDiagnoses;
    log(`target diagnosis: softmax over the diagnoses, P(malignant) = sum of ${malignantDiagnoses.join(", ")}`);
  }

  const featuresStarted = performance.now();
  const ensemble = isEnsemble ? await loadBackboneEnsemble(backboneName) : undefined;
  const single = ensemble ? undefined : await loadBackbone(backboneName as BackboneName, { alpha: options.alpha });
  // Fine-tuning (refused for ensembles above) and the single-input export use the one backbone.
  const singleBackbone = (): Backbone => {
    if (!single) throw new ExperimentConfigError(`${backboneName}: an ensemble has no single backbone`);
    return single;
  };
  const disposeBackbones = () => (ensemble ? disposeBackboneEnsemble(ensemble) : disposeBackbone(single!));
  const featureOptions = {
    cacheDir: featureCacheDir,
    onProgress: progressMode === "quiet" ? undefined : createProgressBar(`${backboneName} features`, { stepPercent: progressMode === "lines" ? 25 : 10 }),
  };
  const matrix = ensemble ? await extractEnsembleFeatures(ensemble, dataset.records, featureOptions) : await extractFeatures(single!, dataset.records, featureOptions);
  const featuresMs = performance.now() - featuresStarted;
  const records = matrix.sourceIndices.map((i) => dataset.records[i]);
  const labels = records.map((r) => (r.label === "malignant" ? 1 : 0));
  const sources = records.map((r) => r.source);
  const diagnoses = records.map((r) => r.diagnosis);
  log(`features: ${matrix.rows} × ${matrix.featureDim} (${matrix.cacheHits} cached, ${matrix.computed} computed) in ${(featuresMs / 1000).toFixed(1)} s`);

  const folds: FoldRows[] =
    split === "source"
      ? toFoldRows(records, createLeaveOneSourceOutFolds(records).map((f) => ({ name: `source-${f.heldOutSource}`, ...f })))
      : toFoldRows(records, createGroupedKFolds(records, { folds: foldCount, seed }).map((f) => ({ name: `fold-${f.foldIndex + 1}`, ...f })));

  // The head settings as recorded in both the resume check and runs/<run>.json.
  const headSettings = { hiddenUnits: head.hiddenUnits, dropoutRate: head.dropoutRate, l2: head.l2, batchSize: head.batchSize, learningRate: head.learningRate };
  const resumeConfig = {
    backbone: backboneName,
    alpha: options.alpha ?? null,
    epochs,
    fineTuneEpochs,
    unfreezeBlocks,
    seed,
    split,
    folds: folds.map((f) => f.name),
    head: headSettings,
    dataFingerprint: fingerprint,
    images: records.length,
    // Only non-default targets are recorded, so runs checkpointed before this option still resume.
    ...(malignantDiagnoses ? { target, malignantDiagnoses } : {}),
  };
  const resuming = options.resume === true && checkpoints.exists();
  if (resuming) {
    try {
      checkpoints.assertSameConfig(resumeConfig);
    } catch (err) {
      disposeBackbones();
      throw err;
    }
    log(`resuming ${runName} from ${checkpoints.dir}`);
  } else {
    if (options.resume) log(`nothing to resume in ${checkpoints.dir}: starting ${runName} afresh`);
    fs.rmSync(logDir, { recursive: true, force: true });
    checkpoints.start(runName, resumeConfig);
  }
  fs.rmSync(modelDir, { recursive: true, force: true });
  const hparams = {
    backbone: backboneName + (options.alpha !== undefined ? `@${options.alpha}` : ""),
    split,
    folds: folds.length,
    epochs,
    fine_tune_epochs: fineTuneEpochs,
    seed,
    hidden_units: head.hiddenUnits,
    dropout: head.dropoutRate,
    l2: head.l2,
    learning_rate: head.learningRate,
    batch_size: head.batchSize,
    target,
  };
  // A resumed run keeps the session start the interrupted one wrote (it is flushed at once).
  const hadSession = resuming && fs.existsSync(logDir) && listEventFiles(logDir).length > 0;
  const session = createEventWriter(logDir, { flushIntervalMs: 0 });
  if (!hadSession) session.addHparamsSessionStart(hparams, { groupName: runName });
  session.flush();

  const totalEpochs = (folds.length + 1) * (epochs + fineTuneEpochs);
  let epochsDone = 0;
  const epochBar = progressMode === "bar" ? createProgressBar("training", { stepPercent: 10 }) : undefined;
  const onEpoch = (where: string, m: EpochMetrics, of: number): void => {
    epochsDone++;
    if (epochBar) epochBar(epochsDone, totalEpochs);
    else if (progressMode === "lines") log(`${where} ${m.epoch}/${of}: ${formatEpochMetrics(m).replace(/^epoch \d+: /, "")}`);
  };
  const activationCacheDir = path.join(path.dirname(featureCacheDir), "activations");
  const fineTuneLearningRate = head.learningRate / 10;
  // `name` is the fold ("fold-1", …) or "all": checkpoints in out/checkpoints/<run>/<name>/fine-tune,
  // TensorBoard in logs/<run>/<name>/fine-tune/{train,validation} (steps 0 … fineTuneEpochs − 1).
  const fineTuneOptions = (foldSeed: number, name: string, where: string): FineTuneOptions => {
    const tensorBoardDir = path.join(logDir, name, FINE_TUNE_STAGE);
    // Epochs the killed process checkpointed but did not log yet (checkpoint precedes callbacks).
    if (resuming) backfillTensorBoardEpochs(tensorBoardDir, checkpoints.readCheckpointHistory(name, FINE_TUNE_STAGE), fineTuneLearningRate);
    return {
      unfreezeBlocks,
      epochs: fineTuneEpochs,
      learningRate: fineTuneLearningRate,
      batchSize: 16,
      seed: foldSeed,
      cacheDir: activationCacheDir,
      classWeights: "balanced",
      checkpointDir: checkpoints.trainingDir(name, FINE_TUNE_STAGE),
      resume: resuming,
      callbacks: [createTensorBoardCallback(tensorBoardDir, { writeGraph: false })],
      onEpochEnd: (m: EpochMetrics) => {
        checkpoints.pruneEpochs(name, m.epoch, FINE_TUNE_STAGE);
        onEpoch(`${where} fine-tune`, m, fineTuneEpochs);
      },
    };
  };
  const scoreFold = fineTune
    ? async (fold: FoldRows, foldIndex: number, trainedHead: tf.LayersModel): Promise<Float32Array> => {
        const validation = fold.validationRows.map((r) => records[r]);
        const backbone = singleBackbone();
        const tuned = await fineTuneTopBlocks(backbone, trainedHead, fold.trainRows.map((r) => records[r]), validation, fineTuneOptions(seed + foldIndex, fold.name, fold.name));
        const model = await buildFineTunedTriageModel(backbone, tuned.head);
        try {
          return await predictRecords(backbone, model, validation);
        } finally {
          model.dispose();
          tuned.head.dispose();
        }
      }
    : undefined;

  const cvStarted = performance.now();
  let backboneDisposed = false;
  let status: "success" | "failure" = "failure";
  try {
    const cv = await crossValidateHead(
      { features: matrix.features, featureDim: matrix.featureDim, labels, sources, diagnoses },
      folds,
      {
        head,
        seed,
        callbacksForFold: (fold) => {
          if (resuming) backfillTensorBoardEpochs(path.join(logDir, fold.name), checkpoints.readCheckpointHistory(fold.name), head.learningRate);
          return [createTensorBoardCallback(path.join(logDir, fold.name), { writeGraph: false })];
        },
        checkpointDirForFold: (fold) => checkpoints.trainingDir(fold.name),
        resume: resuming,
        completedFold: (fold, foldIndex) => {
          if (!resuming) return undefined;
          const done = checkpoints.loadCompletedFold(fold, foldIndex);
          if (done) {
            log(`${fold.name}: finished before the interruption, reused (ROC AUC ${done.result.rocAuc.toFixed(3)})`);
            epochsDone += epochs + fineTuneEpochs;
          }
          return done;
        },
        onEpochEnd: (fold, m) => {
          checkpoints.pruneEpochs(fold.name, m.epoch);
          onEpoch(fold.name, m, epochs);
        },
        onFoldEnd: (f, probs) => {
          checkpoints.saveCompletedFold(folds.find((x) => x.name === f.name)!, folds.findIndex((x) => x.name === f.name), f, probs);
          if (progressMode !== "bar") log(`${f.name}: ROC AUC ${f.rocAuc.toFixed(3)}, within-source ${f.withinSourceRocAuc.toFixed(3)} (${f.validationImages} images, ${f.validationPositives} malignant, ${(f.trainMs / 1000).toFixed(1)} s)`);
        },
        scoreFold,
      },
    );
    const crossValidationMs = performance.now() - cvStarted;
    const scored = labels.flatMap((_, i) => (Number.isNaN(cv.outOfFoldProbs[i]) ? [] : [i]));
    const oofLabels = scored.map((i) => labels[i]);
    const oofProbs = scored.map((i) => cv.outOfFoldProbs[i]);
    const hasBoth = oofLabels.includes(0) && oofLabels.includes(1);
    const outOfFoldRocAuc = hasBoth ? computeRocAuc(oofLabels, oofProbs) : NaN;
    const outOfFoldWithinSource = computeWithinSourceRocAuc(oofLabels, oofProbs, scored.map((i) => sources[i])).auc;
    const threshold = chooseThresholdForSensitivity(oofLabels, oofProbs, targetSensitivity);
    const thresholdAudit = auditOutOfFoldThreshold({
      labels,
      outOfFoldProbs: cv.outOfFoldProbs,
      sources,
      folds,
      thresholdProb: threshold.thresholdProb,
      targetSensitivity,
      splitDescription: split === "source" ? "leave-one-source-out" : `lesion-grouped ${folds.length}-fold`,
    });
    for (const warning of thresholdAudit.warnings) log(`warning: ${warning}`);

    const finalStarted = performance.now();
    if (resuming) backfillTensorBoardEpochs(path.join(logDir, "all"), checkpoints.readCheckpointHistory("all"), head.learningRate);
    const final = await trainHead(matrix.features, labels, {
      seed,
      hiddenUnits: head.hiddenUnits,
      dropoutRate: head.dropoutRate,
      l2: head.l2,
      epochs,
      batchSize: head.batchSize,
      learningRate: head.learningRate,
      classWeights: "balanced",
      ...(malignantDiagnoses ? { diagnoses, malignantDiagnoses } : {}),
      callbacks: [createTensorBoardCallback(path.join(logDir, "all"), { writeGraph: false })],
      checkpointDir: checkpoints.trainingDir("all"),
      resume: resuming,
      onEpochEnd: (m) => {
        checkpoints.pruneEpochs("all", m.epoch);
        onEpoch("all data", m, epochs);
      },
    });
    const finalHead = final.model;
    const tunedHead = fineTune ? (await fineTuneTopBlocks(singleBackbone(), finalHead, records, [], fineTuneOptions(seed, "all", "all data"))).head : undefined;
    const finalModelMs = performance.now() - finalStarted;

    const exportStarted = performance.now();
    const triage = ensemble
      ? buildEnsembleTriageModel(ensemble, finalHead)
      : tunedHead
        ? await buildFineTunedTriageModel(singleBackbone(), tunedHead)
        : buildTriageModel(singleBackbone(), finalHead);
    const makeMetadata = (fields: TriageMetadataFields) => (ensemble ? makeEnsembleTriageMetadata(ensemble, fields) : makeTriageMetadata(singleBackbone(), fields));
    await exportTriageModel(
      modelDir,
      triage,
      makeMetadata({
        thresholdProb: threshold.thresholdProb,
        backendName: backend.name,
        // Cross-validation is the only evaluation an experiment has: no test block.
        validation: {
          description: thresholdAudit.scoredOn,
          images: thresholdAudit.images,
          malignant: thresholdAudit.malignant,
          benign: thresholdAudit.benign,
          metrics: {
            rocAucMean: jsonNumber(cv.spread.rocAuc.mean),
            rocAucSd: jsonNumber(cv.spread.rocAuc.sd),
            outOfFoldRocAuc: jsonNumber(outOfFoldRocAuc),
            sensitivity: threshold.sensitivity,
            specificity: jsonNumber(threshold.specificity),
          },
        },
        threshold: thresholdAudit,
        notes: {
          run: runName,
          configHash,
          split,
          folds: folds.length,
          seed,
          dataFingerprint: fingerprint,
          thresholdChosenOn: "out-of-fold predictions",
          target,
          ...(final.diagnosisClasses ? { diagnosisClasses: final.diagnosisClasses.join(","), malignantDiagnoses: final.malignantClasses!.join(",") } : {}),
        },
      }),
    );
    const exportMs = performance.now() - exportStarted;
    // buildTriageModel shares the backbone's weights (its dispose frees them; the head model still
    // holds its own layers); the fine-tuned triage model has fresh copies of everything. Either
    // way the backbone's compiled inference plan (folded weights of its own) is freed here.
    triage.dispose();
    finalHead.dispose();
    tunedHead?.dispose();
    if (tunedHead) disposeBackbone(singleBackbone());
    else for (const member of ensemble ? ensemble.members : [singleBackbone()]) releaseInferencePlan(member);
    backboneDisposed = true;

    session.addScalar("cv/roc_auc_mean", cv.spread.rocAuc.mean, 0);
    session.addScalar("cv/roc_auc_sd", cv.spread.rocAuc.sd, 0);
    session.addScalar("cv/within_source_roc_auc_mean", cv.spread.withinSourceRocAuc.mean, 0);
    session.addScalar("cv/out_of_fold_roc_auc", outOfFoldRocAuc, 0);
    session.addScalar("cv/specificity_at_target_sensitivity", threshold.specificity, 0);
    status = "success";

    const rel = (p: string) => path.relative(outputRoot, p).split(path.sep).join("/");
    const summary: ExperimentRunSummary = {
      schema: EXPERIMENT_RUN_SCHEMA,
      runName,
      configHash,
      createdAt: new Date().toISOString(),
      config: {
        dataDir: path.relative(findProjectRoot(), dataDir).startsWith("..") ? dataDir : path.relative(findProjectRoot(), dataDir) || ".",
        backbone: backboneName,
        alpha: options.alpha ?? null,
        epochs,
        fineTuneEpochs,
        unfreezeBlocks,
        seed,
        split,
        folds: folds.length,
        head: headSettings,
        targetSensitivity,
        target,
        ...(malignantDiagnoses ? { malignantDiagnoses, diagnosisClasses: final.diagnosisClasses } : {}),
      },
      backend: { name: backend.name, description: `${backend.name} (${backend.details})` },
      data: {
        fingerprint,
        images: records.length,
        malignant: labels.filter((v) => v === 1).length,
        benign: labels.filter((v) => v === 0).length,
        sources: countBy(sources.map((s) => s ?? "unknown")),
        problems: dataset.problems.length + matrix.problems.length,
      },
      metrics: {
        rocAuc: jsonSpread(cv.spread.rocAuc),
        averagePrecision: jsonSpread(cv.spread.averagePrecision),
        withinSourceRocAuc: jsonSpread(cv.spread.withinSourceRocAuc),
        outOfFoldRocAuc: jsonNumber(outOfFoldRocAuc),
        outOfFoldWithinSourceRocAuc: jsonNumber(outOfFoldWithinSource),
        threshold: { ...thresholdAudit, thresholdProb: threshold.thresholdProb, sensitivity: threshold.sensitivity, specificity: jsonNumber(threshold.specificity), targetSensitivity },
      },
      warnings: thresholdAudit.warnings,
      folds: cv.folds.map((f) => ({
        name: f.name,
        trainImages: f.trainImages,
        validationImages: f.validationImages,
        validationPositives: f.validationPositives,
        rocAuc: jsonNumber(f.rocAuc),
        averagePrecision: jsonNumber(f.averagePrecision),
        withinSourceRocAuc: jsonNumber(f.withinSourceRocAuc),
        epochs: f.history.length,
        finalTrainLoss: f.history.at(-1)?.trainLoss ?? NaN,
        finalValidationLoss: jsonNumber(f.history.at(-1)?.valLoss ?? NaN),
        trainMs: Math.round(f.trainMs),
      })),
      timings: {
        totalMs: Math.round(performance.now() - startedMs),
        loadDataMs: Math.round(loadDataMs),
        featuresMs: Math.round(featuresMs),
        featureCacheHits: matrix.cacheHits,
        featuresComputed: matrix.computed,
        crossValidationMs: Math.round(crossValidationMs),
        finalModelMs: Math.round(finalModelMs),
        exportMs: Math.round(exportMs),
      },
      artifacts: { runJson: rel(runJsonPath), logDir: rel(logDir), modelDir: rel(modelDir) },
    };
    fs.mkdirSync(path.dirname(runJsonPath), { recursive: true });
    fs.writeFileSync(`${runJsonPath}.tmp`, JSON.stringify(summary, null, 2) + "\n");
    fs.renameSync(`${runJsonPath}.tmp`, runJsonPath);
    checkpoints.remove();
    log(
      `${runName}: ROC AUC ${formatFoldSpread(cv.spread.rocAuc)} over ${folds.length} folds, within-source ${formatFoldSpread(cv.spread.withinSourceRocAuc)}, ` +
        `out-of-fold ${outOfFoldRocAuc.toFixed(3)}; threshold ${threshold.thresholdProb.toFixed(3)} (sensitivity ${threshold.sensitivity.toFixed(3)}, specificity ${threshold.specificity.toFixed(3)})`,
    );
    log(`wrote ${rel(runJsonPath)}, ${rel(logDir)}/, ${rel(modelDir)}/ in ${(summary.timings.totalMs / 1000).toFixed(1)} s`);
    return { summary, runJsonPath, logDir, modelDir };
  } catch (err) {
    if (!backboneDisposed) disposeBackbones();
    throw err;
  } finally {
    session.addHparamsSessionEnd(status, epochs);
    session.close();
  }
}
