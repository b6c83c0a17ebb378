import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import sharp from "sharp";
import * as tf from "@tensorflow/tfjs";
import { beforeAll, describe, expect, it } from "vitest";
import { ImageDecodeError, selectBackend } from "../../lib/index.js";
import {
  exportTriageModel,
  loadTriageModel,
  predictMalignantProbability,
  predictMalignantProbabilityTta,
  type LoadedTriageModel,
  type TriageModelMetadata,
} from "../../lib/export/triageModel.js";
import { triageImage } from "../../lib/triage/triage.js";
import { fitTriagePolicy } from "../../lib/triage/triagePolicy.js";

const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));

describe("TTA view probabilities (hand-computed) and triageImage with a policy", () => {
  let loaded: LoadedTriageModel;
  let tmp: string;
  let halfRed: string;
  beforeAll(async () => {
    await selectBackend();
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), "ml-views-"));
    // Output σ(4·m − 2), m = mean red (0..1) of the image's left column: orientation-dependent,
    // so each dihedral view of a left-half-red image has a hand-computable probability.
    const input = tf.input({ shape: [8, 8, 3] });
    const flat = tf.layers.flatten().apply(input) as tf.SymbolicTensor;
    const dense = tf.layers.dense({ units: 1, activation: "sigmoid" });
    const model = tf.model({ inputs: input, outputs: dense.apply(flat) as tf.SymbolicTensor });
    const kernel = new Float32Array(8 * 8 * 3);
    for (let row = 0; row < 8; row++) kernel[(row * 8 + 0) * 3 + 0] = 4 / 8;
    dense.setWeights([tf.tensor2d(kernel, [192, 1]), tf.tensor1d([-2])]);
    const metadata: TriageModelMetadata = {
      formatVersion: 1,
      labels: ["benign", "malignant"],
      inputSizePx: 8,
      preprocessing: { kind: "scale", scale: 1 / 255, offset: 0 },
      resizePolicy: "squash",
      thresholdProb: 0.7,
      backboneName: "handmade",
      backboneWeightsId: "handmade/1",
      featureLayerName: "none",
      featureDim: 192,
      createdAt: new Date().toISOString(),
      backend: tf.getBackend(),
      policy: fitTriagePolicy({
        labels: [1, 1, 0, 1, 0, 1, 0, 0, 1, 0],
        probabilities: [0.95, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.05],
        targetSensitivity: 0.8,
        targetNpv: 0.95,
      }),
    };
    await exportTriageModel(path.join(tmp, "model"), model, metadata);
    model.dispose();
    loaded = await loadTriageModel(path.join(tmp, "model"));
    halfRed = path.join(tmp, "half-red.png");
    const pixels = Buffer.alloc(16 * 16 * 3);
    for (let y = 0; y < 16; y++) for (let x = 0; x < 8; x++) pixels[(y * 16 + x) * 3] = 255;
    await sharp(pixels, { raw: { width: 16, height: 16, channels: 3 } })
      .png()
      .toFile(halfRed);
  });

  it("scores each dihedral view of the image", async () => {
    const before = tf.memory().numTensors;
    const [scored] = await predictMalignantProbabilityTta(loaded, [halfRed]);
    expect(tf.memory().numTensors).toBe(before);
    if ("problem" in scored) throw new Error(scored.problem.reason);
    // TTA_DIHEDRAL_VIEWS order: (0 turns, flip no/yes), (1 turn, …), (2 turns, …), (3 turns, …).
    // Left column red: itself 1; mirrored 0; a quarter turn either way puts half a red row in it 0.5;
    // half a turn 0; half a turn mirrored 1.
    const expected = [1, 0, 0.5, 0.5, 0, 1, 0.5, 0.5].map((m) => sigmoid(4 * m - 2));
    expect(scored.imageId).toBe("half-red");
    expect(scored.viewProbabilities).toHaveLength(8);
    scored.viewProbabilities.forEach((p, i) => expect(p).toBeCloseTo(expected[i], 5));
    expect(scored.probability).toBeCloseTo(expected.reduce((a, b) => a + b) / 8, 6);
    const [single] = await predictMalignantProbability(loaded, [halfRed]);
    expect("probability" in single && single.probability).toBeCloseTo(scored.viewProbabilities[0], 6);
    const [two] = await predictMalignantProbabilityTta(loaded, [halfRed], { views: 2 });
    if ("problem" in two) throw new Error(two.problem.reason);
    expect(two.viewProbabilities).toHaveLength(2);
    expect(two.probability).toBeCloseTo((expected[0] + expected[1]) / 2, 6);
  });

  it("names an unreadable image and a bad view count", async () => {
    fs.writeFileSync(path.join(tmp, "bad.jpg"), "nope");
    await expect(triageImage(loaded, path.join(tmp, "bad.jpg"), { ttaViews: 8 })).rejects.toThrow(ImageDecodeError);
    await expect(triageImage(loaded, halfRed, { ttaViews: 9 })).rejects.toThrow(
      /views: received 9; expected a whole number in 1–8/,
    );
  });

  it("triageImage adds the policy's decision, with an interval from TTA views", async () => {
    const plain = await triageImage(loaded, halfRed);
    expect(plain.probability).toBeCloseTo(sigmoid(2), 5);
    expect(plain.decision?.rawProbability).toBe(plain.probability);
    expect(plain.decision?.interval).toBeNull();
    const withViews = await triageImage(loaded, halfRed, { ttaViews: 8 });
    const views = [1, 0, 0.5, 0.5, 0, 1, 0.5, 0.5].map((m) => sigmoid(4 * m - 2));
    expect(withViews.probability).toBeCloseTo(views.reduce((a, b) => a + b) / 8, 6);
    expect(withViews.decision?.interval).not.toBeNull();
    const [lo, hi] = withViews.decision!.interval!;
    expect(lo).toBeLessThanOrEqual(withViews.decision!.probability);
    expect(hi).toBeGreaterThanOrEqual(withViews.decision!.probability);
    expect((await triageImage(loaded, halfRed, { policy: null })).decision).toBeUndefined();
  });
});
