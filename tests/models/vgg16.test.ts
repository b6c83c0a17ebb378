import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import * as tf from "@tensorflow/tfjs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { selectBackend } from "../../lib/index.js";
import { loadBackbone } from "../../lib/models/backbones.js";
import { KerasH5MismatchError } from "../../lib/models/kerasH5.js";
import { WeightsDownloadError } from "../../lib/models/mobilenetV1.js";
import { buildVgg16, loadVgg16Backbone, VGG16_WEIGHTS_FILE_NAME, VGG16_WEIGHTS_URL } from "../../lib/models/vgg16.js";
import { serveFilesOverLoopback, type LoopbackFileServer } from "../helpers/loopbackServer.js";
import { isH5pyAvailable, makeKerasH5Fixture, requireH5py } from "./fixtures/kerasH5Fixtures.js";

const KERAS_VGG16_NOTOP_LAYERS = [
  "input_1",
  "block1_conv1", "block1_conv2", "block1_pool",
  "block2_conv1", "block2_conv2", "block2_pool",
  "block3_conv1", "block3_conv2", "block3_conv3", "block3_pool",
  "block4_conv1", "block4_conv2", "block4_conv3", "block4_pool",
  "block5_conv1", "block5_conv2", "block5_conv3", "block5_pool",
];

describe("vgg16 architecture", () => {
  beforeAll(async () => {
    await selectBackend();
  });

  it("has Keras's layer names, shapes and 14,714,688 parameters (keras.applications.VGG16(include_top=False))", () => {
    const model = buildVgg16({ includeTop: false });
    expect(model.layers.map((l) => l.name)).toEqual(KERAS_VGG16_NOTOP_LAYERS);
    expect(model.outputs[0].shape).toEqual([null, 7, 7, 512]);
    expect(model.getLayer("block3_conv1").getWeights()[0].shape).toEqual([3, 3, 128, 256]);
    expect(model.countParams()).toBe(14_714_688);
    model.dispose();
  });

  it("with the top adds flatten, fc1, fc2, predictions (1000), and refuses sizes it cannot take", () => {
    const model = buildVgg16({ includeTop: true, filtersScale: 1 / 64 });
    expect(model.layers.slice(-4).map((l) => l.name)).toEqual(["flatten", "fc1", "fc2", "predictions"]);
    expect(model.outputs[0].shape).toEqual([null, 1000]);
    model.dispose();
    expect(() => buildVgg16({ includeTop: true, inputSizePx: 160 })).toThrow(/received 160 with includeTop, expected 224/);
    expect(() => buildVgg16({ inputSizePx: 16 })).toThrow(/received 16, expected an integer ≥ 32/);
  });

  it("an unknown backbone name lists the valid ones including vgg16", async () => {
    await expect(loadBackbone("vgg61")).rejects.toThrow(/unknown backbone "vgg61": expected one of .*"vgg16".*did you mean "vgg16"/);
  });
});

describe("vgg16 backbone from Keras HDF5 weights (mini VGG written by python3-h5py)", () => {
  const haveH5py = isH5pyAvailable();
  let tmp: string;
  let server: LoopbackFileServer;
  let baseUrl: string;
  let miniFile = "";

  beforeAll(async () => {
    await selectBackend();
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), "ml-vgg16-"));
    if (haveH5py) miniFile = makeKerasH5Fixture("mini_vgg", tmp).file;
    server = await serveFilesOverLoopback((url) =>
      url === `/vgg16/${VGG16_WEIGHTS_FILE_NAME}` && miniFile ? miniFile : undefined,
    );
    baseUrl = server.baseUrl;
  });

  afterAll(async () => {
    await server.close();
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  it("puts every weight in the layer of its name; features = mean of block5_conv3 as numpy computes it", async (ctx) => {
    requireH5py(ctx);
    const { file, expected } = makeKerasH5Fixture("mini_vgg", tmp);
    const before = tf.memory().numTensors;
    const backbone = await loadBackbone("vgg16", { weightsPath: file, filtersScale: 1 / 16, inputSizePx: 32 });
    expect(backbone.name).toBe("vgg16");
    expect(backbone.featureLayerName).toBe("block5_conv3");
    expect(backbone.featureDim).toBe(32);
    expect(backbone.preprocessing).toEqual({ kind: "caffe", meanBgr: [103.939, 116.779, 123.68] });
    expect(backbone.weightsId).toMatch(/^keras-applications\/vgg16_notop@x0.0625\/sha256:[0-9a-f]{16}$/);
    expect(backbone.weightsSource).toBe(file);
    let checked = 0;
    for (const stored of expected.layers.filter((l) => l.weights.length > 0)) {
      const actual = backbone.model.getLayer(stored.name).getWeights();
      stored.weights.forEach((w, i) => {
        expect(actual[i].shape).toEqual(w.shape);
        expect(Array.from(actual[i].dataSync())).toEqual(w.values.map(Math.fround));
        checked++;
      });
    }
    expect(checked).toBe(26); // 13 convolutions × (kernel, bias)
    const features = tf.tidy(() => Array.from((backbone.model.predict(tf.tensor(expected.input, expected.inputShape)) as tf.Tensor).dataSync()));
    expect(features.length).toBe(32);
    expect(expected.features!.some((v) => v > 0.01)).toBe(true);
    expected.features!.forEach((v, i) => expect(Math.abs(features[i] - v)).toBeLessThan(1e-3 * Math.max(1, Math.abs(v))));
    backbone.model.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  it("a wrong kernel shape or a missing layer is an error naming the layer", async (ctx) => {
    requireH5py(ctx);
    const bad = makeKerasH5Fixture("mini_vgg_bad_shape", tmp).file;
    const before = tf.memory().numTensors;
    const err = await loadVgg16Backbone({ weightsPath: bad, filtersScale: 1 / 16, inputSizePx: 32 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KerasH5MismatchError);
    expect((err as Error).message).toContain(`layer "block3_conv2", weight 0 "block3_conv2_W_1:0": shape [3, 3, 16, 15] in the file, model expects [3, 3, 16, 16]`);
    const missing = makeKerasH5Fixture("mini_vgg_missing_layer", tmp).file;
    await expect(loadVgg16Backbone({ weightsPath: missing, filtersScale: 1 / 16, inputSizePx: 32 })).rejects.toThrow(/model layers with no weights in the file: block4_conv1\b/);
    // The real VGG16 (default width) does not fit the mini file either.
    await expect(loadVgg16Backbone({ weightsPath: miniFile, inputSizePx: 32 })).rejects.toThrow(/layer "block1_conv1", weight 0 "block1_conv1_W_1:0": shape \[3, 3, 3, 4\] in the file, model expects \[3, 3, 3, 64\]/);
    expect(tf.memory().numTensors).toBe(before);
  });

  it("downloads the .h5 once into the cache (second load makes no request)", async (ctx) => {
    requireH5py(ctx);
    const cacheDir = path.join(tmp, "cache");
    const weightsUrl = `${baseUrl}/vgg16/${VGG16_WEIGHTS_FILE_NAME}`;
    server.requested.length = 0;
    const first = await loadVgg16Backbone({ weightsUrl, weightsCacheDir: cacheDir, filtersScale: 1 / 16 });
    expect(server.requested).toEqual([`/vgg16/${VGG16_WEIGHTS_FILE_NAME}`]);
    expect(fs.readdirSync(cacheDir)).toEqual([VGG16_WEIGHTS_FILE_NAME]);
    expect(fs.readFileSync(path.join(cacheDir, VGG16_WEIGHTS_FILE_NAME)).equals(fs.readFileSync(miniFile))).toBe(true);
    expect(first.inputSizePx).toBe(224);
    expect(first.model.inputs[0].shape).toEqual([null, 224, 224, 3]);
    const second = await loadVgg16Backbone({ weightsUrl, weightsCacheDir: cacheDir, filtersScale: 1 / 16 });
    expect(server.requested.length).toBe(1);
    expect(second.weightsId).toBe(first.weightsId);
    expect(second.weightsSource).toBe(path.join(cacheDir, VGG16_WEIGHTS_FILE_NAME));
    first.model.dispose();
    second.model.dispose();
  });

  it("missing weights: the error names the cache folder, MELANOMA_LAB_WEIGHTS_DIR, the failure and the URL", async () => {
    const cacheDir = path.join(tmp, "empty-cache");
    const weightsUrl = `${baseUrl}/nowhere/${VGG16_WEIGHTS_FILE_NAME}`;
    const err = await loadVgg16Backbone({ weightsUrl, weightsCacheDir: cacheDir }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WeightsDownloadError);
    const message = (err as Error).message;
    expect(message).toContain(`${VGG16_WEIGHTS_FILE_NAME} is not in weightsCacheDir ${cacheDir}`);
    expect(message).toContain(`${weightsUrl}: HTTP 404`);
    expect(message).toContain("MELANOMA_LAB_WEIGHTS_DIR");
    expect(message).toContain(VGG16_WEIGHTS_URL);
    expect(fs.existsSync(path.join(cacheDir, VGG16_WEIGHTS_FILE_NAME))).toBe(false);

    const saved = process.env.MELANOMA_LAB_WEIGHTS_DIR;
    process.env.MELANOMA_LAB_WEIGHTS_DIR = path.join(tmp, "env-cache");
    try {
      await expect(loadVgg16Backbone({ weightsUrl })).rejects.toThrow(`is not in ${path.join(tmp, "env-cache")} (MELANOMA_LAB_WEIGHTS_DIR = "${path.join(tmp, "env-cache")}")`);
    } finally {
      if (saved === undefined) delete process.env.MELANOMA_LAB_WEIGHTS_DIR;
      else process.env.MELANOMA_LAB_WEIGHTS_DIR = saved;
    }
    const nowhere = path.join(tmp, "no-such.h5");
    await expect(loadVgg16Backbone({ weightsPath: nowhere })).rejects.toThrow(`vgg16 weightsPath: ${nowhere} does not exist`);
  });
});
