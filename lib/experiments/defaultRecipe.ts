import type { ColourConstancy } from "../data/augment.js";
import { WeightsDownloadError } from "../models/mobilenetV1.js";
import { MelanomaLabError } from "../util/errors.js";
import type { HeadConfig, HeadTarget } from "./crossValidate.js";

/** Thrown when a recipe's backbone weights are missing; the message says what to set or pass instead. */
export class RecipeWeightsMissingError extends MelanomaLabError {}

/** A transfer recipe's transfer-report figures, as runs/recipes-transfer.json records them. */
export interface RecipeTransferFigures {
  /** Recipe name in runs/recipes-transfer.{md,json}, e.g. "imagenet-sog-dx". */
  recipe: string;
  /** Lowest leave-one-source-out ROC AUC over the HAM sources. */
  losoMinRocAuc: number;
  /** ROC AUC on the external set (isic2020-ext) of the head trained on all HAM images. */
  externalRocAuc: number;
  /** Pooled out-of-fold ROC AUC of the lesion-grouped 5-fold CV on HAM (the tie-breaker only). */
  cvPooledRocAuc: number;
}

/**
 * A recipe the experiment and the demo's real-data path can run: backbone, colour constancy and
 * head, with the figures it was chosen on.
 */
export interface TransferRecipe {
  name: string;
  /** Backbone name (see BACKBONE_NAMES). */
  backboneName: string;
  colourConstancy: ColourConstancy;
  target: HeadTarget;
  /** Head settings (epochs apart: the experiment uses `epochs`, the notebooks their own). */
  head: Pick<HeadConfig, "hiddenUnits" | "dropoutRate" | "l2" | "learningRate" | "batchSize">;
  /** Head epochs of the measured recipe (runs/recipes-transfer: 20). */
  epochs: number;
  /** What to pass instead when the backbone's weights cannot be had (bundled with nsfwjs, offline). */
  fallbackBackboneName: string;
  /** The figures of runs/recipes-transfer.md the choice was made on (95% CIs over patients). */
  measured: {
    losoMinRocAuc: number;
    losoWorstSource: string;
    externalRocAuc: { estimate: number; lower: number; upper: number };
    cvPooledRocAuc: number;
  };
}

/**
 * How the default recipe is chosen, stated before looking at the winner: among the recipes of
 * runs/recipes-transfer.json whose cold dev-set pipeline fits 15 minutes on 2 cores, the one
 * with the highest min(worst-source LOSO AUC, external AUC); pooled CV AUC breaks ties only.
 */
export const DEFAULT_RECIPE_RULE =
  "highest min(worst-source leave-one-source-out AUC, isic2020-ext AUC) among the recipes of " +
  "runs/recipes-transfer.json whose cold dev-set pipeline fits 15 minutes on 2 cores; pooled CV AUC breaks ties";

/**
 * The recipe {@link DEFAULT_RECIPE_RULE} picks from runs/recipes-transfer.json (measured
 * 2026-12-03, seed 42): ImageNet MobileNetV2 (ONNX), Shades-of-Gray colour constancy in training
 * and scoring, a logistic (L2 1e-3) head over the 7 HAM diagnoses summed to P(malignant).
 * Worst-source LOSO 0.640 (rosendahl), external 0.606 [0.489, 0.712]: min 0.606, next best
 * imagenet+nsfw-v2 at 0.591. No transfer goal (0.75) is reached.
 */
export const DEFAULT_TRANSFER_RECIPE: TransferRecipe = {
  name: "imagenet-sog-dx",
  backboneName: "mobilenet_v2_imagenet",
  colourConstancy: "shades-of-gray",
  target: "diagnosis",
  head: { hiddenUnits: 0, dropoutRate: 0, l2: 1e-3, learningRate: 1e-3, batchSize: 32 },
  epochs: 20,
  fallbackBackboneName: "mobilenet_v2",
  measured: {
    losoMinRocAuc: 0.64,
    losoWorstSource: "rosendahl",
    externalRocAuc: { estimate: 0.606, lower: 0.489, upper: 0.712 },
    cvPooledRocAuc: 0.864,
  },
};

/**
 * Applies {@link DEFAULT_RECIPE_RULE} to measured recipes: the one with the highest
 * min(losoMinRocAuc, externalRocAuc), ties broken by cvPooledRocAuc; recipes named in
 * `overBudget` (cold pipeline over 15 minutes) are left out. Throws {@link MelanomaLabError}
 * when none is left.
 *
 * @example chooseTransferRecipe([{ recipe: "a", losoMinRocAuc: 0.6, externalRocAuc: 0.7, cvPooledRocAuc: 0.8 }, { recipe: "b", losoMinRocAuc: 0.65, externalRocAuc: 0.62, cvPooledRocAuc: 0.9 }]).recipe // "b" (0.62 > 0.60)
 */
export function chooseTransferRecipe(
  rows: readonly RecipeTransferFigures[],
  options: { overBudget?: readonly string[] } = {},
): RecipeTransferFigures {
  const excluded = new Set(options.overBudget ?? []);
  const candidates = rows.filter(
    (r) => !excluded.has(r.recipe) && Number.isFinite(r.losoMinRocAuc) && Number.isFinite(r.externalRocAuc),
  );
  if (candidates.length === 0)
    throw new MelanomaLabError(
      `chooseTransferRecipe: received ${rows.length} recipes, ${excluded.size} over budget; expected at least one with finite LOSO and external AUC`,
    );
  const score = (r: RecipeTransferFigures) => Math.min(r.losoMinRocAuc, r.externalRocAuc);
  return candidates.reduce((best, r) =>
    score(r) > score(best) || (score(r) === score(best) && r.cvPooledRocAuc > best.cvPooledRocAuc) ? r : best,
  );
}

/**
 * The error to show when a recipe's backbone cannot be loaded because its weights are missing
 * (no mirror, no network): a {@link RecipeWeightsMissingError} saying what to set
 * (MELANOMA_LAB_WEIGHTS_DIR) and which flag falls back to the bundled backbone; any other error
 * is returned as it is.
 *
 * @example throw explainRecipeWeightsError(err, DEFAULT_TRANSFER_RECIPE, "--backbone mobilenet_v2");
 */
export function explainRecipeWeightsError(err: unknown, recipe: TransferRecipe, fallbackFlag: string): unknown {
  if (!(err instanceof WeightsDownloadError)) return err;
  return new RecipeWeightsMissingError(
    `the default recipe ${recipe.name} needs the ${recipe.backboneName} weights, which could not be found or downloaded ` +
      `(${err.message}). Set MELANOMA_LAB_WEIGHTS_DIR to a folder holding them (e.g. MELANOMA_LAB_WEIGHTS_DIR=../shared/weights), ` +
      `or pass ${fallbackFlag} to use the ${recipe.fallbackBackboneName} weights bundled with nsfwjs (offline)`,
  );
}

/** What `npm run experiment` was given of the settings a recipe decides (undefined = not given). */
export interface ExperimentRecipeFlags {
  backboneName?: string;
  colourConstancy?: ColourConstancy;
  target?: HeadTarget;
  epochs?: number;
  head?: Partial<TransferRecipe["head"]>;
}

/** The recipe settings of an experiment, after {@link resolveExperimentRecipe}. */
export interface ResolvedExperimentRecipe {
  /** The default recipe, when no backbone was given; undefined otherwise. */
  recipe: TransferRecipe | undefined;
  backboneName: string;
  colourConstancy: ColourConstancy | undefined;
  target: HeadTarget | undefined;
  epochs: number | undefined;
  head: Partial<TransferRecipe["head"]>;
}

/**
 * Fills an experiment's recipe settings: without a backbone, {@link DEFAULT_TRANSFER_RECIPE}
 * (backbone, colour constancy, target, head, epochs), each setting given explicitly still winning;
 * with a backbone, the settings as given (runExperiment's own defaults fill the rest: mlp head,
 * target malignant, no colour constancy, 30 epochs).
 *
 * @example resolveExperimentRecipe({}).backboneName // "mobilenet_v2_imagenet"
 * @example resolveExperimentRecipe({ backboneName: "mobilenet_v2" }).recipe // undefined
 */
export function resolveExperimentRecipe(
  flags: ExperimentRecipeFlags,
  recipe: TransferRecipe = DEFAULT_TRANSFER_RECIPE,
): ResolvedExperimentRecipe {
  const given = Object.fromEntries(Object.entries(flags.head ?? {}).filter(([, v]) => v !== undefined));
  if (flags.backboneName !== undefined)
    return {
      recipe: undefined,
      backboneName: flags.backboneName,
      colourConstancy: flags.colourConstancy,
      target: flags.target,
      epochs: flags.epochs,
      head: given,
    };
  return {
    recipe,
    backboneName: recipe.backboneName,
    colourConstancy: flags.colourConstancy ?? recipe.colourConstancy,
    target: flags.target ?? recipe.target,
    epochs: flags.epochs ?? recipe.epochs,
    head: { ...recipe.head, ...given },
  };
}
