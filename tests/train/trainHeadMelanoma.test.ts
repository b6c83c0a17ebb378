import * as tf from "@tensorflow/tfjs";
import { beforeAll, describe, expect, it } from "vitest";
import { selectBackend } from "../../lib/index.js";
import { encodeDiagnosisTargets, predictDiagnosisProbabilities } from "../../lib/train/diagnosisHead.js";
import { predictHeadProbabilities } from "../../lib/train/predictBatches.js";
import { trainHead } from "../../lib/train/trainHead.js";
import { createRandom } from "../../lib/util/random.js";

// A diagnosis head scored as P(melanoma): the softmax learns every diagnosis, only mel is summed.
// Three clusters (bcc, mel malignant; nv benign), as in trainHeadDiagnosis.test.ts.
const DIM = 4;
const CENTRES: Record<string, number[]> = { bcc: [2, -1, 0, 0], mel: [-1, 2, 0, 0], nv: [-2, -2, 0, 0] };

function makeClusters(seed: number) {
  const rand = createRandom(seed);
  const normal = () => Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
  const dx: string[] = [];
  for (let i = 0; i < 60; i++) dx.push(["bcc", "mel", "nv", "nv"][i % 4]);
  const features = new Float32Array(dx.length * DIM);
  dx.forEach((d, i) => CENTRES[d].forEach((c, j) => (features[i * DIM + j] = c + 0.7 * normal())));
  return { features, dx };
}

beforeAll(async () => {
  await selectBackend();
});

describe("diagnosis head scored as P(melanoma)", () => {
  it("malignantDiagnoses ['mel'] with mel-vs-rest labels: the sum mask is mel's column only", () => {
    // By hand: classes sorted [bcc, mel, nv]; only mel is summed, bcc counts as a negative.
    const targets = encodeDiagnosisTargets(["nv", "mel", "bcc", "nv"], [0, 1, 0, 0], ["mel"]);
    expect(targets.classes).toEqual(["bcc", "mel", "nv"]);
    expect(Array.from(targets.malignantMask)).toEqual([0, 1, 0]);
    // The malignant labelling does not fit a mel-only sum: bcc labelled 1 is refused.
    expect(() => encodeDiagnosisTargets(["nv", "mel", "bcc"], [0, 1, 1], ["mel"])).toThrow(/bcc/);
  });

  it("learns the same softmax as the malignant head; its output is that softmax's mel column", async () => {
    const { features, dx } = makeClusters(11);
    const malignantLabels = dx.map((d) => (d === "nv" ? 0 : 1));
    const melanomaLabels = dx.map((d) => (d === "mel" ? 1 : 0));
    const common = {
      seed: 5,
      epochs: 6,
      hiddenUnits: 0,
      batchSize: 8,
      learningRate: 0.05,
      classWeights: "balanced" as const,
    };
    const malignant = await trainHead(features, malignantLabels, {
      ...common,
      diagnoses: dx,
      malignantDiagnoses: ["bcc", "mel"],
    });
    const melanoma = await trainHead(features, melanomaLabels, {
      ...common,
      diagnoses: dx,
      malignantDiagnoses: ["mel"],
    });
    try {
      expect(melanoma.diagnosisClasses).toEqual(["bcc", "mel", "nv"]);
      expect(melanoma.malignantClasses).toEqual(["mel"]);
      const soft = predictDiagnosisProbabilities(melanoma.model, features, DIM);
      const softMalignant = predictDiagnosisProbabilities(malignant.model, features, DIM);
      const pMel = predictHeadProbabilities(melanoma.model, features, DIM);
      const pMalignant = predictHeadProbabilities(malignant.model, features, DIM);
      const rows = dx.length;
      for (let r = 0; r < rows; r++) {
        // The softmax's loss and class weights depend on the diagnoses, not on the labels.
        for (let k = 0; k < 3; k++)
          expect(soft.probabilities[r * 3 + k]).toBeCloseTo(softMalignant.probabilities[r * 3 + k], 5);
        expect(pMel[r]).toBeCloseTo(soft.probabilities[r * 3 + 1], 5);
        // P(malignant) = P(bcc) + P(mel) = P(mel) + the bcc column.
        expect(pMalignant[r]).toBeCloseTo(pMel[r] + soft.probabilities[r * 3], 5);
      }
      // And it ranks melanomas above the rest, bcc included.
      const melMean = dx.reduce((a, d, i) => a + (d === "mel" ? pMel[i] : 0), 0) / dx.filter((d) => d === "mel").length;
      const bccMean = dx.reduce((a, d, i) => a + (d === "bcc" ? pMel[i] : 0), 0) / dx.filter((d) => d === "bcc").length;
      expect(melMean).toBeGreaterThan(bccMean + 0.3);
    } finally {
      malignant.model.dispose();
      melanoma.model.dispose();
    }
    expect(tf.memory().numTensors).toBeLessThan(50);
  });
});
