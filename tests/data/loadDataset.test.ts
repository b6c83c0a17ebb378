import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  DatasetFormatError,
  detectDatasetLayout,
  loadDataset,
  loadFolderPerClassDataset,
  loadLabelsCsvDataset,
  summarizeProblems,
} from "../../lib/data/loadDataset.js";
import { loadImageBatch } from "../../lib/data/loadImageBatch.js";
import { assertNoGroupLeakage, createGroupedKFolds, splitByLesion } from "../../lib/data/split.js";
import { requireSharedPath } from "../helpers/shared.js";

let tmp: string;

async function writeJpeg(file: string, colour = { r: 120, g: 80, b: 60 }): Promise<void> {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  await sharp({ create: { width: 8, height: 8, channels: 3, background: colour } }).jpeg().toFile(file);
}

beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), "mlab-load-"));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe("loadLabelsCsvDataset", () => {
  it("reads quoted fields, a BOM and CRLF line ends, with optional columns", async () => {
    const dir = path.join(tmp, "csv-good");
    await writeJpeg(path.join(dir, "images", "ISIC_1.jpg"));
    await writeJpeg(path.join(dir, "images", "ISIC_2.png"));
    await writeJpeg(path.join(dir, "images", "ISIC_3.jpeg"));
    const csv =
      "\uFEFFimage_id,label,diagnosis,lesion_id,age,sex,localization,ham_dataset\r\n" +
      'ISIC_1,benign,nv,HAM_1,45,female,"back, upper",rosendahl\r\n' +
      "ISIC_2,Malignant,MEL,HAM_2,,male,face,vidir_modern\r\n" +
      "\r\n" +
      "ISIC_3,1,bcc,HAM_2,unknown,,,\r\n";
    fs.writeFileSync(path.join(dir, "labels.csv"), csv);
    const { records, problems } = loadLabelsCsvDataset(dir);
    expect(problems).toEqual([]);
    expect(records.map((r) => [r.imageId, r.label])).toEqual([
      ["ISIC_1", "benign"],
      ["ISIC_2", "malignant"],
      ["ISIC_3", "malignant"],
    ]);
    expect(records[0]).toMatchObject({ diagnosis: "nv", lesionId: "HAM_1", ageYears: 45, sex: "female", site: "back, upper", source: "rosendahl" });
    expect(records[0].imagePath).toBe(path.join(dir, "images", "ISIC_1.jpg"));
    expect(records[1].imagePath.endsWith("ISIC_2.png")).toBe(true);
    expect(records[1].ageYears).toBeUndefined();
    expect(records[1].diagnosis).toBe("mel");
    expect(records[2].imagePath.endsWith("ISIC_3.jpeg")).toBe(true);
  });

  it("throws a named error listing found and expected columns when a required column is missing", () => {
    const dir = path.join(tmp, "csv-nolabel");
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, "labels.csv"), "image_id,diagnosis\nISIC_1,nv\n");
    expect(() => loadLabelsCsvDataset(dir)).toThrow(DatasetFormatError);
    expect(() => loadLabelsCsvDataset(dir)).toThrow(/missing required column\(s\) "label".*found columns "image_id", "diagnosis".*expected at least "image_id", "label"/);
  });

  it("records unknown labels, duplicate ids and missing images as problems and keeps the rest", async () => {
    const dir = path.join(tmp, "csv-bad");
    await writeJpeg(path.join(dir, "images", "A.jpg"));
    await writeJpeg(path.join(dir, "images", "B.jpg"));
    await writeJpeg(path.join(dir, "images", "C.jpg"));
    fs.writeFileSync(
      path.join(dir, "labels.csv"),
      "image_id,label\nA,benign\nB,malignnat\nA,malignant\nMISSING,benign\nC,malignant\n,benign\n",
    );
    const { records, problems } = loadLabelsCsvDataset(dir);
    expect(records.map((r) => r.imageId)).toEqual(["A", "C"]);
    expect(records[0].label).toBe("benign"); // the first listing of A is kept
    expect(problems).toHaveLength(4);
    const csvFile = path.join(dir, "labels.csv");
    expect(problems[0]).toMatchObject({ file: csvFile, row: 3, field: "label" });
    expect(problems[0].reason).toMatch(/unknown label "malignnat".*"benign", "malignant".*did you mean "malignant"/);
    expect(problems[1]).toMatchObject({ row: 4, field: "image_id" });
    expect(problems[1].reason).toMatch(/"A" is listed twice \(first at row 2\)/);
    expect(problems[2]).toMatchObject({ row: 5 });
    expect(problems[2].reason).toMatch(/image file for MISSING not found/);
    expect(problems[3]).toMatchObject({ row: 7, field: "image_id" });
    const summary = summarizeProblems(problems);
    expect(summary[0]).toBe("4 input problems (skipped or partly loaded):");
    expect(summary[1]).toContain(`${csvFile}:3 [label]`);
    expect(summarizeProblems(problems, 2).at(-1)).toBe("  … and 2 more");
    expect(summarizeProblems([])).toEqual(["0 input problems"]);
  });

  it("flags an age that is not a number but keeps the row", async () => {
    const dir = path.join(tmp, "csv-age");
    await writeJpeg(path.join(dir, "images", "A.jpg"));
    fs.writeFileSync(path.join(dir, "labels.csv"), "image_id,label,age\nA,benign,forty\n");
    const { records, problems } = loadLabelsCsvDataset(dir);
    expect(records).toHaveLength(1);
    expect(records[0].ageYears).toBeUndefined();
    expect(problems[0]).toMatchObject({ row: 2, field: "age" });
  });
});

describe("loadFolderPerClassDataset", () => {
  it("reads train/valid/test × benign/malignant folders and reports stray folders and files", async () => {
    const dir = path.join(tmp, "folders");
    await writeJpeg(path.join(dir, "train", "benign", "b1.jpg"));
    await writeJpeg(path.join(dir, "train", "benign", "b2.JPG"));
    await writeJpeg(path.join(dir, "train", "Malignant", "m1.png"));
    await writeJpeg(path.join(dir, "valid", "benign", "b3.jpg"));
    await writeJpeg(path.join(dir, "test", "malignant", "m2.jpeg"));
    await writeJpeg(path.join(dir, "train", "malignant", "m2.jpg")); // same id as test/malignant/m2 (read first: sorted)
    await writeJpeg(path.join(dir, "train", "benig", "x.jpg"));
    fs.writeFileSync(path.join(dir, "train", "benign", "notes.txt"), "hello");
    fs.writeFileSync(path.join(dir, "train", "benign", ".DS_Store"), "");
    const { records, problems } = loadFolderPerClassDataset(dir);
    const seen = records.map((r) => `${r.predefinedSplit}/${r.label}/${r.imageId}`).sort();
    expect(seen).toEqual(["test/malignant/m2", "train/benign/b1", "train/benign/b2", "train/malignant/m1", "validation/benign/b3"]);
    expect(problems).toHaveLength(3);
    const reasons = problems.map((p) => `${path.relative(dir, p.file)}: ${p.reason}`).join("\n");
    expect(reasons).toMatch(/train\/benig: unknown folder "benig".*did you mean "benign"/);
    expect(reasons).toMatch(/notes\.txt: not an image file/);
    expect(reasons).toMatch(/train\/malignant\/m2\.jpg: image id "m2" also at .*test\/malignant\/m2\.jpeg/);
  });

  it("reads benign/ and malignant/ directly under the dataset folder", async () => {
    const dir = path.join(tmp, "flat");
    await writeJpeg(path.join(dir, "benign", "a.jpg"));
    await writeJpeg(path.join(dir, "malignant", "b.jpg"));
    const { records, problems, layout } = loadDataset(dir);
    expect(layout).toBe("folder-per-class");
    expect(problems).toEqual([]);
    expect(records.map((r) => [r.imageId, r.label, r.predefinedSplit])).toEqual([
      ["a", "benign", undefined],
      ["b", "malignant", undefined],
    ]);
  });
});

describe("loadDataset", () => {
  it("detects the labels.csv layout and refuses a folder it cannot read", () => {
    expect(detectDatasetLayout(path.join(tmp, "csv-good"))).toBe("labels-csv");
    expect(loadDataset(path.join(tmp, "csv-good")).records).toHaveLength(3);
    const empty = path.join(tmp, "empty");
    fs.mkdirSync(empty, { recursive: true });
    fs.writeFileSync(path.join(empty, "readme.md"), "x");
    expect(() => loadDataset(empty)).toThrow(/cannot tell the dataset layout: found "readme.md"; expected labels.csv/);
    expect(() => loadDataset(empty, { layout: "labels-cvs" as never })).toThrow(/did you mean "labels-csv"/);
  });
});

describe("real HAM10000 dev set (../shared)", () => {
  it("loads 1,998 records with no problems; a lesion-grouped split does not leak", (ctx) => {
    const dir = requireSharedPath(ctx, "data/ham10000-dev");
    const { records, problems, layout } = loadDataset(dir);
    expect(layout).toBe("labels-csv");
    expect(problems).toEqual([]);
    expect(records).toHaveLength(1998);
    expect(records.filter((r) => r.label === "malignant")).toHaveLength(938);
    for (const r of records) {
      expect(r.lesionId).toMatch(/^HAM_\d{7}$/);
      expect(r.label === "malignant").toBe(["mel", "bcc", "akiec"].includes(r.diagnosis!));
    }
    expect(fs.existsSync(records[0].imagePath)).toBe(true);
    const { train, validation } = splitByLesion(records, { validationFraction: 0.2, seed: 42 });
    expect(train.length + validation.length).toBe(1998);
    expect(Math.abs(validation.length - 400)).toBeLessThanOrEqual(2);
    expect(assertNoGroupLeakage([train, validation])).toBe(1998);
    const folds = createGroupedKFolds(records, { folds: 5, seed: 1 });
    expect(assertNoGroupLeakage(folds.map((f) => f.validation))).toBe(1998);
    for (const f of folds) expect(Math.abs(f.validation.filter((r) => r.label === "malignant").length / f.validation.length - 938 / 1998)).toBeLessThan(0.01);
  });

  it("decodes a sample of the real images with no problems", async (ctx) => {
    const dir = requireSharedPath(ctx, "data/ham10000-dev");
    const { records } = loadDataset(dir);
    const batch = await loadImageBatch(records.slice(0, 64), { imageSizePx: 224, concurrency: 4 });
    expect(batch.problems).toEqual([]);
    expect(batch.pixels.length).toBe(64 * 224 * 224 * 3);
    // Real dermoscopy is not blank: per-image pixel spread is wide.
    const first = batch.pixels.subarray(0, 224 * 224 * 3);
    let lo = 255;
    let hi = 0;
    for (const v of first) {
      lo = Math.min(lo, v);
      hi = Math.max(hi, v);
    }
    expect(hi - lo).toBeGreaterThan(100);
  });
});
