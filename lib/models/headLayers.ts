/**
 * Layer names of a diagnosis-target head (trainHead's `diagnoses` option builds it): the contract
 * between the code that builds such a head (lib/train), the code that reads it back (Grad-CAM in
 * lib/evaluate, fine-tuning, exported triage models) and the saved model files.
 *
 * @example head.getLayer(DIAGNOSIS_HEAD_LAYERS.logits).getConfig().units // K diagnosis classes
 */
export const DIAGNOSIS_HEAD_LAYERS = {
  /** Dense(K), linear: one logit per diagnosis class. */
  logits: "head_diagnosis_logits",
  /** Softmax over the K diagnosis classes. */
  softmax: "head_diagnosis_softmax",
  /** Frozen Dense(K → 1), no bias, kernel = 1 for malignant classes, 0 otherwise: P(malignant). */
  malignantSum: "head_malignant_sum",
} as const;
