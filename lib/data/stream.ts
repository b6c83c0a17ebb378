import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { MelanomaLabError } from "../util/errors.js";
import { shuffleWithSeed } from "../util/random.js";
import { randomAugmentImage } from "./augment.js";
import type { AugmentOptions } from "./augment.js";
import { decodeImageRgb, ImageDecodeError } from "./decodeImage.js";
import type { ResizePolicy } from "./decodeImage.js";
import { mapWithConcurrency } from "./loadImageBatch.js";
import type { ImageBatch } from "./loadImageBatch.js";
import type { InputProblem, LesionRecord } from "./types.js";

/** Counters of an {@link ImageCache}: how often a resized image came from disk vs was decoded. */
export interface ImageCacheStats {
  hits: number;
  misses: number;
  /** Cache files that were unreadable or the wrong length and were decoded again. */
  repaired: number;
}

/**
 * An on-disk cache of resized RGB images. The key is the SHA-256 of the input file's bytes, the
 * input's byte length, the output size and the resize policy, so an edited or replaced file is never
 * served stale and one file at two sizes has two entries. Files are `<dir>/<2 hex>/<key>.rgb`
 * (raw HWC bytes), written to a temporary name and renamed, so a crash never leaves a torn entry.
 */
export interface ImageCache {
  dir: string;
  stats: ImageCacheStats;
  /** Decodes via the cache: same contract as {@link decodeImageRgb}. */
  decode(filePath: string, imageSizePx: number, resizePolicy?: ResizePolicy): Promise<Uint8Array>;
}

/**
 * Opens (creating if needed) an on-disk cache of resized images; see {@link ImageCache}.
 *
 * @example const cache = createImageCache("data/cache/images"); const rgb = await cache.decode(file, 224);
 */
export function createImageCache(dir: string): ImageCache {
  const root = path.resolve(dir);
  fs.mkdirSync(root, { recursive: true });
  const stats: ImageCacheStats = { hits: 0, misses: 0, repaired: 0 };
  let tmpCounter = 0;
  return {
    dir: root,
    stats,
    async decode(filePath, imageSizePx, resizePolicy = "center-crop") {
      let bytes: Buffer;
      try {
        bytes = await fs.promises.readFile(filePath);
      } catch {
        // Let the decoder produce its usual "file not found" error.
        return decodeImageRgb(filePath, imageSizePx, resizePolicy);
      }
      const hash = crypto.createHash("sha256").update(bytes).digest("hex");
      const key = `${hash}-${bytes.length}b-${imageSizePx}px-${resizePolicy}`;
      const entry = path.join(root, hash.slice(0, 2), `${key}.rgb`);
      const expectedBytes = imageSizePx * imageSizePx * 3;
      try {
        const cached = await fs.promises.readFile(entry);
        if (cached.length === expectedBytes) {
          stats.hits++;
          return new Uint8Array(cached.buffer, cached.byteOffset, cached.length);
        }
        stats.repaired++;
      } catch {
        // Not cached yet.
      }
      stats.misses++;
      const rgb = await decodeImageRgb(filePath, imageSizePx, resizePolicy, bytes);
      await fs.promises.mkdir(path.dirname(entry), { recursive: true });
      const tmp = `${entry}.${process.pid}.${tmpCounter++}.tmp`;
      await fs.promises.writeFile(tmp, rgb);
      await fs.promises.rename(tmp, entry);
      return rgb;
    },
  };
}

/** Options of {@link streamImageBatches}. */
export interface StreamImageBatchesOptions {
  batchSize: number;
  imageSizePx: number;
  resizePolicy?: ResizePolicy;
  /** Images decoded at once within a batch. Default 4. */
  concurrency?: number;
  /** Shuffle record order with this seed (per epoch: seed + epoch). Omit for input order. */
  shuffleSeed?: number;
  /** Epoch number, mixed into shuffling and augmentation seeds. Default 0. */
  epoch?: number;
  /** Augment each image with {@link randomAugmentImage}, seeded by (seed, epoch, position). */
  augment?: { seed: number; options?: AugmentOptions };
  /** Resized images are read from / written to this cache (see {@link createImageCache}). */
  cache?: ImageCache;
  /** Batches decoded ahead of the consumer (0 = none). Default 1. */
  prefetchBatches?: number;
}

/** One batch of the stream: an {@link ImageBatch} plus its position. */
export interface StreamedImageBatch extends ImageBatch {
  batchIndex: number;
  /** Number of batches in the epoch. */
  batchCount: number;
}

/**
 * Streams `records` as decoded image batches, lazily: a batch is decoded only when the consumer
 * is at most `prefetchBatches` batches behind, so memory holds at most 1 + prefetchBatches batches
 * whatever the dataset size. Images within a batch decode in parallel (bounded by `concurrency`),
 * optionally through an on-disk cache, optionally augmented. Bad images become problems in their
 * batch; a batch may thus hold fewer than `batchSize` images.
 *
 * @example
 * for await (const batch of streamImageBatches(records, { batchSize: 32, imageSizePx: 224, shuffleSeed: 1 })) {
 *   // batch.pixels: batch.records.length × 224 × 224 × 3
 * }
 */
export async function* streamImageBatches(
  records: readonly LesionRecord[],
  options: StreamImageBatchesOptions,
): AsyncGenerator<StreamedImageBatch> {
  const { batchSize, imageSizePx } = options;
  if (!(Number.isInteger(batchSize) && batchSize >= 1)) throw new MelanomaLabError(`batchSize must be a whole number ≥ 1; received ${batchSize}`);
  if (!(Number.isInteger(imageSizePx) && imageSizePx >= 1)) throw new MelanomaLabError(`imageSizePx must be a whole number ≥ 1; received ${imageSizePx}`);
  const prefetch = options.prefetchBatches ?? 1;
  if (!(Number.isInteger(prefetch) && prefetch >= 0 && prefetch <= 8)) throw new MelanomaLabError(`prefetchBatches must be a whole number in 0–8; received ${prefetch}`);
  const epoch = options.epoch ?? 0;
  const ordered = options.shuffleSeed === undefined ? records.slice() : shuffleWithSeed(records, options.shuffleSeed + epoch * 7919);
  const batchCount = Math.ceil(ordered.length / batchSize);
  const resizePolicy = options.resizePolicy ?? "center-crop";
  const decode = options.cache
    ? (p: string) => options.cache!.decode(p, imageSizePx, resizePolicy)
    : (p: string) => decodeImageRgb(p, imageSizePx, resizePolicy);

  const loadBatch = async (batchIndex: number): Promise<StreamedImageBatch> => {
    const start = batchIndex * batchSize;
    const slice = ordered.slice(start, start + batchSize);
    const decoded = await mapWithConcurrency(slice, options.concurrency ?? 4, async (r, i) => {
      const rgb = await decode(r.imagePath);
      if (!options.augment) return rgb;
      // A distinct seed per (seed, epoch, position) so each epoch sees new augmentations.
      const seed = (options.augment.seed * 1_000_003 + epoch * 100_003 + start + i) >>> 0;
      return randomAugmentImage(rgb, imageSizePx, seed, options.augment.options);
    });
    const imageBytes = imageSizePx * imageSizePx * 3;
    const good: LesionRecord[] = [];
    const problems: InputProblem[] = [];
    const pixels = new Uint8Array(decoded.filter((d) => "value" in d).length * imageBytes);
    decoded.forEach((d, i) => {
      if ("value" in d) {
        pixels.set(d.value, good.length * imageBytes);
        good.push(slice[i]);
      } else {
        const reason = d.error instanceof ImageDecodeError ? d.error.message.slice(d.error.file.length + 2) : String((d.error as Error)?.message ?? d.error);
        problems.push({ file: slice[i].imagePath, field: "image", reason: `image ${slice[i].imageId}: ${reason}; skipped` });
      }
    });
    return { pixels, records: good, problems, imageSizePx, batchIndex, batchCount };
  };

  const inFlight: Promise<StreamedImageBatch>[] = [];
  let next = 0;
  const startNext = () => {
    const p = loadBatch(next++);
    // Avoid an unhandled rejection if the consumer stops before awaiting this one.
    p.catch(() => undefined);
    inFlight.push(p);
  };
  while (next < batchCount || inFlight.length > 0) {
    if (inFlight.length === 0) startNext();
    const batch = await inFlight.shift()!;
    // While the consumer works on `batch`, decode up to `prefetch` batches ahead.
    while (next < batchCount && inFlight.length < prefetch) startNext();
    yield batch;
  }
}
