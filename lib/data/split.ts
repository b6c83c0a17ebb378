import { MelanomaLabError } from "../util/errors.js";
import { shuffleWithSeed } from "../util/random.js";
import type { LesionRecord } from "./types.js";

/** Thrown when a split would leak a patient or lesion across folds, or cannot be made. */
export class SplitError extends MelanomaLabError {}

/** Union-find over string keys, with path halving; the root is just a representative. */
class DisjointSets {
  private readonly parent = new Map<string, string>();
  find(key: string): string {
    if (!this.parent.has(key)) this.parent.set(key, key);
    let k = key;
    while (this.parent.get(k) !== k) {
      const grand = this.parent.get(this.parent.get(k)!)!;
      this.parent.set(k, grand);
      k = grand;
    }
    return k;
  }
  union(a: string, b: string): void {
    const ra = this.find(a);
    const rb = this.find(b);
    if (ra !== rb) this.parent.set(ra, rb);
  }
}

/** The id nodes of one record: its patient and lesion ids; the image itself when it has neither. */
function idKeysOf(record: LesionRecord): string[] {
  const keys: string[] = [];
  if (record.patientId) keys.push(`patient:${record.patientId}`);
  if (record.lesionId) keys.push(`lesion:${record.lesionId}`);
  if (keys.length === 0) keys.push(`image:${record.imageId}`);
  return keys;
}

/** How a component is named: patient keys first, then lesion keys, then image keys, each alphabetically. */
function compareIdKeys(a: string, b: string): number {
  const rank = (k: string) => (k.startsWith("patient:") ? 0 : k.startsWith("lesion:") ? 1 : 2);
  return rank(a) - rank(b) || (a < b ? -1 : a > b ? 1 : 0);
}

/**
 * The patient/lesion group of every record: the connected components of the graph whose nodes
 * are patient ids and lesion ids and whose edges are the images (an image joins its patient and
 * its lesion). Two images are in the same group when they share a patient or a lesion, directly
 * or through other images, so a lesion whose patient_id is filled on only some of its images
 * (as in partly filled ISIC exports) is still one group with that patient. An image with
 * neither id is a group of its own.
 *
 * A group is named by its smallest patient key ("patient:<id>"), else its smallest lesion key
 * ("lesion:<id>"), else "image:<imageId>", so the names do not depend on the order of `records`.
 *
 * @returns one group id per record, in the order of `records`.
 * @example
 * assignGroupIds([
 *   { imageId: "a", lesionId: "L1", patientId: "P1", … },
 *   { imageId: "b", lesionId: "L1", … },           // same lesion, patient_id missing
 *   { imageId: "c", lesionId: "L2", … },
 * ]) // ["patient:P1", "patient:P1", "lesion:L2"]
 */
export function assignGroupIds(records: readonly LesionRecord[]): string[] {
  const sets = new DisjointSets();
  const keysPerRecord = records.map(idKeysOf);
  for (const keys of keysPerRecord) {
    for (let k = 1; k < keys.length; k++) sets.union(keys[0], keys[k]);
  }
  const nameOfRoot = new Map<string, string>();
  for (const keys of keysPerRecord) {
    for (const key of keys) {
      const root = sets.find(key);
      const name = nameOfRoot.get(root);
      if (name === undefined || compareIdKeys(key, name) < 0) nameOfRoot.set(root, key);
    }
  }
  return keysPerRecord.map((keys) => nameOfRoot.get(sets.find(keys[0]))!);
}

/** Records by {@link assignGroupIds}, in input order within each group (and groups in order of first appearance). */
function groupRecords(records: readonly LesionRecord[]): { groups: Map<string, LesionRecord[]>; groupIds: string[] } {
  const groupIds = assignGroupIds(records);
  const groups = new Map<string, LesionRecord[]>();
  records.forEach((r, i) => {
    const list = groups.get(groupIds[i]);
    if (list) list.push(r);
    else groups.set(groupIds[i], [r]);
  });
  return { groups, groupIds };
}

/**
 * Splits records into train and validation, grouped by patient/lesion (the connected groups of
 * {@link assignGroupIds}) and stratified by label: groups are shuffled with `seed` within each
 * label stratum (a group's stratum is "malignant" if any of its images is) and dealt to
 * validation until it holds `validationFraction` of that stratum's images.
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
  const { groups, groupIds } = groupRecords(records);
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
  records.forEach((r, i) => (validationKeys.has(groupIds[i]) ? validation : train).push(r));
  if (train.length === 0 || validation.length === 0) {
    throw new SplitError(`split of ${records.length} records left an empty side (train ${train.length}, validation ${validation.length}); need more groups or another validationFraction`);
  }
  return { train, validation };
}

/**
 * Throws {@link SplitError} if any patient id, any lesion id or any image id appears in more
 * than one of `folds`. Patient ids and lesion ids are checked independently, so a lesion whose
 * images sit in two folds is caught even when those images carry different or missing patient
 * ids (and a patient whose lesions sit in two folds is caught whatever their lesion ids). This is
 * the same as asking that no connected group of {@link assignGroupIds} spans two folds: any such
 * group shares some id across the folds.
 *
 * @returns the number of patient/lesion groups ({@link assignGroupIds}) over all folds.
 * @example assertNoGroupLeakage([train, validation]); // 812
 */
export function assertNoGroupLeakage(folds: readonly (readonly LesionRecord[])[]): number {
  const idKinds: Array<{ kind: string; idOf: (r: LesionRecord) => string | undefined }> = [
    { kind: "patient", idOf: (r) => r.patientId || undefined },
    { kind: "lesion", idOf: (r) => r.lesionId || undefined },
    { kind: "image", idOf: (r) => r.imageId },
  ];
  for (const { kind, idOf } of idKinds) {
    const owner = new Map<string, { fold: number; imageId: string }>();
    for (let f = 0; f < folds.length; f++) {
      for (const r of folds[f]) {
        const id = idOf(r);
        if (id === undefined) continue;
        const prev = owner.get(id);
        if (prev !== undefined && prev.fold !== f) {
          throw new SplitError(
            `${kind} ${id} is in fold ${prev.fold} (image ${prev.imageId}) and fold ${f} (image ${r.imageId}): patients/lesions must not cross folds`,
          );
        }
        if (prev === undefined) owner.set(id, { fold: f, imageId: r.imageId });
      }
    }
  }
  return new Set(assignGroupIds(folds.flat())).size;
}

/** One fold of {@link createGroupedKFolds}: validation is the fold, train is everything else. */
export interface GroupedFold {
  foldIndex: number;
  train: LesionRecord[];
  validation: LesionRecord[];
}

/**
 * K-fold cross-validation folds, grouped by patient/lesion (the connected groups of
 * {@link assignGroupIds}: images sharing a patient or a lesion id, directly or through other
 * images) and stratified by label. Within each label stratum (a group is
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
  const { groups, groupIds } = groupRecords(records);
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
  const foldOfRecord = groupIds.map((id) => foldOfGroup.get(id)!);
  records.forEach((r, i) => validationSets[foldOfRecord[i]].push(r));
  assertNoGroupLeakage(validationSets);
  return validationSets.map((validation, foldIndex) => ({
    foldIndex,
    validation,
    train: records.filter((_, i) => foldOfRecord[i] !== foldIndex),
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
