import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import sharp from "sharp";
import * as tf from "@tensorflow/tfjs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { selectBackend } from "../../lib/index.js";
import { TTA_DIHEDRAL_VIEWS, transformImageDihedral } from "../../lib/data/augment.js";
import { decodeImageRgb } from "../../lib/data/decodeImage.js";
import { exportTriageModelOnnx } from "../../lib/export/onnxExport.js";
import { openOnnxTriageScorer } from "../../lib/export/onnxScoring.js";
import {
  exportTriageModel,
  loadTriageModel,
  predictMalignantProbability,
  predictMalignantProbabilityTta,
  TriageModelError,
  type LoadedTriageModel,
} from "../../lib/export/triageModel.js";
import { createRandom } from "../../lib/util/random.js";
import { makeFixtureMetadata } from "../helpers/triageMetadata.js";

const SIZE_PX = 8;

// Flatten + dense: every pixel position has its own weight, so flips and turns change the output.
function buildPositionalModel(seed: number): tf.LayersModel {
  const input = tf.input({ shape: [SIZE_PX, SIZE_PX, 3] });
  const flat = tf.layers.flatten().apply(input) as tf.SymbolicTensor;
  const dense = tf.layers.dense({ units: 1, activation: "sigmoid" });
  const model = tf.model({ inputs: input, outputs: dense.apply(flat) as tf.SymbolicTensor });
  const rand = createRandom(seed);
  const weights = Array.from({ length: SIZE_PX * SIZE_PX * 3 }, () => [(rand() - 0.5) * 0.4]);
  dense.setWeights([tf.tensor2d(weights), tf.tensor1d([0.1])]);
  return model;
}

const metadata = makeFixtureMetadata({
  inputSizePx: SIZE_PX,
  backboneName: "handmade-positional",
  featureDim: SIZE_PX * SIZE_PX * 3,
  createdAt: "2026-01-01T00:00:00.000Z",
  backend: "wasm",
});

/** P(malignant) of one view, through model.predict on that view alone (not through the packer). */
function predictOneView(model: tf.LayersModel, pixels: Uint8Array): number {
  return tf.tidy(() => {
    const x = tf.tensor4d(
      Float32Array.from(pixels, (v) => v / 255),
      [1, SIZE_PX, SIZE_PX, 3],
    );
    return (model.predict(x) as tf.Tensor).dataSync()[0];
  });
}

describe("predictMalignantProbabilityTta", () => {
  let tmp: string;
  let loaded: LoadedTriageModel;
  const images: string[] = [];

  beforeAll(async () => {
    await selectBackend();
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), "ml-tta-"));
    const model = buildPositionalModel(5);
    await exportTriageModel(path.join(tmp, "model"), model, metadata);
    await exportTriageModelOnnx(path.join(tmp, "model"), model, metadata);
    model.dispose();
    const rand = createRandom(9);
    for (let i = 0; i < 3; i++) {
      const px = Buffer.from(Uint8Array.from({ length: 12 * 10 * 3 }, () => Math.floor(rand() * 256)));
      const file = path.join(tmp, `lesion${i}.png`);
      await sharp(px, { raw: { width: 12, height: 10, channels: 3 } })
        .png()
        .toFile(file);
      images.push(file);
    }
    fs.writeFileSync(path.join(tmp, "broken.jpg"), "not an image");
    loaded = await loadTriageModel(path.join(tmp, "model"));
  });

  afterAll(() => {
    loaded?.model.dispose();
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  it("gives each view's probability as the model gives it for that view alone, and their mean", async () => {
    const before = tf.memory().numTensors;
    const tta = await predictMalignantProbabilityTta(loaded, images);
    expect(tf.memory().numTensors).toBe(before);
    for (const [i, file] of images.entries()) {
      const p = tta[i];
      if (!("viewProbabilities" in p)) throw new Error(`expected a prediction for ${file}`);
      expect(p.imageId).toBe(`lesion${i}`);
      expect(p.viewProbabilities).toHaveLength(TTA_DIHEDRAL_VIEWS.length);
      const pixels = await decodeImageRgb(file, SIZE_PX, "squash");
      const expected = TTA_DIHEDRAL_VIEWS.map((view) =>
        predictOneView(loaded.model, transformImageDihedral(pixels, SIZE_PX, view)),
      );
      p.viewProbabilities.forEach((v, k) => expect(v).toBeCloseTo(expected[k], 5));
      expect(p.probability).toBeCloseTo(expected.reduce((a, b) => a + b, 0) / expected.length, 5);
      // The views really differ, so a scorer that ignored them would fail the line above.
      expect(Math.max(...expected) - Math.min(...expected)).toBeGreaterThan(1e-3);
    }
  });

  it("view 0 is the plain prediction; fewer views and small batches give the same per-view values", async () => {
    const plain = await predictMalignantProbability(loaded, images);
    const all = await predictMalignantProbabilityTta(loaded, images, { batchSize: 3 });
    const three = await predictMalignantProbabilityTta(loaded, images, { views: 3, batchSize: 64 });
    images.forEach((_, i) => {
      const p = plain[i];
      const a = all[i];
      const t = three[i];
      if (!("probability" in p) || !("viewProbabilities" in a) || !("viewProbabilities" in t))
        throw new Error("no prediction");
      expect(a.viewProbabilities[0]).toBeCloseTo(p.probability, 5);
      expect(t.viewProbabilities).toHaveLength(3);
      t.viewProbabilities.forEach((v, k) => expect(v).toBeCloseTo(a.viewProbabilities[k], 5));
      expect(t.probability).toBeCloseTo(
        (t.viewProbabilities[0] + t.viewProbabilities[1] + t.viewProbabilities[2]) / 3,
        6,
      );
    });
  });

  it("an unreadable image is a problem entry and the others are scored", async () => {
    const out = await predictMalignantProbabilityTta(loaded, [images[0], path.join(tmp, "broken.jpg"), images[1]], {
      views: 2,
    });
    expect(out.map((p) => "problem" in p)).toEqual([false, true, false]);
    const problem = out[1];
    if (!("problem" in problem)) throw new Error("expected a problem");
    expect(problem.imageId).toBe("broken");
    expect(problem.problem.file).toBe(path.join(tmp, "broken.jpg"));
  });

  it("refuses a number of views outside 1–8, naming it", async () => {
    for (const views of [0, 9, 2.5]) {
      await expect(predictMalignantProbabilityTta(loaded, images, { views })).rejects.toThrow(
        new TriageModelError(
          `views: received ${views}; expected a whole number in 1–8 (dihedral views per image, default 8)`,
        ),
      );
    }
  });

  it("ONNX Runtime's predictTta gives the tfjs views and mean", async () => {
    const tfjs = await predictMalignantProbabilityTta(loaded, images);
    const scorer = await openOnnxTriageScorer(path.join(tmp, "model"), { batchSize: 5 });
    try {
      const onnx = await scorer.predictTta(images);
      onnx.forEach((o, i) => {
        const t = tfjs[i];
        if (!("viewProbabilities" in o) || !("viewProbabilities" in t)) throw new Error("no prediction");
        expect(o.viewProbabilities).toHaveLength(8);
        o.viewProbabilities.forEach((v, k) => expect(v).toBeCloseTo(t.viewProbabilities[k], 5));
        expect(o.probability).toBeCloseTo(t.probability, 5);
      });
    } finally {
      await scorer.release();
    }
  });

  it("an ensemble gets the same view at each member's input size", async () => {
    // Two members (8 px and 6 px), each flattened, concatenated, one dense: position-sensitive at both sizes.
    const a = tf.input({ shape: [SIZE_PX, SIZE_PX, 3] });
    const b = tf.input({ shape: [6, 6, 3] });
    const joined = tf.layers
      .concatenate()
      .apply([tf.layers.flatten().apply(a) as tf.SymbolicTensor, tf.layers.flatten().apply(b) as tf.SymbolicTensor]);
    const dense = tf.layers.dense({ units: 1, activation: "sigmoid" });
    const model = tf.model({ inputs: [a, b], outputs: dense.apply(joined) as tf.SymbolicTensor });
    const rand = createRandom(77);
    const width = SIZE_PX * SIZE_PX * 3 + 6 * 6 * 3;
    dense.setWeights([tf.tensor2d(Array.from({ length: width }, () => [(rand() - 0.5) * 0.4])), tf.tensor1d([0])]);
    const member = (sizePx: number, featureDim: number) => ({
      backboneName: `flat${sizePx}`,
      backboneWeightsId: "handmade/1",
      featureLayerName: "none",
      featureDim,
      inputSizePx: sizePx,
      preprocessing: metadata.preprocessing,
    });
    const ensemble: LoadedTriageModel = {
      model,
      dir: "",
      metadata: {
        ...metadata,
        featureDim: width,
        ensembleMembers: [member(SIZE_PX, SIZE_PX * SIZE_PX * 3), member(6, 6 * 6 * 3)],
      },
    };
    try {
      const [p] = await predictMalignantProbabilityTta(ensemble, [images[0]]);
      if (!("viewProbabilities" in p)) throw new Error("no prediction");
      const big = await decodeImageRgb(images[0], SIZE_PX, "squash");
      const small = await decodeImageRgb(images[0], 6, "squash");
      TTA_DIHEDRAL_VIEWS.forEach((view, k) => {
        const expected = tf.tidy(() => {
          const xa = tf.tensor4d(
            Float32Array.from(transformImageDihedral(big, SIZE_PX, view), (v) => v / 255),
            [1, SIZE_PX, SIZE_PX, 3],
          );
          const xb = tf.tensor4d(
            Float32Array.from(transformImageDihedral(small, 6, view), (v) => v / 255),
            [1, 6, 6, 3],
          );
          return (model.predict([xa, xb]) as tf.Tensor).dataSync()[0];
        });
        expect(p.viewProbabilities[k]).toBeCloseTo(expected, 5);
      });
    } finally {
      model.dispose();
    }
  });
});
