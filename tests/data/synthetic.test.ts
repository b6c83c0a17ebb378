import crypto from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadDataset } from "../../lib/data/loadDataset.js";
import { loadImageBatch } from "../../lib/data/loadImageBatch.js";
import { createGroupedKFolds } from "../../lib/data/split.js";
import { generateSyntheticDataset, isSyntheticDatasetCurrent, SYNTHETIC_SOURCES, SyntheticDataOptionError } from "../../lib/data/synthetic.js";
import type { SyntheticDatasetResult } from "../../lib/data/synthetic.js";

let tmp: string;
let big: SyntheticDatasetResult;
const BIG_COUNT = 240;
const BIG_SIZE_PX = 96;

function hashFolder(dir: string): string {
  const h = crypto.createHash("sha256");
  h.update(fs.readFileSync(path.join(dir, "labels.csv")));
  for (const name of fs.readdirSync(path.join(dir, "images")).sort()) {
    h.update(name);
    h.update(fs.readFileSync(path.join(dir, "images", name)));
  }
  return h.digest("hex");
}

/** Mann–Whitney AUC computed by counting pairs (independent of any lib code). */
function pairCountAuc(scores: number[], positive: boolean[]): number {
  let wins = 0;
  let pairs = 0;
  scores.forEach((a, i) => {
    if (!positive[i]) return;
    scores.forEach((b, j) => {
      if (positive[j]) return;
      pairs++;
      wins += a > b ? 1 : a === b ? 0.5 : 0;
    });
  });
  return wins / pairs;
}

beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), "mlab-syn-"));
  big = await generateSyntheticDataset({ outDir: path.join(tmp, "big"), imageCount: BIG_COUNT, imageSizePx: BIG_SIZE_PX, seed: 7, labelNoiseFraction: 0.05 });
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe("generateSyntheticDataset", () => {
  it("is deterministic by seed: same seed same bytes, another seed other bytes", async () => {
    const opts = { imageCount: 12, imageSizePx: 64, labelNoiseFraction: 0.1 };
    await generateSyntheticDataset({ ...opts, outDir: path.join(tmp, "a"), seed: 3 });
    await generateSyntheticDataset({ ...opts, outDir: path.join(tmp, "b"), seed: 3 });
    await generateSyntheticDataset({ ...opts, outDir: path.join(tmp, "c"), seed: 4 });
    expect(hashFolder(path.join(tmp, "a"))).toBe(hashFolder(path.join(tmp, "b")));
    expect(hashFolder(path.join(tmp, "a"))).not.toBe(hashFolder(path.join(tmp, "c")));
  });

  it("two generators writing one folder at once leave a lone run's bytes and no temporary files", async () => {
    const opts = { imageCount: 24, imageSizePx: 64, labelNoiseFraction: 0.1, seed: 5 };
    await generateSyntheticDataset({ ...opts, outDir: path.join(tmp, "lone") });
    await Promise.all([
      generateSyntheticDataset({ ...opts, outDir: path.join(tmp, "shared") }),
      generateSyntheticDataset({ ...opts, outDir: path.join(tmp, "shared") }),
    ]);
    expect(hashFolder(path.join(tmp, "shared"))).toBe(hashFolder(path.join(tmp, "lone")));
    const leftovers = [
      ...fs.readdirSync(path.join(tmp, "shared")),
      ...fs.readdirSync(path.join(tmp, "shared", "images")),
    ].filter((f) => f.endsWith(".tmp"));
    expect(leftovers).toEqual([]);
  });

  it("writes the labels.csv + images/ layout that loadDataset reads, with two-image lesions", async () => {
    const { records, problems, layout } = loadDataset(path.join(tmp, "big"));
    expect(layout).toBe("labels-csv");
    expect(problems).toEqual([]);
    expect(records).toHaveLength(BIG_COUNT);
    expect(records.map((r) => r.imageId)).toEqual(big.records.map((r) => r.imageId));
    const perLesion = new Map<string, number>();
    for (const r of records) perLesion.set(r.lesionId!, (perLesion.get(r.lesionId!) ?? 0) + 1);
    expect(perLesion.size).toBe(big.lesionCount);
    expect([...perLesion.values()].filter((n) => n === 2).length).toBe(BIG_COUNT - big.lesionCount);
    expect(Math.max(...perLesion.values())).toBe(2);
    // Ages are whole multiples of 5 years in 20–90 (the generator once wrote e.g. 98 and 37).
    const ages = records.map((r) => r.ageYears!);
    expect(ages.filter((a) => !(a % 5 === 0 && a >= 20 && a <= 90))).toEqual([]);
    expect(new Set(ages).size).toBeGreaterThan(5);
    // Both images of a lesion carry the same label.
    for (const [lesionId] of perLesion) {
      expect(new Set(records.filter((r) => r.lesionId === lesionId).map((r) => r.label)).size).toBe(1);
    }
    const batch = await loadImageBatch(records.slice(0, 3), { imageSizePx: BIG_SIZE_PX });
    expect(batch.problems).toEqual([]);
    const folds = createGroupedKFolds(records, { folds: 5, seed: 1 });
    expect(folds.reduce((n, f) => n + f.validation.length, 0)).toBe(BIG_COUNT);
  });

  it("balances classes and flips the requested fraction of lesion labels", () => {
    const lines = fs.readFileSync(big.labelsCsvPath, "utf8").trim().split("\n");
    const header = lines[0].split(",");
    const rows = lines.slice(1).map((l) => Object.fromEntries(l.split(",").map((v, i) => [header[i], v])));
    const lesions = new Map(rows.map((r) => [r.lesion_id, r]));
    const trueMalignant = [...lesions.values()].filter((r) => r.clean_label === "malignant").length;
    expect(trueMalignant).toBe(Math.round(lesions.size * 0.5));
    const flipped = [...lesions.values()].filter((r) => r.clean_label !== r.label).length;
    expect(flipped).toBe(Math.round(lesions.size * 0.05));
    expect(flipped).toBe(big.flippedLesionCount);
    // The four ABCD cues together separate the written labels well but not perfectly (overlap + label noise).
    const cueSum = rows.map((r) => Number(r.cue_asymmetry) + Number(r.cue_border_irregularity) + Number(r.cue_colour_variegation) + Number(r.cue_diameter));
    const cueAuc = pairCountAuc(cueSum, rows.map((r) => r.label === "malignant"));
    expect(cueAuc).toBeGreaterThan(0.8);
    expect(cueAuc).toBeLessThan(0.97);
    const malignantImages = rows.filter((r) => r.label === "malignant").length;
    expect(malignantImages / rows.length).toBeGreaterThan(0.4);
    expect(malignantImages / rows.length).toBeLessThan(0.6);
  });

  it("a hand-made lesion-area feature separates the classes better than chance but not perfectly", async () => {
    const { records } = loadDataset(path.join(tmp, "big"));
    const S = BIG_SIZE_PX;
    const batch = await loadImageBatch(records, { imageSizePx: S });
    const area: number[] = [];
    for (let n = 0; n < batch.records.length; n++) {
      const px = batch.pixels.subarray(n * S * S * 3, (n + 1) * S * S * 3);
      const lum = new Float64Array(S * S);
      for (let i = 0; i < S * S; i++) lum[i] = (px[i * 3] + px[i * 3 + 1] + px[i * 3 + 2]) / 3;
      const median = Float64Array.from(lum).sort()[(S * S) >> 1];
      // Dark pixels (< 80% of the image's median luminance) inside the central disk = lesion area.
      let count = 0;
      for (let y = 0; y < S; y++) {
        for (let x = 0; x < S; x++) {
          if ((x - S / 2) ** 2 + (y - S / 2) ** 2 > (0.4 * S) ** 2) continue;
          if (lum[y * S + x] < 0.8 * median) count++;
        }
      }
      area.push(count);
    }
    const auc = pairCountAuc(area, batch.records.map((r) => r.label === "malignant"));
    console.log(`lesion-area feature AUC on ${batch.records.length} synthetic images: ${auc.toFixed(3)}`);
    expect(auc).toBeGreaterThan(0.6);
    expect(auc).toBeLessThan(0.95);
  });

  it("records one of three synthetic clinics per lesion (ham_dataset), independent of the label, each with its own colour cast", async () => {
    const { records } = loadDataset(path.join(tmp, "big"));
    expect(records.map((r) => r.source)).toEqual(big.records.map((r) => r.source));
    const names = SYNTHETIC_SOURCES.map((s) => s.name);
    expect(names).toEqual(["synth_clinic_a", "synth_clinic_b", "synth_clinic_c"]);
    expect(new Set(records.map((r) => r.source))).toEqual(new Set(names));
    // Both views of a lesion come from the same clinic.
    const byLesion = new Map<string, Set<string>>();
    for (const r of records) byLesion.set(r.lesionId!, (byLesion.get(r.lesionId!) ?? new Set()).add(r.source!));
    expect([...byLesion.values()].every((s) => s.size === 1)).toBe(true);
    for (const name of names) {
      const ofSource = records.filter((r) => r.source === name);
      // Roughly a third each (240 images), and both labels at every clinic.
      expect(ofSource.length).toBeGreaterThan(40);
      expect(ofSource.length).toBeLessThan(120);
      const malignantShare = ofSource.filter((r) => r.label === "malignant").length / ofSource.length;
      expect(malignantShare).toBeGreaterThan(0.3);
      expect(malignantShare).toBeLessThan(0.7);
    }
    // The cast shows in the pixels: clinic b (warm) has the highest red/blue ratio, clinic c (cool) the lowest.
    const batch = await loadImageBatch(records, { imageSizePx: BIG_SIZE_PX });
    const redOverBlue = new Map<string, number[]>();
    const S2 = BIG_SIZE_PX * BIG_SIZE_PX;
    batch.records.forEach((r, n) => {
      let red = 0;
      let blue = 0;
      for (let i = 0; i < S2; i++) {
        red += batch.pixels[(n * S2 + i) * 3];
        blue += batch.pixels[(n * S2 + i) * 3 + 2];
      }
      redOverBlue.set(r.source!, [...(redOverBlue.get(r.source!) ?? []), red / blue]);
    });
    const mean = (name: string) => redOverBlue.get(name)!.reduce((a, b) => a + b, 0) / redOverBlue.get(name)!.length;
    expect(mean("synth_clinic_b")).toBeGreaterThan(mean("synth_clinic_a") * 1.1);
    expect(mean("synth_clinic_c")).toBeLessThan(mean("synth_clinic_a") * 0.95);
    expect(isSyntheticDatasetCurrent(path.join(tmp, "big"))).toBe(true);
  });

  it("tells a labels.csv from before the source column apart (prepareDataset then regenerates it)", () => {
    const old = path.join(tmp, "old");
    fs.mkdirSync(old, { recursive: true });
    fs.writeFileSync(path.join(old, "labels.csv"), "image_id,label,diagnosis,lesion_id,age,sex,localization,clean_label\nSYN_0000001,benign,nv,SYNL_000001,45,male,back,benign\n");
    expect(isSyntheticDatasetCurrent(old)).toBe(false);
    expect(isSyntheticDatasetCurrent(path.join(tmp, "missing"))).toBe(false);
  });

  it("rejects options out of range, naming the option", async () => {
    await expect(generateSyntheticDataset({ outDir: path.join(tmp, "x"), imageCount: 10, seed: 1, labelNoiseFraction: 0.7 })).rejects.toThrow(SyntheticDataOptionError);
    await expect(generateSyntheticDataset({ outDir: path.join(tmp, "x"), imageCount: 2, seed: 1 })).rejects.toThrow(/imageCount must be a number in 4–1000000; received 2/);
  });
});
