import { createRequire } from "node:module";
import * as tf from "@tensorflow/tfjs";
import type { onnx as OnnxNamespace } from "onnx-proto";
import type * as Ort from "onnxruntime-node";
import { expect } from "vitest";
import { importOnnxModel } from "../../lib/models/onnxImport.js";
import { createRandom } from "../../lib/util/random.js";

// Tiny ONNX graphs built with onnx-proto, run by ONNX Runtime (the reference) and by the importer.

const require = createRequire(import.meta.url);
export const { onnx } = require("onnx-proto") as { onnx: typeof OnnxNamespace };
export const ort = require("onnxruntime-node") as typeof Ort;

export type Attr = { ints: number[] } | { int: number } | { float: number } | { string: string };

function attribute(name: string, value: Attr): OnnxNamespace.AttributeProto {
  const T = onnx.AttributeProto.AttributeType;
  if ("ints" in value) return onnx.AttributeProto.create({ name, type: T.INTS, ints: value.ints });
  if ("int" in value) return onnx.AttributeProto.create({ name, type: T.INT, i: value.int });
  if ("string" in value)
    return onnx.AttributeProto.create({ name, type: T.STRING, s: Buffer.from(value.string, "utf8") });
  return onnx.AttributeProto.create({ name, type: T.FLOAT, f: value.float });
}

/** A node named `<op lower case>/<first output>`. */
export function node(
  opType: string,
  inputs: string[],
  outputs: string[],
  attrs: Record<string, Attr> = {},
): OnnxNamespace.NodeProto {
  return onnx.NodeProto.create({
    opType,
    input: inputs,
    output: outputs,
    name: `${opType.toLowerCase()}/${outputs[0]}`,
    attribute: Object.entries(attrs).map(([k, v]) => attribute(k, v)),
  });
}

/** A float initializer; every other one is stored as float_data instead of raw_data, to read both. */
let initializerCount = 0;
export function initializer(name: string, dims: number[], values: ArrayLike<number>): OnnxNamespace.TensorProto {
  const data = Float32Array.from(values);
  const useRaw = initializerCount++ % 2 === 0;
  return onnx.TensorProto.create({
    name,
    dims,
    dataType: onnx.TensorProto.DataType.FLOAT,
    ...(useRaw ? { rawData: new Uint8Array(data.buffer) } : { floatData: Array.from(data) }),
  });
}

/** An int64 initializer (shapes, pads, axes, indices). */
export function int64Initializer(name: string, dims: number[], values: number[]): OnnxNamespace.TensorProto {
  return onnx.TensorProto.create({ name, dims, dataType: onnx.TensorProto.DataType.INT64, int64Data: values });
}

/** `count` values uniform in [−scale, scale) from `seed`. */
export function randomValues(count: number, seed: number, scale = 1): number[] {
  const rand = createRandom(seed);
  return Array.from({ length: count }, () => (rand() * 2 - 1) * scale);
}

export function valueInfo(name: string, dims: (number | string)[]): OnnxNamespace.ValueInfoProto {
  return onnx.ValueInfoProto.create({
    name,
    type: {
      tensorType: {
        elemType: onnx.TensorProto.DataType.FLOAT,
        shape: { dim: dims.map((d) => (typeof d === "string" ? { dimParam: d } : { dimValue: d })) },
      },
    },
  });
}

export function buildModel(
  nodes: OnnxNamespace.NodeProto[],
  inits: OnnxNamespace.TensorProto[],
  input: OnnxNamespace.ValueInfoProto,
  outputs: OnnxNamespace.ValueInfoProto[],
  opset = 13,
): Uint8Array {
  const model = onnx.ModelProto.create({
    irVersion: opset >= 13 ? 8 : opset >= 11 ? 6 : 4,
    opsetImport: [{ domain: "", version: opset }],
    producerName: "melanoma-lab test",
    graph: { name: "tiny", node: nodes, initializer: inits, input: [input], output: outputs },
  });
  return onnx.ModelProto.encode(model).finish();
}

/**
 * Runs `bytes` in ONNX Runtime (graph optimisations "all") and in its tfjs import on the same
 * input of the file's shape `onnxShape` (NCHW, or NHWC for an NHWC-input file), with values in
 * [−inputScale, inputScale); returns the max abs difference of the first output.
 */
export async function compareWithOrt(
  bytes: Uint8Array,
  onnxShape: number[],
  seed: number,
  inputScale = 2,
): Promise<{ maxAbs: number; shape: number[]; ortData: Float32Array }> {
  const input = Float32Array.from(
    randomValues(
      onnxShape.reduce((a, b) => a * b, 1),
      seed,
      inputScale,
    ),
  );
  const session = await ort.InferenceSession.create(bytes, { graphOptimizationLevel: "all" });
  const result = await session.run({ [session.inputNames[0]]: new ort.Tensor("float32", input, onnxShape) });
  const ortOut = result[session.outputNames[0]];
  const ortData = ortOut.data as Float32Array;
  await session.release();
  const imported = importOnnxModel(bytes);
  const got = tf.tidy(() => {
    const raw = tf.tensor(input, onnxShape);
    const x = imported.inputLayout === "NCHW" ? raw.transpose([0, 2, 3, 1]) : raw;
    let y = imported.model.predict(x) as tf.Tensor;
    if (y.rank === 4) y = y.transpose([0, 3, 1, 2]);
    return { data: y.dataSync() as Float32Array, shape: y.shape };
  });
  imported.model.dispose();
  expect(got.shape).toEqual(ortOut.dims.map(Number));
  let maxAbs = 0;
  for (let i = 0; i < ortData.length; i++) maxAbs = Math.max(maxAbs, Math.abs(ortData[i] - got.data[i]));
  return { maxAbs, shape: got.shape, ortData };
}
