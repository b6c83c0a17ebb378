import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { decodeImageRgb } from "../../lib/data/decodeImage.js";
import { createImageCache, streamImageBatches } from "../../lib/data/stream.js";
import type { ImageCache } from "../../lib/data/stream.js";
import type { LesionRecord } from "../../lib/data/types.js";

let tmp: string;
const records: LesionRecord[] = [];

beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), "mlab-stream-"));
  for (let i = 0; i < 10; i++) {
    const imagePath = path.join(tmp, `img${i}.png`);
    await sharp({ create: { width: 20, height: 12, channels: 3, background: { r: i * 20, g: 100, b: 255 - i * 20 } } }).png().toFile(imagePath);
    records.push({ imageId: `img${i}`, imagePath, label: i % 2 ? "malignant" : "benign" });
  }
  fs.writeFileSync(path.join(tmp, "bad.jpg"), "nope");
  records.splice(4, 0, { imageId: "bad", imagePath: path.join(tmp, "bad.jpg"), label: "benign" });
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe("streamImageBatches", () => {
  it("yields every good image once, in order, with the bad one as a problem in its batch", async () => {
    const seen: string[] = [];
    const batches = [];
    for await (const b of streamImageBatches(records, { batchSize: 4, imageSizePx: 8 })) {
      batches.push(b);
      seen.push(...b.records.map((r) => r.imageId));
      expect(b.pixels.length).toBe(b.records.length * 8 * 8 * 3);
    }
    expect(batches.map((b) => [b.batchIndex, b.batchCount, b.records.length, b.problems.length])).toEqual([
      [0, 3, 4, 0],
      [1, 3, 3, 1],
      [2, 3, 3, 0],
    ]);
    expect(seen).toEqual(records.filter((r) => r.imageId !== "bad").map((r) => r.imageId));
    expect(batches[1].problems[0].file).toBe(path.join(tmp, "bad.jpg"));
    const direct = await decodeImageRgb(records[0].imagePath, 8);
    expect(batches[0].pixels.subarray(0, direct.length)).toEqual(direct);
  });

  it("decodes lazily: never more than one batch ahead of the consumer", async () => {
    const started: string[] = [];
    const spy: ImageCache = {
      dir: tmp,
      stats: { hits: 0, misses: 0, repaired: 0 },
      decode: async (p, size, policy) => {
        started.push(path.basename(p));
        return decodeImageRgb(p, size, policy);
      },
    };
    const good = records.filter((r) => r.imageId !== "bad");
    let index = 0;
    for await (const b of streamImageBatches(good, { batchSize: 2, imageSizePx: 4, cache: spy, prefetchBatches: 1 })) {
      // Consumer is at batch `index`: decodes were started for batches ≤ index + 1 only.
      expect(started.length).toBeLessThanOrEqual(Math.min(good.length, (index + 2) * 2));
      await new Promise((r) => setTimeout(r, 20)); // the prefetched batch finishes meanwhile
      expect(started.length).toBe(Math.min(good.length, (index + 2) * 2));
      expect(b.batchIndex).toBe(index++);
    }
    expect(index).toBe(5);
  });

  it("shuffles and augments deterministically by seed and epoch", async () => {
    const run = async (epoch: number) => {
      const ids: string[] = [];
      const chunks: Uint8Array[] = [];
      for await (const b of streamImageBatches(records, { batchSize: 3, imageSizePx: 8, shuffleSeed: 5, epoch, augment: { seed: 9 } })) {
        ids.push(...b.records.map((r) => r.imageId));
        chunks.push(b.pixels);
      }
      return { ids, bytes: Buffer.concat(chunks).toString("base64") };
    };
    const a = await run(0);
    expect(await run(0)).toEqual(a);
    const b = await run(1);
    expect(b.ids).not.toEqual(a.ids);
    expect(a.ids.slice().sort()).toEqual(b.ids.slice().sort());
  });
});

describe("createImageCache", () => {
  it("serves the second read from disk, keyed by content and size, and repairs a torn entry", async () => {
    const cache = createImageCache(path.join(tmp, "cache"));
    const file = records[0].imagePath;
    const first = await cache.decode(file, 8);
    const second = await cache.decode(file, 8);
    expect(second).toEqual(first);
    expect(cache.stats).toEqual({ hits: 1, misses: 1, repaired: 0 });
    await cache.decode(file, 6);
    expect(cache.stats.misses).toBe(2);
    // Same path, new content: a new key, so no stale pixels.
    const changing = path.join(tmp, "changing.png");
    await sharp({ create: { width: 4, height: 4, channels: 3, background: "#ff0000" } }).png().toFile(changing);
    const red = await cache.decode(changing, 4);
    await sharp({ create: { width: 4, height: 4, channels: 3, background: "#0000ff" } }).png().toFile(changing);
    const blue = await cache.decode(changing, 4);
    expect([red[0], red[2]]).toEqual([255, 0]);
    expect([blue[0], blue[2]]).toEqual([0, 255]);
    // Truncate every entry: the cache notices and decodes again.
    const entries = fs.readdirSync(cache.dir, { recursive: true }).map(String).filter((f) => f.endsWith(".rgb"));
    expect(entries).toHaveLength(4);
    for (const e of entries) fs.truncateSync(path.join(cache.dir, e), 5);
    expect(await cache.decode(file, 8)).toEqual(first);
    expect(cache.stats.repaired).toBe(1);
    await expect(cache.decode(path.join(tmp, "nope.jpg"), 8)).rejects.toThrow(/nope\.jpg: file not found/);
  });
});
