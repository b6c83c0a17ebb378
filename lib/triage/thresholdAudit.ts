import { computeConfusionMatrix, deriveThresholdMetrics, RATE_TARGET_SLACK } from "../evaluate/metrics.js";
import type { ThresholdGroupCheck, TriageThresholdProvenance } from "../export/triageModel.js";

/**
 * What {@link auditThreshold} checks: the scores the threshold was chosen on (a validation split's,
 * or the pooled out-of-fold scores of K fold models), the folds that made them if any, and the threshold.
 */
export interface ThresholdAuditInput {
  /** 1 malignant, 0 benign, per row. */
  labels: readonly number[];
  /** P(malignant) per row the threshold was chosen on; NaN for a row nothing scored. */
  probs: ArrayLike<number>;
  /** Source per row (undefined → "unknown"). */
  sources: readonly (string | undefined)[];
  /** The folds whose validation rows produced the scores (none for one validation split). */
  folds?: readonly { name: string; validationRows: readonly number[] }[];
  thresholdProb: number;
  targetSensitivity: number;
  /**
   * Which scores these are, said as the record will say it, e.g. "validation split, scored by the
   * exported model" or "pooled out-of-fold predictions of 5 fold models (lesion-grouped 5-fold)".
   */
  scoredOn: string;
}

/** Sensitivity and specificity at the threshold over `rows` (unscored NaN rows left out; null where a class is absent). */
function checkRows(name: string, rows: readonly number[], input: ThresholdAuditInput): ThresholdGroupCheck {
  const scored = rows.filter((r) => !Number.isNaN(input.probs[r]));
  if (scored.length === 0) return { name, images: 0, malignant: 0, benign: 0, sensitivity: null, specificity: null };
  const m = deriveThresholdMetrics(
    computeConfusionMatrix(
      scored.map((r) => input.labels[r]),
      scored.map((r) => input.probs[r]),
      input.thresholdProb,
    ),
  );
  const malignant = m.truePositives + m.falseNegatives;
  const benign = m.trueNegatives + m.falsePositives;
  return {
    name,
    images: scored.length,
    malignant,
    benign,
    sensitivity: malignant > 0 ? m.sensitivity : null,
    specificity: benign > 0 ? m.specificity : null,
  };
}

/**
 * Provenance of a triage threshold and how it holds up where pooling hides it: sensitivity and
 * specificity at the threshold overall, for each fold (pooled out-of-fold scores come from
 * differently calibrated fold models) and for each source, the worst source by sensitivity, and
 * one warning per source whose sensitivity is below the target. Used for the experiments'
 * out-of-fold thresholds and for the notebooks' validation-split threshold alike.
 *
 * @example
 * const audit = auditThreshold({ labels, probs, sources, thresholdProb: 0.31, targetSensitivity: 0.9, scoredOn: "validation split, scored by the exported model" });
 * audit.worstSource // { name: "clinicB", sensitivity: 0.82, … }
 */
export function auditThreshold(input: ThresholdAuditInput): TriageThresholdProvenance {
  const all = Array.from({ length: input.labels.length }, (_, i) => i);
  const pooled = checkRows("pooled", all, input);
  const bySource = new Map<string, number[]>();
  for (const i of all) {
    const source = input.sources[i] ?? "unknown";
    if (!bySource.has(source)) bySource.set(source, []);
    bySource.get(source)!.push(i);
  }
  const perSource = [...bySource.keys()]
    .sort()
    .map((s) => checkRows(s, bySource.get(s)!, input))
    .filter((c) => c.images > 0);
  const withPositives = perSource.filter((c) => c.sensitivity !== null);
  const worstSource =
    withPositives.length === 0 ? null : withPositives.reduce((a, c) => (c.sensitivity! < a.sensitivity! ? c : a));
  const warnings = withPositives
    .filter((c) => c.sensitivity! < input.targetSensitivity - RATE_TARGET_SLACK)
    .map(
      (c) =>
        `source ${c.name}: sensitivity ${c.sensitivity!.toFixed(3)} (${Math.round(c.sensitivity! * c.malignant)}/${c.malignant} malignant) at threshold ` +
        `${input.thresholdProb.toFixed(4)}, below the target ${input.targetSensitivity}`,
    );
  return {
    method: "highest threshold with sensitivity ≥ target",
    targetSensitivity: input.targetSensitivity,
    scoredOn: input.scoredOn,
    images: pooled.images,
    malignant: pooled.malignant,
    benign: pooled.benign,
    sensitivity: pooled.sensitivity ?? NaN,
    specificity: pooled.specificity,
    perFold: (input.folds ?? []).map((f) => checkRows(f.name, f.validationRows, input)),
    perSource,
    worstSource,
    warnings,
  };
}
