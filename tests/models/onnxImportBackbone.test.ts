import fs from "node:fs";
import { createRequire } from "node:module";
import os from "node:os";
import path from "node:path";
import * as tf from "@tensorflow/tfjs";
import type * as Ort from "onnxruntime-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { disposeBackbone, selectBackend } from "../../lib/index.js";
import { decodeImageRgb } from "../../lib/data/decodeImage.js";
import { computeGradCam } from "../../lib/evaluate/gradCam.js";
import { loadBackbone, parseBackboneName } from "../../lib/models/backbones.js";
import { extractFeatures } from "../../lib/models/features.js";
import { WeightsDownloadError } from "../../lib/models/mobilenetV1.js";
import { IMAGENET_NORMALIZE } from "../../lib/models/onnxBackbone.js";
import { importOnnxModel, OnnxImportError } from "../../lib/models/onnxImport.js";
import { preprocessImages } from "../../lib/models/preprocess.js";
import { findFineTuneCut, FineTuneError } from "../../lib/train/fineTuneCut.js";
import { serveFilesOverLoopback, type LoopbackFileServer } from "../helpers/loopbackServer.js";
import { describeRequiring, findSharedPath, missingSharedPath, requireSharedPath } from "../helpers/shared.js";

const ort = createRequire(import.meta.url)("onnxruntime-node") as typeof Ort;
const MODEL_REL = "weights/mobilenet_v2_1.0_imagenet/mobilenetv2-7-backbone.onnx";
const MODEL_SHA256 = "8e6238ad977608ccc6915eff2f0baaffc14c5817cd56b2db2185c3c743afff84";
const IMAGE_COUNT = 8;

/** The first `count` HAM10000 dev images (sorted by name), decoded and centre-cropped to 224 px once. */
async function readHamPixels(count: number): Promise<Uint8Array> {
  const dir = path.join(requireSharedPathOrThrow("data/ham10000-dev"), "images");
  const files = fs
    .readdirSync(dir)
    .filter((f) => f.endsWith(".jpg"))
    .sort()
    .slice(0, count);
  const pixels = new Uint8Array(count * 224 * 224 * 3);
  for (const [i, f] of files.entries()) pixels.set(await decodeImageRgb(path.join(dir, f), 224), i * 224 * 224 * 3);
  return pixels;
}

function requireSharedPathOrThrow(rel: string): string {
  const p = findSharedPath(rel);
  if (!p) throw new Error(`${rel} missing`);
  return p;
}

async function runOrt(file: string, nchw: Float32Array, count: number): Promise<Float32Array> {
  const session = await ort.InferenceSession.create(file, { graphOptimizationLevel: "all" });
  const out = await session.run({ input: new ort.Tensor("float32", nchw, [count, 3, 224, 224]) });
  const data = out.features.data as Float32Array;
  expect(out.features.dims.map(Number)).toEqual([count, 1280]);
  await session.release();
  return data;
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

describeRequiring(
  missingSharedPath(MODEL_REL) ?? missingSharedPath("data/ham10000-dev"),
  "mobilenet_v2_imagenet: the ONNX model zoo MobileNetV2 imported to tfjs agrees with ONNX Runtime on real HAM images",
  () => {
  let pixels: Uint8Array | undefined;
  let ortFeatures: Float32Array | undefined;

  beforeAll(async () => {
    await selectBackend();
    const file = findSharedPath(MODEL_REL)!;
    pixels = await readHamPixels(IMAGE_COUNT);
    const nchw = tf.tidy(() => preprocessImages(pixels!, IMAGE_COUNT, 224, IMAGENET_NORMALIZE).transpose([0, 3, 1, 2]).dataSync() as Float32Array);
    ortFeatures = await runOrt(file, nchw, IMAGE_COUNT);
  });

  it("imports the file into a 104-layer tfjs model whose output equals ONNX Runtime's within 1e-4 on 8 images", async (ctx) => {
    const file = requireSharedPath(ctx, MODEL_REL);
    requireSharedPath(ctx, "data/ham10000-dev");
    const imported = importOnnxModel(fs.readFileSync(file));
    expect(imported.inputName).toBe("input");
    // One layer per ONNX node but the Flatten of the pooled [N, 1280] (98), the input, and a
    // ZeroPadding2D for each of the 5 stride-2 convs (pads 1,1 ≠ TensorFlow "same" 0,1).
    expect(imported.model.layers.length).toBe(104);
    expect(imported.outputNames).toEqual(["features"]);
    expect(imported.pooledLayerName).toBe("conv_95_relu6");
    expect(imported.model.inputs[0].shape).toEqual([null, 224, 224, 3]);
    expect(imported.model.outputs[0].shape).toEqual([null, 1280]);
    const got = tf.tidy(() => (imported.model.predict(preprocessImages(pixels!, IMAGE_COUNT, 224, IMAGENET_NORMALIZE)) as tf.Tensor).dataSync());
    const diff = maxAbsDiff(got, ortFeatures!);
    console.log(`mobilenet_v2_imagenet tfjs import vs ONNX Runtime on ${IMAGE_COUNT} HAM images: max abs ${diff.toExponential(2)}`);
    expect(diff).toBeLessThan(1e-4);
    // Real features, not a degenerate output: varied across images and channels.
    expect(ortFeatures!.some((v) => v > 0.5)).toBe(true);
    expect(maxAbsDiff(ortFeatures!.subarray(0, 1280), ortFeatures!.subarray(1280, 2560))).toBeGreaterThan(0.1);
    imported.model.dispose();
  });

  it("loadBackbone gives a Backbone (224 px, normalize, 1280 features, onnx file info) whose extractFeatures equals ONNX Runtime within 1e-4, with no tensor leak", async (ctx) => {
    const file = requireSharedPath(ctx, MODEL_REL);
    requireSharedPath(ctx, "data/ham10000-dev");
    const backbone = await loadBackbone("mobilenet_v2_imagenet", { weightsPath: file });
    expect(backbone.name).toBe("mobilenet_v2_imagenet");
    expect(backbone.inputSizePx).toBe(224);
    expect(backbone.featureDim).toBe(1280);
    expect(backbone.featureLayerName).toBe("conv_95_relu6");
    expect(backbone.preprocessing).toEqual({ kind: "normalize", mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] });
    expect(backbone.onnx).toEqual({ path: file, sha256: MODEL_SHA256, inputName: "input", outputName: "features", layout: "NCHW" });
    expect(backbone.weightsId).toBe(`onnx-model-zoo/mobilenetv2-7-backbone.onnx:features/sha256:${MODEL_SHA256.slice(0, 16)}`);
    // Published MobileNetV2 1.0/224: ≈300 M multiply-adds.
    expect(backbone.multiplyAddsPerImage!).toBeGreaterThan(2.8e8);
    expect(backbone.multiplyAddsPerImage!).toBeLessThan(3.2e8);
    // Grad-CAM's contract: the last layer is a global pooling of featureLayerName.
    const last = backbone.model.layers.at(-1)!;
    expect(last.getClassName()).toBe("GlobalAveragePooling2D");
    expect(last.inboundNodes[0].inboundLayers[0].name).toBe(backbone.featureLayerName);

    await extractFeatures(backbone, { pixels: pixels!.subarray(0, 224 * 224 * 3), count: 1 }, { batchSize: 1 });
    const before = tf.memory().numTensors;
    const result = await extractFeatures(backbone, { pixels: pixels!, count: IMAGE_COUNT }, { batchSize: 4 });
    expect(tf.memory().numTensors).toBe(before);
    const diff = maxAbsDiff(result.features, ortFeatures!);
    console.log(`mobilenet_v2_imagenet extractFeatures (tfjs) vs ONNX Runtime: max abs ${diff.toExponential(2)}`);
    expect(diff).toBeLessThan(1e-4);

    // Fine-tuning has no Keras block names here (the ONNX names are conv_N): the residual Adds end its blocks.
    expect(findFineTuneCut(backbone, 1).cutLayerName).toBe("add_88");
    expect(() => findFineTuneCut(backbone, 11)).toThrow(FineTuneError);
    disposeBackbone(backbone);
  });

  it("works with Grad-CAM (heatmap = ReLU(Σ kernel_k · conv_95_relu6_k), computed independently) and saves/reloads as a tfjs layers model", async (ctx) => {
    const file = requireSharedPath(ctx, MODEL_REL);
    requireSharedPath(ctx, "data/ham10000-dev");
    const backbone = await loadBackbone("mobilenet_v2_imagenet", { weightsPath: file });
    const kernel = Float32Array.from({ length: 1280 }, (_, k) => Math.sin(k * 0.37) * 0.05);
    const features = tf.input({ shape: [1280] });
    const dense = tf.layers.dense({ units: 1, activation: "sigmoid", name: "malignant" });
    const head = tf.model({ inputs: features, outputs: dense.apply(features) as tf.SymbolicTensor });
    dense.setWeights([tf.tensor2d(kernel, [1280, 1]), tf.tensor1d([0.1])]);
    const rgb = pixels!.subarray(0, 224 * 224 * 3);
    const cam = computeGradCam(backbone, head, rgb, 224);
    expect(cam.featureMapSizePx).toBe(7);
    const map = tf.tidy(() => {
      const inner = tf.model({ inputs: backbone.model.inputs, outputs: backbone.model.getLayer("conv_95_relu6").output as tf.SymbolicTensor });
      return (inner.predict(preprocessImages(rgb, 1, 224, IMAGENET_NORMALIZE)) as tf.Tensor).dataSync();
    });
    const expected = Array.from({ length: 49 }, (_, cell) => {
      let sum = 0;
      for (let k = 0; k < 1280; k++) sum += kernel[k] * map[cell * 1280 + k];
      return Math.max(sum, 0);
    });
    const peak = Math.max(...expected);
    expect(peak).toBeGreaterThan(0);
    for (let cell = 0; cell < 49; cell++) expect(Math.abs(cam.heatmap[cell] - expected[cell] / peak)).toBeLessThan(1e-4);

    // The imported model is made of standard layers: it serialises (model.json + weights) and reloads to the same output.
    const artifacts = await new Promise<tf.io.ModelArtifacts>((resolve) => {
      void backbone.model.save(tf.io.withSaveHandler(async (a) => (resolve(a), { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: "JSON" } })));
    });
    const reloaded = await tf.loadLayersModel(tf.io.fromMemory(artifacts));
    const diff = tf.tidy(() => {
      const x = preprocessImages(pixels!.subarray(0, 2 * 224 * 224 * 3), 2, 224, IMAGENET_NORMALIZE);
      return (backbone.model.predict(x) as tf.Tensor).sub(reloaded.predict(x) as tf.Tensor).abs().max().dataSync()[0];
    });
    expect(diff).toBeLessThan(1e-6);
    reloaded.dispose();
    head.dispose();
    disposeBackbone(backbone);
  });

  it("loads onnx:<path> as a generic backbone: input size from the model, ImageNet normalize by default, the only output as features", async (ctx) => {
    const file = requireSharedPath(ctx, MODEL_REL);
    expect(parseBackboneName(`ONNX:${file}`)).toBe(`onnx:${file}`);
    const backbone = await loadBackbone(`onnx:${file}`);
    expect(backbone.name).toBe(`onnx:${file}`);
    expect(backbone.inputSizePx).toBe(224);
    expect(backbone.featureDim).toBe(1280);
    expect(backbone.preprocessing).toEqual(IMAGENET_NORMALIZE);
    expect(backbone.onnx?.outputName).toBe("features");
    disposeBackbone(backbone);
    // An intermediate value as the feature output: a 4-D map is pooled, and ONNX Runtime cannot fetch it (no onnx info).
    const early = await loadBackbone(`onnx:${file}`, { onnxOutputName: "conv_94", preprocessing: { kind: "scale", scale: 1 / 255, offset: 0 } });
    expect(early.featureDim).toBe(320);
    expect(early.featureLayerName).toBe("conv_94");
    expect(early.onnx).toBeUndefined();
    expect(early.preprocessing).toEqual({ kind: "scale", scale: 1 / 255, offset: 0 });
    disposeBackbone(early);
    await expect(loadBackbone("onnx:/nonexistent/model.onnx")).rejects.toThrow(/\/nonexistent\/model.onnx: ONNX file not found/);
    // featureLayerName pools an earlier layer of mobilenet_v2_imagenet (tfjs only) and names the layers on a typo.
    const before = tf.memory().numTensors;
    const mid = await loadBackbone("mobilenet_v2_imagenet", { weightsPath: file, featureLayerName: "conv_92_relu6" });
    expect(mid.featureDim).toBe(960);
    expect(mid.model.name).toBe("mobilenet_v2_imagenet_features");
    expect(mid.onnx).toBeUndefined();
    disposeBackbone(mid);
    await expect(loadBackbone("mobilenet_v2_imagenet", { weightsPath: file, featureLayerName: "conv_92_relu66" })).rejects.toThrow(/did you mean "conv_92_relu6"/);
    expect(tf.memory().numTensors).toBe(before);
  });
  },
);

describe("onnx:<path> with ops the importer does not map", () => {
  it("reports the zoo's int8 MobileNetV2 (QuantizeLinear, QLinearConv, …) as unsupported, naming its first node and op", async (ctx) => {
    const file = requireSharedPath(ctx, "weights/mobilenet_v2_1.0_imagenet_int8/mobilenetv2-12-int8.onnx");
    await selectBackend();
    const before = tf.memory().numTensors;
    const error = await loadBackbone(`onnx:${file}`).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OnnxImportError);
    expect((error as Error).message).toMatch(/^node "[^"]+": op type "QuantizeLinear" is not supported \(supported: Conv, Clip, Relu, Add, BatchNormalization/);
    expect(tf.memory().numTensors).toBe(before);
  });
});

describe("mobilenet_v2_imagenet: download once from a (loopback) server, then load from the cache", () => {
  const weightsDir = findSharedPath("weights");
  let server: LoopbackFileServer;
  let baseUrl: string;
  let tmp: string;

  beforeAll(async () => {
    await selectBackend();
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), "ml-onnx-"));
    server = await serveFilesOverLoopback((url) => {
      const match = /^\/(mobilenet_v2_1\.0_imagenet\/[A-Za-z0-9_.-]+)$/.exec(url);
      return match && weightsDir ? path.join(weightsDir, match[1]) : undefined;
    });
    baseUrl = server.baseUrl;
  });

  afterAll(async () => {
    await server.close();
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  it("downloads the .onnx once into the weights cache and reads it from there afterwards", async (ctx) => {
    requireSharedPath(ctx, MODEL_REL);
    const cacheDir = path.join(tmp, "weights");
    const weightsUrl = `${baseUrl}/mobilenet_v2_1.0_imagenet/mobilenetv2-7-backbone.onnx`;
    const first = await loadBackbone("mobilenet_v2_imagenet", { weightsCacheDir: cacheDir, weightsUrl });
    expect(server.requested).toEqual(["/mobilenet_v2_1.0_imagenet/mobilenetv2-7-backbone.onnx"]);
    const cached = path.join(cacheDir, "mobilenet_v2_1.0_imagenet", "mobilenetv2-7-backbone.onnx");
    // No published hash for this file name: its sha256 is recorded on first download (trust on first use).
    expect(fs.readdirSync(path.dirname(cached)).sort()).toEqual(["mobilenetv2-7-backbone.onnx", "mobilenetv2-7-backbone.onnx.sha256"]);
    expect(fs.readFileSync(`${cached}.sha256`, "utf8").trim()).toBe(MODEL_SHA256);
    expect(first.onnx?.path).toBe(cached);
    expect(first.onnx?.sha256).toBe(MODEL_SHA256);
    const second = await loadBackbone("mobilenet_v2_imagenet", { weightsCacheDir: cacheDir, weightsUrl });
    expect(server.requested.length).toBe(1);
    expect(second.weightsId).toBe(first.weightsId);
    disposeBackbone(first);
    disposeBackbone(second);
  });

  it("uses MELANOMA_LAB_WEIGHTS_DIR as a local mirror without any download", async (ctx) => {
    const file = requireSharedPath(ctx, MODEL_REL);
    const saved = process.env.MELANOMA_LAB_WEIGHTS_DIR;
    process.env.MELANOMA_LAB_WEIGHTS_DIR = path.dirname(path.dirname(file));
    try {
      const count = server.requested.length;
      const b = await loadBackbone("mobilenet_v2_imagenet", { weightsUrl: "http://127.0.0.1:9/unreachable/mobilenetv2-7.onnx" });
      expect(server.requested.length).toBe(count);
      expect(b.weightsSource).toBe(file);
      disposeBackbone(b);
    } finally {
      if (saved === undefined) delete process.env.MELANOMA_LAB_WEIGHTS_DIR;
      else process.env.MELANOMA_LAB_WEIGHTS_DIR = saved;
    }
  });

  it("reports a failed download with the URL and the files searched, leaving no file behind", async () => {
    const cacheDir = path.join(tmp, "weights-missing");
    const weightsUrl = `${baseUrl}/mobilenet_v2_1.0_imagenet/missing.onnx`;
    await expect(loadBackbone("mobilenet_v2_imagenet", { weightsCacheDir: cacheDir, weightsUrl })).rejects.toThrow(WeightsDownloadError);
    await expect(loadBackbone("mobilenet_v2_imagenet", { weightsCacheDir: cacheDir, weightsUrl })).rejects.toThrow(
      /mobilenet_v2_imagenet: none of .*mobilenetv2-7-backbone\.onnx, .*missing\.onnx exists, and downloading failed: .*missing\.onnx: HTTP 404/,
    );
    expect(fs.existsSync(path.join(cacheDir, "mobilenet_v2_1.0_imagenet", "missing.onnx"))).toBe(false);
  });
});
