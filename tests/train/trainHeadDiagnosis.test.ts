import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import * as tf from "@tensorflow/tfjs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { selectBackend } from "../../lib/index.js";
import {
  buildTriageModel,
  exportTriageModel,
  loadTriageModel,
  makeTriageMetadata,
} from "../../lib/export/triageModel.js";
import { loadLayersModelFromDir, saveLayersModelToDir } from "../../lib/models/modelFiles.js";
import type { Backbone } from "../../lib/models/types.js";
import { CheckpointError } from "../../lib/train/checkpoints.js";
import {
  DiagnosisTargetError,
  encodeDiagnosisTargets,
  predictDiagnosisProbabilities,
} from "../../lib/train/diagnosisHead.js";
import { DIAGNOSIS_HEAD_LAYERS } from "../../lib/models/headLayers.js";
import { computeRocAucExact } from "../../lib/util/rocAuc.js";
import { predictHeadProbabilities } from "../../lib/train/predictBatches.js";
import { trainHead } from "../../lib/train/trainHead.js";
import { TrainHeadError } from "../../lib/train/binaryLabels.js";
import { createRandom } from "../../lib/util/random.js";

const DIM = 4;
// Three diagnosis clusters, two of them malignant: bcc around +2 on axis 0, mel around +2 on
// axis 1, nv around -2 on both. A softmax separates them; a single logistic "malignant" direction
// has to cover two clusters at once.
const CENTRES: Record<string, number[]> = { bcc: [2, -1, 0, 0], mel: [-1, 2, 0, 0], nv: [-2, -2, 0, 0] };
const MALIGNANT = new Set(["bcc", "mel"]);

function makeClusters(counts: Record<string, number>, seed: number, spread = 0.6) {
  const rand = createRandom(seed);
  const normal = () => Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
  const diagnoses: string[] = [];
  for (const [dx, count] of Object.entries(counts)) for (let i = 0; i < count; i++) diagnoses.push(dx);
  // Interleave deterministically so batches mix the classes.
  const order = diagnoses.map((_, i) => i).sort((a, b) => ((a * 7919) % 101) - ((b * 7919) % 101));
  const dx = order.map((i) => diagnoses[i]);
  const features = new Float32Array(dx.length * DIM);
  dx.forEach((d, i) => CENTRES[d].forEach((c, j) => (features[i * DIM + j] = c + spread * normal())));
  const labels = dx.map((d) => (MALIGNANT.has(d) ? 1 : 0));
  return { features, labels, diagnoses: dx };
}

/** The head by hand from its layers' weights: relu(x·W1 + b1) · W2 + b2 → softmax → Σ malignant columns. */
function manualProbabilities(model: tf.LayersModel, features: Float32Array, classes: string[]) {
  const [w1, b1] = model
    .getLayer("head_hidden")
    .getWeights()
    .map((t) => Array.from(t.dataSync()));
  const [w2, b2] = model
    .getLayer(DIAGNOSIS_HEAD_LAYERS.logits)
    .getWeights()
    .map((t) => Array.from(t.dataSync()));
  const hidden = b1.length;
  const K = b2.length;
  const rows = features.length / DIM;
  const malignant: number[] = [];
  const softmaxRows: number[][] = [];
  for (let r = 0; r < rows; r++) {
    const h = b1.map((b, u) =>
      Math.max(
        0,
        b +
          Array.from({ length: DIM }, (_, j) => features[r * DIM + j] * w1[j * hidden + u]).reduce((a, v) => a + v, 0),
      ),
    );
    const logits = b2.map((b, k) => b + h.reduce((a, v, u) => a + v * w2[u * K + k], 0));
    const top = Math.max(...logits);
    const e = logits.map((l) => Math.exp(l - top));
    const sum = e.reduce((a, v) => a + v, 0);
    const p = e.map((v) => v / sum);
    softmaxRows.push(p);
    malignant.push(p.reduce((a, v, k) => a + (MALIGNANT.has(classes[k]) ? v : 0), 0));
  }
  return { malignant, softmaxRows };
}

describe("encodeDiagnosisTargets", () => {
  it("sorts the classes present, indexes rows and marks malignant columns", () => {
    const t = encodeDiagnosisTargets([" NV", "mel", "bcc", "nv"], [0, 1, 1, 0]);
    expect(t.classes).toEqual(["bcc", "mel", "nv"]);
    expect(Array.from(t.classIndex)).toEqual([2, 1, 0, 2]);
    expect(t.counts).toEqual([1, 1, 2]);
    expect(Array.from(t.malignantMask)).toEqual([1, 1, 0]);
    expect(t.malignantDiagnoses).toEqual(["akiec", "bcc", "mel", "scc"]);
  });

  it("names the row, diagnosis and label that disagree, and missing codes", () => {
    expect(() => encodeDiagnosisTargets(["nv", "bcc"], [0, 0])).toThrow(DiagnosisTargetError);
    expect(() => encodeDiagnosisTargets(["nv", "bcc"], [0, 0])).toThrow(
      /row 1: diagnosis "bcc" is malignant \(malignantDiagnoses: akiec, bcc, mel, scc\) but its label is benign/,
    );
    expect(() => encodeDiagnosisTargets(["nv", "nv", "mel"], [0, 1, 1])).toThrow(
      /row 1: diagnosis "nv" is benign .* but its label is malignant/,
    );
    expect(() => encodeDiagnosisTargets(["nv", undefined, "mel"], [0, 0, 1])).toThrow(
      /diagnoses\[1\]: received undefined, expected a diagnosis code/,
    );
    expect(() => encodeDiagnosisTargets(["nv", "  ", "mel"], [0, 0, 1])).toThrow(/diagnoses\[1\]: received " {2}"/);
    expect(() => encodeDiagnosisTargets(["nv", "Unknown"], [0, 0])).toThrow(/diagnoses\[1\]: received "Unknown"/);
    expect(() => encodeDiagnosisTargets(["nv"], [0, 1])).toThrow(
      /received 1 codes, expected one per training row \(2\)/,
    );
    // Another label policy (melanoma vs rest): bcc is benign there.
    const t = encodeDiagnosisTargets(["bcc", "mel", "nv"], [0, 1, 0], ["mel"]);
    expect(Array.from(t.malignantMask)).toEqual([0, 1, 0]);
  });
});

describe("trainHead with diagnoses (softmax over diagnoses, P(malignant) = Σ malignant columns)", () => {
  let tmp: string;
  beforeAll(async () => {
    await selectBackend();
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), "ml-dx-"));
  });
  afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

  const train = makeClusters({ bcc: 40, mel: 50, nv: 110 }, 1);
  const val = makeClusters({ bcc: 20, mel: 25, nv: 55 }, 2);
  const options = {
    seed: 3,
    hiddenUnits: 6,
    dropoutRate: 0.2,
    l2: 1e-4,
    epochs: 6,
    batchSize: 16,
    learningRate: 0.03,
    classWeights: "balanced" as const,
    diagnoses: train.diagnoses,
    validation: { features: val.features, labels: val.labels },
  };

  it("outputs [n, 1] = the sum of the softmax's malignant columns (checked by hand), learns the clusters, leaks no tensors", async () => {
    const before = tf.memory().numTensors;
    const tensorsAtEpochEnd: number[] = [];
    const r = await trainHead(train.features, train.labels, {
      ...options,
      onEpochEnd: () => void tensorsAtEpochEnd.push(tf.memory().numTensors),
    });
    expect(new Set(tensorsAtEpochEnd.slice(1)).size).toBe(1);
    expect(r.diagnosisClasses).toEqual(["bcc", "mel", "nv"]);
    expect(r.malignantClasses).toEqual(["bcc", "mel"]);
    expect(r.model.outputs[0].shape).toEqual([null, 1]);
    expect(r.model.layers.map((l) => l.name)).toEqual([
      "head_input",
      "head_hidden",
      "head_dropout",
      DIAGNOSIS_HEAD_LAYERS.logits,
      DIAGNOSIS_HEAD_LAYERS.softmax,
      DIAGNOSIS_HEAD_LAYERS.malignantSum,
    ]);

    const probs = predictHeadProbabilities(r.model, val.features, DIM);
    const manual = manualProbabilities(r.model, val.features, r.diagnosisClasses!);
    probs.forEach((p, i) => expect(Math.abs(p - manual.malignant[i])).toBeLessThan(1e-5));
    // The per-diagnosis probabilities are the softmax computed by hand, and sum to one.
    const dx = predictDiagnosisProbabilities(r.model, val.features, DIM, 7);
    expect(dx.classCount).toBe(3);
    manual.softmaxRows.forEach((row, i) =>
      row.forEach((p, k) => expect(Math.abs(dx.probabilities[i * 3 + k] - p)).toBeLessThan(1e-5)),
    );

    // The validation AUC each epoch is that of the summed probability; the clusters are well apart.
    expect(computeRocAucExact(val.labels, probs)).toBeCloseTo(r.history.at(-1)!.valAuc!, 10);
    expect(r.history.at(-1)!.valAuc!).toBeGreaterThan(0.97);
    const argmaxCorrect = val.diagnoses.filter((d, i) => {
      const row = [0, 1, 2].map((k) => dx.probabilities[i * 3 + k]);
      return r.diagnosisClasses![row.indexOf(Math.max(...row))] === d;
    }).length;
    expect(argmaxCorrect / val.diagnoses.length).toBeGreaterThan(0.9);
    expect(r.history[0].trainLoss).toBeGreaterThan(r.history.at(-1)!.trainLoss);

    // The sum layer is frozen: not trainable, kernel still the 0/1 indicator after training.
    const sum = r.model.getLayer(DIAGNOSIS_HEAD_LAYERS.malignantSum);
    expect(sum.trainable).toBe(false);
    expect(Array.from(sum.getWeights()[0].dataSync())).toEqual([1, 1, 0]);
    expect(sum.getWeights()).toHaveLength(1); // no bias
    expect(
      r.model.trainableWeights.map((w) => w.name).some((n) => n.includes(DIAGNOSIS_HEAD_LAYERS.malignantSum)),
    ).toBe(false);

    // Same seed → same result.
    const again = await trainHead(train.features, train.labels, options);
    expect(again.history.map((h) => h.trainLoss)).toEqual(r.history.map((h) => h.trainLoss));
    again.model.dispose();
    r.model.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  it("starts from the diagnosis frequencies: zero features give softmax n_k / n and P(malignant) = malignant rate", async () => {
    const diagnoses = ["bcc", "mel", "mel", "nv", "nv", "nv", "nv", "nv"];
    const labels = diagnoses.map((d) => (MALIGNANT.has(d) ? 1 : 0));
    const r = await trainHead(new Float32Array(8 * 3), labels, {
      seed: 1,
      hiddenUnits: 0,
      epochs: 1,
      learningRate: 1e-9,
      l2: 0,
      diagnoses,
    });
    const dx = predictDiagnosisProbabilities(r.model, new Float32Array(3), 3);
    [1 / 8, 2 / 8, 5 / 8].forEach((p, k) => expect(dx.probabilities[k]).toBeCloseTo(p, 6));
    expect(predictHeadProbabilities(r.model, new Float32Array(3), 3)[0]).toBeCloseTo(3 / 8, 6);
    expect(r.initialBias).toBeCloseTo(Math.log(3 / 5), 12);
    r.model.dispose();
  });

  it("weighs each diagnosis n / (K·n_k) when balanced (loss of an untrained head checks it by hand)", async () => {
    // Zero features and no learning: every row's loss is −log(n_k / n) of its class. Balanced
    // weights n/(K n_k) make the mean loss (1/K) Σ_k −log(n_k/n); unweighted it is Σ_k (n_k/n)(−log(n_k/n)).
    const diagnoses = ["bcc", "mel", "mel", "nv", "nv", "nv", "nv", "nv"];
    const labels = diagnoses.map((d) => (MALIGNANT.has(d) ? 1 : 0));
    const common = { seed: 1, hiddenUnits: 0, epochs: 1, batchSize: 8, learningRate: 1e-9, l2: 0, diagnoses };
    const freq = [1 / 8, 2 / 8, 5 / 8];
    const balanced = await trainHead(new Float32Array(8 * 2), labels, { ...common, classWeights: "balanced" });
    expect(balanced.history[0].trainLoss).toBeCloseTo(freq.reduce((a, f) => a - Math.log(f), 0) / 3, 5);
    const plain = await trainHead(new Float32Array(8 * 2), labels, common);
    expect(plain.history[0].trainLoss).toBeCloseTo(
      freq.reduce((a, f) => a - f * Math.log(f), 0),
      5,
    );
    // [benign, malignant] weights apply by label: malignant rows (bcc, mel) ×3.
    const byLabel = await trainHead(new Float32Array(8 * 2), labels, { ...common, classWeights: [1, 3] });
    expect(byLabel.history[0].trainLoss).toBeCloseTo(
      (3 * (-Math.log(1 / 8) - 2 * Math.log(2 / 8)) - 5 * Math.log(5 / 8)) / 8,
      5,
    );
    for (const r of [balanced, plain, byLabel]) r.model.dispose();
  });

  it("rejects labels that contradict the diagnoses, missing codes and malignantDiagnoses alone", async () => {
    const bad = train.labels.slice();
    const row = train.diagnoses.indexOf("mel");
    bad[row] = 0;
    await expect(trainHead(train.features, bad, options)).rejects.toThrow(DiagnosisTargetError);
    await expect(trainHead(train.features, bad, options)).rejects.toThrow(
      new RegExp(`row ${row}: diagnosis "mel" is malignant .* but its label is benign`),
    );
    const missing: (string | undefined)[] = train.diagnoses.slice();
    missing[5] = undefined;
    await expect(trainHead(train.features, train.labels, { ...options, diagnoses: missing })).rejects.toThrow(
      /diagnoses\[5\]: received undefined/,
    );
    await expect(trainHead(train.features, train.labels, { seed: 1, malignantDiagnoses: ["mel"] })).rejects.toThrow(
      TrainHeadError,
    );
    // Under "melanoma vs rest" bcc rows are benign: consistent with malignantDiagnoses ["mel"].
    const melOnly = train.diagnoses.map((d) => (d === "mel" ? 1 : 0));
    const r = await trainHead(train.features, melOnly, {
      ...options,
      epochs: 1,
      validation: undefined,
      malignantDiagnoses: ["mel"],
    });
    expect(r.malignantClasses).toEqual(["mel"]);
    expect(Array.from(r.model.getLayer(DIAGNOSIS_HEAD_LAYERS.malignantSum).getWeights()[0].dataSync())).toEqual([
      0, 1, 0,
    ]);
    r.model.dispose();
  });

  it("checkpoints and resumes to identical weights; refuses to resume with another target or other diagnoses", async () => {
    const resumeOptions = { ...options, restoreBestWeights: true };
    const full = await trainHead(train.features, train.labels, resumeOptions);
    const dir = path.join(tmp, "ckpt");
    const half = await trainHead(train.features, train.labels, { ...resumeOptions, epochs: 3, checkpointDir: dir });
    const resumed = await trainHead(train.features, train.labels, {
      ...resumeOptions,
      checkpointDir: dir,
      resume: true,
    });
    expect(resumed.resumedFromEpoch).toBe(3);
    expect(resumed.history.map((h) => [h.epoch, h.trainLoss, h.valAuc])).toEqual(
      full.history.map((h) => [h.epoch, h.trainLoss, h.valAuc]),
    );
    expect(resumed.keptEpoch).toBe(full.keptEpoch);
    expect(resumed.model.getWeights().map((t) => Array.from(t.dataSync()))).toEqual(
      full.model.getWeights().map((t) => Array.from(t.dataSync())),
    );
    expect(Array.from(resumed.model.getLayer(DIAGNOSIS_HEAD_LAYERS.malignantSum).getWeights()[0].dataSync())).toEqual([
      1, 1, 0,
    ]);
    // A binary head must not continue a diagnosis checkpoint, nor one with other diagnoses.
    const { diagnoses: _unused, ...binary } = resumeOptions;
    await expect(
      trainHead(train.features, train.labels, { ...binary, checkpointDir: dir, resume: true }),
    ).rejects.toThrow(CheckpointError);
    await expect(
      trainHead(train.features, train.labels, { ...binary, checkpointDir: dir, resume: true }),
    ).rejects.toThrow(/checkpoint was written with target "diagnosis", this run has unset/);
    const relabelled = train.diagnoses.map((d) => (d === "bcc" ? "akiec" : d));
    await expect(
      trainHead(train.features, train.labels, {
        ...resumeOptions,
        diagnoses: relabelled,
        checkpointDir: dir,
        resume: true,
      }),
    ).rejects.toThrow(
      /checkpoint was written with diagnosisClasses \["bcc","mel","nv"\], this run has \["akiec","mel","nv"\]/,
    );
    for (const r of [full, half, resumed]) r.model.dispose();
  });

  it("round-trips through model files and a triage model on a tiny backbone with the same probabilities", async () => {
    const r = await trainHead(train.features, train.labels, { ...options, epochs: 2 });
    const probs = predictHeadProbabilities(r.model, val.features, DIM);
    const dir = path.join(tmp, "head");
    await saveLayersModelToDir(r.model, dir);
    const loaded = await loadLayersModelFromDir(dir);
    expect(loaded.getLayer(DIAGNOSIS_HEAD_LAYERS.malignantSum).trainable).toBe(false);
    predictHeadProbabilities(loaded, val.features, DIM).forEach((p, i) => expect(p).toBeCloseTo(probs[i], 6));
    loaded.dispose();

    // Backbone: [n, 2, 2, 3] → 1×1 conv to 4 channels → global average pool = 4 features.
    const image = tf.input({ shape: [2, 2, 3] });
    const conv = tf.layers.conv2d({
      filters: DIM,
      kernelSize: 1,
      kernelInitializer: tf.initializers.glorotUniform({ seed: 9 }),
      name: "tiny_conv",
    });
    const pooled = tf.layers
      .globalAveragePooling2d({ name: "tiny_pool" })
      .apply(conv.apply(image)) as tf.SymbolicTensor;
    const backbone: Backbone = {
      name: "tiny",
      inputSizePx: 2,
      featureLayerName: "tiny_conv",
      featureDim: DIM,
      preprocessing: { kind: "scale", scale: 1 / 255, offset: 0 },
      model: tf.model({ inputs: image, outputs: pooled }),
      weightsId: "tiny-test",
    };
    const triage = buildTriageModel(backbone, r.model);
    const pixels = tf.randomUniform([5, 2, 2, 3], -3, 3, "float32", 4);
    const feats = (backbone.model.predict(pixels) as tf.Tensor).dataSync() as Float32Array;
    const viaHead = predictHeadProbabilities(r.model, feats, DIM);
    const modelDir = path.join(tmp, "triage");
    await exportTriageModel(
      modelDir,
      triage,
      makeTriageMetadata(backbone, { thresholdProb: 0.5, notes: { target: "diagnosis" } }),
    );
    const reloaded = await loadTriageModel(modelDir);
    expect(reloaded.metadata.notes).toMatchObject({ target: "diagnosis" });
    const out = reloaded.model.predict(pixels) as tf.Tensor;
    expect(out.shape).toEqual([5, 1]);
    Array.from(out.dataSync()).forEach((p, i) => expect(p).toBeCloseTo(viaHead[i], 5));
    tf.dispose([pixels, out]);
    reloaded.model.dispose();
    triage.dispose(); // shares (and frees) the head's and backbone's weights
  });
});
