import { createColourConstancyTransform } from "../data/augment.js";
import { loadDataset, type LoadedDataset } from "../data/loadDataset.js";
import { createGroupedKFolds } from "../data/split.js";
import type { LesionRecord } from "../data/types.js";
import { loadBackbone, type BackboneName } from "../models/backbones.js";
import {
  disposeBackboneEnsemble,
  extractEnsembleFeatures,
  loadBackboneEnsemble,
  type BackboneEnsemble,
} from "../models/ensemble.js";
import { extractFeatures } from "../models/features.js";
import { disposeBackbone } from "../models/inferencePlan.js";
import type { Backbone } from "../models/types.js";
import { normalizeDiagnosisCode } from "../train/diagnosisHead.js";
import { toFoldRows, type FoldRows } from "./crossValidate.js";
import type { ResolvedExperimentConfig } from "./experimentConfig.js";
import { createProgressBar } from "../util/progress.js";
import { computeDataFingerprint, ExperimentConfigError } from "./runIdentity.js";
import { createLeaveOneSourceOutFolds } from "./sourceFolds.js";

/**
 * The diagnoses counted as malignant for a diagnosis-target head: those whose records are
 * labelled malignant. Throws ExperimentConfigError when a record has no diagnosis (e.g. a
 * folder-per-class data set) or a diagnosis carries both labels.
 *
 * @example findMalignantDiagnoses(dataset.records, dataDir) // ["bcc", "mel"]
 */
export function findMalignantDiagnoses(records: readonly LesionRecord[], dataDir: string): string[] {
  // The rule trainHead applies to each row, checked here before any backbone work.
  const lacking = records.filter((r) => normalizeDiagnosisCode(r.diagnosis) === undefined);
  if (lacking.length > 0) {
    throw new ExperimentConfigError(
      `target "diagnosis": ${lacking.length} of ${records.length} images in ${dataDir} have no diagnosis (e.g. ${lacking[0].imageId}); ` +
        `expected a diagnosis column in labels.csv for every image (folder-per-class data sets have none: use target "malignant")`,
    );
  }
  const byDiagnosis = new Map<string, { malignant: string[]; benign: string[] }>();
  for (const r of records) {
    const dx = normalizeDiagnosisCode(r.diagnosis)!;
    if (!byDiagnosis.has(dx)) byDiagnosis.set(dx, { malignant: [], benign: [] });
    byDiagnosis.get(dx)![r.label].push(r.imageId);
  }
  for (const [dx, ids] of byDiagnosis) {
    if (ids.malignant.length > 0 && ids.benign.length > 0) {
      throw new ExperimentConfigError(
        `target "diagnosis": diagnosis ${JSON.stringify(dx)} has ${ids.malignant.length} images labelled malignant (e.g. ${ids.malignant[0]}) and ${ids.benign.length} benign (e.g. ${ids.benign[0]}); ` +
          `expected one label per diagnosis`,
      );
    }
  }
  return [...byDiagnosis]
    .filter(([, ids]) => ids.malignant.length > 0)
    .map(([dx]) => dx)
    .sort();
}

/** The data set of an experiment, read and fingerprinted. */
export interface ExperimentData {
  dataset: LoadedDataset;
  /** computeDataFingerprint of the records. */
  fingerprint: string;
  loadDataMs: number;
  /** Target "diagnosis": the diagnoses counted as malignant (also set on config.head). */
  malignantDiagnoses?: string[];
}

/**
 * Reads the data set, fingerprints it and, for target "diagnosis", checks the diagnoses (before
 * any backbone work) and sets `config.head.malignantDiagnoses`.
 *
 * @example const data = loadExperimentData(config); data.dataset.records.length
 */
export function loadExperimentData(config: ResolvedExperimentConfig): ExperimentData {
  const loadStarted = performance.now();
  const dataset = loadDataset(config.dataDir);
  const fingerprint = computeDataFingerprint(dataset.records);
  const loadDataMs = performance.now() - loadStarted;
  config.log(
    `run ${config.runName}: ${dataset.records.length} images from ${config.dataDir} (fingerprint ${fingerprint.slice(0, 12)}), ${dataset.problems.length} input problems`,
  );
  // Checked before the backbone loads: a data set without diagnoses fails at once.
  const malignantDiagnoses =
    config.target === "diagnosis" ? findMalignantDiagnoses(dataset.records, config.dataDir) : undefined;
  if (malignantDiagnoses) {
    config.head.malignantDiagnoses = malignantDiagnoses;
    config.log(`target diagnosis: softmax over the diagnoses, P(malignant) = sum of ${malignantDiagnoses.join(", ")}`);
  }
  return { dataset, fingerprint, loadDataMs, malignantDiagnoses };
}

/** Loaded backbone(s) and the feature matrix of the records they could read. */
export interface ExperimentFeatures {
  /** The ensemble, when the backbone name is an ensemble spec. */
  ensemble?: BackboneEnsemble;
  /** The single backbone (fine-tuning and single-input export); throws for an ensemble. */
  singleBackbone: () => Backbone;
  /** Frees the backbone(s). */
  disposeBackbones: () => void;
  /** Flattened [rows × featureDim] features. */
  features: Float32Array;
  featureDim: number;
  /** The records with a feature row, in row order, and their labels (1 malignant), sources and diagnoses. */
  records: LesionRecord[];
  labels: number[];
  sources: (string | undefined)[];
  diagnoses: (string | undefined)[];
  cacheHits: number;
  computed: number;
  /** Images the backbone(s) could not read. */
  problems: number;
  featuresMs: number;
}

/**
 * Loads the backbone (or ensemble) and extracts the (cached) features of every record.
 *
 * @example const feats = await extractExperimentFeatures(config, data.dataset.records); feats.featureDim // 1280
 */
export async function extractExperimentFeatures(
  config: ResolvedExperimentConfig,
  datasetRecords: readonly LesionRecord[],
): Promise<ExperimentFeatures> {
  const { backboneName, progressMode } = config;
  const featuresStarted = performance.now();
  const ensemble = config.isEnsemble ? await loadBackboneEnsemble(backboneName) : undefined;
  const single = ensemble ? undefined : await loadBackbone(backboneName as BackboneName, { alpha: config.alpha });
  // Fine-tuning (refused for ensembles) and the single-input export use the one backbone.
  const singleBackbone = (): Backbone => {
    if (!single) throw new ExperimentConfigError(`${backboneName}: an ensemble has no single backbone`);
    return single;
  };
  const disposeBackbones = () => (ensemble ? disposeBackboneEnsemble(ensemble) : disposeBackbone(single!));
  const featureOptions = {
    cacheDir: config.featureCacheDir,
    pixelTransform: createColourConstancyTransform(config.colourConstancy),
    onProgress:
      progressMode === "quiet"
        ? undefined
        : createProgressBar(`${backboneName} features`, { stepPercent: progressMode === "lines" ? 25 : 10 }),
  };
  const matrix = ensemble
    ? await extractEnsembleFeatures(ensemble, datasetRecords, featureOptions)
    : await extractFeatures(single!, datasetRecords, featureOptions);
  const featuresMs = performance.now() - featuresStarted;
  const records = matrix.sourceIndices.map((i) => datasetRecords[i]);
  config.log(
    `features: ${matrix.rows} × ${matrix.featureDim} (${matrix.cacheHits} cached, ${matrix.computed} computed) in ${(featuresMs / 1000).toFixed(1)} s`,
  );
  return {
    ensemble,
    singleBackbone,
    disposeBackbones,
    features: matrix.features,
    featureDim: matrix.featureDim,
    records,
    labels: records.map((r) => (r.label === "malignant" ? 1 : 0)),
    sources: records.map((r) => r.source),
    diagnoses: records.map((r) => r.diagnosis),
    cacheHits: matrix.cacheHits,
    computed: matrix.computed,
    problems: matrix.problems.length,
    featuresMs,
  };
}

/**
 * The cross-validation folds: "source-<name>" per held-out source for split "source", else
 * "fold-1" … "fold-K" of the lesion-grouped stratified K-fold.
 *
 * @example makeExperimentFolds(records, config).map((f) => f.name) // ["fold-1", …, "fold-5"]
 */
export function makeExperimentFolds(
  records: readonly LesionRecord[],
  config: Pick<ResolvedExperimentConfig, "split" | "foldCount" | "seed">,
): FoldRows[] {
  return config.split === "source"
    ? toFoldRows(
        records,
        createLeaveOneSourceOutFolds(records).map((f) => ({ name: `source-${f.heldOutSource}`, ...f })),
      )
    : toFoldRows(
        records,
        createGroupedKFolds(records, { folds: config.foldCount, seed: config.seed }).map((f) => ({
          name: `fold-${f.foldIndex + 1}`,
          ...f,
        })),
      );
}

/** An external data set's features through the experiment's backbone(s), for the transfer report. */
export interface ExternalFeatures {
  /** Absolute folder. */
  dataDir: string;
  /** Flattened [rows × featureDim], same columns as the dev features. */
  features: Float32Array;
  /** The records with a feature row, in row order, and their labels (1 malignant). */
  records: LesionRecord[];
  labels: number[];
  /** Rows skipped by the loader or the backbone. */
  problems: number;
  featuresMs: number;
}

/**
 * Reads `config.externalDataDir` and extracts its (cached) features with the experiment's
 * already loaded backbone(s), so the final head can score it exactly as it scores the dev set.
 * Call before the final-model stage frees the backbones.
 *
 * @example const external = await extractExternalFeatures(config, feats); external.labels.length // 2700
 */
export async function extractExternalFeatures(
  config: ResolvedExperimentConfig & { externalDataDir: string },
  feats: Pick<ExperimentFeatures, "ensemble" | "singleBackbone">,
): Promise<ExternalFeatures> {
  const started = performance.now();
  const dataset = loadDataset(config.externalDataDir);
  const featureOptions = {
    cacheDir: config.featureCacheDir,
    pixelTransform: createColourConstancyTransform(config.colourConstancy),
    onProgress:
      config.progressMode === "quiet"
        ? undefined
        : createProgressBar(`external features`, { stepPercent: config.progressMode === "lines" ? 25 : 10 }),
  };
  const matrix = feats.ensemble
    ? await extractEnsembleFeatures(feats.ensemble, dataset.records, featureOptions)
    : await extractFeatures(feats.singleBackbone(), dataset.records, featureOptions);
  const records = matrix.sourceIndices.map((i) => dataset.records[i]);
  const featuresMs = performance.now() - started;
  config.log(
    `external ${config.externalDataDir}: ${records.length} images, ${matrix.rows} × ${matrix.featureDim} features ` +
      `(${matrix.cacheHits} cached, ${matrix.computed} computed) in ${(featuresMs / 1000).toFixed(1)} s`,
  );
  return {
    dataDir: config.externalDataDir,
    features: matrix.features,
    records,
    labels: records.map((r) => (r.label === "malignant" ? 1 : 0)),
    problems: dataset.problems.length + matrix.problems.length,
    featuresMs,
  };
}
