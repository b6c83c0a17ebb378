// Fine-tuning benchmark (MobileNetV2, cached activations at the cut):
// 1. images/s of batch-8 optimisation steps of the top blocks + head from block_16 and from
//    block_15, on wasm (with the gradient kernels of lib/backend/wasmGradKernels.ts) and on the
//    pure-JS cpu backend (one step only: it is slow);
// 2. validation ROC AUC of the frozen-feature head, then after fine-tuning the top blocks for a
//    few epochs, on a small lesion-grouped HAM10000 subset.
// Run: npm run bench -- finetune. Options (npm run bench does not pass arguments on, so they
// are environment variables; `npx tsx bench/finetune.ts --images N …` also works):
// FINETUNE_IMAGES (default 480), FINETUNE_EPOCHS (3), FINETUNE_BLOCKS (1), FINETUNE_SKIP_CPU=1.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import * as tf from "@tensorflow/tfjs";
import {
  selectBackend,
  registerWasmGradientKernels,
  loadDataset,
  splitByLesion,
  loadBackbone,
  extractFeatures,
  fineTuneTopBlocks,
  predictHeadProbabilities,
  trainHead,
  computeRocAuc,
  defineCli,
  parseCommandLine,
  parseCommandLineOrExit,
  findSharedDir,
  resolveFeatureCacheDir,
  shuffleWithSeed,
} from "../lib/index.js";
import type { LesionRecord } from "../lib/index.js";

const cli = defineCli({
  name: "bench finetune",
  usage: "npx tsx bench/finetune.ts",
  summary:
    "Fine-tuning benchmark: images/s of top-block optimisation steps (wasm and cpu), then validation ROC AUC before and after fine-tuning on a HAM10000 subset.",
  examples: [
    "npx tsx bench/finetune.ts --images 240 --epochs 2 --skip-cpu",
    "FINETUNE_IMAGES=240 npm run bench -- finetune",
  ],
  options: {
    images: { type: "integer", min: 1, default: 480, description: "images of the subset (or FINETUNE_IMAGES)" },
    epochs: { type: "integer", min: 1, default: 3, description: "fine-tuning epochs (or FINETUNE_EPOCHS)" },
    blocks: { type: "integer", min: 1, default: 1, description: "top blocks unfrozen (or FINETUNE_BLOCKS)" },
    "skip-cpu": { type: "boolean", description: "skip the slow pure-JS cpu step (or FINETUNE_SKIP_CPU=1)" },
  },
});
const parsed = parseCommandLineOrExit(cli, process.argv.slice(2)).values;
// A flag wins over its FINETUNE_* variable; the variable is checked by the same rules.
const given = new Set(process.argv.slice(2).map((a) => a.replace(/^--/, "").split("=")[0]));
const fromEnv = (name: "images" | "epochs" | "blocks"): number => {
  const raw = process.env[`FINETUNE_${name.toUpperCase()}`];
  if (given.has(name) || raw === undefined) return parsed[name];
  try {
    return parseCommandLine(cli, [`--${name}`, raw]).values[name];
  } catch (err) {
    console.error(`${(err as Error).message} (from FINETUNE_${name.toUpperCase()})`);
    process.exit(2);
  }
};
const imageCount = fromEnv("images");
const epochs = fromEnv("epochs");
const blocks = fromEnv("blocks");
const skipCpu = parsed["skip-cpu"] || process.env.FINETUNE_SKIP_CPU === "1";
const dataDir = path.join(findSharedDir(), "data", "ham10000-dev");
if (!fs.existsSync(dataDir)) {
  console.log(`skipped: ${dataDir} is missing (the HAM10000 dev set lives in ../shared)`);
  process.exit(0);
}
const cacheDir = resolveFeatureCacheDir();
const loadStart = os.loadavg();
console.log(`load average at start: ${loadStart.map((v) => v.toFixed(2)).join(", ")} (${os.cpus().length} cores)`);

registerWasmGradientKernels();
await selectBackend({ preferred: "wasm" });
const { records } = loadDataset(dataDir);
const backbone = await loadBackbone("mobilenet_v2");
const sample = shuffleWithSeed(records, 11).slice(0, imageCount);
const { train, validation } = splitByLesion(sample, { validationFraction: 0.2, seed: 42 });
console.log(
  `subset: ${sample.length} images (${train.length} train / ${validation.length} validation, lesion-grouped), malignant ${sample.filter((r) => r.label === "malignant").length}`,
);

// Stage 1: head on frozen pooled features (wasm).
const trainFeatures = await extractFeatures(backbone, train, { cacheDir });
const valFeatures = await extractFeatures(backbone, validation, { cacheDir });
const labelsOf = (set: readonly LesionRecord[], idx: number[]) =>
  idx.map((i) => (set[i].label === "malignant" ? 1 : 0));
const trainLabels = labelsOf(train, trainFeatures.sourceIndices);
const valLabels = labelsOf(validation, valFeatures.sourceIndices);
const headResult = await trainHead(trainFeatures.features, trainLabels, {
  seed: 42,
  hiddenUnits: 128,
  epochs: 20,
  batchSize: 32,
  learningRate: 1e-3,
  classWeights: "balanced",
  validation: { features: valFeatures.features, labels: valLabels },
});
const head = headResult.model;
const aucFrozen = computeRocAuc(valLabels, predictHeadProbabilities(head, valFeatures.features, backbone.featureDim));
console.log(`frozen features + head (20 epochs, lr 1e-3): validation AUC ${aucFrozen.toFixed(4)}`);

// Step throughput at batch 8: wasm's median over 5 steps after a warm-up; cpu (after stage 2) one step.
const stepImages = train.slice(0, 8);
const stepRows: { backend: string; from: string; stepSeconds: number; imagesPerSecond: number }[] = [];
for (const unfreezeBlocks of [1, 2]) {
  const from = unfreezeBlocks === 1 ? "block_16" : "block_15";
  const run = await fineTuneTopBlocks(backbone, head, stepImages, [], {
    unfreezeBlocks,
    epochs: 6,
    learningRate: 1e-4,
    batchSize: 8,
    seed: 1,
    cacheDir,
  });
  // Median of the steps after the warm-up: the machine is shared, so single steps vary.
  const steady = run.stepDurationsMs.slice(1).sort((a, b) => a - b);
  const stepMs = steady[Math.floor(steady.length / 2)];
  stepRows.push({ backend: "wasm", from, stepSeconds: stepMs / 1000, imagesPerSecond: 8 / (stepMs / 1000) });
  console.log(
    `wasm, ${from}: steps ${run.stepDurationsMs.map((ms) => (ms / 1000).toFixed(2)).join(", ")} s (first = warm-up) → median ${(stepMs / 1000).toFixed(2)} s, ${(8 / (stepMs / 1000)).toFixed(2)} img/s`,
  );
  run.head.dispose();
}

// Stage 2: fine-tune the top blocks on the subset and compare validation AUC.
const started = performance.now();
const ft = await fineTuneTopBlocks(backbone, head, train, validation, {
  unfreezeBlocks: blocks,
  epochs,
  learningRate: 1e-4,
  batchSize: 8,
  seed: 42,
  cacheDir,
  classWeights: "balanced",
  onEpochEnd: (m) =>
    console.log(
      `  epoch ${m.epoch}: train loss ${m.trainLoss.toFixed(4)} auc ${m.trainAuc.toFixed(3)} | val loss ${m.valLoss?.toFixed(4)} auc ${m.valAuc?.toFixed(4)} (${(m.elapsedMs / 1000).toFixed(1)} s)`,
    ),
});
const last = ft.history.at(-1)!;
console.log(
  `fine-tuned ${blocks} block(s) from ${ft.cutLayerName}, ${epochs} epochs, lr 1e-4, batch 8: validation AUC ${aucFrozen.toFixed(4)} → ${last.valAuc!.toFixed(4)} ` +
    `(best epoch ${Math.max(...ft.history.map((m) => m.valAuc!)).toFixed(4)}); ${ft.imagesPerSecond.toFixed(2)} img/s training; activation cache ${(ft.cacheMs / 1000).toFixed(1)} s (${ft.cacheHits} hits); total ${((performance.now() - started) / 1000).toFixed(0)} s`,
);
if (!skipCpu) {
  await selectBackend({ preferred: "cpu" });
  for (const unfreezeBlocks of [1, 2]) {
    const from = unfreezeBlocks === 1 ? "block_16" : "block_15";
    // Activations come from the disk cache the wasm runs filled, so cpu only runs the step.
    const run = await fineTuneTopBlocks(backbone, head, stepImages, [], {
      unfreezeBlocks,
      epochs: 1,
      learningRate: 1e-4,
      batchSize: 8,
      seed: 1,
      cacheDir,
    });
    const stepMs = run.stepDurationsMs[0];
    stepRows.push({ backend: "cpu", from, stepSeconds: stepMs / 1000, imagesPerSecond: 8 / (stepMs / 1000) });
    console.log(
      `cpu, ${from}: one step ${(stepMs / 1000).toFixed(1)} s → ${(8 / (stepMs / 1000)).toFixed(3)} img/s (cache hits ${run.cacheHits}/8)`,
    );
    run.head.dispose();
  }
  await selectBackend({ preferred: "wasm" });
}
console.table(
  stepRows.map((r) => ({
    ...r,
    stepSeconds: Number(r.stepSeconds.toFixed(2)),
    imagesPerSecond: Number(r.imagesPerSecond.toFixed(3)),
  })),
);
for (const from of ["block_16", "block_15"]) {
  const w = stepRows.find((r) => r.backend === "wasm" && r.from === from);
  const c = stepRows.find((r) => r.backend === "cpu" && r.from === from);
  if (w && c)
    console.log(`${from}: wasm is ${(w.imagesPerSecond / c.imagesPerSecond).toFixed(1)}× cpu per batch-8 step`);
}

console.log(
  `load average at end: ${os
    .loadavg()
    .map((v) => v.toFixed(2))
    .join(", ")}; tensors alive ${tf.memory().numTensors}`,
);
ft.head.dispose();
head.dispose();
