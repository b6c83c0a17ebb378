import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import sharp from "sharp";
import * as tf from "@tensorflow/tfjs";
import { beforeAll, describe, expect, it } from "vitest";
import { selectBackend } from "../../lib/index.js";
import {
  blendGradCamOverlay,
  computeGradCam,
  decodeImageForModel,
  explainImageWithGradCam,
  GradCamError,
  mapJetColour,
  renderGradCamOverlayPng,
} from "../../lib/evaluate/gradCam.js";
import { loadBackbone } from "../../lib/models/backbones.js";
import { extractFeatures } from "../../lib/models/features.js";
import type { Backbone } from "../../lib/models/types.js";
import { predictHeadProbabilities } from "../../lib/train/predictBatches.js";
import { DIAGNOSIS_HEAD_LAYERS } from "../../lib/models/headLayers.js";
import { createRandom } from "../../lib/util/random.js";
import { findSharedPath } from "../helpers/shared.js";

const SIZE = 4;

/** A "backbone" whose feature map is the input channels themselves (1×1 conv, identity kernel), pooled by global average. */
function buildIdentityBackbone(): Backbone {
  const input = tf.input({ shape: [SIZE, SIZE, 3] });
  const conv = tf.layers.conv2d({
    filters: 3,
    kernelSize: 1,
    useBias: false,
    name: "features",
    weights: [tf.eye(3).reshape([1, 1, 3, 3])],
  });
  const map = conv.apply(input) as tf.SymbolicTensor;
  const pooled = tf.layers.globalAveragePooling2d({ name: "gap" }).apply(map) as tf.SymbolicTensor;
  const model = tf.model({ inputs: input, outputs: pooled });
  return {
    name: "identity",
    inputSizePx: SIZE,
    featureLayerName: "features",
    featureDim: 3,
    preprocessing: { kind: "scale", scale: 1 / 255, offset: 0 },
    model,
    weightsId: "test",
  };
}

/** dense(1, activation) on 3 features with the given kernel and bias. */
function buildLinearHead(kernel: number[], bias: number, activation: "sigmoid" | "linear" = "sigmoid"): tf.LayersModel {
  const input = tf.input({ shape: [3] });
  const dense = tf.layers.dense({
    units: 1,
    activation,
    name: "head_output",
    weights: [tf.tensor2d(kernel, [3, 1]), tf.tensor1d([bias])],
  });
  return tf.model({ inputs: input, outputs: dense.apply(input) as tf.SymbolicTensor });
}

/** RGB image of SIZE² pixels from per-channel arrays of SIZE² values. */
function imageOf(red: number[], green: number[], blue: number[]): Uint8Array {
  const out = new Uint8Array(SIZE * SIZE * 3);
  for (let p = 0; p < SIZE * SIZE; p++) {
    out[3 * p] = red[p];
    out[3 * p + 1] = green[p];
    out[3 * p + 2] = blue[p];
  }
  return out;
}

const sigmoid = (z: number) => 1 / (1 + Math.exp(-z));

describe("computeGradCam on a hand-built backbone whose feature map is the input", () => {
  let backbone: Backbone;
  beforeAll(async () => {
    await selectBackend();
    backbone = buildIdentityBackbone();
  });

  it("lights up exactly where the weighted channel is high", () => {
    const red = new Array(16).fill(0);
    red[1 * SIZE + 2] = 255;
    red[3 * SIZE + 0] = 51;
    const rand = createRandom(3);
    const green = Array.from({ length: 16 }, () => Math.floor(rand() * 256));
    const blue = Array.from({ length: 16 }, () => Math.floor(rand() * 256));
    // The head looks at red only: logit = 2 · mean(red/255) − 1.
    const head = buildLinearHead([2, 0, 0], -1);
    const cam = computeGradCam(backbone, head, imageOf(red, green, blue), SIZE);
    expect(cam.featureMapSizePx).toBe(SIZE);
    const expected = new Array(16).fill(0);
    expected[6] = 1;
    expected[12] = 0.2;
    for (let i = 0; i < 16; i++) expect(cam.heatmap[i]).toBeCloseTo(expected[i], 6);
    const logit = 2 * ((1 + 0.2) / 16) - 1;
    expect(cam.logit).toBeCloseTo(logit, 6);
    expect(cam.probability).toBeCloseTo(sigmoid(logit), 6);
    // Gradient per cell is 2/16 (the mean spreads it), times the red value 1.0 at the hottest cell.
    expect(cam.camMax).toBeCloseTo(2 / 16, 6);
    head.dispose();
  });

  it("keeps only positive evidence: kernel [1, -1, 0] gives ReLU(red − green)", () => {
    const red = [255, 255, 0, 102, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 204];
    const green = [0, 255, 255, 51, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    const blue = new Array(16).fill(90);
    const head = buildLinearHead([1, -1, 0], 0.3);
    const cam = computeGradCam(backbone, head, imageOf(red, green, blue), SIZE);
    const diff = red.map((r, i) => Math.max(0, (r - green[i]) / 255));
    const max = Math.max(...diff);
    for (let i = 0; i < 16; i++) expect(cam.heatmap[i]).toBeCloseTo(diff[i] / max, 6);
    expect(cam.heatmap[2]).toBe(0); // green-only cell is evidence against malignant
    head.dispose();
  });

  it("returns an all-zero map (camMax 0) when nothing pushes the logit up, and takes a linear head's output as the logit", () => {
    const red = new Array(16).fill(100);
    const head = buildLinearHead([-1, 0, 0], 0.5, "linear");
    const cam = computeGradCam(backbone, head, imageOf(red, red, red), SIZE);
    expect(cam.camMax).toBe(0);
    expect(Array.from(cam.heatmap)).toEqual(new Array(16).fill(0));
    expect(cam.logit).toBeCloseTo(0.5 - 100 / 255, 6);
    expect(cam.probability).toBeCloseTo(sigmoid(0.5 - 100 / 255), 6);
    head.dispose();
  });

  it("matches an independent hand computation for a head with a ReLU hidden layer and dropout", () => {
    const rand = createRandom(11);
    const input = tf.input({ shape: [3] });
    const w1 = Array.from({ length: 3 * 4 }, () => rand() * 2 - 1);
    const b1 = [0.1, -0.2, 0.05, 0.3];
    const w2 = [0.7, -1.1, 0.9, 0.4];
    const hidden = tf.layers
      .dense({ units: 4, activation: "relu", weights: [tf.tensor2d(w1, [3, 4]), tf.tensor1d(b1)] })
      .apply(input) as tf.SymbolicTensor;
    const dropped = tf.layers.dropout({ rate: 0.5 }).apply(hidden) as tf.SymbolicTensor;
    const output = tf.layers
      .dense({ units: 1, activation: "sigmoid", weights: [tf.tensor2d(w2, [4, 1]), tf.tensor1d([-0.25])] })
      .apply(dropped) as tf.SymbolicTensor;
    const head = tf.model({ inputs: input, outputs: output });
    const channels = [0, 1, 2].map(() => Array.from({ length: 16 }, () => Math.floor(rand() * 256)));
    const rgb = imageOf(channels[0], channels[1], channels[2]);
    const cam = computeGradCam(backbone, head, rgb, SIZE);

    // By hand: pooled features, hidden pre-activations, logit and d logit / d pooled.
    const pooled = channels.map((ch) => ch.reduce((a, b) => a + b / 255, 0) / 16);
    const pre = [0, 1, 2, 3].map((j) => b1[j] + pooled.reduce((a, f, k) => a + f * w1[k * 4 + j], 0));
    const logit = -0.25 + pre.reduce((a, v, j) => a + Math.max(0, v) * w2[j], 0);
    const dPooled = [0, 1, 2].map((k) => pre.reduce((a, v, j) => a + (v > 0 ? w1[k * 4 + j] * w2[j] : 0), 0));
    const raw = Array.from({ length: 16 }, (_, p) =>
      Math.max(
        0,
        channels.reduce((a, ch, k) => a + (dPooled[k] / 16) * (ch[p] / 255), 0),
      ),
    );
    const max = Math.max(...raw);
    expect(cam.logit).toBeCloseTo(logit, 5);
    const predicted = head.predict(
      backbone.model.predict(
        tf.tensor4d(
          Float32Array.from(rgb, (v) => v / 255),
          [1, SIZE, SIZE, 3],
        ),
      ),
    ) as tf.Tensor;
    expect(cam.probability).toBeCloseTo(predicted.dataSync()[0], 6);
    predicted.dispose();
    expect(cam.camMax).toBeCloseTo(max, 6);
    for (let p = 0; p < 16; p++) expect(cam.heatmap[p]).toBeCloseTo(max > 0 ? raw[p] / max : 0, 5);
    head.dispose();
  });

  it("takes a diagnosis head's malignant log-odds from its logits (not the saturating P(malignant)), by hand", () => {
    const rand = createRandom(5);
    const w = Array.from({ length: 9 }, () => rand() * 4 - 2);
    const b = [0.3, -0.1, 0.2];
    const input = tf.input({ shape: [3] });
    const z = tf.layers
      .dense({ units: 3, name: DIAGNOSIS_HEAD_LAYERS.logits, weights: [tf.tensor2d(w, [3, 3]), tf.tensor1d(b)] })
      .apply(input) as tf.SymbolicTensor;
    const softmax = tf.layers
      .activation({ activation: "softmax", name: DIAGNOSIS_HEAD_LAYERS.softmax })
      .apply(z) as tf.SymbolicTensor;
    // Classes 0 and 2 malignant, class 1 benign.
    const sum = tf.layers.dense({
      units: 1,
      useBias: false,
      trainable: false,
      name: DIAGNOSIS_HEAD_LAYERS.malignantSum,
      weights: [tf.tensor2d([1, 0, 1], [3, 1])],
    });
    const head = tf.model({ inputs: input, outputs: sum.apply(softmax) as tf.SymbolicTensor });
    const channels = [0, 1, 2].map(() => Array.from({ length: 16 }, () => Math.floor(rand() * 256)));
    const cam = computeGradCam(backbone, head, imageOf(channels[0], channels[1], channels[2]), SIZE);

    const pooled = channels.map((ch) => ch.reduce((a, v) => a + v / 255, 0) / 16);
    const logits = [0, 1, 2].map((k) => b[k] + pooled.reduce((a, f, c) => a + f * w[c * 3 + k], 0));
    const e = logits.map(Math.exp);
    expect(cam.logit).toBeCloseTo(Math.log(e[0] + e[2]) - logits[1], 5);
    expect(cam.probability).toBeCloseTo((e[0] + e[2]) / (e[0] + e[1] + e[2]), 6);
    // d logit / d z = [e0, -(e0 + e2), e2] / (e0 + e2) over the malignant pair, −1 for the benign class.
    const dz = [e[0] / (e[0] + e[2]), -1, e[2] / (e[0] + e[2])];
    const dPooled = [0, 1, 2].map((c) => dz.reduce((a, d, k) => a + d * w[c * 3 + k], 0));
    const raw = Array.from({ length: 16 }, (_, p) =>
      Math.max(
        0,
        channels.reduce((a, ch, c) => a + (dPooled[c] / 16) * (ch[p] / 255), 0),
      ),
    );
    const max = Math.max(...raw);
    expect(cam.camMax).toBeCloseTo(max, 6);
    for (let p = 0; p < 16; p++) expect(cam.heatmap[p]).toBeCloseTo(max > 0 ? raw[p] / max : 0, 5);
    head.dispose();
  });

  it("explains an image file as the model sees it: the run's pixel transform comes before the backbone", async () => {
    // Red at one pixel only; the head looks at green only. A transform that swaps red and green
    // (as colour constancy changes colours) must move the evidence into the green channel.
    const red = new Array(16).fill(0);
    red[1 * SIZE + 2] = 255;
    const zeros = new Array(16).fill(0);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "gradcam-transform-"));
    const file = path.join(dir, "red-dot.png");
    await sharp(Buffer.from(imageOf(red, zeros, zeros)), { raw: { width: SIZE, height: SIZE, channels: 3 } })
      .png()
      .toFile(file);
    const swapRedGreen = {
      name: "swap-red-green",
      apply: (rgb: Uint8Array) => rgb.map((v, i) => (i % 3 === 0 ? rgb[i + 1] : i % 3 === 1 ? rgb[i - 1] : v)),
    };
    const head = buildLinearHead([0, 2, 0], -1);
    try {
      const plain = await explainImageWithGradCam(backbone, head, file);
      expect(plain.camMax).toBe(0);
      const seen = await decodeImageForModel(file, backbone, { pixelTransform: swapRedGreen });
      expect(Array.from(seen)).toEqual(Array.from(imageOf(zeros, red, zeros)));
      const transformed = await explainImageWithGradCam(backbone, head, file, { pixelTransform: swapRedGreen });
      expect(Array.from(transformed.rgbPixels)).toEqual(Array.from(seen));
      expect(transformed.heatmap[6]).toBeCloseTo(1, 6);
      expect(transformed.logit).toBeCloseTo(2 * (1 / 16) - 1, 6);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it("leaves the tensor count flat", () => {
    const head = buildLinearHead([1, 0.5, -0.5], 0);
    const rgb = imageOf(new Array(16).fill(200), new Array(16).fill(10), new Array(16).fill(30));
    computeGradCam(backbone, head, rgb, SIZE);
    const before = tf.memory().numTensors;
    for (let i = 0; i < 3; i++) computeGradCam(backbone, head, rgb, SIZE);
    expect(tf.memory().numTensors).toBe(before);
    head.dispose();
  });

  it("rejects a wrong image size or byte count and a head it cannot take a logit of", () => {
    const head = buildLinearHead([1, 0, 0], 0);
    expect(() => computeGradCam(backbone, head, new Uint8Array(8 * 8 * 3), 8)).toThrow(
      /imageSizePx: received 8; identity needs 4/,
    );
    expect(() => computeGradCam(backbone, head, new Uint8Array(10), SIZE)).toThrow(
      /rgbPixels: received 10 bytes; expected 4 × 4 × 3 = 48/,
    );
    const input = tf.input({ shape: [3] });
    const softmax = tf.model({
      inputs: input,
      outputs: tf.layers.dense({ units: 2, activation: "softmax" }).apply(input) as tf.SymbolicTensor,
    });
    expect(() => computeGradCam(backbone, softmax, new Uint8Array(48), SIZE)).toThrow(GradCamError);
    expect(() => computeGradCam(backbone, softmax, new Uint8Array(48), SIZE)).toThrow(
      /units 2, activation softmax\); expected Dense with 1 unit and sigmoid/,
    );
    head.dispose();
    softmax.dispose();
  });
});

describe("renderGradCamOverlayPng", () => {
  it("maps 0 → blue, 0.5 → green, 1 → red (jet)", () => {
    expect(mapJetColour(0)).toEqual([0, 0, 128]);
    expect(mapJetColour(0.5)).toEqual([128, 255, 128]);
    expect(mapJetColour(1)).toEqual([128, 0, 0]);
    expect(mapJetColour(0.25)).toEqual([0, 128, 255]);
  });

  it("upsamples bilinearly, colours and blends: alpha 0 is the image, alpha 1 the colour map", async () => {
    const sizePx = 32;
    const rgb = new Uint8Array(sizePx * sizePx * 3).fill(100);
    const heatmap = Float32Array.from([1, 0, 0, 0]); // hot top-left cell of a 2×2 map
    const same = await blendGradCamOverlay(rgb, sizePx, heatmap, 2, { alpha: 0 });
    expect(Array.from(same)).toEqual(Array.from(rgb));
    const colour = await blendGradCamOverlay(rgb, sizePx, heatmap, 2, { alpha: 1 });
    const pixel = (x: number, y: number) => Array.from(colour.subarray(3 * (y * sizePx + x), 3 * (y * sizePx + x) + 3));
    expect(pixel(0, 0)).toEqual([128, 0, 0]); // corner of the hot cell: dark red
    expect(pixel(31, 31)).toEqual([0, 0, 128]); // far corner: dark blue
    // Read the heat back through the palette (alpha 1 gives exact palette colours).
    const palette = Array.from({ length: 256 }, (_, v) => mapJetColour(v / 255).join(","));
    const heatAt = (x: number, y: number) => palette.indexOf(pixel(x, y).join(","));
    // Bilinear: heat falls monotonically along the diagonal from the hot corner, through intermediate values.
    const diagonal = Array.from({ length: sizePx }, (_, d) => heatAt(d, d));
    expect(diagonal.every((v) => v >= 0)).toBe(true);
    for (let i = 1; i < diagonal.length; i++) expect(diagonal[i]).toBeLessThanOrEqual(diagonal[i - 1]);
    expect(new Set(diagonal).size).toBeGreaterThan(8);
    expect(heatAt(31, 0)).toBe(0); // top-right cell is cold
    const half = await blendGradCamOverlay(rgb, sizePx, heatmap, 2, { alpha: 0.5 });
    expect(Array.from(half.subarray(0, 3))).toEqual([114, 50, 50]); // (100 + 128) / 2, (100 + 0) / 2
  });

  it("returns a PNG of the image size and rejects bad heatmaps", async () => {
    const rgb = new Uint8Array(16 * 16 * 3).fill(30);
    const png = await renderGradCamOverlayPng(rgb, 16, [0, 0.5, 1, 0.25], 2);
    expect(Array.from(png.subarray(0, 4))).toEqual([0x89, 0x50, 0x4e, 0x47]);
    const meta = await sharp(png).metadata();
    expect([meta.width, meta.height, meta.channels]).toEqual([16, 16, 3]);
    await expect(renderGradCamOverlayPng(rgb, 16, [0, 0.5, 1], 2)).rejects.toThrow(
      /heatmap: received 3 values for featureMapSizePx 2; expected featureMapSizePx² = 4/,
    );
    await expect(renderGradCamOverlayPng(rgb, 16, [0, 0.5, 1, 1.5], 2)).rejects.toThrow(
      /heatmap\[3\] is 1.5; expected a value in \[0, 1\]/,
    );
    await expect(renderGradCamOverlayPng(rgb, 16, [0, 0, 0, 0], 2, { alpha: 2 })).rejects.toThrow(/alpha: received 2/);
  });
});

describe("Grad-CAM on mobilenet_v2 (nsfwjs weights)", () => {
  it("gives a 7×7 map in [0, 1] in a few seconds, with the feature pipeline's probability and no tensor leak", async () => {
    await selectBackend();
    const backbone = await loadBackbone("mobilenet_v2");
    const input = tf.input({ shape: [1280] });
    const head = tf.model({
      inputs: input,
      outputs: tf.layers
        .dense({
          units: 1,
          activation: "sigmoid",
          kernelInitializer: tf.initializers.randomNormal({ mean: 0, stddev: 0.05, seed: 5 }),
        })
        .apply(input) as tf.SymbolicTensor,
    });
    // A real lesion when ../shared is present; the timing and range checks hold for any image.
    const labelsCsv = findSharedPath("data/ham10000-dev/labels.csv");
    let imagePath: string;
    if (labelsCsv) {
      const firstId = fs.readFileSync(labelsCsv, "utf8").split("\n")[1].split(",")[0];
      imagePath = path.join(path.dirname(labelsCsv), "images", `${firstId}.jpg`);
    } else {
      imagePath = path.join(fs.mkdtempSync(path.join((await import("node:os")).tmpdir(), "ml-gradcam-")), "noise.png");
      const rand = createRandom(9);
      await sharp(Buffer.from(Uint8Array.from({ length: 224 * 224 * 3 }, () => Math.floor(rand() * 256))), {
        raw: { width: 224, height: 224, channels: 3 },
      })
        .png()
        .toFile(imagePath);
    }
    await explainImageWithGradCam(backbone, head, imagePath); // warm-up
    const before = tf.memory().numTensors;
    const started = performance.now();
    const explained = await explainImageWithGradCam(backbone, head, imagePath, { alpha: 0.4 });
    const elapsedMs = performance.now() - started;
    expect(tf.memory().numTensors).toBe(before);
    console.log(
      `Grad-CAM mobilenet_v2 on ${tf.getBackend()}: ${elapsedMs.toFixed(0)} ms per image (decode + forward + gradient + overlay), camMax ${explained.camMax.toExponential(3)}, p ${explained.probability.toFixed(4)}`,
    );
    expect(explained.featureMapSizePx).toBe(7);
    expect(explained.heatmap.length).toBe(49);
    expect(explained.heatmap.every((v) => v >= 0 && v <= 1)).toBe(true);
    expect(explained.camMax).toBeGreaterThan(0);
    expect(Math.max(...explained.heatmap)).toBe(1);
    expect(elapsedMs).toBeLessThan(5000);
    const meta = await sharp(explained.overlayPng).metadata();
    expect([meta.format, meta.width, meta.height]).toEqual(["png", 224, 224]);
    const { features } = await extractFeatures(backbone, [imagePath]);
    expect(explained.probability).toBeCloseTo(predictHeadProbabilities(head, features, 1280)[0], 5);
    head.dispose();
  });
});
