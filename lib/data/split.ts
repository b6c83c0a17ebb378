import { MelanomaLabError } from "../util/errors.js";
import { shuffleWithSeed } from "../util/random.js";
import type { LesionRecord } from "./types.js";

/** Thrown when a split would leak a patient or lesion across folds, or cannot be made. */
export class SplitError extends MelanomaLabError {}

/**
 * The grouping key of a record: patient_id, else lesion_id, else the image itself, so that
 * no patient (or lesion) appears on both sides of a split.
 */
export function groupKeyOf(record: LesionRecord): string {
  if (record.patientId) return `patient:${record.patientId}`;
  if (record.lesionId) return `lesion:${record.lesionId}`;
  return `image:${record.imageId}`;
}

/** Records by {@link groupKeyOf}, in input order within each group. */
function groupRecords(records: readonly LesionRecord[]): Map<string, LesionRecord[]> {
  const groups = new Map<string, LesionRecord[]>();
  for (const r of records) {
    const key = groupKeyOf(r);
    const list = groups.get(key);
    if (list) list.push(r);
    else groups.set(key, [r]);
  }
  return groups;
}

/**
 * Splits records into train and validation, grouped by patient/lesion (see {@link groupKeyOf})
 * and stratified by label: groups are shuffled with `seed` within each label stratum (a group's
 * stratum is "malignant" if any of its images is) and dealt to validation until it holds
 * `validationFraction` of that stratum's images.
 *
 * @example const { train, validation } = splitByLesion(records, { validationFraction: 0.2, seed: 42 });
 */
export function splitByLesion(
  records: readonly LesionRecord[],
  options: { validationFraction: number; seed: number },
): { train: LesionRecord[]; validation: LesionRecord[] } {
  const { validationFraction, seed } = options;
  if (!(validationFraction > 0 && validationFraction < 1)) {
    throw new SplitError(`validationFraction must be between 0 and 1 (exclusive); received ${validationFraction}`);
  }
  const groups = groupRecords(records);
  const strata: Record<string, string[]> = { benign: [], malignant: [] };
  for (const [key, members] of groups) {
    strata[members.some((m) => m.label === "malignant") ? "malignant" : "benign"].push(key);
  }
  const validationKeys = new Set<string>();
  for (const [stratum, keys] of Object.entries(strata)) {
    const total = keys.reduce((n, k) => n + groups.get(k)!.length, 0);
    const target = Math.round(total * validationFraction);
    let taken = 0;
    // Sorting first makes the result independent of input order; the seed alone decides.
    for (const key of shuffleWithSeed(keys.slice().sort(), seed + (stratum === "malignant" ? 1 : 0))) {
      if (taken >= target) break;
      validationKeys.add(key);
      taken += groups.get(key)!.length;
    }
  }
  const train: LesionRecord[] = [];
  const validation: LesionRecord[] = [];
  for (const r of records) (validationKeys.has(groupKeyOf(r)) ? validation : train).push(r);
  if (train.length === 0 || validation.length === 0) {
    throw new SplitError(`split of ${records.length} records left an empty side (train ${train.length}, validation ${validation.length}); need more groups or another validationFraction`);
  }
  return { train, validation };
}

/**
 * Throws {@link SplitError} if any patient/lesion group appears in more than one of `folds`.
 * Returns the number of groups checked.
 *
 * @example assertNoGroupLeakage([train, validation]);
 */
export function assertNoGroupLeakage(folds: readonly (readonly LesionRecord[])[]): number {
  const owner = new Map<string, number>();
  for (let f = 0; f < folds.length; f++) {
    for (const r of folds[f]) {
      const key = groupKeyOf(r);
      const prev = owner.get(key);
      if (prev !== undefined && prev !== f) {
        throw new SplitError(`group ${key} (image ${r.imageId}) is in fold ${prev} and fold ${f}: patients/lesions must not cross folds`);
      }
      owner.set(key, f);
    }
  }
  return owner.size;
}

/** One fold of {@link createGroupedKFolds}: validation is the fold, train is everything else. */
export interface GroupedFold {
  foldIndex: number;
  train: LesionRecord[];
  validation: LesionRecord[];
}

/**
 * K-fold cross-validation folds, grouped by patient/lesion (see {@link groupKeyOf}: patient_id,
 * else lesion_id, else the image) and stratified by label. Within each label stratum (a group is
 * "malignant" if any of its images is), groups are shuffled with `seed`, ordered largest first,
 * and each is dealt to the fold holding the fewest images of that stratum so far. Same seed and
 * same records (in any order) → same folds. Every record is in exactly one validation fold, and
 * the folds are checked with {@link assertNoGroupLeakage}.
 *
 * @example const folds = createGroupedKFolds(records, { folds: 5, seed: 42 }); folds[0].validation.length
 */
export function createGroupedKFolds(
  records: readonly LesionRecord[],
  options: { folds: number; seed: number },
): GroupedFold[] {
  const { folds, seed } = options;
  if (!(Number.isInteger(folds) && folds >= 2)) {
    throw new SplitError(`folds must be a whole number ≥ 2; received ${folds}`);
  }
  const groups = groupRecords(records);
  if (groups.size < folds) {
    throw new SplitError(`${folds} folds need at least ${folds} patient/lesion groups; received ${groups.size} groups in ${records.length} records`);
  }
  const foldOfGroup = new Map<string, number>();
  const totalPerFold = new Array<number>(folds).fill(0);
  for (const stratum of ["malignant", "benign"] as const) {
    const keys = [...groups.keys()]
      .filter((k) => (groups.get(k)!.some((m) => m.label === "malignant") ? "malignant" : "benign") === stratum)
      .sort();
    const shuffled = shuffleWithSeed(keys, seed + (stratum === "malignant" ? 1 : 0));
    // Largest first (stable after the seeded shuffle) keeps fold sizes even.
    const ordered = shuffled
      .map((key, i) => ({ key, i, size: groups.get(key)!.length }))
      .sort((a, b) => b.size - a.size || a.i - b.i);
    const stratumPerFold = new Array<number>(folds).fill(0);
    for (const { key, size } of ordered) {
      let best = 0;
      for (let f = 1; f < folds; f++) {
        if (
          stratumPerFold[f] < stratumPerFold[best] ||
          (stratumPerFold[f] === stratumPerFold[best] && totalPerFold[f] < totalPerFold[best])
        ) best = f;
      }
      foldOfGroup.set(key, best);
      stratumPerFold[best] += size;
      totalPerFold[best] += size;
    }
  }
  const validationSets: LesionRecord[][] = Array.from({ length: folds }, () => []);
  for (const r of records) validationSets[foldOfGroup.get(groupKeyOf(r))!].push(r);
  assertNoGroupLeakage(validationSets);
  return validationSets.map((validation, foldIndex) => ({
    foldIndex,
    validation,
    train: records.filter((r) => foldOfGroup.get(groupKeyOf(r)) !== foldIndex),
  }));
}

/**
 * Three-way split grouped by patient/lesion and stratified by label (see {@link splitByLesion}):
 * `test` holds `testFraction` of all images and is touched only for the final metrics;
 * `validation` holds `validationFraction` of all images for early stopping and choosing the
 * triage threshold; the rest is `train`. Deterministic by `seed`.
 *
 * @example const { train, validation, test } = splitTrainValidationTest(records, { validationFraction: 0.2, testFraction: 0.2, seed: 42 });
 */
export function splitTrainValidationTest(
  records: readonly LesionRecord[],
  options: { validationFraction: number; testFraction: number; seed: number },
): { train: LesionRecord[]; validation: LesionRecord[]; test: LesionRecord[] } {
  const { validationFraction, testFraction, seed } = options;
  if (!(validationFraction > 0 && testFraction > 0 && validationFraction + testFraction < 1)) {
    throw new SplitError(
      `validationFraction ${validationFraction} and testFraction ${testFraction} must be positive and sum to less than 1 (e.g. 0.2 and 0.2)`,
    );
  }
  const first = splitByLesion(records, { validationFraction: testFraction, seed });
  // Fraction of what is left, so that validation is validationFraction of all images.
  const second = splitByLesion(first.train, { validationFraction: validationFraction / (1 - testFraction), seed: seed + 7919 });
  return { train: second.train, validation: second.validation, test: first.validation };
}
