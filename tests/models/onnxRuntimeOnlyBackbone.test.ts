import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import * as tf from "@tensorflow/tfjs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { disposeBackbone, loadDataset, selectBackend } from "../../lib/index.js";
import { computeGradCam } from "../../lib/evaluate/gradCam.js";
import { describeBackbone, loadBackbone, loadFeatureBackbone } from "../../lib/models/backbones.js";
import { extractFeatures, featureCacheFolder } from "../../lib/models/features.js";
import { releaseOnnxSessions } from "../../lib/models/onnxFeatures.js";
import { OnnxImportError } from "../../lib/models/onnxImport.js";
import { OnnxRuntimeOnlyError } from "../../lib/models/runtimeOnlyBackbone.js";
import type { Backbone } from "../../lib/models/types.js";
import { findFineTuneCut } from "../../lib/train/fineTuneCut.js";
import { buildModel, initializer, node, ort, randomValues, valueInfo } from "../helpers/onnxGraphs.js";
import { requireSharedPath } from "../helpers/shared.js";

// ONNX graphs the tfjs importer cannot convert still serve as frozen feature extractors on ONNX Runtime.

const INT8_REL = "weights/mobilenet_v2_1.0_imagenet_int8/mobilenetv2-12-int8.onnx";
const FP32_REL = "weights/mobilenet_v2_1.0_imagenet/mobilenetv2-7-backbone.onnx";
// Measured on the first 8 HAM dev images (onnxruntime-node 1.30): worst per-image cosine 0.872 between
// the int8 and fp32 features, mean |int8 − fp32| / mean |fp32| = 0.423, max abs 1.61 (quantisation of
// the 1280-channel map, calibrated on ImageNet, not dermoscopy); two different images' fp32 features
// have cosine ≈ 0.55. The bounds keep a margin and fail for features of the wrong image.
const COSINE_FLOOR = 0.8;
const RELATIVE_CEILING = 0.5;

describe("ONNX-Runtime-only backbones (graphs the tfjs importer cannot convert)", () => {
  let tmp: string;
  beforeAll(async () => {
    await selectBackend();
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), "ml-ort-only-"));
  });
  afterAll(async () => {
    await releaseOnnxSessions();
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  it("a graph with an op the importer lacks (Erf) loads for features with a one-line note, pools its last GlobalAveragePool as ONNX Runtime does, and refuses tfjs uses by name", async () => {
    const nodes = [
      node("Conv", ["x", "w"], ["c"], { kernel_shape: { ints: [1, 1] }, strides: { ints: [4, 4] } }),
      node("Erf", ["c"], ["e"]),
      node("GlobalAveragePool", ["e"], ["pool"]),
      node("Flatten", ["pool"], ["flat"]),
      node("Gemm", ["flat", "wd"], ["logits"], { transB: { int: 1 } }),
    ];
    const bytes = buildModel(nodes, [initializer("w", [5, 3, 1, 1], randomValues(15, 1)), initializer("wd", [2, 5], randomValues(10, 2))], valueInfo("x", ["N", 3, 32, 32]), [valueInfo("logits", ["N", 2])]);
    const file = path.join(tmp, "erf.onnx");
    fs.writeFileSync(file, bytes);
    await expect(loadBackbone(`onnx:${file}`)).rejects.toThrow(OnnxImportError);

    const lines: string[] = [];
    const backbone = await loadFeatureBackbone(`onnx:${file}`, { onnxCacheDir: tmp }, (line) => lines.push(line));
    expect(lines.length).toBe(1);
    expect(lines[0]).toMatch(
      /^onnx:.*erf\.onnx: features on ONNX Runtime only \(the tfjs importer cannot convert it: node "erf\/e": op type "Erf" is not supported \(supported: Conv, .*\)\); fine-tuning, Grad-CAM and tfjs export are not available$/,
    );
    expect(backbone.model).toBeUndefined();
    expect(backbone.inputSizePx).toBe(32);
    expect(backbone.featureDim).toBe(5);
    expect(backbone.featureLayerName).toBe("e");
    expect(describeBackbone(backbone)).toMatch(/features = global average of e → 5/);

    // Reference: the mean over the 8×8 map of erf(conv(x)), straight from ONNX Runtime on the original graph's "pool" value.
    const pixels = Uint8Array.from({ length: 2 * 32 * 32 * 3 }, (_, i) => (i * 37) % 256);
    const result = await extractFeatures(backbone, { pixels, count: 2 }, { cacheDir: tmp });
    expect(result.runtime?.runtime).toBe("onnx");
    const probe = buildModel(nodes.slice(0, 4), [initializer("w", [5, 3, 1, 1], randomValues(15, 1))], valueInfo("x", ["N", 3, 32, 32]), [valueInfo("flat", ["N", 5])]);
    const session = await ort.InferenceSession.create(probe);
    const nchw = new Float32Array(2 * 3 * 32 * 32);
    const mean = [0.485, 0.456, 0.406];
    const std = [0.229, 0.224, 0.225];
    for (let n = 0; n < 2; n++)
      for (let p = 0; p < 32 * 32; p++) for (let c = 0; c < 3; c++) nchw[(n * 3 + c) * 1024 + p] = (pixels[(n * 1024 + p) * 3 + c] / 255 - mean[c]) / std[c];
    const expected = (await session.run({ x: new ort.Tensor("float32", nchw, [2, 3, 32, 32]) })).flat.data as Float32Array;
    await session.release();
    for (let i = 0; i < 10; i++) expect(Math.abs(result.features[i] - expected[i])).toBeLessThan(1e-5);
    // The feature cache keys it like any backbone: a second pass reads it back.
    const again = await extractFeatures(backbone, { pixels, count: 2 }, { cacheDir: tmp });
    expect(again.cacheHits).toBe(2);
    expect(fs.existsSync(featureCacheFolder(tmp, backbone, "center-crop"))).toBe(true);

    await expect(extractFeatures(backbone, { pixels, count: 2 }, { runtime: "tfjs" })).rejects.toThrow(OnnxRuntimeOnlyError);
    await expect(extractFeatures(backbone, { pixels, count: 2 }, { runtime: "tfjs" })).rejects.toThrow(/runtime: received "tfjs", but backbone onnx:.*erf\.onnx runs only on ONNX Runtime \(node "erf\/e"/);
    // TypeScript already refuses these (no tfjs model); at run time they throw the named error.
    const asTfjs = backbone as unknown as Backbone;
    expect(() => findFineTuneCut(asTfjs, 1)).toThrow(/fine-tuning needs a tfjs model, but backbone onnx:.*erf\.onnx runs only on ONNX Runtime/);
    const head = tf.sequential({ layers: [tf.layers.dense({ inputShape: [5], units: 1 })] });
    expect(() => computeGradCam(asTfjs, head, pixels.subarray(0, 32 * 32 * 3), 32)).toThrow(OnnxRuntimeOnlyError);
    head.dispose();
  });

  it("the zoo's int8 MobileNetV2 (QLinearConv, QLinearGlobalAveragePool) gives features close to the fp32 file's on real HAM images", async (ctx) => {
    const int8File = requireSharedPath(ctx, INT8_REL);
    const fp32File = requireSharedPath(ctx, FP32_REL);
    const hamDir = requireSharedPath(ctx, "data/ham10000-dev");
    const records = loadDataset(hamDir).records.slice(0, 8);
    const lines: string[] = [];
    const int8 = await loadFeatureBackbone(`onnx:${int8File}`, { onnxCacheDir: tmp }, (line) => lines.push(line));
    expect(lines.length).toBe(1);
    expect(lines[0]).toMatch(/mobilenetv2-12-int8\.onnx: features on ONNX Runtime only \(the tfjs importer cannot convert it: node "[^"]+": op type "QuantizeLinear" is not supported .*\); fine-tuning, Grad-CAM and tfjs export are not available$/);
    expect(int8.model).toBeUndefined();
    expect(int8.featureDim).toBe(1280);
    expect(int8.inputSizePx).toBe(224);
    expect(int8.featureLayerName).toBe("627_quantized");
    expect(int8.weightsId).toBe("onnx-runtime/mobilenetv2-12-int8.onnx:464_quantized/sha256:83530ad811bc31d2");
    const fp32 = await loadBackbone("mobilenet_v2_imagenet", { weightsPath: fp32File });
    const a = await extractFeatures(int8, records);
    const b = await extractFeatures(fp32, records, { runtime: "onnx" });
    expect(a.rows).toBe(8);
    expect(a.runtime?.runtime).toBe("onnx");
    let maxAbs = 0;
    let worstCosine = 1;
    let sumAbs = 0;
    let sumRef = 0;
    for (let r = 0; r < 8; r++) {
      const x = a.features.subarray(r * 1280, (r + 1) * 1280);
      const y = b.features.subarray(r * 1280, (r + 1) * 1280);
      let dot = 0;
      let nx = 0;
      let ny = 0;
      for (let k = 0; k < 1280; k++) {
        maxAbs = Math.max(maxAbs, Math.abs(x[k] - y[k]));
        sumAbs += Math.abs(x[k] - y[k]);
        sumRef += Math.abs(y[k]);
        dot += x[k] * y[k];
        nx += x[k] * x[k];
        ny += y[k] * y[k];
      }
      worstCosine = Math.min(worstCosine, dot / Math.sqrt(nx * ny));
    }
    console.log(`int8 vs fp32 MobileNetV2 features on 8 HAM images: max abs ${maxAbs.toFixed(3)}, mean abs / mean |fp32| ${(sumAbs / sumRef).toFixed(3)}, worst cosine ${worstCosine.toFixed(4)}`);
    expect(worstCosine).toBeGreaterThan(COSINE_FLOOR);
    // Each int8 row is nearest (cosine) to the fp32 row of the same image.
    const cosine = (x: Float32Array, y: Float32Array) => {
      let dot = 0;
      let nx = 0;
      let ny = 0;
      for (let k = 0; k < x.length; k++) {
        dot += x[k] * y[k];
        nx += x[k] * x[k];
        ny += y[k] * y[k];
      }
      return dot / Math.sqrt(nx * ny);
    };
    for (let r = 0; r < 8; r++) {
      const row = a.features.subarray(r * 1280, (r + 1) * 1280);
      const scores = Array.from({ length: 8 }, (_, q) => cosine(row, b.features.subarray(q * 1280, (q + 1) * 1280)));
      expect(scores.indexOf(Math.max(...scores))).toBe(r);
    }
    expect(sumAbs / sumRef).toBeLessThan(RELATIVE_CEILING);
    disposeBackbone(fp32);
  }, 120_000);
});
