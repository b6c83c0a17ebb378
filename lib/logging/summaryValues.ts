import sharp from "sharp";
import { MelanomaLabError, UnknownNameError } from "../util/errors.js";
import { lookupProtoType } from "./protoSchema.js";
import { encodeNumericTensor, encodeStringTensor } from "./tensorProto.js";

/**
 * A Summary.Value as a plain object with the .proto's snake_case field names, ready for
 * protobufjs (`lookupProtoType("Summary").fromObject({ value: [v] })`).
 */
export type SummaryValueObject = Record<string, unknown>;

/** An input to a summary encoder that TensorBoard could not display (wrong size, range, type). */
export class SummaryInputError extends MelanomaLabError {}

/** Plugin names TensorBoard dispatches on (tensorboard/plugins/<name>/metadata.py). */
export const PLUGIN_NAMES = {
  scalars: "scalars",
  histograms: "histograms",
  images: "images",
  text: "text",
  prCurves: "pr_curves",
  hparams: "hparams",
  kerasModel: "graph_keras_model",
} as const;

/** Tags the hparams plugin looks for (tensorboard/plugins/hparams/metadata.py). */
export const HPARAMS_TAGS = {
  experiment: "_hparams_/experiment",
  sessionStartInfo: "_hparams_/session_start_info",
  sessionEndInfo: "_hparams_/session_end_info",
} as const;

/** Number of histogram buckets TensorFlow 2 and TensorBoard use by default. */
export const DEFAULT_HISTOGRAM_BUCKET_COUNT = 30;
/** Number of PR-curve thresholds TensorBoard's pr_curves summary uses by default. */
export const DEFAULT_PR_CURVE_THRESHOLD_COUNT = 201;
/** pr_curves' floor on precision/recall denominators (tensorboard/plugins/pr_curve/summary.py). */
const PR_CURVE_MINIMUM_COUNT = 1e-7;

const DATA_CLASS_BLOB_SEQUENCE = 3;
const EMPTY = new Uint8Array(0);
const utf8 = new TextEncoder();

function assertTag(tag: string): void {
  if (typeof tag !== "string" || tag.length === 0) {
    throw new SummaryInputError(`summary tag ${JSON.stringify(tag)} is not usable: expected a non-empty string`);
  }
}

/**
 * Proto3 leaves fields at their default ("", 0, false, empty bytes) off the wire; protobufjs writes
 * any property that is set, so drop them to produce the bytes TensorFlow's writers produce.
 * Only for plain fields: a oneof member (google.protobuf.Value's number_value 0) must stay.
 */
function dropDefaults(fields: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(
    Object.entries(fields).filter(
      ([, v]) =>
        !(v === "" || v === 0 || v === false || v === undefined || (v instanceof Uint8Array && v.length === 0)),
    ),
  );
}

function metadataFor(
  pluginName: string,
  content: Uint8Array = EMPTY,
  extra: Record<string, unknown> = {},
): Record<string, unknown> {
  return { plugin_data: dropDefaults({ plugin_name: pluginName, content }), ...extra };
}

/**
 * A scalar as TensorFlow 2 writes it: DT_FLOAT tensor of shape [] in the scalars plugin.
 *
 * @example createScalarValue("epoch_loss", 0.42)
 */
export function createScalarValue(tag: string, value: number): SummaryValueObject {
  assertTag(tag);
  if (typeof value !== "number") {
    throw new SummaryInputError(
      `scalar ${JSON.stringify(tag)} received ${typeof value} ${String(value)}: expected a number`,
    );
  }
  return { tag, tensor: encodeNumericTensor("DT_FLOAT", [], [value]), metadata: metadataFor(PLUGIN_NAMES.scalars) };
}

/**
 * Histogram buckets as TensorBoard's own writer computes them (`histogram_pb`): `bucketCount`
 * equal-width buckets from min to max, the last one closed on the right; all values in one
 * bucket-row triple when every value is equal; all zeros for no data. Non-finite values are
 * left out (a NaN weight must not stop training from logging). Returns a row-major
 * [bucketCount, 3] array of (left edge, right edge, count), in float64.
 *
 * @example computeHistogramBuckets(Float32Array.of(0, 1, 1, 2), 2) // [0,1,1, 1,2,3]
 */
export function computeHistogramBuckets(
  values: ArrayLike<number>,
  bucketCount = DEFAULT_HISTOGRAM_BUCKET_COUNT,
): Float64Array {
  if (!Number.isInteger(bucketCount) || bucketCount < 1) {
    throw new SummaryInputError(`histogram bucketCount ${bucketCount} is not usable: expected a positive integer`);
  }
  const out = new Float64Array(bucketCount * 3);
  let min = Infinity;
  let max = -Infinity;
  let finiteCount = 0;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (!Number.isFinite(v)) continue;
    finiteCount++;
    if (v < min) min = v;
    if (v > max) max = v;
  }
  if (finiteCount === 0) return out;
  const range = max - min;
  if (range === 0) {
    for (let b = 0; b < bucketCount; b++) {
      out[b * 3] = min;
      out[b * 3 + 1] = max;
    }
    out[(bucketCount - 1) * 3 + 2] = finiteCount;
    return out;
  }
  const width = range / bucketCount;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (!Number.isFinite(v)) continue;
    const index = Math.min(Math.floor((v - min) / width), bucketCount - 1);
    out[index * 3 + 2] += 1;
  }
  // Edges as numpy.linspace(min, max, k + 1): i * step + min, last edge exactly max.
  for (let b = 0; b < bucketCount; b++) {
    out[b * 3] = b * width + min;
    out[b * 3 + 1] = b + 1 === bucketCount ? max : (b + 1) * width + min;
  }
  return out;
}

/**
 * A histogram as TensorFlow 2 / TensorBoard write it: DT_DOUBLE tensor [bucketCount, 3] of
 * (left edge, right edge, count) in the histograms plugin.
 *
 * @example createHistogramValue("dense/kernel", weights.dataSync())
 */
export function createHistogramValue(
  tag: string,
  values: ArrayLike<number>,
  bucketCount = DEFAULT_HISTOGRAM_BUCKET_COUNT,
): SummaryValueObject {
  assertTag(tag);
  const buckets = computeHistogramBuckets(values, bucketCount);
  return {
    tag,
    tensor: encodeNumericTensor("DT_DOUBLE", [bucketCount, 3], buckets),
    metadata: metadataFor(PLUGIN_NAMES.histograms),
  };
}

/** Raw interleaved pixels of one image: `widthPx * heightPx * channels` bytes, row-major. */
export interface RawImage {
  pixels: Uint8Array;
  widthPx: number;
  heightPx: number;
  /** 1 (grey), 3 (RGB) or 4 (RGBA). */
  channels: 1 | 3 | 4;
}

/**
 * Encodes raw pixels as PNG with sharp.
 *
 * @example const png = await encodeRawImageToPng({ pixels, widthPx: 224, heightPx: 224, channels: 3 })
 */
export async function encodeRawImageToPng(image: RawImage): Promise<Uint8Array> {
  const { pixels, widthPx, heightPx, channels } = image;
  if (![1, 3, 4].includes(channels)) {
    throw new SummaryInputError(`image channels ${channels} is not supported: expected 1, 3 or 4`);
  }
  if (!Number.isInteger(widthPx) || !Number.isInteger(heightPx) || widthPx < 1 || heightPx < 1) {
    throw new SummaryInputError(`image size ${widthPx}x${heightPx} px is not usable: expected positive integers`);
  }
  const expected = widthPx * heightPx * channels;
  if (pixels.length !== expected) {
    throw new SummaryInputError(
      `image pixels have ${pixels.length} bytes: expected ${widthPx}x${heightPx}x${channels} = ${expected}`,
    );
  }
  let pipeline = sharp(Buffer.from(pixels.buffer, pixels.byteOffset, pixels.byteLength), {
    raw: { width: widthPx, height: heightPx, channels },
  });
  // sharp writes one-channel input as RGB unless told; TensorFlow writes a grey PNG (a third of the bytes).
  if (channels === 1) pipeline = pipeline.toColourspace("b-w");
  const png = await pipeline.png().toBuffer();
  return new Uint8Array(png.buffer, png.byteOffset, png.byteLength);
}

/**
 * Images as TensorFlow 2 writes them: DT_STRING tensor [2 + n] holding width and height as
 * decimal text, then n encoded images (PNG/JPEG) of that size; images plugin, data class
 * BLOB_SEQUENCE. `description` (markdown, optional) is SummaryMetadata.summary_description, which
 * the images dashboard shows under the tag (`tf.summary.image(..., description=)`); absent or
 * empty, nothing is added to the record.
 *
 * @example createImageValue("samples", [png1, png2], 224, 224, "2 **benign** training images")
 */
export function createImageValue(
  tag: string,
  encodedImages: readonly Uint8Array[],
  widthPx: number,
  heightPx: number,
  description = "",
): SummaryValueObject {
  assertTag(tag);
  if (encodedImages.length === 0) {
    throw new SummaryInputError(`image summary ${JSON.stringify(tag)} received no images: expected at least one`);
  }
  const blobs = [utf8.encode(String(widthPx)), utf8.encode(String(heightPx)), ...encodedImages];
  return {
    tag,
    tensor: encodeStringTensor([blobs.length], blobs),
    metadata: metadataFor(PLUGIN_NAMES.images, EMPTY, {
      ...(description ? { summary_description: description } : {}),
      data_class: DATA_CLASS_BLOB_SEQUENCE,
    }),
  };
}

/**
 * Markdown text as TensorFlow 2 writes it: DT_STRING scalar tensor in the text plugin.
 *
 * @example createTextValue("notes", "lr **0.001**, backbone `mobilenet_v2`")
 */
export function createTextValue(tag: string, markdown: string): SummaryValueObject {
  assertTag(tag);
  if (typeof markdown !== "string") {
    throw new SummaryInputError(`text ${JSON.stringify(tag)} received ${typeof markdown}: expected a string`);
  }
  return { tag, tensor: encodeStringTensor([], [utf8.encode(markdown)]), metadata: metadataFor(PLUGIN_NAMES.text) };
}

/** PR-curve counts and rates per threshold; index i is threshold i / (numThresholds - 1). */
export interface PrCurveData {
  numThresholds: number;
  truePositives: Float64Array;
  falsePositives: Float64Array;
  trueNegatives: Float64Array;
  falseNegatives: Float64Array;
  precision: Float64Array;
  recall: Float64Array;
}

/**
 * PR-curve data as TensorBoard's pr_curves summary computes it: each probability falls in bucket
 * floor(p * (numThresholds - 1)); counts at threshold i are the examples in buckets >= i
 * (predicted positive), precision = TP / max(1e-7, TP + FP), recall = TP / max(1e-7, TP + FN).
 *
 * @example computePrCurve([0, 1, 1], [0.2, 0.6, 0.9], 11).recall[5] // 1
 */
export function computePrCurve(
  labels: ArrayLike<number | boolean>,
  probabilities: ArrayLike<number>,
  numThresholds = DEFAULT_PR_CURVE_THRESHOLD_COUNT,
): PrCurveData {
  if (!Number.isInteger(numThresholds) || numThresholds < 2) {
    throw new SummaryInputError(`PR curve numThresholds ${numThresholds} is not usable: expected an integer >= 2`);
  }
  if (labels.length !== probabilities.length) {
    throw new SummaryInputError(
      `PR curve received ${labels.length} labels and ${probabilities.length} probabilities: expected the same count`,
    );
  }
  const positiveInBucket = new Float64Array(numThresholds);
  const negativeInBucket = new Float64Array(numThresholds);
  for (let i = 0; i < labels.length; i++) {
    const label = Number(labels[i]);
    const p = probabilities[i];
    if (label !== 0 && label !== 1) {
      throw new SummaryInputError(`PR curve label at index ${i} is ${String(labels[i])}: expected 0/1 or false/true`);
    }
    if (!(p >= 0 && p <= 1)) {
      throw new SummaryInputError(`PR curve probability at index ${i} is ${p}: expected a number in [0, 1]`);
    }
    const bucket = Math.floor(p * (numThresholds - 1));
    if (label === 1) positiveInBucket[bucket] += 1;
    else negativeInBucket[bucket] += 1;
  }
  const tp = new Float64Array(numThresholds);
  const fp = new Float64Array(numThresholds);
  let tpRunning = 0;
  let fpRunning = 0;
  for (let t = numThresholds - 1; t >= 0; t--) {
    tpRunning += positiveInBucket[t];
    fpRunning += negativeInBucket[t];
    tp[t] = tpRunning;
    fp[t] = fpRunning;
  }
  const tn = fp.map((v) => fp[0] - v);
  const fn = tp.map((v) => tp[0] - v);
  const precision = tp.map((v, t) => v / Math.max(PR_CURVE_MINIMUM_COUNT, v + fp[t]));
  const recall = tp.map((v, t) => v / Math.max(PR_CURVE_MINIMUM_COUNT, v + fn[t]));
  return {
    numThresholds,
    truePositives: tp,
    falsePositives: fp,
    trueNegatives: tn,
    falseNegatives: fn,
    precision,
    recall,
  };
}

/**
 * A PR curve as TensorBoard writes it: DT_FLOAT tensor [6, numThresholds] of TP, FP, TN, FN,
 * precision, recall; pr_curves plugin with PrCurvePluginData{num_thresholds}; display name = tag.
 *
 * @example createPrCurveValue("pr/malignant", computePrCurve(labels, probs))
 */
export function createPrCurveValue(tag: string, data: PrCurveData): SummaryValueObject {
  assertTag(tag);
  const k = data.numThresholds;
  const rows = [
    data.truePositives,
    data.falsePositives,
    data.trueNegatives,
    data.falseNegatives,
    data.precision,
    data.recall,
  ];
  const flat = new Float64Array(6 * k);
  rows.forEach((row, r) => flat.set(row, r * k));
  const PrCurvePluginData = lookupProtoType("PrCurvePluginData");
  const content = PrCurvePluginData.encode(PrCurvePluginData.fromObject({ num_thresholds: k })).finish();
  return {
    tag,
    tensor: encodeNumericTensor("DT_FLOAT", [6, k], flat),
    metadata: metadataFor(PLUGIN_NAMES.prCurves, content, { display_name: tag }),
  };
}

/**
 * The Keras conceptual graph as TensorFlow's `keras_model` summary writes it: tag "keras", a
 * DT_STRING scalar holding the model JSON, plugin "graph_keras_model" with content "1".
 * `modelJson` is what a tfjs LayersModel's `toJSON()` returns (string or object).
 *
 * @example createKerasModelValue(model.toJSON(null, false))
 */
export function createKerasModelValue(modelJson: string | object, tag = "keras"): SummaryValueObject {
  assertTag(tag);
  const json = typeof modelJson === "string" ? modelJson : JSON.stringify(modelJson);
  try {
    JSON.parse(json);
  } catch {
    throw new SummaryInputError(
      `Keras model for tag ${JSON.stringify(tag)} is not valid JSON: expected model.toJSON() output`,
    );
  }
  return {
    tag,
    tensor: encodeStringTensor([], [utf8.encode(json)]),
    metadata: metadataFor(PLUGIN_NAMES.kerasModel, utf8.encode("1")),
  };
}

/** A hyperparameter value: the three kinds the hparams dashboard can compare. */
export type HParamValue = string | number | boolean;

/** One hyperparameter of an experiment, with its domain (all values tried, or an interval). */
export interface HParamSpec {
  name: string;
  displayName?: string;
  description?: string;
  /** Values tried; their JS type sets the hparam type (string/bool/float64). */
  values?: readonly HParamValue[];
  /** For a continuous float hparam instead of `values`. */
  interval?: { min: number; max: number };
}

/** A metric the hparams dashboard shows per session: a scalar tag, in a run group. */
export interface HParamMetricSpec {
  /** Scalar tag, e.g. "epoch_auc". */
  tag: string;
  /** Sub-run the tag is written in, relative to the session run: "validation" or "train". */
  group?: string;
  displayName?: string;
  description?: string;
  datasetType?: "training" | "validation";
}

function toStructValue(value: HParamValue): Record<string, unknown> {
  if (typeof value === "number") return { number_value: value };
  if (typeof value === "boolean") return { bool_value: value };
  if (typeof value === "string") return { string_value: value };
  throw new SummaryInputError(
    `hparam value ${JSON.stringify(value)} is a ${typeof value}: expected string, number or boolean`,
  );
}

function hparamTypeOf(spec: HParamSpec): number {
  if (spec.interval) return 3;
  const kinds = new Set((spec.values ?? []).map((v) => typeof v));
  if (kinds.size > 1) {
    throw new SummaryInputError(
      `hparam ${JSON.stringify(spec.name)} mixes value types ${[...kinds].join(", ")}: expected one type`,
    );
  }
  const kind = [...kinds][0];
  if (kind === "string") return 1;
  if (kind === "boolean") return 2;
  if (kind === "number") return 3;
  return 0;
}

function encodeHparamsPluginData(data: Record<string, unknown>): Uint8Array {
  const HParamsPluginData = lookupProtoType("HParamsPluginData");
  return HParamsPluginData.encode(HParamsPluginData.fromObject(data)).finish();
}

function hparamsValue(tag: string, content: Uint8Array): SummaryValueObject {
  // The hparams plugin reads only the metadata; the tensor is the plugin's empty DT_FLOAT [0].
  return {
    tag,
    // One dimension of size 0; the size is left at its default, as TensorFlow serializes it.
    tensor: { dtype: 1, tensor_shape: { dim: [{}] } },
    metadata: metadataFor(PLUGIN_NAMES.hparams, content),
  };
}

/**
 * The hparams experiment summary (what hparams `hparams_config` writes): the hparams with their
 * domains and the metrics the dashboard shows. Written once, in the parent folder of the runs.
 *
 * @example createHparamsExperimentValue([{ name: "lr", values: [1e-3, 1e-4] }], [{ tag: "epoch_auc", group: "validation" }])
 */
export function createHparamsExperimentValue(
  hparams: readonly HParamSpec[],
  metrics: readonly HParamMetricSpec[],
  timeCreatedSecs = Date.now() / 1000,
): SummaryValueObject {
  const datasetTypes = { training: 1, validation: 2 } as const;
  const experiment = dropDefaults({
    time_created_secs: timeCreatedSecs,
    hparam_infos: hparams.map((spec) =>
      dropDefaults({
        name: spec.name,
        display_name: spec.displayName,
        description: spec.description,
        type: hparamTypeOf(spec),
        ...(spec.interval
          ? { domain_interval: dropDefaults({ min_value: spec.interval.min, max_value: spec.interval.max }) }
          : spec.values
            ? { domain_discrete: { values: spec.values.map(toStructValue) } }
            : {}),
      }),
    ),
    metric_infos: metrics.map((m) =>
      dropDefaults({
        name: dropDefaults({ group: m.group, tag: m.tag }),
        display_name: m.displayName,
        description: m.description,
        dataset_type: m.datasetType ? datasetTypes[m.datasetType] : 0,
      }),
    ),
  });
  return hparamsValue(HPARAMS_TAGS.experiment, encodeHparamsPluginData({ experiment }));
}

/**
 * The hparams session start (what hparams `hparams(...)` writes in a run folder): the values
 * this run used.
 *
 * @example createHparamsSessionStartValue({ lr: 1e-3, backbone: "mobilenet_v2" }, "run-1")
 */
export function createHparamsSessionStartValue(
  hparams: Readonly<Record<string, HParamValue>>,
  groupName = "",
  startTimeSecs = Date.now() / 1000,
): SummaryValueObject {
  const values = Object.fromEntries(Object.entries(hparams).map(([name, v]) => [name, toStructValue(v)]));
  return hparamsValue(
    HPARAMS_TAGS.sessionStartInfo,
    encodeHparamsPluginData({
      session_start_info: dropDefaults({ hparams: values, group_name: groupName, start_time_secs: startTimeSecs }),
    }),
  );
}

/** How a session (run) ended, for the hparams dashboard. */
export type HParamsSessionStatus = "success" | "failure" | "running" | "unknown";

/**
 * The hparams session end: status and end time.
 *
 * @example createHparamsSessionEndValue("success")
 */
export function createHparamsSessionEndValue(
  status: HParamsSessionStatus,
  endTimeSecs = Date.now() / 1000,
): SummaryValueObject {
  const codes = { unknown: 0, success: 1, failure: 2, running: 3 } as const;
  if (!Object.hasOwn(codes, status)) throw new UnknownNameError("hparams session status", status, Object.keys(codes));
  return hparamsValue(
    HPARAMS_TAGS.sessionEndInfo,
    encodeHparamsPluginData({ session_end_info: dropDefaults({ status: codes[status], end_time_secs: endTimeSecs }) }),
  );
}
