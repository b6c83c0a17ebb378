// Downloads labelled dermoscopy images from the ISIC Archive (API v2) into labels.csv + images/.
// Resumable: run it again with the same --out and --query to continue.
// Usage: npm run data:isic -- --out data/isic --query "image_type:dermoscopic" --max 500 (--help lists the options)
import path from "node:path";
import {
  downloadIsicArchive,
  ISIC_API_BASE_URL,
  summarizeProblems,
  defineCli,
  parseCommandLineOrExit,
  findProjectRoot,
} from "../lib/index.js";

const cli = defineCli({
  name: "data:isic",
  usage: "npm run data:isic --",
  summary:
    "Downloads labelled dermoscopy images from the ISIC Archive (API v2) into labels.csv + images/; run it again to continue.",
  examples: ['npm run data:isic -- --out data/isic --query "image_type:dermoscopic" --max 500'],
  options: {
    out: {
      type: "string",
      default: "data/isic",
      valueName: "<dir>",
      description: "output folder (relative to the project root)",
    },
    query: {
      type: "string",
      default: "",
      valueName: "<query>",
      description: "ISIC Archive search query (empty: everything)",
    },
    max: { type: "integer", min: 1, description: "stop after this many images (default: all that match)" },
    "base-url": { type: "string", default: ISIC_API_BASE_URL, valueName: "<url>", description: "ISIC API base URL" },
    concurrency: { type: "integer", min: 1, max: 64, default: 4, description: "images downloaded at once" },
  },
});

async function main(): Promise<void> {
  const { values } = parseCommandLineOrExit(cli, process.argv.slice(2));
  const outDir = path.resolve(findProjectRoot(), values.out);
  const result = await downloadIsicArchive({
    outDir,
    query: values.query,
    maxImages: values.max,
    baseUrl: values["base-url"],
    concurrency: values.concurrency,
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
