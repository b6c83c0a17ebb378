import path from "node:path";
import type * as tf from "@tensorflow/tfjs";
import { computeRocAuc } from "../evaluate/metrics.js";
import { computeWithinSourceRocAuc } from "../evaluate/sourceConfounding.js";
import type { TriageThresholdProvenance } from "../export/triageModel.js";
import { createTensorBoardCallback } from "../logging/tensorBoardCallback.js";
import { buildFineTunedTriageModel } from "../train/triageModelSplit.js";
import { fineTuneTopBlocks } from "../train/fineTune.js";
import { chooseThresholdForSensitivity, type ThresholdChoice } from "../triage/triage.js";
import { crossValidateHead, type CrossValidationResult, type FoldRows } from "./crossValidate.js";
import type { ExperimentFeatures } from "./experimentData.js";
import { backfillTensorBoardEpochs } from "./experimentResume.js";
import { predictRecords, type ExperimentTraining } from "./experimentTraining.js";
import { auditThreshold } from "../triage/thresholdAudit.js";

/** The pooled out-of-fold predictions, judged: AUCs, the chosen threshold and its audit. */
export interface OutOfFoldEvaluation {
  /** ROC AUC of all out-of-fold predictions pooled (NaN with one class). */
  rocAuc: number;
  /** Within-source ROC AUC of the pooled out-of-fold predictions. */
  withinSourceRocAuc: number;
  /** The highest threshold reaching the target sensitivity on the pooled predictions. */
  threshold: ThresholdChoice;
  /** How it was chosen, and what it gives per fold and per source. */
  thresholdAudit: TriageThresholdProvenance;
}

/** What {@link runCrossValidationStage} returns. */
export interface CrossValidationStageResult {
  cv: CrossValidationResult;
  outOfFold: OutOfFoldEvaluation;
  crossValidationMs: number;
}

/**
 * Cross-validates the head over `folds` (fine-tuning each fold's top blocks when the config asks),
 * with TensorBoard logs and per-epoch checkpoints per fold (finished folds reused on resume), then
 * chooses the ≥ target-sensitivity threshold on the pooled out-of-fold predictions and audits it
 * per fold and per source (a warning line per source below the target).
 *
 * @example const { cv, outOfFold } = await runCrossValidationStage(training, features, folds);
 */
export async function runCrossValidationStage(
  training: ExperimentTraining,
  feats: ExperimentFeatures,
  folds: FoldRows[],
): Promise<CrossValidationStageResult> {
  const { config, resuming } = training;
  const { head, seed, epochs, fineTuneEpochs, checkpoints, logDir, log, progressMode, targetSensitivity } = config;
  const { records, labels, sources, diagnoses } = feats;
  const scoreFold = config.fineTune
    ? async (
        fold: FoldRows,
        foldIndex: number,
        trainedHead: tf.LayersModel,
        diagnosisClasses?: string[],
      ): Promise<Float32Array> => {
        const validation = fold.validationRows.map((r) => records[r]);
        const backbone = feats.singleBackbone();
        const tuned = await fineTuneTopBlocks(
          backbone,
          trainedHead,
          fold.trainRows.map((r) => records[r]),
          validation,
          training.fineTuneOptions(seed + foldIndex, fold.name, fold.name, diagnosisClasses),
        );
        const model = await buildFineTunedTriageModel(backbone, tuned.head);
        try {
          return await predictRecords(backbone, model, validation);
        } finally {
          model.dispose();
          tuned.head.dispose();
        }
      }
    : undefined;

  const cvStarted = performance.now();
  const cv = await crossValidateHead(
    { features: feats.features, featureDim: feats.featureDim, labels, sources, diagnoses },
    folds,
    {
      head,
      seed,
      callbacksForFold: (fold) => {
        if (resuming)
          backfillTensorBoardEpochs(
            path.join(logDir, fold.name),
            checkpoints.readCheckpointHistory(fold.name),
            head.learningRate,
          );
        return [createTensorBoardCallback(path.join(logDir, fold.name), { writeGraph: false })];
      },
      checkpointDirForFold: (fold) => checkpoints.trainingDir(fold.name),
      resume: resuming,
      completedFold: (fold, foldIndex) => {
        if (!resuming) return undefined;
        const done = checkpoints.loadCompletedFold(fold, foldIndex);
        if (done) {
          log(`${fold.name}: finished before the interruption, reused (ROC AUC ${done.result.rocAuc.toFixed(3)})`);
          training.skipEpochs(epochs + fineTuneEpochs);
        }
        return done;
      },
      onEpochEnd: (fold, m) => {
        checkpoints.pruneEpochs(fold.name, m.epoch);
        training.onEpoch(fold.name, m, epochs);
      },
      onFoldEnd: (f, probs) => {
        checkpoints.saveCompletedFold(
          folds.find((x) => x.name === f.name)!,
          folds.findIndex((x) => x.name === f.name),
          f,
          probs,
        );
        if (progressMode !== "bar")
          log(
            `${f.name}: ROC AUC ${f.rocAuc.toFixed(3)}, within-source ${f.withinSourceRocAuc.toFixed(3)} (${f.validationImages} images, ${f.validationPositives} malignant, ${(f.trainMs / 1000).toFixed(1)} s)`,
          );
      },
      scoreFold,
    },
  );
  const crossValidationMs = performance.now() - cvStarted;
  const scored = labels.flatMap((_, i) => (Number.isNaN(cv.outOfFoldProbs[i]) ? [] : [i]));
  const oofLabels = scored.map((i) => labels[i]);
  const oofProbs = scored.map((i) => cv.outOfFoldProbs[i]);
  const hasBoth = oofLabels.includes(0) && oofLabels.includes(1);
  const threshold = chooseThresholdForSensitivity(oofLabels, oofProbs, targetSensitivity);
  const splitDescription = config.split === "source" ? "leave-one-source-out" : `lesion-grouped ${folds.length}-fold`;
  const thresholdAudit = auditThreshold({
    labels,
    probs: cv.outOfFoldProbs,
    sources,
    folds,
    thresholdProb: threshold.thresholdProb,
    targetSensitivity,
    scoredOn:
      `pooled out-of-fold predictions of ${folds.length} fold models (${splitDescription}); ` +
      "the exported model is retrained on all images and its scores were not re-checked",
  });
  for (const warning of thresholdAudit.warnings) log(`warning: ${warning}`);
  return {
    cv,
    crossValidationMs,
    outOfFold: {
      rocAuc: hasBoth ? computeRocAuc(oofLabels, oofProbs) : NaN,
      withinSourceRocAuc: computeWithinSourceRocAuc(
        oofLabels,
        oofProbs,
        scored.map((i) => sources[i]),
      ).auc,
      threshold,
      thresholdAudit,
    },
  };
}
