import crypto from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import sharp from "sharp";
import * as ort from "onnxruntime-node";
import * as tf from "@tensorflow/tfjs";
import { afterAll, afterEach, beforeAll, describe, expect, it, type TestContext } from "vitest";
import { selectBackend } from "../../lib/index.js";
import { extractFeatures } from "../../lib/models/features.js";
import { getOnnxSession, hwcToNchw, OnnxBackboneError, releaseOnnxSessions } from "../../lib/models/onnxFeatures.js";
import { preprocessImages } from "../../lib/models/preprocess.js";
import type { Backbone } from "../../lib/models/types.js";
import { findSharedPath, requireSharedPath } from "../helpers/shared.js";

const ONNX_REL = "weights/mobilenet_v2_1.0_imagenet/mobilenetv2-7-backbone.onnx";
const IMAGES_REL = "data/ham10000-dev/images";
const MEAN = [0.485, 0.456, 0.406];
const STD = [0.229, 0.224, 0.225];

const savedRuntime = process.env.MELANOMA_LAB_RUNTIME;
afterEach(() => {
  if (savedRuntime === undefined) delete process.env.MELANOMA_LAB_RUNTIME;
  else process.env.MELANOMA_LAB_RUNTIME = savedRuntime;
});
afterAll(() => releaseOnnxSessions());

/** A tiny tfjs model [n,224,224,3] → [n,1280] standing in for the imported network; the ONNX path must never use it. */
function placeholderModel(): tf.LayersModel {
  const model = tf.sequential();
  model.add(tf.layers.globalAveragePooling2d({ inputShape: [224, 224, 3] }));
  model.add(tf.layers.dense({ units: 1280, kernelInitializer: tf.initializers.randomNormal({ seed: 7 }) }));
  return model;
}

/** A hand-built backbone for the shared ONNX file, counting every read of `model`. */
function onnxBackbone(onnxPath: string, model: tf.LayersModel): { backbone: Backbone; modelReads: () => number } {
  const sha256 = crypto.createHash("sha256").update(fs.readFileSync(onnxPath)).digest("hex");
  let reads = 0;
  const backbone = {
    name: "mobilenet_v2_imagenet_test",
    inputSizePx: 224,
    featureLayerName: "features",
    featureDim: 1280,
    preprocessing: { kind: "normalize", mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] },
    weightsId: `onnx:${sha256}`,
    onnx: { path: onnxPath, sha256, inputName: "input", outputName: "features", layout: "NCHW" },
  } as Omit<Backbone, "model"> as Backbone;
  Object.defineProperty(backbone, "model", {
    get: () => {
      reads++;
      return model;
    },
  });
  return { backbone, modelReads: () => reads };
}

function hamFiles(ctx: TestContext, count: number): string[] {
  const dir = requireSharedPath(ctx, IMAGES_REL);
  return fs
    .readdirSync(dir)
    .filter((f) => f.endsWith(".jpg"))
    .sort()
    .slice(0, count)
    .map((f) => path.join(dir, f));
}

/** Features by a direct onnxruntime run on one image: sharp centre-crop decode, then a plain NCHW loop. */
async function directFeatures(session: ort.InferenceSession, file: string): Promise<Float32Array> {
  const rgb = await sharp(file).rotate().resize(224, 224, { fit: "cover", position: "centre" }).removeAlpha().raw().toBuffer();
  const x = new Float32Array(3 * 224 * 224);
  for (let c = 0; c < 3; c++)
    for (let y = 0; y < 224; y++)
      for (let col = 0; col < 224; col++)
        x[c * 224 * 224 + y * 224 + col] = (rgb[(y * 224 + col) * 3 + c] / 255 - MEAN[c]) / STD[c];
  const out = await session.run({ input: new ort.Tensor("float32", x, [1, 3, 224, 224]) });
  return out.features.data as Float32Array;
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

describe("hwcToNchw", () => {
  it("moves each channel into its own plane (hand-checked 2×2 image, two images)", () => {
    const hwc = Float32Array.from({ length: 24 }, (_, i) => i + 1);
    const nchw = Array.from(hwcToNchw(hwc, 2, 2));
    expect(nchw.slice(0, 12)).toEqual([1, 4, 7, 10, 2, 5, 8, 11, 3, 6, 9, 12]);
    expect(nchw.slice(12)).toEqual([13, 16, 19, 22, 14, 17, 20, 23, 15, 18, 21, 24]);
    expect(() => hwcToNchw(hwc, 3, 2)).toThrow(/received 24, expected count 3 × 2 × 2 × 3 = 36/);
  });
});

describe("extractFeatures through ONNX Runtime (ImageNet MobileNetV2 ONNX on HAM images)", () => {
  const model = findSharedPath(ONNX_REL) ? placeholderModel() : undefined;
  let direct: ort.InferenceSession | undefined;
  beforeAll(async () => {
    await selectBackend();
    const onnxPath = findSharedPath(ONNX_REL);
    if (onnxPath) direct = await ort.InferenceSession.create(onnxPath);
  });
  afterAll(async () => {
    await direct?.release();
    model?.dispose();
  });

  it("(a, e) equals a direct onnxruntime run on a hand-built NCHW tensor within 1e-5, without touching model or leaking tensors", async (ctx) => {
    const { backbone, modelReads } = onnxBackbone(requireSharedPath(ctx, ONNX_REL), model!);
    const files = hamFiles(ctx, 5);
    delete process.env.MELANOMA_LAB_RUNTIME;
    const tensorsBefore = tf.memory().numTensors;
    const result = await extractFeatures(backbone, files, { batchSize: 4, ortThreads: 1 });
    expect(tf.memory().numTensors).toBe(tensorsBefore);
    expect(modelReads()).toBe(0);
    expect(result.runtime).toMatchObject({ runtime: "onnx", ortThreads: 1 });
    expect(result.rows).toBe(5);
    expect(result.problems).toEqual([]);
    for (let r = 0; r < files.length; r++) {
      const want = await directFeatures(direct!, files[r]);
      expect(maxAbsDiff(result.features.subarray(r * 1280, (r + 1) * 1280), want)).toBeLessThan(1e-5);
    }
    // Not all-zero or constant: real features differ between lesions.
    expect(maxAbsDiff(result.features.subarray(0, 1280), result.features.subarray(1280, 2560))).toBeGreaterThan(0.1);
  });

  it("(b) gives the same rows in input order for batch sizes 1, 3 and 7 on 7 images, with 2 threads", async (ctx) => {
    const { backbone } = onnxBackbone(requireSharedPath(ctx, ONNX_REL), model!);
    const files = hamFiles(ctx, 7);
    const one = await extractFeatures(backbone, files, { batchSize: 1, ortThreads: 1, runtime: "onnx" });
    for (const batchSize of [3, 7]) {
      const other = await extractFeatures(backbone, files, { batchSize, ortThreads: 2, runtime: "onnx" });
      expect(other.imageIds).toEqual(files.map((f) => path.basename(f, ".jpg")));
      expect(other.sourceIndices).toEqual([0, 1, 2, 3, 4, 5, 6]);
      expect(maxAbsDiff(other.features, one.features)).toBeLessThan(1e-5);
    }
  });

  it("(c) a bad image becomes a problem entry and the rest go on", async (ctx) => {
    const { backbone } = onnxBackbone(requireSharedPath(ctx, ONNX_REL), model!);
    const files = hamFiles(ctx, 4);
    const bad = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "onnx-bad-")), "broken.jpg");
    fs.writeFileSync(bad, Buffer.from("this is not a JPEG"));
    const input = [files[0], files[1], bad, files[2], files[3]];
    const result = await extractFeatures(backbone, input, { batchSize: 2, ortThreads: 1, runtime: "onnx" });
    expect(result.rows).toBe(4);
    expect(result.sourceIndices).toEqual([0, 1, 3, 4]);
    expect(result.problems).toHaveLength(1);
    expect(result.problems[0].file).toBe(bad);
    expect(result.problems[0].reason).toMatch(/cannot decode as an image/);
    const clean = await extractFeatures(backbone, files, { batchSize: 4, ortThreads: 1, runtime: "onnx" });
    expect(maxAbsDiff(result.features, clean.features)).toBeLessThan(1e-5);
  });

  it("(d) MELANOMA_LAB_RUNTIME=tfjs (or the option) runs backbone.model on tfjs instead", async (ctx) => {
    const { backbone, modelReads } = onnxBackbone(requireSharedPath(ctx, ONNX_REL), model!);
    const files = hamFiles(ctx, 2);
    process.env.MELANOMA_LAB_RUNTIME = "tfjs";
    const viaTfjs = await extractFeatures(backbone, files, { batchSize: 2 });
    expect(viaTfjs.runtime).toEqual({ runtime: "tfjs", forced: true, reason: "forced by MELANOMA_LAB_RUNTIME=tfjs" });
    expect(modelReads()).toBeGreaterThan(0);
    // What the placeholder computes on the same decoded pixels (the ONNX network's features differ).
    const viaOnnx = await extractFeatures(backbone, files, { batchSize: 2, runtime: "onnx", ortThreads: 1 });
    const rgb = new Uint8Array(2 * 224 * 224 * 3);
    for (let i = 0; i < 2; i++) {
      const buf = await sharp(files[i]).rotate().resize(224, 224, { fit: "cover", position: "centre" }).raw().toBuffer();
      rgb.set(buf, i * 224 * 224 * 3);
    }
    const expected = tf.tidy(() => (model!.predict(preprocessImages(rgb, 2, 224, backbone.preprocessing)) as tf.Tensor).dataSync() as Float32Array);
    expect(maxAbsDiff(viaTfjs.features, expected)).toBeLessThan(1e-4);
    expect(maxAbsDiff(viaTfjs.features, viaOnnx.features)).toBeGreaterThan(0.1);
    const byOption = await extractFeatures(backbone, files, { batchSize: 2, runtime: "tfjs" });
    expect(maxAbsDiff(byOption.features, viaTfjs.features)).toBe(0);
  });

  it("shares the feature cache across runtimes: an ONNX run's entries are hits for the next run", async (ctx) => {
    const { backbone } = onnxBackbone(requireSharedPath(ctx, ONNX_REL), model!);
    const files = hamFiles(ctx, 3);
    const cacheDir = fs.mkdtempSync(path.join(os.tmpdir(), "onnx-cache-"));
    const first = await extractFeatures(backbone, files, { cacheDir, runtime: "onnx", ortThreads: 1 });
    expect([first.computed, first.cacheHits]).toEqual([3, 0]);
    const second = await extractFeatures(backbone, files, { cacheDir, runtime: "onnx", ortThreads: 1 });
    expect([second.computed, second.cacheHits]).toEqual([0, 3]);
    expect(maxAbsDiff(second.features, first.features)).toBe(0);
  });

  it("rejects a file whose sha256, output name or output size does not match the backbone", async (ctx) => {
    const onnxPath = requireSharedPath(ctx, ONNX_REL);
    const { backbone } = onnxBackbone(onnxPath, model!);
    await expect(getOnnxSession({ ...backbone.onnx!, sha256: "0".repeat(64) }, 1)).rejects.toThrow(OnnxBackboneError);
    await expect(getOnnxSession({ ...backbone.onnx!, sha256: "0".repeat(64) }, 1)).rejects.toThrow(/sha256 is [0-9a-f]{64}, expected 0{64}/);
    await expect(getOnnxSession({ ...backbone.onnx!, outputName: "logits" }, 1)).rejects.toThrow(
      /no output "logits"; the model's outputs are \["features"\]/,
    );
    const wrongDim = Object.assign(Object.create(backbone) as Backbone, { featureDim: 1000 });
    const files = hamFiles(ctx, 1);
    await expect(
      extractFeatures(wrongDim, files, { runtime: "onnx", ortThreads: 1 }),
    ).rejects.toThrow(/output "features" is float32 \[1, 1280\], expected float32 \[1, 1000\]/);
  });
});
