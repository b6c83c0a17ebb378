import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import sharp from "sharp";
import * as tf from "@tensorflow/tfjs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { selectBackend } from "../../lib/index.js";
import { ModelFileError } from "../../lib/models/modelFiles.js";
import {
  buildTriageModel,
  exportTriageModel,
  loadTriageModel,
  makeTriageMetadata,
  predictMalignantProbability,
  predictMalignantProbabilities,
  TriageModelError,
} from "../../lib/export/triageModel.js";
import { loadBackbone } from "../../lib/models/backbones.js";
import { extractFeatures } from "../../lib/models/features.js";
import type { Backbone } from "../../lib/models/types.js";
import { trainHead } from "../../lib/train/trainHead.js";
import { createRandom } from "../../lib/util/random.js";

describe("triage model export → load round trip (mobilenet_v2 + trained head)", () => {
  let backbone: Backbone;
  let head: tf.LayersModel;
  let tmp: string;
  const images: string[] = [];

  beforeAll(async () => {
    await selectBackend();
    backbone = await loadBackbone("mobilenet_v2");
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), "ml-export-"));
    const rand = createRandom(21);
    for (let i = 0; i < 3; i++) {
      const px = Buffer.from(Uint8Array.from({ length: 96 * 80 * 3 }, () => Math.floor(rand() * 256)));
      const file = path.join(tmp, `lesion${i}.jpg`);
      await sharp(px, { raw: { width: 96, height: 80, channels: 3 } })
        .jpeg()
        .toFile(file);
      images.push(file);
    }
    // A head trained on random features: the round trip must reproduce whatever it computes.
    const n = 40;
    const features = Float32Array.from({ length: n * backbone.featureDim }, () => rand());
    const labels = Array.from({ length: n }, (_, i) => (i % 3 === 0 ? 1 : 0));
    head = (await trainHead(features, labels, { seed: 3, hiddenUnits: 8, epochs: 2, learningRate: 0.01 })).model;
  });

  afterAll(() => {
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  it("exports model.json + weights.bin + metadata.json and reloads to identical probabilities", async () => {
    const triage = buildTriageModel(backbone, head);
    expect(triage.outputs[0].shape).toEqual([null, 1]);
    const dir = path.join(tmp, "triage");
    const metadata = makeTriageMetadata(backbone, {
      thresholdProb: 0.42,
      validation: { description: "validation split", images: 3, malignant: 1, benign: 2, metrics: { rocAuc: 0.5 } },
      test: {
        description: "held-out test split",
        images: 4,
        malignant: 2,
        benign: 2,
        metrics: { rocAuc: 0.75, sensitivity: 0.5, specificity: 1 },
      },
    });
    const { bytes } = await exportTriageModel(dir, triage, metadata);
    expect(fs.readdirSync(dir).sort()).toEqual(["metadata.json", "model.json", "weights.bin"]);
    console.log(`exported triage model: ${(bytes / 1e6).toFixed(2)} MB`);
    const saved = JSON.parse(fs.readFileSync(path.join(dir, "metadata.json"), "utf8"));
    expect(saved).toMatchObject({
      labels: ["benign", "malignant"],
      inputSizePx: 224,
      thresholdProb: 0.42,
      backboneName: "mobilenet_v2",
      resizePolicy: "center-crop",
      backend: tf.getBackend(),
    });
    expect(saved.preprocessing).toEqual(backbone.preprocessing);
    // Validation and test metrics are filed apart, each with its counts; nothing under the old name.
    expect(saved.validation).toEqual({
      description: "validation split",
      images: 3,
      malignant: 1,
      benign: 2,
      metrics: { rocAuc: 0.5 },
    });
    expect(saved.test).toEqual({
      description: "held-out test split",
      images: 4,
      malignant: 2,
      benign: 2,
      metrics: { rocAuc: 0.75, sensitivity: 0.5, specificity: 1 },
    });
    expect(saved).not.toHaveProperty("validationMetrics");

    const loaded = await loadTriageModel(dir);
    const before = tf.memory().numTensors;
    const predictions = await predictMalignantProbability(loaded, [...images, path.join(tmp, "missing.jpg")], {
      batchSize: 2,
    });
    expect(tf.memory().numTensors).toBe(before);
    expect(predictions).toHaveLength(4);
    expect("problem" in predictions[3] && predictions[3].problem.file).toBe(path.join(tmp, "missing.jpg"));
    const reloaded = predictions.slice(0, 3).map((p) => ("probability" in p ? p.probability : NaN));

    // In memory, by two routes: the combined model, and backbone features → head.
    const feats = await extractFeatures(backbone, images, { batchSize: 3 });
    const viaHead = tf.tidy(() =>
      (head.predict(tf.tensor2d(feats.features, [3, backbone.featureDim])) as tf.Tensor).dataSync(),
    );
    const inMemory = await predictMalignantProbability({ model: triage, metadata, dir: "" }, images);
    for (let i = 0; i < 3; i++) {
      const p = inMemory[i];
      expect("probability" in p && p.probability).toBe(reloaded[i]);
      expect(Math.abs(viaHead[i] - reloaded[i])).toBeLessThan(1e-5);
      expect(reloaded[i]).toBeGreaterThan(0);
      expect(reloaded[i]).toBeLessThan(1);
    }
    // One image goes through tfjs-layers' predict; batches through the compiled plan: same result.
    const one = await predictMalignantProbability(loaded, [images[1]]);
    expect("probability" in one[0] && Math.abs(one[0].probability - reloaded[1])).toBeLessThan(1e-5);
    loaded.model.dispose();
  });

  it("predictMalignantProbabilities: the same probabilities as one array, and an unreadable image or batch size 0 is a named error", async () => {
    const scorer = {
      model: buildTriageModel(backbone, head),
      metadata: makeTriageMetadata(backbone, { thresholdProb: 0.5 }),
      dir: "",
    };
    const each = await predictMalignantProbability(scorer, images, { batchSize: 2 });
    const all = await predictMalignantProbabilities(scorer, images, { batchSize: 2 });
    expect(Array.from(all)).toEqual(each.map((p) => ("probability" in p ? p.probability : NaN)));
    const corrupt = path.join(tmp, "corrupt.jpg");
    fs.writeFileSync(corrupt, "not a jpeg");
    await expect(predictMalignantProbabilities(scorer, [images[0], corrupt])).rejects.toThrow(TriageModelError);
    await expect(predictMalignantProbabilities(scorer, [images[0], corrupt])).rejects.toThrow(
      /1 of 2 images could not be scored; first: .*corrupt\.jpg/,
    );
    // A batch size of 0 used to loop forever (start += 0).
    await expect(predictMalignantProbability(scorer, images, { batchSize: 0 })).rejects.toThrow(
      /batchSize: received 0; expected a whole number ≥ 1/,
    );
  });

  it("names the missing file when a folder is incomplete", async () => {
    const dir = path.join(tmp, "incomplete");
    await exportTriageModel(
      dir,
      buildTriageModel(backbone, head),
      makeTriageMetadata(backbone, { thresholdProb: 0.5 }),
    );
    fs.rmSync(path.join(dir, "weights.bin"));
    await expect(loadTriageModel(dir)).rejects.toThrow(ModelFileError);
    await expect(loadTriageModel(dir)).rejects.toThrow(/weights\.bin: missing/);
    fs.rmSync(path.join(dir, "metadata.json"));
    await expect(loadTriageModel(dir)).rejects.toThrow(/metadata\.json: missing/);
    await expect(loadTriageModel(path.join(tmp, "nowhere"))).rejects.toThrow(/nowhere\/metadata\.json: missing/);
  });

  it("refuses a head whose input does not match the backbone's features", async () => {
    const wrong = tf.sequential({ layers: [tf.layers.dense({ units: 1, inputShape: [7] })] });
    expect(() => buildTriageModel(backbone, wrong)).toThrow(TriageModelError);
    expect(() => buildTriageModel(backbone, wrong)).toThrow(/expected \[null, 1280\]/);
    await expect(
      exportTriageModel(
        path.join(tmp, "x"),
        buildTriageModel(backbone, head),
        makeTriageMetadata(backbone, { thresholdProb: 1.5 }),
      ),
    ).rejects.toThrow(/thresholdProb: received 1.5/);
    wrong.dispose();
  });
});
