import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import * as tf from "@tensorflow/tfjs";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import {
  createTrainingTensorBoardCallback,
  readLogDir,
  resolveRunConfig,
  selectBackend,
  trainHead,
  writeModelCardToTensorBoard,
} from "../../lib/index.js";
import type { FeatureTable, LesionRecord, RunConfig } from "../../lib/index.js";
import { createRandom } from "../../lib/util/random.js";

const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), "melanoma-lab-tbrun-"));
afterAll(() => fs.rmSync(tmpRoot, { recursive: true, force: true }));

const EPOCHS = 3;
const THRESHOLDS = 11;
const FEATURE_DIM = 6;

/** Rows of FEATURE_DIM features whose first two carry the label (seeded), as a FeatureTable. */
function makeFeatureTable(seed: number, rows: number, prefix: string): FeatureTable {
  const rand = createRandom(seed);
  const labels = Array.from({ length: rows }, (_, i) => (i % 3 === 0 ? 1 : 0));
  const features = new Float32Array(rows * FEATURE_DIM);
  labels.forEach((y, r) => {
    for (let j = 0; j < FEATURE_DIM; j++) features[r * FEATURE_DIM + j] = rand() + (j < 2 ? 0.8 * y : 0);
  });
  return { imageIds: labels.map((_, i) => `${prefix}_${i}`), labels, features, featureDim: FEATURE_DIM };
}

/** Small solid-colour PNG files (reddish for malignant, tan for benign), one per record. */
async function makeTrainRecords(dir: string, count: number): Promise<LesionRecord[]> {
  fs.mkdirSync(dir, { recursive: true });
  const records: LesionRecord[] = [];
  for (let i = 0; i < count; i++) {
    const label = i % 3 === 0 ? "malignant" : "benign";
    const imagePath = path.join(dir, `IMG_${i}.png`);
    const colour = label === "malignant" ? { r: 120 + i, g: 30, b: 40 } : { r: 200, g: 160 + i, b: 120 };
    await sharp({ create: { width: 40, height: 30, channels: 3, background: colour } })
      .png()
      .toFile(imagePath);
    records.push({ imageId: `IMG_${i}`, imagePath, label });
  }
  return records;
}

/** TP/FP/TN/FN at thresholds t/(k-1), counted directly: predicted positive when p >= threshold. */
function countAtThresholds(labels: number[], probabilities: Float32Array, k: number) {
  const out = { tp: [] as number[], fp: [] as number[], tn: [] as number[], fn: [] as number[] };
  for (let t = 0; t < k; t++) {
    const threshold = t / (k - 1);
    let tp = 0,
      fp = 0,
      tn = 0,
      fn = 0;
    labels.forEach((y, i) => {
      const positive = probabilities[i] >= threshold;
      if (y === 1) {
        if (positive) tp++;
        else fn++;
      } else if (positive) fp++;
      else tn++;
    });
    out.tp.push(tp);
    out.fp.push(fp);
    out.tn.push(tn);
    out.fn.push(fn);
  }
  return out;
}

describe("createTrainingTensorBoardCallback + writeModelCardToTensorBoard: the demo's logging path", () => {
  let config: RunConfig;
  let trainRecords: LesionRecord[];
  let validation: FeatureTable;
  const predictionsPerEpoch: Float32Array[] = [];

  beforeAll(async () => {
    await selectBackend();
    vi.stubEnv("MELANOMA_LAB_EPOCHS", "");
    vi.stubEnv("MELANOMA_LAB_SMALL", "");
    vi.stubEnv("MELANOMA_LAB_RUN", "");
    const base = resolveRunConfig({ runName: "tb-test", seed: 5, epochs: EPOCHS, learningRate: 0.01 });
    vi.unstubAllEnvs();
    config = {
      ...base,
      paths: {
        ...base.paths,
        runDir: path.join(tmpRoot, "runs"),
        logDir: path.join(tmpRoot, "logs", "tb-test"),
        modelDir: path.join(tmpRoot, "models", "tb-test"),
      },
    };
    trainRecords = await makeTrainRecords(path.join(tmpRoot, "images"), 15);
    const train = makeFeatureTable(1, 30, "T");
    validation = makeFeatureTable(2, 18, "V");
    const tensorboard = createTrainingTensorBoardCallback(config, validation, {
      trainRecords,
      samplesPerLabel: 4,
      prCurveThresholds: THRESHOLDS,
      writerOptions: { flushIntervalMs: 0 },
    });
    // Records the head's validation predictions at each epoch end, with tfjs directly.
    let model: tf.LayersModel | undefined;
    const recorder = {
      setModel: (m: tf.LayersModel) => void (model = m),
      onEpochEnd: () => {
        predictionsPerEpoch.push(
          tf.tidy(
            () =>
              (
                model!.predict(tf.tensor2d(validation.features, [validation.labels.length, FEATURE_DIM])) as tf.Tensor
              ).dataSync() as Float32Array,
          ),
        );
      },
    };
    const result = await trainHead(train.features, train.labels, {
      seed: config.seed,
      epochs: EPOCHS,
      learningRate: config.learningRate,
      batchSize: 8,
      hiddenUnits: 4,
      classWeights: "balanced",
      validation: { features: validation.features, labels: validation.labels },
      callbacks: [tensorboard, recorder],
    });
    result.model.dispose();
    // The exported metadata.json the model card is made from (fields as exportTriageModel writes).
    fs.mkdirSync(config.paths.modelDir, { recursive: true });
    fs.writeFileSync(
      path.join(config.paths.modelDir, "metadata.json"),
      JSON.stringify(
        {
          formatVersion: 1,
          labels: ["benign", "malignant"],
          inputSizePx: 224,
          thresholdProb: 0.37,
          backboneName: "mobilenet_v2",
          validationMetrics: { rocAuc: 0.81 },
          notes: { fineTuned: false },
        },
        null,
        2,
      ),
    );
    writeModelCardToTensorBoard(config, { flushIntervalMs: 0 });
  });

  it("fills all seven dashboards: scalars, histograms, images, text, hparams, PR curves, graph", () => {
    const logs = readLogDir(config.paths.logDir);
    expect(logs.problems).toEqual([]);
    expect(logs.runs.map((r) => r.name)).toEqual([".", "train", "validation"]);
    const plugins = new Set(logs.runs.flatMap((r) => Object.keys(r.tagsByPlugin)));
    for (const plugin of ["scalars", "histograms", "images", "text", "hparams", "pr_curves", "graph_keras_model"]) {
      expect(plugins.has(plugin), plugin).toBe(true);
    }
  });

  it("scalars, histograms, graph and hparams as before", () => {
    const logs = readLogDir(config.paths.logDir);
    const [session, train, val] = logs.runs;
    expect(train.scalars.epoch_loss.points.map((p) => p.step)).toEqual([0, 1, 2]);
    expect(val.scalars.epoch_auc.points.length).toBe(EPOCHS);
    expect(train.histograms["head_hidden/kernel"].points.length).toBe(EPOCHS);
    const graph = train.graphs.keras.points[0].graphs[0];
    expect(JSON.stringify(JSON.parse(graph.kerasModelJson!))).toContain("head_hidden");
    expect(session.hparams["_hparams_/session_start_info"].json.hparams).toEqual({
      backbone: config.backboneName,
      learning_rate: 0.01,
      epochs: EPOCHS,
      seed: 5,
    });
    expect(session.hparams["_hparams_/session_end_info"]).toBeDefined();
  });

  it("images: one PNG grid per class at step 0, of the declared size, label in tag and ids in description", async () => {
    const train = readLogDir(config.paths.logDir).runs.find((r) => r.name === "train")!;
    expect(Object.keys(train.images).sort()).toEqual(["train/samples/benign", "train/samples/malignant"]);
    for (const label of ["benign", "malignant"]) {
      const series = train.images[`train/samples/${label}`];
      expect(series.points.map((p) => p.step)).toEqual([0]);
      const [step] = series.points;
      expect(step.encodedImages.length).toBe(1);
      const decoded = await sharp(step.encodedImages[0]).metadata();
      expect(decoded.format).toBe("png");
      expect([decoded.width, decoded.height]).toEqual([step.declaredWidthPx, step.declaredHeightPx]);
      // 4 tiles of 112 px in one row, with an 18 px caption strip.
      expect([step.declaredWidthPx, step.declaredHeightPx]).toEqual([4 * 112, 112 + 18]);
      const expectedIds = trainRecords
        .filter((r) => r.label === label)
        .slice(0, 4)
        .map((r) => r.imageId);
      expect(series.description).toContain(`**${label}**`);
      for (const id of expectedIds) expect(series.description).toContain(`\`${id}\` (${label})`);
      const others = trainRecords.filter((r) => r.label !== label).map((r) => `\`${r.imageId}\``);
      for (const other of others) expect(series.description).not.toContain(other);
    }
  });

  it("text: the run configuration at train begin and the model card from metadata.json", () => {
    const train = readLogDir(config.paths.logDir).runs.find((r) => r.name === "train")!;
    expect(Object.keys(train.text).sort()).toEqual(["config", "model_card"]);
    const configText = train.text.config.points[0].values[0];
    const json = configText.slice(configText.indexOf("```json\n") + 8, configText.lastIndexOf("\n```"));
    const parsed = JSON.parse(json);
    expect([parsed.runName, parsed.epochs, parsed.learningRate, parsed.seed]).toEqual(["tb-test", EPOCHS, 0.01, 5]);
    const card = train.text.model_card.points[0].values[0];
    expect(card).toMatch(/^# Model card: /);
    expect(card).toContain("| thresholdProb | 0.37 |");
    expect(card).toContain("| rocAuc | 0.81 |");
    expect(card).toContain('"backboneName": "mobilenet_v2"');
  });

  it("PR curves: one per epoch in the validation run, equal to counts computed from the head's predictions", () => {
    const val = readLogDir(config.paths.logDir).runs.find((r) => r.name === "validation")!;
    const series = val.prCurves["pr_curve/malignant"];
    expect(series.points.map((p) => p.step)).toEqual([0, 1, 2]);
    expect(predictionsPerEpoch.length).toBe(EPOCHS);
    const positives = validation.labels.filter((y) => y === 1).length;
    series.points.forEach((point, epoch) => {
      const expected = countAtThresholds(validation.labels, predictionsPerEpoch[epoch], THRESHOLDS);
      expect(point.truePositives).toEqual(expected.tp);
      expect(point.falsePositives).toEqual(expected.fp);
      expect(point.trueNegatives).toEqual(expected.tn);
      expect(point.falseNegatives).toEqual(expected.fn);
      expect(point.truePositives[0] + point.falseNegatives[0]).toBe(positives);
      expect(point.precision).toEqual(
        expected.tp.map((tp, t) => Math.fround(tp / Math.max(1e-7, tp + expected.fp[t]))),
      );
      expect(point.recall).toEqual(expected.tp.map((tp) => Math.fround(tp / positives)));
    });
    // The curves change as the head trains (the callback predicts at each epoch, not once).
    expect(predictionsPerEpoch[0]).not.toEqual(predictionsPerEpoch[EPOCHS - 1]);
  });
});
