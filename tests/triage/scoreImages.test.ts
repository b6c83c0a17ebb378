import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import * as tf from "@tensorflow/tfjs";
import sharp from "sharp";
import { beforeAll, describe, expect, it } from "vitest";
import {
  exportTriageModel,
  exportTriageModelOnnx,
  listImagesToScore,
  describeScoreSummary,
  ScoreInputError,
  scoreImagesToCsv,
  selectBackend,
} from "../../lib/index.js";
import type { TriageModelMetadata } from "../../lib/index.js";

// A model whose output is hand-computable: sigmoid(mean red channel / 255).
async function exportRedModel(dir: string, options: { onnx?: boolean } = {}): Promise<void> {
  const input = tf.input({ shape: [8, 8, 3] });
  const pooled = tf.layers.globalAveragePooling2d({}).apply(input) as tf.SymbolicTensor;
  const dense = tf.layers.dense({ units: 1, activation: "sigmoid" });
  const model = tf.model({ inputs: input, outputs: dense.apply(pooled) as tf.SymbolicTensor });
  dense.setWeights([tf.tensor2d([[1], [0], [0]]), tf.tensor1d([0])]);
  const metadata: TriageModelMetadata = {
    formatVersion: 1,
    labels: ["benign", "malignant"],
    inputSizePx: 8,
    preprocessing: { kind: "scale", scale: 1 / 255, offset: 0 },
    resizePolicy: "squash",
    thresholdProb: 0.7,
    validationMetrics: {},
    backboneName: "handmade",
    backboneWeightsId: "handmade/1",
    featureLayerName: "none",
    featureDim: 3,
    createdAt: new Date().toISOString(),
    backend: tf.getBackend(),
  };
  await exportTriageModel(dir, model, metadata);
  if (options.onnx) await exportTriageModelOnnx(dir, model, metadata);
  model.dispose();
}

async function solidPng(file: string, r: number, g: number, b: number): Promise<void> {
  await sharp({ create: { width: 12, height: 12, channels: 3, background: { r, g, b } } })
    .png()
    .toFile(file);
}

describe("scoreImagesToCsv", () => {
  let tmp: string;
  beforeAll(async () => {
    await selectBackend();
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), "ml-score-"));
    await exportRedModel(path.join(tmp, "model"));
    await exportRedModel(path.join(tmp, "model-onnx"), { onnx: true });
    fs.mkdirSync(path.join(tmp, "plain"));
    await solidPng(path.join(tmp, "plain", "a_red.png"), 255, 0, 0);
    await solidPng(path.join(tmp, "plain", "b_blue.png"), 0, 0, 255);
    fs.writeFileSync(path.join(tmp, "plain", "c_broken.jpg"), "not an image at all");
    fs.writeFileSync(path.join(tmp, "plain", "notes.txt"), "ignored");
    fs.mkdirSync(path.join(tmp, "dataset", "images"), { recursive: true });
    await solidPng(path.join(tmp, "dataset", "images", "ISIC_1.png"), 128, 0, 0);
    fs.writeFileSync(path.join(tmp, "dataset", "labels.csv"), "image_id,label\nISIC_1,malignant\n");
  });

  it("writes image_id,probability,triage per image; a broken image is listed and the rest go on", async () => {
    const out = path.join(tmp, "preds.csv");
    const summary = await scoreImagesToCsv({
      modelDir: path.join(tmp, "model"),
      input: path.join(tmp, "plain"),
      outPath: out,
      batchSize: 2,
    });
    const lines = fs.readFileSync(out, "utf8").trim().split("\n");
    expect(lines[0]).toBe("image_id,probability,triage");
    const rows = lines.slice(1).map((l) => l.split(","));
    expect(rows.map((r) => r[0])).toEqual(["a_red", "b_blue"]);
    expect(Number(rows[0][1])).toBeCloseTo(1 / (1 + Math.exp(-1)), 5);
    expect(rows[0][2]).toBe("urgent");
    expect(Number(rows[1][1])).toBeCloseTo(0.5, 5);
    expect(rows[1][2]).toBe("routine");
    expect(summary.scoredCount).toBe(2);
    expect(summary.urgentCount).toBe(1);
    expect(summary.problems).toHaveLength(1);
    expect(summary.problems[0].file).toContain("c_broken.jpg");
    // No model.onnx in the folder: tfjs ran, and the summary's first line says so.
    expect(summary.runtime.runtime).toBe("tfjs");
    expect(describeScoreSummary(summary)[0]).toMatch(/^runtime: tfjs/);
  });

  it("scores through ONNX Runtime when the folder has model.onnx (same rows), and tfjs when forced", async () => {
    const viaOnnx = await scoreImagesToCsv({
      modelDir: path.join(tmp, "model-onnx"),
      input: path.join(tmp, "plain"),
      outPath: path.join(tmp, "preds-onnx.csv"),
      batchSize: 2,
      runtime: "auto",
    });
    expect(viaOnnx.runtime.runtime).toBe("onnx");
    expect(describeScoreSummary(viaOnnx)[0]).toMatch(/^runtime: onnx/);
    const rows = fs.readFileSync(path.join(tmp, "preds-onnx.csv"), "utf8").trim().split("\n").slice(1);
    expect(rows.map((r) => r.split(",")[0])).toEqual(["a_red", "b_blue"]);
    expect(Number(rows[0].split(",")[1])).toBeCloseTo(1 / (1 + Math.exp(-1)), 5);
    expect(rows.map((r) => r.split(",")[2])).toEqual(["urgent", "routine"]);
    expect(viaOnnx.problems.map((p) => path.basename(p.file))).toEqual(["c_broken.jpg"]);
    const forced = await scoreImagesToCsv({
      modelDir: path.join(tmp, "model-onnx"),
      input: path.join(tmp, "plain"),
      outPath: path.join(tmp, "preds-tfjs.csv"),
      runtime: "tfjs",
    });
    expect(forced.runtime).toMatchObject({ runtime: "tfjs", forced: true });
    expect(fs.readFileSync(path.join(tmp, "preds-tfjs.csv"), "utf8").split("\n")[1].split(",")[1]).toBe(
      rows[0].split(",")[1],
    );
  });

  it("reads a labels.csv file or a dataset folder", async () => {
    const viaCsv = listImagesToScore(path.join(tmp, "dataset", "labels.csv"));
    const viaDir = listImagesToScore(path.join(tmp, "dataset"));
    expect(viaCsv.images).toEqual(viaDir.images);
    expect(viaCsv.images.map((i) => i.imageId)).toEqual(["ISIC_1"]);
    const out = path.join(tmp, "preds2.csv");
    await scoreImagesToCsv({
      modelDir: path.join(tmp, "model"),
      input: path.join(tmp, "dataset", "labels.csv"),
      outPath: out,
    });
    const [, row] = fs.readFileSync(out, "utf8").trim().split("\n");
    expect(Number(row.split(",")[1])).toBeCloseTo(1 / (1 + Math.exp(-128 / 255)), 4);
  });

  it("refuses a batch size that is not a whole number ≥ 1 (0 used to loop forever, NaN to score nothing)", async () => {
    for (const batchSize of [0, -1, 1.5, Number.NaN]) {
      const out = path.join(tmp, `preds-bad-${batchSize}.csv`);
      await expect(
        scoreImagesToCsv({
          modelDir: path.join(tmp, "model"),
          input: path.join(tmp, "plain"),
          outPath: out,
          batchSize,
        }),
      ).rejects.toThrow(
        new ScoreInputError(`batchSize: received ${batchSize}, expected a whole number ≥ 1 (images per forward pass)`),
      );
      expect(fs.existsSync(out)).toBe(false);
    }
  }, 20_000);

  it("names bad inputs", () => {
    expect(() => listImagesToScore(path.join(tmp, "nope"))).toThrow(ScoreInputError);
    expect(() => listImagesToScore(path.join(tmp, "plain", "notes.txt"))).toThrow(/must be a labels.csv/);
    fs.mkdirSync(path.join(tmp, "empty"), { recursive: true });
    expect(() => listImagesToScore(path.join(tmp, "empty"))).toThrow(/no .jpg, .jpeg or .png files/);
  });
});
