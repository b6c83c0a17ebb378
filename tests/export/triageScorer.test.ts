import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import sharp from "sharp";
import * as tf from "@tensorflow/tfjs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { selectBackend } from "../../lib/index.js";
import { exportTriageModelOnnx } from "../../lib/export/onnxExport.js";
import {
  exportTriageModel,
  loadTriageModel,
  predictMalignantProbability,
  TriageModelError,
} from "../../lib/export/triageModel.js";
import { openTriageScorer } from "../../lib/export/triageScorer.js";
import { createRandom } from "../../lib/util/random.js";
import { makeFixtureMetadata } from "../helpers/triageMetadata.js";

const SIZE_PX = 12;

// Conv + BatchNorm + ReLU: the tfjs scorer compiles this into an inference plan (BatchNorm folded).
function buildConvModel(seed: number): tf.LayersModel {
  const input = tf.input({ shape: [SIZE_PX, SIZE_PX, 3] });
  let x = tf.layers
    .conv2d({
      filters: 4,
      kernelSize: 3,
      padding: "same",
      kernelInitializer: tf.initializers.glorotUniform({ seed }),
    })
    .apply(input) as tf.SymbolicTensor;
  const bn = tf.layers.batchNormalization();
  x = bn.apply(x) as tf.SymbolicTensor;
  x = tf.layers.reLU().apply(x) as tf.SymbolicTensor;
  x = tf.layers.flatten().apply(x) as tf.SymbolicTensor;
  const out = tf.layers
    .dense({ units: 1, activation: "sigmoid", kernelInitializer: tf.initializers.glorotUniform({ seed }) })
    .apply(x) as tf.SymbolicTensor;
  const model = tf.model({ inputs: input, outputs: out });
  const rand = createRandom(seed);
  bn.setWeights(
    bn.getWeights().map((w) =>
      tf.tensor(
        Array.from({ length: w.size }, () => 0.5 + rand()),
        w.shape,
      ),
    ),
  );
  return model;
}

const metadata = makeFixtureMetadata({
  inputSizePx: SIZE_PX,
  resizePolicy: "center-crop",
  backboneName: "handmade-conv",
  featureDim: SIZE_PX * SIZE_PX * 4,
  createdAt: "2026-01-01T00:00:00.000Z",
  backend: "wasm",
});

describe("openTriageScorer", () => {
  let tmp: string;
  let modelDir: string;
  const images: string[] = [];

  beforeAll(async () => {
    await selectBackend();
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), "ml-scorer-"));
    modelDir = path.join(tmp, "model");
    const model = buildConvModel(3);
    await exportTriageModel(modelDir, model, metadata);
    await exportTriageModelOnnx(modelDir, model, metadata);
    model.dispose();
    const rand = createRandom(11);
    for (let i = 0; i < 5; i++) {
      const px = Buffer.from(Uint8Array.from({ length: 20 * 16 * 3 }, () => Math.floor(rand() * 256)));
      const file = path.join(tmp, `lesion${i}.png`);
      await sharp(px, { raw: { width: 20, height: 16, channels: 3 } })
        .png()
        .toFile(file);
      images.push(file);
    }
    fs.writeFileSync(path.join(tmp, "broken.jpg"), "not a jpeg");
    images.push(path.join(tmp, "broken.jpg"));
  });
  afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it("tfjs: the same probabilities as predictMalignantProbability, in batches, without leaking tensors", async () => {
    const loaded = await loadTriageModel(modelDir);
    const expected = await predictMalignantProbability(loaded, images, { batchSize: 4 });
    loaded.model.dispose();

    const before = tf.memory().numTensors;
    const scorer = await openTriageScorer(modelDir, { runtime: "tfjs", batchSize: 2 });
    expect(scorer.runtime.runtime).toBe("tfjs");
    const first = await scorer.predict(images);
    const afterFirst = tf.memory().numTensors;
    const second = await scorer.predict(images);
    // The compiled plan lives as long as the scorer: repeated batches allocate nothing that stays.
    expect(tf.memory().numTensors).toBe(afterFirst);
    expect(second).toEqual(first);
    expect(first.map((p) => ("problem" in p ? "problem" : p.imageId))).toEqual([
      "lesion0",
      "lesion1",
      "lesion2",
      "lesion3",
      "lesion4",
      "problem",
    ]);
    first.forEach((p, i) => {
      const e = expected[i];
      if ("problem" in p || "problem" in e) {
        expect("problem" in p && "problem" in e).toBe(true);
        return;
      }
      expect(Math.abs(p.probability - e.probability)).toBeLessThan(1e-6);
    });
    const tta = await scorer.predictTta(images.slice(0, 2), { views: 4 });
    tta.forEach((t, i) => {
      if ("problem" in t || "problem" in first[i]) throw new Error("unexpected problem");
      expect(t.viewProbabilities).toHaveLength(4);
      expect(Math.abs(t.viewProbabilities[0] - (first[i] as { probability: number }).probability)).toBeLessThan(1e-6);
    });
    await scorer.release();
    expect(tf.memory().numTensors).toBe(before);
  });

  it("onnx and tfjs scorers agree (plain and TTA)", async () => {
    const tfjs = await openTriageScorer(modelDir, { runtime: "tfjs" });
    const onnx = await openTriageScorer(modelDir, { runtime: "onnx" });
    expect(onnx.runtime.runtime).toBe("onnx");
    const [a, b] = [await tfjs.predictTta(images, { views: 8 }), await onnx.predictTta(images, { views: 8 })];
    a.forEach((p, i) => {
      const q = b[i];
      if ("problem" in p || "problem" in q) {
        expect("problem" in p && "problem" in q).toBe(true);
        return;
      }
      p.viewProbabilities.forEach((v, k) => expect(Math.abs(v - q.viewProbabilities[k])).toBeLessThan(1e-5));
    });
    await tfjs.release();
    await onnx.release();
  });

  it("refuses a batch size that is not a whole number ≥ 1, naming it", async () => {
    await expect(openTriageScorer(modelDir, { batchSize: 0 })).rejects.toThrow(TriageModelError);
    await expect(openTriageScorer(modelDir, { batchSize: 0 })).rejects.toThrow(/batchSize: received 0/);
  });
});
