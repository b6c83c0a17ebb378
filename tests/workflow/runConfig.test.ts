import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it, vi } from "vitest";
import {
  ConfigError,
  createProgressPrinter,
  featureTableFromMatrix,
  findProjectRoot,
  formatMetricLine,
  isSyntheticDataDir,
  loadFeatureTable,
  loadRunArtifact,
  resolveRunConfig,
  saveFeatureTable,
  saveRunArtifact,
  scalarSeriesFromLogDir,
} from "../../lib/index.js";
import type { LesionRecord } from "../../lib/index.js";

afterEach(() => {
  vi.unstubAllEnvs();
});

function tempRunConfig() {
  const config = resolveRunConfig({ runName: "unit-test" });
  const runDir = fs.mkdtempSync(path.join(os.tmpdir(), "melanoma-run-"));
  return { ...config, paths: { ...config.paths, runDir } };
}

describe("resolveRunConfig", () => {
  it("uses code defaults, with env variables winning", () => {
    vi.stubEnv("MELANOMA_LAB_RUN", "");
    vi.stubEnv("MELANOMA_LAB_SMALL", "");
    vi.stubEnv("MELANOMA_LAB_DATA", "");
    vi.stubEnv("MELANOMA_LAB_EPOCHS", "");
    const base = resolveRunConfig({ epochs: 12, seed: 7 });
    expect(base.runName).toBe("default");
    expect(base.epochs).toBe(12);
    expect(base.seed).toBe(7);
    expect(base.useSyntheticData).toBe(true);
    expect(base.paths.logDir).toBe(path.join(findProjectRoot(), "logs", "default"));
    vi.stubEnv("MELANOMA_LAB_RUN", "ham-run");
    vi.stubEnv("MELANOMA_LAB_EPOCHS", "3");
    vi.stubEnv("MELANOMA_LAB_DATA", "/tmp/somewhere");
    const env = resolveRunConfig({ epochs: 12 });
    expect(env.runName).toBe("ham-run");
    expect(env.epochs).toBe(3);
    expect(env.dataDir).toBe("/tmp/somewhere");
    expect(env.useSyntheticData).toBe(false);
    expect(env.paths.modelDir).toBe(path.join(findProjectRoot(), "models", "ham-run"));
  });

  it("knows which data folders the synthetic generator owns", () => {
    const root = findProjectRoot();
    expect(isSyntheticDataDir(path.join(root, "data", "synthetic"))).toBe(true);
    expect(isSyntheticDataDir("data/synthetic-small")).toBe(true);
    expect(isSyntheticDataDir(path.join(root, "data", "ham"))).toBe(false);
    expect(isSyntheticDataDir("/tmp/synthetic")).toBe(false);
  });

  it("rejects a bad number or run name with the value received", () => {
    vi.stubEnv("MELANOMA_LAB_EPOCHS", "ten");
    expect(() => resolveRunConfig()).toThrow(/MELANOMA_LAB_EPOCHS="ten" is not a number/);
    // Numbers, but not usable: 0 epochs would train nothing; a seed must be a whole number.
    vi.stubEnv("MELANOMA_LAB_EPOCHS", "0");
    expect(() => resolveRunConfig()).toThrow(/epochs \(MELANOMA_LAB_EPOCHS\): received 0, expected an integer ≥ 1/);
    vi.stubEnv("MELANOMA_LAB_EPOCHS", "");
    vi.stubEnv("MELANOMA_LAB_SEED", "1.5");
    expect(() => resolveRunConfig()).toThrow(/seed \(MELANOMA_LAB_SEED\): received 1.5, expected an integer ≥ 0/);
    vi.stubEnv("MELANOMA_LAB_SEED", "");
    vi.stubEnv("MELANOMA_LAB_RUN", "my run/1");
    expect(() => resolveRunConfig()).toThrow(ConfigError);
  });
});

describe("run artifacts", () => {
  it("round-trips JSON and names the notebook to run when missing", () => {
    const config = tempRunConfig();
    saveRunArtifact(config, "split", { a: [1, 2] });
    expect(loadRunArtifact(config, "split", "01-data")).toEqual({ a: [1, 2] });
    expect(() => loadRunArtifact(config, "nothing", "01-data")).toThrow(/run notebook 01-data first/);
  });

  it("round-trips feature tables bit for bit and detects a truncated file", () => {
    const config = tempRunConfig();
    const records = ["a", "b", "c"].map((id, i): LesionRecord => ({
      imageId: id,
      imagePath: `/x/${id}.jpg`,
      label: i === 1 ? "malignant" : "benign",
    }));
    const features = new Float32Array([0.5, -1, 3.25, 1e-8, 7, 8]);
    // Row for "b" was dropped (bad image): source indices say which records the rows came from.
    const table = featureTableFromMatrix(
      { features: features.subarray(0, 4), featureDim: 2, imageIds: ["a", "c"], sourceIndices: [0, 2] },
      records,
    );
    expect(table.labels).toEqual([0, 0]);
    saveFeatureTable(config, "train", table);
    const back = loadFeatureTable(config, "train");
    expect(Array.from(back.features)).toEqual(Array.from(features.subarray(0, 4)));
    expect(back.imageIds).toEqual(["a", "c"]);
    fs.truncateSync(path.join(config.paths.runDir, "train.features.bin"), 12);
    expect(() => loadFeatureTable(config, "train")).toThrow(/12 bytes, expected 16/);
  });
});

describe("small helpers", () => {
  it("prints progress at each quarter and at the end", () => {
    const lines: string[] = [];
    const spy = vi.spyOn(console, "log").mockImplementation((l: string) => void lines.push(l));
    const progress = createProgressPrinter("feat");
    for (let i = 1; i <= 10; i++) progress(i, 10);
    spy.mockRestore();
    // createProgressBar's plain lines ("feat:  30% 3/10 …"): the start, then each quarter and the end.
    expect(lines.map((l) => l.split(/\s+/)[2])).toEqual(["1/10", "3/10", "5/10", "8/10", "10/10"]);
  });

  it("formats a metric with its interval", () => {
    expect(formatMetricLine("ROC AUC", { estimate: 0.8421, lower: 0.8012, upper: 0.8799, confidenceLevel: 0.95 })).toBe(
      "ROC AUC 0.842 (95% CI 0.801–0.880)",
    );
  });

  it("turns reader output into chart series", () => {
    const series = scalarSeriesFromLogDir({
      runs: [
        {
          name: "train",
          scalars: {
            epoch_loss: {
              points: [
                { step: 0, value: 1 },
                { step: 1, value: 0.5 },
              ],
            },
          },
        },
      ],
    });
    expect(series).toEqual({
      train: {
        epoch_loss: [
          { step: 0, value: 1 },
          { step: 1, value: 0.5 },
        ],
      },
    });
  });
});
