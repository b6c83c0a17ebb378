import fs from "node:fs";
import path from "node:path";
import { parseColourConstancy, type ColourConstancy } from "../data/augment.js";
import { HEAD_TARGETS, type HeadTarget } from "../experiments/crossValidate.js";
import { DEFAULT_TRANSFER_RECIPE, type TransferRecipe } from "../experiments/defaultRecipe.js";
import { MelanomaLabError } from "../util/errors.js";
import { findProjectRoot, resolveFeatureCacheDir } from "../util/paths.js";

/** Thrown for a configuration value that cannot be used (bad number, bad run name, …). */
export class ConfigError extends MelanomaLabError {}

/**
 * Everything a notebook run needs, resolved from code defaults and `MELANOMA_LAB_*` variables
 * (the demo and tests set those; a user in `npm run notebook` edits the config cell instead).
 */
export interface RunConfig {
  /** Folder name under logs/, models/, out/reports/ and out/runs/. */
  runName: string;
  /** Dataset folder (labels.csv + images/, or folder per class). */
  dataDir: string;
  /** True when dataDir is the generated synthetic default (generated when absent). */
  useSyntheticData: boolean;
  /** Images to generate for the synthetic default. */
  syntheticImageCount: number;
  backboneName: string;
  /**
   * The transfer recipe whose settings filled backbone, colour constancy and head
   * (`MELANOMA_LAB_RECIPE`, set by `npm run demo -- --data <dir>` without --backbone); undefined = none.
   */
  recipeName?: string;
  /** Colour constancy before the backbone, in feature extraction and in the exported model's scoring. */
  colourConstancy: ColourConstancy;
  /** What the head learns: the label, or the diagnoses summed to P(malignant) (needs a diagnosis per image). */
  headTarget: HeadTarget;
  /** Head hidden units (0: logistic regression); undefined = trainHead's default. */
  headHiddenUnits?: number;
  /** Head dropout rate; undefined = trainHead's default. */
  headDropoutRate?: number;
  /** Head L2 penalty; undefined = trainHead's default. */
  headL2?: number;
  seed: number;
  /** Fraction of images held out for validation (early stopping, threshold choice). */
  validationFraction: number;
  /** Fraction of images held out as the untouched test set that the reported metrics come from. */
  testFraction: number;
  epochs: number;
  batchSize: number;
  learningRate: number;
  /** Sensitivity the triage threshold must reach on validation (0..1). */
  targetSensitivity: number;
  /** Top backbone blocks unfrozen in the second training stage (notebook 3; MobileNet v1/v2 only). */
  fineTuneBlocks: number;
  /** Epochs of the second stage (fine-tuning the top blocks with the head); 0 skips it. */
  fineTuneEpochs: number;
  /** Fine-tune on the 8 flips/quarter turns of each training image (8× the activation cache). */
  fineTuneAugment: boolean;
  /** Small/fast configuration for tests (`MELANOMA_LAB_SMALL=1`). */
  small: boolean;
  /**
   * A second data set (labels.csv + images/, e.g. ../shared/data/isic2020-ext) that notebook 4's
   * transfer report scores with the trained model (`MELANOMA_LAB_EXTERNAL`); undefined = none.
   */
  externalDataDir?: string;
  paths: {
    root: string;
    /** out/runs/<run>: split, features and head passed between notebooks. */
    runDir: string;
    /** logs/<run>: TensorBoard event files (train/ and validation/). */
    logDir: string;
    /** out/reports/<run>: report.html. */
    reportDir: string;
    /** models/<run>: exported model.json + weights + metadata.json. */
    modelDir: string;
    /** Feature cache shared by runs ({@link resolveFeatureCacheDir}: data/cache/features by default). */
    featureCacheDir: string;
    /** out/runs/<run>/head: the trained dense head (model.json + weights.bin). */
    headDir: string;
    /** out/runs/<run>/fine-tuned-head: fine-tuned top blocks + head (cut activation → probability), when chosen. */
    fineTunedHeadDir: string;
    /** Activation cache of fine-tuning (`activations` beside the feature cache). */
    activationCacheDir: string;
  };
}

/** Code defaults a notebook's config cell may override. */
export type RunConfigDefaults = Partial<Omit<RunConfig, "paths">>;

function parseColourConstancyOrThrow(raw: string): ColourConstancy {
  try {
    return parseColourConstancy(raw);
  } catch (err) {
    throw new ConfigError(`MELANOMA_LAB_COLOUR_CONSTANCY: ${(err as Error).message}`);
  }
}

function envNumber(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === "") return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value))
    throw new ConfigError(`${name}=${JSON.stringify(raw)} is not a number (expected e.g. ${fallback})`);
  return value;
}

/**
 * Whether a data folder is one the synthetic generator owns (`data/synthetic` or
 * `data/synthetic-*` under the project root): generated on first use instead of required to exist.
 *
 * @example isSyntheticDataDir("data/synthetic-small") // true
 */
export function isSyntheticDataDir(dataDir: string): boolean {
  const data = path.join(findProjectRoot(), "data");
  const resolved = path.resolve(findProjectRoot(), dataDir);
  return resolved === path.join(data, "synthetic") || resolved.startsWith(path.join(data, "synthetic-"));
}

/** Recipes `MELANOMA_LAB_RECIPE` may name (the default recipe of runs/recipes-transfer.md). */
export const RUN_RECIPES: readonly TransferRecipe[] = [DEFAULT_TRANSFER_RECIPE];

function resolveRunRecipe(): TransferRecipe | undefined {
  const raw = process.env.MELANOMA_LAB_RECIPE;
  if (raw === undefined || raw === "") return undefined;
  const recipe = RUN_RECIPES.find((r) => r.name === raw);
  if (recipe === undefined)
    throw new ConfigError(
      `MELANOMA_LAB_RECIPE=${JSON.stringify(raw)} is not a known recipe; expected one of ${RUN_RECIPES.map((r) => r.name).join(", ")}`,
    );
  return recipe;
}

/**
 * The recipe `npm run demo` runs: the default transfer recipe ({@link DEFAULT_TRANSFER_RECIPE})
 * for real data (`dataDir` given and not the synthetic default) when no backbone was chosen;
 * undefined otherwise, so the synthetic default keeps the bundled nsfwjs MobileNetV2 and runs
 * offline.
 *
 * @example selectDemoRecipe("../shared/data/ham10000-dev", undefined)?.name // "imagenet-sog-dx"
 * @example selectDemoRecipe(undefined, undefined) // undefined (synthetic default)
 */
export function selectDemoRecipe(
  dataDir: string | undefined,
  backboneName: string | undefined,
): TransferRecipe | undefined {
  if (dataDir === undefined || dataDir === "" || isSyntheticDataDir(dataDir)) return undefined;
  if (backboneName !== undefined && backboneName !== "") return undefined;
  return DEFAULT_TRANSFER_RECIPE;
}

/**
 * Resolves the run configuration. Environment variables win over `defaults` so that
 * `npm run demo -- --data <dir>` drives unchanged notebooks:
 * MELANOMA_LAB_DATA, MELANOMA_LAB_RUN, MELANOMA_LAB_BACKBONE, MELANOMA_LAB_EPOCHS,
 * MELANOMA_LAB_SEED, MELANOMA_LAB_SMALL=1 (small synthetic set, few epochs),
 * MELANOMA_LAB_FINE_TUNE_BLOCKS, MELANOMA_LAB_FINE_TUNE_EPOCHS, MELANOMA_LAB_EXTERNAL (a second
 * data set for notebook 4's transfer report; must exist), MELANOMA_LAB_RECIPE (a recipe of
 * {@link RUN_RECIPES}: its backbone, colour constancy and head become the defaults),
 * MELANOMA_LAB_COLOUR_CONSTANCY (none, shades-of-gray), MELANOMA_LAB_HEAD_TARGET (malignant,
 * diagnosis). With colour constancy, fine-tuning is off (it reads images without it).
 *
 * @example const config = resolveRunConfig({ seed: 42, epochs: 40 });
 */
export function resolveRunConfig(defaults: RunConfigDefaults = {}): RunConfig {
  const root = findProjectRoot();
  const small = process.env.MELANOMA_LAB_SMALL === "1" || defaults.small === true;
  const syntheticDir = path.join(root, "data", "synthetic");
  const dataDir = path.resolve(root, process.env.MELANOMA_LAB_DATA || defaults.dataDir || syntheticDir);
  const runName = process.env.MELANOMA_LAB_RUN || defaults.runName || "default";
  if (!/^[A-Za-z0-9._-]+$/.test(runName)) {
    throw new ConfigError(
      `run name ${JSON.stringify(runName)} may use only letters, digits, '.', '_' and '-' (e.g. "ham10000-mobilenet_v2")`,
    );
  }
  const useSyntheticData = isSyntheticDataDir(dataDir);
  const externalRaw = process.env.MELANOMA_LAB_EXTERNAL || defaults.externalDataDir;
  const externalDataDir = externalRaw ? path.resolve(root, externalRaw) : undefined;
  if (externalDataDir !== undefined && !fs.existsSync(externalDataDir)) {
    throw new ConfigError(
      `external data set ${externalDataDir} (MELANOMA_LAB_EXTERNAL) does not exist; expected labels.csv + images/`,
    );
  }
  const recipe = resolveRunRecipe();
  const colourConstancy = parseColourConstancyOrThrow(
    process.env.MELANOMA_LAB_COLOUR_CONSTANCY || defaults.colourConstancy || recipe?.colourConstancy || "none",
  );
  const headTargetRaw = process.env.MELANOMA_LAB_HEAD_TARGET || defaults.headTarget || recipe?.target || "malignant";
  const headTarget = HEAD_TARGETS.find((t) => t === headTargetRaw);
  if (headTarget === undefined)
    throw new ConfigError(
      `head target (MELANOMA_LAB_HEAD_TARGET): received ${JSON.stringify(headTargetRaw)}, expected one of ${HEAD_TARGETS.join(", ")}`,
    );
  const fineTuneEpochsDefault = colourConstancy !== "none" ? 0 : (defaults.fineTuneEpochs ?? 1);
  const config: RunConfig = {
    runName,
    dataDir,
    useSyntheticData,
    syntheticImageCount: small ? 96 : (defaults.syntheticImageCount ?? 480),
    backboneName: process.env.MELANOMA_LAB_BACKBONE || recipe?.backboneName || defaults.backboneName || "mobilenet_v2",
    ...(recipe !== undefined ? { recipeName: recipe.name } : {}),
    colourConstancy,
    headTarget,
    headHiddenUnits: recipe?.head.hiddenUnits ?? defaults.headHiddenUnits,
    headDropoutRate: recipe?.head.dropoutRate ?? defaults.headDropoutRate,
    headL2: recipe?.head.l2 ?? defaults.headL2,
    seed: envNumber("MELANOMA_LAB_SEED", defaults.seed ?? 42),
    validationFraction: defaults.validationFraction ?? 0.2,
    testFraction: defaults.testFraction ?? 0.2,
    epochs: envNumber("MELANOMA_LAB_EPOCHS", small ? 5 : (defaults.epochs ?? 40)),
    batchSize: defaults.batchSize ?? 32,
    learningRate: defaults.learningRate ?? 1e-3,
    targetSensitivity: defaults.targetSensitivity ?? 0.9,
    fineTuneBlocks: envNumber("MELANOMA_LAB_FINE_TUNE_BLOCKS", defaults.fineTuneBlocks ?? 1),
    fineTuneEpochs: envNumber(
      "MELANOMA_LAB_FINE_TUNE_EPOCHS",
      small ? Math.min(1, fineTuneEpochsDefault) : fineTuneEpochsDefault,
    ),
    fineTuneAugment: defaults.fineTuneAugment ?? false,
    small,
    externalDataDir,
    paths: {
      root,
      runDir: path.join(root, "out", "runs", runName),
      logDir: path.join(root, "logs", runName),
      reportDir: path.join(root, "out", "reports", runName),
      modelDir: path.join(root, "models", runName),
      featureCacheDir: resolveFeatureCacheDir(),
      headDir: path.join(root, "out", "runs", runName, "head"),
      fineTunedHeadDir: path.join(root, "out", "runs", runName, "fine-tuned-head"),
      activationCacheDir: path.join(path.dirname(resolveFeatureCacheDir()), "activations"),
    },
  };
  if (!(
    config.validationFraction > 0 &&
    config.testFraction > 0 &&
    config.validationFraction + config.testFraction < 1
  )) {
    throw new ConfigError(
      `validationFraction ${config.validationFraction} and testFraction ${config.testFraction} must be positive and sum to less than 1 (e.g. 0.2 and 0.2)`,
    );
  }
  for (const [name, value, min] of [
    ["epochs (MELANOMA_LAB_EPOCHS)", config.epochs, 1],
    ["seed (MELANOMA_LAB_SEED)", config.seed, 0],
    ["fineTuneBlocks", config.fineTuneBlocks, 1],
    ["fineTuneEpochs", config.fineTuneEpochs, 0],
  ] as const) {
    if (!(Number.isInteger(value) && value >= min))
      throw new ConfigError(`${name}: received ${value}, expected an integer ≥ ${min} (e.g. 1)`);
  }
  if (config.colourConstancy !== "none" && config.fineTuneEpochs > 0) {
    throw new ConfigError(
      `fineTuneEpochs (MELANOMA_LAB_FINE_TUNE_EPOCHS): received ${config.fineTuneEpochs} with colour constancy ${config.colourConstancy}; expected 0 (fine-tuning reads images without it)`,
    );
  }
  if (!(config.targetSensitivity > 0 && config.targetSensitivity <= 1)) {
    throw new ConfigError(`targetSensitivity must be in (0, 1]; received ${config.targetSensitivity} (e.g. 0.9)`);
  }
  return config;
}

/**
 * Writes a JSON artifact into the run folder (out/runs/<run>/<name>.json) for the next notebook.
 *
 * @example saveRunArtifact(config, "split", { train, validation });
 */
export function saveRunArtifact(config: RunConfig, name: string, value: unknown): string {
  fs.mkdirSync(config.paths.runDir, { recursive: true });
  const file = path.join(config.paths.runDir, `${name}.json`);
  const tmp = `${file}.tmp`;
  fs.writeFileSync(tmp, JSON.stringify(value));
  // Rename is atomic: a killed notebook never leaves a half-written artifact behind.
  fs.renameSync(tmp, file);
  return file;
}

/**
 * Reads a JSON artifact written by an earlier notebook; the error says which notebook to run.
 *
 * @example const split = loadRunArtifact<{ train: LesionRecord[] }>(config, "split", "01-data");
 */
export function loadRunArtifact<T>(config: RunConfig, name: string, producedBy: string): T {
  const file = path.join(config.paths.runDir, `${name}.json`);
  if (!fs.existsSync(file)) {
    throw new ConfigError(
      `${file} is missing: run notebook ${producedBy} first for run ${JSON.stringify(config.runName)}`,
    );
  }
  return JSON.parse(fs.readFileSync(file, "utf8")) as T;
}

/**
 * A short multi-line description of a run configuration for a notebook's config cell.
 *
 * @example console.log(describeRunConfig(config))
 */
export function describeRunConfig(config: RunConfig): string {
  const rel = (p: string) => path.relative(config.paths.root, p) || ".";
  return [
    `run ${config.runName}${config.small ? " (small configuration)" : ""}`,
    `data ${rel(config.dataDir)}${config.useSyntheticData ? ` (synthetic, ${config.syntheticImageCount} images)` : ""}`,
    ...(config.recipeName !== undefined
      ? [`recipe ${config.recipeName} (the default of the real-data demo; README)`]
      : []),
    `colour constancy ${config.colourConstancy}, head target ${config.headTarget}` +
      (config.headHiddenUnits !== undefined ? `, head hidden units ${config.headHiddenUnits}` : "") +
      (config.headL2 !== undefined ? `, L2 ${config.headL2}` : ""),
    `backbone ${config.backboneName}, seed ${config.seed}, validation fraction ${config.validationFraction}, test fraction ${config.testFraction}`,
    `epochs ${config.epochs}, batch ${config.batchSize}, learning rate ${config.learningRate}, target sensitivity ${config.targetSensitivity}`,
    `fine-tuning ${config.fineTuneEpochs > 0 ? `top ${config.fineTuneBlocks} block(s) for ${config.fineTuneEpochs} epoch(s)${config.fineTuneAugment ? " with flips/rotations" : ""}` : "off (fineTuneEpochs 0)"}`,
    `logs ${rel(config.paths.logDir)}, model ${rel(config.paths.modelDir)}, report ${rel(config.paths.reportDir)}`,
    ...(config.externalDataDir ? [`external set ${rel(config.externalDataDir)} (transfer report, notebook 4)`] : []),
  ].join("\n");
}
