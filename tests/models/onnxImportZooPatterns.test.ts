import { beforeAll, describe, expect, it } from "vitest";
import { selectBackend } from "../../lib/index.js";
import { importOnnxModel } from "../../lib/models/onnxImport.js";
import { buildModel, compareWithOrt, initializer, int64Initializer, node, randomValues, valueInfo } from "../helpers/onnxGraphs.js";

// Small graphs with the patterns of the ONNX model zoo classifiers the registry names (the zoo files
// cannot be downloaded here): ResNet50-v2 (resnet50-v2-7.onnx, MXNet export) and EfficientNet-Lite4
// (efficientnet-lite4-11.onnx, tf2onnx export with an NHWC input). ONNX Runtime is the reference.

function batchNorm(prefix: string, channels: number, seed: number) {
  return [
    initializer(`${prefix}_gamma`, [channels], randomValues(channels, seed).map((v) => 1 + 0.5 * v)),
    initializer(`${prefix}_beta`, [channels], randomValues(channels, seed + 1, 0.5)),
    initializer(`${prefix}_mean`, [channels], randomValues(channels, seed + 2, 0.5)),
    initializer(`${prefix}_var`, [channels], randomValues(channels, seed + 3).map((v) => 0.5 + v * v)),
  ];
}
/** Largest |p₀ₖ − p₁ₖ| between the first two output rows: more than 10× the tolerance shows the outputs depend on the image. */
function largestRowDifference(rows: Float32Array, width: number): number {
  let largest = 0;
  for (let k = 0; k < width; k++) largest = Math.max(largest, Math.abs(rows[k] - rows[width + k]));
  return largest;
}
const bnInputs = (x: string, prefix: string) => [x, `${prefix}_gamma`, `${prefix}_beta`, `${prefix}_mean`, `${prefix}_var`];

describe("ONNX → tfjs importer: ONNX model zoo patterns against ONNX Runtime", () => {
  beforeAll(async () => {
    await selectBackend();
  });

  it("ResNet-v2: input BatchNorm, 7×7/2 stem, Pad (pads as input, opset 11) + MaxPool ceil_mode, a pre-activation bottleneck (BN→Relu→Conv) with a projection shortcut, Shape→Gather→Unsqueeze→Concat→Reshape, Gemm, Softmax", async () => {
    const nodes = [
      node("BatchNormalization", bnInputs("data", "bn0"), ["bn0"]),
      node("Conv", ["bn0", "w0"], ["c0"], { kernel_shape: { ints: [7, 7] }, strides: { ints: [2, 2] }, pads: { ints: [3, 3, 3, 3] } }),
      node("BatchNormalization", bnInputs("c0", "bn1"), ["bn1"]),
      node("Relu", ["bn1"], ["r1"]),
      node("Pad", ["r1", "stem_pads"], ["padded"], { mode: { string: "constant" } }),
      node("MaxPool", ["padded"], ["pool0"], { kernel_shape: { ints: [3, 3] }, strides: { ints: [2, 2] }, ceil_mode: { int: 1 } }),
      // Pre-activation bottleneck: BN → Relu feeds both the residual branch and the projection.
      node("BatchNormalization", bnInputs("pool0", "bnA"), ["bnA"]),
      node("Relu", ["bnA"], ["preact"]),
      node("Conv", ["preact", "wA"], ["cA"], { kernel_shape: { ints: [1, 1] } }),
      node("BatchNormalization", bnInputs("cA", "bnB"), ["bnB"]),
      node("Relu", ["bnB"], ["rB"]),
      node("Conv", ["rB", "wB"], ["cB"], { kernel_shape: { ints: [3, 3] }, pads: { ints: [1, 1, 1, 1] } }),
      node("BatchNormalization", bnInputs("cB", "bnC"), ["bnC"]),
      node("Relu", ["bnC"], ["rC"]),
      node("Conv", ["rC", "wC"], ["cC"], { kernel_shape: { ints: [1, 1] } }),
      node("Conv", ["preact", "wS"], ["shortcut"], { kernel_shape: { ints: [1, 1] } }),
      node("Add", ["cC", "shortcut"], ["plus0"]),
      node("BatchNormalization", bnInputs("plus0", "bnD"), ["bnD"]),
      node("Relu", ["bnD"], ["rD"]),
      node("GlobalAveragePool", ["rD"], ["pool1"]),
      node("Shape", ["pool1"], ["shape"]),
      node("Gather", ["shape", "zero_index"], ["batch"], { axis: { int: 0 } }),
      node("Unsqueeze", ["batch"], ["batch1"], { axes: { ints: [0] } }),
      node("Concat", ["batch1", "minus_one"], ["flat_shape"], { axis: { int: 0 } }),
      node("Reshape", ["pool1", "flat_shape"], ["flat"]),
      node("Dropout", ["flat"], ["dropped"]),
      node("Gemm", ["dropped", "wG", "bG"], ["dense0"], { transB: { int: 1 } }),
      node("Identity", ["dense0"], ["logits"]),
      node("Softmax", ["logits"], ["probabilities"], { axis: { int: 1 } }),
    ];
    const inits = [
      ...batchNorm("bn0", 3, 100),
      initializer("w0", [8, 3, 7, 7], randomValues(8 * 3 * 49, 1, 0.2)),
      ...batchNorm("bn1", 8, 110),
      int64Initializer("stem_pads", [8], [0, 0, 1, 1, 0, 0, 1, 1]),
      ...batchNorm("bnA", 8, 120),
      initializer("wA", [4, 8, 1, 1], randomValues(32, 2, 0.5)),
      ...batchNorm("bnB", 4, 130),
      initializer("wB", [4, 4, 3, 3], randomValues(144, 3, 0.3)),
      ...batchNorm("bnC", 4, 140),
      initializer("wC", [16, 4, 1, 1], randomValues(64, 4, 0.5)),
      initializer("wS", [16, 8, 1, 1], randomValues(128, 5, 0.5)),
      ...batchNorm("bnD", 16, 150),
      int64Initializer("zero_index", [], [0]),
      int64Initializer("minus_one", [1], [-1]),
      initializer("wG", [10, 16], randomValues(160, 6, 1.5)),
      initializer("bG", [10], randomValues(10, 7)),
    ];
    const bytes = buildModel(nodes, inits, valueInfo("data", ["N", 3, 32, 32]), [valueInfo("probabilities", ["N", 10])], 11);
    const { maxAbs, shape, ortData } = await compareWithOrt(bytes, [3, 3, 32, 32], 21);
    expect(shape).toEqual([3, 10]);
    expect(maxAbs).toBeLessThan(1e-4);
    // Not a flat answer: the softmax rows differ between images.
    expect(largestRowDifference(ortData, 10)).toBeGreaterThan(1e-3);
    const { model } = importOnnxModel(bytes);
    // Stem 32 → conv 16 → pad 18 → ceil((18 − 3) / 2) + 1 = 9 (floor mode would give 8).
    expect(model.getLayer("maxpool_pool0").outputShape).toEqual([null, 9, 9, 8]);
    model.dispose();
  });

  it("EfficientNet-Lite: NHWC input normalised in-graph (Sub/Div constants) + Transpose, stride-2 Conv, Relu6 as Clip with min/max inputs, depthwise Conv, a ReduceMean squeeze gate (Sigmoid, Mul), per-channel Mul, ReduceMean head, Squeeze, MatMul + Add bias, Softmax", async () => {
    const nodes = [
      node("Sub", ["images:0", "mean127"], ["centered"]),
      node("Div", ["centered", "std128"], ["normalized"]),
      node("Transpose", ["normalized"], ["nchw"], { perm: { ints: [0, 3, 1, 2] } }),
      node("Conv", ["nchw", "w_stem", "b_stem"], ["stem"], { kernel_shape: { ints: [3, 3] }, strides: { ints: [2, 2] }, pads: { ints: [0, 0, 1, 1] } }),
      node("Clip", ["stem", "clip_min", "clip_max"], ["stem_relu6"]),
      node("Conv", ["stem_relu6", "w_dw", "b_dw"], ["dw"], { group: { int: 8 }, kernel_shape: { ints: [3, 3] }, pads: { ints: [1, 1, 1, 1] } }),
      node("Clip", ["dw", "clip_min", "clip_max"], ["dw_relu6"]),
      node("ReduceMean", ["dw_relu6"], ["squeezed"], { axes: { ints: [2, 3] }, keepdims: { int: 1 } }),
      node("Conv", ["squeezed", "w_se1", "b_se1"], ["se1"], { kernel_shape: { ints: [1, 1] } }),
      node("Relu", ["se1"], ["se1_relu"]),
      node("Conv", ["se1_relu", "w_se2", "b_se2"], ["se2"], { kernel_shape: { ints: [1, 1] } }),
      node("Sigmoid", ["se2"], ["gate"]),
      node("Mul", ["dw_relu6", "gate"], ["excited"]),
      node("Conv", ["excited", "w_proj"], ["proj"], { kernel_shape: { ints: [1, 1] } }),
      node("Mul", ["proj", "channel_scale"], ["scaled"]),
      node("ReduceMean", ["scaled"], ["head_pool"], { axes: { ints: [2, 3] }, keepdims: { int: 1 } }),
      node("Squeeze", ["head_pool"], ["features"], { axes: { ints: [2, 3] } }),
      node("MatMul", ["features", "w_fc"], ["fc"]),
      node("Add", ["fc", "b_fc"], ["logits"]),
      node("Softmax", ["logits"], ["Softmax:0"], { axis: { int: -1 } }),
    ];
    const inits = [
      initializer("mean127", [3], [127, 127, 127]),
      initializer("std128", [3], [128, 128, 128]),
      initializer("w_stem", [8, 3, 3, 3], randomValues(216, 31)),
      initializer("b_stem", [8], randomValues(8, 32)),
      initializer("clip_min", [], [0]),
      initializer("clip_max", [], [6]),
      initializer("w_dw", [8, 1, 3, 3], randomValues(72, 33)),
      initializer("b_dw", [8], randomValues(8, 34)),
      initializer("w_se1", [2, 8, 1, 1], randomValues(16, 35)),
      initializer("b_se1", [2], randomValues(2, 36)),
      initializer("w_se2", [8, 2, 1, 1], randomValues(16, 37)),
      initializer("b_se2", [8], randomValues(8, 38)),
      initializer("w_proj", [12, 8, 1, 1], randomValues(96, 39)),
      initializer("channel_scale", [12, 1, 1], randomValues(12, 40, 2)),
      initializer("w_fc", [12, 5], randomValues(60, 41, 1.5)),
      initializer("b_fc", [5], randomValues(5, 42)),
    ];
    const bytes = buildModel(nodes, inits, valueInfo("images:0", ["N", 16, 16, 3]), [valueInfo("Softmax:0", ["N", 5])], 11);
    // Pixels 0..255, as the zoo model gets them before its own normalisation.
    const { maxAbs, shape, ortData } = await compareWithOrt(bytes, [2, 16, 16, 3], 22, 255);
    expect(shape).toEqual([2, 5]);
    expect(maxAbs).toBeLessThan(1e-4);
    expect(largestRowDifference(ortData, 5)).toBeGreaterThan(1e-3);
    const imported = importOnnxModel(bytes);
    expect(imported.inputLayout).toBe("NHWC");
    // The model takes the NHWC image as is: [n, 16, 16, 3], reported as NCHW [N, 3, 16, 16].
    expect(imported.model.inputs[0].shape).toEqual([null, 16, 16, 3]);
    expect(imported.inputShapeNchw).toEqual([null, 3, 16, 16]);
    imported.model.dispose();
  });

  it("tf2onnx's NHWC tail: Transpose back to NHWC, ReduceMean over axes 1, 2 (keepdims 0), Unsqueeze to [N, C, 1, 1] and Reshape back to [N, C] via a folded shape", async () => {
    const nodes = [
      node("Transpose", ["x"], ["nchw"], { perm: { ints: [0, 3, 1, 2] } }),
      node("Conv", ["nchw", "w"], ["c"], { kernel_shape: { ints: [1, 1] } }),
      node("Transpose", ["c"], ["nhwc"], { perm: { ints: [0, 2, 3, 1] } }),
      node("ReduceMean", ["nhwc"], ["pooled"], { axes: { ints: [1, 2] }, keepdims: { int: 0 } }),
      node("Unsqueeze", ["pooled"], ["pooled4d"], { axes: { ints: [2, 3] } }),
      node("Shape", ["pooled4d"], ["s"]),
      node("Gather", ["s", "first_two"], ["nc"]),
      node("Reshape", ["pooled4d", "nc"], ["y"]),
    ];
    const inits = [initializer("w", [6, 3, 1, 1], randomValues(18, 51)), int64Initializer("first_two", [2], [0, 1])];
    const bytes = buildModel(nodes, inits, valueInfo("x", ["N", 5, 5, 3]), [valueInfo("y", ["N", 6])], 11);
    const { maxAbs, shape } = await compareWithOrt(bytes, [2, 5, 5, 3], 23);
    expect(shape).toEqual([2, 6]);
    expect(maxAbs).toBeLessThan(1e-4);
  });

  it("opset 13: Squeeze/Unsqueeze with axes as an input (folded shape chain and [N, C, 1, 1] ↔ [N, C]); opset 9: Pad with a pads attribute", async () => {
    const nodes13 = [
      node("Conv", ["x", "w"], ["c"], { kernel_shape: { ints: [3, 3] } }),
      node("GlobalAveragePool", ["c"], ["gap"]),
      node("Squeeze", ["gap", "axes23"], ["nc"]),
      node("Unsqueeze", ["nc", "axes23"], ["nc11"]),
      node("Shape", ["nc11"], ["s"]),
      node("Gather", ["s", "zero"], ["n"]),
      node("Unsqueeze", ["n", "axis0"], ["n1"]),
      node("Concat", ["n1", "minus_one"], ["target"], { axis: { int: 0 } }),
      node("Reshape", ["nc11", "target"], ["y"]),
    ];
    const inits13 = [
      initializer("w", [4, 3, 3, 3], randomValues(108, 71)),
      int64Initializer("axes23", [2], [2, 3]),
      int64Initializer("zero", [], [0]),
      int64Initializer("axis0", [1], [0]),
      int64Initializer("minus_one", [1], [-1]),
    ];
    const bytes13 = buildModel(nodes13, inits13, valueInfo("x", ["N", 3, 6, 6]), [valueInfo("y", ["N", 4])], 13);
    const r13 = await compareWithOrt(bytes13, [2, 3, 6, 6], 24);
    expect(r13.shape).toEqual([2, 4]);
    expect(r13.maxAbs).toBeLessThan(1e-4);

    const nodes9 = [
      node("Conv", ["x", "w"], ["c"], { kernel_shape: { ints: [3, 3] } }),
      node("Pad", ["c"], ["p"], { pads: { ints: [0, 0, 1, 0, 0, 0, 1, 1] }, mode: { string: "constant" } }),
      node("AveragePool", ["p"], ["y"], { kernel_shape: { ints: [2, 2] }, strides: { ints: [2, 2] } }),
    ];
    const bytes9 = buildModel(nodes9, [initializer("w", [4, 3, 3, 3], randomValues(108, 72))], valueInfo("x", ["N", 3, 6, 6]), [valueInfo("y", ["N", 4, 3, 2])], 9);
    // Conv 4×4 → padded (1 + 4 + 1) × (0 + 4 + 1) = 6 × 5 → pooled 3 × 2; the zeros count in the averages.
    const r9 = await compareWithOrt(bytes9, [2, 3, 6, 6], 25);
    expect(r9.shape).toEqual([2, 4, 3, 2]);
    expect(r9.maxAbs).toBeLessThan(1e-4);
  });

  it("names the node, op type and attribute of what the zoo patterns still cannot map", () => {
    const input = valueInfo("x", [1, 3, 4, 4]);
    const out = [valueInfo("y", [1, 3, 6, 6])];
    const w = initializer("w", [3, 3, 1, 1], randomValues(9, 61));
    const reflect = buildModel(
      [node("Conv", ["x", "w"], ["c"]), node("Pad", ["c", "pads"], ["y"], { mode: { string: "reflect" } })],
      [w, int64Initializer("pads", [8], [0, 0, 1, 1, 0, 0, 1, 1])],
      input,
      out,
      11,
    );
    expect(() => importOnnxModel(reflect)).toThrow(/node "pad\/y" \(Pad\): attribute mode = "reflect"; expected "constant"/);
    const channelPad = buildModel([node("Conv", ["x", "w"], ["c"]), node("Pad", ["c", "pads"], ["y"])], [w, int64Initializer("pads", [8], [0, 1, 0, 0, 0, 0, 0, 0])], input, out, 11);
    expect(() => importOnnxModel(channelPad)).toThrow(/node "pad\/y" \(Pad\): attribute pads = \[0,1,0,0,0,0,0,0\]; expected 8 non-negative values padding H and W only/);
    const wideConst = buildModel([node("Conv", ["x", "w"], ["c"]), node("Mul", ["c", "k"], ["y"])], [w, initializer("k", [4], [1, 2, 3, 4])], input, [valueInfo("y", [1, 3, 4, 4])], 11);
    // [4] broadcasts against W, not the channels: refused rather than mis-imported.
    expect(() => importOnnxModel(wideConst)).toThrow(/node "mul\/y" \(Mul\): constant of dims \[4\]; expected a scalar or one value per channel \(dims \[1, 3, 1, 1\]\)/);
    const reduceChannels = buildModel([node("Conv", ["x", "w"], ["c"]), node("ReduceMean", ["c"], ["y"], { axes: { ints: [1] } })], [w], input, out, 11);
    expect(() => importOnnxModel(reduceChannels)).toThrow(/node "reducemean\/y" \(ReduceMean\): attribute axes = \[1\]; expected \[2,3\]/);
  });
});
