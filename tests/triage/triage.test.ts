import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import sharp from "sharp";
import * as tf from "@tensorflow/tfjs";
import { beforeAll, describe, expect, it } from "vitest";
import { ImageDecodeError, selectBackend } from "../../lib/index.js";
import { exportTriageModel, loadTriageModel, type LoadedTriageModel } from "../../lib/export/triageModel.js";
import { chooseThresholdForSensitivity, ThresholdError, triageDecision, triageImage } from "../../lib/triage/triage.js";
import { makeFixtureMetadata } from "../helpers/triageMetadata.js";

describe("chooseThresholdForSensitivity", () => {
  it("picks the highest threshold meeting the target (hand-checked)", () => {
    const labels = [1, 1, 0, 1, 0, 1, 0, 0, 1, 0];
    const probs = [0.95, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.05];
    // 5 positives at 0.95, 0.8, 0.6, 0.4, 0.1. Target 0.6 → 3 positives → threshold 0.6.
    const c = chooseThresholdForSensitivity(labels, probs, 0.6);
    expect(c.thresholdProb).toBe(0.6);
    expect(c.sensitivity).toBe(0.6);
    // negatives below 0.6: 0.5, 0.3, 0.2, 0.05 of 5 (0.7 is above) → 0.8
    expect(c.specificity).toBe(0.8);
    // 0.9 → ⌈4.5⌉ = 5 positives → the lowest positive, 0.1
    expect(chooseThresholdForSensitivity(labels, probs, 0.9).thresholdProb).toBe(0.1);
    // 0.8 × 5 = 4 exactly (no float round-up to 5) → 0.4
    expect(chooseThresholdForSensitivity(labels, probs, 0.8).thresholdProb).toBe(0.4);
    expect(
      chooseThresholdForSensitivity(
        labels.map((l) => (l ? "malignant" : "benign")),
        probs,
        0.8,
      ).thresholdProb,
    ).toBe(0.4);
  });

  it("with ties counts every positive at the threshold", () => {
    const c = chooseThresholdForSensitivity([1, 1, 1, 0], [0.5, 0.5, 0.5, 0.5], 0.34);
    expect(c.thresholdProb).toBe(0.5);
    expect(c.sensitivity).toBe(1);
    expect(c.specificity).toBe(0);
  });

  it("rejects bad input naming what was received", () => {
    expect(() => chooseThresholdForSensitivity([0, 0], [0.1, 0.2], 0.9)).toThrow(/no malignant images/);
    expect(() => chooseThresholdForSensitivity([1], [0.1, 0.2], 0.9)).toThrow(/labels \(1\) and probabilities \(2\)/);
    expect(() => chooseThresholdForSensitivity([1], [1.5], 0.9)).toThrow(/probabilities\[0\]: received 1.5/);
    expect(() => chooseThresholdForSensitivity([1], [0.5], 0)).toThrow(ThresholdError);
  });

  it("decides urgent at or above the threshold", () => {
    expect(triageDecision(0.3, 0.3)).toBe("urgent");
    expect(triageDecision(0.2999, 0.3)).toBe("routine");
  });
});

describe("triageImage", () => {
  let loaded: LoadedTriageModel;
  let tmp: string;
  beforeAll(async () => {
    await selectBackend();
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), "ml-triage-"));
    // A model whose output is hand-computable: sigmoid(mean red channel after x/255).
    const input = tf.input({ shape: [8, 8, 3] });
    const pooled = tf.layers.globalAveragePooling2d({}).apply(input) as tf.SymbolicTensor;
    const dense = tf.layers.dense({ units: 1, activation: "sigmoid", name: "red_logit" });
    const model = tf.model({ inputs: input, outputs: dense.apply(pooled) as tf.SymbolicTensor });
    dense.setWeights([tf.tensor2d([[1], [0], [0]]), tf.tensor1d([0])]);
    const metadata = makeFixtureMetadata({
      inputSizePx: 8,
      thresholdProb: 0.7,
      validationMetrics: { rocAuc: 1 },
      featureDim: 3,
    });
    await exportTriageModel(path.join(tmp, "model"), model, metadata);
    model.dispose();
    loaded = await loadTriageModel(path.join(tmp, "model"));
    await sharp({ create: { width: 16, height: 16, channels: 3, background: { r: 255, g: 0, b: 0 } } })
      .png()
      .toFile(path.join(tmp, "red.png"));
    await sharp({ create: { width: 16, height: 16, channels: 3, background: { r: 0, g: 0, b: 255 } } })
      .png()
      .toFile(path.join(tmp, "blue.png"));
  });

  it("scores images as the exported metadata says and applies its threshold", async () => {
    const red = await triageImage(loaded, path.join(tmp, "red.png"));
    expect(red.imageId).toBe("red");
    expect(red.probability).toBeCloseTo(1 / (1 + Math.exp(-1)), 5); // 0.7311 ≥ 0.7
    expect(red.triage).toBe("urgent");
    expect(red.thresholdProb).toBe(0.7);
    const blue = await triageImage(loaded, path.join(tmp, "blue.png"));
    expect(blue.probability).toBeCloseTo(0.5, 6);
    expect(blue.triage).toBe("routine");
    expect((await triageImage(loaded, path.join(tmp, "blue.png"), { thresholdProb: 0.5 })).triage).toBe("urgent");
  });

  it("throws ImageDecodeError naming an unreadable image", async () => {
    fs.writeFileSync(path.join(tmp, "bad.jpg"), "nope");
    await expect(triageImage(loaded, path.join(tmp, "bad.jpg"))).rejects.toThrow(ImageDecodeError);
    await expect(triageImage(loaded, path.join(tmp, "bad.jpg"))).rejects.toThrow(/bad\.jpg/);
  });
});
