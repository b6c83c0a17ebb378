import * as tf from "@tensorflow/tfjs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  compileInferencePlan,
  disposeBackbone,
  extractFeatures,
  InferencePlanError,
  loadBackbone,
  predictBackboneFeatures,
  selectBackend,
} from "../../lib/index.js";
import type { Backbone } from "../../lib/models/types.js";
import { createRandom } from "../../lib/util/random.js";

/** Sets every weight of `model` to seeded random values; variances stay positive. */
function randomiseWeights(model: tf.LayersModel, seed: number): void {
  const rand = createRandom(seed);
  for (const layer of model.layers) {
    const weights = layer.getWeights();
    if (weights.length === 0) continue;
    const values = weights.map((w, i) => {
      const isVariance = layer.getClassName() === "BatchNormalization" && i === weights.length - 1;
      return tf.tensor(Float32Array.from({ length: w.size }, () => (isVariance ? 0.2 + rand() : rand() * 2 - 1)), w.shape);
    });
    layer.setWeights(values);
    tf.dispose(values);
  }
}

function maxAbsDiff(a: tf.Tensor, b: tf.Tensor): number {
  return tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]);
}

/**
 * A small model with every pattern the plan fuses and some it must not:
 * ZeroPadding2D((0,1),(0,1)) + valid stride-2 conv (= "same": folded), ZeroPadding2D((2,0),(2,0)) + valid
 * conv (≠ "same": kept), conv without bias + BN(scale false) + Activation("relu") (Inception's
 * block), depthwise + BN + ReLU(6) (MobileNet's), a BN whose conv output also feeds an Add
 * (not folded), conv with its own relu activation, Concatenate, pooling.
 */
function buildPatternModel(): tf.LayersModel {
  const input = tf.input({ shape: [16, 16, 3] });
  const padSame = tf.layers.zeroPadding2d({ padding: [[0, 1], [0, 1]], name: "pad_same" }).apply(input) as tf.SymbolicTensor;
  let x = tf.layers.conv2d({ filters: 8, kernelSize: 3, strides: 2, padding: "valid", useBias: false, name: "conv_a" }).apply(padSame) as tf.SymbolicTensor;
  x = tf.layers.batchNormalization({ scale: false, epsilon: 1e-3, name: "bn_a" }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.activation({ activation: "relu", name: "relu_a" }).apply(x) as tf.SymbolicTensor;
  let d = tf.layers.depthwiseConv2d({ kernelSize: 3, depthMultiplier: 2, padding: "same", useBias: false, name: "dw_b" }).apply(x) as tf.SymbolicTensor;
  d = tf.layers.batchNormalization({ name: "bn_b" }).apply(d) as tf.SymbolicTensor;
  d = tf.layers.reLU({ maxValue: 6, name: "relu6_b" }).apply(d) as tf.SymbolicTensor;
  const shared = tf.layers.conv2d({ filters: 16, kernelSize: 1, name: "conv_shared" }).apply(d) as tf.SymbolicTensor;
  const bnShared = tf.layers.batchNormalization({ name: "bn_shared" }).apply(shared) as tf.SymbolicTensor;
  const added = tf.layers.add({ name: "add" }).apply([shared, bnShared]) as tf.SymbolicTensor;
  const padOther = tf.layers.zeroPadding2d({ padding: [[2, 0], [2, 0]], name: "pad_other" }).apply(added) as tf.SymbolicTensor;
  const c = tf.layers.conv2d({ filters: 4, kernelSize: 3, padding: "valid", activation: "relu", name: "conv_c" }).apply(padOther) as tf.SymbolicTensor;
  const pooled = tf.layers.maxPooling2d({ poolSize: 2, name: "pool" }).apply(added) as tf.SymbolicTensor;
  const up = tf.layers.upSampling2d({ size: [2, 2], name: "up" }).apply(pooled) as tf.SymbolicTensor;
  const cat = tf.layers.concatenate({ name: "cat" }).apply([c, up]) as tf.SymbolicTensor;
  const out = tf.layers.globalAveragePooling2d({ name: "gap" }).apply(cat) as tf.SymbolicTensor;
  return tf.model({ inputs: input, outputs: out, name: "patterns" });
}

describe("compileInferencePlan", () => {
  beforeAll(async () => {
    await selectBackend();
  });

  it("fuses conv + BatchNorm + ReLU(6) + same-padding, keeps what must stay, and equals model.predict", () => {
    const model = buildPatternModel();
    randomiseWeights(model, 3);
    const plan = compileInferencePlan(model);
    // bn_a, bn_b folded; bn_shared not (conv_shared's output also feeds the Add).
    expect(plan.summary.foldedBatchNorms).toBe(2);
    // relu_a, relu6_b (conv_c's own relu is fused by the kernel call without a separate layer).
    expect(plan.summary.fusedActivations).toBe(2);
    // pad_same equals "same" for 16 px, k 3, stride 2; pad_other (2 px before, 0 after; "same" is 1 and 1) does not.
    expect(plan.summary.foldedPaddings).toBe(1);
    expect(plan.summary.layers).toBe(model.layers.length);
    expect(plan.summary.steps).toBe(model.layers.length - 1 - 5);
    const x = tf.randomUniform([3, 16, 16, 3], -1, 1, "float32", 5);
    const expected = model.predict(x) as tf.Tensor;
    const before = tf.memory().numTensors;
    const got = plan.predict(x);
    expect(tf.memory().numTensors).toBe(before + 1);
    expect(got.shape).toEqual(expected.shape);
    const scale = tf.tidy(() => tf.max(tf.abs(expected)).dataSync()[0]);
    expect(scale).toBeGreaterThan(0.01);
    expect(maxAbsDiff(got, expected)).toBeLessThan(1e-5 * Math.max(1, scale));
    tf.dispose([x, expected, got]);
    const owned = tf.memory().numTensors;
    plan.dispose();
    // conv_a, dw_b: folded kernel + bias; conv_shared, conv_c: kernel + bias copies.
    expect(owned - tf.memory().numTensors).toBe(8);
    expect(() => plan.predict(tf.zeros([1, 16, 16, 3]))).toThrow(InferencePlanError);
    model.dispose();
  });

  it("predictBackboneFeatures compiles again when the weights were changed in place (no stale folded weights)", () => {
    const model = buildPatternModel();
    randomiseWeights(model, 4);
    const backbone: Backbone = { name: "pattern", inputSizePx: 16, featureLayerName: "", featureDim: 0, preprocessing: { kind: "scale", scale: 1, offset: 0 }, model, weightsId: "test" };
    const x = tf.randomUniform([2, 16, 16, 3], -1, 1, "float32", 6);
    const first = predictBackboneFeatures(backbone, x);
    const tensorsAfterFirst = tf.memory().numTensors;
    randomiseWeights(model, 5);
    const expected = model.predict(x) as tf.Tensor;
    const second = predictBackboneFeatures(backbone, x);
    expect(maxAbsDiff(first, expected)).toBeGreaterThan(1e-3);
    expect(maxAbsDiff(second, expected)).toBeLessThan(1e-4);
    // The old plan's folded weights were freed: only `expected` and `second` are new.
    expect(tf.memory().numTensors).toBe(tensorsAfterFirst + 2);
    tf.dispose([x, first, second, expected]);
    disposeBackbone(backbone);
  });

  it("refuses a model with a shared layer, naming it", () => {
    const input = tf.input({ shape: [4, 4, 2] });
    const conv = tf.layers.conv2d({ filters: 2, kernelSize: 1, name: "twice" });
    const y = conv.apply(conv.apply(input)) as tf.SymbolicTensor;
    const model = tf.model({ inputs: input, outputs: y });
    expect(() => compileInferencePlan(model)).toThrow(/layer twice is used 2 times, expected once/);
    model.dispose();
  });
});

describe("predictBackboneFeatures on the real MobileNetV2", () => {
  let backbone: Backbone;
  beforeAll(async () => {
    await selectBackend();
    backbone = await loadBackbone("mobilenet_v2");
  });
  afterAll(() => {
    const before = tf.memory().numTensors;
    const weights = backbone.model.weights.length;
    disposeBackbone(backbone);
    // The model's weights and the plan's folded weights are all freed.
    expect(before - tf.memory().numTensors).toBeGreaterThan(weights);
  });

  it("folds all 52 BatchNorms and matches model.predict; extractFeatures stays leak-free", async () => {
    const plan = compileInferencePlan(backbone.model);
    expect(plan.summary).toEqual({ layers: backbone.model.layers.length, steps: 63, foldedBatchNorms: 52, fusedActivations: 35, foldedPaddings: 5 });
    const x = tf.randomUniform([2, 224, 224, 3], 0, 1, "float32", 11);
    const expected = backbone.model.predict(x) as tf.Tensor;
    const viaPlan = plan.predict(x);
    // Compiled lazily inside the caller's tidy: its weights must survive that scope.
    const first = tf.tidy(() => predictBackboneFeatures(backbone, x));
    const viaBackbone = tf.tidy(() => predictBackboneFeatures(backbone, x));
    expect(maxAbsDiff(first, viaBackbone)).toBe(0);
    first.dispose();
    expect(maxAbsDiff(viaPlan, expected)).toBeLessThan(1e-4);
    expect(maxAbsDiff(viaBackbone, viaPlan)).toBe(0);
    tf.dispose([x, expected, viaPlan, viaBackbone]);
    plan.dispose();

    const pixels = Uint8Array.from({ length: 3 * 224 * 224 * 3 }, (_, i) => (i * 37) % 256);
    const before = tf.memory().numTensors;
    await extractFeatures(backbone, { pixels, count: 3 }, { batchSize: 2 });
    await extractFeatures(backbone, { pixels, count: 3 }, { batchSize: 3 });
    expect(tf.memory().numTensors).toBe(before);
  });
});
