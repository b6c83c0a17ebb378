import * as tf from "@tensorflow/tfjs";
import { describe, expect, it } from "vitest";
import {
  disposeBackbone,
  selectBackend,
  splitByLesion,
  assertNoGroupLeakage,
  loadLabelsCsvDataset,
  resolveFeatureCacheDir,
} from "../../lib/index.js";
import { loadBackbone } from "../../lib/models/backbones.js";
import { extractFeatures } from "../../lib/models/features.js";
import { computeRocAuc } from "../../lib/evaluate/metrics.js";
import { computeRocAucExact } from "../../lib/util/rocAuc.js";
import { trainHead } from "../../lib/train/trainHead.js";
import { chooseThresholdForSensitivity } from "../../lib/triage/triage.js";
import { requireSharedPath } from "../helpers/shared.js";

describe("HAM10000 dev set: frozen MobileNetV2 features + dense head", () => {
  it("reaches validation ROC AUC ≥ 0.80 on a lesion-grouped stratified 80/20 split", async (ctx) => {
    const dir = requireSharedPath(ctx, "data/ham10000-dev");
    const started = performance.now();
    await selectBackend();
    const { records, problems } = loadLabelsCsvDataset(dir);
    expect(problems).toEqual([]);
    expect(records.length).toBe(1998);
    const { train, validation } = splitByLesion(records, { validationFraction: 0.2, seed: 42 });
    assertNoGroupLeakage([train, validation]);
    const backbone = await loadBackbone("mobilenet_v2");
    // The shared feature cache: the first run featurises all 1,998 images (~3 min on wasm), reruns read it.
    const cacheDir = resolveFeatureCacheDir();
    let lastLogged = 0;
    const onProgress = (done: number, total: number) => {
      if (done - lastLogged >= 400 || done === total) {
        lastLogged = done;
        console.log(`features ${done}/${total} (${((performance.now() - started) / 1000).toFixed(0)} s)`);
      }
    };
    const tensorsBefore = tf.memory().numTensors;
    const trainFeatures = await extractFeatures(backbone, train, { batchSize: 16, cacheDir, onProgress });
    const valFeatures = await extractFeatures(backbone, validation, { batchSize: 16, cacheDir, onProgress });
    expect(trainFeatures.problems).toEqual([]);
    expect(valFeatures.problems).toEqual([]);
    const featureSeconds = (performance.now() - started) / 1000;
    const trainLabels = trainFeatures.sourceIndices.map((i) => (train[i].label === "malignant" ? 1 : 0));
    const valLabels = valFeatures.sourceIndices.map((i) => (validation[i].label === "malignant" ? 1 : 0));
    const result = await trainHead(trainFeatures.features, trainLabels, {
      seed: 42,
      hiddenUnits: 128,
      dropoutRate: 0.3,
      l2: 1e-4,
      epochs: 25,
      batchSize: 32,
      learningRate: 1e-3,
      classWeights: "balanced",
      validation: { features: valFeatures.features, labels: valLabels },
    });
    const last = result.history.at(-1)!;
    // Independent check of the reported AUC from the model's own predictions.
    const probs = tf.tidy(() =>
      (result.model.predict(tf.tensor2d(valFeatures.features, [valFeatures.rows, 1280])) as tf.Tensor).dataSync(),
    );
    const auc = computeRocAucExact(valLabels, probs);
    expect(auc).toBeCloseTo(last.valAuc!, 6);
    // And against the evaluate stage's trapezoid ROC AUC, an independent implementation.
    expect(computeRocAuc(valLabels, Array.from(probs))).toBeCloseTo(auc, 10);
    // The threshold is chosen on half of the validation lesions and checked on the other half:
    // on the labels it was chosen on, sensitivity ≥ 0.9 holds by construction.
    const valLesions = [
      ...new Set(valFeatures.sourceIndices.map((i) => validation[i].lesionId ?? validation[i].imageId)),
    ].sort();
    const inChoiceHalf = valFeatures.sourceIndices.map(
      (i) => valLesions.indexOf(validation[i].lesionId ?? validation[i].imageId) % 2 === 0,
    );
    const rowsWhere = (choiceHalf: boolean) => valLabels.flatMap((_, r) => (inChoiceHalf[r] === choiceHalf ? [r] : []));
    const choiceRows = rowsWhere(true);
    const heldOutRows = rowsWhere(false);
    const choice = chooseThresholdForSensitivity(
      choiceRows.map((r) => valLabels[r]),
      choiceRows.map((r) => probs[r]),
      0.9,
    );
    const heldOutPositives = heldOutRows.filter((r) => valLabels[r] === 1);
    const heldOutSensitivity =
      heldOutPositives.filter((r) => probs[r] >= choice.thresholdProb).length / heldOutPositives.length;
    console.log(
      `threshold chosen on ${choiceRows.length} validation images, held-out ${heldOutRows.length} (${heldOutPositives.length} malignant): sensitivity ${heldOutSensitivity.toFixed(3)}`,
    );
    const wallSeconds = (performance.now() - started) / 1000;
    console.log(
      `HAM10000 dev: train ${train.length} (${trainLabels.filter((l) => l === 1).length} malignant), validation ${validation.length} (${valLabels.filter((l) => l === 1).length} malignant); ` +
        `features ${featureSeconds.toFixed(1)} s (cache hits ${trainFeatures.cacheHits + valFeatures.cacheHits}, computed ${trainFeatures.computed + valFeatures.computed}); ` +
        `validation ROC AUC ${auc.toFixed(4)} (epoch-by-epoch ${result.history.map((h) => h.valAuc!.toFixed(3)).join(" ")}); ` +
        `threshold for sensitivity ≥ 0.9: ${choice.thresholdProb.toFixed(4)} → sensitivity ${choice.sensitivity.toFixed(3)}, specificity ${choice.specificity.toFixed(3)}; wall ${wallSeconds.toFixed(1)} s`,
    );
    expect(auc).toBeGreaterThanOrEqual(0.8);
    expect(heldOutRows.length).toBeGreaterThan(150);
    expect(heldOutSensitivity).toBeGreaterThanOrEqual(0.8);
    result.model.dispose();
    disposeBackbone(backbone);
    expect(tf.memory().numTensors).toBeLessThanOrEqual(tensorsBefore);
  });
});
