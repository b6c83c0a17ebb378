import fs from "node:fs";
import { MelanomaLabError } from "../util/errors.js";
import { lookupProtoEnum, lookupProtoType } from "./protoSchema.js";
import { decodeTensorProto, toPlainNumber, type DecodedTensor } from "./tensorProto.js";
import { splitTfRecords, type TfRecordProblem, type TfRecordProblemKind } from "./tfrecord.js";

/** A record TensorBoard could not use, with the file and the byte offset of its header. */
export interface EventFileProblem {
  file: string;
  byteOffset: number;
  kind: TfRecordProblemKind | "undecodable-event";
  reason: string;
}

/**
 * Thrown by {@link assertEventFileIntact} (and by readers in strict mode) when an event file has a
 * corrupt or incomplete record. `file` and `byteOffset` say where.
 */
export class EventFileCorruptError extends MelanomaLabError {
  readonly file: string;
  readonly byteOffset: number;
  readonly kind: EventFileProblem["kind"];
  constructor(problem: EventFileProblem) {
    super(`corrupt TensorBoard event file ${problem.reason}; expected intact TFRecord framing with valid CRC32C`);
    this.file = problem.file;
    this.byteOffset = problem.byteOffset;
    this.kind = problem.kind;
  }
}

/** SummaryMetadata as written in the file (before any TensorBoard migration). */
export interface DecodedSummaryMetadata {
  pluginName: string;
  pluginContent: Uint8Array;
  displayName: string;
  description: string;
  dataClass: string;
}

/** Legacy HistogramProto (TF1 `tf.summary.histogram`, PyTorch, tensorboardX). */
export interface DecodedHistogramProto {
  min: number;
  max: number;
  num: number;
  sum: number;
  sumSquares: number;
  bucketLimit: number[];
  bucket: number[];
}

/** Legacy Summary.Image. */
export interface DecodedLegacyImage {
  widthPx: number;
  heightPx: number;
  colorspace: number;
  encodedImage: Uint8Array;
}

/** Which `Summary.Value.value` oneof field was set. */
export type SummaryValueKind =
  "simple_value" | "histo" | "image" | "audio" | "tensor" | "obsolete_old_style_histogram" | "none";

/** One Summary.Value as written in the file. */
export interface DecodedSummaryValue {
  tag: string;
  nodeName: string;
  kind: SummaryValueKind;
  /** Absent when the value carries no metadata (TensorFlow writes it only with a tag's first value). */
  metadata?: DecodedSummaryMetadata;
  simpleValue?: number;
  histo?: DecodedHistogramProto;
  image?: DecodedLegacyImage;
  tensor?: DecodedTensor;
}

/** Which `Event.what` oneof field was set. */
export type EventKind =
  | "file_version"
  | "graph_def"
  | "summary"
  | "log_message"
  | "session_log"
  | "tagged_run_metadata"
  | "meta_graph_def"
  | "none";

/** One decoded Event record. */
export interface DecodedEvent {
  /** Byte offset of the record's header in its file. */
  byteOffset: number;
  wallTimeSecs: number;
  step: number;
  kind: EventKind;
  fileVersion?: string;
  sourceWriter?: string;
  summaryValues?: DecodedSummaryValue[];
  graphDef?: Uint8Array;
  metaGraphDef?: Uint8Array;
  /** SessionLog status name, e.g. "START". */
  sessionLogStatus?: string;
}

/** Result of {@link readEventFile}. */
export interface EventFileContents {
  file: string;
  byteLength: number;
  /** Records that passed both CRC checks (decoded or not). */
  recordCount: number;
  /** Bytes up to the end of the last good record. */
  bytesConsumed: number;
  events: DecodedEvent[];
  /** Corrupt, truncated or undecodable records. Reading the file stops at a framing problem. */
  problems: EventFileProblem[];
}

let enumNames: { dataClass: Record<number, string>; sessionStatus: Record<number, string> } | undefined;

function getEnumNames() {
  if (!enumNames) {
    const invert = (values: Record<string, number>) =>
      Object.fromEntries(Object.entries(values).map(([k, v]) => [v, k])) as Record<number, string>;
    enumNames = {
      dataClass: invert(lookupProtoEnum("DataClass").values),
      sessionStatus: invert(lookupProtoType("SessionLog").lookupEnum("SessionStatus").values),
    };
  }
  return enumNames;
}

function decodeSummaryValue(v: any): DecodedSummaryValue {
  const names = getEnumNames();
  const kind: SummaryValueKind = (v.value as SummaryValueKind | undefined) ?? "none";
  const out: DecodedSummaryValue = { tag: v.tag ?? "", nodeName: v.node_name ?? "", kind };
  if (v.metadata) {
    out.metadata = {
      pluginName: v.metadata.plugin_data?.plugin_name ?? "",
      pluginContent: v.metadata.plugin_data?.content ?? new Uint8Array(0),
      displayName: v.metadata.display_name ?? "",
      description: v.metadata.summary_description ?? "",
      dataClass: names.dataClass[Number(v.metadata.data_class ?? 0)] ?? "DATA_CLASS_UNKNOWN",
    };
  }
  if (kind === "simple_value") out.simpleValue = Number(v.simple_value);
  if (kind === "histo") {
    const h = v.histo;
    out.histo = {
      min: h.min ?? 0,
      max: h.max ?? 0,
      num: h.num ?? 0,
      sum: h.sum ?? 0,
      sumSquares: h.sum_squares ?? 0,
      bucketLimit: [...(h.bucket_limit ?? [])],
      bucket: [...(h.bucket ?? [])],
    };
  }
  if (kind === "image") {
    const im = v.image;
    out.image = {
      widthPx: im.width ?? 0,
      heightPx: im.height ?? 0,
      colorspace: im.colorspace ?? 0,
      encodedImage: im.encoded_image_string ?? new Uint8Array(0),
    };
  }
  if (kind === "tensor") out.tensor = decodeTensorProto(v.tensor);
  return out;
}

/**
 * Decodes one serialized Event message.
 *
 * @example decodeEvent(record.data, record.byteOffset).kind // "summary"
 */
export function decodeEvent(data: Uint8Array, byteOffset: number): DecodedEvent {
  const msg: any = lookupProtoType("Event").decode(data);
  const kind: EventKind = (msg.what as EventKind | undefined) ?? "none";
  const event: DecodedEvent = {
    byteOffset,
    wallTimeSecs: msg.wall_time ?? 0,
    step: toPlainNumber(msg.step),
    kind,
  };
  if (msg.source_metadata) event.sourceWriter = msg.source_metadata.writer ?? "";
  if (kind === "file_version") event.fileVersion = msg.file_version;
  if (kind === "summary") event.summaryValues = (msg.summary?.value ?? []).map(decodeSummaryValue);
  if (kind === "graph_def") event.graphDef = msg.graph_def;
  if (kind === "meta_graph_def") event.metaGraphDef = msg.meta_graph_def;
  if (kind === "session_log")
    event.sessionLogStatus = getEnumNames().sessionStatus[Number(msg.session_log?.status ?? 0)];
  return event;
}

/**
 * Decodes TFRecord-framed event bytes (the content of an `events.out.tfevents.*` file). Both CRCs
 * of every record are verified. At a corrupt or truncated record, reading of this file stops, as
 * TensorBoard's record reader does (a bad length leaves no way to find the next record); the
 * problem is returned with the byte offset of that record. A record that passes its CRCs but is
 * not a valid Event message is reported and skipped.
 *
 * @example const { events, problems } = decodeEventFileBytes(fs.readFileSync(f), f)
 */
export function decodeEventFileBytes(bytes: Uint8Array, file: string): EventFileContents {
  const split = splitTfRecords(bytes, file);
  const events: DecodedEvent[] = [];
  const problems: EventFileProblem[] = [];
  for (const record of split.records) {
    try {
      events.push(decodeEvent(record.data, record.byteOffset));
    } catch (error) {
      problems.push({
        file,
        byteOffset: record.byteOffset,
        kind: "undecodable-event",
        reason: `${file} at byte ${record.byteOffset}: record of ${record.data.length} bytes is not an Event message (${(error as Error).message})`,
      });
    }
  }
  if (split.problem) problems.push(split.problem as TfRecordProblem);
  return {
    file,
    byteLength: bytes.byteLength,
    recordCount: split.records.length,
    bytesConsumed: split.bytesConsumed,
    events,
    problems,
  };
}

/**
 * Reads one event file: every complete record whose CRCs check out, decoded, plus the problems
 * found (file + byte offset). Never throws for corrupt content; see {@link assertEventFileIntact}.
 *
 * @example
 * const { events, problems } = readEventFile("logs/train/events.out.tfevents.1700000000.host.1.0")
 */
export function readEventFile(file: string): EventFileContents {
  return decodeEventFileBytes(fs.readFileSync(file), file);
}

/**
 * Throws {@link EventFileCorruptError} for the first problem of a read event file.
 *
 * @example assertEventFileIntact(readEventFile(f))
 */
export function assertEventFileIntact(contents: EventFileContents): void {
  if (contents.problems.length > 0) throw new EventFileCorruptError(contents.problems[0]);
}
