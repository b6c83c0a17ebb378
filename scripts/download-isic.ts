// Downloads labelled dermoscopy images from the ISIC Archive (API v2) into labels.csv + images/.
// Resumable: run it again with the same --out and --query to continue.
// Usage: npx tsx scripts/download-isic.ts --out data/isic --query "image_type:dermoscopic" --max 500
import path from "node:path";
import { parseArgs } from "node:util";
import { downloadIsicArchive, ISIC_API_BASE_URL } from "../lib/data/isicArchive.js";
import { summarizeProblems } from "../lib/data/loadDataset.js";
import { findProjectRoot } from "../lib/util/paths.js";

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      out: { type: "string", default: "data/isic" },
      query: { type: "string", default: "" },
      max: { type: "string" },
      "base-url": { type: "string", default: ISIC_API_BASE_URL },
      concurrency: { type: "string", default: "4" },
    },
    strict: true,
  });
  const outDir = path.resolve(findProjectRoot(), values.out!);
  const result = await downloadIsicArchive({
    outDir,
    query: values.query,
    maxImages: values.max === undefined ? undefined : Number(values.max),
    baseUrl: values["base-url"],
    concurrency: Number(values.concurrency),
    onProgress: (p) => console.log(`page ${p.pages}: ${p.downloaded} downloaded, ${p.skippedExisting} already on disk`),
  });
  console.log(
    `${result.imageCount} labelled images in ${result.labelsCsvPath} (${result.downloadedThisRun} downloaded this run, ` +
      `${result.skippedExisting} already there); search ${result.complete ? "complete" : "not finished: run again to continue"}`,
  );
  for (const line of summarizeProblems(result.problems)) console.log(line);
}

main().catch((err) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
