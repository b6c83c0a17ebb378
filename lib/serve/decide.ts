import type { TriageModelMetadata } from "../export/triageModel.js";
import { triageDecision } from "../triage/triage.js";

/** What the service needs to decide one image: its probability and, with test-time augmentation, each view's. */
export interface ServiceDecisionInput {
  /** P(malignant), 0..1. */
  probability: number;
  /** P(malignant) per augmented view, when views were scored (the service scores one view today). */
  viewProbabilities?: number[];
}

/** The decision a service response carries, beside the model's identity and the request id. */
export interface ServiceDecision {
  /** P(malignant) reported, 0..1 (calibrated, or a views' mean, when the policy does that). */
  probability: number;
  /** [lower, upper] bounds of the probability, 0..1; null when the policy gives none. */
  interval: [number, number] | null;
  /** Triage level, e.g. "urgent", "routine" (a policy may add "reassure"). */
  level: string;
  /** One plain-language sentence for the person reading the result; never a diagnosis. */
  sentence: string;
}

/**
 * Turns a probability into a decision, given the served model's metadata: the one place the
 * service's triage policy is chosen (createTriageService's `decide` option).
 */
export type DecideTriage = (input: ServiceDecisionInput, metadata: TriageModelMetadata) => ServiceDecision;

/**
 * The service's decision until the triage policy (lib/triage `decideTriage`, stored as
 * `metadata.policy`) is wired in: `urgent` at or above the exported `metadata.thresholdProb`
 * (triageDecision), else `routine`; no interval; a plain sentence that says it is not a diagnosis.
 * To use the policy instead, pass
 * `decide: (input, metadata) => decideTriage(metadata.policy, input)` (mapped to
 * {@link ServiceDecision}) to createTriageService, or make that this default.
 *
 * @example decideAtExportedThreshold({ probability: 0.42 }, metadata) // { level: "urgent", interval: null, … } when thresholdProb ≤ 0.42
 */
export const decideAtExportedThreshold: DecideTriage = ({ probability }, metadata) => {
  const { thresholdProb } = metadata;
  const level = triageDecision(probability, thresholdProb);
  const sentence =
    level === "urgent"
      ? `The estimated probability (${probability.toFixed(2)}) is at or above this model's referral threshold (${thresholdProb.toFixed(2)}): please have a clinician look at this lesion soon. This is not a diagnosis.`
      : `The estimated probability (${probability.toFixed(2)}) is below this model's referral threshold (${thresholdProb.toFixed(2)}): routine follow-up. This is not a diagnosis; see a clinician if the lesion changes or worries you.`;
  return { probability, interval: null, level, sentence };
};
