import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import sharp from "sharp";
import * as tf from "@tensorflow/tfjs";
import { beforeAll, describe, expect, it } from "vitest";
import { disposeBackbone, selectBackend, UnknownNameError } from "../../lib/index.js";
import { BACKBONE_NAMES, describeBackbone, loadBackbone, parseBackboneName } from "../../lib/models/backbones.js";
import { countMultiplyAddsPerImage } from "../../lib/models/countMultiplyAdds.js";
import { extractFeatures, FeatureInputError } from "../../lib/models/features.js";
import { preprocessImages, preprocessToFloat32 } from "../../lib/models/preprocess.js";
import type { Backbone } from "../../lib/models/types.js";
import { createRandom } from "../../lib/util/random.js";

function randomPixels(count: number, sizePx: number, seed: number): Uint8Array {
  const rand = createRandom(seed);
  return Uint8Array.from({ length: count * sizePx * sizePx * 3 }, () => Math.floor(rand() * 256));
}

describe("preprocessing", () => {
  it("scales pixels as the spec says (hand-checked)", () => {
    expect(Array.from(preprocessToFloat32(new Uint8Array([0, 255, 51]), { kind: "scale", scale: 1 / 255, offset: 0 }))).toEqual([0, 1, 51 / 255].map(Math.fround));
    expect(Array.from(preprocessToFloat32(new Uint8Array([0, 255, 127.5 as number]), { kind: "scale", scale: 1 / 127.5, offset: -1 }))).toEqual([-1, 1, Math.fround(127 / 127.5 - 1)]);
    // caffe: RGB (10, 20, 30) → BGR (30, 20, 10) minus means (1, 2, 3)
    expect(Array.from(preprocessToFloat32(new Uint8Array([10, 20, 30]), { kind: "caffe", meanBgr: [1, 2, 3] }))).toEqual([29, 18, 7]);
  });

  it("makes a [count, size, size, 3] tensor and rejects a wrong byte count", () => {
    const x = preprocessImages(new Uint8Array(2 * 4 * 4 * 3).fill(255), 2, 4, { kind: "scale", scale: 1 / 127.5, offset: -1 });
    expect(x.shape).toEqual([2, 4, 4, 3]);
    expect(x.max().dataSync()[0]).toBeCloseTo(1, 6);
    x.dispose();
    expect(() => preprocessImages(new Uint8Array(10), 1, 4, { kind: "scale", scale: 1, offset: 0 })).toThrow(/received 10 bytes, expected count 1 × 4 × 4 × 3 = 48/);
  });
});

describe("backbone registry", () => {
  it("rejects an unknown name, listing valid names and the nearest", async () => {
    await expect(loadBackbone("mobilenetv2")).rejects.toThrow(UnknownNameError);
    await expect(loadBackbone("mobilenetv2")).rejects.toThrow(
      /expected one of "mobilenet_v2", "inception_v3", "mobilenet_v1", "vgg16", "mobilenet_v2_imagenet", "resnet50_v2_imagenet", "efficientnet_lite4_imagenet" \(did you mean "mobilenet_v2"\?\)/,
    );
    expect(parseBackboneName("MobileNet_V2")).toBe("mobilenet_v2");
    expect(parseBackboneName("MOBILENET_V2_IMAGENET")).toBe("mobilenet_v2_imagenet");
    expect(BACKBONE_NAMES).toContain("inception_v3");
    // onnx:<path> keeps the path's case; an empty path is an unknown name.
    expect(parseBackboneName("onnx:Models/ResNet50.onnx")).toBe("onnx:Models/ResNet50.onnx");
    expect(() => parseBackboneName("onnx:")).toThrow(/unknown backbone "onnx:": expected one of .*"onnx:<path of an .onnx file>"/);
  });

  it("counts multiply-adds of a tiny model by hand", async () => {
    await selectBackend();
    const input = tf.input({ shape: [4, 4, 2] });
    const conv = tf.layers.conv2d({ filters: 8, kernelSize: 3, padding: "same" }).apply(input) as tf.SymbolicTensor;
    const dw = tf.layers.depthwiseConv2d({ kernelSize: 3, padding: "valid", depthMultiplier: 2 }).apply(conv) as tf.SymbolicTensor; // [2,2,16]
    const flat = tf.layers.flatten().apply(dw) as tf.SymbolicTensor; // 64
    const out = tf.layers.dense({ units: 5 }).apply(flat) as tf.SymbolicTensor;
    const model = tf.model({ inputs: input, outputs: out });
    // conv 4·4·8·3·3·2 = 2304; depthwise 2·2·16·3·3 = 576; dense 64·5 = 320
    expect(countMultiplyAddsPerImage(model)).toBe(2304 + 576 + 320);
    model.dispose();
  });
});

describe("mobilenet_v2 (nsfwjs weights)", () => {
  let backbone: Backbone;
  beforeAll(async () => {
    await selectBackend();
    backbone = await loadBackbone("mobilenet_v2");
    console.log(`mobilenet_v2 load ${backbone.loadMs!.toFixed(0)} ms on ${tf.getBackend()}; ${(backbone.multiplyAddsPerImage! / 1e6).toFixed(1)} M multiply-adds/image; ${backbone.weightsId}`);
  });

  it("loads fast, cut at out_relu with 1280 features and [0,1] input scaling", () => {
    expect(backbone.loadMs!).toBeLessThan(5000);
    expect(backbone.featureLayerName).toBe("out_relu");
    expect(backbone.featureDim).toBe(1280);
    expect(backbone.inputSizePx).toBe(224);
    expect(backbone.preprocessing).toEqual({ kind: "scale", scale: 1 / 255, offset: 0 });
    expect(backbone.model.outputs[0].shape).toEqual([null, 1280]);
    expect(describeBackbone(backbone)).toMatch(/^mobilenet_v2: 224 px input, features = global average of out_relu → 1280, input x \* 0.00392157 \+ 0, 299.5 M multiply-adds\/image, weights nsfwjs@4.4.0\/mobilenet_v2\/sha256:[0-9a-f]{16}, loaded in \d+ ms$/);
    // Published MobileNetV2 1.0/224: ≈300 M multiply-adds.
    expect(backbone.multiplyAddsPerImage!).toBeGreaterThan(2.8e8);
    expect(backbone.multiplyAddsPerImage!).toBeLessThan(3.2e8);
  });

  it("gives [n,1280] features equal to the spatial mean of out_relu, independent of batch size, with no tensor leak", async () => {
    const pixels = randomPixels(3, 224, 7);
    const warm = await extractFeatures(backbone, { pixels, count: 3 }, { batchSize: 2 });
    const before = tf.memory().numTensors;
    const a = await extractFeatures(backbone, { pixels, count: 3 }, { batchSize: 2 });
    const mid = tf.memory().numTensors;
    const b = await extractFeatures(backbone, { pixels, count: 3 }, { batchSize: 1 });
    expect(tf.memory().numTensors).toBe(before);
    expect(mid).toBe(before);
    expect(a.rows).toBe(3);
    expect(a.features.length).toBe(3 * 1280);
    expect(Array.from(warm.features)).toEqual(Array.from(a.features));
    for (let i = 0; i < a.features.length; i++) expect(Math.abs(a.features[i] - b.features[i])).toBeLessThan(1e-4);
    // Independent path: the raw out_relu map [3,7,7,1280] averaged over space in JS.
    const relu = tf.model({ inputs: backbone.model.inputs, outputs: backbone.model.getLayer("out_relu").output as tf.SymbolicTensor });
    const x = preprocessImages(pixels, 3, 224, backbone.preprocessing);
    const map = relu.predict(x) as tf.Tensor;
    expect(map.shape).toEqual([3, 7, 7, 1280]);
    const values = map.dataSync();
    for (const [img, ch] of [[0, 0], [1, 500], [2, 1279], [2, 17]]) {
      let sum = 0;
      for (let p = 0; p < 49; p++) sum += values[img * 49 * 1280 + p * 1280 + ch];
      expect(Math.abs(sum / 49 - a.features[img * 1280 + ch])).toBeLessThan(1e-4);
    }
    tf.dispose([x, map]);
    expect(a.features.some((v) => v > 0)).toBe(true);
  });

  it("caches features by file content, reports bad images as problems and goes on", async () => {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "ml-features-"));
    const files: string[] = [];
    for (let i = 0; i < 3; i++) {
      const file = path.join(tmp, `img${i}.jpg`);
      await sharp(Buffer.from(randomPixels(1, 64, 100 + i)), { raw: { width: 64, height: 64, channels: 3 } }).jpeg().toFile(file);
      files.push(file);
    }
    const bad = path.join(tmp, "broken.jpg");
    fs.writeFileSync(bad, "not a jpeg");
    const input = [files[0], bad, files[1], path.join(tmp, "missing.jpg"), files[2]];
    const progress: [number, number][] = [];
    const cacheDir = path.join(tmp, "cache");
    const first = await extractFeatures(backbone, input, { batchSize: 2, cacheDir, onProgress: (d, t) => progress.push([d, t]) });
    expect(first.rows).toBe(3);
    expect(first.computed).toBe(3);
    expect(first.cacheHits).toBe(0);
    expect(first.sourceIndices).toEqual([0, 2, 4]);
    expect(first.imageIds).toEqual(["img0", "img1", "img2"]);
    expect(first.problems.map((p) => path.basename(p.file)).sort()).toEqual(["broken.jpg", "missing.jpg"]);
    expect(progress.at(-1)).toEqual([5, 5]);
    expect(fs.readdirSync(first.cacheFolder!).filter((f) => f.endsWith(".f32"))).toHaveLength(3);
    const second = await extractFeatures(backbone, input, { batchSize: 2, cacheDir });
    expect(second.cacheHits).toBe(3);
    expect(second.computed).toBe(0);
    expect(Array.from(second.features)).toEqual(Array.from(first.features));
    // A copy under another name hits the same cache entry (keyed by content, not path).
    fs.copyFileSync(files[1], path.join(tmp, "renamed.jpg"));
    const third = await extractFeatures(backbone, [path.join(tmp, "renamed.jpg")], { cacheDir });
    expect(third.cacheHits).toBe(1);
    expect(Array.from(third.features)).toEqual(Array.from(first.features.slice(1280, 2560)));
    // Decoded pixels are cached by their bytes too.
    const pixels = randomPixels(1, 224, 55);
    const p1 = await extractFeatures(backbone, { pixels, count: 1, imageIds: ["px"] }, { cacheDir });
    const p2 = await extractFeatures(backbone, { pixels, count: 1, imageIds: ["px"] }, { cacheDir });
    expect([p1.computed, p1.cacheHits, p2.computed, p2.cacheHits]).toEqual([1, 0, 0, 1]);
    expect(p2.imageIds).toEqual(["px"]);
    expect(Array.from(p2.features)).toEqual(Array.from(p1.features));
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  it("rejects pixel buffers of the wrong size", async () => {
    await expect(extractFeatures(backbone, { pixels: new Uint8Array(100), count: 1 })).rejects.toThrow(FeatureInputError);
  });
});

describe("featureLayerName option", () => {
  it("pools an earlier layer (its features = the mean of that layer) and names the layers on a typo", async () => {
    await selectBackend();
    const early = await loadBackbone("mobilenet_v2", { featureLayerName: "block_16_expand_relu" });
    expect(early.featureLayerName).toBe("block_16_expand_relu");
    expect(early.featureDim).toBe(960);
    const pixels = randomPixels(1, 224, 9);
    const got = await extractFeatures(early, { pixels, count: 1 });
    const direct = tf.model({ inputs: early.model.inputs, outputs: early.model.getLayer("block_16_expand_relu").output as tf.SymbolicTensor });
    const expected = tf.tidy(() => (direct.predict(preprocessImages(pixels, 1, 224, early.preprocessing)) as tf.Tensor).mean([1, 2]).dataSync());
    for (let i = 0; i < 960; i++) expect(Math.abs(got.features[i] - expected[i])).toBeLessThan(1e-4);
    disposeBackbone(early);
    await expect(loadBackbone("mobilenet_v2", { featureLayerName: "block_16_expand_reluu" })).rejects.toThrow(/did you mean "block_16_expand_relu"/);
  });
});

describe("inception_v3 (nsfwjs weights)", () => {
  it("loads with 2048 features at 299 px", async () => {
    await selectBackend();
    const backbone = await loadBackbone("inception_v3");
    console.log(`inception_v3 load ${backbone.loadMs!.toFixed(0)} ms; ${(backbone.multiplyAddsPerImage! / 1e9).toFixed(2)} G multiply-adds/image`);
    expect(backbone.featureDim).toBe(2048);
    expect(backbone.inputSizePx).toBe(299);
    const result = await extractFeatures(backbone, { pixels: randomPixels(1, 299, 3), count: 1 });
    expect(result.features.length).toBe(2048);
    expect(result.features.every(Number.isFinite)).toBe(true);
    disposeBackbone(backbone);
  });
});
