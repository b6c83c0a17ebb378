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
  const groups = new Map<string, LesionRecord[]>();
  for (const r of records) {
    const key = groupKeyOf(r);
    const list = groups.get(key);
    if (list) list.push(r);
    else groups.set(key, [r]);
  }
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
