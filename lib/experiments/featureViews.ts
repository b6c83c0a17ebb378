import { decodeImageRgb } from "../data/decodeImage.js";
import { applyShadesOfGray, transformImageDihedral, TTA_DIHEDRAL_VIEWS } from "../data/augment.js";
import type { InputProblem, LesionRecord } from "../data/types.js";
import { extractFeatures } from "../models/features.js";
import type { Backbone } from "../models/types.js";
import { MelanomaLabError } from "../util/errors.js";

/** Thrown for a feature-view option out of range. */
export class FeatureViewError extends MelanomaLabError {}

/** Options of {@link extractFeatureViews}. */
export interface FeatureViewOptions {
  /** Shades-of-Gray colour constancy (p = 6) on each decoded image before the backbone. Default false. */
  shadesOfGray?: boolean;
  /** Dihedral test-time views (1–8, in TTA_DIHEDRAL_VIEWS order; view 0 is the image itself). Default 1. */
  ttaViews?: number;
  /** Feature cache folder (entries keyed by the exact pixels, so every view is cached). */
  cacheDir?: string;
  /** Images decoded per chunk when views are computed from pixels. Default 64. */
  chunkSize?: number;
  /** Forward-pass batch size. Default 16. */
  batchSize?: number;
  /** Images done so far out of records × views. */
  onProgress?: (done: number, total: number) => void;
}

/** Features of the records that could be read, one matrix per view, rows aligned across views. */
export interface FeatureViews {
  /** Records with features, in input order (unreadable images left out). */
  records: LesionRecord[];
  featureDim: number;
  /** views[0] = the (colour-corrected) image, views[k] = TTA_DIHEDRAL_VIEWS[k]; each [rows, featureDim]. */
  views: Float32Array[];
  problems: InputProblem[];
  cacheHits: number;
  computed: number;
  elapsedMs: number;
}

/**
 * Backbone features of `records` under each requested view: the image as is (or after
 * Shades-of-Gray) and up to 7 flipped/rotated copies for test-time augmentation. The plain view
 * reads files directly (sharing the cache with {@link extractFeatures}); other views are decoded,
 * transformed and passed as pixels in chunks, so memory stays at one chunk of images.
 *
 * @example
 * const { views, records } = await extractFeatureViews(backbone, dataset.records, { shadesOfGray: true, ttaViews: 2, cacheDir });
 * // views[1] holds the features of the horizontally flipped images
 */
export async function extractFeatureViews(backbone: Backbone, records: readonly LesionRecord[], options: FeatureViewOptions = {}): Promise<FeatureViews> {
  const started = performance.now();
  const ttaViews = options.ttaViews ?? 1;
  const chunkSize = options.chunkSize ?? 64;
  if (!(Number.isInteger(ttaViews) && ttaViews >= 1 && ttaViews <= TTA_DIHEDRAL_VIEWS.length)) {
    throw new FeatureViewError(`ttaViews: received ${ttaViews}, expected a whole number 1–${TTA_DIHEDRAL_VIEWS.length}`);
  }
  if (!(Number.isInteger(chunkSize) && chunkSize >= 1)) throw new FeatureViewError(`chunkSize: received ${chunkSize}, expected a positive integer`);
  const total = records.length * ttaViews;
  const { featureDim, inputSizePx } = backbone;
  const problems: InputProblem[] = [];
  let cacheHits = 0;
  let computed = 0;
  let kept: LesionRecord[] = records.slice();
  const views: Float32Array[] = [];
  if (!options.shadesOfGray) {
    const plain = await extractFeatures(backbone, records, {
      cacheDir: options.cacheDir,
      batchSize: options.batchSize,
      onProgress: options.onProgress ? (done) => options.onProgress!(done, total) : undefined,
    });
    problems.push(...plain.problems);
    cacheHits += plain.cacheHits;
    computed += plain.computed;
    kept = plain.sourceIndices.map((i) => records[i]);
    views.push(plain.features);
  }
  const firstPixelView = options.shadesOfGray ? 0 : 1;
  if (firstPixelView < ttaViews) {
    for (let v = firstPixelView; v < ttaViews; v++) views.push(new Float32Array(kept.length * featureDim));
    const stillKept: boolean[] = new Array(kept.length).fill(true);
    const perImage = inputSizePx * inputSizePx * 3;
    let done = records.length * firstPixelView;
    for (let start = 0; start < kept.length; start += chunkSize) {
      const chunk = kept.slice(start, start + chunkSize);
      const decoded: (Uint8Array | undefined)[] = await Promise.all(
        chunk.map(async (r, i) => {
          try {
            const rgb = await decodeImageRgb(r.imagePath, inputSizePx);
            return options.shadesOfGray ? applyShadesOfGray(rgb) : rgb;
          } catch (err) {
            problems.push({ file: r.imagePath, reason: err instanceof Error ? err.message : String(err) });
            stillKept[start + i] = false;
            return undefined;
          }
        }),
      );
      for (let v = firstPixelView; v < ttaViews; v++) {
        const pixels = new Uint8Array(chunk.length * perImage);
        decoded.forEach((rgb, i) => {
          if (rgb) pixels.set(v === 0 ? rgb : transformImageDihedral(rgb, inputSizePx, TTA_DIHEDRAL_VIEWS[v]), i * perImage);
        });
        const result = await extractFeatures(backbone, { pixels, count: chunk.length, imageIds: chunk.map((r) => r.imageId) }, {
          cacheDir: options.cacheDir,
          batchSize: options.batchSize,
        });
        cacheHits += result.cacheHits;
        computed += result.computed;
        views[v].set(result.features, start * featureDim);
        done += chunk.length;
        options.onProgress?.(done, total);
      }
    }
    if (stillKept.includes(false)) {
      const rows = stillKept.flatMap((ok, i) => (ok ? [i] : []));
      for (let v = 0; v < views.length; v++) {
        const out = new Float32Array(rows.length * featureDim);
        rows.forEach((r, i) => out.set(views[v].subarray(r * featureDim, (r + 1) * featureDim), i * featureDim));
        views[v] = out;
      }
      kept = rows.map((r) => kept[r]);
    }
  }
  return { records: kept, featureDim, views, problems, cacheHits, computed, elapsedMs: performance.now() - started };
}

/**
 * Joins the features of several backbones side by side (a "feature ensemble"): the records
 * every part has (matched by imageId, in the first part's order) get one row of
 * featureDim₁ + featureDim₂ + … values per view. All parts need the same number of views.
 *
 * @example
 * const both = concatenateFeatureViews([await extractFeatureViews(v2, recs), await extractFeatureViews(inception, recs)]);
 * both.featureDim // 1280 + 2048
 */
export function concatenateFeatureViews(parts: readonly FeatureViews[]): FeatureViews {
  if (parts.length === 0) throw new FeatureViewError("parts: received none, expected at least one FeatureViews");
  const viewCount = parts[0].views.length;
  parts.forEach((p, i) => {
    if (p.views.length !== viewCount) throw new FeatureViewError(`parts[${i}]: received ${p.views.length} views, expected ${viewCount} as parts[0] has`);
  });
  const rowOf = parts.map((p) => new Map(p.records.map((r, i) => [r.imageId, i])));
  const records = parts[0].records.filter((r) => rowOf.every((m) => m.has(r.imageId)));
  const featureDim = parts.reduce((sum, p) => sum + p.featureDim, 0);
  const views = Array.from({ length: viewCount }, (_, v) => {
    const out = new Float32Array(records.length * featureDim);
    records.forEach((r, row) => {
      let offset = row * featureDim;
      parts.forEach((p, k) => {
        const src = rowOf[k].get(r.imageId)!;
        out.set(p.views[v].subarray(src * p.featureDim, (src + 1) * p.featureDim), offset);
        offset += p.featureDim;
      });
    });
    return out;
  });
  return {
    records,
    featureDim,
    views,
    problems: parts.flatMap((p) => p.problems),
    cacheHits: parts.reduce((s, p) => s + p.cacheHits, 0),
    computed: parts.reduce((s, p) => s + p.computed, 0),
    elapsedMs: parts.reduce((s, p) => s + p.elapsedMs, 0),
  };
}
