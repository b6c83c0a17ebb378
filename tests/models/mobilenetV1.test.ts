import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import * as tf from "@tensorflow/tfjs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { disposeBackbone, selectBackend } from "../../lib/index.js";
import { loadBackbone } from "../../lib/models/backbones.js";
import { extractFeatures } from "../../lib/models/features.js";
import { mobilenetV1FolderName, WeightsDownloadError } from "../../lib/models/mobilenetV1.js";
import { preprocessImages } from "../../lib/models/preprocess.js";
import { serveFilesOverLoopback, type LoopbackFileServer } from "../helpers/loopbackServer.js";
import { findSharedPath, requireSharedPath } from "../helpers/shared.js";

describe("mobilenet_v1: download once from a (loopback) server, then load from the cache", () => {
  const weightsDir = findSharedPath("weights/mobilenet_v1_0.25_224");
  let server: LoopbackFileServer;
  let baseUrl: string;
  let tmp: string;

  beforeAll(async () => {
    await selectBackend();
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), "ml-v1-"));
    server = await serveFilesOverLoopback((url) => {
      const match = /^\/mobilenet_v1_0\.25_224\/([A-Za-z0-9_.-]+)$/.exec(url);
      return match && weightsDir ? path.join(weightsDir, match[1]) : undefined;
    });
    baseUrl = server.baseUrl;
  });

  afterAll(async () => {
    await server.close();
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  it("names hosted folders by alpha and rejects others", () => {
    expect(mobilenetV1FolderName(0.25)).toBe("mobilenet_v1_0.25_224");
    expect(mobilenetV1FolderName(0.5)).toBe("mobilenet_v1_0.50_224");
    expect(mobilenetV1FolderName(1)).toBe("mobilenet_v1_1.0_224");
    expect(() => mobilenetV1FolderName(0.3)).toThrow(/received 0.3, expected one of 0.25, 0.5, 0.75, 1/);
  });

  it("downloads model.json + 55 shards once, caches them, and cuts at conv_pw_13_relu → 256 features", async (ctx) => {
    requireSharedPath(ctx, "weights/mobilenet_v1_0.25_224");
    const cacheDir = path.join(tmp, "weights");
    const first = await loadBackbone("mobilenet_v1", { alpha: 0.25, baseUrl, weightsCacheDir: cacheDir });
    expect(server.requested.length).toBe(56);
    expect(fs.readdirSync(path.join(cacheDir, "mobilenet_v1_0.25_224")).length).toBe(56);
    expect(first.featureLayerName).toBe("conv_pw_13_relu");
    expect(first.featureDim).toBe(256);
    expect(first.preprocessing).toEqual({ kind: "scale", scale: 1 / 127.5, offset: -1 });
    const second = await loadBackbone("mobilenet_v1", { alpha: 0.25, baseUrl, weightsCacheDir: cacheDir });
    expect(server.requested.length).toBe(56);
    expect(second.weightsId).toBe(first.weightsId);
    console.log(`mobilenet_v1 0.25: load from cache ${second.loadMs!.toFixed(0)} ms; ${(second.multiplyAddsPerImage! / 1e6).toFixed(1)} M multiply-adds/image`);
    // Published MobileNet v1 0.25/224: 41 M multiply-adds (ours excludes the 1000-class head's 0.26 M).
    expect(second.multiplyAddsPerImage! / 1e6).toBeGreaterThan(38);
    expect(second.multiplyAddsPerImage! / 1e6).toBeLessThan(43);

    // Features are the spatial mean of conv_pw_13_relu [7,7,256] of the downloaded model.
    const pixels = Uint8Array.from({ length: 2 * 224 * 224 * 3 }, (_, i) => (i * 31) % 256);
    // The first call compiles the backbone's inference plan (folded weights, kept until disposeBackbone).
    await extractFeatures(second, { pixels: pixels.subarray(0, 224 * 224 * 3), count: 1 }, { batchSize: 1 });
    const before = tf.memory().numTensors;
    const feats = await extractFeatures(second, { pixels, count: 2 }, { batchSize: 1 });
    expect(tf.memory().numTensors).toBe(before);
    const relu = tf.model({ inputs: first.model.inputs, outputs: first.model.getLayer("conv_pw_13_relu").output as tf.SymbolicTensor });
    const x = preprocessImages(pixels, 2, 224, first.preprocessing);
    const map = relu.predict(x) as tf.Tensor;
    const expected = tf.tidy(() => map.mean([1, 2]).dataSync());
    tf.dispose([x, map]);
    for (let i = 0; i < expected.length; i++) expect(Math.abs(expected[i] - feats.features[i])).toBeLessThan(1e-4);
    first.model.dispose();
    disposeBackbone(second);
  });

  it("uses MELANOMA_LAB_WEIGHTS_DIR as a local mirror without any download", async (ctx) => {
    const weightsDir = requireSharedPath(ctx, "weights/mobilenet_v1_0.25_224");
    const saved = process.env.MELANOMA_LAB_WEIGHTS_DIR;
    process.env.MELANOMA_LAB_WEIGHTS_DIR = path.dirname(weightsDir);
    try {
      const count = server.requested.length;
      const b = await loadBackbone("mobilenet_v1", { alpha: 0.25, baseUrl: "http://127.0.0.1:9/unreachable" });
      expect(server.requested.length).toBe(count);
      expect(b.weightsSource).toBe(weightsDir);
      b.model.dispose();
    } finally {
      if (saved === undefined) delete process.env.MELANOMA_LAB_WEIGHTS_DIR;
      else process.env.MELANOMA_LAB_WEIGHTS_DIR = saved;
    }
  });

  it("reports a download failure with the URL and leaves no half-made model.json", async () => {
    const cacheDir = path.join(tmp, "weights-missing");
    await expect(loadBackbone("mobilenet_v1", { alpha: 0.5, baseUrl, weightsCacheDir: cacheDir })).rejects.toThrow(WeightsDownloadError);
    await expect(loadBackbone("mobilenet_v1", { alpha: 0.5, baseUrl, weightsCacheDir: cacheDir })).rejects.toThrow(/mobilenet_v1_0\.50_224\/model\.json: HTTP 404/);
    expect(fs.existsSync(path.join(cacheDir, "mobilenet_v1_0.50_224", "model.json"))).toBe(false);
  });
});
