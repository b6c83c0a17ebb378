import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import * as tf from "@tensorflow/tfjs";
import * as ort from "onnxruntime-node";
import onnxProto from "onnx-proto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { selectBackend } from "../../lib/index.js";
import { buildEnsembleTriageModel, makeEnsembleTriageMetadata } from "../../lib/export/ensembleTriageModel.js";
import { checkExportParity } from "../../lib/export/exportParity.js";
import { exportTriageModelOnnx, ONNX_MODEL_FILE, ONNX_TRIAGE_OUTPUT_NAME } from "../../lib/export/onnxExport.js";
import { convertLayersModelToOnnx, OnnxExportError } from "../../lib/models/onnxConvert.js";
import { predictMalignantProbabilityWithOnnx } from "../../lib/export/onnxScoring.js";
import {
  exportTriageModel,
  makeTriageMetadata,
  predictMalignantProbability,
  TriageModelError,
} from "../../lib/export/triageModel.js";
import { createRandom } from "../../lib/util/random.js";
import { buildSeededHead, buildTinyMembers, setSeededWeights, writeRandomJpegs } from "../models/ensembleFixtures.js";

const { onnx } = onnxProto;

/** Runs an ONNX file (bytes) in ONNX Runtime with every graph optimisation on. */
async function runOnnx(bytes: Uint8Array, feeds: Record<string, { data: Float32Array; shape: number[] }>) {
  const session = await ort.InferenceSession.create(bytes, { graphOptimizationLevel: "all", intraOpNumThreads: 1 });
  try {
    const tensors = Object.fromEntries(
      Object.entries(feeds).map(([name, f]) => [name, new ort.Tensor("float32", f.data, f.shape)]),
    );
    const out = await session.run(tensors);
    const first = out[session.outputNames[0]];
    return { data: first.data as Float32Array, dims: [...first.dims] };
  } finally {
    await session.release();
  }
}

function seededFloats(count: number, seed: number, scale = 1): Float32Array {
  const rand = createRandom(seed);
  return Float32Array.from({ length: count }, () => (rand() * 2 - 1) * scale);
}

function maxAbsDifference(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i] - b[i]));
  return max;
}

/** A model using every layer class the exporter translates, with awkward configurations on purpose. */
function buildEveryLayerModel(): tf.LayersModel {
  const inner = (() => {
    const input = tf.input({ shape: [13, 11, 3], name: "inner_in" });
    let x = tf.layers
      .zeroPadding2d({
        padding: [
          [1, 2],
          [0, 1],
        ],
        name: "pad_asym",
      })
      .apply(input) as tf.SymbolicTensor;
    x = tf.layers
      .conv2d({ filters: 4, kernelSize: [3, 2], strides: 2, padding: "valid", name: "conv_valid" })
      .apply(x) as tf.SymbolicTensor;
    x = tf.layers.batchNormalization({ scale: false, name: "bn_noscale" }).apply(x) as tf.SymbolicTensor;
    x = tf.layers.reLU({ maxValue: 6, name: "relu6" }).apply(x) as tf.SymbolicTensor;
    const dw = tf.layers
      .depthwiseConv2d({ kernelSize: 3, depthMultiplier: 2, strides: 2, padding: "same", name: "dw_mult2" })
      .apply(x) as tf.SymbolicTensor;
    const pw = tf.layers
      .conv2d({ filters: 8, kernelSize: 1, strides: 2, activation: "relu6", name: "conv_pw" })
      .apply(x) as tf.SymbolicTensor;
    const added = tf.layers.add({ name: "add" }).apply([dw, pw]) as tf.SymbolicTensor;
    return tf.model({ inputs: input, outputs: added, name: "inner_block" });
  })();
  const input = tf.input({ shape: [13, 11, 3], name: "image" });
  const a = inner.apply(input) as tf.SymbolicTensor; // [4, 3, 8]
  const b = tf.layers
    .conv2d({ filters: 5, kernelSize: 3, strides: [3, 4], padding: "same", activation: "tanh", name: "conv_same" })
    .apply(input) as tf.SymbolicTensor; // [5, 3, 5]
  const avg = tf.layers
    .averagePooling2d({ poolSize: 3, strides: 1, padding: "same", name: "avg_same" })
    .apply(a) as tf.SymbolicTensor;
  const bAvg = tf.layers
    .averagePooling2d({ poolSize: [2, 1], strides: [1, 1], padding: "valid", name: "avg_valid" })
    .apply(b) as tf.SymbolicTensor; // [4, 3, 5]
  const joined = tf.layers.concatenate({ name: "concat" }).apply([avg, bAvg]) as tf.SymbolicTensor; // [4, 3, 13]
  const bn = tf.layers.batchNormalization({ name: "bn_full" }).apply(joined) as tf.SymbolicTensor;
  const maxed = tf.layers
    .maxPooling2d({ poolSize: 2, strides: 1, padding: "same", name: "max_same" })
    .apply(bn) as tf.SymbolicTensor;
  const elu = tf.layers.activation({ activation: "elu", name: "act_elu" }).apply(maxed) as tf.SymbolicTensor;
  const chSoftmax = tf.layers
    .activation({ activation: "softmax", name: "act_softmax4d" })
    .apply(elu) as tf.SymbolicTensor;
  const gap = tf.layers.globalAveragePooling2d({ name: "gap" }).apply(chSoftmax) as tf.SymbolicTensor;
  const gmp = tf.layers.globalMaxPooling2d({ name: "gmp" }).apply(elu) as tf.SymbolicTensor;
  // Flatten and Reshape depend on memory order: NHWC must be restored before them.
  const flat = tf.layers.flatten({ name: "flatten" }).apply(maxed) as tf.SymbolicTensor; // 156
  const reshaped = tf.layers.reshape({ targetShape: [6, 2, 13], name: "reshape4d" }).apply(maxed) as tf.SymbolicTensor;
  const conv6x2 = tf.layers
    .conv2d({ filters: 3, kernelSize: [2, 2], name: "conv_after_reshape" })
    .apply(reshaped) as tf.SymbolicTensor;
  const flat2 = tf.layers
    .reshape({ targetShape: [5 * 1 * 3], name: "reshape_flat" })
    .apply(conv6x2) as tf.SymbolicTensor;
  const features = tf.layers
    .concatenate({ axis: -1, name: "concat2d" })
    .apply([gap, gmp, flat, flat2]) as tf.SymbolicTensor;
  let y = tf.layers.dense({ units: 7, activation: "relu", name: "dense_hidden" }).apply(features) as tf.SymbolicTensor;
  y = tf.layers.dropout({ rate: 0.5, name: "dropout" }).apply(y) as tf.SymbolicTensor;
  y = tf.layers.batchNormalization({ name: "bn_dense" }).apply(y) as tf.SymbolicTensor;
  y = tf.layers.dense({ units: 4, name: "dense_logits" }).apply(y) as tf.SymbolicTensor;
  y = tf.layers.activation({ activation: "softmax", name: "softmax" }).apply(y) as tf.SymbolicTensor;
  y = tf.layers
    .dense({ units: 1, useBias: false, activation: "sigmoid", name: "dense_sum" })
    .apply(y) as tf.SymbolicTensor;
  const model = tf.model({ inputs: input, outputs: y, name: "every_layer" });
  setSeededWeights(model, 5);
  return model;
}

describe("convertLayersModelToOnnx: every supported layer, against tfjs", () => {
  beforeAll(async () => {
    await selectBackend();
  });

  it("matches tfjs within 1e-5 on a model with every layer class (padding, strides, depthwise multiplier, nested model, NHWC-sensitive reshapes)", async () => {
    const model = buildEveryLayerModel();
    const n = 3;
    const data = seededFloats(n * 13 * 11 * 3, 9, 2);
    const before = tf.memory().numTensors;
    const conversion = convertLayersModelToOnnx(model);
    expect(tf.memory().numTensors).toBe(before);
    expect(conversion.inputNames).toEqual(["image"]);
    expect(conversion.outputName).toBe("dense_sum");
    expect(conversion.opset).toBe(13);
    const decoded = onnx.ModelProto.decode(conversion.bytes);
    expect(Number(decoded.opsetImport[0].version)).toBe(13);
    const ops = new Set(decoded.graph!.node!.map((node) => node.opType));
    for (const op of ["Conv", "BatchNormalization", "Clip", "Pad", "Add", "Concat", "AveragePool", "MaxPool"]) {
      expect(ops).toContain(op);
    }
    for (const op of ["GlobalAveragePool", "GlobalMaxPool", "Gemm", "Softmax", "Transpose", "Reshape", "Flatten"]) {
      expect(ops).toContain(op);
    }
    const expected = tf.tidy(() => (model.predict(tf.tensor4d(data, [n, 13, 11, 3])) as tf.Tensor).dataSync());
    const got = await runOnnx(conversion.bytes, { image: { data, shape: [n, 13, 11, 3] } });
    expect(got.dims).toEqual([n, 1]);
    expect(maxAbsDifference(got.data, expected)).toBeLessThan(1e-5);
    // The same check one layer before the end, where values are not squashed by a sigmoid.
    const logits = tf.model({
      inputs: model.inputs,
      outputs: model.getLayer("dense_logits").output as tf.SymbolicTensor,
    });
    const expectedLogits = tf.tidy(() => (logits.predict(tf.tensor4d(data, [n, 13, 11, 3])) as tf.Tensor).dataSync());
    const gotLogits = await runOnnx(convertLayersModelToOnnx(logits).bytes, { image: { data, shape: [n, 13, 11, 3] } });
    expect(gotLogits.dims).toEqual([n, 4]);
    expect(maxAbsDifference(gotLogits.data, expectedLogits)).toBeLessThan(1e-5);
    model.dispose();
  });

  it("keeps a rank-4 output in NHWC order", async () => {
    const input = tf.input({ shape: [6, 5, 3], name: "x" });
    const y = tf.layers
      .conv2d({ filters: 4, kernelSize: 3, padding: "same", name: "c" })
      .apply(input) as tf.SymbolicTensor;
    const model = tf.model({ inputs: input, outputs: y });
    setSeededWeights(model, 2);
    const data = seededFloats(2 * 6 * 5 * 3, 4);
    const expected = tf.tidy(() => (model.predict(tf.tensor4d(data, [2, 6, 5, 3])) as tf.Tensor).dataSync());
    const got = await runOnnx(convertLayersModelToOnnx(model).bytes, { x: { data, shape: [2, 6, 5, 3] } });
    expect(got.dims).toEqual([2, 6, 5, 4]);
    expect(maxAbsDifference(got.data, expected)).toBeLessThan(1e-5);
    model.dispose();
  });

  it("computes a 2×2 convolution and a dense layer to hand-computed values", async () => {
    // Image 2×2×1 [[1, 2], [3, 4]], kernel [[1, 10], [100, 1000]], bias 0.5: 1 + 20 + 300 + 4000 + 0.5.
    const input = tf.input({ shape: [2, 2, 1], name: "x" });
    const conv = tf.layers.conv2d({ filters: 1, kernelSize: 2, name: "c" });
    const dense = tf.layers.dense({ units: 2, name: "d" });
    const flat = tf.layers.flatten().apply(conv.apply(input)) as tf.SymbolicTensor;
    const model = tf.model({ inputs: input, outputs: dense.apply(flat) as tf.SymbolicTensor });
    conv.setWeights([tf.tensor4d([1, 10, 100, 1000], [2, 2, 1, 1]), tf.tensor1d([0.5])]);
    dense.setWeights([tf.tensor2d([[2, -1]]), tf.tensor1d([1, 0])]);
    const got = await runOnnx(convertLayersModelToOnnx(model).bytes, {
      x: { data: Float32Array.of(1, 2, 3, 4), shape: [1, 2, 2, 1] },
    });
    expect(Array.from(got.data)).toEqual([2 * 4321.5 + 1, -4321.5]);
    model.dispose();
  });

  it("names the layer, class and config key of what it cannot translate", () => {
    const input = tf.input({ shape: [8, 8, 3] });
    const leaky = tf.layers.reLU({ name: "leaky" }) as tf.layers.Layer;
    // tfjs's ReLU layer has no negativeSlope: set it as a Keras file would carry it.
    const config = leaky.getConfig();
    leaky.getConfig = () => ({ ...config, negativeSlope: 0.1 });
    const m1 = tf.model({ inputs: input, outputs: leaky.apply(input) as tf.SymbolicTensor });
    expect(() => convertLayersModelToOnnx(m1)).toThrow(OnnxExportError);
    expect(() => convertLayersModelToOnnx(m1)).toThrow(/layer leaky \(ReLU\): config negativeSlope 0\.1/);
    const selu = tf.layers.dense({ units: 2, activation: "selu", name: "dense_selu" });
    const flatIn = tf.input({ shape: [3] });
    const m2 = tf.model({ inputs: flatIn, outputs: selu.apply(flatIn) as tf.SymbolicTensor });
    expect(() => convertLayersModelToOnnx(m2)).toThrow(
      /layer dense_selu \(Dense\): config activation "selu".*expected linear, relu/,
    );
    const up = tf.layers.upSampling2d({ size: [2, 2], name: "upsample" });
    const m3 = tf.model({ inputs: input, outputs: up.apply(input) as tf.SymbolicTensor });
    expect(() => convertLayersModelToOnnx(m3)).toThrow(
      /layer upsample: class UpSampling2D is not supported.*expected one of Conv2D/,
    );
    const bnAxis = tf.layers.batchNormalization({ axis: 1, name: "bn_axis1" });
    const m4 = tf.model({ inputs: input, outputs: bnAxis.apply(input) as tf.SymbolicTensor });
    expect(() => convertLayersModelToOnnx(m4)).toThrow(/layer bn_axis1 \(BatchNormalization\): config axis 1/);
    tf.dispose([m1, m2, m3, m4].flatMap((m) => m.weights.map((w) => w.read())));
  });
});

describe("exportTriageModelOnnx: an ensemble triage model, written beside the tfjs files", () => {
  let tmp: string;
  beforeAll(async () => {
    await selectBackend();
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), "ml-onnx-"));
  });
  afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it("writes model.onnx and metadata.onnx; ONNX Runtime scores the images as tfjs does (three members, two sizes, three preprocessings)", async () => {
    const members = buildTinyMembers(40);
    const head = buildSeededHead(12, 41);
    const triage = buildEnsembleTriageModel(members, head);
    const metadata = makeEnsembleTriageMetadata(members, { thresholdProb: 0.4 });
    const dir = path.join(tmp, "ensemble");
    await exportTriageModel(dir, triage, metadata);
    const before = tf.memory().numTensors;
    const written = await exportTriageModelOnnx(dir, triage, metadata);
    expect(tf.memory().numTensors).toBe(before);
    expect(fs.readdirSync(dir).sort()).toEqual(["metadata.json", "model.json", ONNX_MODEL_FILE, "weights.bin"]);
    const saved = JSON.parse(fs.readFileSync(path.join(dir, "metadata.json"), "utf8"));
    expect(saved.onnx).toEqual({
      file: ONNX_MODEL_FILE,
      opset: 13,
      inputNames: ["tiny_a_image", "tiny_b_image", "tiny_c_image"],
      outputName: ONNX_TRIAGE_OUTPUT_NAME,
    });
    expect(saved.ensembleMembers).toEqual(JSON.parse(JSON.stringify(metadata.ensembleMembers)));
    expect(written.bytes).toBe(fs.statSync(path.join(dir, ONNX_MODEL_FILE)).size);

    const images = await writeRandomJpegs(tmp, 5, 7);
    const broken = path.join(tmp, "broken.jpg");
    const viaOnnx = await predictMalignantProbabilityWithOnnx(dir, [...images, broken], { batchSize: 2 });
    expect("problem" in viaOnnx[5] && viaOnnx[5].problem.file).toBe(broken);
    const viaTfjs = await predictMalignantProbability({ model: triage, metadata, dir: "" }, images);
    const reference = viaTfjs.map((p) => ("probability" in p ? p.probability : NaN));
    const parity = checkExportParity(viaOnnx.slice(0, 5), reference, { toleranceProb: 1e-5 });
    expect(parity.comparedCount).toBe(5);
    // The tiny heads do not all sit at 0 or 1: the comparison sees real differences between images.
    expect(new Set(reference.map((p) => p.toFixed(4))).size).toBeGreaterThan(1);
    triage.dispose();
  });

  it("refuses a model whose output is not P(malignant) or whose inputs the metadata does not describe", async () => {
    const [member] = buildTinyMembers(50);
    await expect(
      exportTriageModelOnnx(path.join(tmp, "bad"), member.model, makeTriageMetadata(member, { thresholdProb: 0.5 })),
    ).rejects.toThrow(TriageModelError);
    await expect(
      exportTriageModelOnnx(path.join(tmp, "bad"), member.model, makeTriageMetadata(member, { thresholdProb: 0.5 })),
    ).rejects.toThrow(/output shape \[null,5\]; expected \[null, 1\]/);
    member.model.dispose();
  });
});
