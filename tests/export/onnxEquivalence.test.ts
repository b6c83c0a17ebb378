import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import * as tf from "@tensorflow/tfjs";
import { afterAll, beforeAll, describe, expect, it, type TestContext } from "vitest";
import { selectBackend } from "../../lib/index.js";
import { buildEnsembleTriageModel, makeEnsembleTriageMetadata } from "../../lib/export/ensembleTriageModel.js";
import { checkExportParity } from "../../lib/export/exportParity.js";
import { exportTriageModelOnnx } from "../../lib/export/onnxExport.js";
import { convertLayersModelToOnnx } from "../../lib/models/onnxConvert.js";
import { predictMalignantProbabilityWithOnnx } from "../../lib/export/onnxScoring.js";
import {
  buildTriageModel,
  exportTriageModel,
  makeTriageMetadata,
  predictMalignantProbabilities,
  type TriageModelMetadata,
} from "../../lib/export/triageModel.js";
import { loadBackbone } from "../../lib/models/backbones.js";
import { extractFeatures } from "../../lib/models/features.js";
import { disposeBackbone } from "../../lib/models/inferencePlan.js";
import type { Backbone } from "../../lib/models/types.js";
import { trainHead } from "../../lib/train/trainHead.js";
import { requireSharedPath } from "../helpers/shared.js";
import { buildSeededHead } from "../models/ensembleFixtures.js";
import * as ort from "onnxruntime-node";

// Real HAM10000 images from ../shared; ONNX Runtime (graph optimisations "all") against tfjs.
const TOLERANCE = 1e-4;

interface HamRow {
  imagePath: string;
  label: "benign" | "malignant";
  diagnosis: string;
}

function readHamRows(dir: string, count: number): HamRow[] {
  const lines = fs.readFileSync(path.join(dir, "labels.csv"), "utf8").trim().split("\n").slice(1);
  return lines.slice(0, count).map((line) => {
    const [imageId, label, diagnosis] = line.split(",");
    return { imagePath: path.join(dir, "images", `${imageId}.jpg`), label: label as HamRow["label"], diagnosis };
  });
}

/** Exports `model` (tfjs files + model.onnx), scores `images` both ways and returns the largest difference. */
async function exportAndCompare(
  dir: string,
  model: tf.LayersModel,
  metadata: TriageModelMetadata,
  images: string[],
): Promise<number> {
  await exportTriageModel(dir, model, metadata);
  const before = tf.memory().numTensors;
  await exportTriageModelOnnx(dir, model, metadata);
  expect(tf.memory().numTensors).toBe(before);
  const viaTfjs = await predictMalignantProbabilities({ model, metadata, dir: "" }, images, { batchSize: 4 });
  const viaOnnx = await predictMalignantProbabilityWithOnnx(dir, images, { batchSize: 4, threads: 1 });
  const parity = checkExportParity(viaOnnx, viaTfjs, { toleranceProb: TOLERANCE });
  expect(parity.comparedCount).toBe(images.length);
  // Probabilities that differ between images and are not saturated at 0 or 1: not a comparison of constants.
  expect(Math.max(...viaTfjs) - Math.min(...viaTfjs)).toBeGreaterThan(1e-3);
  expect(viaTfjs.some((p) => p > 0.02 && p < 0.98)).toBe(true);
  return parity.maxAbsDifference;
}

/** A seeded head (buildSeededHead) with weights scaled by `factor`, so wide features do not saturate its sigmoid. */
function buildSmallHead(featureDim: number, seed: number, factor: number): tf.LayersModel {
  const head = buildSeededHead(featureDim, seed);
  const scaled = head.getWeights().map((w) => tf.mul(w, factor));
  head.setWeights(scaled);
  tf.dispose(scaled);
  return head;
}

/** Backbone features of preprocessed images, tfjs vs ONNX Runtime: the largest difference and the largest |feature|. */
async function compareFeatures(backbone: Backbone, images: string[]): Promise<{ diff: number; scale: number }> {
  const feats = await extractFeatures(backbone, images, { batchSize: images.length });
  const { bytes, inputNames } = convertLayersModelToOnnx(backbone.model);
  const session = await ort.InferenceSession.create(bytes, { graphOptimizationLevel: "all", intraOpNumThreads: 1 });
  try {
    const size = backbone.inputSizePx;
    const { decodeImageRgb } = await import("../../lib/data/decodeImage.js");
    const { preprocessToFloat32 } = await import("../../lib/models/preprocess.js");
    const packed = new Float32Array(images.length * size * size * 3);
    for (const [i, image] of images.entries()) {
      packed.set(preprocessToFloat32(await decodeImageRgb(image, size), backbone.preprocessing), i * size * size * 3);
    }
    const out = await session.run({
      [inputNames[0]]: new ort.Tensor("float32", packed, [images.length, size, size, 3]),
    });
    const onnxFeatures = out[session.outputNames[0]].data as Float32Array;
    expect(onnxFeatures.length).toBe(feats.features.length);
    let diff = 0;
    let scale = 0;
    for (let i = 0; i < onnxFeatures.length; i++) {
      diff = Math.max(diff, Math.abs(onnxFeatures[i] - feats.features[i]));
      scale = Math.max(scale, Math.abs(feats.features[i]));
    }
    return { diff, scale };
  } finally {
    await session.release();
  }
}

describe("ONNX export equivalence on real HAM10000 images (ONNX Runtime vs tfjs, max abs ≤ 1e-4)", () => {
  let tmp: string;
  let mobilenetV2: Backbone | undefined;
  let mobilenetV1: Backbone | undefined;
  const savedWeightsDir = process.env.MELANOMA_LAB_WEIGHTS_DIR;

  beforeAll(async () => {
    await selectBackend();
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), "ml-onnx-eq-"));
  });
  afterAll(() => {
    for (const b of [mobilenetV2, mobilenetV1]) if (b) disposeBackbone(b);
    if (savedWeightsDir === undefined) delete process.env.MELANOMA_LAB_WEIGHTS_DIR;
    else process.env.MELANOMA_LAB_WEIGHTS_DIR = savedWeightsDir;
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  async function getMobilenetV1(ctx: TestContext): Promise<Backbone> {
    const weightsDir = requireSharedPath(ctx, "weights/mobilenet_v1_0.25_224");
    process.env.MELANOMA_LAB_WEIGHTS_DIR = path.dirname(weightsDir);
    mobilenetV1 ??= await loadBackbone("mobilenet_v1", { alpha: 0.25, baseUrl: "http://127.0.0.1:9/unreachable" });
    return mobilenetV1;
  }

  it("mobilenet_v2 (nsfwjs) + a head trained on its features of real images", async (ctx) => {
    const ham = requireSharedPath(ctx, "data/ham10000-dev");
    const rows = readHamRows(ham, 12);
    const images = rows.map((r) => r.imagePath);
    mobilenetV2 = await loadBackbone("mobilenet_v2");
    const features = await compareFeatures(mobilenetV2, images.slice(0, 4));
    console.log(
      `mobilenet_v2 features: max |ONNX − tfjs| ${features.diff.toExponential(2)} (|feature| ≤ ${features.scale.toFixed(2)})`,
    );
    expect(features.diff).toBeLessThan(TOLERANCE * Math.max(1, features.scale));
    const feats = await extractFeatures(mobilenetV2, images, { batchSize: 6 });
    const head = (
      await trainHead(
        feats.features,
        rows.map((r) => r.label),
        { seed: 5, hiddenUnits: 16, epochs: 5, learningRate: 0.01 },
      )
    ).model;
    const triage = buildTriageModel(mobilenetV2, head);
    const diff = await exportAndCompare(
      path.join(tmp, "v2"),
      triage,
      makeTriageMetadata(mobilenetV2, { thresholdProb: 0.5 }),
      images,
    );
    console.log(`mobilenet_v2 triage: max |P_ONNX − P_tfjs| ${diff.toExponential(2)} over ${images.length} images`);
    head.dispose();
  }, 180_000);

  it("mobilenet_v1 α0.25 (../shared/weights) + a diagnosis head trained on real diagnoses (softmax + frozen summing Dense)", async (ctx) => {
    const ham = requireSharedPath(ctx, "data/ham10000-dev");
    const backbone = await getMobilenetV1(ctx);
    const rows = readHamRows(ham, 30);
    const images = rows.map((r) => r.imagePath);
    const features = await compareFeatures(backbone, images.slice(0, 4));
    console.log(
      `mobilenet_v1 0.25 features: max |ONNX − tfjs| ${features.diff.toExponential(2)} (|feature| ≤ ${features.scale.toFixed(2)})`,
    );
    expect(features.diff).toBeLessThan(TOLERANCE * Math.max(1, features.scale));
    const feats = await extractFeatures(backbone, images, { batchSize: 10 });
    const trained = await trainHead(
      feats.features,
      rows.map((r) => r.label),
      { seed: 8, hiddenUnits: 8, epochs: 5, learningRate: 0.01, diagnoses: rows.map((r) => r.diagnosis) },
    );
    expect(trained.model.layers.map((l) => l.getClassName())).toContain("Activation");
    const triage = buildTriageModel(backbone, trained.model);
    const diff = await exportAndCompare(
      path.join(tmp, "v1-diagnosis"),
      triage,
      makeTriageMetadata(backbone, { thresholdProb: 0.5 }),
      images.slice(0, 10),
    );
    console.log(`mobilenet_v1 0.25 + diagnosis head: max |P_ONNX − P_tfjs| ${diff.toExponential(2)}`);
    trained.model.dispose();
  }, 180_000);

  it("an ensemble triage model: mobilenet_v2 (224) + mobilenet_v1 α0.25 (224), two inputs, concatenated features, head", async (ctx) => {
    const ham = requireSharedPath(ctx, "data/ham10000-dev");
    const v1 = await getMobilenetV1(ctx);
    mobilenetV2 ??= await loadBackbone("mobilenet_v2");
    const members = [mobilenetV2, v1];
    const head = buildSmallHead(mobilenetV2.featureDim + v1.featureDim, 17, 0.1);
    const triage = buildEnsembleTriageModel(members, head);
    const images = readHamRows(ham, 6).map((r) => r.imagePath);
    const diff = await exportAndCompare(
      path.join(tmp, "ensemble"),
      triage,
      makeEnsembleTriageMetadata(members, { thresholdProb: 0.5 }),
      images,
    );
    console.log(`ensemble mobilenet_v2+mobilenet_v1@0.25: max |P_ONNX − P_tfjs| ${diff.toExponential(2)}`);
    head.dispose();
  }, 180_000);

  it("inception_v3 (nsfwjs, 299 px) + a head trained on its features of real images", async (ctx) => {
    const ham = requireSharedPath(ctx, "data/ham10000-dev");
    const backbone = await loadBackbone("inception_v3");
    try {
      const features = await compareFeatures(
        backbone,
        readHamRows(ham, 2).map((r) => r.imagePath),
      );
      console.log(
        `inception_v3 features: max |ONNX − tfjs| ${features.diff.toExponential(2)} (|feature| ≤ ${features.scale.toFixed(2)})`,
      );
      expect(features.diff).toBeLessThan(TOLERANCE * Math.max(1, features.scale));
      const rows = readHamRows(ham, 6);
      const images = rows.map((r) => r.imagePath);
      const feats = await extractFeatures(backbone, images, { batchSize: 6 });
      const head = (
        await trainHead(
          feats.features,
          rows.map((r) => r.label),
          { seed: 6, hiddenUnits: 8, epochs: 5, learningRate: 0.01 },
        )
      ).model;
      const triage = buildTriageModel(backbone, head);
      const diff = await exportAndCompare(
        path.join(tmp, "inception"),
        triage,
        makeTriageMetadata(backbone, { thresholdProb: 0.5 }),
        images,
      );
      console.log(`inception_v3 triage: max |P_ONNX − P_tfjs| ${diff.toExponential(2)}`);
      head.dispose();
    } finally {
      disposeBackbone(backbone);
    }
  }, 300_000);
});
