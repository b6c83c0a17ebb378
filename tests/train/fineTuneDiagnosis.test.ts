import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import * as tf from "@tensorflow/tfjs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateSyntheticDataset, loadDataset, selectBackend } from "../../lib/index.js";
import type { LesionRecord } from "../../lib/data/types.js";
import type { Backbone } from "../../lib/models/types.js";
import { loadBackbone } from "../../lib/models/backbones.js";
import { extractFeatures } from "../../lib/models/features.js";
import { registerWasmGradientKernels } from "../../lib/backend/wasmGradKernels.js";
import { predictDiagnosisProbabilities } from "../../lib/train/diagnosisHead.js";
import { DIAGNOSIS_HEAD_LAYERS } from "../../lib/models/headLayers.js";
import { fineTuneTopBlocks } from "../../lib/train/fineTune.js";
import { FineTuneError } from "../../lib/train/fineTuneCut.js";
import { predictHeadProbabilities } from "../../lib/train/predictBatches.js";
import { trainHead, type TrainHeadResult } from "../../lib/train/trainHead.js";

// 12 synthetic images; each label split over two diagnoses (mel/bcc, nv/bkl) so the softmax over
// diagnoses and the summed P(malignant) give different losses (with one diagnosis per label they
// would coincide and the test could not tell the two objectives apart).
let workDir: string;
let backbone: Backbone;
let train: LesionRecord[];
let head: TrainHeadResult;
let features: Float32Array;

beforeAll(async () => {
  workDir = fs.mkdtempSync(path.join(os.tmpdir(), "melanoma-ft-diagnosis-"));
  const dataDir = path.join(workDir, "data");
  await generateSyntheticDataset({ outDir: dataDir, imageCount: 12, seed: 33, malignantFraction: 0.5 });
  registerWasmGradientKernels();
  await selectBackend({ preferred: "wasm" });
  const { records } = loadDataset(dataDir);
  let m = 0;
  let b = 0;
  train = records.map((r) => ({
    ...r,
    diagnosis: r.label === "malignant" ? (m++ % 2 === 0 ? "mel" : "bcc") : b++ % 2 === 0 ? "nv" : "bkl",
  }));
  backbone = await loadBackbone("mobilenet_v2");
  const extracted = await extractFeatures(backbone, train);
  expect(extracted.rows).toBe(train.length);
  features = extracted.features;
  // No hidden layer, so no dropout: the first step's loss is a deterministic function of the starting weights.
  head = await trainHead(
    features,
    train.map((r) => r.label),
    { seed: 3, epochs: 2, hiddenUnits: 0, batchSize: 4, diagnoses: train.map((r) => r.diagnosis) },
  );
  expect(head.diagnosisClasses).toEqual(["bcc", "bkl", "mel", "nv"]);
}, 300_000);

afterAll(() => {
  head?.model.dispose();
  backbone?.model.dispose();
  if (workDir) fs.rmSync(workDir, { recursive: true, force: true });
});

describe("fineTuneTopBlocks with a diagnosis-target head", () => {
  it("trains on the head's own loss: categorical cross-entropy of the diagnosis softmax (first step = the starting head's CE)", async () => {
    const tensorsBefore = tf.memory().numTensors;
    // One batch holding every row: the epoch's loss is the loss at the starting weights.
    const ft = await fineTuneTopBlocks(backbone, head.model, train, [], {
      unfreezeBlocks: 1,
      epochs: 1,
      learningRate: 1e-4,
      batchSize: train.length,
      seed: 1,
      diagnosisClasses: head.diagnosisClasses,
    });
    // Independent expectation: the starting head's softmax on the frozen features, −mean log p(diagnosis).
    const { probabilities, classCount } = predictDiagnosisProbabilities(head.model, features, backbone.featureDim);
    let crossEntropy = 0;
    let binaryCrossEntropy = 0;
    const pMalignant = predictHeadProbabilities(head.model, features, backbone.featureDim);
    train.forEach((r, i) => {
      crossEntropy -= Math.log(probabilities[i * classCount + head.diagnosisClasses!.indexOf(r.diagnosis!)]);
      binaryCrossEntropy -= Math.log(r.label === "malignant" ? pMalignant[i] : 1 - pMalignant[i]);
    });
    crossEntropy /= train.length;
    binaryCrossEntropy /= train.length;
    // The two objectives differ clearly here, so matching one is not matching the other.
    expect(crossEntropy - binaryCrossEntropy).toBeGreaterThan(0.1);
    expect(ft.history[0].trainLoss).toBeCloseTo(crossEntropy, 3);
    // The fine-tuned model keeps the diagnosis layers and still outputs P(malignant) [n, 1].
    expect(ft.head.getLayer(DIAGNOSIS_HEAD_LAYERS.softmax)).toBeDefined();
    expect(ft.head.outputs[0].shape).toEqual([null, 1]);
    ft.head.dispose();
    expect(tf.memory().numTensors).toBe(tensorsBefore);
  });

  it("refuses a diagnosis head without its classes, or records with a diagnosis the head does not know, with a FineTuneError saying what to pass", async () => {
    const base = { unfreezeBlocks: 1, epochs: 1, learningRate: 1e-4, batchSize: 4, seed: 1 };
    const missing = await fineTuneTopBlocks(backbone, head.model, train, [], base).catch((e: unknown) => e);
    expect(missing).toBeInstanceOf(FineTuneError);
    expect(String(missing)).toMatch(/diagnosis.*diagnosisClasses/s);
    const unknown = train.map((r, i) => (i === 2 ? { ...r, diagnosis: "df" } : r));
    const refused = await fineTuneTopBlocks(backbone, head.model, unknown, [], {
      ...base,
      diagnosisClasses: head.diagnosisClasses,
    }).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(FineTuneError);
    expect(String(refused)).toMatch(/"df".*bcc, bkl, mel, nv/);
  });
});
