import { createRequire } from "node:module";
import * as tf from "@tensorflow/tfjs";
import type { onnx as OnnxNamespace } from "onnx-proto";
import path from "node:path";
import { MelanomaLabError } from "../util/errors.js";
import { findProjectRoot } from "../util/paths.js";
import { samePadding } from "./inferencePlan.js";

// onnx-proto is a CommonJS bundle of the ONNX protobuf schema (protobufjs 6); resolved from the
// project root like nsfwjs, so it works from notebooks (tslab) too.
const onnxProto = (createRequire(path.join(findProjectRoot(), "package.json"))("onnx-proto") as { onnx: typeof OnnxNamespace }).onnx;

/** The onnx-proto namespace (ModelProto, NodeProto, …), for modules that build or edit ONNX graphs. */
export function onnxProtoModule(): typeof OnnxNamespace {
  return onnxProto;
}

/**
 * Thrown when an ONNX model cannot be imported into tfjs: an op, attribute or input the importer
 * does not map. The message names the node, its op type and the attribute or value at fault.
 */
export class OnnxImportError extends MelanomaLabError {}

/** ONNX ops {@link importOnnxModel} maps to tfjs layers. */
export const ONNX_IMPORT_OPS = [
  "Conv",
  "Clip",
  "Relu",
  "Add",
  "BatchNormalization",
  "Gemm",
  "MatMul",
  "GlobalAveragePool",
  "GlobalMaxPool",
  "AveragePool",
  "MaxPool",
  "Flatten",
  "Reshape",
  "Concat",
  "Dropout",
  "Identity",
  "Constant",
  "Pad",
  "Sigmoid",
  "Mul",
  "Sub",
  "Div",
  "ReduceMean",
  "Transpose",
  "Softmax",
  "Squeeze",
  "Unsqueeze",
  "Shape",
  "Gather",
  "Cast",
] as const;

/** Options of {@link importOnnxModel}. */
export interface ImportOnnxOptions {
  /**
   * The ONNX value the tfjs model outputs (any graph output or intermediate value, e.g. the
   * output of the last GlobalAveragePool); default: the graph's outputs. Only the nodes this
   * value depends on are imported, so a classifier after it may use unsupported ops.
   */
  outputName?: string;
  /** Name of the tfjs model (default "onnx_import"). */
  modelName?: string;
  /**
   * Layout of the ONNX graph input: "NCHW" ([N, C, H, W], the ONNX convention) or "NHWC"
   * ([N, H, W, C], e.g. models converted from TensorFlow such as EfficientNet-Lite4, which
   * transpose to NCHW inside the graph). Default: "NHWC" when the input is [N, H, W, 3] with
   * H ≠ 3, else "NCHW".
   */
  inputLayout?: "NCHW" | "NHWC";
}

/** An imported model: the tfjs functional model plus what was learned about the graph. */
export interface ImportedOnnxModel {
  /** Takes NHWC input [n, H, W, C] (the ONNX NCHW input transposed); outputs the ONNX output(s). */
  model: tf.LayersModel;
  /** Name of the ONNX graph input (for ONNX Runtime), e.g. "input". */
  inputName: string;
  /** The input shape in NCHW order [N, C, H, W] (N may be null when symbolic), whatever the file's layout. */
  inputShapeNchw: (number | null)[];
  /** Layout of the ONNX graph input as stored in the file ("NHWC" for models converted from TensorFlow). */
  inputLayout: "NCHW" | "NHWC";
  /** ONNX value names the model outputs, in order. */
  outputNames: string[];
  /**
   * When the (single) output is a global average pool of a 4-D map: the tfjs layer whose output
   * is pooled (as {@link Backbone.featureLayerName} expects), else undefined.
   */
  pooledLayerName?: string;
  /** tfjs layer name of each imported ONNX node, keyed by the node's name (or first output). */
  layerNameOfNode: Map<string, string>;
  /** ONNX opset version of the default domain. */
  opsetVersion: number;
}

/** Layout of a value inside the tfjs graph. */
type Layout =
  /** 4-D activation, stored NHWC (ONNX NCHW). */
  | "NHWC"
  /** ONNX [N, C, 1, 1] after global pooling, stored as [N, C]. */
  | "NC11"
  /** 2-D [N, F], same in both. */
  | "NF"
  /** 4-D activation whose ONNX layout is already NHWC (a TensorFlow-converted input before its Transpose), stored as is. */
  | "ONNX_NHWC";

interface SymbolicValue {
  kind: "tensor";
  tensor: tf.SymbolicTensor;
  layout: Layout;
  /** Known ≥ 0 (after Relu/Clip(0,·)), so zero padding equals −∞ padding for max pooling. */
  nonNegative: boolean;
  /** tfjs layer that produced it (undefined for the input). */
  layerName?: string;
}

interface ConstantValue {
  kind: "constant";
  dims: number[];
  /**
   * Float data for FLOAT tensors, or integer data (int64 as number) for INT64/INT32. Shape
   * arithmetic folded from a Shape node holds NaN for the batch size (the only dynamic dim), so
   * anything computed from it stays NaN and Reshape reads it as "keep the batch dim".
   */
  data: Float32Array | number[];
}

type Value = SymbolicValue | ConstantValue;

/**
 * The values of the graph by name. Initializers are decoded when a node first reads them, so an
 * unsupported data type in a part of the graph that is not imported (or behind an unsupported
 * op, which is reported first) does not stop the import.
 */
class ValueTable {
  private readonly values = new Map<string, Value>();
  private readonly initializers: Map<string, OnnxNamespace.ITensorProto>;
  constructor(initializers: OnnxNamespace.ITensorProto[]) {
    this.initializers = new Map(initializers.map((t) => [t.name ?? "", t]));
  }
  has(name: string): boolean {
    return this.values.has(name) || this.initializers.has(name);
  }
  get(name: string): Value | undefined {
    const known = this.values.get(name);
    if (known) return known;
    const proto = this.initializers.get(name);
    if (!proto) return undefined;
    const value = readOnnxTensor(proto);
    this.values.set(name, value);
    return value;
  }
  set(name: string, value: Value): void {
    this.values.set(name, value);
  }
}

const DATA_TYPE = { FLOAT: 1, INT32: 6, INT64: 7 } as const;

function toNumber(v: number | { toNumber(): number } | null | undefined): number {
  if (v === null || v === undefined) return 0;
  return typeof v === "number" ? v : v.toNumber();
}

/**
 * Reads a TensorProto's values: float32 from raw_data (little-endian) or float_data; int64/int32
 * from raw_data, int64_data or int32_data. Other data types throw {@link OnnxImportError}.
 *
 * @example readOnnxTensor(graph.initializer[0]) // { dims: [32, 3, 3, 3], data: Float32Array(864) }
 */
export function readOnnxTensor(t: OnnxNamespace.ITensorProto): ConstantValue {
  const dims = (t.dims ?? []).map(toNumber);
  const count = dims.reduce((a, b) => a * b, 1);
  const raw = t.rawData && t.rawData.length > 0 ? t.rawData : undefined;
  if (t.dataLocation === onnxProto.TensorProto.DataLocation.EXTERNAL) {
    throw new OnnxImportError(`tensor ${JSON.stringify(t.name)}: external data is not supported (expected the weights inside the .onnx file)`);
  }
  if (t.dataType === DATA_TYPE.FLOAT) {
    let data: Float32Array;
    if (raw) {
      if (raw.length !== count * 4) throw new OnnxImportError(`tensor ${JSON.stringify(t.name)}: raw_data has ${raw.length} bytes, expected ${count} × 4 for dims [${dims.join(", ")}]`);
      const view = new DataView(raw.buffer, raw.byteOffset, raw.length);
      data = new Float32Array(count);
      for (let i = 0; i < count; i++) data[i] = view.getFloat32(i * 4, true);
    } else {
      data = Float32Array.from(t.floatData ?? []);
      if (data.length !== count) throw new OnnxImportError(`tensor ${JSON.stringify(t.name)}: float_data has ${data.length} values, expected ${count} for dims [${dims.join(", ")}]`);
    }
    return { kind: "constant", dims, data };
  }
  if (t.dataType === DATA_TYPE.INT64 || t.dataType === DATA_TYPE.INT32) {
    const width = t.dataType === DATA_TYPE.INT64 ? 8 : 4;
    let data: number[];
    if (raw) {
      const view = new DataView(raw.buffer, raw.byteOffset, raw.length);
      data = Array.from({ length: count }, (_, i) => (width === 8 ? Number(view.getBigInt64(i * 8, true)) : view.getInt32(i * 4, true)));
    } else {
      data = (width === 8 ? (t.int64Data ?? []) : (t.int32Data ?? [])).map(toNumber);
    }
    return { kind: "constant", dims, data };
  }
  throw new OnnxImportError(`tensor ${JSON.stringify(t.name)}: data type ${t.dataType} is not supported (expected FLOAT (1), INT32 (6) or INT64 (7))`);
}

/**
 * Decodes the bytes of an .onnx file into its ModelProto (onnx-proto / protobufjs).
 *
 * @example const proto = decodeOnnxModel(fs.readFileSync("model.onnx"));
 */
export function decodeOnnxModel(bytes: Uint8Array): OnnxNamespace.ModelProto {
  try {
    return onnxProto.ModelProto.decode(bytes);
  } catch (err) {
    throw new OnnxImportError(`not an ONNX ModelProto (${bytes.length} bytes): ${err instanceof Error ? err.message : String(err)}`);
  }
}

/**
 * A tfjs-safe layer name from an ONNX node name: characters other than letters, digits, "_" and
 * "." become "_", a leading non-letter gets an "onnx_" prefix.
 *
 * @example sanitizeLayerName("/features/0/Conv") // "onnx__features_0_Conv"
 */
export function sanitizeLayerName(name: string): string {
  let s = name.replace(/[^A-Za-z0-9_.]/g, "_");
  if (!/^[A-Za-z]/.test(s)) s = `onnx_${s}`;
  return s;
}

/** Transposes ONNX Conv weights [O, I, kH, kW] to tfjs conv2d [kH, kW, I, O]. */
function transposeOihwToHwio(w: Float32Array, [o, i, kh, kw]: number[]): Float32Array {
  const out = new Float32Array(w.length);
  for (let a = 0; a < o; a++)
    for (let b = 0; b < i; b++)
      for (let y = 0; y < kh; y++)
        for (let x = 0; x < kw; x++) out[((y * kw + x) * i + b) * o + a] = w[((a * i + b) * kh + y) * kw + x];
  return out;
}

interface Attributes {
  ints(name: string, fallback: number[]): number[];
  int(name: string, fallback: number): number;
  float(name: string, fallback: number): number;
  string(name: string, fallback: string): string;
  tensor(name: string): OnnxNamespace.ITensorProto | undefined;
  names: string[];
}

function attributesOf(node: OnnxNamespace.INodeProto): Attributes {
  const byName = new Map((node.attribute ?? []).map((a) => [a.name ?? "", a]));
  return {
    names: [...byName.keys()],
    ints: (name, fallback) => (byName.has(name) ? (byName.get(name)!.ints ?? []).map(toNumber) : fallback),
    int: (name, fallback) => (byName.has(name) ? toNumber(byName.get(name)!.i) : fallback),
    float: (name, fallback) => (byName.has(name) ? (byName.get(name)!.f ?? 0) : fallback),
    string: (name, fallback) => (byName.has(name) ? Buffer.from(byName.get(name)!.s ?? new Uint8Array()).toString("utf8") : fallback),
    tensor: (name) => byName.get(name)?.t ?? undefined,
  };
}

/** The attributes each op understands; any other attribute is an error (it would change the result). */
const KNOWN_ATTRIBUTES: Record<string, string[]> = {
  Conv: ["kernel_shape", "strides", "pads", "dilations", "group", "auto_pad"],
  Clip: ["min", "max"],
  Relu: [],
  Add: [],
  BatchNormalization: ["epsilon", "momentum", "spatial"],
  Gemm: ["alpha", "beta", "transA", "transB"],
  MatMul: [],
  GlobalAveragePool: [],
  GlobalMaxPool: [],
  AveragePool: ["kernel_shape", "strides", "pads", "count_include_pad", "ceil_mode", "auto_pad"],
  MaxPool: ["kernel_shape", "strides", "pads", "ceil_mode", "auto_pad", "dilations", "storage_order"],
  Flatten: ["axis"],
  Reshape: ["allowzero"],
  Concat: ["axis"],
  Dropout: ["ratio", "seed"],
  Identity: [],
  Constant: ["value"],
  Pad: ["mode", "pads", "value"],
  Sigmoid: [],
  Mul: [],
  Sub: [],
  Div: [],
  ReduceMean: ["axes", "keepdims", "noop_with_empty_axes"],
  Transpose: ["perm"],
  Softmax: ["axis"],
  Squeeze: ["axes"],
  Unsqueeze: ["axes"],
  Shape: ["start", "end"],
  Gather: ["axis"],
  Cast: ["to", "saturate"],
};

/**
 * Imports an ONNX image model (NCHW, or NHWC input transposed in-graph; float32) into a tfjs
 * functional LayersModel that takes NHWC input [n, H, W, C] and computes the same output. Maps
 * the CNN op set: Conv (groups: 1 → Conv2D, = channels → DepthwiseConv2D, other → Conv2D with a
 * block-diagonal kernel; strides, dilations, bias, pads: tfjs "same" when it pads identically,
 * else ZeroPadding2D + "valid"), Clip(0, 6) → ReLU6, Clip(0, ∞)/Relu → ReLU, Sigmoid, Softmax
 * (of [N, classes]), BatchNormalization, Gemm/MatMul with constant weights → Dense,
 * GlobalAveragePool/GlobalMaxPool, ReduceMean over the spatial axes, AveragePool/MaxPool
 * (MaxPool with ceil_mode), Pad (constant 0, H and W), Flatten/Reshape (to [N, features] or
 * [N, C] ↔ [N, C, 1, 1]), Concat (channels), Squeeze/Unsqueeze of [N, C, 1, 1], Transpose
 * between NHWC and NCHW, Dropout/Identity (identity); Add/Mul of two tensors (broadcasting
 * [N, C, 1, 1] gates) and Add/Sub/Mul/Div of a tensor and a scalar or per-channel constant
 * (a 1×1 DepthwiseConv2D). Shape arithmetic (Shape → Gather → Unsqueeze → Concat → Reshape,
 * Cast, arithmetic on constants) is folded while importing: the batch size is the only dynamic dim.
 * Weights are read from initializers or Constant nodes and transposed NCHW → NHWC. Layer names
 * are the sanitised node names ({@link sanitizeLayerName}). Anything else throws
 * {@link OnnxImportError} naming the node, op type and attribute.
 * Call `await selectBackend()` first. The caller owns `model` (dispose it).
 *
 * @example
 * const { model, inputName } = importOnnxModel(fs.readFileSync("mobilenetv2-7-backbone.onnx"));
 * model.predict(tf.zeros([1, 224, 224, 3])) // [1, 1280]
 */
export function importOnnxModel(bytes: Uint8Array | OnnxNamespace.ModelProto, options: ImportOnnxOptions = {}): ImportedOnnxModel {
  const proto = bytes instanceof onnxProto.ModelProto ? bytes : decodeOnnxModel(bytes as Uint8Array);
  const graph = proto.graph;
  if (!graph) throw new OnnxImportError("ONNX model has no graph");
  const opsetVersion = toNumber((proto.opsetImport ?? []).find((o) => !o.domain || o.domain === "ai.onnx")?.version) || 1;

  const values = new ValueTable(graph.initializer ?? []);

  const realInputs = (graph.input ?? []).filter((i) => !values.has(i.name ?? ""));
  if (realInputs.length !== 1) {
    throw new OnnxImportError(`graph has ${realInputs.length} non-constant inputs (${realInputs.map((i) => i.name).join(", ")}); expected exactly one image input`);
  }
  const input = realInputs[0];
  const inputName = input.name ?? "";
  const dims = input.type?.tensorType?.shape?.dim ?? [];
  const inputShapeOnnx = dims.map((d) => (d.dimValue !== undefined && d.dimValue !== null && toNumber(d.dimValue) > 0 ? toNumber(d.dimValue) : null));
  if (inputShapeOnnx.length !== 4 || inputShapeOnnx.slice(1).some((d) => d === null)) {
    throw new OnnxImportError(`graph input ${JSON.stringify(inputName)}: shape [${inputShapeOnnx.map((d) => d ?? "?").join(", ")}]; expected [N, C, H, W] (or [N, H, W, C]) with fixed C, H, W`);
  }
  if (input.type?.tensorType?.elemType !== DATA_TYPE.FLOAT) {
    throw new OnnxImportError(`graph input ${JSON.stringify(inputName)}: element type ${input.type?.tensorType?.elemType}; expected FLOAT (1)`);
  }
  const inputLayout = options.inputLayout ?? (inputShapeOnnx[3] === 3 && inputShapeOnnx[1] !== 3 ? "NHWC" : "NCHW");
  if (inputLayout !== "NCHW" && inputLayout !== "NHWC") throw new OnnxImportError(`inputLayout: received ${JSON.stringify(inputLayout)}; expected "NCHW" or "NHWC"`);
  const inputShapeNchw = inputLayout === "NCHW" ? inputShapeOnnx : [inputShapeOnnx[0], inputShapeOnnx[3], inputShapeOnnx[1], inputShapeOnnx[2]];
  const [, c, h, w] = inputShapeNchw as number[];
  const usedNames = new Set<string>();
  const uniqueName = (base: string) => {
    let name = sanitizeLayerName(base);
    for (let k = 1; usedNames.has(name); k++) name = `${sanitizeLayerName(base)}_${k}`;
    usedNames.add(name);
    return name;
  };
  const inputTensor = tf.input({ shape: [h, w, c], name: uniqueName(inputName) });
  values.set(inputName, { kind: "tensor", tensor: inputTensor, layout: inputLayout === "NCHW" ? "NHWC" : "ONNX_NHWC", nonNegative: false });

  const outputNames = options.outputName ? [options.outputName] : (graph.output ?? []).map((o) => o.name ?? "");
  const nodes = graph.node ?? [];
  // Import only the nodes the requested outputs depend on.
  const producer = new Map<string, OnnxNamespace.INodeProto>();
  for (const node of nodes) for (const out of node.output ?? []) producer.set(out, node);
  const needed = new Set<OnnxNamespace.INodeProto>();
  const stack = [...outputNames];
  while (stack.length > 0) {
    const name = stack.pop()!;
    const node = producer.get(name);
    if (!node) {
      if (!values.has(name)) throw new OnnxImportError(`output ${JSON.stringify(name)} is neither produced by a node nor an input/initializer of the graph`);
      continue;
    }
    if (needed.has(node)) continue;
    needed.add(node);
    for (const i of node.input ?? []) if (i) stack.push(i);
  }

  const layerNameOfNode = new Map<string, string>();
  const pending: tf.Tensor[] = [];
  const created: tf.layers.Layer[] = [];
  try {
    for (const node of nodes) {
      if (!needed.has(node)) continue;
      const label = node.name || (node.output ?? [])[0] || "node";
      const result = convertNode(node, label, values, uniqueName, pending, opsetVersion, created);
      if (result.layerName) layerNameOfNode.set(label, result.layerName);
      values.set((node.output ?? [])[0], result.value);
    }
    const outputs = outputNames.map((name) => {
      const v = values.get(name);
      if (!v || v.kind !== "tensor") throw new OnnxImportError(`output ${JSON.stringify(name)}: is a constant, expected a computed tensor`);
      return v;
    });
    const model = tf.model({ inputs: inputTensor, outputs: outputs.map((o) => o.tensor), name: options.modelName ?? "onnx_import" });
    let pooledLayerName: string | undefined;
    if (outputs.length === 1) {
      const last = model.getLayer(outputs[0].layerName ?? "");
      if (last && last.getClassName() === "GlobalAveragePooling2D") {
        const inbound = last.inboundNodes[0]?.inboundLayers[0];
        if (inbound && inbound.getClassName() !== "InputLayer") pooledLayerName = inbound.name;
      }
    }
    return { model, inputName, inputShapeNchw, inputLayout, outputNames, pooledLayerName, layerNameOfNode, opsetVersion };
  } catch (err) {
    // The layers built so far hold weight variables: free them, the model will not exist.
    for (const layer of created) layer.dispose();
    throw err;
  } finally {
    tf.dispose(pending);
  }
}

function tensorOf(values: ValueTable, name: string, label: string, op: string): SymbolicValue {
  const v = values.get(name);
  if (!v) throw new OnnxImportError(`node ${JSON.stringify(label)} (${op}): input ${JSON.stringify(name)} is not defined before the node`);
  if (v.kind !== "tensor") throw new OnnxImportError(`node ${JSON.stringify(label)} (${op}): input ${JSON.stringify(name)} is a constant, expected a computed tensor`);
  return v;
}

function constantOf(values: ValueTable, name: string | undefined, label: string, op: string, what: string): ConstantValue {
  const v = name ? values.get(name) : undefined;
  if (!v || v.kind !== "constant") {
    throw new OnnxImportError(`node ${JSON.stringify(label)} (${op}): ${what} ${JSON.stringify(name ?? "")} must be an initializer or Constant (received ${v ? "a computed tensor" : "nothing"})`);
  }
  return v;
}

function floatsOf(v: ConstantValue): Float32Array {
  return v.data instanceof Float32Array ? v.data : Float32Array.from(v.data);
}

/** As a 4-D NHWC map: [N, C] pooled values get a Reshape to [1, 1, C]. */
function as4d(v: SymbolicValue, label: string, op: string, uniqueName: (b: string) => string): SymbolicValue {
  if (v.layout === "NHWC") return v;
  if (v.layout === "NC11") {
    const ch = v.tensor.shape[1] as number;
    const tensor = tf.layers.reshape({ targetShape: [1, 1, ch], name: uniqueName(`${label}_to4d`) }).apply(v.tensor) as tf.SymbolicTensor;
    return { ...v, tensor, layout: "NHWC" };
  }
  throw new OnnxImportError(`node ${JSON.stringify(label)} (${op}): input has shape [${v.tensor.shape.join(", ")}]; expected a 4-D [N, C, H, W] map`);
}

/**
 * Explicit ONNX pads [top, left, bottom, right] → tfjs padding: "valid" when zero, "same" when
 * tfjs's own same padding ({@link samePadding}) is identical, else undefined (needs ZeroPadding2D).
 */
function matchPadding(pads: number[], inHw: [number, number], kernel: number[], strides: number[], dilations: number[]): "valid" | "same" | undefined {
  if (pads.every((p) => p === 0)) return "valid";
  for (let axis = 0; axis < 2; axis++) {
    const [before, after] = samePadding(inHw[axis], kernel[axis], strides[axis], dilations[axis]);
    if (pads[axis] !== before || pads[axis + 2] !== after) return undefined;
  }
  return "same";
}

function resolvePads(attrs: Attributes, label: string, op: string, inHw: [number, number], kernel: number[], strides: number[], dilations: number[]): number[] {
  const autoPad = attrs.string("auto_pad", "NOTSET");
  if (autoPad === "NOTSET") {
    const pads = attrs.ints("pads", [0, 0, 0, 0]);
    if (pads.length !== 4) throw new OnnxImportError(`node ${JSON.stringify(label)} (${op}): attribute pads = [${pads.join(", ")}]; expected 4 values for 2-D`);
    return pads;
  }
  if (autoPad === "VALID") return [0, 0, 0, 0];
  if (autoPad === "SAME_UPPER" || autoPad === "SAME_LOWER") {
    const pads = [0, 0, 0, 0];
    for (let axis = 0; axis < 2; axis++) {
      const [small, large] = samePadding(inHw[axis], kernel[axis], strides[axis], dilations[axis]);
      pads[axis] = autoPad === "SAME_UPPER" ? small : large;
      pads[axis + 2] = autoPad === "SAME_UPPER" ? large : small;
    }
    return pads;
  }
  throw new OnnxImportError(`node ${JSON.stringify(label)} (${op}): attribute auto_pad = ${JSON.stringify(autoPad)}; expected NOTSET, VALID, SAME_UPPER or SAME_LOWER`);
}

function spatialOf(v: SymbolicValue): [number, number] {
  return [v.tensor.shape[1] as number, v.tensor.shape[2] as number];
}

/** Applies ZeroPadding2D when `pads` is not representable by the layer's own padding. */
function padIfNeeded(
  x: SymbolicValue,
  pads: number[],
  kernel: number[],
  strides: number[],
  dilations: number[],
  label: string,
  uniqueName: (b: string) => string,
): { tensor: tf.SymbolicTensor; padding: "valid" | "same" } {
  const padding = matchPadding(pads, spatialOf(x), kernel, strides, dilations);
  if (padding) return { tensor: x.tensor, padding };
  const tensor = tf.layers
    .zeroPadding2d({
      padding: [
        [pads[0], pads[2]],
        [pads[1], pads[3]],
      ],
      name: uniqueName(`${label}_pad`),
    })
    .apply(x.tensor) as tf.SymbolicTensor;
  return { tensor, padding: "valid" };
}

type ApplyLayer = (layer: tf.layers.Layer, x: tf.SymbolicTensor | tf.SymbolicTensor[], w?: tf.Tensor[]) => tf.SymbolicTensor;
type MakeWeights = (arrays: { data: Float32Array; shape: number[] }[]) => tf.Tensor[];

/**
 * Extra end padding [H, W] that makes "valid" pooling produce ONNX's ceil_mode output size
 * (as ONNX Runtime: a window starting inside the right padding is dropped).
 */
function ceilModeExtraPads(inHw: [number, number], kernel: number[], strides: number[], pads: number[]): [number, number] {
  const extra: number[] = [];
  for (let axis = 0; axis < 2; axis++) {
    const total = inHw[axis] + pads[axis] + pads[axis + 2];
    let out = Math.ceil((total - kernel[axis]) / strides[axis]) + 1;
    if ((out - 1) * strides[axis] >= inHw[axis] + pads[axis]) out--;
    extra.push(Math.max(0, (out - 1) * strides[axis] + kernel[axis] - total));
  }
  return [extra[0], extra[1]];
}

/** ONNX rank of a computed value (its stored tfjs rank may differ: [N, C, 1, 1] is stored [N, C]). */
function onnxRankOf(v: SymbolicValue): number {
  return v.layout === "NF" ? 2 : 4;
}

/**
 * The per-channel values of constant `c` broadcast against `x` (ONNX broadcasting): a scalar, or
 * dims that are 1 everywhere but the channel axis (C of NCHW, the last axis of NHWC or [N, F]).
 */
function channelVectorOf(c: ConstantValue, x: SymbolicValue, label: string, op: string): Float32Array {
  const channels = x.tensor.shape.at(-1) as number;
  const values = floatsOf(c);
  if (values.length === 1) return new Float32Array(channels).fill(values[0]);
  const rank = onnxRankOf(x);
  const padded = [...new Array<number>(Math.max(0, rank - c.dims.length)).fill(1), ...c.dims];
  const channelAxis = x.layout === "NHWC" || x.layout === "NC11" ? 1 : rank - 1;
  const ok = padded.length === rank && padded.every((d, k) => (k === channelAxis ? d === channels : d === 1));
  if (!ok) {
    const expected = rank === 2 ? `[1, ${channels}]` : channelAxis === 1 ? `[1, ${channels}, 1, 1]` : `[1, 1, 1, ${channels}]`;
    throw new OnnxImportError(`node ${JSON.stringify(label)} (${op}): constant of dims [${c.dims.join(", ")}]; expected a scalar or one value per channel (dims ${expected})`);
  }
  return values;
}

/** y = x · scale + offset per channel, as a 1×1 DepthwiseConv2D (exact: one multiply and one add per value). */
function applyChannelAffine(
  x: SymbolicValue,
  scale: Float32Array,
  offset: Float32Array,
  layerName: string,
  uniqueName: (b: string) => string,
  apply: ApplyLayer,
  weights: MakeWeights,
): { value: Value; layerName: string } {
  const ch = scale.length;
  const flat = x.tensor.shape.length === 2;
  let t = x.tensor;
  if (flat) t = apply(tf.layers.reshape({ targetShape: [1, 1, ch], name: uniqueName(`${layerName}_to4d`) }), t);
  const layer = tf.layers.depthwiseConv2d({ kernelSize: 1, depthMultiplier: 1, useBias: true, name: layerName });
  t = apply(layer, t, weights([
    { data: scale, shape: [1, 1, ch, 1] },
    { data: offset, shape: [ch] },
  ]));
  let lastName = layerName;
  if (flat) {
    lastName = uniqueName(`${layerName}_to2d`);
    t = apply(tf.layers.reshape({ targetShape: [ch], name: lastName }), t);
  }
  const nonNegative = x.nonNegative && scale.every((v) => v >= 0) && offset.every((v) => v >= 0);
  return { value: { ...x, tensor: t, nonNegative, layerName: lastName }, layerName };
}

/** Elementwise op of two constants (shape arithmetic), numpy-broadcast when one side has one value. */
function foldBinary(op: string, a: ConstantValue, b: ConstantValue, label: string): ConstantValue {
  const na = a.data.length;
  const nb = b.data.length;
  if (na !== nb && na !== 1 && nb !== 1) throw new OnnxImportError(`node ${JSON.stringify(label)} (${op}): constants of dims [${a.dims.join(", ")}] and [${b.dims.join(", ")}]; expected equal sizes or a scalar`);
  const ints = Array.isArray(a.data) && Array.isArray(b.data);
  const out = Array.from({ length: Math.max(na, nb) }, (_, i) => {
    const x = a.data[na === 1 ? 0 : i];
    const y = b.data[nb === 1 ? 0 : i];
    if (op === "Add") return x + y;
    if (op === "Sub") return x - y;
    if (op === "Mul") return x * y;
    return ints ? Math.trunc(x / y) : x / y;
  });
  return { kind: "constant", dims: (na >= nb ? a : b).dims.slice(), data: ints ? out : Float32Array.from(out) };
}

/** Add/Sub/Mul/Div: of two constants (folded), of two computed tensors (Add/Multiply layers, broadcasting [N, C, 1, 1]), or of a tensor and a per-channel constant (an affine layer). */
function convertBinary(
  op: string,
  inputs: string[],
  label: string,
  values: ValueTable,
  layerName: string,
  uniqueName: (b: string) => string,
  apply: ApplyLayer,
  weights: MakeWeights,
): { value: Value; layerName?: string } {
  const a = values.get(inputs[0]);
  const b = values.get(inputs[1]);
  if (!a || !b) throw new OnnxImportError(`node ${JSON.stringify(label)} (${op}): input ${JSON.stringify(a ? inputs[1] : inputs[0])} is not defined before the node`);
  if (a.kind === "constant" && b.kind === "constant") return { value: foldBinary(op, a, b, label) };
  if (a.kind === "tensor" && b.kind === "tensor") {
    if (op === "Sub" || op === "Div") throw new OnnxImportError(`node ${JSON.stringify(label)} (${op}): both inputs are computed tensors; expected one of them to be a constant`);
    let x = a;
    let y = b;
    // A squeeze-excitation gate [N, C, 1, 1] times a map [N, C, H, W]: tfjs merge layers broadcast 1-sized dims.
    if (x.layout === "NC11" && y.layout === "NHWC") x = as4d(x, label, op, uniqueName);
    if (y.layout === "NC11" && x.layout === "NHWC") y = as4d(y, label, op, uniqueName);
    const sx = x.tensor.shape.slice(1);
    const sy = y.tensor.shape.slice(1);
    const broadcastable = x.layout === y.layout && sx.length === sy.length && sx.every((d, k) => d === sy[k] || d === 1 || sy[k] === 1);
    if (!broadcastable) {
      throw new OnnxImportError(`node ${JSON.stringify(label)} (${op}): input shapes [${a.tensor.shape.join(", ")}] and [${b.tensor.shape.join(", ")}] do not broadcast; expected equal shapes or [N, C, 1, 1] against [N, C, H, W]`);
    }
    const layer = op === "Add" ? tf.layers.add({ name: layerName }) : tf.layers.multiply({ name: layerName });
    const tensor = apply(layer, [x.tensor, y.tensor]);
    return { value: { kind: "tensor", tensor, layout: x.layout, nonNegative: x.nonNegative && y.nonNegative, layerName }, layerName };
  }
  const tensorFirst = a.kind === "tensor";
  const x = (tensorFirst ? a : b) as SymbolicValue;
  const c = channelVectorOf((tensorFirst ? b : a) as ConstantValue, x, label, op);
  const ones = new Float32Array(c.length).fill(1);
  const zeros = new Float32Array(c.length);
  let scale: Float32Array;
  let offset: Float32Array;
  if (op === "Add") [scale, offset] = [ones, c];
  else if (op === "Sub") [scale, offset] = tensorFirst ? [ones, c.map((v) => -v)] : [ones.map(() => -1), c];
  else if (op === "Mul") [scale, offset] = [c, zeros];
  else if (tensorFirst) [scale, offset] = [c.map((v) => 1 / v), zeros];
  else throw new OnnxImportError(`node ${JSON.stringify(label)} (Div): a constant divided by a computed tensor is not supported; expected tensor / constant`);
  return applyChannelAffine(x, scale, offset, layerName, uniqueName, apply, weights);
}

/** Squeeze/Unsqueeze of a constant: the same values with 1-sized dims removed or inserted. */
function squeezeConstant(op: string, v: ConstantValue, axes: number[], label: string): ConstantValue {
  if (op === "Squeeze") {
    const rank = v.dims.length;
    const drop = new Set(axes.length > 0 ? axes.map((a) => (a < 0 ? a + rank : a)) : v.dims.flatMap((d, k) => (d === 1 ? [k] : [])));
    for (const k of drop) if (v.dims[k] !== 1) throw new OnnxImportError(`node ${JSON.stringify(label)} (Squeeze): axis ${k} has size ${v.dims[k]}; expected 1`);
    return { ...v, dims: v.dims.filter((_, k) => !drop.has(k)) };
  }
  const rank = v.dims.length + axes.length;
  const insert = new Set(axes.map((a) => (a < 0 ? a + rank : a)));
  const dims: number[] = [];
  let next = 0;
  for (let k = 0; k < rank; k++) dims.push(insert.has(k) ? 1 : v.dims[next++]);
  return { ...v, dims };
}

function convertNode(
  node: OnnxNamespace.INodeProto,
  label: string,
  values: ValueTable,
  uniqueName: (base: string) => string,
  pending: tf.Tensor[],
  opsetVersion: number,
  created: tf.layers.Layer[],
): { value: Value; layerName?: string } {
  const op = node.opType ?? "";
  const inputs = node.input ?? [];
  const attrs = attributesOf(node);
  if (node.domain && node.domain !== "ai.onnx") {
    throw new OnnxImportError(`node ${JSON.stringify(label)} (${op}): domain ${JSON.stringify(node.domain)} is not supported (expected the default ONNX domain)`);
  }
  const known = KNOWN_ATTRIBUTES[op];
  if (!known) {
    throw new OnnxImportError(`node ${JSON.stringify(label)}: op type ${JSON.stringify(op)} is not supported (supported: ${ONNX_IMPORT_OPS.join(", ")})`);
  }
  for (const a of attrs.names) {
    if (!known.includes(a)) throw new OnnxImportError(`node ${JSON.stringify(label)} (${op}): attribute ${JSON.stringify(a)} is not supported (supported: ${known.join(", ") || "none"})`);
  }
  const layerName = uniqueName(label);
  const weights = (arrays: { data: Float32Array; shape: number[] }[]) => {
    const ts = arrays.map((a) => tf.tensor(a.data, a.shape, "float32"));
    pending.push(...ts);
    return ts;
  };
  const apply = (layer: tf.layers.Layer, x: tf.SymbolicTensor | tf.SymbolicTensor[], w?: tf.Tensor[]) => {
    const out = layer.apply(x) as tf.SymbolicTensor;
    created.push(layer);
    if (w) layer.setWeights(w);
    return out;
  };
  const bad = (attr: string, received: unknown, expected: string) =>
    new OnnxImportError(`node ${JSON.stringify(label)} (${op}): attribute ${attr} = ${JSON.stringify(received)}; expected ${expected}`);

  switch (op) {
    case "Constant": {
      const t = attrs.tensor("value");
      if (!t) throw bad("value", undefined, "a tensor (value_float/value_ints etc. are not supported)");
      return { value: readOnnxTensor(t) };
    }
    case "Identity":
    case "Dropout": {
      const x = values.get(inputs[0]);
      if (!x) throw new OnnxImportError(`node ${JSON.stringify(label)} (${op}): input ${JSON.stringify(inputs[0])} is not defined before the node`);
      return { value: x };
    }
    case "Conv": {
      const x = as4d(tensorOf(values, inputs[0], label, op), label, op, uniqueName);
      const wc = constantOf(values, inputs[1], label, op, "weight");
      if (wc.dims.length !== 4) throw new OnnxImportError(`node ${JSON.stringify(label)} (Conv): weight dims [${wc.dims.join(", ")}]; expected [O, I/group, kH, kW] (2-D convolution)`);
      const [outCh, inPerGroup, kh, kw] = wc.dims;
      const inCh = x.tensor.shape[3] as number;
      const group = attrs.int("group", 1);
      const kernel = attrs.ints("kernel_shape", [kh, kw]);
      if (kernel[0] !== kh || kernel[1] !== kw) throw bad("kernel_shape", kernel, `[${kh}, ${kw}] (the weight's)`);
      const strides = attrs.ints("strides", [1, 1]);
      const dilations = attrs.ints("dilations", [1, 1]);
      if (strides.length !== 2) throw bad("strides", strides, "2 values");
      if (dilations.length !== 2) throw bad("dilations", dilations, "2 values");
      if (dilations.some((d) => d !== 1) && strides.some((s) => s !== 1)) throw bad("dilations", dilations, "[1, 1] when strides ≠ 1 (tfjs cannot combine them)");
      if (group < 1 || inCh % group !== 0 || outCh % group !== 0 || inPerGroup * group !== inCh) {
        throw bad("group", group, `a divisor of the input channels ${inCh} and output channels ${outCh} with weight dim 1 = ${inCh / Math.max(group, 1)}`);
      }
      const pads = resolvePads(attrs, label, op, spatialOf(x), kernel, strides, dilations);
      const padded = padIfNeeded(x, pads, kernel, strides, dilations, label, uniqueName);
      const hasBias = inputs.length > 2 && !!inputs[2];
      const bias = hasBias ? floatsOf(constantOf(values, inputs[2], label, op, "bias")) : undefined;
      if (bias && bias.length !== outCh) throw new OnnxImportError(`node ${JSON.stringify(label)} (Conv): bias has ${bias.length} values; expected ${outCh}`);
      const wData = floatsOf(wc);
      let layer: tf.layers.Layer;
      let kernelValues: { data: Float32Array; shape: number[] };
      if (group === inCh && group > 1) {
        // Depthwise: ONNX output channel g·m + j reads input channel g, as tfjs's depthwise [kH, kW, C, m].
        // tfjs-layers' DepthwiseConv2D ignores dilationRate, so a dilated kernel is spread out
        // with zeros (exact; same receptive field) and run undilated.
        const m = outCh / inCh;
        const [dh, dw] = dilations;
        const ekh = (kh - 1) * dh + 1;
        const ekw = (kw - 1) * dw + 1;
        const data = new Float32Array(ekh * ekw * inCh * m);
        for (let g = 0; g < inCh; g++)
          for (let j = 0; j < m; j++)
            for (let y = 0; y < kh; y++)
              for (let xx = 0; xx < kw; xx++) data[((y * dh * ekw + xx * dw) * inCh + g) * m + j] = wData[((g * m + j) * kh + y) * kw + xx];
        kernelValues = { data, shape: [ekh, ekw, inCh, m] };
        layer = tf.layers.depthwiseConv2d({ kernelSize: [ekh, ekw], depthMultiplier: m, strides, padding: padded.padding, useBias: hasBias, name: layerName });
      } else {
        // group > 1 but not depthwise: one Conv2D with a block-diagonal kernel (exact; zeros cost compute).
        const full = new Float32Array(outCh * inCh * kh * kw);
        const outPerGroup = outCh / group;
        for (let o = 0; o < outCh; o++) {
          const g = Math.floor(o / outPerGroup);
          for (let i = 0; i < inPerGroup; i++) {
            const src = (o * inPerGroup + i) * kh * kw;
            full.set(wData.subarray(src, src + kh * kw), (o * inCh + g * inPerGroup + i) * kh * kw);
          }
        }
        kernelValues = { data: transposeOihwToHwio(full, [outCh, inCh, kh, kw]), shape: [kh, kw, inCh, outCh] };
        layer = tf.layers.conv2d({ filters: outCh, kernelSize: [kh, kw], strides, dilationRate: dilations as [number, number], padding: padded.padding, useBias: hasBias, name: layerName });
      }
      const w = weights(bias ? [kernelValues, { data: bias, shape: [outCh] }] : [kernelValues]);
      return { value: { kind: "tensor", tensor: apply(layer, padded.tensor, w), layout: "NHWC", nonNegative: false, layerName }, layerName };
    }
    case "Clip":
    case "Relu": {
      const x = tensorOf(values, inputs[0], label, op);
      let min = 0;
      let max = Infinity;
      if (op === "Clip") {
        if (opsetVersion < 11) {
          min = attrs.float("min", -3.4028234663852886e38);
          max = attrs.float("max", 3.4028234663852886e38);
        } else {
          min = inputs[1] ? floatsOf(constantOf(values, inputs[1], label, op, "min"))[0] : -Infinity;
          max = inputs[2] ? floatsOf(constantOf(values, inputs[2], label, op, "max"))[0] : Infinity;
        }
        if (max >= 3.4e38) max = Infinity;
      }
      if (min !== 0 || !(max === 6 || max === Infinity)) {
        throw new OnnxImportError(`node ${JSON.stringify(label)} (Clip): min ${min}, max ${max}; expected min 0 and max 6 (ReLU6) or none (ReLU)`);
      }
      const layer = tf.layers.reLU({ maxValue: max === Infinity ? undefined : max, name: layerName });
      return { value: { ...x, tensor: apply(layer, x.tensor), nonNegative: true, layerName }, layerName };
    }
    case "Add":
    case "Sub":
    case "Mul":
    case "Div":
      return convertBinary(op, inputs, label, values, layerName, uniqueName, apply, weights);
    case "BatchNormalization": {
      const x = tensorOf(values, inputs[0], label, op);
      if ((node.output ?? []).length > 1) throw new OnnxImportError(`node ${JSON.stringify(label)} (BatchNormalization): ${node.output!.length} outputs (training mode); expected 1 (inference)`);
      const [gamma, beta, mean, variance] = [1, 2, 3, 4].map((k, idx) => floatsOf(constantOf(values, inputs[k], label, op, ["scale", "B", "mean", "var"][idx])));
      if (attrs.int("spatial", 1) !== 1) throw bad("spatial", attrs.int("spatial", 1), "1 (per-channel statistics)");
      const channels = x.tensor.shape.at(-1) as number;
      if ([gamma, beta, mean, variance].some((t) => t.length !== channels)) throw new OnnxImportError(`node ${JSON.stringify(label)} (BatchNormalization): parameters must have ${channels} values (one per channel)`);
      const layer = tf.layers.batchNormalization({ axis: -1, epsilon: attrs.float("epsilon", 1e-5), name: layerName });
      const w = weights([gamma, beta, mean, variance].map((data) => ({ data, shape: [channels] })));
      return { value: { ...x, tensor: apply(layer, x.tensor, w), nonNegative: false, layerName }, layerName };
    }
    case "Gemm":
    case "MatMul": {
      const x = tensorOf(values, inputs[0], label, op);
      if (x.layout === "NHWC") throw new OnnxImportError(`node ${JSON.stringify(label)} (${op}): input is a 4-D map; expected [N, features] (Flatten first)`);
      const bc = constantOf(values, inputs[1], label, op, "B");
      if (bc.dims.length !== 2) throw new OnnxImportError(`node ${JSON.stringify(label)} (${op}): B dims [${bc.dims.join(", ")}]; expected 2-D`);
      if (attrs.int("transA", 0) !== 0) throw bad("transA", attrs.int("transA", 0), "0");
      const transB = attrs.int("transB", 0) === 1;
      const alpha = attrs.float("alpha", 1);
      const beta = attrs.float("beta", 1);
      const [rows, cols] = bc.dims;
      const inF = transB ? cols : rows;
      const units = transB ? rows : cols;
      if (x.tensor.shape[1] !== inF) throw new OnnxImportError(`node ${JSON.stringify(label)} (${op}): input has ${x.tensor.shape[1]} features; B expects ${inF}`);
      const bData = floatsOf(bc);
      const kernel = new Float32Array(inF * units);
      for (let i = 0; i < inF; i++) for (let u = 0; u < units; u++) kernel[i * units + u] = alpha * (transB ? bData[u * cols + i] : bData[i * cols + u]);
      let bias: Float32Array | undefined;
      if (op === "Gemm" && inputs[2]) {
        const cc = floatsOf(constantOf(values, inputs[2], label, op, "C"));
        if (cc.length !== units && cc.length !== 1) throw new OnnxImportError(`node ${JSON.stringify(label)} (Gemm): C has ${cc.length} values; expected ${units} or 1`);
        bias = Float32Array.from({ length: units }, (_, u) => beta * cc[cc.length === 1 ? 0 : u]);
      }
      const layer = tf.layers.dense({ units, useBias: !!bias, name: layerName });
      const w = weights(bias ? [{ data: kernel, shape: [inF, units] }, { data: bias, shape: [units] }] : [{ data: kernel, shape: [inF, units] }]);
      return { value: { kind: "tensor", tensor: apply(layer, x.tensor, w), layout: "NF", nonNegative: false, layerName }, layerName };
    }
    case "GlobalAveragePool":
    case "GlobalMaxPool": {
      const x = as4d(tensorOf(values, inputs[0], label, op), label, op, uniqueName);
      const layer = op === "GlobalAveragePool" ? tf.layers.globalAveragePooling2d({ name: layerName }) : tf.layers.globalMaxPooling2d({ name: layerName });
      return { value: { kind: "tensor", tensor: apply(layer, x.tensor), layout: "NC11", nonNegative: x.nonNegative, layerName }, layerName };
    }
    case "AveragePool":
    case "MaxPool": {
      const x = as4d(tensorOf(values, inputs[0], label, op), label, op, uniqueName);
      if ((node.output ?? []).length > 1) throw new OnnxImportError(`node ${JSON.stringify(label)} (MaxPool): output Indices is not supported; expected 1 output`);
      const kernel = attrs.ints("kernel_shape", []);
      if (kernel.length !== 2) throw bad("kernel_shape", kernel, "2 values");
      const strides = attrs.ints("strides", [1, 1]);
      if (attrs.ints("dilations", [1, 1]).some((d) => d !== 1)) throw bad("dilations", attrs.ints("dilations", [1, 1]), "[1, 1]");
      if (attrs.int("storage_order", 0) !== 0) throw bad("storage_order", attrs.int("storage_order", 0), "0");
      const pads = resolvePads(attrs, label, op, spatialOf(x), kernel, strides, [1, 1]);
      if (attrs.int("ceil_mode", 0) === 1) {
        // ceil_mode adds windows at the end: pad the end so "valid" pooling computes them too.
        const extra = ceilModeExtraPads(spatialOf(x), kernel, strides, pads);
        if (extra.some((e) => e > 0) && op === "AveragePool") throw bad("ceil_mode", 1, "0 for AveragePool when it adds a window (the partial window's divisor is not representable)");
        pads[2] += extra[0];
        pads[3] += extra[1];
      } else if (attrs.int("ceil_mode", 0) !== 0) throw bad("ceil_mode", attrs.int("ceil_mode", 0), "0 or 1");
      let padding = matchPadding(pads, spatialOf(x), kernel, strides, [1, 1]);
      let tensor = x.tensor;
      const includePad = attrs.int("count_include_pad", 0) === 1;
      if (op === "AveragePool" && padding === "same" && includePad) padding = undefined; // tfjs "same" excludes the pad from the count
      if (!padding) {
        // Zero padding is exact for AveragePool counting the pad, and for MaxPool of a non-negative map.
        if (op === "AveragePool" && !includePad) throw bad("pads", pads, "zero or TensorFlow-style same padding when count_include_pad = 0");
        if (op === "MaxPool" && !x.nonNegative) throw bad("pads", pads, "zero or TensorFlow-style same padding (zero padding equals −∞ only after Relu/Clip(0, ·))");
        tensor = padIfNeeded({ ...x, tensor }, pads, [Infinity, Infinity], strides, [1, 1], label, uniqueName).tensor;
        padding = "valid";
      }
      const args = { poolSize: kernel as [number, number], strides: strides as [number, number], padding, name: layerName };
      const layer = op === "AveragePool" ? tf.layers.averagePooling2d(args) : tf.layers.maxPooling2d(args);
      return { value: { kind: "tensor", tensor: apply(layer, tensor), layout: "NHWC", nonNegative: x.nonNegative, layerName }, layerName };
    }
    case "Flatten":
    case "Reshape": {
      const x = tensorOf(values, inputs[0], label, op);
      if (op === "Flatten" && attrs.int("axis", 1) !== 1) throw bad("axis", attrs.int("axis", 1), "1 (to [N, features])");
      if (x.layout === "ONNX_NHWC") throw new OnnxImportError(`node ${JSON.stringify(label)} (${op}): input is the NHWC graph input; expected it transposed to NCHW first`);
      const nchw = x.layout === "NHWC" ? [x.tensor.shape[3], x.tensor.shape[1], x.tensor.shape[2]] : [x.tensor.shape[1], 1, 1];
      const features = (nchw as number[]).reduce((a, b) => a * b, 1);
      if (op === "Reshape") {
        const shape = constantOf(values, inputs[1], label, op, "shape").data as number[];
        // NaN is the batch size folded from a Shape node: keep the batch dim, as 0 does.
        const okFirst = shape[0] === 0 || shape[0] === -1 || shape[0] === 1 || Number.isNaN(shape[0]);
        const rest = shape.slice(1);
        if (okFirst && x.layout !== "NHWC" && rest.length === 3 && rest[0] === features && rest[1] === 1 && rest[2] === 1) {
          // [N, C] → [N, C, 1, 1]: the same stored [N, C] values.
          return { value: { ...x, layout: "NC11" } };
        }
        if (okFirst && x.layout === "NHWC" && rest.length === 3 && rest.every((d, k) => d === nchw[k])) return { value: x };
        if (rest.length !== 1 || !okFirst || !(rest[0] === -1 || rest[0] === features) || (shape[0] === -1 && rest[0] === -1)) {
          throw new OnnxImportError(
            `node ${JSON.stringify(label)} (Reshape): target shape [${shape.map((d) => (Number.isNaN(d) ? "N" : d)).join(", ")}]; only flattening to [N, ${features}], [N, C] ↔ [N, C, 1, 1] or the same shape is supported`,
          );
        }
      }
      if (x.layout !== "NHWC") return { value: { ...x, layout: "NF" } };
      let t = x.tensor;
      // ONNX flattens in C, H, W order; tfjs's Flatten of NHWC gives H, W, C, equal only when H = W = 1.
      if (nchw[1] !== 1 || nchw[2] !== 1) t = apply(tf.layers.permute({ dims: [3, 1, 2], name: uniqueName(`${label}_nchw`) }), t);
      return { value: { ...x, tensor: apply(tf.layers.flatten({ name: layerName }), t), layout: "NF", layerName }, layerName };
    }
    case "Concat": {
      if (inputs.every((i) => values.get(i)?.kind === "constant")) {
        // Shape arithmetic (e.g. [N] ++ [-1] for a Reshape target): folded here.
        const consts = inputs.map((i) => constantOf(values, i, label, op, "input"));
        if (consts.some((k) => k.dims.length !== 1)) throw new OnnxImportError(`node ${JSON.stringify(label)} (Concat): constant inputs of dims ${JSON.stringify(consts.map((k) => k.dims))}; expected 1-D (shape vectors)`);
        const data = consts.flatMap((k) => Array.from(k.data));
        return { value: { kind: "constant", dims: [data.length], data: consts.every((k) => Array.isArray(k.data)) ? data : Float32Array.from(data) } };
      }
      const parts = inputs.map((i) => tensorOf(values, i, label, op));
      const rank = parts[0].layout === "NHWC" ? 4 : 2;
      let axis = attrs.int("axis", 1);
      if (axis < 0) axis += rank;
      if (axis !== 1 || parts.some((p) => p.layout !== parts[0].layout)) throw bad("axis", attrs.int("axis", 1), "1 (channels) on inputs of one layout");
      const tensor = apply(tf.layers.concatenate({ axis: -1, name: layerName }), parts.map((p) => p.tensor));
      return { value: { kind: "tensor", tensor, layout: parts[0].layout, nonNegative: parts.every((p) => p.nonNegative), layerName }, layerName };
    }
    case "Sigmoid": {
      const x = tensorOf(values, inputs[0], label, op);
      const layer = tf.layers.activation({ activation: "sigmoid", name: layerName });
      return { value: { ...x, tensor: apply(layer, x.tensor), nonNegative: true, layerName }, layerName };
    }
    case "Softmax": {
      const x = tensorOf(values, inputs[0], label, op);
      const axis = attrs.int("axis", opsetVersion >= 13 ? -1 : 1);
      if (x.layout !== "NF" || !(axis === -1 || axis === 1)) throw bad("axis", axis, "-1 or 1 on [N, classes] scores");
      const layer = tf.layers.softmax({ axis: -1, name: layerName });
      return { value: { ...x, tensor: apply(layer, x.tensor), nonNegative: true, layerName }, layerName };
    }
    case "Pad": {
      const x = as4d(tensorOf(values, inputs[0], label, op), label, op, uniqueName);
      const mode = attrs.string("mode", "constant");
      if (mode !== "constant") throw bad("mode", mode, '"constant"');
      const pads = opsetVersion >= 11 ? (constantOf(values, inputs[1], label, op, "pads").data as number[]).map(Number) : attrs.ints("pads", []);
      const fill = opsetVersion >= 11 ? (inputs[2] ? floatsOf(constantOf(values, inputs[2], label, op, "constant_value"))[0] : 0) : attrs.float("value", 0);
      if (fill !== 0) throw bad("constant_value", fill, "0 (zero padding)");
      // ONNX pads [N, C, H, W begins, N, C, H, W ends]: only H and W may be padded.
      if (pads.length !== 8 || pads[0] !== 0 || pads[1] !== 0 || pads[4] !== 0 || pads[5] !== 0 || pads.some((p) => p < 0)) {
        throw bad("pads", pads, "8 non-negative values padding H and W only ([0, 0, top, left, 0, 0, bottom, right])");
      }
      const layer = tf.layers.zeroPadding2d({
        padding: [
          [pads[2], pads[6]],
          [pads[3], pads[7]],
        ],
        name: layerName,
      });
      return { value: { ...x, tensor: apply(layer, x.tensor), layerName }, layerName };
    }
    case "ReduceMean": {
      const x = tensorOf(values, inputs[0], label, op);
      const axesSource = opsetVersion >= 18 && inputs[1] ? (constantOf(values, inputs[1], label, op, "axes").data as number[]).map(Number) : attrs.ints("axes", []);
      const axes = axesSource.map((a) => (a < 0 ? a + 4 : a)).sort();
      const keepDims = attrs.int("keepdims", 1) === 1;
      const spatial = x.layout === "ONNX_NHWC" ? "1,2" : "2,3";
      if ((x.layout !== "NHWC" && x.layout !== "ONNX_NHWC") || axes.join() !== spatial) throw bad("axes", axesSource, `[${spatial}] (the spatial axes of a 4-D map)`);
      const pooled = apply(tf.layers.globalAveragePooling2d({ name: layerName }), x.tensor);
      if (x.layout === "NHWC") return { value: { kind: "tensor", tensor: pooled, layout: keepDims ? "NC11" : "NF", nonNegative: x.nonNegative, layerName }, layerName };
      if (!keepDims) return { value: { kind: "tensor", tensor: pooled, layout: "NF", nonNegative: x.nonNegative, layerName }, layerName };
      const ch = pooled.shape[1] as number;
      const kept = apply(tf.layers.reshape({ targetShape: [1, 1, ch], name: uniqueName(`${label}_keepdims`) }), pooled);
      return { value: { kind: "tensor", tensor: kept, layout: "ONNX_NHWC", nonNegative: x.nonNegative, layerName }, layerName };
    }
    case "Transpose": {
      const x = tensorOf(values, inputs[0], label, op);
      const perm = attrs.ints("perm", []).join();
      // The stored tensor is NHWC either way: only the ONNX meaning of its axes changes.
      if (x.layout === "ONNX_NHWC" && perm === "0,3,1,2") return { value: { ...x, layout: "NHWC" } };
      if (x.layout === "NHWC" && perm === "0,2,3,1") return { value: { ...x, layout: "ONNX_NHWC" } };
      if (x.layout === "NF" && perm === "0,1") return { value: x };
      throw bad("perm", attrs.ints("perm", []), x.layout === "NHWC" ? "[0, 2, 3, 1] (NCHW → NHWC)" : x.layout === "ONNX_NHWC" ? "[0, 3, 1, 2] (NHWC → NCHW)" : "[0, 1]");
    }
    case "Squeeze":
    case "Unsqueeze": {
      const axesSource = opsetVersion >= 13 && inputs[1] ? (constantOf(values, inputs[1], label, op, "axes").data as number[]).map(Number) : attrs.ints("axes", []);
      const v = values.get(inputs[0]);
      if (!v) throw new OnnxImportError(`node ${JSON.stringify(label)} (${op}): input ${JSON.stringify(inputs[0])} is not defined before the node`);
      if (v.kind === "constant") return { value: squeezeConstant(op, v, axesSource, label) };
      if (op === "Squeeze") {
        const axes = axesSource.map((a) => (a < 0 ? a + 4 : a)).sort().join();
        if (v.layout === "NC11" && axes === "2,3") return { value: { ...v, layout: "NF" } };
        const spatial = v.layout === "ONNX_NHWC" ? "1,2" : "2,3";
        if ((v.layout === "NHWC" || v.layout === "ONNX_NHWC") && axes === spatial && v.tensor.shape[1] === 1 && v.tensor.shape[2] === 1) {
          const ch = v.tensor.shape[3] as number;
          const tensor = apply(tf.layers.reshape({ targetShape: [ch], name: layerName }), v.tensor);
          return { value: { ...v, tensor, layout: "NF", layerName }, layerName };
        }
        throw bad("axes", axesSource, "the two 1-sized spatial axes of [N, C, 1, 1]");
      }
      const axes = axesSource.map((a) => (a < 0 ? a + 4 : a)).sort().join();
      if (v.layout === "NF" && axes === "2,3") return { value: { ...v, layout: "NC11" } };
      throw bad("axes", axesSource, "[2, 3] on [N, C] (to [N, C, 1, 1])");
    }
    case "Shape": {
      const v = values.get(inputs[0]);
      if (!v) throw new OnnxImportError(`node ${JSON.stringify(label)} (Shape): input ${JSON.stringify(inputs[0])} is not defined before the node`);
      let shape: number[];
      if (v.kind === "constant") shape = v.dims.slice();
      else {
        const s = v.tensor.shape.slice(1) as number[];
        // The batch size is the only dynamic dim: NaN until a Reshape reads it back as "keep".
        shape = v.layout === "NHWC" ? [NaN, s[2], s[0], s[1]] : v.layout === "NC11" ? [NaN, s[0], 1, 1] : [NaN, ...s];
      }
      const rank = shape.length;
      const clamp = (k: number) => Math.min(rank, Math.max(0, k < 0 ? k + rank : k));
      const sliced = shape.slice(clamp(attrs.int("start", 0)), clamp(attrs.int("end", rank)));
      return { value: { kind: "constant", dims: [sliced.length], data: sliced } };
    }
    case "Gather": {
      const data = constantOf(values, inputs[0], label, op, "data");
      const indices = constantOf(values, inputs[1], label, op, "indices");
      const axis = attrs.int("axis", 0);
      if (data.dims.length !== 1 || axis !== 0 || indices.dims.length > 1) {
        throw new OnnxImportError(`node ${JSON.stringify(label)} (Gather): data dims [${data.dims.join(", ")}], indices dims [${indices.dims.join(", ")}], axis ${axis}; expected a 1-D constant (a shape vector), scalar or 1-D indices, axis 0`);
      }
      const n = data.dims[0];
      const picked = Array.from(indices.data, (i) => {
        const k = i < 0 ? i + n : i;
        if (!(k >= 0 && k < n)) throw new OnnxImportError(`node ${JSON.stringify(label)} (Gather): index ${i} out of range for ${n} values`);
        return data.data[k];
      });
      return { value: { kind: "constant", dims: indices.dims.slice(), data: Array.isArray(data.data) ? picked : Float32Array.from(picked) } };
    }
    case "Cast": {
      const v = values.get(inputs[0]);
      const to = attrs.int("to", 0);
      if (v?.kind === "constant") return { value: { ...v, data: to === DATA_TYPE.FLOAT ? Float32Array.from(v.data) : Array.from(v.data, (d) => (Number.isNaN(d) ? d : Math.trunc(d))) } };
      if (v?.kind === "tensor" && to === DATA_TYPE.FLOAT) return { value: v };
      throw bad("to", to, "FLOAT (1) on a computed tensor, or any type on a constant");
    }
    default:
      throw new OnnxImportError(`node ${JSON.stringify(label)}: op type ${JSON.stringify(op)} is not supported (supported: ${ONNX_IMPORT_OPS.join(", ")})`);
  }
}
