import fs from "node:fs";
import { selectBackend, describeBackend } from "../backend/selectBackend.js";
import { createEventWriter } from "../logging/eventWriter.js";
import { listEventFiles } from "../logging/readLogDir.js";
import { formatFoldSpread } from "./crossValidate.js";
import { runCrossValidationStage } from "./crossValidationStage.js";
import { resolveExperimentConfig, type ExperimentOptions, type ResolvedExperimentConfig } from "./experimentConfig.js";
import {
  extractExperimentFeatures,
  extractExternalFeatures,
  loadExperimentData,
  makeExperimentFolds,
  type ExternalFeatures,
} from "./experimentData.js";
import { createExperimentTraining } from "./experimentTraining.js";
import { trainAndExportFinalModel } from "./finalModelStage.js";
import { assertRunNameHoldsSameConfig } from "./runIdentity.js";
import {
  buildExperimentRunSummary,
  pickHeadSettings,
  writeExperimentRunJson,
  type ExperimentRunSummary,
} from "./runRecord.js";
import {
  crossValidateLeaveOneSourceOut,
  evaluateExternalScores,
  formatTransferReport,
  summarizeLeaveOneSourceOut,
  type ExternalTransferResult,
  type LeaveOneSourceOutReport,
} from "./transferReport.js";

// The experiment's pieces live in focused modules; this file runs them in order and keeps the
// historical import path for its public names.

/** What {@link runExperiment} returns: the summary written and absolute paths. */
export interface ExperimentResult {
  summary: ExperimentRunSummary;
  runJsonPath: string;
  logDir: string;
  modelDir: string;
}

/**
 * Starts the checkpoints (fresh run: old logs/<run> deleted) or checks that the interrupted run
 * had this configuration (resume), then removes an old models/<run>. Returns whether resuming.
 */
function prepareRunFolders(
  config: ResolvedExperimentConfig,
  resumeConfig: Record<string, unknown>,
  resume: boolean,
): boolean {
  const { checkpoints, runName, logDir, log } = config;
  const resuming = resume && checkpoints.exists();
  if (resuming) {
    checkpoints.assertSameConfig(resumeConfig);
    log(`resuming ${runName} from ${checkpoints.dir}`);
  } else {
    if (resume) log(`nothing to resume in ${checkpoints.dir}: starting ${runName} afresh`);
    fs.rmSync(logDir, { recursive: true, force: true });
    checkpoints.start(runName, resumeConfig, config.configHash);
  }
  fs.rmSync(config.modelDir, { recursive: true, force: true });
  return resuming;
}

/** Opens the hparams session in logs/<run> (a resumed run keeps the one already written). */
function openHparamsSession(
  config: ResolvedExperimentConfig,
  foldCount: number,
  resuming: boolean,
): ReturnType<typeof createEventWriter> {
  const { head, logDir } = config;
  const hparams = {
    backbone: config.backboneName + (config.alpha !== undefined ? `@${config.alpha}` : ""),
    split: config.split,
    folds: foldCount,
    epochs: config.epochs,
    fine_tune_epochs: config.fineTuneEpochs,
    seed: config.seed,
    hidden_units: head.hiddenUnits,
    dropout: head.dropoutRate,
    l2: head.l2,
    learning_rate: head.learningRate,
    batch_size: head.batchSize,
    target: config.target,
    colour_constancy: config.colourConstancy,
  };
  // A resumed run keeps the session start the interrupted one wrote (it is flushed at once).
  const hadSession = resuming && fs.existsSync(logDir) && listEventFiles(logDir).length > 0;
  const session = createEventWriter(logDir, { flushIntervalMs: 0 });
  if (!hadSession) session.addHparamsSessionStart(hparams, { groupName: config.runName });
  session.flush();
  return session;
}

/**
 * One experiment, as `npm run experiment` runs it: loads the dataset, extracts (cached) backbone
 * features, cross-validates a dense head (lesion-grouped K-fold or leave-one-source-out),
 * optionally fine-tunes the backbone's top blocks per fold, trains the final head on all data,
 * chooses the ≥ targetSensitivity threshold on the out-of-fold predictions and exports the
 * triage model. With `target: "diagnosis"` every head learns the diagnoses (softmax) and scores
 * P(malignant) as the sum of the malignant ones (see trainHead's `diagnoses`). Writes:
 * - `logs/<run>/<fold>/{train,validation}` TensorBoard scalars per fold, `logs/<run>/all/train`
 *   for the final model, and an hparams session in `logs/<run>` with the cross-validated
 *   metrics (cv/roc_auc_mean, …) so the HParams dashboard over `logs/` compares runs;
 * - `runs/<run>.json` ({@link ExperimentRunSummary});
 * - `models/<run>/` (model.json, weights.bin, metadata.json).
 * Old logs/<run> and models/<run> of the same configuration are replaced; files of another
 * configuration under the same name are refused (ExperimentConfigError), never deleted. Every epoch of every fold and of the final
 * model is checkpointed under `out/checkpoints/<run>/` (deleted when the run succeeds), so
 * `resume: true` continues a killed run with the same result as an uninterrupted one.
 *
 * @example
 * const { summary } = await runExperiment({ dataDir: "data/synthetic", backboneName: "mobilenet_v2", epochs: 20, folds: 5, seed: 42 });
 * summary.metrics.rocAuc // { mean: 0.86, sd: 0.02, … }
 */
export async function runExperiment(options: ExperimentOptions): Promise<ExperimentResult> {
  const startedMs = performance.now();
  const config = resolveExperimentConfig(options);
  const { runName, logDir, modelDir, runJsonPath, checkpoints, log } = config;
  // Before anything is deleted: this name's files must be this configuration's (or absent).
  assertRunNameHoldsSameConfig({
    runJsonPath,
    modelDir,
    // Resuming compares the checkpointed options key by key (and never deletes); a fresh start would.
    checkpointStateFile: options.resume ? undefined : checkpoints.stateFile,
    runName,
    configHash: config.configHash,
  });

  const backend = await selectBackend();
  log(describeBackend(backend));
  const data = loadExperimentData(config);
  const feats = await extractExperimentFeatures(config, data.dataset.records);
  const folds = makeExperimentFolds(feats.records, config);

  // The settings recorded in the resume check (runs/<run>.json records the same head settings).
  const resumeConfig = {
    backbone: config.backboneName,
    alpha: config.alpha ?? null,
    epochs: config.epochs,
    fineTuneEpochs: config.fineTuneEpochs,
    unfreezeBlocks: config.unfreezeBlocks,
    seed: config.seed,
    split: config.split,
    folds: folds.map((f) => f.name),
    head: pickHeadSettings(config.head),
    dataFingerprint: data.fingerprint,
    images: feats.records.length,
    // Only non-default targets are recorded, so runs checkpointed before this option still resume.
    ...(data.malignantDiagnoses ? { target: config.target, malignantDiagnoses: data.malignantDiagnoses } : {}),
  };
  let resuming: boolean;
  try {
    resuming = prepareRunFolders(config, resumeConfig, options.resume === true);
  } catch (err) {
    feats.disposeBackbones();
    throw err;
  }
  const session = openHparamsSession(config, folds.length, resuming);
  const training = createExperimentTraining(config, folds.length, resuming);

  let backboneDisposed = false;
  let status: "success" | "failure" = "failure";
  try {
    const { cv, outOfFold, crossValidationMs } = await runCrossValidationStage(training, feats, folds);
    const { threshold } = outOfFold;
    // Transfer report, part 1: every left-out source at the shipped threshold. A leave-one-source-out
    // run already has those scores; a k-fold run trains one extra head per source on the cached features.
    const losoStarted = performance.now();
    const sourceCount = new Set(feats.sources.filter((s) => s !== undefined)).size;
    const canLeaveSourcesOut = sourceCount >= 2 && feats.sources.every((s) => s !== undefined);
    let leaveOneSourceOut: (LeaveOneSourceOutReport & { foldsReused: boolean }) | null = null;
    if (config.split === "source")
      leaveOneSourceOut = {
        ...summarizeLeaveOneSourceOut(feats.labels, cv.outOfFoldProbs, feats.sources, threshold.thresholdProb),
        foldsReused: true,
      };
    else if (canLeaveSourcesOut && config.leaveOneSourceOut)
      leaveOneSourceOut = {
        ...(await crossValidateLeaveOneSourceOut(
          {
            features: feats.features,
            featureDim: feats.featureDim,
            labels: feats.labels,
            diagnoses: feats.diagnoses,
          },
          feats.records,
          { head: config.head, seed: config.seed, thresholdProb: threshold.thresholdProb },
        )),
        foldsReused: false,
      };
    else
      log(
        config.leaveOneSourceOut === false
          ? "transfer report: leave-one-source-out skipped (asked)"
          : `transfer report: no leave-one-source-out (${sourceCount} source(s); needs ≥ 2 on every image)`,
      );
    const leaveOneSourceOutMs = performance.now() - losoStarted;

    const externalDir = config.externalDataDir;
    let externalFeats: ExternalFeatures | undefined;
    if (externalDir !== undefined)
      externalFeats = await extractExternalFeatures({ ...config, externalDataDir: externalDir }, feats);
    const final = await trainAndExportFinalModel(
      training,
      feats,
      cv,
      outOfFold,
      {
        fingerprint: data.fingerprint,
        backendName: backend.name,
        foldCount: folds.length,
        malignantDiagnoses: data.malignantDiagnoses,
      },
      externalFeats,
    );
    backboneDisposed = true;
    let external: ExternalTransferResult | null = null;
    if (externalFeats && final.externalProbs)
      external = evaluateExternalScores({
        dataDir: externalFeats.dataDir,
        labels: externalFeats.labels,
        probs: final.externalProbs,
        patientIds: externalFeats.records.map((r) => r.patientId),
        thresholdProb: threshold.thresholdProb,
        seed: config.seed,
      });
    for (const line of formatTransferReport({ leaveOneSourceOut, external })) log(line);

    session.addScalar("cv/roc_auc_mean", cv.spread.rocAuc.mean, 0);
    session.addScalar("cv/roc_auc_sd", cv.spread.rocAuc.sd, 0);
    session.addScalar("cv/within_source_roc_auc_mean", cv.spread.withinSourceRocAuc.mean, 0);
    session.addScalar("cv/out_of_fold_roc_auc", outOfFold.rocAuc, 0);
    session.addScalar("cv/specificity_at_target_sensitivity", threshold.specificity, 0);
    if (leaveOneSourceOut && !Number.isNaN(leaveOneSourceOut.worstSourceRocAuc))
      session.addScalar("transfer/worst_source_roc_auc", leaveOneSourceOut.worstSourceRocAuc, 0);
    if (external && !Number.isNaN(external.rocAuc.estimate))
      session.addScalar("transfer/external_roc_auc", external.rocAuc.estimate, 0);
    status = "success";

    const summary = buildExperimentRunSummary({
      config,
      backend,
      data: {
        fingerprint: data.fingerprint,
        labels: feats.labels,
        sources: feats.sources,
        problems: data.dataset.problems.length + feats.problems,
      },
      foldCount: folds.length,
      cv,
      outOfFold,
      malignantDiagnoses: data.malignantDiagnoses,
      diagnosisClasses: final.diagnosisClasses,
      transfer: {
        leaveOneSourceOut,
        leaveOneSourceOutMs,
        external,
        externalMs: externalFeats ? externalFeats.featuresMs : 0,
        externalProblems: externalFeats?.problems ?? 0,
      },
      timings: {
        totalMs: Math.round(performance.now() - startedMs),
        loadDataMs: Math.round(data.loadDataMs),
        featuresMs: Math.round(feats.featuresMs),
        featureCacheHits: feats.cacheHits,
        featuresComputed: feats.computed,
        crossValidationMs: Math.round(crossValidationMs),
        finalModelMs: Math.round(final.finalModelMs),
        exportMs: Math.round(final.exportMs),
      },
    });
    writeExperimentRunJson(runJsonPath, summary);
    checkpoints.remove();
    log(
      `${runName}: ROC AUC ${formatFoldSpread(cv.spread.rocAuc)} over ${folds.length} folds, within-source ${formatFoldSpread(cv.spread.withinSourceRocAuc)}, ` +
        `out-of-fold ${outOfFold.rocAuc.toFixed(3)}; threshold ${threshold.thresholdProb.toFixed(3)} (sensitivity ${threshold.sensitivity.toFixed(3)}, specificity ${threshold.specificity.toFixed(3)})`,
    );
    const a = summary.artifacts;
    log(`wrote ${a.runJson}, ${a.logDir}/, ${a.modelDir}/ in ${(summary.timings.totalMs / 1000).toFixed(1)} s`);
    return { summary, runJsonPath, logDir, modelDir };
  } catch (err) {
    if (!backboneDisposed) feats.disposeBackbones();
    throw err;
  } finally {
    session.addHparamsSessionEnd(status, config.epochs);
    session.close();
  }
}
