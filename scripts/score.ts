// npm run score -- --model models/<run> --input <dir-or-labels.csv> --out preds.csv [--batch-size N] [--runtime auto|onnx|tfjs]
//   [--tta [--tta-views N]] [--retry-errors] [--overwrite]
// Streaming and resumable: rerunning with the same --out scores only the images not in it yet.
import {
  createProgressBar,
  defineCli,
  describeBackend,
  describeScoreSummary,
  MelanomaLabError,
  parseCommandLineOrExit,
  scoreImagesToCsv,
  selectBackend,
  INFERENCE_RUNTIMES,
} from "../lib/index.js";

const cli = defineCli({
  name: "score",
  usage: "npm run score --",
  summary:
    "Scores images with an exported triage model into a CSV file (image_id,probability,triage[,tta_sd],error), one row per image; a rerun with the same --out skips the images already in it.",
  examples: [
    "npm run score -- --model models/synthetic-mobilenet_v2 --input data/synthetic --out out/preds.csv",
    "npm run score -- --model models/synthetic-mobilenet_v2 --input data/synthetic --out out/preds-tta.csv --tta",
  ],
  options: {
    model: {
      type: "string",
      required: true,
      valueName: "<dir>",
      description: "exported model folder (model.json, weights.bin, metadata.json)",
    },
    input: {
      type: "string",
      required: true,
      valueName: "<dir|labels.csv>",
      description: "a folder of images, a dataset folder or a labels.csv",
    },
    out: { type: "string", required: true, valueName: "<file.csv>", description: "where the predictions go" },
    "batch-size": { type: "integer", min: 1, default: 32, description: "images per forward pass" },
    runtime: {
      type: "string",
      choices: ["auto", ...INFERENCE_RUNTIMES],
      description: "ONNX Runtime (model.onnx) or tfjs (model.json); default MELANOMA_LAB_RUNTIME, else auto",
    },
    tta: {
      type: "boolean",
      description: "test-time augmentation: probability is the mean over dihedral views; adds a tta_sd column",
    },
    "tta-views": { type: "integer", min: 1, max: 8, default: 8, description: "dihedral views averaged with --tta" },
    "retry-errors": {
      type: "boolean",
      description: "score again the images whose row in --out is an error row (else they count as done)",
    },
    overwrite: {
      type: "boolean",
      description: "replace --out when it was written by another model or with other options (else refused)",
    },
  },
});

async function main(): Promise<void> {
  const { values: args } = parseCommandLineOrExit(cli, process.argv.slice(2));
  console.log(describeBackend(await selectBackend()));
  const summary = await scoreImagesToCsv({
    modelDir: args.model,
    input: args.input,
    outPath: args.out,
    batchSize: args["batch-size"],
    runtime: args.runtime,
    tta: args.tta ? args["tta-views"] : false,
    retryErrors: args["retry-errors"],
    overwrite: args.overwrite,
    onStart: (plan) => {
      if (plan.resumed)
        console.log(
          `${args.out} exists: skipped ${plan.alreadyScored} images as already scored${plan.retried > 0 ? ` (${plan.retried} error rows removed to retry)` : ""}; ${plan.toScore} to score`,
        );
    },
    onProgress: createProgressBar("scored"),
  });
  for (const line of describeScoreSummary(summary)) console.log(line);
  // Nothing scored now or before (every image an error row): a failed run for a calling script.
  if (summary.scoredCount === 0 && summary.alreadyScoredCount === 0) process.exit(1);
}

main().catch((err) => {
  console.error(err instanceof MelanomaLabError ? `error: ${err.message}` : err);
  process.exit(1);
});
