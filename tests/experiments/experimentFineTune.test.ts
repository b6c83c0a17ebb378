import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import * as tf from "@tensorflow/tfjs";
import { afterAll, describe, expect, it } from "vitest";
import {
  generateSyntheticDataset,
  loadTriageModel,
  predictMalignantProbability,
  selectBackend,
} from "../../lib/index.js";
import { runExperiment } from "../../lib/experiments/runExperiment.js";

const workDir = fs.mkdtempSync(path.join(os.tmpdir(), "melanoma-experiment-ft-"));
afterAll(() => fs.rmSync(workDir, { recursive: true, force: true }));

describe("runExperiment --fine-tune 1 on 24 synthetic images (2 folds, 1 head epoch)", () => {
  it("fine-tunes per fold and for the final model, exports a model that loads, leaks no tensors", async () => {
    const dataDir = path.join(workDir, "data");
    await generateSyntheticDataset({ outDir: dataDir, imageCount: 24, seed: 11 });
    await selectBackend();
    const before = tf.memory().numTensors;
    const epochLines: string[] = [];
    const { summary, modelDir } = await runExperiment({
      dataDir,
      backboneName: "mobilenet_v2",
      epochs: 1,
      fineTuneEpochs: 1,
      unfreezeBlocks: 1,
      folds: 2,
      seed: 5,
      outputRoot: workDir,
      featureCacheDir: path.join(workDir, "cache", "features"),
      progress: "lines",
      log: (line) => epochLines.push(line),
    });
    expect(tf.memory().numTensors).toBe(before);
    expect(summary.config.fineTuneEpochs).toBe(1);
    expect(summary.runName).toMatch(/^data-mobilenet_v2-lesion2-e1-ft1-s5-[0-9a-f]{8}$/);
    // One compact line per fine-tuning epoch: two folds and the final model.
    expect(epochLines.filter((l) => / fine-tune 1\/1: /.test(l))).toHaveLength(3);
    expect(summary.folds.every((f) => f.rocAuc === null || (f.rocAuc >= 0 && f.rocAuc <= 1))).toBe(true);
    expect(fs.readdirSync(path.join(workDir, "cache", "activations")).length).toBeGreaterThan(0);
    const loaded = await loadTriageModel(modelDir);
    expect(loaded.metadata.thresholdProb).toBe(summary.metrics.threshold.thresholdProb);
    const image = path.join(dataDir, "images", fs.readdirSync(path.join(dataDir, "images"))[0]);
    const [pred] = await predictMalignantProbability(loaded, [image]);
    expect("probability" in pred && pred.probability >= 0 && pred.probability <= 1).toBe(true);
    loaded.model.dispose();
  }, 150_000);
});
