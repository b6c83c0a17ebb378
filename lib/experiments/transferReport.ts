import { computeConfusionMatrix, computeRocAuc, deriveThresholdMetrics } from "../evaluate/metrics.js";
import type { LesionRecord } from "../data/types.js";
import type { ReportSection } from "../evaluate/report.js";
import { MelanomaLabError } from "../util/errors.js";
import { crossValidateHead, toFoldRows, type FeatureRows, type HeadConfig } from "./crossValidate.js";
import { summarizeExternalScores } from "./externalSet.js";
import { createLeaveOneSourceOutFolds } from "./sourceFolds.js";

/** Thrown for transfer-report input that does not fit together (rows, sources, patient ids). */
export class TransferReportError extends MelanomaLabError {}

/** How the model does on one source it was not trained on (a leave-one-source-out fold). */
export interface SourceTransferRow {
  /** The held-out source (HAM10000's `ham_dataset`, a clinic/device). */
  source: string;
  images: number;
  malignant: number;
  benign: number;
  /** ROC AUC on the held-out source, scored by the model trained without it (NaN with one class). */
  rocAuc: number;
  /** Sensitivity at the shipped threshold on the held-out source (NaN without malignant images). */
  sensitivity: number;
  /** Specificity at the shipped threshold on the held-out source (NaN without benign images). */
  specificity: number;
}

/** The leave-one-source-out part of a transfer report. */
export interface LeaveOneSourceOutReport {
  /** One row per source, worst ROC AUC first (sources without an AUC last). */
  perSource: SourceTransferRow[];
  /** The lowest per-source ROC AUC (NaN when no source has one). */
  worstSourceRocAuc: number;
  /** The threshold applied to every fold's scores (the exported model's). */
  thresholdProb: number;
}

/** A model trained on the dev set, scored on a second data set (another collection). */
export interface ExternalTransferResult {
  /** The external data folder. */
  dataDir: string;
  images: number;
  malignant: number;
  benign: number;
  /** Patients (bootstrap resampling units; an image without a patient id is its own unit). */
  patients: number;
  rocAuc: { estimate: number; lower: number; upper: number; confidenceLevel: number; iterations: number };
  thresholdProb: number;
  /** Sensitivity and specificity at the shipped threshold (NaN where a class is absent). */
  sensitivity: number;
  specificity: number;
}

function rateAt(labels: readonly number[], probs: readonly number[], thresholdProb: number) {
  const m = deriveThresholdMetrics(computeConfusionMatrix(labels, probs, thresholdProb));
  const malignant = m.truePositives + m.falseNegatives;
  const benign = m.trueNegatives + m.falsePositives;
  return {
    malignant,
    benign,
    sensitivity: malignant > 0 ? m.sensitivity : NaN,
    specificity: benign > 0 ? m.specificity : NaN,
  };
}

/**
 * Per-source transfer rows from leave-one-source-out scores: for each source, the ROC AUC and the
 * sensitivity/specificity at `thresholdProb` of the scores its own fold gave it (the model trained
 * without that source). Rows unscored (NaN) are left out; rows without a source are grouped as
 * "unknown". Sorted worst ROC AUC first, sources without an AUC (one class) last, then by name.
 *
 * @example
 * summarizeLeaveOneSourceOut([1, 0, 1, 0], [0.9, 0.1, 0.4, 0.6], ["a", "a", "b", "b"], 0.5).perSource
 * // [{ source: "b", rocAuc: 0, sensitivity: 0, … }, { source: "a", rocAuc: 1, sensitivity: 1, … }]
 */
export function summarizeLeaveOneSourceOut(
  labels: readonly number[],
  probs: ArrayLike<number>,
  sources: readonly (string | undefined)[],
  thresholdProb: number,
): LeaveOneSourceOutReport {
  if (probs.length !== labels.length || sources.length !== labels.length) {
    throw new TransferReportError(
      `leave-one-source-out: received ${labels.length} labels, ${probs.length} scores and ${sources.length} sources; expected one of each per image`,
    );
  }
  if (!(thresholdProb >= 0 && thresholdProb <= 1)) {
    throw new TransferReportError(`thresholdProb: received ${thresholdProb}, expected a probability in [0, 1]`);
  }
  const bySource = new Map<string, number[]>();
  for (let i = 0; i < labels.length; i++) {
    if (Number.isNaN(probs[i])) continue;
    const s = sources[i] ?? "unknown";
    if (!bySource.has(s)) bySource.set(s, []);
    bySource.get(s)!.push(i);
  }
  const perSource = [...bySource].map(([source, rows]): SourceTransferRow => {
    const y = rows.map((r) => labels[r]);
    const p = rows.map((r) => probs[r]);
    const rates = rateAt(y, p, thresholdProb);
    return {
      source,
      images: rows.length,
      ...rates,
      rocAuc: rates.malignant > 0 && rates.benign > 0 ? computeRocAuc(y, p) : NaN,
    };
  });
  const key = (v: number) => (Number.isNaN(v) ? Infinity : v);
  perSource.sort((a, b) => key(a.rocAuc) - key(b.rocAuc) || a.source.localeCompare(b.source));
  const aucs = perSource.map((r) => r.rocAuc).filter((v) => !Number.isNaN(v));
  return { perSource, worstSourceRocAuc: aucs.length > 0 ? Math.min(...aucs) : NaN, thresholdProb };
}

/** What {@link crossValidateLeaveOneSourceOut} returns. */
export interface LeaveOneSourceOutRun extends LeaveOneSourceOutReport {
  /** Each row's score from the fold that held its source out (NaN for a row in no fold). */
  outOfFoldProbs: Float32Array;
  /** Wall time of training and scoring the folds. */
  elapsedMs: number;
}

/**
 * Leave-one-source-out transfer check on frozen features: one head per source, trained on the
 * other sources (patient/lesion groups that span sources kept whole on the held-out side, see
 * createLeaveOneSourceOutFolds), scores the held-out source; then
 * {@link summarizeLeaveOneSourceOut} at the shipped threshold. No logs, no checkpoints: heads on
 * cached features are cheap. `records` are the feature rows' records in row order (their
 * `source` is the fold key). Throws SplitError with fewer than two sources.
 *
 * @example
 * const loso = await crossValidateLeaveOneSourceOut(rows, records, { head: DEFAULT_HEAD_CONFIG, seed: 42, thresholdProb: 0.31 });
 * loso.perSource[0] // the worst source: { source: "rosendahl", rocAuc: 0.66, sensitivity: 0.8, … }
 */
export async function crossValidateLeaveOneSourceOut(
  rows: FeatureRows,
  records: readonly LesionRecord[],
  options: { head: HeadConfig; seed: number; thresholdProb: number },
): Promise<LeaveOneSourceOutRun> {
  if (records.length !== rows.labels.length) {
    throw new TransferReportError(
      `records: received ${records.length}, expected one per feature row (${rows.labels.length}) in row order`,
    );
  }
  const started = performance.now();
  const folds = toFoldRows(
    records,
    createLeaveOneSourceOutFolds(records).map((f) => ({ name: `source-${f.heldOutSource}`, ...f })),
  );
  const sources = records.map((r) => r.source);
  // Only the final scores are reported: no per-epoch scoring of the held-out source.
  const cv = await crossValidateHead({ ...rows, sources }, folds, {
    head: options.head,
    seed: options.seed,
    validateEachEpoch: false,
  });
  return {
    ...summarizeLeaveOneSourceOut(Array.from(rows.labels, Number), cv.outOfFoldProbs, sources, options.thresholdProb),
    outOfFoldProbs: cv.outOfFoldProbs,
    elapsedMs: performance.now() - started,
  };
}

/**
 * Judges a dev-trained model's scores on an external data set: ROC AUC with a stratified
 * bootstrap interval that resamples PATIENTS (images of one patient are not independent
 * evidence; an image without a patient id is its own unit), and the sensitivity/specificity the
 * shipped threshold gives there.
 *
 * @example
 * evaluateExternalScores({ dataDir, labels, probs, patientIds: records.map((r) => r.patientId), thresholdProb: 0.31, seed: 42 })
 * // { rocAuc: { estimate: 0.71, lower: 0.62, upper: 0.80, … }, sensitivity: 0.82, specificity: 0.55, patients: 130, … }
 */
export function evaluateExternalScores(input: {
  dataDir: string;
  labels: readonly number[];
  probs: ArrayLike<number>;
  patientIds: readonly (string | undefined)[];
  thresholdProb: number;
  seed: number;
  /** Bootstrap replicates. Default 1000. */
  iterations?: number;
}): ExternalTransferResult {
  const { labels, probs, patientIds, thresholdProb } = input;
  if (probs.length !== labels.length || patientIds.length !== labels.length) {
    throw new TransferReportError(
      `external ${input.dataDir}: received ${labels.length} labels, ${probs.length} scores and ${patientIds.length} patient ids; expected one of each per image`,
    );
  }
  const groupIds = patientIds.map((id, i) => (id ? `patient:${id}` : `image:${i}`));
  const rates = rateAt(labels, Array.from(probs), thresholdProb);
  const both = rates.malignant > 0 && rates.benign > 0;
  // One grouped-bootstrap summary of external scores for the experiment and the recipes bench.
  const interval = both
    ? summarizeExternalScores(
        { labels, probabilities: probs, groupIds },
        {},
        { seed: input.seed, iterations: input.iterations ?? 1000 },
      ).rocAuc
    : undefined;
  return {
    dataDir: input.dataDir,
    images: labels.length,
    malignant: rates.malignant,
    benign: rates.benign,
    patients: new Set(groupIds).size,
    rocAuc: {
      estimate: interval?.estimate ?? NaN,
      lower: interval?.lower ?? NaN,
      upper: interval?.upper ?? NaN,
      confidenceLevel: interval?.confidenceLevel ?? 0.95,
      iterations: interval?.iterations ?? 0,
    },
    thresholdProb,
    sensitivity: rates.sensitivity,
    specificity: rates.specificity,
  };
}

const f3 = (v: number | null | undefined) => (typeof v === "number" && Number.isFinite(v) ? v.toFixed(3) : "n/a");

/**
 * The transfer report as text lines: leave-one-source-out AUC and the shipped threshold's
 * sensitivity/specificity per left-out source (worst first), then the external set when given.
 *
 * @example console.log(formatTransferReport({ leaveOneSourceOut: loso, external }).join("\n"))
 */
export function formatTransferReport(report: {
  leaveOneSourceOut?: Pick<LeaveOneSourceOutReport, "perSource" | "thresholdProb"> | null;
  external?: ExternalTransferResult | null;
}): string[] {
  const lines: string[] = [];
  const loso = report.leaveOneSourceOut;
  if (loso) {
    lines.push(
      `leave-one-source-out (worst first; threshold ${loso.thresholdProb.toFixed(4)} applied to each left-out source):`,
    );
    for (const r of loso.perSource)
      lines.push(
        `  ${r.source}: ROC AUC ${f3(r.rocAuc)}, sensitivity ${f3(r.sensitivity)}, specificity ${f3(r.specificity)} ` +
          `(${r.images} images, ${r.malignant} malignant)`,
      );
  }
  const ext = report.external;
  if (ext) {
    const level = Math.round(ext.rocAuc.confidenceLevel * 100);
    lines.push(
      `external ${ext.dataDir}: ROC AUC ${f3(ext.rocAuc.estimate)} (${level}% CI ${f3(ext.rocAuc.lower)}–${f3(ext.rocAuc.upper)}, ` +
        `${ext.patients} patients resampled); at threshold ${ext.thresholdProb.toFixed(4)} sensitivity ${f3(ext.sensitivity)}, ` +
        `specificity ${f3(ext.specificity)} (${ext.images} images, ${ext.malignant} malignant)`,
    );
  }
  return lines;
}

/**
 * The transfer report as an HTML-report section (writeHtmlReport): one row per left-out source,
 * worst ROC AUC first, then the external set with its interval.
 *
 * @example writeHtmlReport(file, { title, sections: [buildTransferReportSection({ leaveOneSourceOut: loso, external })] })
 */
export function buildTransferReportSection(report: {
  leaveOneSourceOut?: Pick<LeaveOneSourceOutReport, "perSource" | "thresholdProb"> | null;
  external?: ExternalTransferResult | null;
}): ReportSection {
  const rows: string[][] = (report.leaveOneSourceOut?.perSource ?? []).map((r) => [
    `left out: ${r.source}`,
    String(r.images),
    String(r.malignant),
    f3(r.rocAuc),
    f3(r.sensitivity),
    f3(r.specificity),
  ]);
  const ext = report.external;
  if (ext)
    rows.push([
      `external: ${ext.dataDir.split(/[\\/]/).pop()}`,
      String(ext.images),
      String(ext.malignant),
      `${f3(ext.rocAuc.estimate)} (${f3(ext.rocAuc.lower)}–${f3(ext.rocAuc.upper)})`,
      f3(ext.sensitivity),
      f3(ext.specificity),
    ]);
  const thresholdProb = report.leaveOneSourceOut?.thresholdProb ?? ext?.thresholdProb;
  return {
    heading: "Transfer: sources the model was not trained on",
    table: {
      columns: ["scored on", "images", "malignant", "ROC AUC", "sensitivity", "specificity"],
      rows,
      caption:
        `Each left-out source is scored by a head trained without it; sensitivity and specificity at the shipped threshold ` +
        `${thresholdProb === undefined ? "" : thresholdProb.toFixed(4)}. The external set is scored by the trained model; ` +
        `its interval is a 95% bootstrap over patients.`,
    },
  };
}
