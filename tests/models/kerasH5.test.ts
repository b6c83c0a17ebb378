import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import * as tf from "@tensorflow/tfjs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { selectBackend } from "../../lib/index.js";
import { KerasH5FormatError, KerasH5MismatchError, loadKerasH5IntoModel, readKerasH5Weights } from "../../lib/models/kerasH5.js";
import { makeKerasH5Fixture, requireH5py, type FixtureExpectation } from "./fixtures/kerasH5Fixtures.js";

/** The tiny model of make_keras_h5.py: conv 3×3 2→3 relu, conv 3×3 3→2 relu, flatten, dense 32→2. */
function buildTinyModel(opts: { convAFilters?: number; extraLayer?: boolean; renameConvB?: string } = {}): tf.LayersModel {
  const input = tf.input({ shape: [4, 4, 2], name: "input_1" });
  let x = tf.layers.conv2d({ name: "conv_a", filters: opts.convAFilters ?? 3, kernelSize: 3, padding: "same", activation: "relu" }).apply(input) as tf.SymbolicTensor;
  x = tf.layers.conv2d({ name: opts.renameConvB ?? "conv_b", filters: 2, kernelSize: 3, padding: "same", activation: "relu" }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.flatten({ name: "flatten" }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.dense({ name: "dense_out", units: 2 }).apply(x) as tf.SymbolicTensor;
  if (opts.extraLayer) x = tf.layers.dense({ name: "dense_extra", units: 1 }).apply(x) as tf.SymbolicTensor;
  return tf.model({ inputs: input, outputs: x, name: "tiny" });
}

/** Every weight of every layer named in `expected` equals what Python wrote, in order. */
function expectWeightsEqual(model: tf.LayersModel, expected: FixtureExpectation): number {
  let checked = 0;
  for (const stored of expected.layers) {
    if (stored.weights.length === 0) continue;
    const actual = model.getLayer(stored.name).getWeights();
    expect(actual.length).toBe(stored.weights.length);
    stored.weights.forEach((w, i) => {
      expect(actual[i].shape).toEqual(w.shape);
      expect(Array.from(actual[i].dataSync())).toEqual(w.values.map(Math.fround));
      checked += w.values.length;
    });
  }
  return checked;
}

function predictTiny(model: tf.LayersModel, expected: FixtureExpectation): number[] {
  return tf.tidy(() => Array.from((model.predict(tf.tensor(expected.input, expected.inputShape)) as tf.Tensor).dataSync()));
}

describe("Keras HDF5 weights (fixtures written by python3-h5py)", () => {
  let tmp: string;

  beforeAll(async () => {
    await selectBackend();
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), "ml-kerash5-"));
  });
  afterAll(() => {
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  it("reads layers in layer_names order, weights in weight_names order, with shapes and values", async (ctx) => {
    requireH5py(ctx);
    const { file, expected } = makeKerasH5Fixture("tiny", tmp);
    const read = await readKerasH5Weights(file);
    expect(read.layout).toBe("weights");
    expect(read.kerasVersion).toBe("2.15.0");
    expect(read.backend).toBe("tensorflow");
    expect(read.layers.map((l) => l.name)).toEqual(["input_1", "conv_a", "conv_b", "flatten", "dense_out"]);
    expect(read.layers[1].weights.map((w) => w.name)).toEqual(["conv_a/kernel:0", "conv_a/bias:0"]);
    expect(read.layers[0].weights).toEqual([]);
    read.layers.forEach((layer, i) =>
      layer.weights.forEach((w, j) => {
        expect(w.shape).toEqual(expected.layers[i].weights[j].shape);
        expect(w.values).toBeInstanceOf(Float32Array);
        expect(Array.from(w.values)).toEqual(expected.layers[i].weights[j].values.map(Math.fround));
      }),
    );
  });

  it("loads every weight into the tfjs layer of the same name; predictions match numpy's forward pass", async (ctx) => {
    requireH5py(ctx);
    const { file, expected } = makeKerasH5Fixture("tiny", tmp);
    const model = buildTinyModel();
    const before = tf.memory().numTensors;
    const report = await loadKerasH5IntoModel(model, file);
    expect(tf.memory().numTensors).toBe(before);
    expect(report).toEqual({ loadedLayers: ["conv_a", "conv_b", "dense_out"], unmatchedFileLayers: [], unmatchedModelLayers: [] });
    // 54 + 3 + 54 + 2 + 64 + 2 values, each in its place.
    expect(expectWeightsEqual(model, expected)).toBe(179);
    const y = predictTiny(model, expected);
    expect(tf.memory().numTensors).toBe(before);
    expected.output!.forEach((v, i) => expect(Math.abs(y[i] - v)).toBeLessThan(1e-4 * Math.max(1, Math.abs(v))));
    model.dispose();
  });

  it("reads full-model files (weights under model_weights, float64 converted) and chunked name lists", async (ctx) => {
    requireH5py(ctx);
    const full = makeKerasH5Fixture("tiny_full_model", tmp);
    const read = await readKerasH5Weights(full.file);
    expect(read.layout).toBe("model");
    expect(read.layers.find((l) => l.name === "dense_out")!.weights[0].values).toBeInstanceOf(Float32Array);
    const model = buildTinyModel();
    await loadKerasH5IntoModel(model, read);
    expectWeightsEqual(model, full.expected);
    const y = predictTiny(model, full.expected);
    full.expected.output!.forEach((v, i) => expect(Math.abs(y[i] - v)).toBeLessThan(1e-4 * Math.max(1, Math.abs(v))));
    model.dispose();

    const chunked = makeKerasH5Fixture("tiny_chunked_names", tmp);
    const readChunked = await readKerasH5Weights(chunked.file);
    expect(readChunked.layers.map((l) => l.name)).toEqual(["input_1", "conv_a", "conv_b", "flatten", "dense_out"]);
    expect(readChunked.layers[3].weights).toEqual([]);
    expect(readChunked.layers[4].weights.map((w) => w.name)).toEqual(["dense_out/kernel:0", "dense_out/bias:0"]);
  });

  it("a wrong shape names layer, weight, file shape and model shape, and sets nothing", async (ctx) => {
    requireH5py(ctx);
    const { file } = makeKerasH5Fixture("tiny", tmp);
    const model = buildTinyModel({ convAFilters: 4 });
    // conv_a [3,3,2,4] mismatches, but conv_b's kernel is then also [3,3,4,2]: the first mismatch is reported.
    const before = model.getWeights().map((t) => Array.from(t.dataSync()));
    const err = await loadKerasH5IntoModel(model, file).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KerasH5MismatchError);
    expect((err as Error).message).toContain(`${file}: layer "conv_a", weight 0 "conv_a/kernel:0": shape [3, 3, 2, 3] in the file, model expects [3, 3, 2, 4]`);
    expect(model.getWeights().map((t) => Array.from(t.dataSync()))).toEqual(before);
    model.dispose();
  });

  it("strict mode lists model layers the file lacks and file layers the model lacks; non-strict loads the rest", async (ctx) => {
    requireH5py(ctx);
    const { file, expected } = makeKerasH5Fixture("tiny", tmp);
    const extra = buildTinyModel({ extraLayer: true });
    await expect(loadKerasH5IntoModel(extra, file)).rejects.toThrow(/model layers with no weights in the file: dense_extra/);
    const report = await loadKerasH5IntoModel(extra, file, { strict: false });
    expect(report).toEqual({ loadedLayers: ["conv_a", "conv_b", "dense_out"], unmatchedFileLayers: [], unmatchedModelLayers: ["dense_extra"] });
    expectWeightsEqual(extra, expected);
    extra.dispose();

    const renamed = buildTinyModel({ renameConvB: "conv_z" });
    const err = await loadKerasH5IntoModel(renamed, file).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KerasH5MismatchError);
    expect((err as Error).message).toContain(
      "(model layers with no weights in the file: conv_z; file layers with no model layer of that name: conv_b); file layers with weights: conv_a, conv_b, dense_out",
    );
    renamed.dispose();
  });

  it("rejects a missing file, a non-HDF5 file and an HDF5 file without Keras's layer_names, naming the file", async (ctx) => {
    const missing = path.join(os.tmpdir(), "ml-kerash5-does-not-exist.h5");
    await expect(readKerasH5Weights(missing)).rejects.toThrow(`${missing}: no such file`);
    const notH5 = path.join(tmp, "not.h5");
    fs.writeFileSync(notH5, "this is not HDF5\n".repeat(100));
    const err = await readKerasH5Weights(notH5).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KerasH5FormatError);
    expect((err as Error).message).toContain(`${notH5}: not an HDF5 file`);
    requireH5py(ctx);
    const { file } = makeKerasH5Fixture("not_keras", tmp);
    await expect(readKerasH5Weights(file)).rejects.toThrow(`${file}: no "layer_names" attribute at "/" or "/model_weights" (found groups: images)`);
  });
});
