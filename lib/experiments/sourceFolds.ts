import type { LesionRecord } from "../data/types.js";
import { assignGroupIds, assertNoGroupLeakage, SplitError } from "../data/split.js";

/** One leave-one-source-out fold: validation is every image of `heldOutSource`, train the others. */
export interface SourceFold {
  foldIndex: number;
  heldOutSource: string;
  train: LesionRecord[];
  validation: LesionRecord[];
  /** Train-side images dropped because their patient/lesion group also has images in the held-out source. */
  droppedFromTrain: number;
  /** The groups ({@link assignGroupIds}) with images both in the held-out source and in another source, sorted. */
  crossSourceGroupIds: string[];
}

/**
 * Leave-one-source-out folds: one fold per distinct `record.source` (HAM10000's `ham_dataset`,
 * the clinic/device), sorted by name; the fold trains on the other sources and validates on it.
 * Groups are the connected patient/lesion groups of {@link assignGroupIds} (images sharing a
 * patient or a lesion id, directly or through other images). A group with images in two sources
 * (a patient imaged at two clinics) stays whole in validation when one of its sources is held
 * out, and its images from the other sources are dropped from that fold's train, so no group is
 * on both sides; each fold reports them in `droppedFromTrain` and `crossSourceGroupIds`. Throws {@link SplitError} when a record has no source or fewer
 * than two sources exist.
 *
 * @example createLeaveOneSourceOutFolds(records).map((f) => `${f.heldOutSource}: ${f.validation.length}`)
 */
export function createLeaveOneSourceOutFolds(records: readonly LesionRecord[]): SourceFold[] {
  const sources = new Set<string>();
  for (const r of records) {
    if (!r.source) {
      throw new SplitError(
        `record ${r.imageId}: source is ${JSON.stringify(r.source)}; leave-one-source-out needs a source (labels.csv column ham_dataset) on every image`,
      );
    }
    sources.add(r.source);
  }
  if (sources.size < 2) {
    throw new SplitError(
      `leave-one-source-out needs at least 2 sources; received ${sources.size} (${[...sources].join(", ") || "none"}) in ${records.length} records`,
    );
  }
  const groupIds = assignGroupIds(records);
  return [...sources].sort().map((heldOutSource, foldIndex) => {
    const validation = records.filter((r) => r.source === heldOutSource);
    const heldOutGroups = new Set(groupIds.filter((_, i) => records[i].source === heldOutSource));
    const train: LesionRecord[] = [];
    const crossSource = new Set<string>();
    records.forEach((r, i) => {
      if (r.source === heldOutSource) return;
      if (heldOutGroups.has(groupIds[i])) crossSource.add(groupIds[i]);
      else train.push(r);
    });
    assertNoGroupLeakage([train, validation]);
    const droppedFromTrain = records.length - validation.length - train.length;
    return {
      foldIndex,
      heldOutSource,
      train,
      validation,
      droppedFromTrain,
      crossSourceGroupIds: [...crossSource].sort(),
    };
  });
}
