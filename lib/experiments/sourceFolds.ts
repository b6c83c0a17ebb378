import type { LesionRecord } from "../data/types.js";
import { groupKeyOf, assertNoGroupLeakage, SplitError } from "../data/split.js";

/** One leave-one-source-out fold: validation is every image of `heldOutSource`, train the others. */
export interface SourceFold {
  foldIndex: number;
  heldOutSource: string;
  train: LesionRecord[];
  validation: LesionRecord[];
  /** Train-side images dropped because their patient/lesion also has images in the held-out source. */
  droppedFromTrain: number;
}

/**
 * Leave-one-source-out folds: one fold per distinct `record.source` (HAM10000's `ham_dataset`,
 * the clinic/device), sorted by name; the fold trains on the other sources and validates on it.
 * A patient/lesion with images in two sources is kept out of train when its source is held out,
 * so no group is on both sides. Throws {@link SplitError} when a record has no source or fewer
 * than two sources exist.
 *
 * @example createLeaveOneSourceOutFolds(records).map((f) => `${f.heldOutSource}: ${f.validation.length}`)
 */
export function createLeaveOneSourceOutFolds(records: readonly LesionRecord[]): SourceFold[] {
  const sources = new Set<string>();
  for (const r of records) {
    if (!r.source) {
      throw new SplitError(`record ${r.imageId}: source is ${JSON.stringify(r.source)}; leave-one-source-out needs a source (labels.csv column ham_dataset) on every image`);
    }
    sources.add(r.source);
  }
  if (sources.size < 2) {
    throw new SplitError(`leave-one-source-out needs at least 2 sources; received ${sources.size} (${[...sources].join(", ") || "none"}) in ${records.length} records`);
  }
  return [...sources].sort().map((heldOutSource, foldIndex) => {
    const validation = records.filter((r) => r.source === heldOutSource);
    const heldOutGroups = new Set(validation.map(groupKeyOf));
    const others = records.filter((r) => r.source !== heldOutSource);
    const train = others.filter((r) => !heldOutGroups.has(groupKeyOf(r)));
    assertNoGroupLeakage([train, validation]);
    return { foldIndex, heldOutSource, train, validation, droppedFromTrain: others.length - train.length };
  });
}
