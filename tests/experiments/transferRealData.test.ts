import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { runExperiment } from "../../lib/experiments/runExperiment.js";
import { requireSharedPath } from "../helpers/shared.js";

/**
 * A labels.csv subset of a shared data set beside a symlink to its images: `pick` chooses the rows
 * (header kept). The loader reads only the listed images.
 */
function writeSubset(sourceDir: string, outDir: string, pick: (rows: Record<string, string>[]) => string[]): void {
  const [header, ...lines] = fs.readFileSync(path.join(sourceDir, "labels.csv"), "utf8").trim().split(/\r?\n/);
  const columns = header.split(",");
  const rows = lines.map((line) => Object.fromEntries(line.split(",").map((v, i) => [columns[i], v])));
  const keep = new Set(pick(rows));
  fs.mkdirSync(outDir, { recursive: true });
  fs.writeFileSync(
    path.join(outDir, "labels.csv"),
    [header, ...lines.filter((_, i) => keep.has(rows[i].image_id))].join("\n") + "\n",
  );
  fs.symlinkSync(path.join(sourceDir, "images"), path.join(outDir, "images"));
}

const workDir = fs.mkdtempSync(path.join(os.tmpdir(), "melanoma-transfer-real-"));
const savedWeightsDir = process.env.MELANOMA_LAB_WEIGHTS_DIR;
afterAll(() => {
  fs.rmSync(workDir, { recursive: true, force: true });
  if (savedWeightsDir === undefined) delete process.env.MELANOMA_LAB_WEIGHTS_DIR;
  else process.env.MELANOMA_LAB_WEIGHTS_DIR = savedWeightsDir;
});

describe("transfer report on real data (HAM10000 subset → ISIC 2020 subset)", () => {
  it("records leave-one-source-out per HAM source and the external AUC with its patient-grouped interval", async (ctx) => {
    const ham = requireSharedPath(ctx, "data/ham10000-dev");
    const isic = requireSharedPath(ctx, "data/isic2020-ext");
    process.env.MELANOMA_LAB_WEIGHTS_DIR = requireSharedPath(ctx, "weights");
    const dataDir = path.join(workDir, "ham-subset");
    const externalDir = path.join(workDir, "isic-subset");
    // 15 malignant + 15 benign per HAM source where it has them: 4 sources, ≤ 120 images.
    writeSubset(ham, dataDir, (rows) =>
      [...new Set(rows.map((r) => r.ham_dataset))].flatMap((source) =>
        ["malignant", "benign"].flatMap((label) =>
          rows
            .filter((r) => r.ham_dataset === source && r.label === label)
            .slice(0, 15)
            .map((r) => r.image_id),
        ),
      ),
    );
    // Every image of the first 10 patients with a melanoma and of 10 without: whole patients.
    writeSubset(isic, externalDir, (rows) => {
      const withMelanoma = new Set(rows.filter((r) => r.label === "malignant").map((r) => r.patient_id));
      const patients = [...new Set(rows.map((r) => r.patient_id))];
      const chosen = new Set([
        ...patients.filter((p) => withMelanoma.has(p)).slice(0, 10),
        ...patients.filter((p) => !withMelanoma.has(p)).slice(0, 10),
      ]);
      return rows.filter((r) => chosen.has(r.patient_id)).map((r) => r.image_id);
    });
    const started = performance.now();
    const { summary } = await runExperiment({
      dataDir,
      backboneName: "mobilenet_v2_imagenet",
      epochs: 5,
      folds: 2,
      seed: 1,
      head: { hiddenUnits: 0 },
      externalDataDir: externalDir,
      outputRoot: workDir,
      featureCacheDir: path.join(workDir, "cache"),
      progress: "quiet",
      log: () => {},
    });
    const seconds = (performance.now() - started) / 1000;
    const loso = summary.transfer!.leaveOneSourceOut!;
    expect(loso.perSource.map((r) => r.source).sort()).toEqual(Object.keys(summary.data.sources).sort());
    expect(loso.perSource).toHaveLength(4);
    expect(loso.thresholdProb).toBe(summary.metrics.threshold.thresholdProb);
    const ext = summary.transfer!.external!;
    // Some patients have two melanomas: counted from the subset's own labels.
    const subsetLabels = fs.readFileSync(path.join(externalDir, "labels.csv"), "utf8").trim().split("\n").slice(1);
    expect(ext.images).toBe(subsetLabels.length);
    expect(ext.malignant).toBe(subsetLabels.filter((line) => line.split(",")[1] === "malignant").length);
    expect(ext.patients).toBe(20);
    expect(ext.rocAuc.resampled).toBe("patients");
    expect(ext.rocAuc.estimate).toBeGreaterThan(0);
    expect(ext.rocAuc.lower!).toBeLessThanOrEqual(ext.rocAuc.estimate!);
    expect(ext.rocAuc.upper!).toBeGreaterThanOrEqual(ext.rocAuc.estimate!);
    expect(ext.rocAuc.upper! - ext.rocAuc.lower!).toBeGreaterThan(0);
    expect(ext.sensitivity).not.toBeNull();
    expect(ext.specificity).not.toBeNull();
    const onDisk = JSON.parse(fs.readFileSync(path.join(workDir, summary.artifacts.runJson), "utf8"));
    expect(onDisk.transfer.external.rocAuc.estimate).toBe(ext.rocAuc.estimate);
    console.log(
      `real-data transfer test: ${summary.data.images} HAM images, ${ext.images} ISIC images of ${ext.patients} patients, ` +
        `worst source ${loso.perSource[0].source} ${loso.worstSourceRocAuc?.toFixed(3)}, external ${ext.rocAuc.estimate?.toFixed(3)} ` +
        `(${ext.rocAuc.lower?.toFixed(3)}–${ext.rocAuc.upper?.toFixed(3)}) in ${seconds.toFixed(1)} s`,
    );
  }, 120_000);
});
