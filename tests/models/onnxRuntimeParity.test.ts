import fs from "node:fs";
import path from "node:path";
import * as tf from "@tensorflow/tfjs";
import { describe, expect, it } from "vitest";
import { selectBackend } from "../../lib/index.js";
import { loadBackbone } from "../../lib/models/backbones.js";
import { extractFeatures } from "../../lib/models/features.js";
import { disposeBackbone, releaseInferencePlan } from "../../lib/models/inferencePlan.js";
import { releaseOnnxSessions } from "../../lib/models/onnxFeatures.js";
import { requireSharedPath } from "../helpers/shared.js";

// The registry's ImageNet MobileNetV2: the same ONNX weights through ONNX Runtime (the fast
// path) and through the importer's tfjs model (fine-tuning, Grad-CAM, export) give the same
// features on real images, so the feature cache they share holds one answer.
describe("mobilenet_v2_imagenet: ONNX Runtime and tfjs features agree", () => {
  it("within 1e-4 (max abs) on 8 HAM images, each result saying which runtime ran", async (ctx) => {
    const weightsDir = requireSharedPath(ctx, "weights");
    const hamDir = requireSharedPath(ctx, "data/ham10000-dev");
    const previous = process.env.MELANOMA_LAB_WEIGHTS_DIR;
    process.env.MELANOMA_LAB_WEIGHTS_DIR = weightsDir;
    await selectBackend();
    const backbone = await loadBackbone("mobilenet_v2_imagenet");
    try {
      expect(backbone.onnx?.outputName).toBe("features");
      const images = fs
        .readdirSync(path.join(hamDir, "images"))
        .filter((f) => f.endsWith(".jpg"))
        .sort()
        .slice(0, 8)
        .map((f) => path.join(hamDir, "images", f));
      const tensorsBefore = tf.memory().numTensors;
      const viaOrt = await extractFeatures(backbone, images, { batchSize: 3, runtime: "onnx" });
      const viaTfjs = await extractFeatures(backbone, images, { batchSize: 3, runtime: "tfjs" });
      expect(viaOrt.runtime?.runtime).toBe("onnx");
      expect(viaTfjs.runtime?.runtime).toBe("tfjs");
      expect(viaOrt.rows).toBe(8);
      expect(viaOrt.imageIds).toEqual(viaTfjs.imageIds);
      let maxAbs = 0;
      for (let i = 0; i < viaOrt.features.length; i++) {
        maxAbs = Math.max(maxAbs, Math.abs(viaOrt.features[i] - viaTfjs.features[i]));
      }
      expect(maxAbs).toBeLessThan(1e-4);
      // Not vacuous: real, varied features.
      expect(Math.max(...viaOrt.features)).toBeGreaterThan(1);
      // The tfjs path keeps a compiled inference plan per model until it is released.
      releaseInferencePlan(backbone);
      expect(tf.memory().numTensors).toBe(tensorsBefore);
    } finally {
      disposeBackbone(backbone);
      await releaseOnnxSessions();
      if (previous === undefined) delete process.env.MELANOMA_LAB_WEIGHTS_DIR;
      else process.env.MELANOMA_LAB_WEIGHTS_DIR = previous;
    }
  });
});
