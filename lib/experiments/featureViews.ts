import { createDihedralViewTransform, TTA_DIHEDRAL_VIEWS } from "../data/augment.js";
import type { InputProblem, LesionRecord } from "../data/types.js";
import { concatenateFeatureRows } from "../models/ensemble.js";
import { extractFeatures, type FeatureMatrix } from "../models/features.js";
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
  /** Feature cache folder (entries keyed by file content + view, so every view is cached). */
  cacheDir?: string;
  /** Forward-pass batch size. Default 16. */
  batchSize?: number;
  /** Images done so far out of records × views, after each batch; `detail` names the view ("view 2/4"). */
  onProgress?: (done: number, total: number, detail?: string) => void;
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
 * Shades-of-Gray) and up to 7 flipped/rotated copies for test-time augmentation. Each view is one
 * {@link extractFeatures} pass with a named pixel transform, so with a cache a view already
 * computed costs a file read and a hash, not a decode (the plain view shares the cache of
 * plain features). Rows are the records every view could read, in input order.
 *
 * @example
 * const { views, records } = await extractFeatureViews(backbone, dataset.records, { shadesOfGray: true, ttaViews: 2, cacheDir });
 * // views[1] holds the features of the horizontally flipped images
 */
export async function extractFeatureViews(
  backbone: Backbone,
  records: readonly LesionRecord[],
  options: FeatureViewOptions = {},
): Promise<FeatureViews> {
  const started = performance.now();
  const ttaViews = options.ttaViews ?? 1;
  if (!(Number.isInteger(ttaViews) && ttaViews >= 1 && ttaViews <= TTA_DIHEDRAL_VIEWS.length)) {
    throw new FeatureViewError(
      `ttaViews: received ${ttaViews}, expected a whole number 1–${TTA_DIHEDRAL_VIEWS.length}`,
    );
  }
  const { featureDim } = backbone;
  const total = records.length * ttaViews;
  const perView: FeatureMatrix[] = [];
  for (let v = 0; v < ttaViews; v++) {
    perView.push(
      await extractFeatures(backbone, records, {
        cacheDir: options.cacheDir,
        batchSize: options.batchSize,
        pixelTransform: createDihedralViewTransform(v, { shadesOfGray: options.shadesOfGray }),
        onProgress: options.onProgress
          ? (done) => options.onProgress!(v * records.length + done, total, `view ${v + 1}/${ttaViews}`)
          : undefined,
      }),
    );
  }
  // A file that fails fails in every view; keep only rows all views have, aligned by input index.
  const inAll = perView.reduce(
    (set, m) => new Set(m.sourceIndices.filter((i) => set.has(i))),
    new Set(perView[0].sourceIndices),
  );
  const kept = records.flatMap((r, i) => (inAll.has(i) ? [i] : []));
  const views = perView.map((m) => {
    const rowOf = new Map(m.sourceIndices.map((source, row) => [source, row]));
    const out = new Float32Array(kept.length * featureDim);
    kept.forEach((source, row) => {
      const r = rowOf.get(source)!;
      out.set(m.features.subarray(r * featureDim, (r + 1) * featureDim), row * featureDim);
    });
    return out;
  });
  const problems = new Map<string, InputProblem>();
  for (const m of perView) for (const p of m.problems) if (!problems.has(p.file)) problems.set(p.file, p);
  return {
    records: kept.map((i) => records[i]),
    featureDim,
    views,
    problems: [...problems.values()],
    cacheHits: perView.reduce((a, m) => a + m.cacheHits, 0),
    computed: perView.reduce((a, m) => a + m.computed, 0),
    elapsedMs: performance.now() - started,
  };
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
    if (p.views.length !== viewCount)
      throw new FeatureViewError(
        `parts[${i}]: received ${p.views.length} views, expected ${viewCount} as parts[0] has`,
      );
  });
  // Each part's views share its record order, so every view joins to the same rows.
  const order = parts[0].records.map((r) => r.imageId);
  const joinedViews = Array.from({ length: viewCount }, (_, v) =>
    concatenateFeatureRows(
      parts.map((p) => ({ keys: p.records.map((r) => r.imageId), features: p.views[v], featureDim: p.featureDim })),
      order,
    ),
  );
  const kept = new Set(joinedViews[0].keys);
  const records = parts[0].records.filter((r) => kept.has(r.imageId));
  const featureDim = joinedViews[0].featureDim;
  const views = joinedViews.map((j) => j.features);
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
