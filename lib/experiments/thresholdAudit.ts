import type { ThresholdGroupCheck, TriageThresholdProvenance } from "../export/triageModel.js";
import type { FoldRows } from "./crossValidate.js";

/** What {@link auditOutOfFoldThreshold} checks: out-of-fold scores, the folds that made them, and the threshold. */
export interface OutOfFoldThresholdInput {
  /** 1 malignant, 0 benign, per row. */
  labels: readonly number[];
  /** Out-of-fold P(malignant) per row; NaN for a row no fold scored. */
  outOfFoldProbs: ArrayLike<number>;
  /** Source per row (undefined → "unknown"). */
  sources: readonly (string | undefined)[];
  /** The folds whose validation rows produced the scores. */
  folds: readonly Pick<FoldRows, "name" | "validationRows">[];
  thresholdProb: number;
  targetSensitivity: number;
  /** How the folds were made, e.g. "lesion-grouped 5-fold" or "leave-one-source-out". */
  splitDescription: string;
}

// Rates computed as counts / total can miss an exact target by one ulp (9/10 vs 0.9).
const TARGET_SLACK = 1e-12;

function checkRows(name: string, rows: readonly number[], input: OutOfFoldThresholdInput): ThresholdGroupCheck {
  let malignant = 0;
  let benign = 0;
  let caught = 0;
  let cleared = 0;
  for (const r of rows) {
    const p = input.outOfFoldProbs[r];
    if (Number.isNaN(p)) continue;
    if (input.labels[r] === 1) {
      malignant++;
      if (p >= input.thresholdProb) caught++;
    } else {
      benign++;
      if (p < input.thresholdProb) cleared++;
    }
  }
  return { name, images: malignant + benign, malignant, benign, sensitivity: malignant > 0 ? caught / malignant : null, specificity: benign > 0 ? cleared / benign : null };
}

/**
 * Provenance of a threshold chosen on pooled out-of-fold predictions, and how it holds up
 * where the pooling hides it: sensitivity and specificity at the threshold for each fold (each
 * fold's scores come from its own, differently calibrated model) and for each source, the
 * worst source by sensitivity, and one warning per source whose sensitivity is below the target.
 *
 * @example
 * const audit = auditOutOfFoldThreshold({ labels, outOfFoldProbs, sources, folds, thresholdProb: 0.31, targetSensitivity: 0.9, splitDescription: "lesion-grouped 5-fold" });
 * audit.worstSource // { name: "clinicB", sensitivity: 0.82, … }
 */
export function auditOutOfFoldThreshold(input: OutOfFoldThresholdInput): TriageThresholdProvenance {
  const all = Array.from({ length: input.labels.length }, (_, i) => i);
  const pooled = checkRows("pooled", all, input);
  const bySource = new Map<string, number[]>();
  for (const i of all) {
    const source = input.sources[i] ?? "unknown";
    if (!bySource.has(source)) bySource.set(source, []);
    bySource.get(source)!.push(i);
  }
  const perSource = [...bySource.keys()].sort().map((s) => checkRows(s, bySource.get(s)!, input)).filter((c) => c.images > 0);
  const withPositives = perSource.filter((c) => c.sensitivity !== null);
  const worstSource = withPositives.length === 0 ? null : withPositives.reduce((a, c) => (c.sensitivity! < a.sensitivity! ? c : a));
  const warnings = withPositives
    .filter((c) => c.sensitivity! < input.targetSensitivity - TARGET_SLACK)
    .map(
      (c) =>
        `source ${c.name}: sensitivity ${c.sensitivity!.toFixed(3)} (${Math.round(c.sensitivity! * c.malignant)}/${c.malignant} malignant) at threshold ` +
        `${input.thresholdProb.toFixed(4)}, below the target ${input.targetSensitivity}`,
    );
  return {
    method: "highest threshold with sensitivity ≥ target",
    targetSensitivity: input.targetSensitivity,
    scoredOn: `pooled out-of-fold predictions of ${input.folds.length} fold models (${input.splitDescription}); the exported model is retrained on all images and its scores were not re-checked`,
    images: pooled.images,
    malignant: pooled.malignant,
    benign: pooled.benign,
    sensitivity: pooled.sensitivity ?? NaN,
    specificity: pooled.specificity,
    perFold: input.folds.map((f) => checkRows(f.name, f.validationRows, input)),
    perSource,
    worstSource,
    warnings,
  };
}
