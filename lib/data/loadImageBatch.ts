import { MelanomaLabError } from "../util/errors.js";
import { decodeImageRgb, ImageDecodeError } from "./decodeImage.js";
import type { ResizePolicy } from "./decodeImage.js";
import type { InputProblem, LesionRecord } from "./types.js";

/** Options of {@link loadImageBatch}. */
export interface LoadImageBatchOptions {
  /** Output width = height in pixels. */
  imageSizePx: number;
  /** Default "center-crop". */
  resizePolicy?: ResizePolicy;
  /** Images decoded at once (sharp runs them on its thread pool). Default 4. */
  concurrency?: number;
}

/** The images that decoded, packed, with their records in the same order, and what failed. */
export interface ImageBatch {
  /** n × imageSizePx × imageSizePx × 3 bytes, HWC RGB, one image after another. */
  pixels: Uint8Array;
  /** Records of the images in `pixels`, in input order (bad ones left out). */
  records: LesionRecord[];
  problems: InputProblem[];
  imageSizePx: number;
}

/**
 * Runs `work(item, index)` over `items` with at most `concurrency` in flight; results keep input
 * order. A rejection is returned as `{ error }` so one failure never stops the rest.
 *
 * @example const out = await mapWithConcurrency(files, 4, (f) => fs.promises.readFile(f));
 */
export async function mapWithConcurrency<T, R>(
  items: readonly T[],
  concurrency: number,
  work: (item: T, index: number) => Promise<R>,
): Promise<({ value: R } | { error: unknown })[]> {
  if (!(Number.isInteger(concurrency) && concurrency >= 1)) {
    throw new MelanomaLabError(`concurrency must be a whole number ≥ 1; received ${concurrency}`);
  }
  const results: ({ value: R } | { error: unknown })[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      try {
        results[i] = { value: await work(items[i], i) };
      } catch (error) {
        results[i] = { error };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, worker));
  return results;
}

/**
 * Decodes the images of `records` to square RGB (see {@link decodeImageRgb}) with bounded
 * parallelism. A bad image (missing, empty, truncated, not an image, too large) becomes a
 * problem naming the file and the reason; the others load.
 *
 * @example const batch = await loadImageBatch(records, { imageSizePx: 224, concurrency: 4 });
 * batch.pixels.length === batch.records.length * 224 * 224 * 3;
 */
export async function loadImageBatch(records: readonly LesionRecord[], options: LoadImageBatchOptions): Promise<ImageBatch> {
  const { imageSizePx } = options;
  if (!(Number.isInteger(imageSizePx) && imageSizePx >= 1 && imageSizePx <= 4096)) {
    throw new MelanomaLabError(`imageSizePx must be a whole number in 1–4096; received ${imageSizePx}`);
  }
  const decoded = await mapWithConcurrency(records, options.concurrency ?? 4, (r) =>
    decodeImageRgb(r.imagePath, imageSizePx, options.resizePolicy ?? "center-crop"),
  );
  const good: LesionRecord[] = [];
  const problems: InputProblem[] = [];
  const imageBytes = imageSizePx * imageSizePx * 3;
  const goodCount = decoded.filter((d) => "value" in d).length;
  const pixels = new Uint8Array(goodCount * imageBytes);
  decoded.forEach((d, i) => {
    if ("value" in d) {
      pixels.set(d.value, good.length * imageBytes);
      good.push(records[i]);
    } else {
      const reason = d.error instanceof ImageDecodeError
        ? d.error.message.slice(d.error.file.length + 2)
        : d.error instanceof Error ? d.error.message : String(d.error);
      problems.push({ file: records[i].imagePath, field: "image", reason: `image ${records[i].imageId}: ${reason}; skipped` });
    }
  });
  return { pixels, records: good, problems, imageSizePx };
}
