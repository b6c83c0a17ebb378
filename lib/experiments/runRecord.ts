import type { ColourConstancy } from "../data/augment.js";
import fs from "node:fs";
import path from "node:path";
import type { TriageThresholdProvenance } from "../export/triageModel.js";
import { findProjectRoot } from "../util/paths.js";
import type { CrossValidationResult, FoldSpread } from "./crossValidate.js";
import type { ResolvedExperimentConfig } from "./experimentConfig.js";
import type { ExperimentHeadSettings, ExperimentSplit } from "./runIdentity.js";
import type { HeadTarget } from "./crossValidate.js";
import type { OutOfFoldEvaluation } from "./crossValidationStage.js";
import type { ExternalTransferResult, LeaveOneSourceOutReport } from "./transferReport.js";

/** Value of `schema` in every runs/<run>.json written by runExperiment. */
export const EXPERIMENT_RUN_SCHEMA = "melanoma-lab/experiment-run@1";

/** One fold in runs/<run>.json. */
export interface ExperimentFoldSummary {
  name: string;
  trainImages: number;
  validationImages: number;
  validationPositives: number;
  rocAuc: number | null;
  averagePrecision: number | null;
  withinSourceRocAuc: number | null;
  epochs: number;
  finalTrainLoss: number;
  finalValidationLoss: number | null;
  trainMs: number;
}

/** Spread of a metric over folds (null where no fold had a value: JSON has no NaN). */
export interface JsonFoldSpread {
  mean: number | null;
  sd: number | null;
  min: number | null;
  max: number | null;
  n: number;
}

/** One left-out source in runs/<run>.json (null where the value is NaN). */
export interface JsonSourceTransferRow {
  source: string;
  images: number;
  malignant: number;
  benign: number;
  rocAuc: number | null;
  sensitivity: number | null;
  specificity: number | null;
}

/**
 * The transfer report in runs/<run>.json: how the run holds up where it was not trained. Absent
 * in runs written before it existed.
 */
export interface ExperimentTransferSummary {
  /**
   * Leave-one-source-out: per source, the fold model trained without it scores it; ROC AUC and
   * the shipped threshold's sensitivity/specificity there, worst AUC first. `foldsReused`: the
   * run's own folds (split "source"), else one extra head per source on the cached features.
   * Null when the data has fewer than two sources (or an image without one).
   */
  leaveOneSourceOut: {
    foldsReused: boolean;
    thresholdProb: number;
    worstSourceRocAuc: number | null;
    perSource: JsonSourceTransferRow[];
    elapsedMs: number;
  } | null;
  /** The final model (trained on all dev data) on the external set; null without `--external`. */
  external: {
    dataDir: string;
    images: number;
    malignant: number;
    benign: number;
    /** Patients resampled by the bootstrap (an image without a patient id counts as one). */
    patients: number;
    rocAuc: {
      estimate: number | null;
      lower: number | null;
      upper: number | null;
      confidenceLevel: number;
      iterations: number;
      resampled: "patients";
    };
    thresholdProb: number;
    sensitivity: number | null;
    specificity: number | null;
    /** Rows skipped by the loader or the backbone. */
    problems: number;
    /** Loading and featurising the external set. */
    elapsedMs: number;
  } | null;
}

/** Contents of runs/<run>.json. */
export interface ExperimentRunSummary {
  schema: typeof EXPERIMENT_RUN_SCHEMA;
  runName: string;
  /** computeRunConfigHash of the configuration (runs written before it existed have none). */
  configHash?: string;
  createdAt: string;
  config: {
    dataDir: string;
    backbone: string;
    alpha: number | null;
    epochs: number;
    fineTuneEpochs: number;
    unfreezeBlocks: number;
    seed: number;
    split: ExperimentSplit;
    folds: number;
    head: ExperimentHeadSettings;
    targetSensitivity: number;
    /** What the heads learned (runs written before this field existed: "malignant"). */
    target: HeadTarget;
    /** Colour constancy before the backbone (absent in runs written before it existed: "none"). */
    colourConstancy?: ColourConstancy;
    /** Target "diagnosis": the diagnoses summed into P(malignant) (those labelled malignant in the data). */
    malignantDiagnoses?: string[];
    /** Target "diagnosis": the final model's softmax classes, in column order. */
    diagnosisClasses?: string[];
  };
  backend: { name: string; description: string };
  data: {
    /** sha256 of the sorted "imageId label fileBytes" lines: same data ⇔ same fingerprint. */
    fingerprint: string;
    images: number;
    malignant: number;
    benign: number;
    /** Images per source (clinic/device); "unknown" for records without one. */
    sources: Record<string, number>;
    /** Rows/images skipped by the loader or the backbone. */
    problems: number;
  };
  metrics: {
    rocAuc: JsonFoldSpread;
    averagePrecision: JsonFoldSpread;
    withinSourceRocAuc: JsonFoldSpread;
    /** ROC AUC of all out-of-fold predictions pooled. */
    outOfFoldRocAuc: number | null;
    /** Within-source ROC AUC of the pooled out-of-fold predictions. */
    outOfFoldWithinSourceRocAuc: number | null;
    /**
     * Threshold of the exported model, chosen on the pooled out-of-fold predictions, with how it
     * was chosen and what it gives per fold and per source (runs written before the provenance
     * existed have only thresholdProb, sensitivity, specificity and targetSensitivity).
     */
    threshold: {
      thresholdProb: number;
      sensitivity: number;
      specificity: number | null;
      targetSensitivity: number;
    } & Partial<Omit<TriageThresholdProvenance, "sensitivity" | "specificity" | "targetSensitivity">>;
  };
  /** Warnings about the run's results (e.g. a source below the target sensitivity at the threshold); absent in older runs. */
  warnings?: string[];
  folds: ExperimentFoldSummary[];
  transfer?: ExperimentTransferSummary;
  timings: {
    totalMs: number;
    loadDataMs: number;
    featuresMs: number;
    featureCacheHits: number;
    featuresComputed: number;
    crossValidationMs: number;
    finalModelMs: number;
    exportMs: number;
  };
  /** Relative to outputRoot. */
  artifacts: { runJson: string; logDir: string; modelDir: string };
}

function countBy(values: readonly string[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const v of [...values].sort()) counts[v] = (counts[v] ?? 0) + 1;
  return counts;
}

/**
 * A number for JSON: NaN and ±Infinity become null (JSON has no NaN).
 *
 * @example jsonNumber(NaN) // null
 */
export function jsonNumber(v: number): number | null {
  return Number.isFinite(v) ? v : null;
}

function jsonSpread(s: FoldSpread): JsonFoldSpread {
  return { mean: jsonNumber(s.mean), sd: jsonNumber(s.sd), min: jsonNumber(s.min), max: jsonNumber(s.max), n: s.n };
}

/** The head settings recorded in runs/<run>.json and in the resume check. */
export function pickHeadSettings(head: ExperimentHeadSettings): ExperimentHeadSettings {
  return {
    hiddenUnits: head.hiddenUnits,
    dropoutRate: head.dropoutRate,
    l2: head.l2,
    batchSize: head.batchSize,
    learningRate: head.learningRate,
  };
}

/** What {@link buildExperimentRunSummary} assembles into runs/<run>.json. */
export interface ExperimentRunRecordInput {
  config: ResolvedExperimentConfig;
  backend: { name: string; details: string };
  data: { fingerprint: string; labels: readonly number[]; sources: readonly (string | undefined)[]; problems: number };
  foldCount: number;
  cv: CrossValidationResult;
  outOfFold: OutOfFoldEvaluation;
  /** Target "diagnosis": the diagnoses summed into P(malignant), and the final model's classes. */
  malignantDiagnoses?: string[];
  diagnosisClasses?: string[];
  /** The transfer report's results (see runExperiment). */
  transfer?: {
    leaveOneSourceOut: (LeaveOneSourceOutReport & { foldsReused: boolean }) | null;
    leaveOneSourceOutMs: number;
    external: ExternalTransferResult | null;
    externalMs: number;
    externalProblems: number;
  };
  timings: ExperimentRunSummary["timings"];
}

function jsonTransfer(t: NonNullable<ExperimentRunRecordInput["transfer"]>): ExperimentTransferSummary {
  const loso = t.leaveOneSourceOut;
  const ext = t.external;
  return {
    leaveOneSourceOut: loso
      ? {
          foldsReused: loso.foldsReused,
          thresholdProb: loso.thresholdProb,
          worstSourceRocAuc: jsonNumber(loso.worstSourceRocAuc),
          perSource: loso.perSource.map((r) => ({
            source: r.source,
            images: r.images,
            malignant: r.malignant,
            benign: r.benign,
            rocAuc: jsonNumber(r.rocAuc),
            sensitivity: jsonNumber(r.sensitivity),
            specificity: jsonNumber(r.specificity),
          })),
          elapsedMs: Math.round(t.leaveOneSourceOutMs),
        }
      : null,
    external: ext
      ? {
          dataDir: ext.dataDir,
          images: ext.images,
          malignant: ext.malignant,
          benign: ext.benign,
          patients: ext.patients,
          rocAuc: {
            estimate: jsonNumber(ext.rocAuc.estimate),
            lower: jsonNumber(ext.rocAuc.lower),
            upper: jsonNumber(ext.rocAuc.upper),
            confidenceLevel: ext.rocAuc.confidenceLevel,
            iterations: ext.rocAuc.iterations,
            resampled: "patients",
          },
          thresholdProb: ext.thresholdProb,
          sensitivity: jsonNumber(ext.sensitivity),
          specificity: jsonNumber(ext.specificity),
          problems: t.externalProblems,
          elapsedMs: Math.round(t.externalMs),
        }
      : null,
  };
}

/**
 * The runs/<run>.json contents of a finished run (paths relative to the output root; the
 * data folder relative to the project root when inside it).
 *
 * @example const summary = buildExperimentRunSummary({ config, backend, data, foldCount: 5, cv, outOfFold, timings });
 */
export function buildExperimentRunSummary(input: ExperimentRunRecordInput): ExperimentRunSummary {
  const { config, cv, outOfFold, data } = input;
  const { threshold, thresholdAudit } = outOfFold;
  const rel = (p: string) => path.relative(config.outputRoot, p).split(path.sep).join("/");
  const fromRoot = path.relative(findProjectRoot(), config.dataDir);
  return {
    schema: EXPERIMENT_RUN_SCHEMA,
    runName: config.runName,
    configHash: config.configHash,
    createdAt: new Date().toISOString(),
    config: {
      dataDir: fromRoot.startsWith("..") ? config.dataDir : fromRoot || ".",
      backbone: config.backboneName,
      alpha: config.alpha ?? null,
      epochs: config.epochs,
      fineTuneEpochs: config.fineTuneEpochs,
      unfreezeBlocks: config.unfreezeBlocks,
      seed: config.seed,
      split: config.split,
      folds: input.foldCount,
      head: pickHeadSettings(config.head),
      targetSensitivity: config.targetSensitivity,
      target: config.target,
      colourConstancy: config.colourConstancy,
      ...(input.malignantDiagnoses
        ? { malignantDiagnoses: input.malignantDiagnoses, diagnosisClasses: input.diagnosisClasses }
        : {}),
    },
    backend: { name: input.backend.name, description: `${input.backend.name} (${input.backend.details})` },
    data: {
      fingerprint: data.fingerprint,
      images: data.labels.length,
      malignant: data.labels.filter((v) => v === 1).length,
      benign: data.labels.filter((v) => v === 0).length,
      sources: countBy(data.sources.map((s) => s ?? "unknown")),
      problems: data.problems,
    },
    metrics: {
      rocAuc: jsonSpread(cv.spread.rocAuc),
      averagePrecision: jsonSpread(cv.spread.averagePrecision),
      withinSourceRocAuc: jsonSpread(cv.spread.withinSourceRocAuc),
      outOfFoldRocAuc: jsonNumber(outOfFold.rocAuc),
      outOfFoldWithinSourceRocAuc: jsonNumber(outOfFold.withinSourceRocAuc),
      threshold: {
        ...thresholdAudit,
        thresholdProb: threshold.thresholdProb,
        sensitivity: threshold.sensitivity,
        specificity: jsonNumber(threshold.specificity),
        targetSensitivity: config.targetSensitivity,
      },
    },
    warnings: thresholdAudit.warnings,
    folds: cv.folds.map((f) => ({
      name: f.name,
      trainImages: f.trainImages,
      validationImages: f.validationImages,
      validationPositives: f.validationPositives,
      rocAuc: jsonNumber(f.rocAuc),
      averagePrecision: jsonNumber(f.averagePrecision),
      withinSourceRocAuc: jsonNumber(f.withinSourceRocAuc),
      epochs: f.history.length,
      finalTrainLoss: f.history.at(-1)?.trainLoss ?? NaN,
      finalValidationLoss: jsonNumber(f.history.at(-1)?.valLoss ?? NaN),
      trainMs: Math.round(f.trainMs),
    })),
    ...(input.transfer ? { transfer: jsonTransfer(input.transfer) } : {}),
    timings: input.timings,
    artifacts: { runJson: rel(config.runJsonPath), logDir: rel(config.logDir), modelDir: rel(config.modelDir) },
  };
}

/**
 * Writes runs/<run>.json atomically (a .tmp file renamed over it).
 *
 * @example writeExperimentRunJson("runs/x.json", summary)
 */
export function writeExperimentRunJson(runJsonPath: string, summary: ExperimentRunSummary): void {
  fs.mkdirSync(path.dirname(runJsonPath), { recursive: true });
  fs.writeFileSync(`${runJsonPath}.tmp`, JSON.stringify(summary, null, 2) + "\n");
  fs.renameSync(`${runJsonPath}.tmp`, runJsonPath);
}
