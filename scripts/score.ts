// npm run score -- --model models/<run> --input <dir-or-labels.csv> --out preds.csv [--batch-size N] [--runtime auto|onnx|tfjs]
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
  summary: "Scores images with an exported triage model and writes image_id,probability,triage rows to a CSV file.",
  examples: ["npm run score -- --model models/synthetic-mobilenet_v2 --input data/synthetic --out out/preds.csv"],
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
    onProgress: createProgressBar("scored"),
  });
  for (const line of describeScoreSummary(summary)) console.log(line);
  if (summary.scoredCount === 0) process.exit(1);
}

main().catch((err) => {
  console.error(err instanceof MelanomaLabError ? `error: ${err.message}` : err);
  process.exit(1);
});
