// npm run score -- --model models/<run> --input <dir-or-labels.csv> --out preds.csv
import {
  createProgressPrinter,
  describeBackend,
  describeScoreSummary,
  MelanomaLabError,
  parseCliArgs,
  scoreImagesToCsv,
  selectBackend,
} from "../lib/index.js";

async function main(): Promise<void> {
  const args = parseCliArgs(process.argv.slice(2), { values: ["model", "input", "out", "batch-size"] });
  for (const required of ["model", "input", "out"]) {
    if (typeof args[required] !== "string") {
      throw new MelanomaLabError(`--${required} is required: npm run score -- --model models/<run> --input <dir-or-labels.csv> --out preds.csv`);
    }
  }
  console.log(describeBackend(await selectBackend()));
  const summary = await scoreImagesToCsv({
    modelDir: args.model as string,
    input: args.input as string,
    outPath: args.out as string,
    batchSize: typeof args["batch-size"] === "string" ? Number(args["batch-size"]) : undefined,
    onProgress: createProgressPrinter("scored", 10),
  });
  for (const line of describeScoreSummary(summary)) console.log(line);
  if (summary.scoredCount === 0) process.exit(1);
}

main().catch((err) => {
  console.error(err instanceof MelanomaLabError ? `error: ${err.message}` : err);
  process.exit(1);
});
