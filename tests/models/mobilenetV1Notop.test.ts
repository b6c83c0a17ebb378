import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import * as tf from "@tensorflow/tfjs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadLabelsCsvDataset, selectBackend } from "../../lib/index.js";
import { loadBackbone } from "../../lib/models/backbones.js";
import { extractFeatures } from "../../lib/models/features.js";
import { MOBILENET_V1_NOTOP_FOLDER, resolveMobilenetV1Source, WeightsDownloadError } from "../../lib/models/mobilenetV1.js";
import { preprocessImages } from "../../lib/models/preprocess.js";
import { serveFilesOverLoopback } from "../helpers/loopbackServer.js";
import { requireSharedPath } from "../helpers/shared.js";

// A port nothing listens on: any download attempt fails at once.
const UNREACHABLE_URL = "http://127.0.0.1:9/unreachable";

describe("mobilenet_v1 alpha 1.0: full folder, else the local notop mirror, else download", () => {
  let tmp: string;

  beforeAll(async () => {
    await selectBackend();
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), "ml-v1-notop-"));
  });

  afterAll(() => {
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  it("picks the source folder: full first, notop only for alpha 1.0, else the full folder to download", () => {
    const dir = path.join(tmp, "resolve");
    const full = path.join(dir, "mobilenet_v1_1.0_224");
    const notop = path.join(dir, MOBILENET_V1_NOTOP_FOLDER);
    expect(resolveMobilenetV1Source(1.0, dir)).toEqual({ folder: "mobilenet_v1_1.0_224", dir: full, featureLayerName: "conv_pw_13_relu", present: false, searched: [full, notop] });
    fs.mkdirSync(notop, { recursive: true });
    fs.writeFileSync(path.join(notop, "model.json"), "{}");
    expect(resolveMobilenetV1Source(1.0, dir)).toMatchObject({ folder: MOBILENET_V1_NOTOP_FOLDER, dir: notop, featureLayerName: "conv_dw_13_relu", present: true });
    // A notop folder is never used for another alpha (its layers are 1.0-wide).
    expect(resolveMobilenetV1Source(0.25, dir)).toMatchObject({ folder: "mobilenet_v1_0.25_224", present: false, searched: [path.join(dir, "mobilenet_v1_0.25_224")] });
    fs.mkdirSync(full, { recursive: true });
    fs.writeFileSync(path.join(full, "model.json"), "{}");
    expect(resolveMobilenetV1Source(1.0, dir)).toMatchObject({ folder: "mobilenet_v1_1.0_224", dir: full, featureLayerName: "conv_pw_13_relu", present: true });
  });

  it("loads the real notop mirror without downloading: conv_dw_13_relu → 1024 features, finite and image-dependent on real HAM images", async (ctx) => {
    const notopDir = requireSharedPath(ctx, `weights/${MOBILENET_V1_NOTOP_FOLDER}`);
    const hamDir = requireSharedPath(ctx, "data/ham10000-dev");
    const backbone = await loadBackbone("mobilenet_v1", { alpha: 1.0, weightsCacheDir: path.dirname(notopDir), baseUrl: UNREACHABLE_URL });
    try {
      expect(backbone.featureLayerName).toBe("conv_dw_13_relu");
      expect(backbone.featureDim).toBe(1024);
      expect(backbone.inputSizePx).toBe(224);
      expect(backbone.weightsSource).toBe(notopDir);
      expect(backbone.weightsId).toMatch(/^tfjs-models\/mobilenet_v1_1\.0_224_notop\/sha256:[0-9a-f]{16}$/);
      // conv_pw_13 is absent, so nothing after conv_dw_13_relu but the pooling.
      expect(backbone.model.layers.map((l) => l.name).filter((n) => n.startsWith("conv_pw_13"))).toEqual([]);
      console.log(`mobilenet_v1 1.0 notop: load ${backbone.loadMs!.toFixed(0)} ms; ${(backbone.multiplyAddsPerImage! / 1e6).toFixed(0)} M multiply-adds/image`);
      // Published MobileNet v1 1.0/224: 569 M multiply-adds; conv_pw_13 (7·7·1024·1024 = 51 M) and the head (1 M) are cut off.
      expect(backbone.multiplyAddsPerImage! / 1e6).toBeGreaterThan(505);
      expect(backbone.multiplyAddsPerImage! / 1e6).toBeLessThan(525);

      const records = loadLabelsCsvDataset(hamDir).records.slice(0, 2);
      expect(records.length).toBe(2);
      // The first call may build per-backbone state (e.g. a compiled inference plan); the second must not grow memory.
      await extractFeatures(backbone, records, { batchSize: 2 });
      const before = tf.memory().numTensors;
      const feats = await extractFeatures(backbone, records, { batchSize: 2 });
      expect(tf.memory().numTensors).toBe(before);
      expect(feats.rows).toBe(2);
      expect(feats.featureDim).toBe(1024);
      const values = Array.from(feats.features);
      expect(values.every(Number.isFinite)).toBe(true);
      // Means of ReLU6 outputs lie in [0, 6].
      expect(Math.min(...values)).toBeGreaterThanOrEqual(0);
      expect(Math.max(...values)).toBeLessThanOrEqual(6);
      expect(new Set(values.map((v) => v.toFixed(5))).size).toBeGreaterThan(100);
      const [first, second] = [values.slice(0, 1024), values.slice(1024)];
      expect(first.reduce((s, v, i) => s + Math.abs(v - second[i]), 0) / 1024).toBeGreaterThan(1e-3);
    } finally {
      backbone.model.dispose();
    }
  });

  it("features are the spatial mean of conv_dw_13_relu of the mirrored model", async (ctx) => {
    const notopDir = requireSharedPath(ctx, `weights/${MOBILENET_V1_NOTOP_FOLDER}`);
    const backbone = await loadBackbone("mobilenet_v1", { alpha: 1.0, weightsCacheDir: path.dirname(notopDir), baseUrl: UNREACHABLE_URL });
    const pixels = Uint8Array.from({ length: 224 * 224 * 3 }, (_, i) => (i * 37) % 256);
    const feats = await extractFeatures(backbone, { pixels, count: 1 }, { batchSize: 1 });
    const relu = tf.model({ inputs: backbone.model.inputs, outputs: backbone.model.getLayer("conv_dw_13_relu").output as tf.SymbolicTensor });
    const expected = tf.tidy(() => {
      const map = relu.predict(preprocessImages(pixels, 1, 224, backbone.preprocessing)) as tf.Tensor;
      expect(map.shape).toEqual([1, 7, 7, 1024]);
      return map.mean([1, 2]).dataSync();
    });
    for (let i = 0; i < 1024; i++) expect(Math.abs(expected[i] - feats.features[i])).toBeLessThan(1e-4);
    backbone.model.dispose();
  });

  it("a full mobilenet_v1_1.0_224 folder takes precedence over the notop one", async (ctx) => {
    const notopDir = requireSharedPath(ctx, `weights/${MOBILENET_V1_NOTOP_FOLDER}`);
    const quarterDir = requireSharedPath(ctx, "weights/mobilenet_v1_0.25_224");
    // Stand-in for a full 1.0 model: the 0.25 mirror (a full model with conv_pw_13_relu) under the 1.0 folder name.
    const dir = path.join(tmp, "both");
    fs.mkdirSync(dir);
    fs.symlinkSync(quarterDir, path.join(dir, "mobilenet_v1_1.0_224"));
    fs.symlinkSync(notopDir, path.join(dir, MOBILENET_V1_NOTOP_FOLDER));
    const backbone = await loadBackbone("mobilenet_v1", { alpha: 1.0, weightsCacheDir: dir, baseUrl: UNREACHABLE_URL });
    expect(backbone.weightsSource).toBe(path.join(dir, "mobilenet_v1_1.0_224"));
    expect(backbone.featureLayerName).toBe("conv_pw_13_relu");
    expect(backbone.featureDim).toBe(256);
    expect(backbone.weightsId).toMatch(/^tfjs-models\/mobilenet_v1_1\.0_224\/sha256:/);
    backbone.model.dispose();
  });

  it("with neither folder, downloads the full model (loopback server) into mobilenet_v1_1.0_224/", async (ctx) => {
    const quarterDir = requireSharedPath(ctx, "weights/mobilenet_v1_0.25_224");
    const server = await serveFilesOverLoopback((url) => {
      const match = /^\/mobilenet_v1_1\.0_224\/([A-Za-z0-9_.-]+)$/.exec(url);
      return match ? path.join(quarterDir, match[1]) : undefined;
    });
    try {
      const cacheDir = path.join(tmp, "download");
      const backbone = await loadBackbone("mobilenet_v1", {
        alpha: 1.0,
        weightsCacheDir: cacheDir,
        baseUrl: server.baseUrl,
      });
      expect(server.requested.length).toBe(56);
      expect(server.requested.every((url) => url.startsWith("/mobilenet_v1_1.0_224/"))).toBe(true);
      expect(backbone.weightsSource).toBe(path.join(cacheDir, "mobilenet_v1_1.0_224"));
      expect(backbone.featureLayerName).toBe("conv_pw_13_relu");
      backbone.model.dispose();
    } finally {
      await server.close();
    }
  });

  it("a failed download names both folders searched and the URL", async () => {
    const cacheDir = path.join(tmp, "empty");
    const load = loadBackbone("mobilenet_v1", { alpha: 1.0, weightsCacheDir: cacheDir, baseUrl: UNREACHABLE_URL });
    await expect(load).rejects.toThrow(WeightsDownloadError);
    await expect(load).rejects.toThrow(
      `mobilenet_v1 alpha 1: no model.json in ${path.join(cacheDir, "mobilenet_v1_1.0_224")} or ${path.join(cacheDir, MOBILENET_V1_NOTOP_FOLDER)}, and downloading mobilenet_v1_1.0_224 failed: ${UNREACHABLE_URL}/mobilenet_v1_1.0_224/model.json: download failed`,
    );
  });
});
