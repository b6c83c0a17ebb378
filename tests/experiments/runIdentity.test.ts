import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import {
  assertRunNameHoldsSameConfig,
  computeRunConfigHash,
  ExperimentConfigError,
  formatExperimentRunName,
  resolveRunIdentity,
  runIdentityFromRecordedConfig,
} from "../../lib/experiments/runIdentity.js";
import { ExperimentCheckpoints } from "../../lib/experiments/experimentResume.js";

const BASE = { dataDir: "/d/ham10000-dev", backboneName: "mobilenet_v2", epochs: 20, seed: 42 };
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "melanoma-run-identity-"));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe("formatExperimentRunName", () => {
  it("keeps the readable name and adds an 8-hex-digit hash of the full configuration", () => {
    expect(formatExperimentRunName(BASE)).toMatch(/^ham10000-dev-mobilenet_v2-lesion5-e20-s42-[0-9a-f]{8}$/);
    expect(formatExperimentRunName({ ...BASE, split: "source", target: "diagnosis" })).toMatch(
      /^ham10000-dev-mobilenet_v2-loso-e20-s42-dx-[0-9a-f]{8}$/,
    );
    // Same configuration, spelled with or without its defaults: same name (reruns replace each other).
    expect(formatExperimentRunName(BASE)).toBe(
      formatExperimentRunName({
        ...BASE,
        folds: 5,
        unfreezeBlocks: 2,
        head: { hiddenUnits: 128, dropoutRate: 0.3 },
        targetSensitivity: 0.9,
      }),
    );
  });

  it("gives configurations differing only in a head setting, unfreeze blocks or target sensitivity different names", () => {
    const variants = {
      "hidden units 0": { head: { hiddenUnits: 0 } },
      "dropout 0.5": { head: { dropoutRate: 0.5 } },
      "l2 0.01": { head: { l2: 0.01 } },
      "learning rate 0.01": { head: { learningRate: 0.01 } },
      "batch size 64": { head: { batchSize: 64 } },
      "unfreeze 3 blocks": { unfreezeBlocks: 3 },
      "target sensitivity 0.95": { targetSensitivity: 0.95 },
    };
    const names = new Map<string, string>([["default", formatExperimentRunName(BASE)]]);
    for (const [what, change] of Object.entries(variants))
      names.set(what, formatExperimentRunName({ ...BASE, ...change }));
    expect(new Set(names.values()).size, JSON.stringify([...names])).toBe(names.size);
  });

  it("hashes an old-format runs/<run>.json config to the hash of the options that made it", () => {
    // Recorded by a run of BASE before configHash or target existed (split lesion, default head).
    const recorded = {
      dataDir: "/work/shared/data/ham10000-dev",
      backbone: "mobilenet_v2",
      alpha: null,
      epochs: 20,
      fineTuneEpochs: 0,
      unfreezeBlocks: 2,
      seed: 42,
      split: "lesion" as const,
      folds: 5,
      head: { hiddenUnits: 128, dropoutRate: 0.3, l2: 0.0001, batchSize: 32, learningRate: 0.001 },
      targetSensitivity: 0.9,
    };
    expect(computeRunConfigHash(runIdentityFromRecordedConfig(recorded))).toBe(
      computeRunConfigHash(resolveRunIdentity(BASE)),
    );
    expect(
      computeRunConfigHash(runIdentityFromRecordedConfig({ ...recorded, head: { ...recorded.head, hiddenUnits: 0 } })),
    ).not.toBe(computeRunConfigHash(resolveRunIdentity(BASE)));
  });
});

describe("assertRunNameHoldsSameConfig", () => {
  const hashA = computeRunConfigHash(resolveRunIdentity(BASE));
  const hashB = computeRunConfigHash(resolveRunIdentity({ ...BASE, head: { dropoutRate: 0.5 } }));

  it("passes when nothing is there or the files are this configuration's", () => {
    const runJsonPath = path.join(tmp, "runs", "x.json");
    const modelDir = path.join(tmp, "models", "x");
    expect(() =>
      assertRunNameHoldsSameConfig({ runJsonPath, modelDir, runName: "x", configHash: hashA }),
    ).not.toThrow();
    fs.mkdirSync(path.dirname(runJsonPath), { recursive: true });
    fs.writeFileSync(runJsonPath, JSON.stringify({ configHash: hashA }));
    fs.mkdirSync(modelDir, { recursive: true });
    fs.writeFileSync(path.join(modelDir, "metadata.json"), JSON.stringify({ notes: { configHash: hashA } }));
    expect(() =>
      assertRunNameHoldsSameConfig({ runJsonPath, modelDir, runName: "x", configHash: hashA }),
    ).not.toThrow();
  });

  it("refuses a name whose run record or model belongs to another configuration, naming both", () => {
    const runJsonPath = path.join(tmp, "runs", "y.json");
    const modelDir = path.join(tmp, "models", "y");
    fs.mkdirSync(path.dirname(runJsonPath), { recursive: true });
    fs.writeFileSync(runJsonPath, JSON.stringify({ configHash: hashA }));
    expect(() => assertRunNameHoldsSameConfig({ runJsonPath, modelDir, runName: "y", configHash: hashB })).toThrow(
      ExperimentConfigError,
    );
    expect(() => assertRunNameHoldsSameConfig({ runJsonPath, modelDir, runName: "y", configHash: hashB })).toThrow(
      new RegExp(`configuration ${hashA}, expected configuration ${hashB}`),
    );
    fs.rmSync(runJsonPath);
    fs.mkdirSync(modelDir, { recursive: true });
    fs.writeFileSync(path.join(modelDir, "metadata.json"), JSON.stringify({ notes: { configHash: hashA } }));
    expect(() => assertRunNameHoldsSameConfig({ runJsonPath, modelDir, runName: "y", configHash: hashB })).toThrow(
      ExperimentConfigError,
    );
  });

  it("refuses a name whose interrupted run's checkpoints belong to another configuration (nothing deleted)", () => {
    const runJsonPath = path.join(tmp, "runs", "z.json");
    const modelDir = path.join(tmp, "models", "z");
    // The state file as runExperiment's checkpoint store writes it for a fresh run of configuration A.
    const store = new ExperimentCheckpoints(path.join(tmp, "out", "checkpoints", "z"));
    store.start("z", { seed: 42 }, hashA);
    const checkpointStateFile = store.stateFile;
    const where = { runJsonPath, modelDir, checkpointStateFile, runName: "z" };
    expect(() => assertRunNameHoldsSameConfig({ ...where, configHash: hashB })).toThrow(
      new RegExp(
        `experiment\\.json belongs to an interrupted run of configuration ${hashA}, expected configuration ${hashB}`,
      ),
    );
    expect(fs.existsSync(checkpointStateFile)).toBe(true);
    expect(() => assertRunNameHoldsSameConfig({ ...where, configHash: hashA })).not.toThrow();
  });

  it("reads old-format run records (no configHash) through their recorded config", () => {
    const runJsonPath = path.join(tmp, "runs", "old.json");
    const old = JSON.parse(
      fs.readFileSync(
        path.join(__dirname, "..", "..", "runs", "ham10000-dev-mobilenet_v2-lesion5-e20-s42.json"),
        "utf8",
      ),
    );
    expect(old.configHash).toBeUndefined();
    fs.writeFileSync(runJsonPath, JSON.stringify(old));
    const sameAsOld = computeRunConfigHash(runIdentityFromRecordedConfig(old.config));
    expect(sameAsOld).toBe(hashA);
    expect(() =>
      assertRunNameHoldsSameConfig({
        runJsonPath,
        modelDir: path.join(tmp, "none"),
        runName: "old",
        configHash: hashA,
      }),
    ).not.toThrow();
    expect(() =>
      assertRunNameHoldsSameConfig({
        runJsonPath,
        modelDir: path.join(tmp, "none"),
        runName: "old",
        configHash: hashB,
      }),
    ).toThrow(ExperimentConfigError);
  });
});
