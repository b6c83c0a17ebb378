// Data-pipeline throughput: images/s for decode + resize (+ augment) through lib/data, with one
// and with all cores (plus loadImageBatch / streamImageBatches), next to sharp's own raw
// decode + resize in the same run. Prints the load average, since the machine may be shared.
// Usage: npx tsx bench/data.ts [--images 400] [--size 224] [--dir ../shared/data/ham10000-dev]
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import sharp from "sharp";
import {
  randomAugmentImage,
  decodeImageRgb,
  loadDataset,
  loadImageBatch,
  mapWithConcurrency,
  streamImageBatches,
  generateSyntheticDataset,
  defineCli,
  parseCommandLineOrExit,
  findSharedDir,
} from "../lib/index.js";

const cli = defineCli({
  name: "bench data",
  usage: "npx tsx bench/data.ts",
  summary:
    "Data-pipeline throughput: images/s of decode + resize (+ augment) through lib/data with one and all cores, next to sharp's raw decode + resize.",
  examples: ["npx tsx bench/data.ts --images 400 --size 224 --dir ../shared/data/ham10000-dev"],
  options: {
    images: { type: "integer", min: 1, default: 400, description: "images decoded per measurement" },
    size: { type: "integer", min: 8, max: 4096, default: 224, description: "output side in pixels" },
    dir: {
      type: "string",
      valueName: "<dir>",
      description: "data set with labels.csv (default ../shared/data/ham10000-dev, else generated synthetic images)",
    },
  },
});

async function timeImagesPerSecond(
  files: string[],
  concurrency: number,
  work: (file: string, i: number) => Promise<unknown>,
): Promise<number> {
  const started = performance.now();
  const out = await mapWithConcurrency(files, concurrency, work);
  const seconds = (performance.now() - started) / 1000;
  const failed = out.filter((o) => "error" in o).length;
  if (failed > 0) throw new Error(`${failed} of ${files.length} images failed to decode in the benchmark`);
  return files.length / seconds;
}

async function main(): Promise<void> {
  const { values } = parseCommandLineOrExit(cli, process.argv.slice(2));
  const imageCount = values.images;
  const sizePx = values.size;
  let dir = values.dir ?? path.join(findSharedDir(), "data", "ham10000-dev");
  let tmp: string | undefined;
  if (!fs.existsSync(path.join(dir, "labels.csv"))) {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), "mlab-bench-"));
    console.log(`${dir} not found; generating ${imageCount} synthetic images instead`);
    await generateSyntheticDataset({ outDir: tmp, imageCount, imageSizePx: 448, seed: 1 });
    dir = tmp;
  }
  const records = loadDataset(dir).records.slice(0, imageCount);
  const files = records.map((r) => r.imagePath);
  const cores = os.availableParallelism?.() ?? os.cpus().length;
  sharp.cache(false); // measure decoding, not sharp's operation cache
  console.log(
    `load average (1/5/15 min): ${os
      .loadavg()
      .map((l) => l.toFixed(2))
      .join(" ")}`,
  );
  console.log(
    `data bench: ${files.length} images from ${dir}, → ${sizePx}×${sizePx} RGB, ${cores} cores, sharp ${sharp.versions.sharp} (libvips ${sharp.versions.vips})`,
  );

  const sharpRaw = (f: string) => sharp(f).resize(sizePx, sizePx, { fit: "cover" }).removeAlpha().raw().toBuffer();
  const ours = (f: string) => decodeImageRgb(f, sizePx);
  const oursAugmented = async (f: string, i: number) => randomAugmentImage(await ours(f), sizePx, i);
  await timeImagesPerSecond(files.slice(0, 20), cores, ours); // warm-up: file cache and libvips init

  const rows: [string, number, number][] = [];
  for (const concurrency of [1, cores]) {
    const sharpRate = await timeImagesPerSecond(files, concurrency, sharpRaw);
    const ourRate = await timeImagesPerSecond(files, concurrency, ours);
    const augRate = await timeImagesPerSecond(files, concurrency, oursAugmented);
    rows.push([`sharp raw decode+resize, concurrency ${concurrency}`, sharpRate, 1]);
    rows.push([`decodeImageRgb, concurrency ${concurrency}`, ourRate, ourRate / sharpRate]);
    rows.push([`decodeImageRgb + randomAugmentImage, concurrency ${concurrency}`, augRate, augRate / sharpRate]);
    if (concurrency === cores) {
      let started = performance.now();
      const batch = await loadImageBatch(records, { imageSizePx: sizePx, concurrency });
      const batchRate = batch.records.length / ((performance.now() - started) / 1000);
      started = performance.now();
      let streamed = 0;
      for await (const b of streamImageBatches(records, {
        batchSize: 32,
        imageSizePx: sizePx,
        concurrency,
        shuffleSeed: 1,
      }))
        streamed += b.records.length;
      const streamRate = streamed / ((performance.now() - started) / 1000);
      if (batch.records.length !== files.length || streamed !== files.length)
        throw new Error("some images failed to decode in the benchmark");
      rows.push([`loadImageBatch, concurrency ${concurrency}`, batchRate, batchRate / sharpRate]);
      rows.push([
        `streamImageBatches (32/batch, prefetch 1), concurrency ${concurrency}`,
        streamRate,
        streamRate / sharpRate,
      ]);
    }
  }
  for (const [name, rate, ratio] of rows)
    console.log(`${name.padEnd(64)} ${rate.toFixed(1).padStart(8)} images/s   ratio to sharp ${ratio.toFixed(2)}`);
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
}

main().catch((err) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
