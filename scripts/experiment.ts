// npm run experiment -- --data <dir> --backbone <name or ensemble a+b+c> [options]; `--help` lists them.
// Cross-validates a head on frozen backbone features, writes logs/<run>/ (TensorBoard, hparams
// session), runs/<run>.json and models/<run>/ (triage model trained on all data).
import fs from "node:fs";
import {
  BACKBONE_NAMES,
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
      required: true,
      valueName: "<name|a+b+c>",
      description: `${BACKBONE_NAMES.join(", ")}, or an ensemble such as mobilenet_v2+inception_v3+mobilenet_v1@1.0`,
    },
    epochs: { type: "integer", min: 1, default: 30, description: "head training epochs per fold" },
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
      default: "malignant",
      description:
        "what the heads learn (diagnosis: softmax over the diagnoses, P(malignant) = sum of the malignant ones)",
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
      default: DEFAULT_HEAD_CONFIG.hiddenUnits,
      description: "hidden layer width of the head (0: logistic regression)",
    },
    dropout: {
      type: "number",
      min: 0,
      max: 1,
      maxExclusive: true,
      default: DEFAULT_HEAD_CONFIG.dropoutRate,
      description: "dropout rate of the head",
    },
    l2: { type: "number", min: 0, default: DEFAULT_HEAD_CONFIG.l2, description: "L2 weight penalty of the head" },
    "learning-rate": {
      type: "number",
      min: 0,
      minExclusive: true,
      default: DEFAULT_HEAD_CONFIG.learningRate,
      description: "Adam learning rate of the head (fine-tuning uses a tenth)",
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
  await runExperiment({
    dataDir: args.data,
    backboneName: args.backbone,
    alpha: args.alpha,
    epochs: args.epochs,
    fineTuneEpochs: args["fine-tune"],
    unfreezeBlocks: args["unfreeze-blocks"],
    seed: args.seed,
    folds: args.folds,
    split: args.split as (typeof EXPERIMENT_SPLITS)[number],
    target: args.target as (typeof HEAD_TARGETS)[number],
    runName: args.run,
    head: {
      hiddenUnits: args["hidden-units"],
      dropoutRate: args.dropout,
      l2: args.l2,
      learningRate: args["learning-rate"],
    },
    progress: args.progress as "bar" | "lines" | "quiet" | undefined,
    outputRoot: args["output-root"],
    resume: args.resume,
    externalDataDir: args.external,
    leaveOneSourceOut: args["skip-loso"] !== true,
  });
}

main().catch((err) => {
  console.error(err instanceof MelanomaLabError ? `error: ${err.message}` : err);
  process.exit(1);
});
