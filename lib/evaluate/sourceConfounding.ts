import { MelanomaLabError } from "../util/errors.js";
import { computeRocAucExact } from "../util/rocAuc.js";
import { validateBinaryInputs, type BinaryLabels, type ProbabilityScores } from "./metrics.js";
import type { ReportSection } from "./report.js";

/** Thrown when the sources do not line up with the labels (wrong length). */
export class SourceInputError extends MelanomaLabError {}

/** Source of one record: a clinic/device name; undefined or "" when unknown. */
export type SourceName = string | undefined | null;

/** Counts and AUC of one source. */
export interface SourceAucRow {
  source: string;
  positives: number;
  negatives: number;
  /** positives × negatives: the (malignant, benign) pairs this source contributes. */
  pairCount: number;
  /** AUC within this source; NaN when it holds only one class. */
  auc: number;
}

/** What {@link computeWithinSourceRocAuc} returns. */
export interface WithinSourceAucResult {
  /** Share of same-source (malignant, benign) pairs ranked correctly (ties count ½); NaN when there are no such pairs. */
  auc: number;
  /** Same-source (malignant, benign) pairs counted. */
  pairCount: number;
  /** All (malignant, benign) pairs with a known source, for comparison with pairCount. */
  pooledPairCount: number;
  /** One row per source, sorted by name. */
  perSource: SourceAucRow[];
  /** Records left out because their source is unknown. */
  unknownSourceCount: number;
  /** Why auc is NaN; absent otherwise. */
  reason?: string;
}

/** What {@link computeSourceOnlyRocAuc} returns. */
export interface SourceOnlyAuc {
  /** ROC AUC of the score "malignant share of this record's source" (ties ½); NaN when a class is missing. */
  auc: number;
  /** Malignant share per source in the reference (training) data. */
  prevalenceBySource: Record<string, number>;
  /** Malignant share over all reference records, used for sources the reference never saw. */
  overallPrevalence: number;
  /** Records whose source was not in the reference data (scored with overallPrevalence). */
  unseenSourceCount: number;
  /** Why auc is NaN; absent otherwise. */
  reason?: string;
}

const UNKNOWN = "";

function sourceKeyOf(source: SourceName): string {
  return source === undefined || source === null ? UNKNOWN : String(source).trim();
}

function checkSources(sources: readonly SourceName[], count: number, metricName: string): void {
  if (sources.length !== count) {
    throw new SourceInputError(
      `${metricName}: sources has ${sources.length} entries but labels has ${count}; expected one source per label`,
    );
  }
}

function groupIndicesBySource(sources: readonly SourceName[]): Map<string, number[]> {
  const groups = new Map<string, number[]>();
  sources.forEach((s, i) => {
    const key = sourceKeyOf(s);
    const list = groups.get(key);
    if (list) list.push(i);
    else groups.set(key, [i]);
  });
  return groups;
}

/**
 * ROC AUC counting only (malignant, benign) pairs that share a source: the probability that a
 * melanoma scores above a benign lesion *from the same clinic/device*, every such pair weighted
 * equally (ties count ½). Equivalently the pair-weighted mean of the per-source AUCs. When the
 * source predicts the label (HAM10000: some clinics sent mostly melanomas), the pooled AUC rewards
 * a model for recognising the clinic; this one cannot. Records with an unknown source are left
 * out. auc is NaN, with `reason`, when no source holds both classes.
 *
 * @example
 * computeWithinSourceRocAuc([1, 0, 1, 0], [0.9, 0.2, 0.4, 0.6], ["a", "a", "b", "b"]).auc
 * // 0.5: (0.9 > 0.2) in a counts 1, (0.4 < 0.6) in b counts 0; pooled AUC would be 0.75
 */
export function computeWithinSourceRocAuc(
  labels: BinaryLabels,
  probs: ProbabilityScores,
  sources: readonly SourceName[],
): WithinSourceAucResult {
  const metricName = "within-source ROC AUC";
  validateBinaryInputs(labels, probs, { metricName });
  checkSources(sources, labels.length, metricName);
  const perSource: SourceAucRow[] = [];
  let concordantSum = 0;
  let pairCount = 0;
  let unknownSourceCount = 0;
  let knownPositives = 0;
  let knownNegatives = 0;
  for (const [source, indices] of groupIndicesBySource(sources)) {
    if (source === UNKNOWN) {
      unknownSourceCount = indices.length;
      continue;
    }
    const sourceLabels = indices.map((i) => labels[i]);
    const positives = sourceLabels.filter((l) => l === 1).length;
    const negatives = sourceLabels.length - positives;
    const pairs = positives * negatives;
    const auc =
      pairs > 0
        ? computeRocAucExact(
            sourceLabels,
            indices.map((i) => probs[i]),
          )
        : NaN;
    // AUC × pairs is the concordant-pair count (ties ½), so sources pool by their pair counts.
    const concordant = pairs > 0 ? auc * pairs : 0;
    perSource.push({ source, positives, negatives, pairCount: pairs, auc });
    concordantSum += concordant;
    pairCount += pairs;
    knownPositives += positives;
    knownNegatives += negatives;
  }
  perSource.sort((a, b) => (a.source < b.source ? -1 : a.source > b.source ? 1 : 0));
  const result: WithinSourceAucResult = {
    auc: pairCount > 0 ? concordantSum / pairCount : NaN,
    pairCount,
    pooledPairCount: knownPositives * knownNegatives,
    perSource,
    unknownSourceCount,
  };
  if (pairCount === 0) {
    result.reason =
      perSource.length === 0
        ? `no record has a known source (${unknownSourceCount} unknown); expected sources such as HAM10000's ham_dataset`
        : `no source holds both classes (${perSource.map((r) => `${r.source}: ${r.positives} malignant, ${r.negatives} benign`).join("; ")}); expected at least one source with a melanoma and a benign lesion`;
  }
  return result;
}

/**
 * How well the source alone predicts the label: every record is scored with the malignant share
 * of its source in `reference` (the training split; by default the same records, which is
 * slightly optimistic), and the ROC AUC of that score is returned (ties ½). 0.5 means the clinic
 * says nothing about the label; near 1 means a model can score well by recognising the clinic.
 * Sources absent from the reference get its overall malignant share; unknown sources form one
 * group of their own ("").
 *
 * @example
 * computeSourceOnlyRocAuc([1, 1, 0, 0], ["a", "a", "b", "a"]).auc
 * // shares a: 2/3, b: 0 → scores [2/3, 2/3, 0, 2/3]: pairs (1,0): 0 beats b ✓✓, ties with a ½½ → 0.75
 */
export function computeSourceOnlyRocAuc(
  labels: BinaryLabels,
  sources: readonly SourceName[],
  reference: { labels: BinaryLabels; sources: readonly SourceName[] } = { labels, sources },
): SourceOnlyAuc {
  const metricName = "source-only ROC AUC";
  checkSources(sources, labels.length, metricName);
  checkSources(reference.sources, reference.labels.length, `${metricName} (reference)`);
  validateBinaryInputs(reference.labels, new Array<number>(reference.labels.length).fill(0), {
    metricName: `${metricName} (reference)`,
  });
  const counts = new Map<string, { positives: number; total: number }>();
  let referencePositives = 0;
  for (let i = 0; i < reference.labels.length; i++) {
    const key = sourceKeyOf(reference.sources[i]);
    const entry = counts.get(key) ?? { positives: 0, total: 0 };
    entry.positives += reference.labels[i];
    entry.total++;
    counts.set(key, entry);
    referencePositives += reference.labels[i];
  }
  const overallPrevalence = referencePositives / reference.labels.length;
  const prevalenceBySource: Record<string, number> = {};
  for (const [key, c] of counts) prevalenceBySource[key] = c.positives / c.total;
  let unseenSourceCount = 0;
  const scores = Array.from({ length: labels.length }, (_, i) => {
    const share = prevalenceBySource[sourceKeyOf(sources[i])];
    if (share === undefined) {
      unseenSourceCount++;
      return overallPrevalence;
    }
    return share;
  });
  const { positives, negatives } = validateBinaryInputs(labels, scores, { metricName });
  const base = { prevalenceBySource, overallPrevalence, unseenSourceCount };
  if (positives === 0 || negatives === 0) {
    return {
      ...base,
      auc: NaN,
      reason: `all ${labels.length} labels are ${positives === 0 ? "benign" : "malignant"}; expected both classes`,
    };
  }
  return { ...base, auc: computeRocAucExact(labels, scores) };
}

/** The three AUCs of the source-confounding lesson and the per-source counts behind them. */
export interface SourceConfoundingSummary {
  /** Ordinary ROC AUC over all records (every (malignant, benign) pair, any sources). */
  pooledAuc: number;
  withinSource: WithinSourceAucResult;
  sourceOnly: SourceOnlyAuc;
}

/**
 * Pooled, within-source and source-only ROC AUC side by side (see
 * {@link computeWithinSourceRocAuc}, {@link computeSourceOnlyRocAuc}). The pooled AUC is the
 * all-pairs Mann–Whitney AUC, equal to the trapezoid ROC AUC.
 *
 * @example
 * const lesson = summarizeSourceConfounding(labels, probs, records.map((r) => r.source), { labels: trainLabels, sources: trainSources });
 * console.log(formatSourceConfounding(lesson));
 */
export function summarizeSourceConfounding(
  labels: BinaryLabels,
  probs: ProbabilityScores,
  sources: readonly SourceName[],
  reference?: { labels: BinaryLabels; sources: readonly SourceName[] },
): SourceConfoundingSummary {
  const { positives, negatives } = validateBinaryInputs(labels, probs, { metricName: "pooled ROC AUC" });
  return {
    pooledAuc: positives > 0 && negatives > 0 ? computeRocAucExact(labels, probs) : NaN,
    withinSource: computeWithinSourceRocAuc(labels, probs, sources),
    sourceOnly: computeSourceOnlyRocAuc(labels, sources, reference),
  };
}

function formatAuc(v: number): string {
  return Number.isFinite(v) ? v.toFixed(3) : "n/a";
}

/**
 * Plain-text lines of the lesson: the three AUCs, what they mean, and one line per source.
 *
 * @example console.log(formatSourceConfounding(summarizeSourceConfounding(labels, probs, sources)));
 */
export function formatSourceConfounding(summary: SourceConfoundingSummary): string {
  const { pooledAuc, withinSource, sourceOnly } = summary;
  const lines = [
    `pooled ROC AUC        ${formatAuc(pooledAuc)}  (all malignant–benign pairs, any source)`,
    `within-source ROC AUC ${formatAuc(withinSource.auc)}  (${withinSource.pairCount} of ${withinSource.pooledPairCount} pairs share a source)${withinSource.reason ? ` — ${withinSource.reason}` : ""}`,
    `source-only ROC AUC   ${formatAuc(sourceOnly.auc)}  (score = malignant share of the image's source in the reference data)${sourceOnly.reason ? ` — ${sourceOnly.reason}` : ""}`,
  ];
  if (withinSource.unknownSourceCount > 0)
    lines.push(`${withinSource.unknownSourceCount} records with unknown source left out of the within-source AUC`);
  for (const row of withinSource.perSource) {
    const share = sourceOnly.prevalenceBySource[row.source];
    lines.push(
      `  ${row.source}: ${row.positives} malignant, ${row.negatives} benign, AUC ${formatAuc(row.auc)}${share === undefined ? "" : `, reference malignant share ${(share * 100).toFixed(1)}%`}`,
    );
  }
  return lines.join("\n");
}

/**
 * A report section for {@link writeHtmlReport}: the three AUCs and a per-source table.
 *
 * @example sections.push(buildSourceConfoundingSection(summarizeSourceConfounding(labels, probs, sources)));
 */
export function buildSourceConfoundingSection(summary: SourceConfoundingSummary): ReportSection {
  const { pooledAuc, withinSource, sourceOnly } = summary;
  const rows = withinSource.perSource.map((r) => [
    r.source,
    String(r.positives),
    String(r.negatives),
    r.auc,
    sourceOnly.prevalenceBySource[r.source] ?? NaN,
  ]);
  return {
    heading: "Source confounding: pooled vs within-source AUC",
    text:
      `Pooled ROC AUC ${formatAuc(pooledAuc)}; within-source ROC AUC ${formatAuc(withinSource.auc)} (only malignant–benign pairs from the same source, ` +
      `${withinSource.pairCount} of ${withinSource.pooledPairCount} pairs); source-only ROC AUC ${formatAuc(sourceOnly.auc)} (predicting from the source's malignant share alone). ` +
      `When the source-only AUC is well above 0.5 and the within-source AUC is well below the pooled AUC, part of the pooled AUC comes from recognising the clinic, not the lesion.` +
      (withinSource.reason ? ` Within-source AUC unavailable: ${withinSource.reason}.` : ""),
    table: { columns: ["source", "malignant", "benign", "AUC within source", "reference malignant share"], rows },
  };
}
