import { createGroupedKFolds } from "../data/split.js";
import type { LesionRecord } from "../data/types.js";
import { MelanomaLabError } from "../util/errors.js";
import {
  crossValidateHead,
  summarizeFoldSpread,
  toFoldRows,
  type CrossValidationResult,
  type FeatureRows,
  type FoldRows,
  type FoldSpread,
  type HeadConfig,
} from "./crossValidate.js";

/** Thrown for nested cross-validation input that does not fit together (configurations, rows, fold counts). */
export class NestedCrossValidationError extends MelanomaLabError {}

/** One candidate configuration: a feature matrix (backbone, colour, TTA views…) and the head trained on it. */
export interface NestedConfiguration {
  /** Unique name, shown in tables (e.g. "mobilenet_v2 | none | TTA none | logistic l2=1e-3"). */
  name: string;
  /** Features of the same records, row i = records[i], for every configuration. */
  rows: FeatureRows;
  head: HeadConfig;
}

/** Options of {@link nestedCrossValidateHeads}. */
export interface NestedCrossValidationOptions {
  /** Outer grouped folds (they score); default 5. */
  outerFolds?: number;
  /** Inner grouped folds inside each outer-train part (they choose); default 4. */
  innerFolds?: number;
  /** Seeds the folds (outer: seed; inner of outer fold k: seed + 1 + k) and the heads (as crossValidateHead). */
  seed: number;
  /** Called after each cross-validation of one configuration (selection pass or one outer fold's inner folds). */
  onProgress?: (event: NestedProgressEvent) => void;
}

/** What {@link NestedCrossValidationOptions.onProgress} reports. */
export interface NestedProgressEvent {
  configuration: string;
  /** "selection": CV over the outer folds; "inner": the inner folds of outer fold `outerFold`. */
  stage: "selection" | "inner";
  /** 0-based outer fold, for stage "inner". */
  outerFold?: number;
  /** Mean ROC AUC of this cross-validation. */
  meanRocAuc: number;
  /** Cross-validations done so far and in all. */
  done: number;
  total: number;
}

/** One outer fold of {@link nestedCrossValidateHeads}. */
export interface NestedOuterFold {
  /** "fold-1" … */
  name: string;
  validationImages: number;
  /** Configuration with the highest mean inner-fold ROC AUC (first in input order on a tie). */
  chosenConfiguration: string;
  /** Mean inner-fold ROC AUC of every configuration (folds inside this outer fold's train part only). */
  innerMeanRocAucByConfiguration: Record<string, number>;
  /** ROC AUC on this outer fold of the chosen configuration's head trained on the whole outer-train part. */
  outerRocAuc: number;
}

/** Result of {@link nestedCrossValidateHeads}. */
export interface NestedCrossValidationResult {
  outerFolds: NestedOuterFold[];
  /** Mean ± SD of the outer folds' ROC AUC: the honest estimate of "choose a configuration by CV, then use it". */
  nestedRocAuc: FoldSpread;
  /** How many outer folds chose each configuration (every configuration listed, 0 if never). */
  timesChosen: Record<string, number>;
  /**
   * The configuration with the best mean CV ROC AUC on the outer folds, and that score: the
   * best-of-N figure, chosen and scored on the same folds, hence optimistic.
   */
  selection: { configuration: string; rocAuc: FoldSpread };
  /** Each configuration's CV ROC AUC spread on the outer folds (what a best-of-N table shows). */
  cvRocAucByConfiguration: Record<string, FoldSpread>;
  /** selection mean − nested mean (how much the best-of-N figure flatters the choice). */
  selectionOptimism: number;
  /** Fold counts and seed used. */
  outerFoldCount: number;
  innerFoldCount: number;
  seed: number;
}

/** Index of the largest value (NaN counts as lowest; the first on ties). */
function argMax(values: readonly number[]): number {
  let best = 0;
  for (let i = 1; i < values.length; i++) {
    const v = Number.isNaN(values[i]) ? -Infinity : values[i];
    const b = Number.isNaN(values[best]) ? -Infinity : values[best];
    if (v > b) best = i;
  }
  return best;
}

/**
 * Nested cross-validation of a configuration choice. Outer folds: lesion/patient-grouped,
 * label-stratified k-fold ({@link createGroupedKFolds}) of `records`. Inside each outer fold's
 * train part, inner grouped folds choose the configuration with the best mean inner ROC AUC;
 * that configuration's head, trained on the whole outer-train part, is then scored on the outer
 * fold, which took no part in the choice. The mean ± SD of those outer AUCs is the honest
 * estimate; beside it, the selection score (best mean CV AUC over all configurations on the
 * outer folds, i.e. chosen and scored on the same folds) shows how optimistic best-of-N is.
 * Heads are trained with {@link crossValidateHead} (balanced class weights, seeded), one
 * configuration at a time, so memory holds one head. Deterministic for a given seed.
 *
 * Cost: per configuration, outerFolds + outerFolds × innerFolds head trainings.
 *
 * @example
 * const nested = await nestedCrossValidateHeads(dataset.records, [
 *   { name: "v2 logistic", rows: v2Rows, head: logisticHead },
 *   { name: "v2 mlp128", rows: v2Rows, head: mlpHead },
 * ], { outerFolds: 5, innerFolds: 3, seed: 42 });
 * formatFoldSpread(nested.nestedRocAuc) // "0.83… ± 0.01…" (honest) vs nested.selection.rocAuc (optimistic)
 */
export async function nestedCrossValidateHeads(
  records: readonly LesionRecord[],
  configurations: readonly NestedConfiguration[],
  options: NestedCrossValidationOptions,
): Promise<NestedCrossValidationResult> {
  const outerFoldCount = options.outerFolds ?? 5;
  const innerFoldCount = options.innerFolds ?? 4;
  const { seed } = options;
  if (configurations.length === 0)
    throw new NestedCrossValidationError("configurations: received none, expected at least one");
  const names = configurations.map((c) => c.name);
  const duplicate = names.find((n, i) => names.indexOf(n) !== i);
  if (duplicate !== undefined)
    throw new NestedCrossValidationError(
      `configurations: name ${JSON.stringify(duplicate)} appears twice; names must be unique`,
    );
  for (const c of configurations) {
    if (c.rows.labels.length !== records.length) {
      throw new NestedCrossValidationError(
        `configuration ${JSON.stringify(c.name)}: received ${c.rows.labels.length} rows, expected one per record (${records.length})`,
      );
    }
    const mismatch = records.findIndex((r, i) => (r.label === "malignant" ? 1 : 0) !== Number(c.rows.labels[i]));
    if (mismatch >= 0) {
      throw new NestedCrossValidationError(
        `configuration ${JSON.stringify(c.name)}: row ${mismatch} has label ${c.rows.labels[mismatch]}, expected ${records[mismatch].label === "malignant" ? 1 : 0} (records[${mismatch}] is ${records[mismatch].label}); rows must follow the records' order`,
      );
    }
  }
  for (const [what, k] of [
    ["outerFolds", outerFoldCount],
    ["innerFolds", innerFoldCount],
  ] as const) {
    if (!(Number.isInteger(k) && k >= 2))
      throw new NestedCrossValidationError(`${what}: received ${k}, expected a whole number ≥ 2`);
  }

  const outer = createGroupedKFolds(records, { folds: outerFoldCount, seed });
  const outerRows: FoldRows[] = toFoldRows(
    records,
    outer.map((f) => ({ name: `fold-${f.foldIndex + 1}`, ...f })),
  );
  // Inner folds see only the outer-train records; toFoldRows maps them back to rows of the full matrix.
  const innerRows: FoldRows[][] = outer.map((f) =>
    toFoldRows(
      records,
      createGroupedKFolds(f.train, { folds: innerFoldCount, seed: seed + 1 + f.foldIndex }).map((g) => ({
        name: `fold-${f.foldIndex + 1}/inner-${g.foldIndex + 1}`,
        ...g,
      })),
    ),
  );

  const total = configurations.length * (1 + outerFoldCount);
  let done = 0;
  const selectionCv: CrossValidationResult[] = [];
  const innerMeans: number[][] = []; // [configuration][outer fold]
  for (const c of configurations) {
    const cv = await crossValidateHead(c.rows, outerRows, { head: c.head, seed });
    selectionCv.push(cv);
    options.onProgress?.({
      configuration: c.name,
      stage: "selection",
      meanRocAuc: cv.spread.rocAuc.mean,
      done: ++done,
      total,
    });
    const means: number[] = [];
    for (const [k, folds] of innerRows.entries()) {
      // Seeds differ from the outer pass so that inner heads are not the outer heads' twins.
      const inner = await crossValidateHead(c.rows, folds, { head: c.head, seed: seed + 1000 * (k + 1) });
      means.push(inner.spread.rocAuc.mean);
      options.onProgress?.({
        configuration: c.name,
        stage: "inner",
        outerFold: k,
        meanRocAuc: inner.spread.rocAuc.mean,
        done: ++done,
        total,
      });
    }
    innerMeans.push(means);
  }

  const outerFolds: NestedOuterFold[] = outerRows.map((fold, k) => {
    const chosen = argMax(configurations.map((_, c) => innerMeans[c][k]));
    return {
      name: fold.name,
      validationImages: fold.validationRows.length,
      chosenConfiguration: names[chosen],
      innerMeanRocAucByConfiguration: Object.fromEntries(names.map((n, c) => [n, innerMeans[c][k]])),
      // crossValidateHead's fold k: head trained on all of outer fold k's train rows, scored on its validation rows.
      outerRocAuc: selectionCv[chosen].folds[k].rocAuc,
    };
  });
  const nestedRocAuc = summarizeFoldSpread(outerFolds.map((f) => f.outerRocAuc));
  const best = argMax(selectionCv.map((cv) => cv.spread.rocAuc.mean));
  const timesChosen = Object.fromEntries(
    names.map((n) => [n, outerFolds.filter((f) => f.chosenConfiguration === n).length]),
  );
  return {
    outerFolds,
    nestedRocAuc,
    timesChosen,
    selection: { configuration: names[best], rocAuc: selectionCv[best].spread.rocAuc },
    cvRocAucByConfiguration: Object.fromEntries(names.map((n, c) => [n, selectionCv[c].spread.rocAuc])),
    selectionOptimism: selectionCv[best].spread.rocAuc.mean - nestedRocAuc.mean,
    outerFoldCount,
    innerFoldCount,
    seed,
  };
}
