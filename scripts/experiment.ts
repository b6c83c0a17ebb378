// npm run experiment -- --data <dir> --backbone <name or ensemble a+b+c, e.g. mobilenet_v2+inception_v3+mobilenet_v1@1.0> [--epochs N] [--fine-tune N] [--seed S] [--folds K]
//   [--split lesion|source] [--alpha A] [--run NAME] [--unfreeze-blocks N] [--hidden-units N] [--dropout R] [--l2 X] [--progress bar|lines|quiet]
//   [--output-root DIR] [--target malignant|diagnosis] [--resume]
// --target diagnosis trains the heads on the diagnoses (softmax; P(malignant) = sum of the
// malignant ones, the exported model still outputs P(malignant)); needs a diagnosis per image.
// --resume continues a killed run (same options) from out/checkpoints/<run>/: finished folds are
// reused, the interrupted one continues from its last finished epoch, logs/<run> is appended to.
// Cross-validates a head on frozen backbone features, writes logs/<run>/ (TensorBoard, hparams
// session), runs/<run>.json and models/<run>/ (triage model trained on all data).
import { MelanomaLabError, parseCliArgs, CliArgumentError, UnknownNameError } from "../lib/index.js";
import { runExperiment, EXPERIMENT_SPLITS, type ExperimentSplit } from "../lib/experiments/runExperiment.js";
import { HEAD_TARGETS, type HeadTarget } from "../lib/experiments/crossValidate.js";

const USAGE = "npm run experiment -- --data <dir> --backbone mobilenet_v2|inception_v3|mobilenet_v1|a+b+c [--epochs N] [--fine-tune N] [--seed S] [--folds K] [--split lesion|source] [--target malignant|diagnosis] [--resume]";

function numberArg(args: Record<string, string | boolean>, name: string): number | undefined {
  const raw = args[name];
  if (raw === undefined) return undefined;
  const value = Number(raw);
  if (typeof raw !== "string" || raw.trim() === "" || !Number.isFinite(value)) throw new CliArgumentError(`--${name}: received ${JSON.stringify(raw)}, expected a number`);
  return value;
}

async function main(): Promise<void> {
  // Multi-threaded wasm when the machine is idle (1.8–2× here); set the variable to override.
  process.env.MELANOMA_LAB_WASM_THREADS ??= "auto";
  const args = parseCliArgs(process.argv.slice(2), {
    values: ["data", "backbone", "epochs", "fine-tune", "unfreeze-blocks", "seed", "folds", "split", "alpha", "run", "hidden-units", "dropout", "l2", "learning-rate", "progress", "output-root", "target"],
    flags: ["resume"],
  });
  for (const required of ["data", "backbone"]) {
    if (typeof args[required] !== "string") throw new CliArgumentError(`--${required} is required: ${USAGE}`);
  }
  const split = (args.split ?? "lesion") as string;
  if (!EXPERIMENT_SPLITS.includes(split as ExperimentSplit)) throw new UnknownNameError("--split", split, EXPERIMENT_SPLITS);
  const target = (args.target ?? "malignant") as string;
  if (!HEAD_TARGETS.includes(target as HeadTarget)) throw new UnknownNameError("--target", target, HEAD_TARGETS);
  const progress = args.progress as string | undefined;
  if (progress !== undefined && !["bar", "lines", "quiet"].includes(progress)) throw new UnknownNameError("--progress", progress, ["bar", "lines", "quiet"]);
  const head: Record<string, number> = {};
  for (const [flag, key] of [["hidden-units", "hiddenUnits"], ["dropout", "dropoutRate"], ["l2", "l2"], ["learning-rate", "learningRate"]] as const) {
    const v = numberArg(args, flag);
    if (v !== undefined) head[key] = v;
  }
  await runExperiment({
    dataDir: args.data as string,
    backboneName: args.backbone as string,
    alpha: numberArg(args, "alpha"),
    epochs: numberArg(args, "epochs"),
    fineTuneEpochs: numberArg(args, "fine-tune"),
    unfreezeBlocks: numberArg(args, "unfreeze-blocks"),
    seed: numberArg(args, "seed"),
    folds: numberArg(args, "folds"),
    split: split as ExperimentSplit,
    target: target as HeadTarget,
    runName: args.run as string | undefined,
    head,
    progress: progress as "bar" | "lines" | "quiet" | undefined,
    outputRoot: args["output-root"] as string | undefined,
    resume: args.resume === true,
  });
}

main().catch((err) => {
  console.error(err instanceof MelanomaLabError ? `error: ${err.message}` : err);
  process.exit(1);
});
