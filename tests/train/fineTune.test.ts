import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import * as tf from "@tensorflow/tfjs";
import { afterAll, beforeAll, expect, it } from "vitest";
import {
  buildTriageModel,
  exportTriageModel,
  loadDataset,
  loadTriageModel,
  makeTriageMetadata,
  predictMalignantProbability,
  releaseInferencePlan,
  selectBackend,
} from "../../lib/index.js";
import type { Backbone } from "../../lib/models/types.js";
import type { LesionRecord } from "../../lib/data/types.js";
import { loadBackbone } from "../../lib/models/backbones.js";
import { extractFeatures } from "../../lib/models/features.js";
import { trainHead } from "../../lib/train/trainHead.js";
import { missingGradientKernels, registerWasmGradientKernels } from "../../lib/backend/wasmGradKernels.js";
import { buildFineTunedTriageModel, splitTriageModel } from "../../lib/train/triageModelSplit.js";
import { findFineTuneCut, FineTuneError } from "../../lib/train/fineTuneCut.js";
import { fineTuneTopBlocks, type FineTuneOptions } from "../../lib/train/fineTune.js";
import { predictHeadProbabilities } from "../../lib/train/predictBatches.js";
import { computeGradCam } from "../../lib/evaluate/gradCam.js";
import { decodeImageRgb } from "../../lib/data/decodeImage.js";
import { describeRequiring, findSharedPath, missingSharedPath } from "../helpers/shared.js";

function weightValues(model: tf.LayersModel, layerName: string): Float32Array[] {
  return model
    .getLayer(layerName)
    .getWeights()
    .map((w) => Float32Array.from(w.dataSync()));
}

/** A model that is not built from a backbone (no pooled-feature layer). */
function narrowModelOf(): tf.LayersModel {
  return tf.sequential({ layers: [tf.layers.dense({ inputShape: [4], units: 1, activation: "sigmoid" })] });
}

function maxAbsDifference(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
  return worst;
}

describeRequiring(
  missingSharedPath("data/ham10000-dev"),
  "fineTuneTopBlocks (MobileNetV2 on a tiny HAM10000 subset)",
  () => {
    let backbone: Backbone;
    let head: tf.LayersModel;
    let train: LesionRecord[];
    let validation: LesionRecord[];
    const sharedCacheDir = fs.mkdtempSync(path.join(os.tmpdir(), "ml-finetune-shared-"));
    afterAll(() => fs.rmSync(sharedCacheDir, { recursive: true, force: true }));

    beforeAll(async () => {
      // describeRequiring runs this suite only when the data is there.
      const dir = findSharedPath("data/ham10000-dev")!;
      // Kernels first: a gradient that misses a wasm kernel leaves the wasm heap unusable.
      registerWasmGradientKernels();
      await selectBackend({ preferred: "wasm" });
      expect(missingGradientKernels()).toEqual([]);
      const { records } = loadDataset(dir);
      const malignant = records.filter((r) => r.label === "malignant");
      const benign = records.filter((r) => r.label === "benign");
      train = [...malignant.slice(0, 4), ...benign.slice(0, 4)];
      validation = [...malignant.slice(4, 6), ...benign.slice(4, 6)];
      backbone = await loadBackbone("mobilenet_v2");
      const features = await extractFeatures(backbone, train);
      const trained = await trainHead(
        features.features,
        features.sourceIndices.map((i) => train[i].label),
        { seed: 1, epochs: 3, hiddenUnits: 8, batchSize: 4 },
      );
      head = trained.model;
    });

    it("cuts MobileNetV2 before the requested top blocks and rejects impossible block counts", () => {
      const one = findFineTuneCut(backbone, 1);
      expect(one).toMatchObject({
        cutLayerName: "block_15_add",
        blockNames: ["block_16"],
        activationShape: [7, 7, 160],
      });
      expect(one.topLayerNames[0]).toBe("block_16_expand");
      expect(one.topLayerNames.slice(-4)).toEqual(["Conv_1", "Conv_1_bn", "out_relu", "mobilenet_v2_features_gap"]);
      expect(findFineTuneCut(backbone, 2)).toMatchObject({
        cutLayerName: "block_14_add",
        blockNames: ["block_15", "block_16"],
      });
      // block_13 (stride 2) reads block_12_add at 14×14.
      expect(findFineTuneCut(backbone, 4)).toMatchObject({
        cutLayerName: "block_12_add",
        activationShape: [14, 14, 96],
      });
      expect(() => findFineTuneCut(backbone, 0)).toThrow(FineTuneError);
      expect(() => findFineTuneCut(backbone, 17)).toThrow(/unfreezeBlocks: received 17, expected a whole number 1–16/);
    });

    it("refuses, before it starts, a step too large for the wasm heap (which would crash it), naming the largest batch that fits", async () => {
      const tensorsBefore = tf.memory().numTensors;
      const options: FineTuneOptions = { unfreezeBlocks: 16, epochs: 1, learningRate: 1e-4, batchSize: 64, seed: 1 };
      const refusal = await fineTuneTopBlocks(backbone, head, train, validation, options).catch((e: unknown) => e);
      expect(refusal).toBeInstanceOf(FineTuneError);
      const message = (refusal as Error).message;
      expect(message).toMatch(
        /^batchSize 64 with unfreezeBlocks 16 of mobilenet_v2: a training step needs about [\d.]+ GiB of wasm memory/,
      );
      const largest = Number(/expected batchSize ≤ (\d+)/.exec(message)![1]);
      expect(largest).toBeGreaterThanOrEqual(1);
      expect(largest).toBeLessThan(64);
      expect(tf.memory().numTensors).toBe(tensorsBefore);
    });

    it("before any real update reproduces the frozen pipeline's probabilities, and rejects a head of the wrong width", async () => {
      const ft = await fineTuneTopBlocks(backbone, head, train, validation, {
        unfreezeBlocks: 2,
        epochs: 1,
        learningRate: 1e-12,
        batchSize: 8,
        seed: 2,
        cacheDir: sharedCacheDir,
      });
      const frozen = buildTriageModel(backbone, head);
      const viaFrozen = (
        await predictMalignantProbability(
          { model: frozen, metadata: makeTriageMetadata(backbone, { thresholdProb: 0.5 }), dir: "" },
          validation.map((r) => r.imagePath),
        )
      ).map((p) => ("probability" in p ? p.probability : NaN));
      const assembled = await buildFineTunedTriageModel(backbone, ft.head);
      const viaAssembled = (
        await predictMalignantProbability(
          { model: assembled, metadata: makeTriageMetadata(backbone, { thresholdProb: 0.5 }), dir: "" },
          validation.map((r) => r.imagePath),
        )
      ).map((p) => ("probability" in p ? p.probability : NaN));
      expect(maxAbsDifference(viaAssembled, viaFrozen)).toBeLessThan(1e-4);
      expect(new Set(viaFrozen.map((p) => p.toFixed(4))).size).toBeGreaterThan(1);
      assembled.dispose();
      ft.head.dispose();
      const narrow = tf.sequential({
        layers: [tf.layers.dense({ inputShape: [16], units: 1, activation: "sigmoid" })],
      });
      await expect(
        fineTuneTopBlocks(backbone, narrow, train, validation, {
          unfreezeBlocks: 1,
          epochs: 1,
          learningRate: 1e-4,
          batchSize: 4,
          seed: 1,
        }),
      ).rejects.toThrow(/head input: received shape \[null,16\], expected \[null, 1280\]/);
      narrow.dispose();
      // A Sequential head of the right width works like trainHead's functional one.
      const sequentialHead = tf.sequential({
        layers: [tf.layers.dense({ inputShape: [1280], units: 1, activation: "sigmoid", name: "seq_out" })],
      });
      const viaSequential = await fineTuneTopBlocks(backbone, sequentialHead, train, validation, {
        cacheDir: sharedCacheDir,
        unfreezeBlocks: 1,
        epochs: 1,
        learningRate: 1e-4,
        batchSize: 8,
        seed: 1,
      });
      expect(viaSequential.trainableLayerNames.at(-1)).toBe("seq_out");
      viaSequential.head.dispose();
      sequentialHead.dispose();
    });

    it("trains the top blocks, keeps BatchNorm statistics and the inputs unchanged, is seeded, caches activations, exports, and leaks nothing", async () => {
      const cacheDir = fs.mkdtempSync(path.join(os.tmpdir(), "ml-finetune-"));
      const backboneBefore = weightValues(backbone.model, "block_16_expand_BN");
      const headBefore = weightValues(head, "head_output");
      const tensorsBefore = tf.memory().numTensors;
      const options: FineTuneOptions = {
        unfreezeBlocks: 1,
        epochs: 2,
        learningRate: 1e-3,
        batchSize: 4,
        seed: 5,
        cacheDir,
        classWeights: "balanced",
      };
      const epochsSeen: number[] = [];
      const a = await fineTuneTopBlocks(backbone, head, train, validation, {
        ...options,
        onEpochEnd: (m) => void epochsSeen.push(m.epoch),
      });
      expect(epochsSeen).toEqual([1, 2]);
      expect(a.cacheHits).toBe(0);
      expect(a.problems).toEqual([]);
      expect(a.cutLayerName).toBe("block_15_add");
      expect(a.trainableLayerNames).toEqual([
        "block_16_expand",
        "block_16_expand_BN",
        "block_16_depthwise",
        "block_16_depthwise_BN",
        "block_16_project",
        "block_16_project_BN",
        "Conv_1",
        "Conv_1_bn",
        "head_hidden",
        "head_output",
      ]);
      expect(a.imagesPerSecond).toBeGreaterThan(0);
      for (const m of a.history) {
        for (const v of [m.trainLoss, m.trainAuc, m.valLoss!, m.valAuc!]) expect(Number.isFinite(v)).toBe(true);
      }

      // Weights moved; BatchNorm moving mean/variance did not (inference mode), scale/offset did.
      for (const name of ["block_16_expand", "block_16_depthwise", "Conv_1", "head_output"]) {
        expect(
          maxAbsDifference(
            weightValues(a.head, name)[0],
            (name.startsWith("head") ? weightValues(head, name) : weightValues(backbone.model, name))[0],
          ),
        ).toBeGreaterThan(1e-5);
      }
      for (const name of ["block_16_expand_BN", "block_16_depthwise_BN", "block_16_project_BN", "Conv_1_bn"]) {
        const bn = a.head.getLayer(name);
        const names = bn.weights.map((w) => w.originalName.split("/").at(-1));
        expect(names).toEqual(["gamma", "beta", "moving_mean", "moving_variance"]);
        const after = weightValues(a.head, name);
        const original = weightValues(backbone.model, name);
        expect(maxAbsDifference(after[2], original[2])).toBe(0);
        expect(maxAbsDifference(after[3], original[3])).toBe(0);
        expect(maxAbsDifference(after[0], original[0])).toBeGreaterThan(0);
      }
      // Neither the backbone nor the head passed in were modified.
      weightValues(backbone.model, "block_16_expand_BN").forEach((w, i) =>
        expect(maxAbsDifference(w, backboneBefore[i])).toBe(0),
      );
      weightValues(head, "head_output").forEach((w, i) => expect(maxAbsDifference(w, headBefore[i])).toBe(0));

      // Same seed → same history and weights; the second run reads every activation from the cache.
      const b = await fineTuneTopBlocks(backbone, head, train, validation, options);
      expect(b.cacheHits).toBe(train.length + validation.length);
      expect(b.history.map((m) => [m.trainLoss, m.valAuc])).toEqual(a.history.map((m) => [m.trainLoss, m.valAuc]));
      expect(
        maxAbsDifference(weightValues(b.head, "block_16_project")[0], weightValues(a.head, "block_16_project")[0]),
      ).toBe(0);
      b.head.dispose();

      // Full image → probability model: exported and reloaded, it agrees with the fine-tuned top on cached activations.
      const assembled = await buildFineTunedTriageModel(backbone, a.head);
      const exportDir = path.join(cacheDir, "model");
      await exportTriageModel(
        exportDir,
        assembled,
        makeTriageMetadata(backbone, { thresholdProb: 0.5, notes: { fineTunedBlocks: 1 } }),
      );
      const loaded = await loadTriageModel(exportDir);
      const fromFiles = (
        await predictMalignantProbability(
          loaded,
          validation.map((r) => r.imagePath),
        )
      ).map((p) => ("probability" in p ? p.probability : NaN));
      const bottom = tf.model({
        inputs: backbone.model.inputs,
        outputs: backbone.model.getLayer("block_15_add").output as tf.SymbolicTensor,
      });
      const bottomBackbone: Backbone = {
        ...backbone,
        model: bottom,
        featureLayerName: "block_15_add:activation",
        featureDim: 7 * 7 * 160,
      };
      const activations = await extractFeatures(bottomBackbone, validation);
      // extractFeatures keeps a compiled inference plan (own folded weights) per model: free this one's.
      releaseInferencePlan(bottomBackbone);
      const viaTop = tf.tidy(() =>
        Array.from(
          (a.head.predict(tf.tensor4d(activations.features, [validation.length, 7, 7, 160])) as tf.Tensor).dataSync(),
        ),
      );
      expect(maxAbsDifference(fromFiles, viaTop)).toBeLessThan(1e-4);

      // Split back into backbone + head (for Grad-CAM): features → head reproduces the whole model,
      // and Grad-CAM's probability is the fine-tuned one, not the frozen backbone's.
      const parts = await splitTriageModel(assembled, backbone);
      expect(parts.head.inputs[0].shape).toEqual([null, 1280]);
      const splitFeatures = await extractFeatures(parts.backbone, validation);
      releaseInferencePlan(parts.backbone);
      expect(
        maxAbsDifference(predictHeadProbabilities(parts.head, splitFeatures.features, 1280), fromFiles),
      ).toBeLessThan(1e-4);
      const rgb = await decodeImageRgb(validation[0].imagePath, 224);
      expect(computeGradCam(parts.backbone, parts.head, rgb, 224).probability).toBeCloseTo(fromFiles[0], 4);
      expect(Math.abs(computeGradCam(backbone, head, rgb, 224).probability - fromFiles[0])).toBeGreaterThan(1e-4);
      parts.head.dispose();
      const notFromBackbone = narrowModelOf();
      await expect(splitTriageModel(notFromBackbone, backbone)).rejects.toThrow(/no layer mobilenet_v2_features_gap/);
      notFromBackbone.dispose();
      loaded.model.dispose();
      assembled.dispose();
      a.head.dispose();
      expect(tf.memory().numTensors).toBe(tensorsBefore);
      fs.rmSync(cacheDir, { recursive: true, force: true });
    });

    it("with augment, trains on cached dihedral views of each image", async () => {
      const small = [train[0], train[1], train[4], train[5]];
      const options: FineTuneOptions = {
        unfreezeBlocks: 1,
        epochs: 1,
        learningRate: 1e-3,
        batchSize: 4,
        seed: 9,
        cacheDir: sharedCacheDir,
      };
      const plain = await fineTuneTopBlocks(backbone, head, small, [], options);
      const augmented = await fineTuneTopBlocks(backbone, head, small, [], { ...options, augment: true });
      expect(augmented.history[0].valAuc).toBeUndefined();
      // Same seed and batch order; only the views differ, so the first-epoch loss must differ.
      expect(augmented.history[0].trainLoss).not.toBe(plain.history[0].trainLoss);
      expect(Number.isFinite(augmented.history[0].trainLoss)).toBe(true);
      plain.head.dispose();
      augmented.head.dispose();
    });
  },
);
