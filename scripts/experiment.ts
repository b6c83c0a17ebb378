// npm run experiment -- --data <dir> --backbone <name or ensemble a+b+c> [options]; `--help` lists them.
// Cross-validates a head on frozen backbone features, writes logs/<run>/ (TensorBoard, hparams
// session), runs/<run>.json and models/<run>/ (triage model trained on all data).
import fs from "node:fs";
import {
  BACKBONE_NAMES,
  COLOUR_CONSTANCY_METHODS,
  DEFAULT_RECIPE_RULE,
  DEFAULT_TRANSFER_RECIPE,
  explainRecipeWeightsError,
  resolveExperimentRecipe,
  type ColourConstancy,
  defineCli,
  DEFAULT_HEAD_CONFIG,
  HEAD_TARGETS,
  MelanomaLabError,
  parseCommandLineOrExit,
  runExperiment,
  EXPERIMENT_SPLITS,
} from "../lib/index.js";

const cli = defineCli({
  name: "experiment",
  usage: "npm run experiment --",
  summary:
    "Cross-validates a head on frozen backbone features (lesion-grouped k-fold or leave-one-source-out) and writes " +
    "logs/<run>/ (TensorBoard + hparams), runs/<run>.json and models/<run>/ (triage model trained on all data).",
  examples: [
    "MELANOMA_LAB_WEIGHTS_DIR=../shared/weights npm run experiment -- --data ../shared/data/ham10000-dev --external ../shared/data/isic2020-ext",
    "npm run experiment -- --data ../shared/data/ham10000-dev --backbone mobilenet_v2 --folds 5",
    "npm run experiment -- --data ../shared/data/ham10000-dev --backbone mobilenet_v2+inception_v3+mobilenet_v1@1.0 --target diagnosis --hidden-units 0",
    "npm run experiment -- --data ../shared/data/ham10000-dev --backbone mobilenet_v2_imagenet --external ../shared/data/isic2020-ext",
  ],
  options: {
    data: {
      type: "string",
      required: true,
      valueName: "<dir>",
      description: "data set folder (labels.csv + images/, or train/benign + train/malignant)",
    },
    backbone: {
      type: "string",
      valueName: "<name|a+b+c>",
      description:
        `${BACKBONE_NAMES.join(", ")}, or an ensemble such as mobilenet_v2+inception_v3+mobilenet_v1@1.0 ` +
        `(default: the recipe ${DEFAULT_TRANSFER_RECIPE.name}'s ${DEFAULT_TRANSFER_RECIPE.backboneName}, see the notes)`,
    },
    "colour-constancy": {
      type: "string",
      choices: COLOUR_CONSTANCY_METHODS,
      description: `colour constancy before the backbone, in training and in the exported model's scoring (default none; ${DEFAULT_TRANSFER_RECIPE.colourConstancy} without --backbone)`,
    },
    epochs: {
      type: "integer",
      min: 1,
      description: `head training epochs per fold (default 30; ${DEFAULT_TRANSFER_RECIPE.epochs} without --backbone)`,
    },
    "fine-tune": {
      type: "integer",
      min: 0,
      default: 0,
      description: "epochs of fine-tuning the backbone's top blocks after the head (0: none)",
    },
    "unfreeze-blocks": { type: "integer", min: 1, default: 2, description: "top blocks unfrozen when fine-tuning" },
    seed: { type: "integer", min: 0, default: 42, description: "seed of folds, initialisation and shuffling" },
    folds: { type: "integer", min: 2, default: 5, description: "folds of the lesion-grouped split" },
    split: {
      type: "string",
      choices: EXPERIMENT_SPLITS,
      default: "lesion",
      description: "lesion: grouped stratified k-fold; source: leave one clinic (ham_dataset) out",
    },
    target: {
      type: "string",
      choices: HEAD_TARGETS,
      description:
        "what the heads learn (diagnosis: softmax over the diagnoses, P(malignant) = sum of the malignant ones) " +
        `(default malignant; ${DEFAULT_TRANSFER_RECIPE.target} without --backbone)`,
    },
    alpha: {
      type: "number",
      min: 0,
      minExclusive: true,
      description: "MobileNet width multiplier (single backbone only, e.g. 0.25 or 1.0)",
    },
    "hidden-units": {
      type: "integer",
      min: 0,
      description: `hidden layer width of the head, 0: logistic regression (default ${DEFAULT_HEAD_CONFIG.hiddenUnits}; ${DEFAULT_TRANSFER_RECIPE.head.hiddenUnits} without --backbone)`,
    },
    dropout: {
      type: "number",
      min: 0,
      max: 1,
      maxExclusive: true,
      description: `dropout rate of the head (default ${DEFAULT_HEAD_CONFIG.dropoutRate}; ${DEFAULT_TRANSFER_RECIPE.head.dropoutRate} without --backbone)`,
    },
    l2: {
      type: "number",
      min: 0,
      description: `L2 weight penalty of the head (default ${DEFAULT_HEAD_CONFIG.l2}; ${DEFAULT_TRANSFER_RECIPE.head.l2} without --backbone)`,
    },
    "learning-rate": {
      type: "number",
      min: 0,
      minExclusive: true,
      description: `Adam learning rate of the head, fine-tuning uses a tenth (default ${DEFAULT_HEAD_CONFIG.learningRate})`,
    },
    external: {
      type: "string",
      valueName: "<dir>",
      description:
        "second data set (labels.csv + images/, e.g. ../shared/data/isic2020-ext) that the final model scores for the " +
        "transfer report: ROC AUC with a patient-grouped bootstrap CI, and the shipped threshold's sensitivity/specificity",
    },
    "skip-loso": {
      type: "boolean",
      description:
        "with --split lesion: skip the transfer report's leave-one-source-out folds (they about double the head-training time)",
    },
    run: { type: "string", valueName: "<name>", description: "run name (default: from data, backbone and options)" },
    progress: {
      type: "string",
      choices: ["bar", "lines", "quiet"],
      description: "bar: redrawn bars with ETA; lines: one line per step (default: bar on a terminal, else lines)",
    },
    "output-root": {
      type: "string",
      valueName: "<dir>",
      description: "folder that receives logs/, runs/, models/ (default: the project root)",
    },
    resume: { type: "boolean", description: "continue a killed run with the same options from out/checkpoints/<run>/" },
  },
  notes: [
    `Without --backbone the run uses the default recipe ${DEFAULT_TRANSFER_RECIPE.name} (${DEFAULT_TRANSFER_RECIPE.backboneName}, ` +
      `${DEFAULT_TRANSFER_RECIPE.colourConstancy}, logistic ${DEFAULT_TRANSFER_RECIPE.target} head, L2 ${DEFAULT_TRANSFER_RECIPE.head.l2}, ` +
      `${DEFAULT_TRANSFER_RECIPE.epochs} epochs), chosen by the ${DEFAULT_RECIPE_RULE} (README). Its weights come from ` +
      `MELANOMA_LAB_WEIGHTS_DIR (e.g. ../shared/weights) or a download; offline without them pass --backbone ${DEFAULT_TRANSFER_RECIPE.fallbackBackboneName}. ` +
      "Flags given explicitly win over the recipe's settings.",
    "Every run also reports leave-one-source-out ROC AUC per source (worst first) and the shipped threshold's " +
      "sensitivity/specificity on each left-out source, when the data has at least two sources (ham_dataset).",
    "MELANOMA_LAB_WASM_THREADS (default auto here) sets the wasm threads; see the README.",
  ],
});

async function main(): Promise<void> {
  const { values: args } = parseCommandLineOrExit(cli, process.argv.slice(2));
  // Checked before any backbone work, in the one-line form of the other flag errors.
  if (args.external !== undefined && !fs.existsSync(args.external)) {
    console.error(`experiment: --external folder ${args.external} does not exist; expected labels.csv + images/`);
    process.exit(2);
  }
  // Multi-threaded wasm when the machine is idle (1.8–2× here); set the variable to override.
  process.env.MELANOMA_LAB_WASM_THREADS ??= "auto";
  const recipe = resolveExperimentRecipe({
    backboneName: args.backbone,
    colourConstancy: args["colour-constancy"] as ColourConstancy | undefined,
    target: args.target as (typeof HEAD_TARGETS)[number] | undefined,
    epochs: args.epochs,
    head: {
      hiddenUnits: args["hidden-units"],
      dropoutRate: args.dropout,
      l2: args.l2,
      learningRate: args["learning-rate"],
    },
  });
  if (recipe.recipe !== undefined)
    console.log(`default recipe ${recipe.recipe.name} (no --backbone given): ${DEFAULT_RECIPE_RULE}`);
  const fallbackFlag = `--backbone ${DEFAULT_TRANSFER_RECIPE.fallbackBackboneName}`;
  await runExperiment({
    dataDir: args.data,
    backboneName: recipe.backboneName,
    colourConstancy: recipe.colourConstancy,
    alpha: args.alpha,
    epochs: recipe.epochs,
    fineTuneEpochs: args["fine-tune"],
    unfreezeBlocks: args["unfreeze-blocks"],
    seed: args.seed,
    folds: args.folds,
    split: args.split as (typeof EXPERIMENT_SPLITS)[number],
    target: recipe.target,
    runName: args.run,
    head: recipe.head,
    progress: args.progress as "bar" | "lines" | "quiet" | undefined,
    outputRoot: args["output-root"],
    resume: args.resume,
    externalDataDir: args.external,
    leaveOneSourceOut: args["skip-loso"] !== true,
  }).catch((err: unknown) => {
    throw recipe.recipe !== undefined ? explainRecipeWeightsError(err, recipe.recipe, fallbackFlag) : err;
  });
}

main().catch((err) => {
  console.error(err instanceof MelanomaLabError ? `error: ${err.message}` : err);
  process.exit(1);
});
