import {
  predictMalignantProbability,
  predictMalignantProbabilityTta,
  type ImagePrediction,
  type LoadedTriageModel,
  type TtaImagePrediction,
} from "../export/triageModel.js";
import { ImageDecodeError } from "../data/decodeImage.js";
import type { LesionLabel } from "../data/types.js";
import { findThresholdForSensitivity } from "../evaluate/metrics.js";
import { MelanomaLabError } from "../util/errors.js";
import { decideTriage, type TriageDecision, type TriagePolicy } from "./triagePolicy.js";

/** Thrown for threshold input that does not fit together (lengths, target, no positives). */
export class ThresholdError extends MelanomaLabError {}

/** The triage decision for one image. */
export interface TriageResult {
  imageId: string;
  /** Probability of malignant, 0..1. */
  probability: number;
  /** "urgent" when probability ≥ thresholdProb, else "routine". */
  triage: "urgent" | "routine";
  thresholdProb: number;
  /**
   * The calibrated three-level decision (see decideTriage) when a policy was given or the
   * model's metadata holds one; absent otherwise.
   */
  decision?: TriageDecision;
}

/** A threshold and what it achieves on the labels it was chosen on. */
export interface ThresholdChoice {
  thresholdProb: number;
  /** Fraction of malignant images with probability ≥ threshold. */
  sensitivity: number;
  /** Fraction of benign images with probability < threshold. */
  specificity: number;
  positives: number;
  negatives: number;
}

function isPositive(label: number | string, i: number): boolean {
  if (label === 1 || label === "malignant") return true;
  if (label === 0 || label === "benign") return false;
  throw new ThresholdError(`labels[${i}]: received ${JSON.stringify(label)}, expected 0, 1, "benign" or "malignant"`);
}

/**
 * The highest probability threshold whose sensitivity (malignant with probability ≥ threshold)
 * is at least `targetSensitivity` on these labels — usually the validation set. It is the k-th
 * highest malignant probability, k = ⌈target × positives⌉.
 *
 * @example chooseThresholdForSensitivity([1, 1, 0, 1, 0], [0.9, 0.6, 0.5, 0.3, 0.1], 0.6).thresholdProb // 0.6
 */
export function chooseThresholdForSensitivity(
  labels: ArrayLike<number> | readonly LesionLabel[],
  probabilities: ArrayLike<number>,
  targetSensitivity: number,
): ThresholdChoice {
  if (labels.length !== probabilities.length) {
    throw new ThresholdError(
      `labels (${labels.length}) and probabilities (${probabilities.length}) must have the same length`,
    );
  }
  if (!(targetSensitivity > 0 && targetSensitivity <= 1)) {
    throw new ThresholdError(`targetSensitivity: received ${targetSensitivity}, expected 0 < target ≤ 1`);
  }
  const numericLabels = Array.from({ length: labels.length }, (_, i) =>
    isPositive((labels as ArrayLike<number | string>)[i], i) ? 1 : 0,
  );
  for (let i = 0; i < probabilities.length; i++) {
    const p = probabilities[i];
    if (!(p >= 0 && p <= 1))
      throw new ThresholdError(`probabilities[${i}]: received ${p}, expected a probability in [0, 1]`);
  }
  const positives = numericLabels.reduce<number>((n, y) => n + y, 0);
  const negatives = numericLabels.length - positives;
  if (positives === 0) throw new ThresholdError("labels: no malignant images, so sensitivity is undefined");
  if (negatives === 0) {
    // Without benign images every threshold is an ROC corner; the k-th highest score is the answer.
    const sorted = Array.from({ length: probabilities.length }, (_, i) => probabilities[i]).sort((a, b) => b - a);
    const thresholdProb = sorted[Math.max(1, Math.ceil(targetSensitivity * positives - 1e-9)) - 1];
    return {
      thresholdProb,
      sensitivity: sorted.filter((p) => p >= thresholdProb).length / positives,
      specificity: NaN,
      positives,
      negatives,
    };
  }
  // The ROC walk in lib/evaluate is the one implementation of "highest threshold reaching a TPR".
  const chosen = findThresholdForSensitivity(numericLabels, probabilities, targetSensitivity);
  return {
    thresholdProb: chosen.thresholdProb,
    sensitivity: chosen.sensitivity,
    specificity: chosen.specificity,
    positives,
    negatives,
  };
}

/**
 * "urgent" when probability ≥ thresholdProb, else "routine".
 *
 * @example triageDecision(0.42, 0.3) // "urgent"
 */
export function triageDecision(probability: number, thresholdProb: number): "urgent" | "routine" {
  return probability >= thresholdProb ? "urgent" : "routine";
}

/**
 * Scores one image with an exported triage model and applies its threshold (from metadata,
 * or `thresholdProb` to override). With a triage policy (`policy`, else the metadata's `policy`;
 * `policy: null` ignores it) the result also carries the calibrated three-level `decision`;
 * `ttaViews` (2–8) scores that many dihedral views, gives the decision its interval, and makes
 * `probability` their mean. Throws {@link ImageDecodeError} for an unreadable image.
 *
 * @example const r = await triageImage(await loadTriageModel("out/triage"), "lesion.jpg", { ttaViews: 8 }); // r.decision?.level
 */
export async function triageImage(
  loaded: LoadedTriageModel,
  imagePath: string,
  options: { thresholdProb?: number; policy?: TriagePolicy | null; ttaViews?: number } = {},
): Promise<TriageResult> {
  const thresholdProb = options.thresholdProb ?? loaded.metadata.thresholdProb;
  const policy = options.policy === null ? undefined : (options.policy ?? loaded.metadata.policy);
  const [prediction]: (ImagePrediction | TtaImagePrediction)[] =
    options.ttaViews !== undefined && options.ttaViews > 1
      ? await predictMalignantProbabilityTta(loaded, [imagePath], { views: options.ttaViews })
      : await predictMalignantProbability(loaded, [imagePath], { batchSize: 1 });
  if ("problem" in prediction)
    throw new ImageDecodeError(imagePath, prediction.problem.reason.replace(`${imagePath}: `, ""));
  const { imageId, probability } = prediction;
  const views = (prediction as { viewProbabilities?: number[] }).viewProbabilities;
  return {
    imageId,
    probability,
    triage: triageDecision(probability, thresholdProb),
    thresholdProb,
    ...(policy ? { decision: decideTriage(policy, { probability, views }) } : {}),
  };
}

/** What {@link chooseThresholdForEverySource}'s threshold gives on one source. */
export interface SourceThresholdCheck {
  source: string;
  /** The highest threshold reaching the target on this source alone. */
  ownThresholdProb: number;
  /** Sensitivity on this source at the chosen (shared) threshold. */
  sensitivity: number;
  /** Specificity on this source at the chosen threshold; NaN without benign images. */
  specificity: number;
  positives: number;
  negatives: number;
}

/** A threshold that reaches the target sensitivity on every source, and what it costs. */
export interface EverySourceThresholdChoice extends ThresholdChoice {
  /** The source whose own threshold is the lowest, i.e. the one that sets the shared threshold. */
  limitingSource: string;
  /** One entry per source with malignant images, sorted by name. */
  bySource: SourceThresholdCheck[];
  /** Sources left out because they hold no malignant image (sensitivity undefined there). */
  sourcesWithoutPositives: string[];
}

/**
 * The highest probability threshold whose sensitivity reaches `targetSensitivity` on EVERY
 * source separately (e.g. on leave-one-source-out scores, where each source was scored by a model
 * that never saw it), rather than on all images pooled: the minimum over sources of each
 * source's own {@link chooseThresholdForSensitivity} threshold. Sensitivity only falls as the
 * threshold rises, so a higher threshold would miss the target on the limiting source. The
 * returned sensitivity/specificity are pooled over all rows at that threshold. Sources without
 * malignant images are listed and left out of the rule; rows with an unknown source ("" or
 * undefined) count in the pooled figures only.
 *
 * @example
 * // source a's own threshold is 0.8, b's is 0.4 (its malignant scores are 0.4 and 0.9):
 * chooseThresholdForEverySource([1, 0, 1, 1, 0], [0.8, 0.5, 0.9, 0.4, 0.2], ["a", "a", "b", "b", "b"], 1).thresholdProb // 0.4
 */
export function chooseThresholdForEverySource(
  labels: ArrayLike<number> | readonly LesionLabel[],
  probabilities: ArrayLike<number>,
  sources: readonly (string | undefined | null)[],
  targetSensitivity: number,
): EverySourceThresholdChoice {
  if (sources.length !== labels.length) {
    throw new ThresholdError(`sources (${sources.length}) and labels (${labels.length}) must have the same length`);
  }
  // Validates lengths, labels, probabilities and the target once for all rows.
  chooseThresholdForSensitivity(labels, probabilities, targetSensitivity);
  const numericLabels = Array.from({ length: labels.length }, (_, i) =>
    isPositive((labels as ArrayLike<number | string>)[i], i) ? 1 : 0,
  );
  const rowsOf = new Map<string, number[]>();
  sources.forEach((s, i) => {
    if (typeof s !== "string" || s === "") return;
    if (!rowsOf.has(s)) rowsOf.set(s, []);
    rowsOf.get(s)!.push(i);
  });
  const own: { source: string; rows: number[]; thresholdProb: number }[] = [];
  const sourcesWithoutPositives: string[] = [];
  for (const source of [...rowsOf.keys()].sort()) {
    const rows = rowsOf.get(source)!;
    if (!rows.some((i) => numericLabels[i] === 1)) {
      sourcesWithoutPositives.push(source);
      continue;
    }
    const choice = chooseThresholdForSensitivity(
      rows.map((i) => numericLabels[i]),
      rows.map((i) => probabilities[i]),
      targetSensitivity,
    );
    own.push({ source, rows, thresholdProb: choice.thresholdProb });
  }
  if (own.length === 0) {
    throw new ThresholdError(
      `sources: none of ${rowsOf.size} named sources holds a malignant image, so no per-source sensitivity is defined`,
    );
  }
  const limiting = own.reduce((a, b) => (b.thresholdProb < a.thresholdProb ? b : a));
  const thresholdProb = limiting.thresholdProb;
  const rates = (rows: readonly number[]) => {
    let tp = 0;
    let p = 0;
    let tn = 0;
    let n = 0;
    for (const i of rows) {
      const urgent = probabilities[i] >= thresholdProb;
      if (numericLabels[i] === 1) {
        p++;
        if (urgent) tp++;
      } else {
        n++;
        if (!urgent) tn++;
      }
    }
    return { sensitivity: p > 0 ? tp / p : NaN, specificity: n > 0 ? tn / n : NaN, positives: p, negatives: n };
  };
  const pooled = rates(numericLabels.map((_, i) => i));
  return {
    thresholdProb,
    ...pooled,
    limitingSource: limiting.source,
    bySource: own.map((o) => ({ source: o.source, ownThresholdProb: o.thresholdProb, ...rates(o.rows) })),
    sourcesWithoutPositives,
  };
}
