import { bootstrapMetric, countBootstrapGroups, type BootstrapInterval } from "../evaluate/bootstrap.js";
import { computeMetricsAtThreshold, computeRocAuc } from "../evaluate/metrics.js";
import { predictHeadProbabilities } from "../train/predictBatches.js";
import { trainHead } from "../train/trainHead.js";
import { MelanomaLabError } from "../util/errors.js";
import { headTrainingOptions, type FeatureRows, type HeadConfig } from "./crossValidate.js";

/** Thrown for external-set input that does not fit together (rows, groups, thresholds). */
export class ExternalSetError extends MelanomaLabError {}

/** Scored images of an external set (another collection, never trained on). */
export interface ExternalScores {
  /** 0 = benign, 1 = malignant, one per image. */
  labels: ArrayLike<number>;
  /** P(malignant), one per image. */
  probabilities: ArrayLike<number>;
  /** Patient (or lesion) id per image: the bootstrap resamples whole patients. */
  groupIds: readonly string[];
}

/** What a threshold chosen elsewhere (e.g. on dev out-of-fold scores) gives on the external set. */
export interface ExternalThresholdCheck {
  name: string;
  thresholdProb: number;
  sensitivity: BootstrapInterval;
  specificity: BootstrapInterval;
}

/** ROC AUC of an external set with a patient-grouped bootstrap interval, and named thresholds checked there. */
export interface ExternalSetSummary {
  images: number;
  positives: number;
  /** Distinct groupIds (patients). */
  groups: number;
  rocAuc: BootstrapInterval;
  thresholds: ExternalThresholdCheck[];
}

/**
 * Summarises external-set scores: ROC AUC with a percentile bootstrap interval that resamples
 * patients (`groupIds`; images of one patient are not independent), and for each named threshold
 * the sensitivity and specificity there (prob ≥ threshold = urgent), each with the same grouped
 * bootstrap. Seeded: the same inputs and seed give the same intervals.
 *
 * @example
 * const s = summarizeExternalScores({ labels, probabilities, groupIds: patientIds }, { pooled: 0.31, "every source": 0.22 }, { seed: 42 });
 * s.rocAuc // { estimate: 0.71, lower: 0.62, upper: 0.80, groupCount: 130, … }
 * s.thresholds[0].sensitivity.estimate // 0.87
 */
export function summarizeExternalScores(
  scores: ExternalScores,
  thresholds: Readonly<Record<string, number>> = {},
  options: { seed: number; iterations?: number; confidenceLevel?: number },
): ExternalSetSummary {
  const n = scores.labels.length;
  if (scores.probabilities.length !== n || scores.groupIds.length !== n) {
    throw new ExternalSetError(
      `labels (${n}), probabilities (${scores.probabilities.length}) and groupIds (${scores.groupIds.length}): expected one of each per image`,
    );
  }
  for (const [name, t] of Object.entries(thresholds)) {
    if (!(t >= 0 && t <= 1))
      throw new ExternalSetError(`thresholds.${name}: received ${t}, expected a probability in [0, 1]`);
  }
  const bootstrap = { seed: options.seed, iterations: options.iterations, confidenceLevel: options.confidenceLevel };
  const groupIds = scores.groupIds;
  return {
    images: n,
    positives: Array.from(scores.labels).filter((y) => y === 1).length,
    groups: countBootstrapGroups(groupIds)!,
    rocAuc: bootstrapMetric(scores.labels, scores.probabilities, computeRocAuc, { ...bootstrap, groupIds }),
    thresholds: Object.entries(thresholds).map(([name, thresholdProb]) => ({
      name,
      thresholdProb,
      sensitivity: bootstrapMetric(
        scores.labels,
        scores.probabilities,
        (y, p) => computeMetricsAtThreshold(y, p, thresholdProb).sensitivity,
        { ...bootstrap, groupIds },
      ),
      specificity: bootstrapMetric(
        scores.labels,
        scores.probabilities,
        (y, p) => computeMetricsAtThreshold(y, p, thresholdProb).specificity,
        { ...bootstrap, groupIds },
      ),
    })),
  };
}

/**
 * Trains one head on every dev row (`train`: features, labels, and diagnoses for a "diagnosis"
 * head; balanced class weights times `train.rowWeights` when given, seeded, no early stopping) and scores the external rows with it
 * (probabilities averaged over `external.extraViews` when given, as crossValidateHead does), then
 * {@link summarizeExternalScores}. The head is disposed before returning. This is the "trained on
 * the dev set only, scored on another collection" check: nothing from the external set is used
 * for training or for choosing thresholds.
 *
 * @example
 * const ext = await scoreExternalSet(hamRows, { features, featureDim: 1280, labels, groupIds: patientIds }, { head: HEADS.logistic, seed: 42, thresholds: { pooled: 0.31 } });
 * ext.summary.rocAuc.estimate // 0.74
 */
export async function scoreExternalSet(
  train: FeatureRows,
  external: {
    features: Float32Array;
    featureDim: number;
    labels: ArrayLike<number>;
    groupIds: readonly string[];
    extraViews?: readonly Float32Array[];
  },
  options: {
    head: HeadConfig;
    seed: number;
    thresholds?: Readonly<Record<string, number>>;
    bootstrapIterations?: number;
  },
): Promise<{ probabilities: Float32Array; summary: ExternalSetSummary }> {
  if (external.featureDim !== train.featureDim) {
    throw new ExternalSetError(
      `external featureDim: received ${external.featureDim}, expected the training rows' ${train.featureDim} (same backbone and views)`,
    );
  }
  if (external.features.length !== external.labels.length * external.featureDim) {
    throw new ExternalSetError(
      `external features: received ${external.features.length} values, expected ${external.labels.length} labels × featureDim ${external.featureDim}`,
    );
  }
  const target = options.head.target ?? "malignant";
  if (target === "diagnosis" && train.diagnoses?.length !== train.labels.length) {
    throw new ExternalSetError(
      `train.diagnoses: received ${train.diagnoses?.length ?? "none"}, expected one diagnosis per training row (${train.labels.length}) for a "diagnosis" head`,
    );
  }
  const trained = await trainHead(train.features, train.labels, {
    ...headTrainingOptions(options.head),
    seed: options.seed,
    classWeights: "balanced",
    rowWeights: train.rowWeights,
    ...(target === "diagnosis"
      ? { diagnoses: train.diagnoses, malignantDiagnoses: options.head.malignantDiagnoses }
      : {}),
  });
  let probabilities: Float32Array;
  try {
    probabilities = predictHeadProbabilities(trained.model, external.features, external.featureDim);
    const views = external.extraViews ?? [];
    for (const view of views) {
      const extra = predictHeadProbabilities(trained.model, view, external.featureDim);
      for (let i = 0; i < probabilities.length; i++) probabilities[i] += extra[i];
    }
    if (views.length > 0) for (let i = 0; i < probabilities.length; i++) probabilities[i] /= views.length + 1;
  } finally {
    trained.model.dispose();
  }
  const summary = summarizeExternalScores(
    { labels: external.labels, probabilities, groupIds: external.groupIds },
    options.thresholds,
    { seed: options.seed, iterations: options.bootstrapIterations },
  );
  return { probabilities, summary };
}
