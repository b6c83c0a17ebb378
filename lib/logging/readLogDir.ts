import fs from "node:fs";
import path from "node:path";
import { MelanomaLabError } from "../util/errors.js";
import {
  readEventFile,
  type DecodedEvent,
  type DecodedSummaryMetadata,
  type DecodedSummaryValue,
  type EventFileProblem,
} from "./eventFile.js";
import { decodeHparamsPluginContent, type DecodedHparamsPluginData } from "./hparamsProto.js";
import { describeEncodedImage, type EncodedImageInfo } from "./imageInfo.js";
import { lookupProtoType } from "./protoSchema.js";
import type { DecodedTensor } from "./tensorProto.js";

/** A logdir that does not exist or is not a folder. */
export class LogDirNotFoundError extends MelanomaLabError {}

/** One tensor of a time series, after TensorBoard's legacy-to-tensor migration. */
export interface TensorPoint {
  step: number;
  wallTimeSecs: number;
  tensor: DecodedTensor;
}

/** The first SummaryMetadata seen for a tag (TensorBoard keeps only the first). */
export interface TimeSeriesMetadata extends DecodedSummaryMetadata {
  tag: string;
}

/** Scalar point as the Scalars dashboard plots it. */
export interface ScalarPoint {
  step: number;
  wallTimeSecs: number;
  value: number;
}

/** One histogram bucket: [leftEdge, rightEdge) holding `count` values. */
export interface HistogramBucket {
  leftEdge: number;
  rightEdge: number;
  count: number;
}

/** A histogram at one step. */
export interface HistogramStep {
  step: number;
  wallTimeSecs: number;
  buckets: HistogramBucket[];
  totalCount: number;
}

/** Images logged at one step: the declared size and every encoded image's header info. */
export interface ImageStep {
  step: number;
  wallTimeSecs: number;
  declaredWidthPx: number;
  declaredHeightPx: number;
  images: EncodedImageInfo[];
  /** The encoded image bytes (PNG/JPEG), same order as `images`. */
  encodedImages: Uint8Array[];
}

/** Text logged at one step (markdown), flattened row-major; `shape` [] for a single string. */
export interface TextStep {
  step: number;
  wallTimeSecs: number;
  shape: number[];
  values: string[];
}

/** A precision-recall curve at one step: one entry per threshold. */
export interface PrCurveStep {
  step: number;
  wallTimeSecs: number;
  truePositives: number[];
  falsePositives: number[];
  trueNegatives: number[];
  falseNegatives: number[];
  precision: number[];
  recall: number[];
}

/** A graph at one step (graph_def event or Keras model config). */
export interface GraphStep {
  step: number;
  wallTimeSecs: number;
  /** For GraphDefs: node count and names; for Keras model configs: the JSON text. */
  graphs: Array<{ byteLength: number; nodeCount?: number; nodeNames?: string[]; kerasModelJson?: string }>;
}

/** Series of one tag, with the metadata TensorBoard keeps. */
export interface TagSeries<T> {
  tag: string;
  displayName: string;
  description: string;
  points: T[];
}

/** An hparams summary: which part (experiment, session start/end) and its JSON. */
export interface HparamsEntry extends DecodedHparamsPluginData {
  tag: string;
  step: number;
}

/** Everything TensorBoard would show for one run (a folder holding event files). */
export interface RunContents {
  /** Path relative to the logdir with "/" separators; "." for the logdir itself. */
  name: string;
  dir: string;
  files: string[];
  /** Wall time of the first event (TensorBoard's run start time), undefined for an empty run. */
  startTimeSecs?: number;
  sourceWriter?: string;
  /** Tags per plugin name ("scalars", "histograms", "images", "text", "hparams", "pr_curves", "graphs", …). */
  tagsByPlugin: Record<string, string[]>;
  metadataByTag: Record<string, TimeSeriesMetadata>;
  /**
   * All tensors per tag after migration and orphan purging (the raw material of every series
   * below; `images` and `graphs` keep only the first entry per step, as TensorBoard serves them).
   */
  tensorsByTag: Record<string, TensorPoint[]>;
  scalars: Record<string, TagSeries<ScalarPoint>>;
  histograms: Record<string, TagSeries<HistogramStep>>;
  images: Record<string, TagSeries<ImageStep>>;
  text: Record<string, TagSeries<TextStep>>;
  prCurves: Record<string, TagSeries<PrCurveStep>>;
  graphs: Record<string, TagSeries<GraphStep>>;
  hparams: Record<string, HparamsEntry>;
  /** Points TensorBoard drops after a restart (SessionLog.START) or out-of-order step. */
  purgedPointCount: number;
  problems: EventFileProblem[];
}

/** Result of {@link readLogDir}. */
export interface LogDirContents {
  logdir: string;
  runs: RunContents[];
  /** Corrupt/truncated records of all runs (reading a file stops at one; other files still load). */
  problems: EventFileProblem[];
}

const PLUGIN_DATA_CLASS: Record<string, string> = {
  scalars: "DATA_CLASS_SCALAR",
  histograms: "DATA_CLASS_TENSOR",
  images: "DATA_CLASS_BLOB_SEQUENCE",
  audio: "DATA_CLASS_BLOB_SEQUENCE",
  text: "DATA_CLASS_TENSOR",
  hparams: "DATA_CLASS_TENSOR",
  pr_curves: "DATA_CLASS_TENSOR",
  graph_run_metadata: "DATA_CLASS_BLOB_SEQUENCE",
  graph_run_metadata_graph: "DATA_CLASS_BLOB_SEQUENCE",
  graph_keras_model: "DATA_CLASS_BLOB_SEQUENCE",
};

const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder();

function makeMetadata(
  pluginName: string,
  displayName: string,
  description: string,
  pluginContent: Uint8Array = new Uint8Array(0),
): DecodedSummaryMetadata {
  return { pluginName, pluginContent, displayName, description, dataClass: "DATA_CLASS_UNKNOWN" };
}

/**
 * TensorBoard's data_compat step: legacy simple_value/histo/image/audio values become tensors
 * with plugin metadata. Legacy histograms become float32 [k,3] buckets with empty end buckets
 * dropped and min/max as the outer edges, exactly as TensorBoard converts them.
 */
function migrateLegacyValue(value: DecodedSummaryValue): DecodedSummaryValue {
  const displayName = value.metadata?.displayName || value.tag;
  const description = value.metadata?.description ?? "";
  if (value.kind === "simple_value") {
    return {
      tag: value.tag,
      nodeName: value.nodeName,
      kind: "tensor",
      metadata: makeMetadata("scalars", displayName, description),
      tensor: { dtype: "DT_FLOAT", shape: [], numbers: Float64Array.of(Math.fround(value.simpleValue ?? 0)) },
    };
  }
  if (value.kind === "histo" && value.histo) {
    const { bucket, bucketLimit, min, max } = value.histo;
    const n = bucket.length;
    let start = 0;
    while (start < n && !(bucket[start] > 0)) start++;
    let end = n - 1;
    while (end >= 0 && !(bucket[end] > 0)) end--;
    const rows: number[] = [];
    if (start <= end) {
      for (let i = start; i <= end; i++) {
        const left = i === start ? min : bucketLimit[i - 1];
        const right = i === end ? max : bucketLimit[i];
        rows.push(Math.fround(left), Math.fround(right), Math.fround(bucket[i]));
      }
    }
    return {
      tag: value.tag,
      nodeName: value.nodeName,
      kind: "tensor",
      metadata: makeMetadata("histograms", displayName, description),
      tensor: { dtype: "DT_FLOAT", shape: [rows.length / 3, 3], numbers: Float64Array.from(rows) },
    };
  }
  if (value.kind === "image" && value.image) {
    const content: Uint8Array = lookupProtoType("ImagePluginData")
      .encode({ version: 0, converted_to_tensor: true })
      .finish();
    return {
      tag: value.tag,
      nodeName: value.nodeName,
      kind: "tensor",
      metadata: makeMetadata("images", displayName, description, content),
      tensor: {
        dtype: "DT_STRING",
        shape: [3],
        strings: [
          textEncoder.encode(String(value.image.widthPx)),
          textEncoder.encode(String(value.image.heightPx)),
          value.image.encodedImage,
        ],
      },
    };
  }
  return value;
}

interface RunAccumulator {
  initialMetadata: Map<string, DecodedSummaryMetadata | undefined>;
  metadataByTag: Map<string, TimeSeriesMetadata>;
  tensorsByTag: Map<string, TensorPoint[]>;
  fileVersion?: number;
  seenSessionStart: boolean;
  mostRecentStep: number;
  firstEventWallTimeSecs?: number;
  sourceWriter?: string;
  purgedPointCount: number;
}

/** TensorBoard's dataclass_compat step: set data_class by plugin (using the tag's first metadata). */
function migrateDataClass(value: DecodedSummaryValue, acc: RunAccumulator): DecodedSummaryValue {
  if (!acc.initialMetadata.has(value.tag))
    acc.initialMetadata.set(value.tag, value.metadata ? { ...value.metadata } : undefined);
  const initial = acc.initialMetadata.get(value.tag);
  if (!initial || initial.dataClass !== "DATA_CLASS_UNKNOWN") return value;
  const dataClass = PLUGIN_DATA_CLASS[initial.pluginName];
  if (!dataClass) return value;
  const out: DecodedSummaryValue = { ...value };
  if (value.metadata) out.metadata = { ...value.metadata, dataClass };
  if (initial.pluginName === "hparams" && !out.tensor) {
    out.tensor = { dtype: "DT_FLOAT", shape: [], numbers: Float64Array.of(0) };
    out.kind = "tensor";
  }
  if (
    dataClass === "DATA_CLASS_BLOB_SEQUENCE" &&
    initial.pluginName.startsWith("graph_") &&
    out.tensor &&
    out.tensor.shape.length === 0
  ) {
    out.tensor = { ...out.tensor, shape: [1] };
  }
  return out;
}

function purgeWhere(acc: RunAccumulator, keep: (p: TensorPoint) => boolean, tags?: string[]): void {
  for (const tag of tags ?? [...acc.tensorsByTag.keys()]) {
    const points = acc.tensorsByTag.get(tag);
    if (!points) continue;
    const kept = points.filter(keep);
    acc.purgedPointCount += points.length - kept.length;
    acc.tensorsByTag.set(tag, kept);
  }
}

function processEvent(event: DecodedEvent, values: DecodedSummaryValue[] | undefined, acc: RunAccumulator): void {
  if (acc.firstEventWallTimeSecs === undefined) acc.firstEventWallTimeSecs = event.wallTimeSecs;
  if (event.sourceWriter !== undefined) acc.sourceWriter = event.sourceWriter;
  if (event.fileVersion !== undefined) {
    const version = Number(event.fileVersion.split(":").pop());
    if (Number.isFinite(version)) acc.fileVersion = version;
  }
  // Orphan purging after a crash/restart, as TensorBoard does with purge_orphaned_data (default on).
  if (acc.fileVersion !== undefined && acc.fileVersion >= 2) {
    if (event.sessionLogStatus === "START") {
      if (!acc.seenSessionStart) acc.seenSessionStart = true;
      else purgeWhere(acc, (p) => p.step < event.step);
    }
  } else if (values && event.step < acc.mostRecentStep) {
    purgeWhere(
      acc,
      (p) => p.step < event.step,
      values.map((v) => v.tag),
    );
  }
  if (values) acc.mostRecentStep = event.step;
  for (const value of values ?? []) {
    if (value.metadata && !acc.metadataByTag.has(value.tag))
      acc.metadataByTag.set(value.tag, { tag: value.tag, ...value.metadata });
    if (value.kind === "tensor" && value.tensor) {
      const tag = value.tag || value.nodeName;
      let points = acc.tensorsByTag.get(tag);
      if (!points) acc.tensorsByTag.set(tag, (points = []));
      points.push({ step: event.step, wallTimeSecs: event.wallTimeSecs, tensor: value.tensor });
    }
  }
}

function accumulateEvent(event: DecodedEvent, acc: RunAccumulator): void {
  if (event.kind === "summary") {
    const values = (event.summaryValues ?? []).map((v) => migrateDataClass(migrateLegacyValue(v), acc));
    processEvent(event, values, acc);
    return;
  }
  processEvent(event, undefined, acc);
  if (event.kind === "graph_def" && event.graphDef) {
    // TensorBoard also exposes each graph_def event as a "__run_graph__" blob-sequence summary.
    const graphValue: DecodedSummaryValue = {
      tag: "__run_graph__",
      nodeName: "",
      kind: "tensor",
      metadata: { ...makeMetadata("graphs", "", ""), dataClass: "DATA_CLASS_BLOB_SEQUENCE" },
      tensor: { dtype: "DT_STRING", shape: [1], strings: [event.graphDef] },
    };
    processEvent({ ...event, kind: "summary" }, [graphValue], acc);
  }
}

/**
 * Blob sequences (images, graphs, audio) keep one entry per step, the first one written, in step
 * order: TensorBoard's data provider serves them that way (a restarted run rewrites step 0).
 */
function keepFirstPerStep(points: TensorPoint[]): TensorPoint[] {
  const byStep = new Map<number, TensorPoint>();
  for (const p of points) if (!byStep.has(p.step)) byStep.set(p.step, p);
  return [...byStep.values()].sort((a, b) => a.step - b.step);
}

function numbersOf(tensor: DecodedTensor): Float64Array {
  return tensor.numbers ?? new Float64Array(0);
}

function describeGraphBlob(bytes: Uint8Array, pluginName: string): GraphStep["graphs"][number] {
  if (pluginName === "graph_keras_model")
    return { byteLength: bytes.byteLength, kerasModelJson: textDecoder.decode(bytes) };
  try {
    const graph = lookupProtoType("GraphDef").decode(bytes) as unknown as { node?: { name?: string }[] };
    const names = (graph.node ?? []).map((n) => n.name ?? "");
    return { byteLength: bytes.byteLength, nodeCount: names.length, nodeNames: names };
  } catch {
    return { byteLength: bytes.byteLength };
  }
}

function buildRunContents(
  name: string,
  dir: string,
  files: string[],
  acc: RunAccumulator,
  problems: EventFileProblem[],
): RunContents {
  const run: RunContents = {
    name,
    dir,
    files,
    startTimeSecs: acc.firstEventWallTimeSecs,
    sourceWriter: acc.sourceWriter,
    tagsByPlugin: {},
    metadataByTag: Object.fromEntries(acc.metadataByTag),
    tensorsByTag: Object.fromEntries(acc.tensorsByTag),
    scalars: {},
    histograms: {},
    images: {},
    text: {},
    prCurves: {},
    graphs: {},
    hparams: {},
    purgedPointCount: acc.purgedPointCount,
    problems,
  };
  for (const [tag, metadata] of acc.metadataByTag) {
    const plugin = metadata.pluginName;
    if (!plugin) continue;
    (run.tagsByPlugin[plugin] ??= []).push(tag);
    const points = acc.tensorsByTag.get(tag) ?? [];
    const base = { tag, displayName: metadata.displayName, description: metadata.description };
    if (plugin === "scalars") {
      run.scalars[tag] = {
        ...base,
        points: points.map((p) => ({ step: p.step, wallTimeSecs: p.wallTimeSecs, value: numbersOf(p.tensor)[0] })),
      };
    } else if (plugin === "histograms") {
      run.histograms[tag] = {
        ...base,
        points: points.map((p) => {
          const v = numbersOf(p.tensor);
          const buckets: HistogramBucket[] = [];
          for (let i = 0; i + 2 < v.length; i += 3)
            buckets.push({ leftEdge: v[i], rightEdge: v[i + 1], count: v[i + 2] });
          return {
            step: p.step,
            wallTimeSecs: p.wallTimeSecs,
            buckets,
            totalCount: buckets.reduce((s, b) => s + b.count, 0),
          };
        }),
      };
    } else if (plugin === "images") {
      run.images[tag] = {
        ...base,
        points: keepFirstPerStep(points).map((p) => {
          const blobs = p.tensor.strings ?? [];
          const encodedImages = blobs.slice(2);
          return {
            step: p.step,
            wallTimeSecs: p.wallTimeSecs,
            declaredWidthPx: Number(textDecoder.decode(blobs[0] ?? new Uint8Array(0))),
            declaredHeightPx: Number(textDecoder.decode(blobs[1] ?? new Uint8Array(0))),
            images: encodedImages.map(describeEncodedImage),
            encodedImages,
          };
        }),
      };
    } else if (plugin === "text") {
      run.text[tag] = {
        ...base,
        points: points.map((p) => ({
          step: p.step,
          wallTimeSecs: p.wallTimeSecs,
          shape: p.tensor.shape,
          values: (p.tensor.strings ?? []).map((b) => textDecoder.decode(b)),
        })),
      };
    } else if (plugin === "pr_curves") {
      run.prCurves[tag] = {
        ...base,
        points: points.map((p) => {
          const v = Array.from(numbersOf(p.tensor));
          const n = p.tensor.shape[1] ?? 0;
          const row = (i: number) => v.slice(i * n, (i + 1) * n);
          return {
            step: p.step,
            wallTimeSecs: p.wallTimeSecs,
            truePositives: row(0),
            falsePositives: row(1),
            trueNegatives: row(2),
            falseNegatives: row(3),
            precision: row(4),
            recall: row(5),
          };
        }),
      };
    } else if (plugin === "graphs" || plugin === "graph_keras_model") {
      run.graphs[tag] = {
        ...base,
        points: keepFirstPerStep(points).map((p) => ({
          step: p.step,
          wallTimeSecs: p.wallTimeSecs,
          graphs: (p.tensor.strings ?? []).map((b) => describeGraphBlob(b, plugin)),
        })),
      };
    } else if (plugin === "hparams") {
      run.hparams[tag] = {
        tag,
        step: points.length ? points[points.length - 1].step : 0,
        ...decodeHparamsPluginContent(metadata.pluginContent),
      };
    }
  }
  return run;
}

/** Files of a folder TensorBoard treats as event files (name contains "tfevents"), sorted. */
export function listEventFiles(dir: string): string[] {
  return fs
    .readdirSync(dir, { withFileTypes: true })
    .filter((e) => e.isFile() && e.name.includes("tfevents"))
    .map((e) => path.join(dir, e.name))
    .sort();
}

/**
 * Reads one run folder the way TensorBoard loads it: its event files in name order, legacy
 * summaries migrated to tensors, first metadata per tag kept, orphaned points purged after a
 * restart. Corrupt records end reading of their file (reported in `problems`), the next file
 * still loads.
 *
 * @example const run = readRunDir("logs/train"); run.scalars["epoch_loss"].points
 */
export function readRunDir(dir: string, name = path.basename(dir)): RunContents {
  const files = listEventFiles(dir);
  const acc: RunAccumulator = {
    initialMetadata: new Map(),
    metadataByTag: new Map(),
    tensorsByTag: new Map(),
    seenSessionStart: false,
    mostRecentStep: -1,
    purgedPointCount: 0,
  };
  const problems: EventFileProblem[] = [];
  for (const file of files) {
    const contents = readEventFile(file);
    problems.push(...contents.problems);
    for (const event of contents.events) accumulateEvent(event, acc);
  }
  return buildRunContents(name, dir, files, acc, problems);
}

/**
 * Reads a TensorBoard logdir: every folder (the logdir itself included) that directly holds
 * `*tfevents*` files is a run, named by its path relative to the logdir ("." for the logdir).
 * Runs are sorted by name; each gives typed series per plugin and tag.
 *
 * @example
 * const { runs } = readLogDir("logs/fit-2026-01-01");
 * for (const run of runs) console.log(run.name, run.tagsByPlugin);
 */
export function readLogDir(logdir: string): LogDirContents {
  if (!fs.existsSync(logdir) || !fs.statSync(logdir).isDirectory()) {
    throw new LogDirNotFoundError(
      `logdir ${logdir} does not exist or is not a folder; expected a folder holding run subfolders with events.out.tfevents.* files`,
    );
  }
  const runDirs: string[] = [];
  const walk = (dir: string) => {
    const entries = fs.readdirSync(dir, { withFileTypes: true });
    if (entries.some((e) => e.isFile() && e.name.includes("tfevents"))) runDirs.push(dir);
    for (const e of entries) if (e.isDirectory()) walk(path.join(dir, e.name));
  };
  walk(logdir);
  const runs = runDirs
    .map((dir) => readRunDir(dir, path.relative(logdir, dir).split(path.sep).join("/") || "."))
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return { logdir, runs, problems: runs.flatMap((r) => r.problems) };
}
