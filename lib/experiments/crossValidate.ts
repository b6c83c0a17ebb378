import type * as tf from "@tensorflow/tfjs";
import { computeRocAuc, computeAveragePrecision } from "../evaluate/metrics.js";
import { trainHead, type TrainHeadOptions } from "../train/trainHead.js";
import { predictHeadProbabilities } from "../train/predictBatches.js";
import { type EpochMetrics, type TrainingCallback } from "../train/trainingLog.js";
import { MelanomaLabError, UnknownNameError } from "../util/errors.js";
import { computeWithinSourceRocAuc } from "../evaluate/sourceConfounding.js";

/** Thrown for cross-validation input that does not fit together (rows, folds, views). */
export class CrossValidationError extends MelanomaLabError {}

/** Hyperparameters of the dense head trained in each fold (see trainHead). */
export interface HeadConfig {
  /** 0 = logistic regression on the features. */
  hiddenUnits: number;
  dropoutRate: number;
  l2: number;
  epochs: number;
  batchSize: number;
  learningRate: number;
  /**
   * What the head learns: "malignant" (binary, sigmoid) or "diagnosis" (softmax over the rows'
   * diagnoses, scored as P(malignant) = Σ malignant diagnoses; needs FeatureRows.diagnoses).
   * Default "malignant".
   */
  target?: HeadTarget;
  /** With target "diagnosis": the diagnosis codes counted as malignant (trainHead's default when omitted). */
  malignantDiagnoses?: readonly string[];
}

/**
 * trainHead's architecture and optimiser settings from a head configuration: the one place the
 * six settings go from a HeadConfig into trainHead (cross-validation folds, the final model, the
 * external-set check).
 *
 * @example trainHead(features, labels, { ...headTrainingOptions(DEFAULT_HEAD_CONFIG), seed: 42 })
 */
export function headTrainingOptions(
  head: HeadConfig,
): Pick<TrainHeadOptions, "hiddenUnits" | "dropoutRate" | "l2" | "epochs" | "batchSize" | "learningRate"> {
  const { hiddenUnits, dropoutRate, l2, epochs, batchSize, learningRate } = head;
  return { hiddenUnits, dropoutRate, l2, epochs, batchSize, learningRate };
}

/** What a head is trained to predict: the binary label, or the diagnosis (summed to P(malignant)). */
export type HeadTarget = "malignant" | "diagnosis";

/** Valid values of {@link HeadTarget}. */
export const HEAD_TARGETS: readonly HeadTarget[] = ["malignant", "diagnosis"];

/** The head used when nothing else is asked for: an MLP with 128 hidden units. */
export const DEFAULT_HEAD_CONFIG: HeadConfig = {
  hiddenUnits: 128,
  dropoutRate: 0.3,
  l2: 1e-4,
  epochs: 30,
  batchSize: 32,
  learningRate: 1e-3,
};

/** Features of every image of a data set, rows in a fixed order. */
export interface FeatureRows {
  /** Row-major [rows, featureDim]. */
  features: Float32Array;
  featureDim: number;
  /** 0 = benign, 1 = malignant, one per row. */
  labels: ArrayLike<number>;
  /** Source (clinic/device) of each row for within-source AUC (undefined = unknown, left out); omitted = not reported. */
  sources?: readonly (string | undefined)[];
  /** Diagnosis code of each row (mel, nv, …); needed by a head with target "diagnosis" for its training rows. */
  diagnoses?: readonly (string | undefined)[];
  /**
   * Extra views of the same rows (test-time augmentation: e.g. flipped-image features), same
   * shape as `features`. Validation probabilities are averaged over `features` and these.
   */
  extraViews?: readonly Float32Array[];
  /**
   * Loss weight of each row when it is a training row (trainHead's `rowWeights`, multiplied with
   * the balanced class weights), e.g. computeSourceBalancedWeights(sources). Omitted = all 1.
   */
  rowWeights?: ArrayLike<number>;
}

/** Row indices of one fold. */
export interface FoldRows {
  /** Shown in tables and logs, e.g. "fold-1" or "rosendahl". */
  name: string;
  trainRows: readonly number[];
  validationRows: readonly number[];
}

/** What one fold gave. */
export interface FoldResult {
  name: string;
  trainImages: number;
  validationImages: number;
  validationPositives: number;
  /** ROC AUC on the fold's validation rows; NaN when they hold one class only. */
  rocAuc: number;
  averagePrecision: number;
  /** Within-source ROC AUC on the validation rows (NaN without sources or same-source pairs). */
  withinSourceRocAuc: number;
  history: EpochMetrics[];
  trainMs: number;
}

/** Mean, sample standard deviation (n − 1), min and max of a per-fold metric, NaN folds left out. */
export interface FoldSpread {
  mean: number;
  sd: number;
  min: number;
  max: number;
  /** Folds with a value (not NaN). */
  n: number;
}

/** A fold finished by an earlier (interrupted) run: its result and validation probabilities, reused as they are. */
export interface CompletedFold {
  result: FoldResult;
  /** One probability per validation row of the fold, in the fold's row order. */
  validationProbs: Float32Array;
}

/** Result of {@link crossValidateHead}. */
export interface CrossValidationResult {
  folds: FoldResult[];
  /** Out-of-fold probability of every row (NaN for a row in no validation fold). */
  outOfFoldProbs: Float32Array;
  spread: { rocAuc: FoldSpread; averagePrecision: FoldSpread; withinSourceRocAuc: FoldSpread };
}

/**
 * Mean ± sample sd of per-fold values, ignoring NaN (a fold with one class has no AUC).
 *
 * @example summarizeFoldSpread([0.8, 0.9, NaN]) // { mean: 0.85, sd: 0.0707…, min: 0.8, max: 0.9, n: 2 }
 */
export function summarizeFoldSpread(values: readonly number[]): FoldSpread {
  const ok = values.filter((v) => !Number.isNaN(v));
  const n = ok.length;
  if (n === 0) return { mean: NaN, sd: NaN, min: NaN, max: NaN, n: 0 };
  const mean = ok.reduce((a, b) => a + b, 0) / n;
  const sd = n > 1 ? Math.sqrt(ok.reduce((a, b) => a + (b - mean) ** 2, 0) / (n - 1)) : 0;
  return { mean, sd, min: Math.min(...ok), max: Math.max(...ok), n };
}

/**
 * "0.873 ± 0.021" (mean ± sd), or "n/a" when no fold had a value.
 *
 * @example formatFoldSpread({ mean: 0.8731, sd: 0.0212, min: 0.85, max: 0.9, n: 5 }) // "0.873 ± 0.021"
 */
export function formatFoldSpread(spread: FoldSpread, digits = 3): string {
  return spread.n === 0 ? "n/a" : `${spread.mean.toFixed(digits)} ± ${spread.sd.toFixed(digits)}`;
}

function gatherRows(matrix: Float32Array, featureDim: number, rows: readonly number[]): Float32Array {
  const out = new Float32Array(rows.length * featureDim);
  rows.forEach((r, i) => out.set(matrix.subarray(r * featureDim, (r + 1) * featureDim), i * featureDim));
  return out;
}

function aucOrNaN(labels: number[], probs: ArrayLike<number>): number {
  const positives = labels.filter((v) => v === 1).length;
  return positives > 0 && positives < labels.length ? computeRocAuc(labels, probs) : NaN;
}

function averagePrecisionOrNaN(labels: number[], probs: ArrayLike<number>): number {
  const positives = labels.filter((v) => v === 1).length;
  return positives > 0 && positives < labels.length ? computeAveragePrecision(labels, probs) : NaN;
}

/**
 * Trains one head per fold on the fold's train rows (seeded, balanced class weights, the fold's
 * validation rows evaluated each epoch; with `head.target` "diagnosis" a softmax over the train
 * rows' `rows.diagnoses`, scored as P(malignant)) and scores its validation rows: ROC AUC, average
 * precision and within-source ROC AUC per fold, their spread, and out-of-fold probabilities.
 * The head's tensors are disposed after each fold. With `checkpointDirForFold` each fold writes
 * per-epoch checkpoints; with `resume` and `completedFold` an interrupted run continues where it
 * stopped (finished folds reused, the interrupted one resumed from its last finished epoch).
 *
 * @example
 * const cv = await crossValidateHead(rows, folds, { head: DEFAULT_HEAD_CONFIG, seed: 42 });
 * formatFoldSpread(cv.spread.rocAuc) // "0.861 ± 0.018"
 */
export async function crossValidateHead(
  rows: FeatureRows,
  folds: readonly FoldRows[],
  options: {
    head: HeadConfig;
    seed: number;
    /** TensorBoard (or other) callbacks for one fold's training. */
    callbacksForFold?: (fold: FoldRows, foldIndex: number) => TrainingCallback[];
    onEpochEnd?: (fold: FoldRows, metrics: EpochMetrics) => void;
    /** Called after a fold is trained and scored (not for folds reused via `completedFold`). */
    onFoldEnd?: (result: FoldResult, validationProbs: Float32Array) => void;
    /** trainHead checkpoint folder per fold (per-epoch checkpoints); omitted = none. */
    checkpointDirForFold?: (fold: FoldRows, foldIndex: number) => string | undefined;
    /** With checkpointDirForFold: continue each fold from its latest checkpoint (trainHead `resume`). */
    resume?: boolean;
    /**
     * Score the validation rows after every epoch (history valLoss/valAuc, TensorBoard validation
     * curves). Default true; false saves that work when only the final scores matter.
     */
    validateEachEpoch?: boolean;
    /** A fold that an earlier run already finished: reused without training (resume). */
    completedFold?: (fold: FoldRows, foldIndex: number) => CompletedFold | undefined;
    /**
     * Scores a fold's validation rows another way than head-on-features (e.g. after fine-tuning
     * the backbone with this head): returns one probability per validation row. The head is
     * disposed after it returns. `diagnosisClasses` are a diagnosis head's softmax columns.
     */
    scoreFold?: (
      fold: FoldRows,
      foldIndex: number,
      head: tf.LayersModel,
      diagnosisClasses?: string[],
    ) => Promise<Float32Array>;
  },
): Promise<CrossValidationResult> {
  const { featureDim } = rows;
  const rowCount = rows.labels.length;
  if (rows.features.length !== rowCount * featureDim) {
    throw new CrossValidationError(
      `features: received ${rows.features.length} values, expected ${rowCount} labels × featureDim ${featureDim}`,
    );
  }
  if (rows.sources && rows.sources.length !== rowCount) {
    throw new CrossValidationError(
      `sources: received ${rows.sources.length} entries, expected one per row (${rowCount})`,
    );
  }
  for (const [i, view] of (rows.extraViews ?? []).entries()) {
    if (view.length !== rows.features.length)
      throw new CrossValidationError(
        `extraViews[${i}]: received ${view.length} values, expected ${rows.features.length}`,
      );
  }
  if (rows.rowWeights && rows.rowWeights.length !== rowCount) {
    throw new CrossValidationError(
      `rowWeights: received ${rows.rowWeights.length} weights, expected one per row (${rowCount})`,
    );
  }
  const target = options.head.target ?? "malignant";
  if (!HEAD_TARGETS.includes(target)) throw new UnknownNameError("head target", target, HEAD_TARGETS);
  const diagnoses = rows.diagnoses;
  if (diagnoses && diagnoses.length !== rowCount) {
    throw new CrossValidationError(
      `diagnoses: received ${diagnoses.length} entries, expected one per row (${rowCount})`,
    );
  }
  if (target === "diagnosis") {
    if (!diagnoses)
      throw new CrossValidationError(
        `diagnoses: missing; head target "diagnosis" needs one diagnosis code per row (${rowCount} rows)`,
      );
    const lacking = folds
      .flatMap((f) => f.trainRows)
      .filter((r) => !(typeof diagnoses[r] === "string" && diagnoses[r]!.trim() !== ""));
    if (lacking.length > 0) {
      throw new CrossValidationError(
        `diagnoses: ${new Set(lacking).size} training rows have none (e.g. row ${lacking[0]}: ${JSON.stringify(diagnoses[lacking[0]]) ?? "undefined"}); head target "diagnosis" needs a code for every training row`,
      );
    }
  }
  if (folds.length === 0) throw new CrossValidationError("folds: received none, expected at least one");
  const labels = Array.from(rows.labels, Number);
  const outOfFoldProbs = new Float32Array(rowCount).fill(NaN);
  const results: FoldResult[] = [];
  for (const [foldIndex, fold] of folds.entries()) {
    for (const r of [...fold.trainRows, ...fold.validationRows]) {
      if (!(Number.isInteger(r) && r >= 0 && r < rowCount))
        throw new CrossValidationError(`fold ${fold.name}: row ${r} is outside 0..${rowCount - 1}`);
    }
    const completed = options.completedFold?.(fold, foldIndex);
    if (completed) {
      if (completed.validationProbs.length !== fold.validationRows.length) {
        throw new CrossValidationError(
          `completedFold for ${fold.name}: has ${completed.validationProbs.length} probabilities, expected ${fold.validationRows.length}`,
        );
      }
      fold.validationRows.forEach((r, i) => (outOfFoldProbs[r] = completed.validationProbs[i]));
      results.push(completed.result);
      continue;
    }
    const started = performance.now();
    const checkpointDir = options.checkpointDirForFold?.(fold, foldIndex);
    const trainLabels = fold.trainRows.map((r) => labels[r]);
    const valLabels = fold.validationRows.map((r) => labels[r]);
    const valFeatures = gatherRows(rows.features, featureDim, fold.validationRows);
    const trained = await trainHead(gatherRows(rows.features, featureDim, fold.trainRows), trainLabels, {
      ...headTrainingOptions(options.head),
      seed: options.seed + foldIndex,
      classWeights: "balanced",
      ...(rows.rowWeights ? { rowWeights: fold.trainRows.map((r) => rows.rowWeights![r]) } : {}),
      ...(target === "diagnosis"
        ? { diagnoses: fold.trainRows.map((r) => diagnoses![r]), malignantDiagnoses: options.head.malignantDiagnoses }
        : {}),
      validation:
        options.validateEachEpoch !== false && valLabels.some((v) => v === 1) && valLabels.some((v) => v === 0)
          ? { features: valFeatures, labels: valLabels }
          : undefined,
      callbacks: options.callbacksForFold?.(fold, foldIndex),
      checkpointDir,
      resume: checkpointDir !== undefined && options.resume === true,
      onEpochEnd: options.onEpochEnd ? (m) => options.onEpochEnd!(fold, m) : undefined,
    });
    let probs: Float32Array;
    try {
      if (options.scoreFold) probs = await options.scoreFold(fold, foldIndex, trained.model, trained.diagnosisClasses);
      else probs = predictHeadProbabilities(trained.model, valFeatures, featureDim);
      if (probs.length !== fold.validationRows.length) {
        throw new CrossValidationError(
          `scoreFold for ${fold.name}: returned ${probs.length} probabilities, expected ${fold.validationRows.length}`,
        );
      }
      const views = options.scoreFold ? [] : (rows.extraViews ?? []);
      for (const view of views) {
        const extra = predictHeadProbabilities(
          trained.model,
          gatherRows(view, featureDim, fold.validationRows),
          featureDim,
        );
        for (let i = 0; i < probs.length; i++) probs[i] += extra[i];
      }
      if (views.length > 0) for (let i = 0; i < probs.length; i++) probs[i] /= views.length + 1;
    } finally {
      trained.model.dispose();
    }
    fold.validationRows.forEach((r, i) => (outOfFoldProbs[r] = probs[i]));
    const sources = rows.sources;
    const result: FoldResult = {
      name: fold.name,
      trainImages: fold.trainRows.length,
      validationImages: fold.validationRows.length,
      validationPositives: valLabels.filter((v) => v === 1).length,
      rocAuc: aucOrNaN(valLabels, probs),
      averagePrecision: averagePrecisionOrNaN(valLabels, probs),
      withinSourceRocAuc: sources
        ? computeWithinSourceRocAuc(
            valLabels,
            probs,
            fold.validationRows.map((r) => sources[r]),
          ).auc
        : NaN,
      history: trained.history,
      trainMs: performance.now() - started,
    };
    results.push(result);
    options.onFoldEnd?.(result, probs);
  }
  return {
    folds: results,
    outOfFoldProbs,
    spread: {
      rocAuc: summarizeFoldSpread(results.map((f) => f.rocAuc)),
      averagePrecision: summarizeFoldSpread(results.map((f) => f.averagePrecision)),
      withinSourceRocAuc: summarizeFoldSpread(results.map((f) => f.withinSourceRocAuc)),
    },
  };
}

/**
 * Row indices of record-level folds, for the rows of a feature matrix whose records are
 * `rowRecords` (matched by imageId; an image without features is left out of its fold).
 *
 * @example toFoldRows(views.records, createGroupedKFolds(views.records, { folds: 5, seed: 42 }).map((f) => ({ name: `fold-${f.foldIndex + 1}`, ...f })))
 */
export function toFoldRows(
  rowRecords: readonly { imageId: string }[],
  folds: readonly { name: string; train: readonly { imageId: string }[]; validation: readonly { imageId: string }[] }[],
): FoldRows[] {
  const rowOf = new Map<string, number>();
  rowRecords.forEach((r, i) => {
    if (rowOf.has(r.imageId))
      throw new CrossValidationError(
        `rowRecords: imageId ${JSON.stringify(r.imageId)} appears twice (rows ${rowOf.get(r.imageId)} and ${i})`,
      );
    rowOf.set(r.imageId, i);
  });
  const rowsOf = (records: readonly { imageId: string }[]) =>
    records.flatMap((r) => (rowOf.has(r.imageId) ? [rowOf.get(r.imageId)!] : []));
  return folds.map((f) => ({ name: f.name, trainRows: rowsOf(f.train), validationRows: rowsOf(f.validation) }));
}
