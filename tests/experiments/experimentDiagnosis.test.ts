import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import * as tf from "@tensorflow/tfjs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  generateSyntheticDataset,
  loadTriageModel,
  predictMalignantProbability,
  selectBackend,
  UnknownNameError,
} from "../../lib/index.js";
import { ExperimentConfigError, formatExperimentRunName } from "../../lib/experiments/runIdentity.js";
import { runExperiment, type ExperimentResult } from "../../lib/experiments/runExperiment.js";
import { DIAGNOSIS_HEAD_LAYERS } from "../../lib/models/headLayers.js";
import { buildLeaderboardRows, loadExperimentRuns } from "../../lib/experiments/leaderboard.js";

let workDir: string;
let dataDir: string;
let result: ExperimentResult;
let tensorsBefore = 0;
let tensorsAfter = 0;
const quiet = { progress: "quiet" as const, log: () => {} };

beforeAll(async () => {
  workDir = fs.mkdtempSync(path.join(os.tmpdir(), "melanoma-experiment-dx-"));
  dataDir = path.join(workDir, "data");
  // The generator writes a diagnosis per image: nv (benign) and mel (malignant).
  await generateSyntheticDataset({ outDir: dataDir, imageCount: 40, seed: 7 });
  await selectBackend();
  tensorsBefore = tf.memory().numTensors;
  result = await runExperiment({
    dataDir,
    backboneName: "mobilenet_v2",
    epochs: 2,
    folds: 2,
    seed: 3,
    target: "diagnosis",
    outputRoot: workDir,
    featureCacheDir: path.join(workDir, "cache"),
    ...quiet,
  });
  tensorsAfter = tf.memory().numTensors;
}, 120_000);

afterAll(() => fs.rmSync(workDir, { recursive: true, force: true }));

describe("runExperiment with target diagnosis (40 synthetic images, 2 folds, 2 epochs)", () => {
  it("names the run -dx and records the target, the malignant diagnoses and the classes", () => {
    expect(formatExperimentRunName({ dataDir, backboneName: "mobilenet_v2", epochs: 2, folds: 2, seed: 3 })).toMatch(
      /^data-mobilenet_v2-lesion2-e2-s3-[0-9a-f]{8}$/,
    );
    expect(path.relative(workDir, result.runJsonPath)).toMatch(
      /^runs\/data-mobilenet_v2-lesion2-e2-s3-dx-[0-9a-f]{8}\.json$/,
    );
    const onDisk = JSON.parse(fs.readFileSync(result.runJsonPath, "utf8"));
    expect(onDisk.config).toMatchObject({
      target: "diagnosis",
      malignantDiagnoses: ["mel"],
      diagnosisClasses: ["mel", "nv"],
      epochs: 2,
      folds: 2,
    });
    expect(onDisk.folds).toHaveLength(2);
    for (const f of onDisk.folds) expect(f.epochs).toBe(2);
    expect(tensorsAfter).toBe(tensorsBefore);
  });

  it("the leaderboard tells the diagnosis head apart from a label head of the same backbone", () => {
    const rows = buildLeaderboardRows(loadExperimentRuns(path.join(workDir, "runs")).runs);
    expect(rows.find((r) => /-dx-[0-9a-f]{8}$/.test(r.runName))!.backbone).toBe("mobilenet_v2 (dx head)");
  });

  it("exports a P(malignant) triage model ending in the frozen sum layer, with the target in its notes", async () => {
    const loaded = await loadTriageModel(result.modelDir);
    expect(loaded.metadata.notes).toMatchObject({
      target: "diagnosis",
      diagnosisClasses: "mel,nv",
      malignantDiagnoses: "mel",
    });
    expect(loaded.model.outputs[0].shape).toEqual([null, 1]);
    const sum = loaded.model.getLayer(DIAGNOSIS_HEAD_LAYERS.malignantSum);
    expect(sum.trainable).toBe(false);
    expect(Array.from(sum.getWeights()[0].dataSync())).toEqual([1, 0]);
    const images = fs
      .readdirSync(path.join(dataDir, "images"))
      .slice(0, 3)
      .map((f) => path.join(dataDir, "images", f));
    for (const p of await predictMalignantProbability(loaded, images)) {
      expect("probability" in p && p.probability > 0 && p.probability < 1).toBe(true);
    }
    loaded.model.dispose();
  });

  it("fine-tunes a diagnosis head's backbone top on the head's own diagnosis loss: the sum layer stays frozen", async () => {
    const small = path.join(workDir, "small");
    await generateSyntheticDataset({ outDir: small, imageCount: 24, seed: 11 });
    const before = tf.memory().numTensors;
    const { summary, modelDir } = await runExperiment({
      dataDir: small,
      backboneName: "mobilenet_v2",
      epochs: 1,
      fineTuneEpochs: 1,
      unfreezeBlocks: 1,
      folds: 2,
      seed: 5,
      target: "diagnosis",
      outputRoot: workDir,
      featureCacheDir: path.join(workDir, "cache-ft", "features"),
      ...quiet,
    });
    expect(tf.memory().numTensors).toBe(before);
    expect(summary.runName).toMatch(/^small-mobilenet_v2-lesion2-e1-ft1-s5-dx-[0-9a-f]{8}$/);
    const loaded = await loadTriageModel(modelDir);
    expect(loaded.metadata.notes).toMatchObject({ target: "diagnosis" });
    expect(Array.from(loaded.model.getLayer(DIAGNOSIS_HEAD_LAYERS.malignantSum).getWeights()[0].dataSync())).toEqual([
      1, 0,
    ]);
    loaded.model.dispose();
  }, 150_000);

  it("refuses data without diagnoses, diagnoses with two labels and unknown targets before loading a backbone", async () => {
    // Folder per class: no diagnosis column.
    const folders = path.join(workDir, "folders");
    const images = fs.readdirSync(path.join(dataDir, "images")).sort();
    for (const [i, label] of ["benign", "malignant", "benign"].entries()) {
      fs.mkdirSync(path.join(folders, "train", label), { recursive: true });
      fs.copyFileSync(path.join(dataDir, "images", images[i]), path.join(folders, "train", label, images[i]));
    }
    const common = {
      backboneName: "mobilenet_v2",
      epochs: 1,
      folds: 2,
      outputRoot: workDir,
      featureCacheDir: path.join(workDir, "cache"),
      ...quiet,
    };
    await expect(runExperiment({ ...common, dataDir: folders, target: "diagnosis" })).rejects.toThrow(
      ExperimentConfigError,
    );
    await expect(runExperiment({ ...common, dataDir: folders, target: "diagnosis" })).rejects.toThrow(
      new RegExp(
        `target "diagnosis": 3 of 3 images in .*folders have no diagnosis \\(e\\.g\\. ${images[0].replace(/\.jpg$/, "")}\\)`,
      ),
    );
    // One nv image relabelled malignant: nv would be both.
    const mixed = path.join(workDir, "mixed");
    fs.mkdirSync(mixed);
    fs.symlinkSync(path.join(dataDir, "images"), path.join(mixed, "images"));
    const lines = fs.readFileSync(path.join(dataDir, "labels.csv"), "utf8").trim().split("\n");
    const nvRow = lines.findIndex((l) => l.split(",")[2] === "nv");
    const nvId = lines[nvRow].split(",")[0];
    lines[nvRow] = lines[nvRow].replace(",benign,nv,", ",malignant,nv,");
    fs.writeFileSync(path.join(mixed, "labels.csv"), lines.join("\n") + "\n");
    await expect(runExperiment({ ...common, dataDir: mixed, target: "diagnosis" })).rejects.toThrow(
      new RegExp(`diagnosis "nv" has 1 images labelled malignant \\(e\\.g\\. ${nvId}\\) and \\d+ benign`),
    );
    await expect(runExperiment({ ...common, dataDir: mixed, target: "dx" as never })).rejects.toThrow(UnknownNameError);
  });
});
