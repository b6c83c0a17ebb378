import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import {
  ConfigError,
  crossValidateRunLeaveOneSourceOut,
  describeRunConfig,
  resolveRunConfig,
  saveFeatureTable,
  saveRunArtifact,
  scoreRunExternalSet,
  selectBackend,
  type LesionRecord,
} from "../../lib/index.js";

afterEach(() => {
  vi.unstubAllEnvs();
});

function tempRunConfig() {
  const config = resolveRunConfig({ runName: "transfer-unit-test" });
  const runDir = fs.mkdtempSync(path.join(os.tmpdir(), "melanoma-transfer-run-"));
  return { ...config, paths: { ...config.paths, runDir } };
}

describe("MELANOMA_LAB_EXTERNAL in the run config", () => {
  it("is unset by default, resolved and described when set, and a missing folder is an error naming it", () => {
    vi.stubEnv("MELANOMA_LAB_EXTERNAL", "");
    expect(resolveRunConfig().externalDataDir).toBeUndefined();
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "melanoma-ext-"));
    vi.stubEnv("MELANOMA_LAB_EXTERNAL", dir);
    const config = resolveRunConfig();
    expect(config.externalDataDir).toBe(dir);
    expect(describeRunConfig(config)).toContain("(transfer report, notebook 4)");
    vi.stubEnv("MELANOMA_LAB_EXTERNAL", path.join(dir, "missing"));
    expect(() => resolveRunConfig()).toThrow(ConfigError);
    expect(() => resolveRunConfig()).toThrow(
      `external data set ${path.join(dir, "missing")} (MELANOMA_LAB_EXTERNAL) does not exist`,
    );
  });
});

describe("the notebooks' transfer report over a run's split", () => {
  beforeAll(async () => {
    await selectBackend();
  });

  it("pools train, validation and test and leaves each source out: the source whose malignant images look benign is worst", async () => {
    vi.stubEnv("MELANOMA_LAB_EPOCHS", "40");
    const config = tempRunConfig();
    // Feature 0 = +1 malignant / −1 benign, except half of source c's malignant images at −1
    // (identical to its benign ones): c gets AUC (4·8 + ½·4·8) / (8·8) = 0.75, a and b AUC 1.
    const records: LesionRecord[] = [];
    const x: number[] = [];
    for (const source of ["a", "b", "c"])
      for (let k = 0; k < 16; k++) {
        const malignant = k % 2 === 0;
        records.push({
          imageId: `${source}${k}`,
          imagePath: `/nonexistent/${source}${k}.jpg`,
          label: malignant ? "malignant" : "benign",
          lesionId: `${source}${k}`,
          source,
        });
        x.push(malignant && !(source === "c" && k % 4 === 0) ? 1 : -1);
      }
    // Spread the images over the three tables so every table holds every source.
    const parts = { train: [] as number[], validation: [] as number[], test: [] as number[] };
    records.forEach((_, i) => (i % 3 === 0 ? parts.validation : i % 3 === 1 ? parts.test : parts.train).push(i));
    saveRunArtifact(config, "split", {
      train: parts.train.map((i) => records[i]),
      validation: parts.validation.map((i) => records[i]),
      test: parts.test.map((i) => records[i]),
    });
    for (const [name, rows] of Object.entries(parts))
      saveFeatureTable(config, name, {
        imageIds: rows.map((i) => records[i].imageId),
        labels: rows.map((i) => (records[i].label === "malignant" ? 1 : 0)),
        features: new Float32Array(rows.flatMap((i) => [x[i], 0])),
        featureDim: 2,
      });
    const { report, reason } = await crossValidateRunLeaveOneSourceOut(config, { thresholdProb: 0.5 });
    expect(reason).toMatch(/^3 sources, 48 images, /);
    expect(report!.perSource.map((r) => [r.source, r.images, r.malignant, r.rocAuc])).toEqual([
      ["c", 16, 8, 0.75],
      ["a", 16, 8, 1],
      ["b", 16, 8, 1],
    ]);
    expect(report!.thresholdProb).toBe(0.5);
  }, 60_000);

  it("reports no leave-one-source-out, with the reason, when the run has one source; no external set unless configured", async () => {
    const config = tempRunConfig();
    const records: LesionRecord[] = [0, 1, 2, 3].map((i) => ({
      imageId: `I${i}`,
      imagePath: "/x.jpg",
      label: i % 2 === 0 ? "malignant" : "benign",
      source: "only",
    }));
    saveRunArtifact(config, "split", { train: records.slice(0, 2), validation: [records[2]], test: [records[3]] });
    for (const [name, rows] of [
      ["train", [0, 1]],
      ["validation", [2]],
      ["test", [3]],
    ] as const)
      saveFeatureTable(config, name, {
        imageIds: rows.map((i) => records[i].imageId),
        labels: rows.map((i) => (i % 2 === 0 ? 1 : 0)),
        features: new Float32Array(rows.length),
        featureDim: 1,
      });
    const { report, reason } = await crossValidateRunLeaveOneSourceOut(config, { thresholdProb: 0.5 });
    expect(report).toBeNull();
    expect(reason).toBe("no leave-one-source-out: 1 source(s) among 4 images; it needs at least 2, on every image");
    const external = await scoreRunExternalSet(
      { ...config, externalDataDir: undefined },
      // Never touched without an external set.
      { backbone: undefined as never, head: undefined as never, thresholdProb: 0.5 },
    );
    expect(external).toBeNull();
  });
});
