import fs from "node:fs";
import path from "node:path";
import { COLOUR_CONSTANCY_METHODS, type ColourConstancy } from "../data/augment.js";
import { parseBackboneName } from "../models/backbones.js";
import { formatBackboneEnsemble, isBackboneEnsembleSpec, parseBackboneEnsemble } from "../models/ensemble.js";
import { UnknownNameError } from "../util/errors.js";
import { findProjectRoot, resolveFeatureCacheDir } from "../util/paths.js";
import { DEFAULT_HEAD_CONFIG, HEAD_TARGETS, type HeadConfig, type HeadTarget } from "./crossValidate.js";
import { ExperimentCheckpoints } from "./experimentResume.js";
import {
  computeRunConfigHash,
  EXPERIMENT_SPLITS,
  ExperimentConfigError,
  formatExperimentRunName,
  resolveRunIdentity,
  type ExperimentSplit,
} from "./runIdentity.js";

/** Options of runExperiment. */
export interface ExperimentOptions {
  /** Dataset folder (labels.csv + images/, or folder per class). */
  dataDir: string;
  /** "mobilenet_v2", "inception_v3" or "mobilenet_v1". */
  backboneName: string;
  /** mobilenet_v1 width multiplier (0.25, 0.5, 0.75, 1.0). */
  alpha?: number;
  /** Epochs of the head per fold and for the final model. Default 30. */
  epochs?: number;
  /** Epochs of fine-tuning the backbone's top blocks after the head (fineTuneTopBlocks). Default 0. */
  fineTuneEpochs?: number;
  /** Backbone blocks unfrozen when fine-tuning. Default 2. */
  unfreezeBlocks?: number;
  seed?: number;
  /** K of the lesion-grouped K-fold (ignored for split "source"). Default 5. */
  folds?: number;
  /** Default "lesion". */
  split?: ExperimentSplit;
  /** Head hyperparameters (epochs comes from `epochs`, the target from `target`). */
  head?: Partial<Omit<HeadConfig, "epochs" | "target" | "malignantDiagnoses">>;
  /**
   * What every head (folds and final model) learns: "malignant" (binary) or "diagnosis" (softmax
   * over the records' diagnoses, P(malignant) = Σ of the diagnoses labelled malignant in the
   * data; the exported model still outputs P(malignant)). "diagnosis" needs a diagnosis on every
   * record, each diagnosis with one label. Default "malignant".
   */
  target?: HeadTarget;
  /**
   * Colour constancy applied to every image before the backbone, in training, in the external
   * check and in the exported model's scoring (recorded in its metadata.json). Default "none".
   */
  colourConstancy?: ColourConstancy;
  /** Sensitivity the exported threshold reaches on the out-of-fold predictions. Default 0.9. */
  targetSensitivity?: number;
  /**
   * Name under runs/, logs/ and models/; default derived from the options (stable across reruns,
   * different for any other configuration: see formatExperimentRunName). A name whose files
   * belong to another configuration is refused (ExperimentConfigError), never overwritten.
   */
  runName?: string;
  /** Folder holding runs/, logs/, models/ and out/checkpoints/. Default the project root. */
  outputRoot?: string;
  /**
   * Continue an interrupted run of the same name from `out/checkpoints/<run>/`: finished folds
   * are reused, the interrupted fold (or final model) continues from its last finished epoch,
   * logs/<run> is kept and appended to. Options and data must match the interrupted run's
   * (else ExperimentResumeError naming what differs). Without checkpoints, starts afresh.
   * Default false: a fresh run deletes old logs/<run>, models/<run> and checkpoints.
   */
  resume?: boolean;
  /**
   * A second data set (labels.csv + images/, e.g. ../shared/data/isic2020-ext) that the final
   * model, trained on all of `dataDir`, scores for the transfer report: ROC AUC with a
   * patient-grouped bootstrap interval and the shipped threshold's sensitivity/specificity there.
   * It never takes part in training or in choosing anything. Default none.
   */
  externalDataDir?: string;
  /**
   * For split "lesion": also train one head per source on the other sources (leave-one-source-out)
   * for the transfer report. Default true when the data has ≥ 2 sources; it roughly doubles the
   * head-training time (the features are cached). Split "source" reuses its own folds either way.
   */
  leaveOneSourceOut?: boolean;
  /** Feature cache. Default MELANOMA_LAB_FEATURE_CACHE or <project root>/data/cache/features. */
  featureCacheDir?: string;
  /**
   * "bar": progress bars with ETA (one redrawn line on a terminal); "lines": one compact line per
   * epoch (notebooks); "quiet": summary lines only. Default "bar" on a TTY, else "lines".
   */
  progress?: "bar" | "lines" | "quiet";
  /** Where lines go. Default console.log. */
  log?: (line: string) => void;
}

/** {@link ExperimentOptions} checked, with defaults filled in, the run's identity and its paths. */
export interface ResolvedExperimentConfig {
  /** Canonical backbone name or ensemble spec. */
  backboneName: string;
  isEnsemble: boolean;
  alpha: number | undefined;
  split: ExperimentSplit;
  epochs: number;
  fineTuneEpochs: number;
  unfreezeBlocks: number;
  seed: number;
  /** K of the lesion-grouped K-fold (unused for split "source"). */
  foldCount: number;
  targetSensitivity: number;
  target: HeadTarget;
  colourConstancy: ColourConstancy;
  /** Head config of every fold and of the final model (malignantDiagnoses set once the data is read). */
  head: HeadConfig;
  fineTune: boolean;
  /** Absolute data folder. */
  dataDir: string;
  outputRoot: string;
  runName: string;
  /** computeRunConfigHash of the configuration. */
  configHash: string;
  logDir: string;
  modelDir: string;
  runJsonPath: string;
  checkpoints: ExperimentCheckpoints;
  featureCacheDir: string;
  /** Absolute external data folder for the transfer report, when one was given. */
  externalDataDir: string | undefined;
  /** Whether a k-fold run also runs the leave-one-source-out folds of the transfer report. */
  leaveOneSourceOut: boolean;
  progressMode: "bar" | "lines" | "quiet";
  log: (line: string) => void;
}

/**
 * Checks the options (ExperimentConfigError / UnknownNameError naming the value received and
 * what is expected), fills in the defaults and derives the run name, config hash and paths.
 * Touches no file.
 *
 * @example resolveExperimentConfig({ dataDir: "data/synthetic", backboneName: "mobilenet_v2" }).runName // "synthetic-mobilenet_v2-lesion5-e30-s42-<8 hex>"
 */
export function resolveExperimentConfig(options: ExperimentOptions): ResolvedExperimentConfig {
  const log = options.log ?? ((line: string) => console.log(line));
  const progressMode = options.progress ?? (process.stdout.isTTY ? "bar" : "lines");
  // "a+b+c": several backbones' features side by side, one head (see loadBackboneEnsemble).
  const isEnsemble = isBackboneEnsembleSpec(options.backboneName);
  const backboneName: string = isEnsemble
    ? formatBackboneEnsemble(parseBackboneEnsemble(options.backboneName))
    : parseBackboneName(options.backboneName);
  const split = options.split ?? "lesion";
  if (!EXPERIMENT_SPLITS.includes(split)) throw new UnknownNameError("split", split, EXPERIMENT_SPLITS);
  const epochs = options.epochs ?? 30;
  const fineTuneEpochs = options.fineTuneEpochs ?? 0;
  const unfreezeBlocks = options.unfreezeBlocks ?? 2;
  const seed = options.seed ?? 42;
  const foldCount = options.folds ?? 5;
  const targetSensitivity = options.targetSensitivity ?? 0.9;
  const target = options.target ?? "malignant";
  if (!HEAD_TARGETS.includes(target)) throw new UnknownNameError("target", target, HEAD_TARGETS);
  const colourConstancy = options.colourConstancy ?? "none";
  if (!COLOUR_CONSTANCY_METHODS.includes(colourConstancy))
    throw new UnknownNameError("colourConstancy", colourConstancy, COLOUR_CONSTANCY_METHODS);
  for (const [name, value, min] of [
    ["epochs", epochs, 1],
    ["fineTuneEpochs", fineTuneEpochs, 0],
    ["folds", foldCount, 2],
    ["seed", seed, 0],
  ] as const) {
    if (!(Number.isInteger(value) && value >= min))
      throw new ExperimentConfigError(`${name}: received ${value}, expected a whole number ≥ ${min}`);
  }
  if (!(targetSensitivity > 0 && targetSensitivity <= 1))
    throw new ExperimentConfigError(`targetSensitivity: received ${targetSensitivity}, expected 0 < target ≤ 1`);
  const head: HeadConfig = { ...DEFAULT_HEAD_CONFIG, ...options.head, epochs, target };
  const fineTune = fineTuneEpochs > 0;
  if (isEnsemble && options.alpha !== undefined) {
    throw new ExperimentConfigError(
      `alpha: received ${options.alpha} with the ensemble ${backboneName}; expected it inside the spec (mobilenet_v1@${options.alpha})`,
    );
  }
  if (colourConstancy !== "none" && fineTune) {
    throw new ExperimentConfigError(
      `fineTuneEpochs: received ${fineTuneEpochs} with colour constancy ${colourConstancy}; expected 0 (fine-tuning reads images without it)`,
    );
  }
  if (isEnsemble && fineTune) {
    throw new ExperimentConfigError(
      `fineTuneEpochs: received ${fineTuneEpochs} with the ensemble ${backboneName}; expected 0 (fine-tuning takes a single backbone)`,
    );
  }
  const dataDir = path.resolve(options.dataDir);
  if (!fs.existsSync(dataDir))
    throw new ExperimentConfigError(
      `dataDir: ${dataDir} does not exist (expected labels.csv + images/, or train/benign + train/malignant)`,
    );
  const externalDataDir = options.externalDataDir === undefined ? undefined : path.resolve(options.externalDataDir);
  if (externalDataDir !== undefined && !fs.existsSync(externalDataDir))
    throw new ExperimentConfigError(
      `externalDataDir: ${externalDataDir} does not exist (expected labels.csv + images/ of a second data set)`,
    );
  const outputRoot = path.resolve(options.outputRoot ?? findProjectRoot());
  const nameOptions = {
    ...options,
    backboneName,
    split,
    epochs,
    fineTuneEpochs,
    unfreezeBlocks,
    seed,
    folds: foldCount,
    target,
    colourConstancy,
    targetSensitivity,
  };
  const configHash = computeRunConfigHash(resolveRunIdentity(nameOptions));
  const runName = options.runName ?? formatExperimentRunName(nameOptions);
  if (!/^[A-Za-z0-9._-]+$/.test(runName))
    throw new ExperimentConfigError(
      `runName: ${JSON.stringify(runName)} may use only letters, digits, '.', '_' and '-'`,
    );
  return {
    backboneName,
    isEnsemble,
    alpha: options.alpha,
    split,
    epochs,
    fineTuneEpochs,
    unfreezeBlocks,
    seed,
    foldCount,
    targetSensitivity,
    target,
    colourConstancy,
    head,
    fineTune,
    dataDir,
    outputRoot,
    runName,
    configHash,
    logDir: path.join(outputRoot, "logs", runName),
    modelDir: path.join(outputRoot, "models", runName),
    runJsonPath: path.join(outputRoot, "runs", `${runName}.json`),
    checkpoints: new ExperimentCheckpoints(path.join(outputRoot, "out", "checkpoints", runName)),
    featureCacheDir: options.featureCacheDir ?? resolveFeatureCacheDir(),
    externalDataDir,
    leaveOneSourceOut: options.leaveOneSourceOut !== false,
    progressMode,
    log,
  };
}
