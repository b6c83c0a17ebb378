import path from "node:path";
import * as tf from "@tensorflow/tfjs";
import { MelanomaLabError } from "../util/errors.js";
import { predictHeadProbabilities } from "../train/predictBatches.js";
import { createEventWriter, type EventWriter, type EventWriterOptions } from "./eventWriter.js";
import { writeSampleImageGrids, type SampleImageGridOptions, type SampleImageRecord } from "./runSummaries.js";
import { DEFAULT_PR_CURVE_THRESHOLD_COUNT, type HParamValue } from "./summaryValues.js";

/** A {@link createTensorBoardCallback} option out of range. */
export class TensorBoardCallbackError extends MelanomaLabError {}

/** The two runs Keras' TensorBoard callback writes. */
export interface TensorBoardRunWriters {
  train: EventWriter;
  validation: EventWriter;
}

/** Options of {@link createTensorBoardCallback}; defaults follow Keras' `TensorBoard` callback. */
export interface TensorBoardCallbackOptions {
  /** Weight histograms every N epochs (0 = never). Default 0, as in Keras. */
  histogramFreq?: number;
  /**
   * "epoch" (default): epoch_* scalars only. "batch" or a number N: also batch_* scalars of the
   * training run every N batches, on a global batch step.
   */
  updateFreq?: "epoch" | "batch" | number;
  /** Write the model's Keras graph (graphs dashboard, "keras" tag) at train start. Default true. */
  writeGraph?: boolean;
  /**
   * Hyperparameters of this training: written as an hparams session in `logdir` (start at train
   * begin, end at train end) so the HParams dashboard compares logdirs.
   */
  hparams?: Readonly<Record<string, HParamValue>>;
  /**
   * Markdown texts (text dashboard) written at train begin in the train run, step 0: tag →
   * markdown, e.g. `{ config: formatJsonAsMarkdown(config) }`.
   */
  texts?: Readonly<Record<string, string>>;
  /**
   * Training images shown at train begin in the train run (images dashboard): one labelled grid
   * per label, tag `train/samples/<label>` (see writeSampleImageGrids).
   */
  sampleImages?: { records: readonly SampleImageRecord[] } & SampleImageGridOptions;
  /**
   * Validation rows whose precision-recall curve is written at every epoch end, in the
   * validation run at the epoch's step (PR curves dashboard): the model's P(malignant) for
   * `features` (row-major [labels.length, featureDim]) against the 0/1 `labels`.
   */
  validationPrCurve?: {
    features: Float32Array;
    labels: ArrayLike<number>;
    /** Default "pr_curve/malignant". */
    tag?: string;
    /** Default {@link DEFAULT_PR_CURVE_THRESHOLD_COUNT} (201, as TensorBoard). */
    numThresholds?: number;
  };
  /** Extra summaries at each epoch end (PR curves, sample images, …), awaited before flushing. */
  onEpochEndWrite?: (
    epoch: number,
    writers: TensorBoardRunWriters,
    logs: Record<string, number>,
  ) => void | Promise<void>;
  /** Passed to both event writers. */
  writerOptions?: EventWriterOptions;
}

type UnresolvedLogs = Record<string, number | tf.Tensor> | undefined;

async function resolveLogs(logs: UnresolvedLogs): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const [name, value] of Object.entries(logs ?? {})) {
    if (typeof value === "number") out[name] = value;
    else if (value instanceof tf.Tensor && !value.isDisposed && value.size === 1) out[name] = (await value.data())[0];
  }
  return out;
}

/**
 * A tfjs training callback writing what Keras' `TensorBoard` callback writes: `<logdir>/train`
 * gets `epoch_<metric>` (and `batch_<metric>` with `updateFreq`), `epoch_learning_rate`, weight
 * histograms and the Keras graph; `<logdir>/validation` gets `epoch_<metric>` for each `val_*`
 * log, so both runs share tag names and plot on one chart. Beyond Keras, it writes texts and
 * labelled sample images at train begin (`texts`, `sampleImages`) and a validation PR curve per
 * epoch (`validationPrCurve`), so that every TensorBoard dashboard has data. Writers flush at every epoch end and
 * close at train end.
 *
 * Pass it in `model.fit(x, y, { callbacks: [callback] })` (it is a `tf.Callback`, so it sees the
 * model). Its `writers` stay usable for your own summaries until training ends.
 */
export class TensorBoardCallback extends tf.Callback {
  readonly logdir: string;
  /** The train and validation writers; reopened (new files, same runs) when `fit` runs again. */
  writers: TensorBoardRunWriters;
  private readonly options: Required<Pick<TensorBoardCallbackOptions, "histogramFreq" | "writeGraph">> &
    TensorBoardCallbackOptions;
  private readonly batchEvery: number;
  private sessionWriter: EventWriter | undefined;
  private globalBatch = 0;
  private lastEpoch = 0;

  /** @internal use {@link createTensorBoardCallback}. */
  constructor(logdir: string, options: TensorBoardCallbackOptions = {}) {
    super();
    const histogramFreq = options.histogramFreq ?? 0;
    if (!Number.isInteger(histogramFreq) || histogramFreq < 0) {
      throw new TensorBoardCallbackError(
        `histogramFreq ${histogramFreq} is not usable: expected a non-negative integer of epochs`,
      );
    }
    const updateFreq = options.updateFreq ?? "epoch";
    if (updateFreq === "epoch") this.batchEvery = 0;
    else if (updateFreq === "batch") this.batchEvery = 1;
    else if (Number.isInteger(updateFreq) && updateFreq > 0) this.batchEvery = updateFreq;
    else {
      throw new TensorBoardCallbackError(
        `updateFreq ${JSON.stringify(updateFreq)} is not usable: expected "epoch", "batch" or a positive integer of batches`,
      );
    }
    const pr = options.validationPrCurve;
    if (pr && (pr.labels.length === 0 || pr.features.length === 0 || pr.features.length % pr.labels.length !== 0)) {
      throw new TensorBoardCallbackError(
        `validationPrCurve has ${pr.features.length} feature values for ${pr.labels.length} labels: expected labels.length × featureDim values, at least one row`,
      );
    }
    this.logdir = path.resolve(logdir);
    this.options = { ...options, histogramFreq, writeGraph: options.writeGraph ?? true };
    this.writers = this.openRunWriters();
  }

  private openRunWriters(): TensorBoardRunWriters {
    return {
      train: createEventWriter(path.join(this.logdir, "train"), this.options.writerOptions),
      validation: createEventWriter(path.join(this.logdir, "validation"), this.options.writerOptions),
    };
  }

  override async onTrainBegin(): Promise<void> {
    if (this.writers.train.isClosed) {
      this.writers = this.openRunWriters();
    }
    if (this.options.writeGraph && this.model) {
      this.writers.train.addKerasModel(this.model.toJSON(null, false) as object, 0);
    }
    for (const [tag, markdown] of Object.entries(this.options.texts ?? {}))
      this.writers.train.addText(tag, markdown, 0);
    if (this.options.sampleImages) {
      const { records, ...gridOptions } = this.options.sampleImages;
      await writeSampleImageGrids(this.writers.train, records, gridOptions);
    }
    if (this.options.hparams) {
      this.sessionWriter = createEventWriter(this.logdir, this.options.writerOptions);
      this.sessionWriter.addHparamsSessionStart(this.options.hparams, { groupName: path.basename(this.logdir) });
      this.sessionWriter.flush();
    }
    this.writers.train.flush();
  }

  override async onBatchEnd(_batch: number, logs?: UnresolvedLogs): Promise<void> {
    const step = this.globalBatch++;
    if (this.batchEvery === 0 || step % this.batchEvery !== 0) return;
    const values = await resolveLogs(logs);
    for (const [name, value] of Object.entries(values)) {
      if (name === "batch" || name === "size") continue;
      this.writers.train.addScalar(`batch_${name}`, value, step);
    }
  }

  override async onEpochEnd(epoch: number, logs?: UnresolvedLogs): Promise<void> {
    this.lastEpoch = epoch;
    const values = await resolveLogs(logs);
    for (const [name, value] of Object.entries(values)) {
      if (name.startsWith("val_")) this.writers.validation.addScalar(`epoch_${name.slice(4)}`, value, epoch);
      else this.writers.train.addScalar(`epoch_${name}`, value, epoch);
    }
    const learningRate = (this.model?.optimizer as unknown as { learningRate?: unknown } | undefined)?.learningRate;
    if (typeof learningRate === "number") this.writers.train.addScalar("epoch_learning_rate", learningRate, epoch);
    if (this.options.histogramFreq > 0 && epoch % this.options.histogramFreq === 0 && this.model) {
      for (const weight of this.model.weights) {
        // read() returns the variable's own tensor: nothing to dispose.
        const values = await weight.read().data();
        this.writers.train.addHistogram(weight.originalName ?? weight.name, values, epoch);
      }
    }
    const pr = this.options.validationPrCurve;
    if (pr && this.model) {
      const probabilities = predictHeadProbabilities(this.model, pr.features, pr.features.length / pr.labels.length);
      this.writers.validation.addPrCurve(
        pr.tag ?? "pr_curve/malignant",
        pr.labels,
        probabilities,
        epoch,
        pr.numThresholds ?? DEFAULT_PR_CURVE_THRESHOLD_COUNT,
      );
    }
    if (this.options.onEpochEndWrite) await this.options.onEpochEndWrite(epoch, this.writers, values);
    this.writers.train.flush();
    this.writers.validation.flush();
  }

  override async onTrainEnd(): Promise<void> {
    this.close("success");
  }

  /**
   * Closes the writers (idempotent). Called at train end; call it yourself with "failure" when
   * `fit` throws, so the HParams dashboard shows the run as failed.
   */
  close(status: "success" | "failure" = "success"): void {
    if (this.sessionWriter && !this.sessionWriter.isClosed) {
      this.sessionWriter.addHparamsSessionEnd(status, this.lastEpoch);
      this.sessionWriter.close();
    }
    this.writers.train.close();
    this.writers.validation.close();
  }
}

/**
 * One line to log a tfjs `model.fit` to TensorBoard, Keras style.
 *
 * @example
 * const tb = createTensorBoardCallback("logs/run-1", { histogramFreq: 1, hparams: { lr: 1e-3 } });
 * await model.fit(xs, ys, { epochs: 5, validationData: [xv, yv], callbacks: [tb] });
 */
export function createTensorBoardCallback(
  logdir: string,
  options: TensorBoardCallbackOptions = {},
): TensorBoardCallback {
  return new TensorBoardCallback(logdir, options);
}
