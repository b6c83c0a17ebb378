/**
 * The ONE place where the app turns a probability into a triage level and a sentence. Until
 * metadata carries a triage policy (lib/triage's `decideTriage(policy, { probability,
 * viewProbabilities })`, being added in parallel), it applies the exported model's single
 * threshold: `urgent` at or above `thresholdProb`, else `routine`. To adopt the policy, replace
 * the body of {@link decideAppTriage} with a call to decideTriage (a pure lib module, safe to bundle).
 */
import type { TriageModelMetadata } from "../../lib/export/triageModel.js";

/** What the page shows for one photo. */
export interface AppTriageDecision {
  level: "urgent" | "routine";
  /** Plain-language sentence; never a diagnosis. */
  sentence: string;
  /** P(malignant) of the photo as taken (view 0), 0..1: the number `npm run score` gives. */
  probability: number;
  /** Lowest and highest P(malignant) over the 8 flipped/rotated views: a spread, not a confidence interval. */
  interval: [number, number];
  intervalKind: string;
  thresholdProb: number;
}

/**
 * Level and sentence for one photo from its probability and its views' probabilities.
 *
 * @example decideAppTriage(meta, { probability: 0.42, viewProbabilities: [0.42, 0.4, 0.45] }).level // "urgent" when meta.thresholdProb ≤ 0.42
 */
export function decideAppTriage(
  metadata: Pick<TriageModelMetadata, "thresholdProb">,
  input: { probability: number; viewProbabilities: readonly number[] },
): AppTriageDecision {
  const { probability, viewProbabilities } = input;
  const views = viewProbabilities.length > 0 ? viewProbabilities : [probability];
  const interval: [number, number] = [Math.min(...views), Math.max(...views)];
  const level = probability >= metadata.thresholdProb ? "urgent" : "routine";
  const sentence =
    level === "urgent"
      ? "This photo resembles lesions that a doctor should look at soon. Please book an appointment; this is not a diagnosis."
      : "Nothing in this photo calls for an urgent visit, but it is not a diagnosis: see a doctor if the spot changes, bleeds or worries you.";
  return {
    level,
    sentence,
    probability,
    interval,
    intervalKind: `lowest–highest over ${views.length} flipped/rotated views`,
    thresholdProb: metadata.thresholdProb,
  };
}
