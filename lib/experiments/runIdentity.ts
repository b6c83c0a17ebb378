import type { ColourConstancy } from "../data/augment.js";
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import type { LesionRecord } from "../data/types.js";
import { MelanomaLabError } from "../util/errors.js";
import { DEFAULT_HEAD_CONFIG, type HeadConfig, type HeadTarget } from "./crossValidate.js";
import type { ExperimentOptions } from "./experimentConfig.js";
import type { ExperimentRunSummary } from "./runRecord.js";

/** Thrown for an experiment option that cannot be used. */
export class ExperimentConfigError extends MelanomaLabError {}

/** How folds are made: lesion-grouped stratified K-fold, or leave-one-source-out. */
export type ExperimentSplit = "lesion" | "source";

/** Valid values of {@link ExperimentSplit}. */
export const EXPERIMENT_SPLITS: readonly ExperimentSplit[] = ["lesion", "source"];

/** The head settings an experiment records (epochs and target are run-level settings). */
export type ExperimentHeadSettings = Omit<HeadConfig, "epochs" | "target" | "malignantDiagnoses">;

/**
 * Every setting that changes an experiment's results, as hashed into its run identity. Data is
 * identified by its folder name here (the content fingerprint is recorded in runs/<run>.json).
 */
export interface RunIdentityConfig {
  /** Base name of the data folder, e.g. "ham10000-dev". */
  data: string;
  /** Canonical backbone name or ensemble spec. */
  backbone: string;
  alpha: number | null;
  epochs: number;
  fineTuneEpochs: number;
  unfreezeBlocks: number;
  seed: number;
  split: ExperimentSplit;
  /** K of the K-fold; null for leave-one-source-out (the sources decide the folds). */
  folds: number | null;
  head: ExperimentHeadSettings;
  targetSensitivity: number;
  target: HeadTarget;
  /** Colour constancy before the backbone ("none" for runs written before it existed). */
  colourConstancy: ColourConstancy;
}

/**
 * First 8 hex digits of the sha256 of the identity config (fixed key order), so two configurations
 * that differ in any result-changing setting (head size, dropout, L2, learning rate, batch size,
 * unfreeze blocks, target sensitivity, …) never share a run name.
 *
 * @example computeRunConfigHash(resolveRunIdentity({ dataDir: "/d/ham10000-dev", backboneName: "mobilenet_v2" })) // 8 hex digits
 */
export function computeRunConfigHash(config: RunIdentityConfig): string {
  const h = config.head;
  const canonical = {
    data: config.data,
    backbone: config.backbone,
    alpha: config.alpha,
    epochs: config.epochs,
    fineTuneEpochs: config.fineTuneEpochs,
    unfreezeBlocks: config.unfreezeBlocks,
    seed: config.seed,
    split: config.split,
    folds: config.split === "source" ? null : config.folds,
    head: {
      hiddenUnits: h.hiddenUnits,
      dropoutRate: h.dropoutRate,
      l2: h.l2,
      batchSize: h.batchSize,
      learningRate: h.learningRate,
    },
    targetSensitivity: config.targetSensitivity,
    target: config.target,
    // Only when set, so the hashes (and names) of runs without it stay what they were.
    ...(config.colourConstancy !== "none" ? { colourConstancy: config.colourConstancy } : {}),
  };
  return crypto.createHash("sha256").update(JSON.stringify(canonical)).digest("hex").slice(0, 8);
}

/**
 * The options that name a run: those of runExperiment that change its results (defaults as
 * there; head settings missing from `head` are DEFAULT_HEAD_CONFIG's).
 */
export type RunNameOptions = Pick<
  ExperimentOptions,
  | "dataDir"
  | "backboneName"
  | "alpha"
  | "epochs"
  | "fineTuneEpochs"
  | "unfreezeBlocks"
  | "seed"
  | "folds"
  | "split"
  | "targetSensitivity"
  | "target"
  | "colourConstancy"
> & { head?: Partial<ExperimentHeadSettings> };

/**
 * The {@link RunIdentityConfig} of runExperiment options, defaults filled in as runExperiment does.
 *
 * @example resolveRunIdentity({ dataDir: "/d/ham10000-dev", backboneName: "mobilenet_v2" }).head.hiddenUnits // 128
 */
export function resolveRunIdentity(options: RunNameOptions): RunIdentityConfig {
  const head = { ...DEFAULT_HEAD_CONFIG, ...options.head };
  const split = options.split ?? "lesion";
  return {
    data: path.basename(path.resolve(options.dataDir)),
    backbone: options.backboneName,
    alpha: options.alpha ?? null,
    epochs: options.epochs ?? 30,
    fineTuneEpochs: options.fineTuneEpochs ?? 0,
    unfreezeBlocks: options.unfreezeBlocks ?? 2,
    seed: options.seed ?? 42,
    split,
    folds: split === "source" ? null : (options.folds ?? 5),
    head: {
      hiddenUnits: head.hiddenUnits,
      dropoutRate: head.dropoutRate,
      l2: head.l2,
      batchSize: head.batchSize,
      learningRate: head.learningRate,
    },
    targetSensitivity: options.targetSensitivity ?? 0.9,
    target: options.target ?? "malignant",
    colourConstancy: options.colourConstancy ?? "none",
  };
}

/**
 * The default run name: data folder, backbone, split, epochs and seed, then "-dx" for target
 * "diagnosis", then the 8-hex-digit {@link computeRunConfigHash} of the full configuration
 * (head settings, unfreeze blocks, target sensitivity included), e.g.
 * "ham10000-dev-mobilenet_v2-lesion5-e30-s42-1a2b3c4d". Reruns of one configuration share the
 * name (and replace each other's files); any other configuration gets another name.
 *
 * @example formatExperimentRunName({ dataDir: "/d/ham10000-dev", backboneName: "mobilenet_v2" }) // "ham10000-dev-mobilenet_v2-lesion5-e30-s42-<8 hex>"
 * @example formatExperimentRunName({ dataDir: "/d/ham10000-dev", backboneName: "mobilenet_v2", head: { hiddenUnits: 0 } }) // same prefix, another hash
 */
export function formatExperimentRunName(options: RunNameOptions): string {
  const config = resolveRunIdentity(options);
  const parts = [
    config.data,
    config.backbone.toLowerCase() + (config.alpha !== null ? `-a${config.alpha}` : ""),
    config.split === "source" ? "loso" : `lesion${config.folds}`,
    `e${config.epochs}` + (config.fineTuneEpochs ? `-ft${config.fineTuneEpochs}` : ""),
    `s${config.seed}`,
    ...(config.target === "diagnosis" ? ["dx"] : []),
    ...(config.colourConstancy === "shades-of-gray" ? ["sog"] : []),
    computeRunConfigHash(config),
  ];
  return parts.join("-").replace(/[^A-Za-z0-9._-]/g, "_");
}

/** The config block of a runs/<run>.json (new or old format) as far as identity needs it. */
type RecordedRunConfig = Pick<
  ExperimentRunSummary["config"],
  | "dataDir"
  | "backbone"
  | "alpha"
  | "epochs"
  | "fineTuneEpochs"
  | "unfreezeBlocks"
  | "seed"
  | "split"
  | "folds"
  | "head"
  | "targetSensitivity"
> & { target?: HeadTarget; colourConstancy?: ColourConstancy };

/**
 * The identity of a run from the config recorded in its runs/<run>.json; runs written before
 * the target option have none (they trained on the label: "malignant").
 *
 * @example computeRunConfigHash(runIdentityFromRecordedConfig(summary.config))
 */
export function runIdentityFromRecordedConfig(config: RecordedRunConfig): RunIdentityConfig {
  return {
    data: path.basename(config.dataDir),
    backbone: config.backbone,
    alpha: config.alpha ?? null,
    epochs: config.epochs,
    fineTuneEpochs: config.fineTuneEpochs,
    unfreezeBlocks: config.unfreezeBlocks,
    seed: config.seed,
    split: config.split,
    folds: config.split === "source" ? null : config.folds,
    head: config.head,
    targetSensitivity: config.targetSensitivity,
    target: config.target ?? "malignant",
    colourConstancy: config.colourConstancy ?? "none",
  };
}

/**
 * Refuses (ExperimentConfigError) to reuse `runName` when runs/<run>.json,
 * models/<run>/metadata.json or an interrupted run's checkpoint state
 * (out/checkpoints/<run>/experiment.json) there was written by a different configuration, so a
 * run never deletes or replaces another configuration's logs, model, checkpoints and record (this
 * only bites with an explicit runName: default names carry the config hash). Unreadable files
 * count as foreign.
 *
 * @example assertRunNameHoldsSameConfig({ runJsonPath, modelDir, checkpointStateFile, runName, configHash: "1a2b3c4d" })
 */
export function assertRunNameHoldsSameConfig(where: {
  runJsonPath: string;
  modelDir: string;
  /** experiment.json of the run's checkpoint store (ExperimentCheckpoints.stateFile), if any. */
  checkpointStateFile?: string;
  runName: string;
  configHash: string;
}): void {
  const { runJsonPath, modelDir, checkpointStateFile, runName, configHash } = where;
  const refuse = (file: string, found: string) => {
    throw new ExperimentConfigError(
      `runName ${JSON.stringify(runName)}: ${file} belongs to ${found}, expected configuration ${configHash}; ` +
        `pass another runName (or leave it out: default names carry the config hash), or delete that run's files first`,
    );
  };
  if (fs.existsSync(runJsonPath)) {
    let recorded: string;
    try {
      const run = JSON.parse(fs.readFileSync(runJsonPath, "utf8")) as {
        configHash?: string;
        config?: RecordedRunConfig;
      };
      recorded =
        run.configHash ??
        (run.config ? computeRunConfigHash(runIdentityFromRecordedConfig(run.config)) : "no recorded config");
    } catch (err) {
      recorded = `an unreadable file (${err instanceof Error ? err.message : String(err)})`;
    }
    if (recorded !== configHash)
      refuse(runJsonPath, /^[0-9a-f]{8}$/.test(recorded) ? `configuration ${recorded}` : recorded);
  }
  const metadataPath = path.join(modelDir, "metadata.json");
  if (fs.existsSync(metadataPath)) {
    let recorded: unknown;
    try {
      recorded = (JSON.parse(fs.readFileSync(metadataPath, "utf8")) as { notes?: Record<string, unknown> }).notes
        ?.configHash;
    } catch {
      recorded = "unreadable";
    }
    // Models exported before the hash existed carry none: the run JSON check above covers them.
    if (recorded !== undefined && recorded !== configHash) refuse(metadataPath, `configuration ${String(recorded)}`);
  }
  if (checkpointStateFile && fs.existsSync(checkpointStateFile)) {
    let recorded: unknown;
    try {
      recorded = (JSON.parse(fs.readFileSync(checkpointStateFile, "utf8")) as { configHash?: unknown }).configHash;
    } catch {
      recorded = "unreadable";
    }
    // Checkpoints written before the hash existed carry none: resume compares their options key by key.
    if (recorded !== undefined && recorded !== configHash) {
      refuse(checkpointStateFile, `an interrupted run of configuration ${String(recorded)}`);
    }
  }
}

/**
 * sha256 (hex) of the sorted lines "imageId<TAB>label<TAB>file size in bytes": a cheap
 * fingerprint that changes when an image is added, removed, relabelled or replaced by a
 * different-sized file.
 *
 * @example computeDataFingerprint(dataset.records) // "3f1c…" (64 hex digits)
 */
export function computeDataFingerprint(records: readonly LesionRecord[]): string {
  const lines = records.map((r) => {
    let bytes = -1;
    try {
      bytes = fs.statSync(r.imagePath).size;
    } catch {
      // A missing file still changes the fingerprint (size -1) rather than failing the run.
    }
    return `${r.imageId}\t${r.label}\t${bytes}`;
  });
  lines.sort();
  return crypto.createHash("sha256").update(lines.join("\n")).digest("hex");
}
