import * as tf from "@tensorflow/tfjs";
import { beforeAll, describe, expect, it } from "vitest";
import { selectBackend } from "../../lib/index.js";
import { importOnnxModel, OnnxImportError, readOnnxTensor, sanitizeLayerName } from "../../lib/models/onnxImport.js";
import { buildModel, compareWithOrt, initializer, node, onnx, randomValues, valueInfo } from "../helpers/onnxGraphs.js";


describe("ONNX → tfjs importer: tiny graphs against ONNX Runtime", () => {
  beforeAll(async () => {
    await selectBackend();
  });

  it("grouped Conv (2 groups) with asymmetric pads and stride 2, BatchNormalization, Relu, padded MaxPool, Flatten of a 3×3 map, Gemm(transB, alpha, beta)", async () => {
    const nodes = [
      node("Conv", ["x", "w1", "b1"], ["c1"], { group: { int: 2 }, pads: { ints: [0, 1, 2, 1] }, strides: { ints: [2, 2] }, kernel_shape: { ints: [3, 3] } }),
      node("BatchNormalization", ["c1", "gamma", "beta", "mean", "var"], ["bn"], { epsilon: { float: 1e-3 } }),
      node("Relu", ["bn"], ["r"]),
      node("MaxPool", ["r"], ["p"], { kernel_shape: { ints: [2, 2] }, strides: { ints: [2, 2] }, pads: { ints: [1, 1, 0, 0] } }),
      node("Flatten", ["p"], ["f"], { axis: { int: 1 } }),
      node("Gemm", ["f", "wg", "bg"], ["y"], { transB: { int: 1 }, alpha: { float: 0.5 }, beta: { float: 2 } }),
    ];
    const inits = [
      initializer("w1", [6, 2, 3, 3], randomValues(108, 1)),
      initializer("b1", [6], randomValues(6, 2)),
      initializer("gamma", [6], randomValues(6, 3)),
      initializer("beta", [6], randomValues(6, 4)),
      initializer("mean", [6], randomValues(6, 5)),
      initializer("var", [6], randomValues(6, 6).map((v) => v * v + 0.1)),
      initializer("wg", [5, 54], randomValues(270, 7)),
      initializer("bg", [5], randomValues(5, 8)),
    ];
    const bytes = buildModel(nodes, inits, valueInfo("x", ["N", 4, 9, 9]), [valueInfo("y", ["N", 5])]);
    // Conv: H = ⌊(9 + 0 + 2 − 3) / 2⌋ + 1 = 5, W = ⌊(9 + 1 + 1 − 3) / 2⌋ + 1 = 5; MaxPool: ⌊(5 + 1 − 2) / 2⌋ + 1 = 3 → 6·3·3 = 54.
    const { maxAbs, shape } = await compareWithOrt(bytes, [3, 4, 9, 9], 11);
    expect(shape).toEqual([3, 5]);
    expect(maxAbs).toBeLessThan(1e-4);
    const { model } = importOnnxModel(bytes);
    const classes = model.layers.map((l) => `${l.getClassName()}:${l.name}`);
    // The asymmetric pads cannot be tfjs "same" padding: an explicit ZeroPadding2D.
    expect(classes).toContain("ZeroPadding2D:conv_c1_pad");
    expect(classes).toContain("Conv2D:conv_c1");
    expect(classes).toContain("Permute:flatten_f_nchw");
    model.dispose();
  });

  it("depthwise Conv (multiplier 2, dilation 2), Clip(0, 6), Add, AveragePool with and without the pad counted, Concat, GlobalAveragePool, Flatten, MatMul", async () => {
    const nodes = [
      node("Conv", ["x", "w1"], ["a"], { kernel_shape: { ints: [1, 1] } }),
      node("Clip", ["a", "zero", "six"], ["a6"]),
      node("Conv", ["a6", "wd", "bd"], ["d"], { group: { int: 4 }, dilations: { ints: [2, 2] }, pads: { ints: [2, 2, 2, 2] } }),
      node("Conv", ["a6", "we", "be"], ["e"]),
      node("Add", ["d", "e"], ["s"]),
      node("AveragePool", ["s"], ["avgIn"], { kernel_shape: { ints: [3, 3] }, pads: { ints: [1, 1, 1, 1] }, count_include_pad: { int: 1 } }),
      node("AveragePool", ["s"], ["avgEx"], { kernel_shape: { ints: [3, 3] }, pads: { ints: [1, 1, 1, 1] } }),
      node("Concat", ["avgIn", "avgEx", "s"], ["cat"], { axis: { int: 1 } }),
      node("GlobalAveragePool", ["cat"], ["gap"]),
      node("Flatten", ["gap"], ["flat"]),
      node("MatMul", ["flat", "wm"], ["y"]),
    ];
    const inits = [
      initializer("w1", [4, 3, 1, 1], randomValues(12, 21, 3)),
      initializer("zero", [], [0]),
      initializer("six", [], [6]),
      initializer("wd", [8, 1, 3, 3], randomValues(72, 22)),
      initializer("bd", [8], randomValues(8, 23)),
      initializer("we", [8, 4, 1, 1], randomValues(32, 24)),
      initializer("be", [8], randomValues(8, 25)),
      initializer("wm", [24, 3], randomValues(72, 26)),
    ];
    const bytes = buildModel(nodes, inits, valueInfo("x", ["N", 3, 8, 8]), [valueInfo("y", ["N", 3])]);
    const { maxAbs, shape } = await compareWithOrt(bytes, [2, 3, 8, 8], 12);
    expect(shape).toEqual([2, 3]);
    expect(maxAbs).toBeLessThan(1e-4);
    const { model } = importOnnxModel(bytes);
    const byName = new Map(model.layers.map((l) => [l.name, l.getClassName()]));
    expect(byName.get("conv_d")).toBe("DepthwiseConv2D");
    expect(byName.get("clip_a6")).toBe("ReLU");
    // count_include_pad = 1 needs the zeros counted: explicit padding; = 0 is tfjs "same".
    expect(byName.get("averagepool_avgIn_pad")).toBe("ZeroPadding2D");
    expect(byName.has("averagepool_avgEx_pad")).toBe(false);
    model.dispose();
  });

  it("outputs a 4-D map in NHWC (the ONNX NCHW output transposed) and an intermediate value when asked", async () => {
    const nodes = [
      node("Conv", ["x", "w1", "b1"], ["c"], { pads: { ints: [1, 1, 1, 1] } }),
      node("Relu", ["c"], ["y"]),
      node("Erf", ["y"], ["z"]),
    ];
    const inits = [initializer("w1", [5, 3, 3, 3], randomValues(135, 31)), initializer("b1", [5], randomValues(5, 32))];
    const withErf = buildModel(nodes, inits, valueInfo("x", [1, 3, 6, 6]), [valueInfo("z", [1, 5, 6, 6])]);
    // Erf is not imported; asking for "y" imports only what "y" needs.
    const before = tf.memory().numTensors;
    expect(() => importOnnxModel(withErf)).toThrow(OnnxImportError);
    // The Conv built before the failing node frees its weights.
    expect(tf.memory().numTensors).toBe(before);
    expect(() => importOnnxModel(withErf)).toThrow(/node "erf\/z": op type "Erf" is not supported \(supported: Conv, Clip/);
    const partial = importOnnxModel(withErf, { outputName: "y" });
    expect(partial.model.outputs[0].shape).toEqual([null, 6, 6, 5]);
    expect(partial.outputNames).toEqual(["y"]);
    partial.model.dispose();
    const bytes = buildModel(nodes.slice(0, 2), inits, valueInfo("x", [1, 3, 6, 6]), [valueInfo("y", [1, 5, 6, 6])]);
    const { maxAbs, shape } = await compareWithOrt(bytes, [1, 3, 6, 6], 13);
    expect(shape).toEqual([1, 5, 6, 6]);
    expect(maxAbs).toBeLessThan(1e-4);
  });

  it("opset 9 (the zoo's older files): Clip with min/max attributes, BatchNormalization, Reshape to [0, -1], Gemm", async () => {
    const nodes = [
      node("Conv", ["x", "w1", "b1"], ["c"], { pads: { ints: [1, 1, 1, 1] }, strides: { ints: [2, 2] } }),
      node("BatchNormalization", ["c", "gamma", "beta", "mean", "var"], ["bn"]),
      node("Clip", ["bn"], ["r6"], { min: { float: 0 }, max: { float: 6 } }),
      node("Reshape", ["r6", "shape"], ["flat"]),
      node("Gemm", ["flat", "wg", "bg"], ["y"]),
    ];
    const inits = [
      initializer("w1", [4, 3, 3, 3], randomValues(108, 51, 2)),
      initializer("b1", [4], randomValues(4, 52)),
      initializer("gamma", [4], randomValues(4, 53)),
      initializer("beta", [4], randomValues(4, 54, 3)),
      initializer("mean", [4], randomValues(4, 55)),
      initializer("var", [4], randomValues(4, 56).map((v) => v * v + 0.5)),
      onnx.TensorProto.create({ name: "shape", dims: [2], dataType: onnx.TensorProto.DataType.INT64, int64Data: [0, -1] }),
      initializer("wg", [36, 2], randomValues(72, 57)),
      initializer("bg", [1], [0.25]),
    ];
    // Conv: ⌊(5 + 2 − 3) / 2⌋ + 1 = 3 → 4·3·3 = 36 features, flattened in C, H, W order.
    const bytes = buildModel(nodes, inits, valueInfo("x", [1, 3, 5, 5]), [valueInfo("y", [1, 2])], 9);
    const { maxAbs, shape, ortData } = await compareWithOrt(bytes, [1, 3, 5, 5], 14);
    expect(shape).toEqual([1, 2]);
    expect(maxAbs).toBeLessThan(1e-4);
    expect(ortData.some((v) => Math.abs(v) > 0.1)).toBe(true);
  });

  it("names the node, op type and attribute it cannot map", () => {
    const inits = [initializer("w1", [2, 3, 1, 1], randomValues(6, 41)), initializer("zero", [], [0]), initializer("one", [], [1])];
    const input = valueInfo("x", [1, 3, 4, 4]);
    const out = [valueInfo("y", [1, 2, 2, 2])];
    // ceil_mode adds a window here (⌈(4 − 3) / 2⌉ + 1 = 2 > 1); an average over a partial window is not representable.
    const ceil = buildModel(
      [node("Conv", ["x", "w1"], ["c"]), node("AveragePool", ["c"], ["y"], { kernel_shape: { ints: [3, 3] }, strides: { ints: [2, 2] }, ceil_mode: { int: 1 } })],
      inits,
      input,
      out,
    );
    expect(() => importOnnxModel(ceil)).toThrow(/node "averagepool\/y" \(AveragePool\): attribute ceil_mode = 1; expected 0 for AveragePool when it adds a window/);
    const clip01 = buildModel([node("Conv", ["x", "w1"], ["c"]), node("Clip", ["c", "zero", "one"], ["y"])], inits, input, out);
    expect(() => importOnnxModel(clip01)).toThrow(/node "clip\/y" \(Clip\): min 0, max 1; expected min 0 and max 6 \(ReLU6\) or none \(ReLU\)/);
    const unknownAttr = buildModel([node("Conv", ["x", "w1"], ["y"], { foo: { int: 1 } })], inits, input, out);
    expect(() => importOnnxModel(unknownAttr)).toThrow(/node "conv\/y" \(Conv\): attribute "foo" is not supported \(supported: kernel_shape, strides/);
    const unpaddableMax = buildModel(
      [node("Conv", ["x", "w1"], ["c"]), node("MaxPool", ["c"], ["y"], { kernel_shape: { ints: [2, 2] }, strides: { ints: [2, 2] }, pads: { ints: [1, 1, 0, 0] } })],
      inits,
      input,
      out,
    );
    // Without a Relu before it, zero padding would change the max of negative values.
    expect(() => importOnnxModel(unpaddableMax)).toThrow(/attribute pads = \[1,1,0,0\]; expected zero or TensorFlow-style same padding/);
  });

  it("reads raw_data and float_data initializers, and sanitises layer names", () => {
    const raw = readOnnxTensor(onnx.TensorProto.create({ name: "r", dims: [2], dataType: 1, rawData: new Uint8Array(new Float32Array([1.5, -2]).buffer) }));
    expect(Array.from(raw.data)).toEqual([1.5, -2]);
    const floats = readOnnxTensor(onnx.TensorProto.create({ name: "f", dims: [1, 2], dataType: 1, floatData: [3, 4] }));
    expect(floats.dims).toEqual([1, 2]);
    expect(Array.from(floats.data)).toEqual([3, 4]);
    const ints = readOnnxTensor(onnx.TensorProto.create({ name: "i", dims: [2], dataType: 7, rawData: new Uint8Array(new BigInt64Array([-1n, 1280n]).buffer) }));
    expect(ints.data).toEqual([-1, 1280]);
    expect(() => readOnnxTensor(onnx.TensorProto.create({ name: "h", dims: [1], dataType: 10, rawData: new Uint8Array(2) }))).toThrow(/tensor "h": data type 10 is not supported/);
    expect(sanitizeLayerName("/features/0/Conv")).toBe("onnx__features_0_Conv");
    expect(sanitizeLayerName("conv_0_relu6")).toBe("conv_0_relu6");
  });
});
