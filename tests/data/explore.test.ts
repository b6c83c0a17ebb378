import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { countByLabel, describeDataset, makeContactSheet, renderImagePreviewPng } from "../../lib/data/explore.js";
import { loadDataset } from "../../lib/data/loadDataset.js";
import type { LesionRecord } from "../../lib/data/types.js";
import { requireSharedPath } from "../helpers/shared.js";

let tmp: string;
const records: LesionRecord[] = [];

beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), "mlab-explore-"));
  const colours = ["#ff0000", "#00ff00", "#0000ff", "#ffff00", "#00ffff"];
  for (let i = 0; i < colours.length; i++) {
    const imagePath = path.join(tmp, `img${i}.png`);
    await sharp({ create: { width: 40, height: 30, channels: 3, background: colours[i] } }).png().toFile(imagePath);
    records.push({
      imageId: `img${i}`,
      imagePath,
      label: i < 3 ? "benign" : "malignant",
      diagnosis: i < 3 ? "nv" : i === 3 ? "mel" : "bcc",
      lesionId: `L${Math.min(i, 3)}`,
      ageYears: [35, 38, undefined, 61, 70][i],
      sex: i % 2 ? "male" : "female",
    });
  }
  fs.writeFileSync(path.join(tmp, "broken.jpg"), "not an image");
  records.push({ imageId: "broken", imagePath: path.join(tmp, "broken.jpg"), label: "malignant" });
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe("describeDataset", () => {
  it("counts by label, diagnosis, age group and sex, as rows, danfojs DataFrames and Plotly figures", () => {
    const d = describeDataset(records);
    expect(d.imageCount).toBe(6);
    expect(d.lesionCount).toBe(5); // L0, L1, L2, L3 (two images) and the image without a lesion id
    expect(d.rows.label).toEqual([
      { value: "benign", benign: 3, malignant: 0, total: 3, malignantFraction: 0 },
      { value: "malignant", benign: 0, malignant: 3, total: 3, malignantFraction: 1 },
    ]);
    expect(d.rows.ageGroup.map((r) => [r.value, r.benign, r.malignant])).toEqual([
      ["30–39", 2, 0],
      ["60–69", 0, 1],
      ["70–79", 0, 1],
      ["unknown", 1, 1],
    ]);
    expect(d.rows.diagnosis.map((r) => [r.value, r.total])).toEqual([["bcc", 1], ["mel", 1], ["nv", 3], ["unknown", 1]]);
    const frame = d.frames.diagnosis;
    expect(frame.shape).toEqual([4, 5]);
    expect(frame.columns).toEqual(["value", "benign", "malignant", "total", "malignant_fraction"]);
    expect(frame.values[2]).toEqual(["nv", 3, 0, 3, 0]);
    const fig = d.figures.sex;
    expect(fig.data.map((t) => t.name)).toEqual(["benign", "malignant"]);
    expect(fig.data[0].x).toEqual(["female", "male", "unknown"]);
    expect(fig.data[1].y).toEqual([1, 1, 1]);
    expect(fig.layout.barmode).toBe("stack");
    expect(JSON.parse(JSON.stringify(fig))).toEqual(fig);
    expect(fig.layout.title.text).toBe("images by sex, benign and malignant");
    expect(d.figures.label.layout.title.text).toBe("images per label (class balance)");
    for (const f of Object.values(d.figures)) expect(f.layout.title.text).not.toMatch(/label and label/);
  });

  it("lists missing values per column and describes the numeric columns with danfojs", () => {
    const d = describeDataset(records);
    // Counted by hand from the six records above: no patient ids, one age missing, no site or
    // source, and the broken image has no diagnosis, lesion, age or sex.
    expect(d.missingValues.columns).toEqual(["column", "missing", "missing_fraction"]);
    expect(d.missingValues.values).toEqual([
      ["diagnosis", 1, 0.1667],
      ["lesion_id", 1, 0.1667],
      ["patient_id", 6, 1],
      ["age_years", 2, 0.3333],
      ["sex", 1, 0.1667],
      ["site", 6, 1],
      ["source", 6, 1],
    ]);
    // Ages present: 35, 38, 61, 70 → mean 51, median (38 + 61) / 2, sample variance (16² + 13² + 10² + 19²) / 3 = 886 / 3.
    expect(d.numericSummary.columns).toEqual(["age_years"]);
    expect(d.numericSummary.index).toEqual(["count", "mean", "std", "min", "median", "max", "variance"]);
    const stats = (d.numericSummary.values as number[][]).map((row) => row[0]);
    expect(stats[0]).toBe(4);
    expect(stats[1]).toBeCloseTo(51, 10);
    expect(stats[2]).toBeCloseTo(Math.sqrt(886 / 3), 10);
    expect([stats[3], stats[4], stats[5]]).toEqual([35, 49.5, 70]);
    expect(stats[6]).toBeCloseTo(886 / 3, 10);
  });

  it("on the real HAM dev set matches counts taken straight from labels.csv", (ctx) => {
    const dir = requireSharedPath(ctx, "data/ham10000-dev");
    const { records: ham } = loadDataset(dir);
    const lines = fs.readFileSync(path.join(dir, "labels.csv"), "utf8").trim().split(/\r?\n/).slice(1).map((l) => l.split(","));
    const mel = lines.filter((c) => c[2] === "mel").length;
    const rows = countByLabel(ham, "diagnosis");
    expect(rows.find((r) => r.value === "mel")).toEqual({ value: "mel", benign: 0, malignant: mel, total: mel, malignantFraction: 1 });
    expect(rows.reduce((n, r) => n + r.total, 0)).toBe(1998);
    const d = describeDataset(ham);
    expect(d.lesionCount).toBe(1998);
    expect(d.frames.site.shape[0]).toBe(new Set(lines.map((c) => c[10])).size);
  });
});

describe("makeContactSheet", () => {
  it("lays out one row per class with the right images, coloured bars, and a gray tile for a bad file", async () => {
    const thumb = 16;
    const gap = 4;
    const bar = 4;
    const sheet = await makeContactSheet(records, { perClass: 3, thumbSizePx: thumb, gapPx: gap });
    expect(sheet.imageIds).toEqual([["img0", "img1", "img2"], ["img3", "img4", "broken"]]);
    const { data, info } = await sharp(sheet.png).raw().toBuffer({ resolveWithObject: true });
    expect([info.width, info.height]).toEqual([bar + gap + 3 * (thumb + gap), 2 * (thumb + gap) + gap]);
    expect([sheet.widthPx, sheet.heightPx]).toEqual([info.width, info.height]);
    const at = (x: number, y: number) => [...data.subarray((y * info.width + x) * info.channels, (y * info.width + x) * info.channels + 3)];
    const tileCentre = (row: number, col: number) => at(bar + gap + col * (thumb + gap) + thumb / 2, gap + row * (thumb + gap) + thumb / 2);
    expect(tileCentre(0, 0)).toEqual([255, 0, 0]);
    expect(tileCentre(0, 2)).toEqual([0, 0, 255]);
    expect(tileCentre(1, 0)).toEqual([255, 255, 0]);
    expect(tileCentre(1, 2)).toEqual([128, 128, 128]);
    expect(at(1, gap + 2)).toEqual([0x4c, 0x78, 0xa8]);
    expect(at(1, gap + thumb + gap + 2)).toEqual([0xe4, 0x57, 0x56]);
    expect(sheet.problems).toHaveLength(1);
    expect(sheet.problems[0].file).toBe(path.join(tmp, "broken.jpg"));
    const seeded = await makeContactSheet(records, { perClass: 2, thumbSizePx: thumb, seed: 5 });
    expect((await makeContactSheet(records, { perClass: 2, thumbSizePx: thumb, seed: 5 })).imageIds).toEqual(seeded.imageIds);
  });
});

describe("renderImagePreviewPng", () => {
  it("fits an image inside maxSidePx keeping its aspect, and names a file it cannot decode", async () => {
    const png = await renderImagePreviewPng(records[0].imagePath, 20);
    const meta = await sharp(png).metadata();
    expect([meta.format, meta.width, meta.height]).toEqual(["png", 20, 15]); // 40×30 source
    const { data } = await sharp(png).raw().toBuffer({ resolveWithObject: true });
    expect([...data.subarray(0, 3)]).toEqual([255, 0, 0]);
    await expect(renderImagePreviewPng(path.join(tmp, "broken.jpg"))).rejects.toThrow(/cannot decode .*broken\.jpg/);
  });
});
