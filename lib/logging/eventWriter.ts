import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { MelanomaLabError } from "../util/errors.js";
import { lookupProtoType } from "./protoSchema.js";
import {
  computePrCurve,
  createHistogramValue,
  createHparamsExperimentValue,
  createHparamsSessionEndValue,
  createHparamsSessionStartValue,
  createImageValue,
  createKerasModelValue,
  createScalarValue,
  createTextValue,
  createPrCurveValue,
  DEFAULT_HISTOGRAM_BUCKET_COUNT,
  DEFAULT_PR_CURVE_THRESHOLD_COUNT,
  encodeRawImageToPng,
  type HParamMetricSpec,
  type HParamSpec,
  type HParamsSessionStatus,
  type HParamValue,
  type RawImage,
  type SummaryValueObject,
} from "./summaryValues.js";
import { frameTfRecord } from "./tfrecord.js";

/** The first record of every event file; TensorBoard's purge logic keys on version 2. */
export const EVENT_FILE_VERSION = "brain.Event:2";
/** Written in Event.source_metadata.writer so readers can tell who wrote a file. */
export const EVENT_SOURCE_WRITER = "melanoma-lab";

/** Using a writer after `close()`, or a step that is not a non-negative integer. */
export class EventWriterError extends MelanomaLabError {}

/** Options of {@link createEventWriter}. */
export interface EventWriterOptions {
  /** Pending records are written at least this often; 0 turns the timer off. Default 2000 ms. */
  flushIntervalMs?: number;
  /** Appended to the file name after the counter (TensorFlow 2 uses ".v2"). */
  fileSuffix?: string;
  /** Host name in the file name; default `os.hostname()`. */
  hostname?: string;
  /** Wall clock in seconds since the epoch, for events without an explicit time (tests pin it). */
  nowSecs?: () => number;
}

let fileCounter = 0;
const openWriters = new Set<EventWriter>();
let exitHooksInstalled = false;

function flushAllOpenWriters(): void {
  for (const writer of openWriters) {
    try {
      writer.flush();
    } catch {
      // At exit there is no one left to report to; the other writers must still get their turn.
    }
  }
}

function installExitHooks(): void {
  if (exitHooksInstalled) return;
  exitHooksInstalled = true;
  process.on("exit", flushAllOpenWriters);
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    const onSignal = (): void => {
      flushAllOpenWriters();
      // Adding a listener cancels Node's default "exit on signal"; restore it when we were the
      // only listener so Ctrl-C still stops a script.
      if (process.listenerCount(signal) === 1) {
        process.removeListener(signal, onSignal);
        process.kill(process.pid, signal);
      }
    };
    process.on(signal, onSignal);
  }
}

/**
 * The file name TensorFlow gives event files: `events.out.tfevents.<seconds>.<host>.<pid>.<n><suffix>`.
 *
 * @example formatEventFileName(1700000000, "vm", 42, 0) // "events.out.tfevents.1700000000.vm.42.0"
 */
export function formatEventFileName(
  timeSecs: number,
  hostname: string,
  pid: number,
  counter: number,
  suffix = "",
): string {
  return `events.out.tfevents.${Math.floor(timeSecs)}.${hostname}.${pid}.${counter}${suffix}`;
}

function assertStep(step: number, what: string): void {
  if (!Number.isSafeInteger(step) || step < 0) {
    throw new EventWriterError(`${what}: step ${step} is not usable; expected a non-negative integer`);
  }
}

/**
 * Writes one TensorBoard run: one event file in `runDir`, TFRecord framed, `brain.Event:2` first.
 * Records are queued and written whole (one write call per flush) on a timer, on `flush()`, on
 * `close()` and when the process exits (also on SIGINT/SIGTERM), so a killed process leaves a
 * file whose complete records all read back. Every summary carries its plugin metadata, with the
 * encodings TensorBoard's own writer uses (see summaryValues.ts).
 *
 * Create it with {@link createEventWriter}.
 */
export class EventWriter {
  /** Folder of this run (TensorBoard shows its path relative to the logdir as the run name). */
  readonly runDir: string;
  /** The event file being written. */
  readonly filePath: string;
  private fd: number | undefined;
  private pending: Buffer[] = [];
  private timer: NodeJS.Timeout | undefined;
  private readonly nowSecs: () => number;
  private recordsWritten = 0;

  /** @internal use {@link createEventWriter}. */
  constructor(runDir: string, options: EventWriterOptions = {}) {
    this.runDir = path.resolve(runDir);
    this.nowSecs = options.nowSecs ?? (() => Date.now() / 1000);
    fs.mkdirSync(this.runDir, { recursive: true });
    const hostname = (options.hostname ?? os.hostname()).replace(/[/\\]/g, "_");
    let name: string;
    // The counter makes names unique within a process; "wx" guards against other processes.
    for (;;) {
      name = formatEventFileName(this.nowSecs(), hostname, process.pid, fileCounter++, options.fileSuffix ?? "");
      try {
        this.fd = fs.openSync(path.join(this.runDir, name), "wx");
        break;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
      }
    }
    this.filePath = path.join(this.runDir, name);
    this.queueEvent({
      wall_time: this.nowSecs(),
      file_version: EVENT_FILE_VERSION,
      source_metadata: { writer: EVENT_SOURCE_WRITER },
    });
    this.flush();
    openWriters.add(this);
    installExitHooks();
    const intervalMs = options.flushIntervalMs ?? 2000;
    if (intervalMs > 0) {
      this.timer = setInterval(() => this.flush(), intervalMs);
      // A pending flush must not keep a finished script alive; the exit hook writes what is left.
      this.timer.unref();
    }
  }

  /** Whether `close()` was called. */
  get isClosed(): boolean {
    return this.fd === undefined;
  }

  /** Records written to disk so far (including the file_version record). */
  get recordCount(): number {
    return this.recordsWritten;
  }

  private queueEvent(event: Record<string, unknown>): void {
    if (this.fd === undefined)
      throw new EventWriterError(`event writer for ${this.filePath} is closed; expected an open writer`);
    const Event = lookupProtoType("Event");
    const bytes = Event.encode(Event.fromObject(event)).finish();
    this.pending.push(frameTfRecord(bytes));
  }

  /**
   * Queues summary values as one Event at `step`. The typed `add*` methods build the values;
   * use this for summaries they do not cover.
   *
   * @example writer.addSummaryValues([createScalarValue("lr", 1e-3)], 10)
   */
  addSummaryValues(values: SummaryValueObject[], step: number, wallTimeSecs = this.nowSecs()): void {
    assertStep(step, `summary ${values.map((v) => JSON.stringify(v.tag)).join(", ")}`);
    // Step 0 is left off the wire, as proto3 writers do (records then match TensorFlow's byte for byte).
    this.queueEvent({ wall_time: wallTimeSecs, ...(step === 0 ? {} : { step }), summary: { value: values } });
  }

  /**
   * A scalar (scalars dashboard).
   *
   * @example writer.addScalar("epoch_loss", 0.31, 3)
   */
  addScalar(tag: string, value: number, step: number, wallTimeSecs?: number): void {
    this.addSummaryValues([createScalarValue(tag, value)], step, wallTimeSecs);
  }

  /**
   * A histogram of `values` (histograms and distributions dashboards); non-finite values are left out.
   *
   * @example writer.addHistogram("dense/kernel", kernel.dataSync(), epoch)
   */
  addHistogram(
    tag: string,
    values: ArrayLike<number>,
    step: number,
    bucketCount = DEFAULT_HISTOGRAM_BUCKET_COUNT,
    wallTimeSecs?: number,
  ): void {
    this.addSummaryValues([createHistogramValue(tag, values, bucketCount)], step, wallTimeSecs);
  }

  /**
   * Already encoded images (PNG/JPEG bytes) of one size (images dashboard).
   *
   * @example writer.addEncodedImages("samples", [png], 224, 224, 0)
   */
  addEncodedImages(
    tag: string,
    encoded: readonly Uint8Array[],
    widthPx: number,
    heightPx: number,
    step: number,
    wallTimeSecs?: number,
  ): void {
    this.addSummaryValues([createImageValue(tag, encoded, widthPx, heightPx)], step, wallTimeSecs);
  }

  /**
   * Raw RGB/RGBA/grey images of one size, encoded as PNG with sharp (images dashboard).
   *
   * @example await writer.addImages("samples", [{ pixels, widthPx: 224, heightPx: 224, channels: 3 }], 0)
   */
  async addImages(
    tag: string,
    images: readonly RawImage[],
    step: number,
    wallTimeSecs = this.nowSecs(),
  ): Promise<void> {
    const sizes = new Set(images.map((im) => `${im.widthPx}x${im.heightPx}`));
    if (sizes.size > 1) {
      throw new EventWriterError(
        `images for ${JSON.stringify(tag)} have sizes ${[...sizes].join(", ")}: expected one size per summary`,
      );
    }
    const pngs = await Promise.all(images.map(encodeRawImageToPng));
    this.addEncodedImages(tag, pngs, images[0]?.widthPx ?? 0, images[0]?.heightPx ?? 0, step, wallTimeSecs);
  }

  /**
   * Markdown text (text dashboard).
   *
   * @example writer.addText("config", "| lr | 1e-3 |\n|---|---|", 0)
   */
  addText(tag: string, markdown: string, step: number, wallTimeSecs?: number): void {
    this.addSummaryValues([createTextValue(tag, markdown)], step, wallTimeSecs);
  }

  /**
   * A precision-recall curve from 0/1 labels and positive-class probabilities (PR curves dashboard).
   *
   * @example writer.addPrCurve("pr/malignant", yTrue, pMalignant, epoch)
   */
  addPrCurve(
    tag: string,
    labels: ArrayLike<number | boolean>,
    probabilities: ArrayLike<number>,
    step: number,
    numThresholds = DEFAULT_PR_CURVE_THRESHOLD_COUNT,
    wallTimeSecs?: number,
  ): void {
    this.addSummaryValues(
      [createPrCurveValue(tag, computePrCurve(labels, probabilities, numThresholds))],
      step,
      wallTimeSecs,
    );
  }

  /**
   * The model's Keras graph (graphs dashboard, "keras" tag) from `model.toJSON(null, false)`.
   *
   * @example writer.addKerasModel(model.toJSON(null, false) as object)
   */
  addKerasModel(modelJson: string | object, step = 0, wallTimeSecs?: number): void {
    this.addSummaryValues([createKerasModelValue(modelJson)], step, wallTimeSecs);
  }

  /**
   * Starts an hparams session in this run: the hyperparameter values it uses.
   *
   * @example writer.addHparamsSessionStart({ lr: 1e-3, backbone: "mobilenet_v2", augment: true })
   */
  addHparamsSessionStart(
    hparams: Readonly<Record<string, HParamValue>>,
    options: { groupName?: string; startTimeSecs?: number } = {},
  ): void {
    const start = options.startTimeSecs ?? this.nowSecs();
    this.addSummaryValues([createHparamsSessionStartValue(hparams, options.groupName ?? "", start)], 0, start);
  }

  /**
   * Ends the hparams session of this run.
   *
   * @example writer.addHparamsSessionEnd("success", lastEpoch)
   */
  addHparamsSessionEnd(status: HParamsSessionStatus, step = 0, endTimeSecs = this.nowSecs()): void {
    this.addSummaryValues([createHparamsSessionEndValue(status, endTimeSecs)], step, endTimeSecs);
  }

  /**
   * Writes every queued record with one write call. Called by the timer, `close()` and at exit.
   *
   * @example writer.flush()
   */
  flush(): void {
    if (this.fd === undefined || this.pending.length === 0) return;
    const records = this.pending;
    this.pending = [];
    const chunk = records.length === 1 ? records[0] : Buffer.concat(records);
    let offset = 0;
    while (offset < chunk.length) offset += fs.writeSync(this.fd, chunk, offset, chunk.length - offset);
    this.recordsWritten += records.length;
  }

  /**
   * Flushes and closes the file; later `add*` calls throw {@link EventWriterError}. Idempotent.
   *
   * @example writer.close()
   */
  close(): void {
    if (this.fd === undefined) return;
    this.flush();
    if (this.timer) clearInterval(this.timer);
    fs.closeSync(this.fd);
    this.fd = undefined;
    openWriters.delete(this);
  }
}

/**
 * Opens a new event file in `runDir` (created if missing) and returns its writer. One writer per
 * run folder; Keras' convention is `<logdir>/train` and `<logdir>/validation`.
 *
 * @example
 * const writer = createEventWriter("logs/2024-01-01/train");
 * writer.addScalar("epoch_loss", 0.5, 0);
 * writer.close();
 */
export function createEventWriter(runDir: string, options: EventWriterOptions = {}): EventWriter {
  return new EventWriter(runDir, options);
}

/**
 * Writes the hparams experiment summary (hparams, their domains, and the metrics to compare) in
 * its own event file in `logdir`, the parent folder of the session runs, as TensorBoard's
 * `hparams_config` does. Returns the file path.
 *
 * @example
 * writeHparamsExperiment("logs", [{ name: "lr", values: [1e-3, 1e-4] }], [{ tag: "epoch_auc", group: "validation" }]);
 */
export function writeHparamsExperiment(
  logdir: string,
  hparams: readonly HParamSpec[],
  metrics: readonly HParamMetricSpec[],
  options: EventWriterOptions & { timeCreatedSecs?: number } = {},
): string {
  const writer = createEventWriter(logdir, { ...options, flushIntervalMs: 0 });
  const created = options.timeCreatedSecs ?? (options.nowSecs ?? (() => Date.now() / 1000))();
  writer.addSummaryValues([createHparamsExperimentValue(hparams, metrics, created)], 0, created);
  writer.close();
  return writer.filePath;
}
