import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { decodeImageRgb, MAX_INPUT_PIXELS } from "../../lib/data/decodeImage.js";
import { loadDataset, summarizeProblems } from "../../lib/data/loadDataset.js";
import { loadImageBatch, mapWithConcurrency } from "../../lib/data/loadImageBatch.js";
import type { LesionRecord } from "../../lib/data/types.js";
import { pngDeclaringSize } from "../helpers/pngHeader.js";


let tmp: string;
const file = (name: string) => path.join(tmp, "images", name);
const recordFor = (name: string, label: LesionRecord["label"] = "benign"): LesionRecord => ({
  imageId: path.parse(name).name,
  imagePath: file(name),
  label,
});

function pixelAt(rgb: Uint8Array, sizePx: number, x: number, y: number): number[] {
  const o = (y * sizePx + x) * 3;
  return [rgb[o], rgb[o + 1], rgb[o + 2]];
}

beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), "mlab-robust-"));
  fs.mkdirSync(path.join(tmp, "images"));
  const solid = (r: number, g: number, b: number) => sharp({ create: { width: 32, height: 32, channels: 3, background: { r, g, b } } });
  await solid(200, 120, 90).jpeg().toFile(file("good1.jpg"));
  await solid(90, 60, 40).png().toFile(file("good2.png"));
  fs.writeFileSync(file("empty.jpg"), Buffer.alloc(0));
  const noisy = Buffer.alloc(64 * 64 * 3);
  for (let i = 0; i < noisy.length; i++) noisy[i] = (i * 7919) % 251;
  const fullJpeg = await sharp(noisy, { raw: { width: 64, height: 64, channels: 3 } }).jpeg({ quality: 95 }).toBuffer();
  fs.writeFileSync(file("truncated.jpg"), fullJpeg.subarray(0, Math.floor(fullJpeg.length / 2)));
  fs.writeFileSync(file("text.jpg"), "image_id,label\nthis is a CSV, not a JPEG\n");
  // 50%-transparent red over nothing: flattened onto black gives about (128, 0, 0).
  await sharp({ create: { width: 16, height: 16, channels: 4, background: { r: 255, g: 0, b: 0, alpha: 0.5 } } }).png().toFile(file("alpha.png"));
  const sixteen = new Uint16Array(16 * 16 * 3);
  for (let i = 0; i < 16 * 16; i++) {
    sixteen[i * 3] = 65535; // R full
    sixteen[i * 3 + 1] = 32768; // G half
  }
  // A Uint16Array input tells sharp the raw samples are 16-bit.
  await sharp(sixteen, { raw: { width: 16, height: 16, channels: 3 } })
    .toColourspace("rgb16")
    .png()
    .toFile(file("deep16.png"));
  await solid(100, 150, 200).toColourspace("b-w").jpeg().toFile(file("gray.jpg"));
  await solid(200, 40, 40).toColourspace("cmyk").jpeg({ quality: 95 }).toFile(file("cmyk.jpg"));
  // Stored landscape: left half red, right half blue; EXIF orientation 6 = rotate 90° clockwise to view.
  const stripes = Buffer.alloc(32 * 16 * 3);
  for (let y = 0; y < 16; y++) {
    for (let x = 0; x < 32; x++) {
      const o = (y * 32 + x) * 3;
      if (x < 16) stripes[o] = 255;
      else stripes[o + 2] = 255;
    }
  }
  await sharp(stripes, { raw: { width: 32, height: 16, channels: 3 } }).jpeg({ quality: 100 }).withMetadata({ orientation: 6 }).toFile(file("rotated.jpg"));
  fs.writeFileSync(file("bomb.png"), pngDeclaringSize(100_000, 100_000));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe("decodeImageRgb on awkward files", () => {
  it("zero-byte file → problem naming the file", async () => {
    await expect(decodeImageRgb(file("empty.jpg"), 8)).rejects.toThrow(/empty\.jpg: file is empty/);
  });
  it("truncated JPEG → problem", async () => {
    await expect(decodeImageRgb(file("truncated.jpg"), 8)).rejects.toThrow(/truncated\.jpg: cannot decode/);
  });
  it("non-image file named .jpg → problem", async () => {
    await expect(decodeImageRgb(file("text.jpg"), 8)).rejects.toThrow(/text\.jpg: cannot decode as an image/);
  });
  it("PNG with alpha is flattened onto black", async () => {
    const [r, g, b] = pixelAt(await decodeImageRgb(file("alpha.png"), 8), 8, 4, 4);
    expect(Math.abs(r - 128)).toBeLessThanOrEqual(2);
    expect(g).toBe(0);
    expect(b).toBe(0);
  });
  it("16-bit PNG comes out as 8-bit RGB with the same colour", async () => {
    const meta = await sharp(file("deep16.png")).metadata();
    expect(meta.depth).toBe("ushort");
    const [r, g, b] = pixelAt(await decodeImageRgb(file("deep16.png"), 8), 8, 3, 3);
    expect(r).toBe(255);
    expect(Math.abs(g - 128)).toBeLessThanOrEqual(1);
    expect(b).toBe(0);
  });
  it("grayscale JPEG gives three equal channels", async () => {
    expect((await sharp(file("gray.jpg")).metadata()).channels).toBe(1);
    const [r, g, b] = pixelAt(await decodeImageRgb(file("gray.jpg"), 8), 8, 2, 2);
    expect(r).toBe(g);
    expect(g).toBe(b);
    const { data } = await sharp(file("gray.jpg")).raw().toBuffer({ resolveWithObject: true });
    expect(Math.abs(r - data[0])).toBeLessThanOrEqual(1); // the stored gray level, replicated
  });
  it("CMYK JPEG is converted to sRGB close to the original colour", async () => {
    expect((await sharp(file("cmyk.jpg")).metadata()).space).toBe("cmyk");
    const [r, g, b] = pixelAt(await decodeImageRgb(file("cmyk.jpg"), 8), 8, 4, 4);
    expect(r).toBeGreaterThan(150);
    expect(g).toBeLessThan(100);
    expect(b).toBeLessThan(100);
  });
  it("EXIF-rotated JPEG comes out upright (red on top, blue below)", async () => {
    expect((await sharp(file("rotated.jpg")).metadata()).orientation).toBe(6);
    const rgb = await decodeImageRgb(file("rotated.jpg"), 16, "squash");
    const top = pixelAt(rgb, 16, 8, 2);
    const bottom = pixelAt(rgb, 16, 8, 13);
    expect(top[0]).toBeGreaterThan(200);
    expect(top[2]).toBeLessThan(60);
    expect(bottom[2]).toBeGreaterThan(200);
    expect(bottom[0]).toBeLessThan(60);
  });
  it("a header claiming 10^10 pixels is refused by the pixel limit, without allocating it", async () => {
    const before = process.memoryUsage().rss;
    await expect(decodeImageRgb(file("bomb.png"), 8)).rejects.toThrow(new RegExp(`bomb\\.png: image is larger than the limit of ${MAX_INPUT_PIXELS} pixels`));
    expect(process.memoryUsage().rss - before).toBeLessThan(200 * 1024 * 1024);
  });
});

describe("loadImageBatch", () => {
  it("packs the good images in input order and turns every bad one into a problem", async () => {
    const names = ["good1.jpg", "empty.jpg", "truncated.jpg", "alpha.png", "text.jpg", "deep16.png", "gray.jpg", "cmyk.jpg", "rotated.jpg", "bomb.png", "missing.jpg", "good2.png"];
    const batch = await loadImageBatch(names.map((n) => recordFor(n)), { imageSizePx: 8, concurrency: 3 });
    expect(batch.records.map((r) => r.imageId)).toEqual(["good1", "alpha", "deep16", "gray", "cmyk", "rotated", "good2"]);
    expect(batch.pixels.length).toBe(7 * 8 * 8 * 3);
    expect(pixelAt(batch.pixels.subarray(0, 192), 8, 0, 0).map((v) => Math.round(v / 10))).toEqual([20, 12, 9]);
    const last = batch.pixels.subarray(6 * 192);
    expect(pixelAt(last, 8, 1, 1).map((v) => Math.round(v / 10))).toEqual([9, 6, 4]);
    expect(batch.problems.map((p) => path.basename(p.file))).toEqual(["empty.jpg", "truncated.jpg", "text.jpg", "bomb.png", "missing.jpg"]);
    expect(batch.problems[4].reason).toMatch(/image missing: file not found/);
    const summary = summarizeProblems(batch.problems);
    expect(summary[0]).toBe("5 input problems (skipped or partly loaded):");
    expect(summary.slice(1).every((line) => line.includes(tmp))).toBe(true);
  });

  it("a labels.csv dataset with bad rows and files loads the rest end to end", async () => {
    const names = ["good1", "empty", "truncated", "text", "alpha", "cmyk", "good2"];
    const csv = ["image_id,label", ...names.map((n, i) => `${n},${i % 2 ? "malignant" : "benign"}`), "good1,malignant", "nothere,benign", "cmyk,cancer"].join("\n");
    fs.writeFileSync(path.join(tmp, "labels.csv"), csv);
    const { records, problems } = loadDataset(tmp);
    expect(problems.map((p) => p.reason.match(/listed twice|not found|unknown label/)?.[0])).toEqual(["listed twice", "not found", "unknown label"]);
    const batch = await loadImageBatch(records, { imageSizePx: 16 });
    expect(batch.records.map((r) => r.imageId)).toEqual(["good1", "alpha", "cmyk", "good2"]);
    expect([...problems, ...batch.problems]).toHaveLength(6);
  });

  it("mapWithConcurrency never runs more than the bound at once and keeps order", async () => {
    let active = 0;
    let peak = 0;
    const out = await mapWithConcurrency([5, 1, 4, 2, 3, 0], 2, async (ms, i) => {
      active++;
      peak = Math.max(peak, active);
      await new Promise((r) => setTimeout(r, ms * 3));
      active--;
      if (i === 3) throw new Error("boom");
      return ms * 10;
    });
    expect(peak).toBe(2);
    expect(out.map((o) => ("value" in o ? o.value : "error"))).toEqual([50, 10, 40, "error", 30, 0]);
    await expect(mapWithConcurrency([1], 0, async () => 1)).rejects.toThrow(/concurrency must be a whole number ≥ 1; received 0/);
  });
});
