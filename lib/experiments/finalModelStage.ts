import path from "node:path";
import { buildEnsembleTriageModel, makeEnsembleTriageMetadata } from "../export/ensembleTriageModel.js";
import {
  buildTriageModel,
  exportTriageModel,
  makeTriageMetadata,
  type TriageMetadataFields,
} from "../export/triageModel.js";
import { createTensorBoardCallback } from "../logging/tensorBoardCallback.js";
import { disposeBackbone, releaseInferencePlan } from "../models/inferencePlan.js";
import { buildFineTunedTriageModel } from "../train/triageModelSplit.js";
import { fineTuneTopBlocks } from "../train/fineTune.js";
import { trainHead } from "../train/trainHead.js";
import { headTrainingOptions, type CrossValidationResult } from "./crossValidate.js";
import type { OutOfFoldEvaluation } from "./crossValidationStage.js";
import type { ExperimentFeatures, ExternalFeatures } from "./experimentData.js";
import { predictHeadProbabilities } from "../train/predictBatches.js";
import { backfillTensorBoardEpochs } from "./experimentResume.js";
import { predictRecords, type ExperimentTraining } from "./experimentTraining.js";
import { jsonNumber } from "./runRecord.js";

/** What {@link trainAndExportFinalModel} returns. */
export interface FinalModelResult {
  finalModelMs: number;
  exportMs: number;
  /** Target "diagnosis": the final head's softmax classes, in column order. */
  diagnosisClasses?: string[];
  /** The exported model's P(malignant) for each external feature row, when `external` was given. */
  externalProbs?: Float32Array;
}

/**
 * Trains the head on all data (then fine-tunes the top blocks when the config asks), builds the
 * image → P(malignant) triage model and exports it to models/<run>/ with metadata.json: the
 * out-of-fold threshold, the cross-validation metrics under `validation` (with counts; an
 * experiment has no test set) and the threshold's provenance under `threshold`. Frees the
 * backbone(s) when done. With `external`, the final model (the fine-tuned one when the config
 * fine-tunes) also scores the external rows before anything is freed.
 *
 * @example const { finalModelMs, exportMs } = await trainAndExportFinalModel(training, features, cv, outOfFold, { fingerprint, backendName: "wasm" });
 */
export async function trainAndExportFinalModel(
  training: ExperimentTraining,
  feats: ExperimentFeatures,
  cv: CrossValidationResult,
  outOfFold: OutOfFoldEvaluation,
  recorded: { fingerprint: string; backendName: string; foldCount: number; malignantDiagnoses?: string[] },
  external?: Pick<ExternalFeatures, "features" | "records">,
): Promise<FinalModelResult> {
  const { config, resuming } = training;
  const { head, seed, epochs, checkpoints, logDir, modelDir } = config;
  const { ensemble, singleBackbone, diagnoses } = feats;
  const { threshold, thresholdAudit } = outOfFold;
  const finalStarted = performance.now();
  if (resuming)
    backfillTensorBoardEpochs(path.join(logDir, "all"), checkpoints.readCheckpointHistory("all"), head.learningRate);
  const final = await trainHead(feats.features, feats.labels, {
    ...headTrainingOptions(head),
    seed,
    // The run's epoch count (resolved from the config), not the head preset's.
    epochs,
    classWeights: "balanced",
    ...(recorded.malignantDiagnoses ? { diagnoses, malignantDiagnoses: recorded.malignantDiagnoses } : {}),
    callbacks: [createTensorBoardCallback(path.join(logDir, "all"), { writeGraph: false })],
    checkpointDir: checkpoints.trainingDir("all"),
    resume: resuming,
    onEpochEnd: (m) => {
      checkpoints.pruneEpochs("all", m.epoch);
      training.onEpoch("all data", m, epochs);
    },
  });
  const finalHead = final.model;
  const tunedHead = config.fineTune
    ? (
        await fineTuneTopBlocks(
          singleBackbone(),
          finalHead,
          feats.records,
          [],
          training.fineTuneOptions(seed, "all", "all data", final.diagnosisClasses),
        )
      ).head
    : undefined;
  const finalModelMs = performance.now() - finalStarted;

  const exportStarted = performance.now();
  const triage = ensemble
    ? buildEnsembleTriageModel(ensemble, finalHead)
    : tunedHead
      ? await buildFineTunedTriageModel(singleBackbone(), tunedHead)
      : buildTriageModel(singleBackbone(), finalHead);
  const makeMetadata = (fields: TriageMetadataFields) =>
    ensemble ? makeEnsembleTriageMetadata(ensemble, fields) : makeTriageMetadata(singleBackbone(), fields);
  await exportTriageModel(
    modelDir,
    triage,
    makeMetadata({
      thresholdProb: threshold.thresholdProb,
      colourConstancy: config.colourConstancy,
      backendName: recorded.backendName,
      // Cross-validation is the only evaluation an experiment has: no test block.
      validation: {
        description: thresholdAudit.scoredOn,
        images: thresholdAudit.images,
        malignant: thresholdAudit.malignant,
        benign: thresholdAudit.benign,
        metrics: {
          rocAucMean: jsonNumber(cv.spread.rocAuc.mean),
          rocAucSd: jsonNumber(cv.spread.rocAuc.sd),
          outOfFoldRocAuc: jsonNumber(outOfFold.rocAuc),
          sensitivity: threshold.sensitivity,
          specificity: jsonNumber(threshold.specificity),
        },
      },
      threshold: thresholdAudit,
      notes: {
        run: config.runName,
        configHash: config.configHash,
        split: config.split,
        folds: recorded.foldCount,
        seed,
        dataFingerprint: recorded.fingerprint,
        thresholdChosenOn: "out-of-fold predictions",
        target: config.target,
        ...(final.diagnosisClasses
          ? {
              diagnosisClasses: final.diagnosisClasses.join(","),
              malignantDiagnoses: final.malignantClasses!.join(","),
            }
          : {}),
      },
    }),
  );
  const exportMs = performance.now() - exportStarted;
  // The fine-tuned model scores images (its top blocks changed); otherwise the head scores the
  // same frozen features the exported model computes.
  const externalProbs = !external
    ? undefined
    : tunedHead
      ? await predictRecords(singleBackbone(), triage, external.records)
      : predictHeadProbabilities(finalHead, external.features, feats.featureDim);
  // buildTriageModel shares the backbone's weights (its dispose frees them; the head model still
  // holds its own layers); the fine-tuned triage model has fresh copies of everything. Either
  // way the backbone's compiled inference plan (folded weights of its own) is freed here.
  triage.dispose();
  finalHead.dispose();
  tunedHead?.dispose();
  if (tunedHead) disposeBackbone(singleBackbone());
  else for (const member of ensemble ? ensemble.members : [singleBackbone()]) releaseInferencePlan(member);
  return { finalModelMs, exportMs, diagnosisClasses: final.diagnosisClasses, externalProbs };
}
