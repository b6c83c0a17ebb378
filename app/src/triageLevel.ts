/**
 * The app's triage decision: lib/triage's decideTriageForModel, the same function `npm run score`
 * and the service use (pure, bundled here): the model's calibrated three-level policy when
 * metadata.json has one, else urgent/routine at `thresholdProb`; the interval comes from the
 * photo's 8 dihedral views.
 */
import type { TriageModelMetadata } from "../../lib/export/triageModel.js";
import { decideTriageForModel, type TriageDecision } from "../../lib/triage/triagePolicy.js";

/** What the page shows for one photo. */
export interface AppTriageDecision extends TriageDecision {
  /** How the interval was made, in words for the page. */
  intervalKind: string;
}

/**
 * Level, sentence, probability and interval for one photo from its raw probability (view 0, the
 * photo as taken: the number `npm run score` gives for the file) and its views' probabilities.
 *
 * @example decideAppTriage(meta, { probability: 0.42, viewProbabilities: [0.42, 0.4, 0.45] }).level // "urgent" when meta.thresholdProb ≤ 0.42 (no policy)
 */
export function decideAppTriage(
  metadata: Pick<TriageModelMetadata, "policy" | "thresholdProb" | "threshold">,
  input: { probability: number; viewProbabilities: readonly number[] },
): AppTriageDecision {
  const decision = decideTriageForModel(metadata, input);
  const views = input.viewProbabilities.length;
  return {
    ...decision,
    intervalKind: metadata.policy
      ? `calibrated interval from ${views} flipped/rotated views`
      : `interval from ${views} flipped/rotated views (uncalibrated)`,
  };
}
