import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import * as tf from "@tensorflow/tfjs";
import { afterAll, beforeAll, expect, it } from "vitest";
import {
  extractFeatures,
  generateSyntheticDataset,
  loadBackbone,
  loadTriageModel,
  predictMalignantProbability,
  selectBackend,
  disposeBackbone,
} from "../../lib/index.js";
import { ExperimentConfigError } from "../../lib/experiments/runIdentity.js";
import { runExperiment, type ExperimentResult } from "../../lib/experiments/runExperiment.js";
import { buildLeaderboardRows, loadExperimentRuns } from "../../lib/experiments/leaderboard.js";
import { ENSEMBLE_FEATURES_LAYER_NAME } from "../../lib/export/ensembleTriageModel.js";
import { describeRequiring, findSharedPath, missingSharedPath } from "../helpers/shared.js";

const weightsDir = findSharedPath("weights/mobilenet_v1_0.25_224");
let workDir: string;
let dataDir: string;
let result: ExperimentResult;
let tensorsBefore = 0;
let tensorsAfter = 0;
const quiet = { progress: "quiet" as const, log: () => {} };
const previousWeightsDir = process.env.MELANOMA_LAB_WEIGHTS_DIR;

describeRequiring(
  missingSharedPath("weights/mobilenet_v1_0.25_224"),
  "runExperiment with a backbone ensemble (mobilenet_v2 + mobilenet_v1 α0.25, 40 synthetic images)",
  () => {
    beforeAll(async () => {
      // describeRequiring runs this suite only when the mirror is there.
      process.env.MELANOMA_LAB_WEIGHTS_DIR = path.dirname(weightsDir!);
      workDir = fs.mkdtempSync(path.join(os.tmpdir(), "melanoma-experiment-ensemble-"));
      dataDir = path.join(workDir, "data");
      await generateSyntheticDataset({ outDir: dataDir, imageCount: 40, seed: 11 });
      await selectBackend();
      tensorsBefore = tf.memory().numTensors;
      result = await runExperiment({
        dataDir,
        backboneName: "mobilenet_v2+mobilenet_v1@0.25",
        epochs: 2,
        folds: 2,
        seed: 3,
        outputRoot: workDir,
        featureCacheDir: path.join(workDir, "cache"),
        ...quiet,
      });
      tensorsAfter = tf.memory().numTensors;
    }, 180_000);

    afterAll(() => {
      if (previousWeightsDir === undefined) delete process.env.MELANOMA_LAB_WEIGHTS_DIR;
      else process.env.MELANOMA_LAB_WEIGHTS_DIR = previousWeightsDir;
      if (workDir) fs.rmSync(workDir, { recursive: true, force: true });
    });

    it("cross-validates one head on both backbones' features and records the canonical spec", () => {
      const onDisk = JSON.parse(fs.readFileSync(result.runJsonPath, "utf8"));
      expect(path.basename(result.runJsonPath)).toMatch(
        /^data-mobilenet_v2_mobilenet_v1_0\.25-lesion2-e2-s3-[0-9a-f]{8}\.json$/,
      );
      expect(onDisk.config).toMatchObject({
        backbone: "mobilenet_v2+mobilenet_v1@0.25",
        alpha: null,
        epochs: 2,
        folds: 2,
      });
      expect(onDisk.folds).toHaveLength(2);
      expect(onDisk.metrics.rocAuc.n).toBe(2);
      expect(tensorsAfter).toBe(tensorsBefore);
      const rows = buildLeaderboardRows(loadExperimentRuns(path.join(workDir, "runs")).runs);
      expect(rows[0].backbone).toBe("mobilenet_v2+mobilenet_v1@0.25");
    });

    it("reuses each member's single-backbone feature cache", async () => {
      const backbone = await loadBackbone("mobilenet_v1", { alpha: 0.25 });
      const again = await extractFeatures(
        backbone,
        fs.readdirSync(path.join(dataDir, "images")).map((f) => path.join(dataDir, "images", f)),
        { cacheDir: path.join(workDir, "cache") },
      );
      disposeBackbone(backbone);
      expect(again.computed).toBe(0);
      expect(again.cacheHits).toBe(40);
    });

    it("exports one model with an image input per member; scoring reports a missing file and goes on", async () => {
      const loaded = await loadTriageModel(result.modelDir);
      expect(loaded.metadata.backboneName).toBe("mobilenet_v2+mobilenet_v1@0.25");
      expect(loaded.metadata.ensembleMembers!.map((m) => [m.backboneName, m.featureDim, m.inputSizePx])).toEqual([
        ["mobilenet_v2", 1280, 224],
        ["mobilenet_v1@0.25", 256, 224],
      ]);
      expect(loaded.model.inputs).toHaveLength(2);
      expect(loaded.model.getLayer(ENSEMBLE_FEATURES_LAYER_NAME).outputShape).toEqual([null, 1536]);
      const images = fs
        .readdirSync(path.join(dataDir, "images"))
        .slice(0, 4)
        .map((f) => path.join(dataDir, "images", f));
      const predictions = await predictMalignantProbability(loaded, [...images, path.join(dataDir, "missing.jpg")]);
      expect(predictions.slice(0, 4).every((p) => "probability" in p && p.probability > 0 && p.probability < 1)).toBe(
        true,
      );
      expect("problem" in predictions[4] && predictions[4].problem.file).toBe(path.join(dataDir, "missing.jpg"));
      loaded.model.dispose();
    });

    it("refuses alpha outside the spec and fine-tuning of an ensemble before loading anything", async () => {
      await expect(
        runExperiment({
          dataDir,
          backboneName: "mobilenet_v2+mobilenet_v1@0.25",
          alpha: 0.5,
          outputRoot: workDir,
          ...quiet,
        }),
      ).rejects.toThrow(ExperimentConfigError);
      await expect(
        runExperiment({
          dataDir,
          backboneName: "mobilenet_v2+mobilenet_v1@0.25",
          fineTuneEpochs: 1,
          outputRoot: workDir,
          ...quiet,
        }),
      ).rejects.toThrow(/fineTuneEpochs: received 1 with the ensemble mobilenet_v2\+mobilenet_v1@0\.25; expected 0/);
      await expect(
        runExperiment({ dataDir, backboneName: "mobilenet_v2+vgg19", outputRoot: workDir, ...quiet }),
      ).rejects.toThrow(/vgg19/);
    });
  },
);
