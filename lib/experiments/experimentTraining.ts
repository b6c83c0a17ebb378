import path from "node:path";
import type * as tf from "@tensorflow/tfjs";
import type { LesionRecord } from "../data/types.js";
import { createTensorBoardCallback } from "../logging/tensorBoardCallback.js";
import { makeTriageMetadata, predictMalignantProbabilities, TriageModelError } from "../export/triageModel.js";
import type { Backbone } from "../models/types.js";
import type { FineTuneOptions } from "../train/fineTune.js";
import { formatEpochMetrics, type EpochMetrics } from "../train/trainingLog.js";
import type { ResolvedExperimentConfig } from "./experimentConfig.js";
import { backfillTensorBoardEpochs, FINE_TUNE_STAGE } from "./experimentResume.js";
import { createProgressBar } from "../util/progress.js";
import { ExperimentConfigError } from "./runIdentity.js";

/** What the cross-validation and final-model stages share: progress, checkpoints, fine-tuning settings. */
export interface ExperimentTraining {
  config: ResolvedExperimentConfig;
  /** True when continuing an interrupted run from its checkpoints. */
  resuming: boolean;
  /** Call after every epoch (head or fine-tune) of every fold and of the final model. */
  onEpoch: (where: string, m: EpochMetrics, of: number) => void;
  /** Counts `epochs` epochs as done without running them (a fold reused on resume). */
  skipEpochs: (epochs: number) => void;
  /**
   * fineTuneTopBlocks options for fold `name` ("fold-1", …) or "all": checkpoints in
   * out/checkpoints/<run>/<name>/fine-tune, TensorBoard in logs/<run>/<name>/fine-tune/{train,validation}.
   */
  fineTuneOptions: (foldSeed: number, name: string, where: string, diagnosisClasses?: string[]) => FineTuneOptions;
}

/**
 * The shared training context of one run: an epoch counter driving the progress bar (or one
 * line per epoch), and the fine-tuning options with their checkpoint and TensorBoard folders.
 *
 * @example const training = createExperimentTraining(config, folds.length, resuming);
 */
export function createExperimentTraining(
  config: ResolvedExperimentConfig,
  foldCount: number,
  resuming: boolean,
): ExperimentTraining {
  const { epochs, fineTuneEpochs, progressMode, log, checkpoints, logDir } = config;
  const totalEpochs = (foldCount + 1) * (epochs + fineTuneEpochs);
  let epochsDone = 0;
  const epochBar = progressMode === "bar" ? createProgressBar("training", { stepPercent: 10 }) : undefined;
  const onEpoch = (where: string, m: EpochMetrics, of: number): void => {
    epochsDone++;
    if (epochBar) epochBar(epochsDone, totalEpochs);
    else if (progressMode === "lines")
      log(`${where} ${m.epoch}/${of}: ${formatEpochMetrics(m).replace(/^epoch \d+: /, "")}`);
  };
  const activationCacheDir = path.join(path.dirname(config.featureCacheDir), "activations");
  const fineTuneLearningRate = config.head.learningRate / 10;
  const fineTuneOptions = (
    foldSeed: number,
    name: string,
    where: string,
    diagnosisClasses?: string[],
  ): FineTuneOptions => {
    const tensorBoardDir = path.join(logDir, name, FINE_TUNE_STAGE);
    // Epochs the killed process checkpointed but did not log yet (checkpoint precedes callbacks).
    if (resuming)
      backfillTensorBoardEpochs(
        tensorBoardDir,
        checkpoints.readCheckpointHistory(name, FINE_TUNE_STAGE),
        fineTuneLearningRate,
      );
    return {
      unfreezeBlocks: config.unfreezeBlocks,
      epochs: fineTuneEpochs,
      learningRate: fineTuneLearningRate,
      batchSize: 16,
      seed: foldSeed,
      cacheDir: activationCacheDir,
      classWeights: "balanced",
      diagnosisClasses, // a diagnosis head fine-tunes on its own softmax loss
      checkpointDir: checkpoints.trainingDir(name, FINE_TUNE_STAGE),
      resume: resuming,
      callbacks: [createTensorBoardCallback(tensorBoardDir, { writeGraph: false })],
      onEpochEnd: (m: EpochMetrics) => {
        checkpoints.pruneEpochs(name, m.epoch, FINE_TUNE_STAGE);
        onEpoch(`${where} fine-tune`, m, fineTuneEpochs);
      },
    };
  };
  return { config, resuming, onEpoch, skipEpochs: (n) => (epochsDone += n), fineTuneOptions };
}

/**
 * Probability of malignant for records through an image → probability model (a fine-tuned triage
 * model), scored as an exported model scores them ({@link predictMalignantProbabilities}).
 *
 * @example const probs = await predictRecords(backbone, fineTunedTriageModel, validationRecords);
 */
export async function predictRecords(
  backbone: Backbone,
  model: tf.LayersModel,
  records: readonly LesionRecord[],
): Promise<Float32Array> {
  const scorer = { model, metadata: makeTriageMetadata(backbone, { thresholdProb: 0.5 }), dir: "" };
  try {
    return await predictMalignantProbabilities(
      scorer,
      records.map((r) => r.imagePath),
    );
  } catch (err) {
    if (err instanceof TriageModelError) throw new ExperimentConfigError(err.message);
    throw err;
  }
}
