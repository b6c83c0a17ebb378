import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import * as tf from "@tensorflow/tfjs";
import { afterAll, describe, expect, it } from "vitest";
import { selectBackend } from "../../lib/index.js";
import { RuntimeUnavailableError } from "../../lib/backend/selectRuntime.js";
import { loadBackbone } from "../../lib/models/backbones.js";
import { extractFeatures } from "../../lib/models/features.js";
import { disposeBackbone, releaseInferencePlan } from "../../lib/models/inferencePlan.js";
import { releaseOnnxSessions } from "../../lib/models/onnxFeatures.js";
import type { Backbone } from "../../lib/models/types.js";
import { requireSharedPath } from "../helpers/shared.js";

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "ml-onnx-convert-"));
afterAll(async () => {
  await releaseOnnxSessions();
  fs.rmSync(tmp, { recursive: true, force: true });
});

function hamImages(hamDir: string, count: number): string[] {
  return fs
    .readdirSync(path.join(hamDir, "images"))
    .filter((f) => f.endsWith(".jpg"))
    .sort()
    .slice(0, count)
    .map((f) => path.join(hamDir, "images", f));
}

describe("a tfjs backbone on ONNX Runtime (runtime forced to onnx): converted once, cached, same features", () => {
  it("mobilenet_v2 (nsfwjs): ONNX Runtime features equal tfjs within 1e-4 on real images; the file is reused", async (ctx) => {
    const hamDir = requireSharedPath(ctx, "data/ham10000-dev");
    await selectBackend();
    const backbone = await loadBackbone("mobilenet_v2");
    try {
      expect(backbone.onnx).toBeUndefined();
      const images = hamImages(hamDir, 6);
      const before = tf.memory().numTensors;
      const viaTfjs = await extractFeatures(backbone, images, { batchSize: 4, runtime: "tfjs" });
      releaseInferencePlan(backbone);
      const viaOrt = await extractFeatures(backbone, images, { batchSize: 4, runtime: "onnx", onnxCacheDir: tmp });
      expect(viaTfjs.runtime?.runtime).toBe("tfjs");
      expect(viaOrt.runtime?.runtime).toBe("onnx");
      // The converted file is used, not attached: a copy of this backbone with other weights must not inherit it.
      expect(backbone.onnx).toBeUndefined();
      const converted = fs.readdirSync(tmp).filter((f) => f.endsWith(".onnx"));
      expect(converted).toHaveLength(1);
      const convertedPath = path.join(tmp, converted[0]);
      let maxAbs = 0;
      for (let i = 0; i < viaOrt.features.length; i++) {
        maxAbs = Math.max(maxAbs, Math.abs(viaOrt.features[i] - viaTfjs.features[i]));
      }
      expect(maxAbs).toBeLessThan(1e-4);
      expect(Math.max(...viaOrt.features)).toBeGreaterThan(0.5);
      expect(tf.memory().numTensors).toBe(before);
      // A second load of the same backbone reuses the converted file instead of converting again.
      const mtime = fs.statSync(convertedPath).mtimeMs;
      const again = await loadBackbone("mobilenet_v2");
      try {
        await extractFeatures(again, images.slice(0, 2), { runtime: "onnx", onnxCacheDir: tmp });
        expect(fs.readdirSync(tmp).filter((f) => f.endsWith(".onnx"))).toEqual(converted);
        expect(fs.statSync(convertedPath).mtimeMs).toBe(mtime);
      } finally {
        disposeBackbone(again);
      }
    } finally {
      disposeBackbone(backbone);
    }
  });

  it("an activation-map output (fine-tuning's frozen bottom) flattens in the order tfjs flattens it", async () => {
    await selectBackend();
    const input = tf.input({ shape: [8, 8, 3] });
    const conv = tf.layers
      .conv2d({ filters: 2, kernelSize: 3, strides: 2, padding: "same", name: "bottom_conv" })
      .apply(input) as tf.SymbolicTensor;
    const model = tf.model({ inputs: input, outputs: conv });
    const backbone: Backbone = {
      name: "bottom",
      inputSizePx: 8,
      featureLayerName: "bottom_conv",
      featureDim: 4 * 4 * 2,
      preprocessing: { kind: "scale", scale: 1 / 127.5, offset: -1 },
      model,
      weightsId: "bottom/1",
    };
    const pixels = Uint8Array.from({ length: 2 * 8 * 8 * 3 }, (_, i) => (i * 37) % 256);
    const viaTfjs = await extractFeatures(backbone, { pixels, count: 2 }, { runtime: "tfjs" });
    releaseInferencePlan(backbone);
    const viaOrt = await extractFeatures(backbone, { pixels, count: 2 }, { runtime: "onnx", onnxCacheDir: tmp });
    expect(viaOrt.runtime?.runtime).toBe("onnx");
    expect(viaOrt.features).toHaveLength(2 * 32);
    for (let i = 0; i < viaOrt.features.length; i++) expect(viaOrt.features[i]).toBeCloseTo(viaTfjs.features[i], 5);
    model.dispose();
  });

  it("unforced, a tfjs backbone runs on ONNX Runtime; two models under one name and weights id get their own files", async () => {
    await selectBackend();
    const dir = fs.mkdtempSync(path.join(tmp, "auto-"));
    const makeBackbone = (seed: number): Backbone => {
      const input = tf.input({ shape: [8, 8, 3] });
      const conv = tf.layers
        .conv2d({ filters: 4, kernelSize: 3, padding: "same", kernelInitializer: tf.initializers.glorotUniform({ seed }) })
        .apply(input) as tf.SymbolicTensor;
      const pooled = tf.layers.globalAveragePooling2d({}).apply(conv) as tf.SymbolicTensor;
      return {
        name: "twin",
        inputSizePx: 8,
        featureLayerName: "pool",
        featureDim: 4,
        preprocessing: { kind: "scale", scale: 1 / 127.5, offset: -1 },
        model: tf.model({ inputs: input, outputs: pooled }),
        weightsId: "twin/1",
      };
    };
    const pixels = Uint8Array.from({ length: 8 * 8 * 3 }, (_, i) => (i * 53) % 256);
    const [first, second] = [makeBackbone(1), makeBackbone(2)];
    const previous = process.env.MELANOMA_LAB_RUNTIME;
    delete process.env.MELANOMA_LAB_RUNTIME;
    try {
      const results = [];
      for (const backbone of [first, second]) {
        const viaOrt = await extractFeatures(backbone, { pixels, count: 1 }, { onnxCacheDir: dir });
        expect(viaOrt.runtime?.runtime).toBe("onnx");
        expect(viaOrt.runtime?.reason).toContain("converted from tfjs");
        const viaTfjs = await extractFeatures(backbone, { pixels, count: 1 }, { runtime: "tfjs" });
        releaseInferencePlan(backbone);
        for (let i = 0; i < 4; i++) expect(viaOrt.features[i]).toBeCloseTo(viaTfjs.features[i], 5);
        results.push(viaOrt.features);
      }
      expect(fs.readdirSync(dir).filter((f) => f.endsWith(".onnx"))).toHaveLength(2);
      expect(Array.from(results[0])).not.toEqual(Array.from(results[1]));
    } finally {
      if (previous !== undefined) process.env.MELANOMA_LAB_RUNTIME = previous;
      first.model.dispose();
      second.model.dispose();
    }
  });

  it("a model that does not convert is an error naming the layer when onnx is forced, and runs on tfjs otherwise", async () => {
    await selectBackend();
    const input = tf.input({ shape: [8, 8, 3] });
    const leaky = tf.layers.leakyReLU({ alpha: 0.1, name: "leaky" }).apply(input) as tf.SymbolicTensor;
    const pooled = tf.layers.globalAveragePooling2d({}).apply(leaky) as tf.SymbolicTensor;
    const model = tf.model({ inputs: input, outputs: pooled });
    const backbone: Backbone = {
      name: "handmade",
      inputSizePx: 8,
      featureLayerName: "leaky",
      featureDim: 3,
      preprocessing: { kind: "scale", scale: 1 / 255, offset: 0 },
      model,
      weightsId: "handmade/1",
    };
    const pixels = new Uint8Array(8 * 8 * 3).fill(200);
    await expect(
      extractFeatures(backbone, { pixels, count: 1 }, { runtime: "onnx", onnxCacheDir: tmp }),
    ).rejects.toThrow(RuntimeUnavailableError);
    await expect(
      extractFeatures(backbone, { pixels, count: 1 }, { runtime: "onnx", onnxCacheDir: tmp }),
    ).rejects.toThrow(/does not convert to ONNX: .*leaky/);
    const viaTfjs = await extractFeatures(backbone, { pixels, count: 1 }, { onnxCacheDir: tmp });
    expect(viaTfjs.runtime?.runtime).toBe("tfjs");
    expect(viaTfjs.features[0]).toBeCloseTo(200 / 255, 5);
    releaseInferencePlan(backbone);
    model.dispose();
  });
});
