import { beforeAll, describe, expect, it } from "vitest";
import * as tf from "@tensorflow/tfjs";
import { selectBackend } from "../../lib/backend/selectBackend.js";
import { computeRocAuc } from "../../lib/evaluate/metrics.js";
import { predictHeadProbabilities } from "../../lib/train/predictBatches.js";
import { trainHead } from "../../lib/train/trainHead.js";
import { TrainHeadError } from "../../lib/train/binaryLabels.js";

// Two "clinics" with opposite rules on feature 0: in A malignant rows have x0 > 0, in B x0 < 0.
// Feature 1 is noise. Unweighted, the rules cancel; weighting B to 0 must leave A's rule.
function makeRows(): { features: Float32Array; labels: number[]; sources: string[] } {
  const labels: number[] = [];
  const sources: string[] = [];
  const values: number[] = [];
  for (let i = 0; i < 80; i++) {
    const label = i % 2;
    const source = i < 40 ? "A" : "B";
    const sign = (label === 1) === (source === "A") ? 1 : -1;
    labels.push(label);
    sources.push(source);
    values.push(sign * (0.5 + (i % 7) / 7), ((i * 37) % 11) / 11 - 0.5);
  }
  return { features: Float32Array.from(values), labels, sources };
}

describe("trainHead rowWeights", () => {
  beforeAll(async () => {
    await selectBackend();
  });
  const head = { seed: 5, hiddenUnits: 0, dropoutRate: 0, l2: 0, epochs: 40, batchSize: 16, learningRate: 0.05 };
  const testFeatures = Float32Array.from([1, 0, 0.7, 0.2, -1, 0, -0.6, -0.3]);
  const testLabels = [1, 1, 0, 0]; // A's rule

  it("multiplies each row's loss: weight 0 removes a clinic's rows from training", async () => {
    const rows = makeRows();
    const before = tf.memory().numTensors;
    const weighted = await trainHead(rows.features, rows.labels, {
      ...head,
      rowWeights: rows.sources.map((s) => (s === "A" ? 1 : 0)),
    });
    const plain = await trainHead(rows.features, rows.labels, head);
    const pWeighted = predictHeadProbabilities(weighted.model, testFeatures, 2);
    const pPlain = predictHeadProbabilities(plain.model, testFeatures, 2);
    weighted.model.dispose();
    plain.model.dispose();
    expect(tf.memory().numTensors).toBe(before);
    expect(computeRocAuc(testLabels, pWeighted)).toBe(1);
    expect(Math.min(pWeighted[0], pWeighted[1])).toBeGreaterThan(Math.max(pWeighted[2], pWeighted[3]));
    // Unweighted, the two clinics' rules cancel on feature 0: the head stays near-indifferent there.
    expect(Math.abs(pPlain[0] - pPlain[2])).toBeLessThan(Math.abs(pWeighted[0] - pWeighted[2]) / 3);
  });

  it("weights of 1 train exactly as no weights", async () => {
    const rows = makeRows();
    const ones = await trainHead(rows.features, rows.labels, {
      ...head,
      epochs: 3,
      rowWeights: rows.labels.map(() => 1),
    });
    const none = await trainHead(rows.features, rows.labels, { ...head, epochs: 3 });
    expect(Array.from(predictHeadProbabilities(ones.model, testFeatures, 2))).toEqual(
      Array.from(predictHeadProbabilities(none.model, testFeatures, 2)),
    );
    ones.model.dispose();
    none.model.dispose();
  });

  it("rejects weights that do not fit, naming what was received", async () => {
    const rows = makeRows();
    await expect(trainHead(rows.features, rows.labels, { ...head, rowWeights: [1, 2] })).rejects.toThrow(
      /rowWeights: received 2 weights, expected one per label \(80\)/,
    );
    await expect(
      trainHead(rows.features, rows.labels, { ...head, rowWeights: rows.labels.map((_, i) => (i === 3 ? -1 : 1)) }),
    ).rejects.toThrow(TrainHeadError);
  });
});
