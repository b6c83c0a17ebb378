// Batch scoring throughput (issue 13): images/s of `npm run score` (scoreImagesToCsv) on real HAM
// images, without and with --tta, through each runtime (tfjs; ONNX Runtime when model.onnx can be
// written), one run each, and the ratio. The model is MobileNetV2 + an untrained seeded head:
// its speed is that of a trained one, its probabilities mean nothing. Prints the load average,
// since the machine may be shared. Skips (exit 0, one line) when ../shared has no HAM images.
// Usage: npx tsx bench/scoring.ts [--images 48] [--tta-views 8] [--batch-size 32] [--runtime both]
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import * as tf from "@tensorflow/tfjs";
import {
  buildTriageModel,
  createRandom,
  defineCli,
  describeBackend,
  exportTriageModel,
  exportTriageModelOnnx,
  findSharedDir,
  loadBackbone,
  loadDataset,
  makeTriageMetadata,
  parseCommandLineOrExit,
  scoreImagesToCsv,
  selectBackend,
  type ScoreSummary,
} from "../lib/index.js";

const cli = defineCli({
  name: "bench scoring",
  usage: "npx tsx bench/scoring.ts",
  summary:
    "Batch scoring images/s (npm run score) on real HAM images without and with --tta, per runtime, one run each, with the TTA slowdown.",
  examples: ["npx tsx bench/scoring.ts --images 48 --tta-views 8 --runtime tfjs"],
  options: {
    images: { type: "integer", min: 2, max: 10_000, default: 48, description: "HAM images scored per run" },
    "tta-views": { type: "integer", min: 1, max: 8, default: 8, description: "dihedral views of the --tta runs" },
    "batch-size": { type: "integer", min: 1, default: 32, description: "images per batch, as npm run score" },
    runtime: {
      type: "string",
      choices: ["tfjs", "onnx", "both"],
      default: "both",
      description: "runtimes to time (onnx: the model exported to model.onnx, run by ONNX Runtime)",
    },
  },
});

/** One timed run: wall images/s (as the score summary says) and steady images/s after the first batch. */
interface TimedRun {
  summary: ScoreSummary;
  /** Images/s from the end of the first batch to the end: without model loading and warm-up. */
  steadyImagesPerSecond: number;
}

async function timeScoring(options: Parameters<typeof scoreImagesToCsv>[0]): Promise<TimedRun> {
  let firstBatchMs: number | undefined;
  let firstBatchDone = 0;
  let lastMs = 0;
  let lastDone = 0;
  const summary = await scoreImagesToCsv({
    ...options,
    onProgress: (done) => {
      if (done === 0) return;
      const now = performance.now();
      if (firstBatchMs === undefined) {
        firstBatchMs = now;
        firstBatchDone = done;
      }
      lastMs = now;
      lastDone = done;
    },
  });
  const steadySeconds = firstBatchMs === undefined ? 0 : (lastMs - firstBatchMs) / 1000;
  return {
    summary,
    steadyImagesPerSecond: steadySeconds > 0 ? (lastDone - firstBatchDone) / steadySeconds : Number.NaN,
  };
}

async function main(): Promise<void> {
  const { values: args } = parseCommandLineOrExit(cli, process.argv.slice(2));
  const dataDir = path.join(findSharedDir(), "data", "ham10000-dev");
  if (!fs.existsSync(path.join(dataDir, "labels.csv"))) {
    console.log(`scoring bench: skipped, ${path.join(dataDir, "labels.csv")} is missing (it times real HAM images)`);
    return;
  }
  const records = loadDataset(dataDir).records.slice(0, args.images);
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "mlab-bench-scoring-"));
  try {
    // A plain folder of links, so that npm run score sees exactly these images.
    const input = path.join(tmp, "images");
    fs.mkdirSync(input);
    for (const r of records) fs.symlinkSync(r.imagePath, path.join(input, `${r.imageId}${path.extname(r.imagePath)}`));

    console.log(
      `load average (1/5/15 min): ${os
        .loadavg()
        .map((l) => l.toFixed(2))
        .join(" ")}`,
    );
    console.log(describeBackend(await selectBackend()));
    const backbone = await loadBackbone("mobilenet_v2");
    const rand = createRandom(13);
    const head = tf.sequential({
      layers: [tf.layers.dense({ inputShape: [backbone.featureDim], units: 1, activation: "sigmoid" })],
    });
    head.layers[0].setWeights([
      tf.tensor2d(
        Array.from({ length: backbone.featureDim }, () => [(rand() - 0.5) * 0.05]),
        [backbone.featureDim, 1],
      ),
      tf.tensor1d([0]),
    ]);
    const triage = buildTriageModel(backbone, head);
    const metadata = makeTriageMetadata(backbone, {
      thresholdProb: 0.5,
      notes: { purpose: "scoring bench: untrained head, speed only" },
    });
    const modelDir = path.join(tmp, "model");
    await exportTriageModel(modelDir, triage, metadata);
    const runtimes = args.runtime === "both" ? ["tfjs", "onnx"] : [args.runtime];
    if (runtimes.includes("onnx")) {
      try {
        await exportTriageModelOnnx(modelDir, triage, metadata);
      } catch (err) {
        console.log(
          `onnx: skipped, model.onnx could not be written (${err instanceof Error ? err.message : String(err)})`,
        );
        runtimes.splice(runtimes.indexOf("onnx"), 1);
      }
    }
    triage.dispose();
    console.log(
      `scoring bench: ${records.length} images from ${dataDir}, ${backbone.name} ${backbone.inputSizePx} px, batch ${args["batch-size"]}, TTA ${args["tta-views"]} views, ${os.cpus().length} cores`,
    );
    for (const runtime of runtimes) {
      const common = { modelDir, input, batchSize: args["batch-size"], runtime };
      const plain = await timeScoring({ ...common, outPath: path.join(tmp, `plain-${runtime}.csv`) });
      const tta = await timeScoring({
        ...common,
        outPath: path.join(tmp, `tta-${runtime}.csv`),
        tta: args["tta-views"],
      });
      for (const [name, run] of [
        ["plain", plain],
        [`tta×${args["tta-views"]}`, tta],
      ] as const) {
        const s = run.summary;
        console.log(
          `${runtime} ${name}: ${s.imagesPerSecond.toFixed(2)} images/s wall (${s.wallSeconds.toFixed(1)} s, model loading included), ` +
            `${run.steadyImagesPerSecond.toFixed(2)} images/s after the first batch; ${s.scoredCount} scored, ${s.errorCount} errors`,
        );
      }
      console.log(
        `${runtime}: TTA is ${(plain.summary.imagesPerSecond / tta.summary.imagesPerSecond).toFixed(2)}× slower (wall), ` +
          `${(plain.steadyImagesPerSecond / tta.steadyImagesPerSecond).toFixed(2)}× after the first batch ` +
          `(${args["tta-views"]}× the forward rows; decoding is shared)`,
      );
    }
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
