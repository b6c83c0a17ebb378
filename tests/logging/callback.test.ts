import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import * as tf from "@tensorflow/tfjs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { selectBackend } from "../../lib/backend/selectBackend.js";
import { readEventFile } from "../../lib/logging/eventFile.js";
import { readLogDir } from "../../lib/logging/readLogDir.js";
import { createTensorBoardCallback, TensorBoardCallbackError } from "../../lib/logging/tensorBoardCallback.js";
import { createRandom } from "../../lib/util/random.js";

const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), "melanoma-lab-tbcallback-"));
afterAll(() => fs.rmSync(tmpRoot, { recursive: true, force: true }));

/** 32 training and 12 validation rows of 3 features; label = x0 + x1 > 1, seeded. */
function makeData(seed: number, rows: number): { x: number[][]; y: number[] } {
  const rand = createRandom(seed);
  const x = Array.from({ length: rows }, () => [rand(), rand(), rand()]);
  return { x, y: x.map((r) => (r[0] + r[1] > 1 ? 1 : 0)) };
}

function buildModel(): tf.Sequential {
  const model = tf.sequential();
  model.add(
    tf.layers.dense({
      units: 4,
      activation: "relu",
      inputShape: [3],
      kernelInitializer: tf.initializers.glorotUniform({ seed: 1 }),
    }),
  );
  model.add(
    tf.layers.dense({ units: 1, activation: "sigmoid", kernelInitializer: tf.initializers.glorotUniform({ seed: 2 }) }),
  );
  model.compile({ optimizer: tf.train.adam(0.01), loss: "binaryCrossentropy", metrics: ["acc"] });
  return model;
}

describe("createTensorBoardCallback with tfjs model.fit", () => {
  beforeAll(async () => {
    await selectBackend();
  });

  it("rejects unusable options with named errors", () => {
    expect(() => createTensorBoardCallback(path.join(tmpRoot, "bad"), { histogramFreq: -1 })).toThrow(
      TensorBoardCallbackError,
    );
    expect(() => createTensorBoardCallback(path.join(tmpRoot, "bad"), { updateFreq: 0 })).toThrow(/updateFreq 0/);
  });

  it("writes Keras' train/validation runs, batch scalars, histograms, graph, hparams and extra PR curves", async () => {
    const logdir = path.join(tmpRoot, "fit");
    const train = makeData(11, 32);
    const val = makeData(12, 12);
    const model = buildModel();
    const [xt, yt, xv, yv] = [
      tf.tensor2d(train.x),
      tf.tensor2d(train.y, [32, 1]),
      tf.tensor2d(val.x),
      tf.tensor2d(val.y, [12, 1]),
    ];
    // Adam creates its moment variables on the first fit: do that before counting tensors.
    await model.fit(xt, yt, { epochs: 1, batchSize: 8, verbose: 0 });
    const tensorsBefore = tf.memory().numTensors;

    const callback = createTensorBoardCallback(logdir, {
      histogramFreq: 1,
      updateFreq: "batch",
      hparams: { lr: 0.01, units: 4, optimizer: "adam" },
      onEpochEndWrite: async (epoch, writers) => {
        const probabilities = tf.tidy(() => (model.predict(xv) as tf.Tensor).dataSync());
        writers.validation.addPrCurve("pr/positive", val.y, Array.from(probabilities), epoch, 11);
      },
      writerOptions: { flushIntervalMs: 0 },
    });
    const history = await model.fit(xt, yt, {
      epochs: 3,
      batchSize: 8,
      shuffle: false,
      validationData: [xv, yv],
      callbacks: [callback],
      verbose: 0,
    });
    expect(tf.memory().numTensors).toBe(tensorsBefore);
    tf.dispose([xt, yt, xv, yv]);
    expect(callback.writers.train.isClosed).toBe(true);

    const contents = readLogDir(logdir);
    expect(contents.problems).toEqual([]);
    expect(contents.runs.map((r) => r.name)).toEqual([".", "train", "validation"]);
    const [session, trainRun, valRun] = contents.runs;

    // Keras convention: same tag in both runs, val_ prefix dropped in the validation run.
    const f32 = (xs: number[]) => xs.map(Math.fround);
    const points = (run: typeof trainRun, tag: string) => run.scalars[tag]?.points ?? [];
    expect(points(trainRun, "epoch_loss").map((p) => p.step)).toEqual([0, 1, 2]);
    expect(points(trainRun, "epoch_loss").map((p) => p.value)).toEqual(f32(history.history.loss as number[]));
    expect(points(trainRun, "epoch_acc").map((p) => p.value)).toEqual(f32(history.history.acc as number[]));
    expect(points(valRun, "epoch_loss").map((p) => p.value)).toEqual(f32(history.history.val_loss as number[]));
    expect(points(valRun, "epoch_acc").map((p) => p.value)).toEqual(f32(history.history.val_acc as number[]));
    expect(Object.keys(valRun.scalars).some((t) => t.includes("val_"))).toBe(false);
    expect(points(trainRun, "epoch_learning_rate").map((p) => p.value)).toEqual(f32([0.01, 0.01, 0.01]));
    // 32 rows / batch 8 = 4 batches per epoch, on one global step.
    expect(points(trainRun, "batch_loss").map((p) => p.step)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);

    // One histogram per weight per epoch; counts add up to the weight's size.
    const weightSizes = new Map(
      model.weights.map((w) => [w.originalName, w.shape.reduce<number>((a, b) => a * (b ?? 1), 1)]),
    );
    expect(Object.keys(trainRun.histograms).sort()).toEqual([...weightSizes.keys()].sort());
    for (const [tag, series] of Object.entries(trainRun.histograms)) {
      expect(series.points.map((p) => p.step)).toEqual([0, 1, 2]);
      for (const step of series.points) expect(step.totalCount).toBe(weightSizes.get(tag));
    }

    // Keras graph in the train run, as the graphs dashboard's "keras" tag.
    const kerasValues = trainRun.files
      .flatMap((f) => readEventFile(f).events)
      .flatMap((e) => e.summaryValues ?? [])
      .filter((v) => v.tag === "keras");
    expect(kerasValues).toHaveLength(1);
    expect(kerasValues[0].metadata?.pluginName).toBe("graph_keras_model");
    const modelJson = JSON.parse(new TextDecoder().decode(kerasValues[0].tensor!.strings![0]));
    // tfjs' Sequential.fit trains its inner functional Model, so the callback sees class "Model".
    expect(modelJson.class_name).toBe("Model");
    const layerNames = (modelJson.config.layers as { name: string }[]).map((l) => l.name);
    for (const layer of model.layers) expect(layerNames).toContain(layer.name);

    // hparams session in the logdir itself, so the dashboard sees train/ and validation/ as its metrics.
    expect(session.hparams["_hparams_/session_start_info"].json).toMatchObject({
      hparams: { lr: 0.01, units: 4, optimizer: "adam" },
      groupName: "fit",
    });
    expect(session.hparams["_hparams_/session_end_info"].json).toMatchObject({ status: "STATUS_SUCCESS" });

    // The extra summary hook: a PR curve in the validation run each epoch.
    expect(valRun.prCurves["pr/positive"].points.map((p) => p.step)).toEqual([0, 1, 2]);
    const last = valRun.prCurves["pr/positive"].points[2];
    expect(last.truePositives[0] + last.falseNegatives[0]).toBe(val.y.filter((y) => y === 1).length);
    model.dispose();
  });
});
