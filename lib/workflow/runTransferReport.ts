import { createColourConstancyTransform } from "../data/augment.js";
import type * as tf from "@tensorflow/tfjs";
import { loadDataset } from "../data/loadDataset.js";
import type { LesionRecord } from "../data/types.js";
import { alignRecordsByImageId } from "../evaluate/gallery.js";
import { extractFeatures } from "../models/features.js";
import type { Backbone } from "../models/types.js";
import { predictHeadProbabilities } from "../train/predictBatches.js";
import { predictMalignantProbabilities } from "../export/triageModel.js";
import {
  crossValidateLeaveOneSourceOut,
  evaluateExternalScores,
  type ExternalTransferResult,
  type LeaveOneSourceOutRun,
} from "../experiments/transferReport.js";
import { loadFeatureTable, resolveRunHeadOptions } from "./pipeline.js";
import { loadRunArtifact, type RunConfig } from "./runConfig.js";

/**
 * The notebooks' leave-one-source-out transfer check: every image of the run's split (train,
 * validation and test features from notebook 2) pooled, one head per source trained on the other
 * sources with the run's head settings (notebook 3's MLP: 128 hidden units, dropout 0.3; the
 * run's epochs, batch size and learning rate, no early stopping), each scoring the source it
 * never saw; per source the ROC AUC and the sensitivity/specificity at `thresholdProb` (the
 * threshold the run ships), worst AUC first. It reports, it chooses nothing. Null (with the
 * reason) when the data has fewer than two sources or an image without one.
 *
 * @example
 * const loso = await crossValidateRunLeaveOneSourceOut(config, { thresholdProb: 0.31 });
 * if (loso.report) console.log(formatTransferReport({ leaveOneSourceOut: loso.report }).join("\n"));
 */
export async function crossValidateRunLeaveOneSourceOut(
  config: RunConfig,
  options: { thresholdProb: number },
): Promise<{ report: LeaveOneSourceOutRun | null; reason: string }> {
  const split = loadRunArtifact<{ train: LesionRecord[]; validation: LesionRecord[]; test: LesionRecord[] }>(
    config,
    "split",
    "01-data",
  );
  const tables = (["train", "validation", "test"] as const).map((name) => {
    const table = loadFeatureTable(config, name);
    return { table, records: alignRecordsByImageId(split[name], table.imageIds) };
  });
  const records = tables.flatMap((t) => t.records);
  const sources = new Set(records.map((r) => r.source));
  if (sources.has(undefined) || sources.size < 2) {
    return {
      report: null,
      reason: `no leave-one-source-out: ${sources.size} source(s) among ${records.length} images${sources.has(undefined) ? " (some images have none)" : ""}; it needs at least 2, on every image`,
    };
  }
  const featureDim = tables[0].table.featureDim;
  const features = new Float32Array(records.length * featureDim);
  let offset = 0;
  for (const { table } of tables) {
    features.set(table.features, offset);
    offset += table.features.length;
  }
  // The run's own head (its recipe's size, L2 and target), so the report judges the model shipped.
  const head = resolveRunHeadOptions(
    config,
    records,
    records.map((r) => r.imageId),
  );
  const report = await crossValidateLeaveOneSourceOut(
    {
      features,
      featureDim,
      labels: tables.flatMap((t) => t.table.labels),
      ...(head.diagnoses ? { diagnoses: head.diagnoses } : {}),
    },
    records,
    {
      head: {
        hiddenUnits: head.hiddenUnits ?? 128,
        dropoutRate: head.dropoutRate ?? 0.3,
        l2: head.l2 ?? 1e-4,
        epochs: config.epochs,
        batchSize: config.batchSize,
        learningRate: config.learningRate,
        ...(head.malignantDiagnoses
          ? { target: "diagnosis" as const, malignantDiagnoses: head.malignantDiagnoses }
          : {}),
      },
      seed: config.seed,
      thresholdProb: options.thresholdProb,
    },
  );
  return {
    report,
    reason: `${sources.size} sources, ${records.length} images, ${(report.elapsedMs / 1000).toFixed(1)} s`,
  };
}

/**
 * Scores `config.externalDataDir` (MELANOMA_LAB_EXTERNAL) with the run's trained model — the
 * head on the backbone's (cached) features, or `imageScorer` (a fine-tuned model) on the images
 * — and judges it with {@link evaluateExternalScores}: ROC AUC with a patient-grouped bootstrap
 * interval, and the shipped threshold's sensitivity/specificity. Null when no external set is
 * configured.
 *
 * @example const external = await scoreRunExternalSet(config, { backbone, head, thresholdProb: 0.31 });
 */
export async function scoreRunExternalSet(
  config: RunConfig,
  model: {
    backbone: Backbone;
    head: tf.LayersModel;
    /** The image → probability scorer of a fine-tuned model, used instead of the head when given. */
    imageScorer?: Parameters<typeof predictMalignantProbabilities>[0];
    thresholdProb: number;
  },
): Promise<ExternalTransferResult | null> {
  const dataDir = config.externalDataDir;
  if (dataDir === undefined) return null;
  const records = loadDataset(dataDir).records;
  let probs: Float32Array;
  let scored: LesionRecord[];
  if (model.imageScorer) {
    probs = Float32Array.from(
      await predictMalignantProbabilities(
        model.imageScorer,
        records.map((r) => r.imagePath),
      ),
    );
    scored = records;
  } else {
    // The run's colour constancy, as its training features had it.
    const matrix = await extractFeatures(model.backbone, records, {
      cacheDir: config.paths.featureCacheDir,
      pixelTransform: createColourConstancyTransform(config.colourConstancy),
    });
    scored = matrix.sourceIndices.map((i) => records[i]);
    probs = predictHeadProbabilities(model.head, matrix.features, matrix.featureDim);
  }
  return evaluateExternalScores({
    dataDir,
    labels: scored.map((r) => (r.label === "malignant" ? 1 : 0)),
    probs,
    patientIds: scored.map((r) => r.patientId),
    thresholdProb: model.thresholdProb,
    seed: config.seed,
    iterations: config.small ? 200 : 1000,
  });
}
