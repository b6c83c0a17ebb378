import type { TriageModelMetadata } from "../export/triageModel.js";
import { decideTriageForModel, type TriageLevel } from "../triage/triagePolicy.js";

/** What the service needs to decide one image: its probability and, with test-time augmentation, each view's. */
export interface ServiceDecisionInput {
  /** Raw P(malignant) of the upload as sent (view 0), 0..1. */
  probability: number;
  /** Raw P(malignant) per dihedral view (view 0 first) when the service scores views (`ttaViews` ≥ 2). */
  viewProbabilities?: number[];
}

/** The decision a service response carries, beside the model's identity and the request id. */
export interface ServiceDecision {
  /** P(malignant) reported, 0..1: calibrated when the model has a triage policy, else raw. */
  probability: number;
  /** The model's raw P(malignant) of the upload. */
  rawProbability?: number;
  /** [lower, upper] bounds of the probability from the views' spread, 0..1; null without views. */
  interval: [number, number] | null;
  /** Triage level: "urgent", "routine", or "reassure" when the policy has that level. */
  level: TriageLevel | string;
  /** Whether an uncertain result was moved up one level, and why. */
  escalated?: boolean;
  escalationReason?: string | null;
  /** The operating point the level was decided at, with what it achieved on validation. */
  operatingPoint?: {
    level: string;
    thresholdProb: number;
    validationSensitivity: number | null;
    validationSpecificity: number | null;
    validationNpv: number | null;
  };
  /** One plain-language sentence for the person reading the result; never a diagnosis. */
  sentence: string;
}

/**
 * Turns a probability into a decision, given the served model's metadata: the one place the
 * service's triage policy is chosen (createTriageService's `decide` option).
 */
export type DecideTriage = (input: ServiceDecisionInput, metadata: TriageModelMetadata) => ServiceDecision;

/**
 * The service's default decision: decideTriageForModel, the same one `npm run score` and the
 * phone app make — the model's calibrated three-level policy when metadata.json has one, else
 * urgent/routine at `thresholdProb` — with the interval from the upload's dihedral views.
 *
 * @example decideWithModelPolicy({ probability: 0.42, viewProbabilities: [0.42, 0.4, 0.47] }, metadata).level // "urgent" | "routine" | "reassure"
 */
export const decideWithModelPolicy: DecideTriage = (input, metadata) => decideTriageForModel(metadata, input);
