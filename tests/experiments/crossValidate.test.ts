import * as tf from "@tensorflow/tfjs";
import { describe, expect, it } from "vitest";
import { computeRocAuc, createRandom, predictHeadProbabilities, selectBackend } from "../../lib/index.js";
import {
  crossValidateHead,
  CrossValidationError,
  type FoldRows,
  type HeadConfig,
} from "../../lib/experiments/crossValidate.js";
import { trainHead } from "../../lib/train/trainHead.js";

// 60 rows, 8 features: label 1 shifts feature 0, so a head learns it; sources alternate.
function makeRows() {
  const rand = createRandom(5);
  const labels = Array.from({ length: 60 }, (_, i) => (i % 3 === 0 ? 1 : 0));
  const features = new Float32Array(60 * 8).map(
    (_, k) => rand() + (k % 8 === 0 && labels[Math.floor(k / 8)] === 1 ? 1.5 : 0),
  );
  const sources = labels.map((_, i) => (i % 2 === 0 ? "even" : "odd"));
  return { features, featureDim: 8, labels, sources };
}
const folds: FoldRows[] = [
  {
    name: "a",
    trainRows: Array.from({ length: 30 }, (_, i) => i + 30),
    validationRows: Array.from({ length: 30 }, (_, i) => i),
  },
  {
    name: "b",
    trainRows: Array.from({ length: 30 }, (_, i) => i),
    validationRows: Array.from({ length: 30 }, (_, i) => i + 30),
  },
];
const head: HeadConfig = { hiddenUnits: 0, dropoutRate: 0, l2: 0, epochs: 15, batchSize: 16, learningRate: 0.05 };

describe("crossValidateHead", () => {
  it("scores each fold, fills out-of-fold probabilities, and leaks no tensors", async () => {
    await selectBackend();
    const rows = makeRows();
    const before = tf.memory().numTensors;
    const seen: number[] = [];
    const cv = await crossValidateHead(rows, folds, {
      head,
      seed: 1,
      scoreFold: async (fold, _i, model) => {
        const valFeatures = new Float32Array(
          fold.validationRows.flatMap((r) => Array.from(rows.features.subarray(r * 8, r * 8 + 8))),
        );
        const probs = predictHeadProbabilities(model, valFeatures, 8);
        seen.push(probs.length);
        return probs;
      },
    });
    expect(tf.memory().numTensors).toBe(before);
    expect(seen).toEqual([30, 30]);
    expect(cv.outOfFoldProbs.every((p) => p >= 0 && p <= 1)).toBe(true);
    for (const [i, fold] of folds.entries()) {
      const y = fold.validationRows.map((r) => rows.labels[r]);
      const p = fold.validationRows.map((r) => cv.outOfFoldProbs[r]);
      expect(cv.folds[i].rocAuc).toBeCloseTo(computeRocAuc(y, p), 12);
      expect(cv.folds[i].rocAuc).toBeGreaterThan(0.8); // feature 0 separates the classes
      expect(cv.folds[i].validationPositives).toBe(10);
    }
    expect(cv.spread.rocAuc.mean).toBeCloseTo((cv.folds[0].rocAuc + cv.folds[1].rocAuc) / 2, 12);
    // The default path (head on the same features) gives the same probabilities as scoreFold did.
    const plain = await crossValidateHead(rows, folds, { head, seed: 1 });
    expect(Array.from(plain.outOfFoldProbs)).toEqual(Array.from(cv.outOfFoldProbs));
    // Averaging over an identical extra view leaves the probabilities unchanged (up to float rounding).
    const tta = await crossValidateHead({ ...rows, extraViews: [rows.features.slice()] }, folds, { head, seed: 1 });
    tta.outOfFoldProbs.forEach((p, i) => expect(p).toBeCloseTo(plain.outOfFoldProbs[i], 6));
  });

  it("rejects rows outside the matrix and mis-sized views", async () => {
    const rows = makeRows();
    await expect(
      crossValidateHead(rows, [{ name: "x", trainRows: [0, 1], validationRows: [60] }], { head, seed: 1 }),
    ).rejects.toThrow(/fold x: row 60 is outside 0..59/);
    await expect(
      crossValidateHead({ ...rows, extraViews: [new Float32Array(8)] }, folds, { head, seed: 1 }),
    ).rejects.toThrow(CrossValidationError);
  });
});

// 60 rows, 3 diagnoses: bcc shifts feature 1, mel feature 2 (both malignant), nv neither.
function makeDiagnosisRows() {
  const rand = createRandom(8);
  const diagnoses = Array.from({ length: 60 }, (_, i) =>
    i % 3 === 0 ? "nv" : i % 3 === 1 ? (i % 2 === 0 ? "bcc" : "mel") : "nv",
  );
  const labels = diagnoses.map((d) => (d === "nv" ? 0 : 1));
  const features = new Float32Array(60 * 8).map((_, k) => {
    const d = diagnoses[Math.floor(k / 8)];
    return rand() + ((k % 8 === 1 && d === "bcc") || (k % 8 === 2 && d === "mel") ? 1.5 : 0);
  });
  return { features, featureDim: 8, labels, diagnoses: diagnoses as (string | undefined)[] };
}

describe('crossValidateHead with head target "diagnosis"', () => {
  it("trains each fold on the train rows' diagnoses: probabilities equal trainHead's with those diagnoses", async () => {
    await selectBackend();
    const rows = makeDiagnosisRows();
    const dxHead: HeadConfig = { ...head, epochs: 30, target: "diagnosis" };
    const before = tf.memory().numTensors;
    const cv = await crossValidateHead(rows, folds, { head: dxHead, seed: 4 });
    expect(tf.memory().numTensors).toBe(before);
    for (const [i, fold] of folds.entries()) {
      const train = new Float32Array(
        fold.trainRows.flatMap((r) => Array.from(rows.features.subarray(r * 8, r * 8 + 8))),
      );
      const valFeatures = new Float32Array(
        fold.validationRows.flatMap((r) => Array.from(rows.features.subarray(r * 8, r * 8 + 8))),
      );
      const direct = await trainHead(
        train,
        fold.trainRows.map((r) => rows.labels[r]),
        {
          seed: 4 + i,
          hiddenUnits: 0,
          dropoutRate: 0,
          l2: 0,
          epochs: 30,
          batchSize: 16,
          learningRate: 0.05,
          classWeights: "balanced",
          diagnoses: fold.trainRows.map((r) => rows.diagnoses[r]),
          validation: { features: valFeatures, labels: fold.validationRows.map((r) => rows.labels[r]) },
        },
      );
      expect(direct.diagnosisClasses).toEqual(["bcc", "mel", "nv"]);
      const probs = predictHeadProbabilities(direct.model, valFeatures, 8);
      direct.model.dispose();
      expect(Array.from(fold.validationRows, (r) => cv.outOfFoldProbs[r])).toEqual(Array.from(probs));
      expect(cv.folds[i].rocAuc).toBeGreaterThan(0.8);
    }
    // The binary head on the same rows gives other probabilities (it is another model).
    const binary = await crossValidateHead(rows, folds, { head: { ...dxHead, target: "malignant" }, seed: 4 });
    expect(Array.from(binary.outOfFoldProbs)).not.toEqual(Array.from(cv.outOfFoldProbs));
  });

  it("names missing diagnoses and unknown targets", async () => {
    const rows = makeDiagnosisRows();
    const dxHead: HeadConfig = { ...head, epochs: 1, target: "diagnosis" };
    await expect(
      crossValidateHead({ ...rows, diagnoses: undefined }, folds, { head: dxHead, seed: 1 }),
    ).rejects.toThrow(/diagnoses: missing; head target "diagnosis" needs one diagnosis code per row \(60 rows\)/);
    const holes = rows.diagnoses.slice();
    holes[33] = undefined;
    holes[40] = "";
    await expect(crossValidateHead({ ...rows, diagnoses: holes }, folds, { head: dxHead, seed: 1 })).rejects.toThrow(
      /diagnoses: 2 training rows have none \(e.g. row 33: undefined\)/,
    );
    await expect(
      crossValidateHead(rows, folds, { head: { ...dxHead, target: "dx" as never }, seed: 1 }),
    ).rejects.toThrow(/unknown head target "dx"/);
  });

  it("with validateEachEpoch false gives the same scores without scoring validation every epoch", async () => {
    await selectBackend();
    const rows = makeRows();
    const every = await crossValidateHead(rows, folds, { head, seed: 2 });
    const once = await crossValidateHead(rows, folds, { head, seed: 2, validateEachEpoch: false });
    expect(every.folds[0].history.at(-1)!.valAuc).toBeGreaterThan(0);
    for (const f of once.folds)
      expect(f.history.every((m) => m.valLoss === undefined && m.valAuc === undefined)).toBe(true);
    expect(Array.from(once.outOfFoldProbs)).toEqual(Array.from(every.outOfFoldProbs));
    expect(once.folds.map((f) => f.rocAuc)).toEqual(every.folds.map((f) => f.rocAuc));
  });
});

describe("crossValidateHead rowWeights", () => {
  it("weights each fold's training rows (clinic B weighted 0 leaves clinic A's rule) and checks their count", async () => {
    await selectBackend();
    // Clinic A: malignant x0 > 0; clinic B: malignant x0 < 0. Validation = 8 clinic-A rows.
    const labels = Array.from({ length: 48 }, (_, i) => i % 2);
    const clinic = labels.map((_, i) => (i < 24 ? "A" : "B"));
    const features = Float32Array.from(
      labels.flatMap((y, i) => [((y === 1) === (clinic[i] === "A") ? 1 : -1) * (0.5 + (i % 5) / 5)]),
    );
    const fold: FoldRows = {
      name: "a-held",
      trainRows: labels.map((_, i) => i).filter((i) => i >= 8),
      validationRows: [0, 1, 2, 3, 4, 5, 6, 7],
    };
    const head: HeadConfig = { hiddenUnits: 0, dropoutRate: 0, l2: 0, epochs: 40, batchSize: 8, learningRate: 0.05 };
    const rows = { features, featureDim: 1, labels };
    const weighted = await crossValidateHead({ ...rows, rowWeights: clinic.map((c) => (c === "A" ? 1 : 0)) }, [fold], {
      head,
      seed: 2,
    });
    expect(weighted.folds[0].rocAuc).toBe(1);
    // Unweighted, B's 24 rows outweigh A's 16 training rows: the rule flips on A's validation rows.
    const plain = await crossValidateHead(rows, [fold], { head, seed: 2 });
    expect(plain.folds[0].rocAuc).toBe(0);
    await expect(crossValidateHead({ ...rows, rowWeights: [1] }, [fold], { head, seed: 2 })).rejects.toThrow(
      /rowWeights: received 1 weights, expected one per row \(48\)/,
    );
  });
});
