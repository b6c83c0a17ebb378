import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import * as tf from "@tensorflow/tfjs";
import onnxProto from "onnx-proto";
import { MelanomaLabError } from "../util/errors.js";
import { findProjectRoot } from "../util/paths.js";
import { samePadding } from "./inferencePlan.js";
import type { Backbone, BackboneOnnxFile } from "./types.js";

const { onnx } = onnxProto;

/**
 * Thrown when a tfjs model cannot be written as ONNX: a layer class or configuration the
 * exporter does not translate. The message names the layer, its class and the config key.
 */
export class OnnxExportError extends MelanomaLabError {}

/** ONNX operator set the exporter writes (default domain). */
export const ONNX_OPSET = 13;

/** What {@link convertLayersModelToOnnx} produced. */
export interface OnnxConversion {
  /** Serialised ModelProto (the bytes of a `.onnx` file). */
  bytes: Uint8Array;
  /** Graph input names in model input order; each takes the same NHWC float batch [n, H, W, C] as the tfjs input. */
  inputNames: string[];
  /** Graph output name; same shape and layout as the tfjs model's output. */
  outputName: string;
  opset: number;
  /** ONNX nodes in the graph. */
  nodeCount: number;
}

/** Options of {@link convertLayersModelToOnnx}. */
export interface OnnxConversionOptions {
  /** Graph output name (default: the tfjs output layer's name). */
  outputName?: string;
  /** Graph name written into the file (default: the model's name). */
  graphName?: string;
}

type Config = Record<string, unknown>;
interface LayerVariableLike {
  read(): tf.Tensor;
}
/** An ONNX value while the graph is built: its name and the tfjs (Keras) shape it stands for. */
interface OnnxValue {
  name: string;
  /** tfjs shape (NHWC for images); a rank-4 value is held as NCHW inside the ONNX graph. */
  shape: (number | null)[];
}

const FLOAT = onnx.TensorProto.DataType.FLOAT;
const INT64 = onnx.TensorProto.DataType.INT64;

/** Builds the ONNX graph of one model while layers are visited. */
class GraphBuilder {
  readonly nodes: InstanceType<typeof onnx.NodeProto>[] = [];
  readonly initializers: InstanceType<typeof onnx.TensorProto>[] = [];
  private readonly used = new Set<string>();

  uniqueName(base: string): string {
    const clean = base.replace(/[^A-Za-z0-9_./-]/g, "_") || "value";
    let name = clean;
    for (let i = 1; this.used.has(name); i++) name = `${clean}_${i}`;
    this.used.add(name);
    return name;
  }

  addFloat(base: string, values: Float32Array, dims: number[]): string {
    const name = this.uniqueName(base);
    this.initializers.push(
      onnx.TensorProto.create({
        name,
        dims,
        dataType: FLOAT,
        rawData: new Uint8Array(values.buffer.slice(values.byteOffset, values.byteOffset + values.byteLength)),
      }),
    );
    return name;
  }

  addInt64(base: string, values: number[]): string {
    const name = this.uniqueName(base);
    const data = BigInt64Array.from(values.map((v) => BigInt(v)));
    this.initializers.push(
      onnx.TensorProto.create({ name, dims: [values.length], dataType: INT64, rawData: new Uint8Array(data.buffer) }),
    );
    return name;
  }

  /** Appends a node and returns its (single) output name. */
  add(opType: string, inputs: string[], base: string, attributes: Record<string, number | number[]> = {}): string {
    const output = this.uniqueName(base);
    const attribute = Object.entries(attributes).map(([name, value]) =>
      Array.isArray(value)
        ? onnx.AttributeProto.create({ name, type: onnx.AttributeProto.AttributeType.INTS, ints: value })
        : Number.isInteger(value) && name !== "epsilon" && name !== "alpha"
          ? onnx.AttributeProto.create({ name, type: onnx.AttributeProto.AttributeType.INT, i: value })
          : onnx.AttributeProto.create({ name, type: onnx.AttributeProto.AttributeType.FLOAT, f: value }),
    );
    this.nodes.push(onnx.NodeProto.create({ opType, input: inputs, output: [output], name: output, attribute }));
    return output;
  }
}

const NHWC_TO_NCHW = [0, 3, 1, 2];
const NCHW_TO_NHWC = [0, 2, 3, 1];

function classOf(layer: tf.layers.Layer): string {
  return layer.getClassName();
}

function unsupported(layer: tf.layers.Layer, key: string, value: unknown, expected: string): OnnxExportError {
  return new OnnxExportError(
    `layer ${layer.name} (${classOf(layer)}): config ${key} ${JSON.stringify(value)} is not supported by the ONNX exporter; expected ${expected}`,
  );
}

function pairOf(layer: tf.layers.Layer, key: string, fallback?: number): [number, number] {
  const value = (layer.getConfig() as Config)[key] ?? fallback;
  if (typeof value === "number") return [value, value];
  if (Array.isArray(value) && value.length === 2 && value.every((v) => typeof v === "number")) {
    return [value[0] as number, value[1] as number];
  }
  throw unsupported(layer, key, value, "a number or a pair of numbers");
}

/** ONNX `pads` ([top, left, bottom, right]) for a tfjs "same"/"valid" window over a known NHWC input. */
function windowPads(
  layer: tf.layers.Layer,
  input: OnnxValue,
  kernel: [number, number],
  strides: [number, number],
  dilations: [number, number],
): number[] {
  const padding = (layer.getConfig() as Config).padding;
  if (padding === "valid") return [0, 0, 0, 0];
  if (padding !== "same") throw unsupported(layer, "padding", padding, '"same" or "valid"');
  const [h, w] = [input.shape[1], input.shape[2]];
  if (typeof h !== "number" || typeof w !== "number") {
    throw new OnnxExportError(
      `layer ${layer.name} (${classOf(layer)}): input shape ${JSON.stringify(input.shape)} has an unknown height or width; expected a fixed image size for "same" padding`,
    );
  }
  const [top, bottom] = samePadding(h, kernel[0], strides[0], dilations[0]);
  const [left, right] = samePadding(w, kernel[1], strides[1], dilations[1]);
  return [top, left, bottom, right];
}

function checkChannelsLast(layer: tf.layers.Layer): void {
  const dataFormat = (layer.getConfig() as Config).dataFormat ?? "channelsLast";
  if (dataFormat !== "channelsLast") throw unsupported(layer, "dataFormat", dataFormat, '"channelsLast"');
}

function readVariable(layer: tf.layers.Layer, field: string): Float32Array | undefined {
  const variable = (layer as unknown as Record<string, LayerVariableLike | null | undefined>)[field];
  // read() hands back the variable's own tensor (nothing allocated); dataSync copies its values.
  return variable ? (variable.read().dataSync() as Float32Array) : undefined;
}

function requireVariable(layer: tf.layers.Layer, field: string): Float32Array {
  const values = readVariable(layer, field);
  if (!values) {
    throw new OnnxExportError(
      `layer ${layer.name} (${classOf(layer)}): weight ${field} not found; expected a built layer`,
    );
  }
  return values;
}

/** Keras axis of a rank-`rank` tensor → ONNX axis (rank-4 values are NCHW inside the graph). */
function onnxAxis(layer: tf.layers.Layer, key: string, axis: number, rank: number): number {
  const a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= rank) throw unsupported(layer, key, axis, `an axis of a rank-${rank} tensor`);
  if (rank !== 4) return a;
  return [0, 2, 3, 1][a];
}

/** Appends the activation named by a layer's `activation` config (or an Activation layer). */
function emitActivation(g: GraphBuilder, layer: tf.layers.Layer, x: OnnxValue, activation: unknown): OnnxValue {
  const base = `${layer.name}_${String(activation)}`;
  switch (activation) {
    case undefined:
    case null:
    case "linear":
      return x;
    case "relu":
      return { ...x, name: g.add("Relu", [x.name], base) };
    case "relu6":
      return emitClip(g, x, 0, 6, base);
    case "sigmoid":
      return { ...x, name: g.add("Sigmoid", [x.name], base) };
    case "tanh":
      return { ...x, name: g.add("Tanh", [x.name], base) };
    case "elu":
      return { ...x, name: g.add("Elu", [x.name], base, { alpha: 1 }) };
    case "softmax":
      // tfjs softmax runs over the last (channel) axis.
      return { ...x, name: g.add("Softmax", [x.name], base, { axis: onnxAxis(layer, "axis", -1, x.shape.length) }) };
    default:
      throw unsupported(layer, "activation", activation, "linear, relu, relu6, sigmoid, tanh, elu or softmax");
  }
}

function emitClip(g: GraphBuilder, x: OnnxValue, min: number, max: number, base: string): OnnxValue {
  const minName = g.addFloat(`${base}_min`, Float32Array.of(min), []);
  const maxName = g.addFloat(`${base}_max`, Float32Array.of(max), []);
  return { ...x, name: g.add("Clip", [x.name, minName, maxName], base) };
}

function requireRank(layer: tf.layers.Layer, x: OnnxValue, ranks: number[]): void {
  if (!ranks.includes(x.shape.length)) {
    throw new OnnxExportError(
      `layer ${layer.name} (${classOf(layer)}): input shape ${JSON.stringify(x.shape)} has rank ${x.shape.length}; the ONNX exporter expects rank ${ranks.join(" or ")} here`,
    );
  }
}

/** One convolution (Conv2D or DepthwiseConv2D): tfjs HWIO / HW-in-multiplier kernels become ONNX OIHW. */
function emitConv(g: GraphBuilder, layer: tf.layers.Layer, x: OnnxValue, outShape: (number | null)[]): OnnxValue {
  requireRank(layer, x, [4]);
  checkChannelsLast(layer);
  const depthwise = classOf(layer) === "DepthwiseConv2D";
  const kernelSize = pairOf(layer, "kernelSize");
  const strides = pairOf(layer, "strides", 1);
  const dilations = pairOf(layer, "dilationRate", 1);
  const kernel = requireVariable(layer, depthwise ? "depthwiseKernel" : "kernel");
  const [kh, kw] = kernelSize;
  const inChannels = x.shape[3] as number;
  // Depthwise: [kh, kw, in, multiplier], output channel c * multiplier + m; Conv2D: [kh, kw, in, out].
  const outChannels = depthwise ? kernel.length / (kh * kw) : kernel.length / (kh * kw * inChannels);
  const perGroupIn = depthwise ? 1 : inChannels;
  const weights = new Float32Array(kernel.length);
  for (let o = 0; o < outChannels; o++) {
    for (let i = 0; i < perGroupIn; i++) {
      for (let r = 0; r < kh; r++) {
        for (let c = 0; c < kw; c++) {
          // Depthwise output o reads input channel o / multiplier; its HWIO index flattens to o.
          const source = depthwise ? (r * kw + c) * outChannels + o : ((r * kw + c) * inChannels + i) * outChannels + o;
          weights[((o * perGroupIn + i) * kh + r) * kw + c] = kernel[source];
        }
      }
    }
  }
  const inputs = [x.name, g.addFloat(`${layer.name}_weight`, weights, [outChannels, perGroupIn, kh, kw])];
  const useBias = (layer.getConfig() as Config).useBias !== false;
  const bias = useBias ? readVariable(layer, "bias") : undefined;
  if (bias) inputs.push(g.addFloat(`${layer.name}_bias`, bias, [outChannels]));
  const name = g.add("Conv", inputs, layer.name, {
    kernel_shape: kernelSize,
    strides,
    dilations,
    pads: windowPads(layer, x, kernelSize, strides, dilations),
    group: depthwise ? inChannels : 1,
  });
  return emitActivation(g, layer, { name, shape: outShape }, (layer.getConfig() as Config).activation);
}

function emitBatchNorm(g: GraphBuilder, layer: tf.layers.Layer, x: OnnxValue): OnnxValue {
  requireRank(layer, x, [2, 4]);
  const config = layer.getConfig() as Config;
  const axis = Array.isArray(config.axis) && config.axis.length === 1 ? config.axis[0] : config.axis;
  const rank = x.shape.length;
  if (typeof axis !== "number" || (axis !== -1 && axis !== rank - 1)) {
    throw unsupported(layer, "axis", config.axis, "-1 (the channel axis)");
  }
  const mean = requireVariable(layer, "movingMean");
  const variance = requireVariable(layer, "movingVariance");
  const channels = mean.length;
  const gamma = (config.scale !== false && readVariable(layer, "gamma")) || new Float32Array(channels).fill(1);
  const beta = (config.center !== false && readVariable(layer, "beta")) || new Float32Array(channels);
  const inputs = [
    x.name,
    g.addFloat(`${layer.name}_gamma`, gamma, [channels]),
    g.addFloat(`${layer.name}_beta`, beta, [channels]),
    g.addFloat(`${layer.name}_mean`, mean, [channels]),
    g.addFloat(`${layer.name}_variance`, variance, [channels]),
  ];
  return { ...x, name: g.add("BatchNormalization", inputs, layer.name, { epsilon: config.epsilon as number }) };
}

function emitDense(g: GraphBuilder, layer: tf.layers.Layer, x: OnnxValue, outShape: (number | null)[]): OnnxValue {
  requireRank(layer, x, [2]);
  const kernel = requireVariable(layer, "kernel");
  const inUnits = x.shape[1] as number;
  const units = kernel.length / inUnits;
  const inputs = [x.name, g.addFloat(`${layer.name}_kernel`, kernel, [inUnits, units])];
  const bias = (layer.getConfig() as Config).useBias !== false ? readVariable(layer, "bias") : undefined;
  if (bias) inputs.push(g.addFloat(`${layer.name}_bias`, bias, [units]));
  const name = g.add("Gemm", inputs, layer.name);
  return emitActivation(g, layer, { name, shape: outShape }, (layer.getConfig() as Config).activation);
}

function emitPooling(g: GraphBuilder, layer: tf.layers.Layer, x: OnnxValue, outShape: (number | null)[]): OnnxValue {
  requireRank(layer, x, [4]);
  checkChannelsLast(layer);
  const max = classOf(layer) === "MaxPooling2D";
  const kernel = pairOf(layer, "poolSize", 2);
  const config = layer.getConfig() as Config;
  const strides = config.strides == null ? kernel : pairOf(layer, "strides");
  const pads = windowPads(layer, x, kernel, strides, [1, 1]);
  // TensorFlow's "same" average pooling divides by the pixels inside the image only.
  const attributes: Record<string, number[] | number> = { kernel_shape: kernel, strides, pads };
  if (!max) attributes.count_include_pad = 0;
  return { name: g.add(max ? "MaxPool" : "AveragePool", [x.name], layer.name, attributes), shape: outShape };
}

function emitGlobalPooling(
  g: GraphBuilder,
  layer: tf.layers.Layer,
  x: OnnxValue,
  outShape: (number | null)[],
): OnnxValue {
  requireRank(layer, x, [4]);
  checkChannelsLast(layer);
  const op = classOf(layer) === "GlobalMaxPooling2D" ? "GlobalMaxPool" : "GlobalAveragePool";
  const pooled = g.add(op, [x.name], layer.name);
  // [n, C, 1, 1] is NCHW of keepDims' [n, 1, 1, C]; without keepDims it flattens to [n, C].
  if (outShape.length === 4) return { name: pooled, shape: outShape };
  return { name: g.add("Flatten", [pooled], `${layer.name}_flatten`, { axis: 1 }), shape: outShape };
}

/** A rank-4 value back in tfjs's NHWC order (for layers whose result depends on memory order). */
function toNhwc(g: GraphBuilder, layer: tf.layers.Layer, x: OnnxValue): string {
  return x.shape.length === 4 ? g.add("Transpose", [x.name], `${layer.name}_nhwc`, { perm: NCHW_TO_NHWC }) : x.name;
}

function emitReshape(g: GraphBuilder, layer: tf.layers.Layer, x: OnnxValue, outShape: (number | null)[]): OnnxValue {
  const source = toNhwc(g, layer, x);
  let name: string;
  if (classOf(layer) === "Flatten") {
    name = g.add("Flatten", [source], layer.name, { axis: 1 });
  } else {
    const target = (layer.getConfig() as Config).targetShape;
    if (!Array.isArray(target) || !target.every((v) => typeof v === "number")) {
      throw unsupported(layer, "targetShape", target, "an array of numbers");
    }
    // 0 copies the batch size from the input (allowzero defaults to 0 in opset 13).
    name = g.add("Reshape", [source, g.addInt64(`${layer.name}_shape`, [0, ...(target as number[])])], layer.name);
  }
  if (outShape.length === 4) name = g.add("Transpose", [name], `${layer.name}_nchw`, { perm: NHWC_TO_NCHW });
  return { name, shape: outShape };
}

function emitZeroPadding(
  g: GraphBuilder,
  layer: tf.layers.Layer,
  x: OnnxValue,
  outShape: (number | null)[],
): OnnxValue {
  requireRank(layer, x, [4]);
  checkChannelsLast(layer);
  const p = (layer.getConfig() as Config).padding;
  const axis = (v: unknown): [number, number] | undefined =>
    typeof v === "number"
      ? [v, v]
      : Array.isArray(v) && v.length === 2 && v.every((n) => typeof n === "number")
        ? [v[0], v[1]]
        : undefined;
  const pair = Array.isArray(p) && p.length === 2 ? [axis(p[0]), axis(p[1])] : [axis(p), axis(p)];
  if (!pair[0] || !pair[1]) throw unsupported(layer, "padding", p, "a number or [[top, bottom], [left, right]]");
  const [[top, bottom], [left, right]] = pair as [[number, number], [number, number]];
  const pads = g.addInt64(`${layer.name}_pads`, [0, 0, top, left, 0, 0, bottom, right]);
  return { name: g.add("Pad", [x.name, pads], layer.name, {}), shape: outShape };
}

function emitMerge(g: GraphBuilder, layer: tf.layers.Layer, xs: OnnxValue[], outShape: (number | null)[]): OnnxValue {
  const rank = xs[0].shape.length;
  if (xs.some((x) => x.shape.length !== rank)) {
    throw new OnnxExportError(
      `layer ${layer.name} (${classOf(layer)}): inputs of ranks ${xs.map((x) => x.shape.length).join(", ")}; expected equal ranks`,
    );
  }
  const names = xs.map((x) => x.name);
  if (classOf(layer) === "Concatenate") {
    const axis = ((layer.getConfig() as Config).axis as number | undefined) ?? -1;
    return {
      name: g.add("Concat", names, layer.name, { axis: onnxAxis(layer, "axis", axis, rank) }),
      shape: outShape,
    };
  }
  return { name: g.add(xs.length === 2 ? "Add" : "Sum", names, layer.name), shape: outShape };
}

function emitReLU(g: GraphBuilder, layer: tf.layers.Layer, x: OnnxValue): OnnxValue {
  const config = layer.getConfig() as Config;
  for (const key of ["negativeSlope", "threshold"] as const) {
    if (config[key] != null && config[key] !== 0) throw unsupported(layer, key, config[key], "0 (or absent)");
  }
  const maxValue = config.maxValue as number | null | undefined;
  if (maxValue == null) return { ...x, name: g.add("Relu", [x.name], layer.name) };
  return emitClip(g, x, 0, maxValue, layer.name);
}

/** Symbolic tensors of `model` from its inputs to its outputs, each after the tensors it reads. */
function orderTensors(model: tf.LayersModel): tf.SymbolicTensor[] {
  const inputIds = new Set(model.inputs.map((t) => t.id));
  const order: tf.SymbolicTensor[] = [];
  const state = new Map<number, "visiting" | "done">();
  const visit = (t: tf.SymbolicTensor): void => {
    if (state.get(t.id) === "done") return;
    if (state.get(t.id) === "visiting") {
      throw new OnnxExportError(`model ${model.name}: tensor ${t.name} depends on itself; expected an acyclic graph`);
    }
    state.set(t.id, "visiting");
    if (!inputIds.has(t.id)) for (const input of t.inputs) visit(input);
    state.set(t.id, "done");
    order.push(t);
  };
  for (const output of model.outputs) visit(output);
  return order;
}

/** Emits `model`'s graph reading `inputs` (one per model input) and returns its outputs: nested models inline. */
function emitModel(g: GraphBuilder, model: tf.LayersModel, inputs: OnnxValue[]): OnnxValue[] {
  const values = new Map<number, OnnxValue>(model.inputs.map((t, i) => [t.id, inputs[i]]));
  for (const t of orderTensors(model)) {
    if (values.has(t.id)) continue;
    const layer = t.sourceLayer;
    const xs = t.inputs.map((input) => {
      const value = values.get(input.id);
      if (!value) {
        throw new OnnxExportError(
          `layer ${layer.name} (${classOf(layer)}): reads ${input.name}, which is not computed from the model's inputs`,
        );
      }
      return value;
    });
    if (xs.length === 0) {
      throw new OnnxExportError(
        `layer ${layer.name} (${classOf(layer)}): has no inputs; expected a layer fed by the model's inputs`,
      );
    }
    values.set(t.id, emitLayer(g, layer, xs, t.shape));
  }
  return model.outputs.map((t) => values.get(t.id)!);
}

function emitLayer(g: GraphBuilder, layer: tf.layers.Layer, xs: OnnxValue[], outShape: (number | null)[]): OnnxValue {
  if (layer instanceof tf.LayersModel) {
    if (layer.outputs.length !== 1) {
      throw new OnnxExportError(
        `layer ${layer.name} (${classOf(layer)}): a nested model with ${layer.outputs.length} outputs; expected one`,
      );
    }
    return emitModel(g, layer, xs)[0];
  }
  const className = classOf(layer);
  const one = () => {
    if (xs.length !== 1) {
      throw new OnnxExportError(`layer ${layer.name} (${className}): ${xs.length} inputs; expected one`);
    }
    return xs[0];
  };
  switch (className) {
    case "Conv2D":
    case "DepthwiseConv2D":
      return emitConv(g, layer, one(), outShape);
    case "BatchNormalization":
      return emitBatchNorm(g, layer, one());
    case "ReLU":
      return emitReLU(g, layer, one());
    case "Activation":
      return emitActivation(g, layer, one(), (layer.getConfig() as Config).activation);
    case "ZeroPadding2D":
      return emitZeroPadding(g, layer, one(), outShape);
    case "Add":
    case "Concatenate":
      return emitMerge(g, layer, xs, outShape);
    case "GlobalAveragePooling2D":
    case "GlobalMaxPooling2D":
      return emitGlobalPooling(g, layer, one(), outShape);
    case "AveragePooling2D":
    case "MaxPooling2D":
      return emitPooling(g, layer, one(), outShape);
    case "Dense":
      return emitDense(g, layer, one(), outShape);
    case "Dropout":
      return one();
    case "Flatten":
    case "Reshape":
      return emitReshape(g, layer, one(), outShape);
    default:
      throw new OnnxExportError(
        `layer ${layer.name}: class ${className} is not supported by the ONNX exporter; expected one of Conv2D, DepthwiseConv2D, BatchNormalization, ReLU, Activation, ZeroPadding2D, Add, Concatenate, GlobalAveragePooling2D, GlobalMaxPooling2D, AveragePooling2D, MaxPooling2D, Dense, Dropout, Flatten, Reshape or a nested model`,
      );
  }
}

function valueInfo(name: string, shape: (number | null)[]): InstanceType<typeof onnx.ValueInfoProto> {
  return onnx.ValueInfoProto.create({
    name,
    type: {
      tensorType: {
        elemType: FLOAT,
        shape: {
          dim: shape.map((d, i) => (typeof d === "number" ? { dimValue: d } : { dimParam: i === 0 ? "n" : `d${i}` })),
        },
      },
    },
  });
}

/**
 * Translates a tfjs LayersModel (a backbone, a head, or a triage model nesting them, with one
 * or more image inputs) into an ONNX ModelProto (opset {@link ONNX_OPSET}) with the same inputs
 * and output: each input takes the preprocessed NHWC float batch [n, H, W, C] the tfjs model
 * takes, is transposed once to NCHW, and convolution weights are transposed to OIHW (depthwise
 * kernels become grouped convolutions); BatchNormalization stays an explicit node (ONNX Runtime
 * folds it into the conv); nested models are inlined; Dropout is the identity. Weights are
 * read from the model as it is now. Throws {@link OnnxExportError} naming the layer, class and
 * config key of anything it cannot translate. Allocates no tensors.
 *
 * @example
 * const { bytes, inputNames, outputName } = convertLayersModelToOnnx(triageModel); // inputNames[0] takes [n, 224, 224, 3]
 */
export function convertLayersModelToOnnx(model: tf.LayersModel, options: OnnxConversionOptions = {}): OnnxConversion {
  if (model.outputs.length !== 1) {
    throw new OnnxExportError(`model ${model.name}: ${model.outputs.length} outputs; expected one`);
  }
  const g = new GraphBuilder();
  const graphInputs = model.inputs.map((t) => valueInfo(g.uniqueName(t.sourceLayer.name), t.shape));
  const outputName = options.outputName ?? model.outputs[0].sourceLayer.name;
  g.uniqueName(outputName);
  const inputs = model.inputs.map((t, i): OnnxValue => {
    const name = graphInputs[i].name!;
    if (t.shape.length !== 4) return { name, shape: t.shape };
    return { name: g.add("Transpose", [name], `${name}_nchw`, { perm: NHWC_TO_NCHW }), shape: t.shape };
  });
  const [out] = emitModel(g, model, inputs);
  const outShape = model.outputs[0].shape;
  // The last node writes the graph output under its public name (an Identity when it is an input).
  const last = g.nodes[g.nodes.length - 1];
  if (outShape.length === 4) {
    g.nodes.push(
      onnx.NodeProto.create({
        opType: "Transpose",
        input: [out.name],
        output: [outputName],
        name: outputName,
        attribute: [
          onnx.AttributeProto.create({
            name: "perm",
            type: onnx.AttributeProto.AttributeType.INTS,
            ints: NCHW_TO_NHWC,
          }),
        ],
      }),
    );
  } else if (last && last.output[0] === out.name) {
    last.output[0] = outputName;
  } else {
    g.nodes.push(
      onnx.NodeProto.create({ opType: "Identity", input: [out.name], output: [outputName], name: outputName }),
    );
  }
  const proto = onnx.ModelProto.create({
    irVersion: 8,
    producerName: "melanoma-lab",
    producerVersion: "1",
    opsetImport: [{ domain: "", version: ONNX_OPSET }],
    graph: {
      name: options.graphName ?? model.name,
      node: g.nodes,
      initializer: g.initializers,
      input: graphInputs,
      output: [valueInfo(outputName, outShape)],
    },
  });
  return {
    bytes: onnx.ModelProto.encode(proto).finish(),
    inputNames: graphInputs.map((v) => v.name!),
    outputName,
    opset: ONNX_OPSET,
    nodeCount: g.nodes.length,
  };
}

/**
 * The tfjs model of `backbone` as an ONNX file for ONNX Runtime ({@link convertLayersModelToOnnx};
 * input: the preprocessed NHWC batch, output `features` [n, featureDim], the model's output
 * flattened as tfjs flattens it), cached in `cacheDir` (default `<project root>/.cache/onnx`)
 * under a key of the backbone's name, weights id, feature layer, sizes and weight values, so a
 * model is converted once per machine. Changes nothing on `backbone`: the file belongs to these
 * weights, and a copy of the backbone with another model must not inherit it. Throws
 * {@link OnnxExportError} naming the layer when the model does not convert.
 *
 * @example const file = convertBackboneToOnnxFile(await loadBackbone("inception_v3")); // file.path ends in .onnx
 */
export function convertBackboneToOnnxFile(backbone: Backbone, options: { cacheDir?: string } = {}): BackboneOnnxFile {
  const dir = path.resolve(options.cacheDir ?? path.join(findProjectRoot(), ".cache", "onnx"));
  const identity = [backbone.name, backbone.weightsId, backbone.featureLayerName, backbone.inputSizePx, backbone.featureDim];
  const keyHash = crypto.createHash("sha256").update(JSON.stringify(identity));
  // The weights' values are in the key too (not their names, which tfjs numbers per load): two
  // models under the same name and weights id (a fine-tuned copy, a test's random model) must
  // not share a converted file.
  for (const weight of backbone.model.weights) {
    const values = weight.read().dataSync();
    keyHash.update(JSON.stringify(weight.shape)).update(new Uint8Array(values.buffer, values.byteOffset, values.byteLength));
  }
  const key = keyHash.digest("hex").slice(0, 16);
  const file = path.join(dir, `${backbone.name.replace(/[^A-Za-z0-9._-]/g, "_")}-${key}.onnx`);
  const namesFile = `${file}.json`;
  if (!fs.existsSync(file) || !fs.existsSync(namesFile)) {
    const conversion = convertLayersModelToOnnx(backbone.model, { outputName: "features" });
    if (conversion.inputNames.length !== 1) {
      throw new OnnxExportError(`backbone ${backbone.name}: ${conversion.inputNames.length} inputs; expected one image input`);
    }
    fs.mkdirSync(dir, { recursive: true });
    // Written under temporary names, then renamed: a concurrent run never reads half a file.
    const tmp = `${file}.${process.pid}.tmp`;
    fs.writeFileSync(tmp, conversion.bytes);
    const sha256 = crypto.createHash("sha256").update(conversion.bytes).digest("hex");
    fs.writeFileSync(
      `${namesFile}.${process.pid}.tmp`,
      JSON.stringify({ inputName: conversion.inputNames[0], sha256 }),
    );
    fs.renameSync(tmp, file);
    fs.renameSync(`${namesFile}.${process.pid}.tmp`, namesFile);
  }
  const names = JSON.parse(fs.readFileSync(namesFile, "utf8")) as { inputName: string; sha256?: string };
  // The sidecar records the file's hash (ONNX Runtime's session checks the file against it once),
  // so a cached file is not read and hashed again on every call; older sidecars lack it.
  const sha256 = names.sha256 ?? crypto.createHash("sha256").update(fs.readFileSync(file)).digest("hex");
  return { path: file, sha256, inputName: names.inputName, outputName: "features", layout: "NHWC" };
}

/**
 * The backbone as an ONNX file for ONNX Runtime: `backbone.onnx` when it has one (an ONNX-zoo
 * backbone), else {@link convertBackboneToOnnxFile}'s conversion of its tfjs model, which it
 * also sets as `backbone.onnx` (do not then swap `backbone.model` or spread it into a backbone
 * with other weights). Throws {@link OnnxExportError} naming the layer when the model does not convert.
 *
 * @example const onnxFile = ensureBackboneOnnx(await loadBackbone("inception_v3")); // then runs on ONNX Runtime
 */
export function ensureBackboneOnnx(backbone: Backbone, options: { cacheDir?: string } = {}): BackboneOnnxFile {
  backbone.onnx ??= convertBackboneToOnnxFile(backbone, options);
  return backbone.onnx;
}
