// Writes a seeded synthetic dermoscopy dataset (labels.csv + images/) for demos and tests.
// Usage: npm run data:synthetic -- --out data/synthetic --count 400 --seed 42 [--size 224] [--noise 0.05]
import path from "node:path";
import { parseArgs } from "node:util";
import { generateSyntheticDataset } from "../lib/data/synthetic.js";
import { findProjectRoot } from "../lib/util/paths.js";

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      out: { type: "string", default: "data/synthetic" },
      count: { type: "string", default: "400" },
      seed: { type: "string", default: "42" },
      size: { type: "string", default: "224" },
      noise: { type: "string", default: "0.05" },
      "malignant-fraction": { type: "string", default: "0.5" },
    },
    strict: true,
  });
  const outDir = path.resolve(findProjectRoot(), values.out!);
  const result = await generateSyntheticDataset({
    outDir,
    imageCount: Number(values.count),
    imageSizePx: Number(values.size),
    seed: Number(values.seed),
    labelNoiseFraction: Number(values.noise),
    malignantFraction: Number(values["malignant-fraction"]),
  });
  const malignant = result.records.filter((r) => r.label === "malignant").length;
  console.log(
    `wrote ${result.records.length} images of ${result.lesionCount} lesions (${malignant} labelled malignant, ` +
      `${result.flippedLesionCount} lesion labels flipped as noise) to ${outDir} in ${(result.durationMs / 1000).toFixed(1)} s`,
  );
  console.log(`labels: ${result.labelsCsvPath}`);
}

main().catch((err) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
