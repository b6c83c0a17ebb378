import crypto from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { disposeBackbone, selectBackend } from "../../lib/index.js";
import { BACKBONE_NAMES, loadBackbone } from "../../lib/models/backbones.js";
import { extractFeatures } from "../../lib/models/features.js";
import { WeightsDownloadError } from "../../lib/models/mobilenetV1.js";
import { IMAGENET_NORMALIZE, ONNX_ZOO_BACKBONES } from "../../lib/models/onnxBackbone.js";
import { releaseOnnxSessions } from "../../lib/models/onnxFeatures.js";
import { createRandom } from "../../lib/util/random.js";
import { buildModel, initializer, node, randomValues, valueInfo } from "../helpers/onnxGraphs.js";
import { serveFilesOverLoopback, type LoopbackFileServer } from "../helpers/loopbackServer.js";

// The zoo files cannot be downloaded here: small graphs with the zoo files' input, output and
// feature-node names stand in for them, served over loopback at the zoo's file names.

/** ResNet50-v2's interface: input "data" [N, 3, 224, 224], last pooling resnetv24_pool1_fwd [N, 2048, 1, 1], classifier resnetv24_dense0_fwd. */
function resnetLikeBytes(): Uint8Array {
  const nodes = [
    node("Conv", ["data", "w"], ["resnetv24_conv0_fwd"], { kernel_shape: { ints: [1, 1] }, strides: { ints: [32, 32] } }),
    node("Relu", ["resnetv24_conv0_fwd"], ["resnetv24_relu1_fwd"]),
    node("GlobalAveragePool", ["resnetv24_relu1_fwd"], ["resnetv24_pool1_fwd"]),
    node("Flatten", ["resnetv24_pool1_fwd"], ["resnetv24_flatten0_reshape0"]),
    node("Gemm", ["resnetv24_flatten0_reshape0", "wd", "bd"], ["resnetv24_dense0_fwd"], { transB: { int: 1 } }),
  ];
  const inits = [initializer("w", [2048, 3, 1, 1], randomValues(6144, 1)), initializer("wd", [4, 2048], randomValues(8192, 2, 0.05)), initializer("bd", [4], randomValues(4, 3))];
  return buildModel(nodes, inits, valueInfo("data", ["N", 3, 224, 224]), [valueInfo("resnetv24_dense0_fwd", ["N", 4])], 7);
}

/** EfficientNet-Lite4's interface: NHWC input "images:0" [1, 224, 224, 3], Transpose, Relu6, ReduceMean head (1280), MatMul + Add, output "Softmax:0". */
function efficientnetLikeBytes(): Uint8Array {
  const nodes = [
    node("Transpose", ["images:0"], ["nchw"], { perm: { ints: [0, 3, 1, 2] } }),
    node("Conv", ["nchw", "w", "b"], ["head_conv"], { kernel_shape: { ints: [1, 1] }, strides: { ints: [32, 32] } }),
    node("Clip", ["head_conv", "zero", "six"], ["head_relu6"]),
    node("ReduceMean", ["head_relu6"], ["avg_pool"], { axes: { ints: [2, 3] }, keepdims: { int: 0 } }),
    node("MatMul", ["avg_pool", "wf"], ["logits_mm"]),
    node("Add", ["logits_mm", "bf"], ["logits"]),
    node("Softmax", ["logits"], ["Softmax:0"], { axis: { int: -1 } }),
  ];
  const inits = [
    initializer("w", [1280, 3, 1, 1], randomValues(3840, 4)),
    initializer("b", [1280], randomValues(1280, 5)),
    initializer("zero", [], [0]),
    initializer("six", [], [6]),
    initializer("wf", [1280, 4], randomValues(5120, 6, 0.05)),
    initializer("bf", [4], randomValues(4, 7)),
  ];
  return buildModel(nodes, inits, valueInfo("images:0", [1, 224, 224, 3]), [valueInfo("Softmax:0", [1, 4])], 11);
}

function randomPixels(count: number, seed: number): Uint8Array {
  const rand = createRandom(seed);
  return Uint8Array.from({ length: count * 224 * 224 * 3 }, () => Math.floor(rand() * 256));
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

describe("ONNX model zoo backbones resnet50_v2_imagenet and efficientnet_lite4_imagenet (download over loopback, hash check, ONNX Runtime ≡ tfjs)", () => {
  let tmp: string;
  let served: string;
  let server: LoopbackFileServer;

  beforeAll(async () => {
    await selectBackend();
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), "ml-zoo-"));
    served = path.join(tmp, "served");
    fs.mkdirSync(served);
    fs.writeFileSync(path.join(served, "resnet50-v2-7.onnx"), resnetLikeBytes());
    fs.writeFileSync(path.join(served, "efficientnet-lite4-11.onnx"), efficientnetLikeBytes());
    server = await serveFilesOverLoopback((url) => {
      const match = /^\/zoo\/([A-Za-z0-9_.-]+)$/.exec(url);
      return match ? path.join(served, match[1]) : undefined;
    });
  });

  afterAll(async () => {
    await server.close();
    await releaseOnnxSessions();
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  it("registers both names with the zoo's URLs, preprocessing and sizes", () => {
    expect(BACKBONE_NAMES).toContain("resnet50_v2_imagenet");
    expect(BACKBONE_NAMES).toContain("efficientnet_lite4_imagenet");
    expect(ONNX_ZOO_BACKBONES.resnet50_v2_imagenet.url).toBe("https://github.com/onnx/models/raw/main/validated/vision/classification/resnet/model/resnet50-v2-7.onnx");
    expect(ONNX_ZOO_BACKBONES.efficientnet_lite4_imagenet.url).toBe(
      "https://github.com/onnx/models/raw/main/validated/vision/classification/efficientnet-lite4/model/efficientnet-lite4-11.onnx",
    );
    expect(ONNX_ZOO_BACKBONES.resnet50_v2_imagenet.preprocessing).toEqual(IMAGENET_NORMALIZE);
    // (x − 127) / 128 as x · (1/128) − 127/128.
    const lite = ONNX_ZOO_BACKBONES.efficientnet_lite4_imagenet.preprocessing;
    expect(lite.kind === "scale" && 0 * lite.scale + lite.offset).toBeCloseTo(-127 / 128, 12);
    expect(lite.kind === "scale" && 255 * lite.scale + lite.offset).toBeCloseTo(1, 12);
  });

  it("resnet50_v2_imagenet: refuses and deletes a download whose sha256 is not the zoo's published one; from a local file it pools resnetv24_pool1_fwd (2048) and ONNX Runtime matches tfjs within 1e-4", async () => {
    const cacheDir = path.join(tmp, "weights-resnet");
    const weightsUrl = `${server.baseUrl}/zoo/resnet50-v2-7.onnx`;
    const refused = await loadBackbone("resnet50_v2_imagenet", { weightsCacheDir: cacheDir, weightsUrl }).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(WeightsDownloadError);
    expect((refused as Error).message).toMatch(/resnet50_v2_imagenet: .*resnet50-v2-7\.onnx has sha256 [0-9a-f]{64}, expected 1e80e8a7c8eec8e8b20c440d7dd7f2f8590779c7c2859dc4514870dc463845d3 \(the ONNX model zoo's published hash\); the download was deleted/);
    expect(server.requested).toEqual(["/zoo/resnet50-v2-7.onnx"]);
    expect(fs.existsSync(path.join(cacheDir, "resnet50_v2_imagenet", "resnet50-v2-7.onnx"))).toBe(false);

    const backbone = await loadBackbone("resnet50_v2_imagenet", { weightsPath: path.join(served, "resnet50-v2-7.onnx"), onnxCacheDir: path.join(tmp, "onnx") });
    expect(backbone.inputSizePx).toBe(224);
    expect(backbone.featureDim).toBe(2048);
    expect(backbone.featureLayerName).toBe("relu_resnetv24_relu1_fwd");
    expect(backbone.weightsId).toMatch(/^onnx-model-zoo\/resnet50-v2-7\.onnx:resnetv24_pool1_fwd\/sha256:[0-9a-f]{16}$/);
    // ONNX Runtime runs a cut of the file whose output is the pooled features.
    expect(backbone.onnx).toMatchObject({ inputName: "data", outputName: "features", layout: "NCHW" });
    expect(path.dirname(backbone.onnx!.path)).toBe(path.join(tmp, "onnx"));
    const pixels = randomPixels(3, 11);
    const onTfjs = await extractFeatures(backbone, { pixels, count: 3 }, { runtime: "tfjs" });
    const onOrt = await extractFeatures(backbone, { pixels, count: 3 }, { runtime: "onnx" });
    expect(onOrt.runtime?.runtime).toBe("onnx");
    expect(maxAbsDiff(onOrt.features, onTfjs.features)).toBeLessThan(1e-4);
    expect(maxAbsDiff(onOrt.features.subarray(0, 2048), onOrt.features.subarray(2048, 4096))).toBeGreaterThan(1e-3);
    disposeBackbone(backbone);

    // The same file as a generic onnx:<path> backbone: features default to the last global pooling, not the classifier's scores.
    const generic = await loadBackbone(`onnx:${path.join(served, "resnet50-v2-7.onnx")}`, { onnxCacheDir: path.join(tmp, "onnx") });
    expect(generic.featureDim).toBe(2048);
    expect(generic.weightsId).toMatch(/^onnx\/resnet50-v2-7\.onnx:resnetv24_pool1_fwd\//);
    expect(generic.onnx?.outputName).toBe("features");
    disposeBackbone(generic);
  });

  it("efficientnet_lite4_imagenet: records the sha256 on first download (trust on first use), loads from the cache after, refuses a changed file; NHWC input, ReduceMean features (1280), ONNX Runtime ≡ tfjs", async () => {
    const cacheDir = path.join(tmp, "weights-lite");
    const weightsUrl = `${server.baseUrl}/zoo/efficientnet-lite4-11.onnx`;
    const count = server.requested.length;
    const first = await loadBackbone("efficientnet_lite4_imagenet", { weightsCacheDir: cacheDir, weightsUrl, onnxCacheDir: path.join(tmp, "onnx") });
    expect(server.requested.slice(count)).toEqual(["/zoo/efficientnet-lite4-11.onnx"]);
    const cached = path.join(cacheDir, "efficientnet_lite4_imagenet", "efficientnet-lite4-11.onnx");
    const recorded = fs.readFileSync(`${cached}.sha256`, "utf8").trim();
    expect(recorded).toBe(crypto.createHash("sha256").update(fs.readFileSync(path.join(served, "efficientnet-lite4-11.onnx"))).digest("hex"));
    expect(first.featureDim).toBe(1280);
    expect(first.inputSizePx).toBe(224);
    expect(first.preprocessing).toEqual(ONNX_ZOO_BACKBONES.efficientnet_lite4_imagenet.preprocessing);
    expect(first.onnx).toMatchObject({ inputName: "images:0", outputName: "features", layout: "NHWC" });
    // The feature cut has a symbolic batch (the zoo file's is 1), so batches of 3 run.
    const pixels = randomPixels(3, 12);
    const onTfjs = await extractFeatures(first, { pixels, count: 3 }, { runtime: "tfjs" });
    const onOrt = await extractFeatures(first, { pixels, count: 3 }, { runtime: "onnx", batchSize: 3 });
    expect(onOrt.runtime?.runtime).toBe("onnx");
    expect(maxAbsDiff(onOrt.features, onTfjs.features)).toBeLessThan(1e-4);
    expect(maxAbsDiff(onOrt.features.subarray(0, 1280), onOrt.features.subarray(1280, 2560))).toBeGreaterThan(1e-3);
    disposeBackbone(first);

    const second = await loadBackbone("efficientnet_lite4_imagenet", { weightsCacheDir: cacheDir, weightsUrl, onnxCacheDir: path.join(tmp, "onnx") });
    expect(server.requested.length).toBe(count + 1);
    disposeBackbone(second);

    const bytes = fs.readFileSync(cached);
    bytes[bytes.length - 1] ^= 1;
    fs.writeFileSync(cached, bytes);
    await expect(loadBackbone("efficientnet_lite4_imagenet", { weightsCacheDir: cacheDir, weightsUrl })).rejects.toThrow(
      /efficientnet_lite4_imagenet: .*efficientnet-lite4-11\.onnx has sha256 [0-9a-f]{64}, expected [0-9a-f]{64} \(the hash recorded on first download in .*efficientnet-lite4-11\.onnx\.sha256\)$/,
    );
  });
});
