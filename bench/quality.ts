// Quality benchmark (not a test): ROC AUC of frozen-feature heads on the real HAM10000 dev set,
// lesion-grouped 5-fold CV (mean ± sd) and leave-one-source-out (AUC per held-out clinic), plus
// within-source AUC, for each backbone and the cheap generalisation tricks (Shades-of-Gray,
// test-time augmentation, head size/regularisation). Writes runs/quality-ham10000-dev.{md,json}.
// Run: npx tsx bench/quality.ts [--full] [--inception] [--backbone NAME [--tricks]] [--tta N] [--epochs N] [--data DIR]
//   NAME: mobilenet_v1 (α 0.25), mobilenet_v1_1.0 (α 1.0, from the weights mirror), mobilenet_v2,
//   inception_v3, ensemble (the features of mobilenet_v2 + inception_v3 + mobilenet_v1 α 1.0 side
//   by side), none (rewrite the table from runs/quality-ham10000-dev.json).
//   --fine-tune N [--unfreeze-blocks B]: mobilenet_v2 with its top B blocks fine-tuned for N epochs
//   after the head (runExperiment, lesion 5-fold and leave-one-source-out).
//   --dx: only the diagnosis-target heads ("… dx": softmax over the 7 HAM diagnoses, scored as
//   P(mel) + P(bcc) + P(akiec)) for the chosen --backbone (mobilenet_v2, mobilenet_v1_1.0, ensemble).
// (npm run bench -- quality runs the default plan; bench/index.ts passes no options through).
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import {
  computeWithinSourceRocAuc,
  createGroupedKFolds,
  UnknownNameError,
  describeBackend,
  resolveFeatureCacheDir,
  findProjectRoot,
  findSharedDir,
  loadBackbone,
  loadDataset,
  defineCli,
  parseCommandLineOrExit,
  selectBackend,
} from "../lib/index.js";
import type { Backbone, LesionRecord } from "../lib/index.js";
import { createLeaveOneSourceOutFolds } from "../lib/experiments/sourceFolds.js";
import { runExperiment } from "../lib/experiments/runExperiment.js";
import { crossValidateHead, formatFoldSpread, toFoldRows, type HeadConfig, type FoldSpread } from "../lib/experiments/crossValidate.js";
import { extractFeatureViews } from "../lib/experiments/featureViews.js";
import { disposeBackboneEnsemble, extractEnsembleFeatures, loadBackboneEnsemble } from "../lib/models/ensemble.js";
import { computeRocAuc } from "../lib/evaluate/metrics.js";
import { createProgressBar } from "../lib/util/progress.js";

const args = parseCommandLineOrExit(
  defineCli({
    name: "bench quality",
    usage: "npx tsx bench/quality.ts",
    summary: "ROC AUC of frozen-feature heads on the HAM10000 dev set (lesion-grouped 5-fold CV and leave-one-source-out); writes runs/quality-ham10000-dev.{md,json}.",
    examples: ["npx tsx bench/quality.ts --backbone mobilenet_v2 --tricks", "npx tsx bench/quality.ts --backbone ensemble --dx"],
    options: {
      backbone: { type: "string", choices: ["mobilenet_v1", "mobilenet_v1_1.0", "mobilenet_v2", "inception_v3", "ensemble", "none"], description: "only this backbone (none: rewrite the table from the JSON)" },
      tta: { type: "integer", min: 1, description: "test-time augmentation views (default 2)" },
      epochs: { type: "integer", min: 1, description: "head epochs (default 20)" },
      data: { type: "string", valueName: "<dir>", description: "data set (default ../shared/data/ham10000-dev)" },
      seed: { type: "integer", min: 0, description: "seed (default 42)" },
      "fine-tune": { type: "integer", min: 1, description: "mobilenet_v2 with its top blocks fine-tuned for this many epochs after the head" },
      "unfreeze-blocks": { type: "integer", min: 1, description: "top blocks fine-tuned with --fine-tune (default 1)" },
      inception: { type: "boolean", description: "include inception_v3" },
      full: { type: "boolean", description: "the full plan" },
      tricks: { type: "boolean", description: "with --backbone: Shades-of-Gray, test-time augmentation and head variants" },
      dx: { type: "boolean", description: "only the diagnosis-target heads" },
    },
  }),
  process.argv.slice(2),
).values;
const root = findProjectRoot();
const dataDir = typeof args.data === "string" ? path.resolve(args.data) : path.join(findSharedDir(), "data", "ham10000-dev");
const ttaViews = Number(args.tta ?? 2);
const epochs = Number(args.epochs ?? 20);
const seed = Number(args.seed ?? 42);
const cacheDir = resolveFeatureCacheDir();
process.env.MELANOMA_LAB_WEIGHTS_DIR ??= path.join(findSharedDir(), "weights");

const HEADS: Record<string, HeadConfig> = {
  "logistic l2=1e-3": { hiddenUnits: 0, dropoutRate: 0, l2: 1e-3, epochs, batchSize: 32, learningRate: 1e-3 },
  "mlp128 drop0.3 l2=1e-4": { hiddenUnits: 128, dropoutRate: 0.3, l2: 1e-4, epochs, batchSize: 32, learningRate: 1e-3 },
  "mlp256 drop0.5 l2=1e-3": { hiddenUnits: 256, dropoutRate: 0.5, l2: 1e-3, epochs, batchSize: 32, learningRate: 1e-3 },
  // Diagnosis target: the same heads learning the 7 diagnoses, P(malignant) = Σ malignant ones.
  "logistic l2=1e-3 dx": { hiddenUnits: 0, dropoutRate: 0, l2: 1e-3, epochs, batchSize: 32, learningRate: 1e-3, target: "diagnosis" },
  "mlp128 drop0.3 l2=1e-4 dx": { hiddenUnits: 128, dropoutRate: 0.3, l2: 1e-4, epochs, batchSize: 32, learningRate: 1e-3, target: "diagnosis" },
};
const DX_HEADS = Object.keys(HEADS).filter((h) => HEADS[h].target === "diagnosis");

interface Row {
  backbone: string;
  colour: "none" | "shades-of-gray";
  tta: string;
  head: string;
  cvRocAuc: FoldSpread;
  cvWithinSourceRocAuc: number;
  cvPooledRocAuc: number;
  losoRocAucBySource: Record<string, number>;
  losoMinRocAuc: number;
  losoWithinSourceRocAuc: number;
  trainSeconds: number;
  featureSeconds: number;
}

const rows: Row[] = [];
const rowKey = (r: Row) => [r.backbone, r.colour, r.tta, r.head].join("|");
// Rows of earlier runs with the same data, seed and epochs are kept unless re-measured, so the
// table can be completed by several shorter runs (e.g. --backbone mobilenet_v2 --tricks). Read
// at each write, so that runs going on side by side keep each other's rows.
function readPreviousRows(): Row[] {
  const file = path.join(root, "runs", "quality-ham10000-dev.json");
  if (!fs.existsSync(file)) return [];
  const old = JSON.parse(fs.readFileSync(file, "utf8")) as { dataDir: string; seed: number; epochs: number; rows: Row[] };
  const same = old.dataDir === path.relative(root, dataDir) && old.seed === seed && old.epochs === epochs;
  return same ? old.rows.map((r) => ({ ...r, cvRocAuc: { ...r.cvRocAuc, sd: r.cvRocAuc.sd ?? NaN } })) : [];
}
const started = Date.now();
const load0 = os.loadavg()[0];

function writeOutputs(final: boolean): void {
  const measured = new Set(rows.map(rowKey));
  const allRows = [...readPreviousRows().filter((r) => !measured.has(rowKey(r))), ...rows];
  const outDir = path.join(root, "runs");
  fs.mkdirSync(outDir, { recursive: true });
  const sources = [...new Set(allRows.flatMap((r) => Object.keys(r.losoRocAucBySource)))].sort();
  const f = (v: number) => (Number.isNaN(v) ? "n/a" : v.toFixed(3));
  const header = ["backbone", "colour", "TTA", "head", "CV AUC (mean ± sd)", "CV within-source", ...sources.map((s) => `LOSO ${s}`), "LOSO min", "LOSO within-source", "train s"];
  const lines = [
    `# Quality on ${path.basename(dataDir)} (${final ? "complete" : "partial"})`,
    "",
    `Frozen backbone features + dense head, seed ${seed}, ${epochs} epochs, balanced class weights. CV: lesion-grouped stratified 5-fold. ` +
      `LOSO: leave-one-source-out (ham_dataset), AUC on the held-out source. Within-source: only benign/malignant pairs from the same source. ` +
      `TTA: dihedral views, "prob" = head probabilities averaged, "feat" = features averaged before the head. ` +
      `"ensemble" rows: several backbones' features side by side. Heads ending in "dx": trained on the diagnoses (softmax over the 7 HAM classes), scored as P(mel) + P(bcc) + P(akiec). "+ fine-tune" rows: the head, then the backbone's top blocks with it ` +
      `(npm run experiment -- --fine-tune; LOSO min excludes a source whose AUC is undefined; "train s" = both splits' cross-validation). ` +
      `Measured ${new Date(started).toISOString()} on ${os.cpus().length} cores, load average at start ${load0.toFixed(2)}, now ${os.loadavg()[0].toFixed(2)}` +
      (allRows.length > rows.length ? `; ${allRows.length - rows.length} rows kept from an earlier run (their "train s" was measured then, on the same shared machine, load up to ~10).` : "."),
    "",
    `| ${header.join(" | ")} |`,
    `| ${header.map(() => "---").join(" | ")} |`,
    ...allRows.map((r) =>
      `| ${[r.backbone, r.colour, r.tta, r.head, formatFoldSpread(r.cvRocAuc), f(r.cvWithinSourceRocAuc), ...sources.map((s) => f(r.losoRocAucBySource[s] ?? NaN)), f(r.losoMinRocAuc), f(r.losoWithinSourceRocAuc), r.trainSeconds.toFixed(0)].join(" | ")} |`,
    ),
  ];
  const best = [...allRows].sort((a, b) => b.cvRocAuc.mean - a.cvRocAuc.mean)[0];
  if (best) {
    lines.push("", `Best by CV mean AUC: ${best.backbone} / ${best.colour} / TTA ${best.tta} / ${best.head}: CV ${formatFoldSpread(best.cvRocAuc)}, LOSO min ${f(best.losoMinRocAuc)}. ` +
      `Goal (CV ≥ 0.90 and every held-out source ≥ 0.85): ${best.cvRocAuc.mean >= 0.9 && best.losoMinRocAuc >= 0.85 ? "reached" : "not reached"}.`);
  }
  fs.writeFileSync(path.join(outDir, "quality-ham10000-dev.md"), lines.join("\n") + "\n");
  fs.writeFileSync(
    path.join(outDir, "quality-ham10000-dev.json"),
    JSON.stringify({ kind: "quality-benchmark", dataDir: path.relative(root, dataDir), seed, epochs, ttaViews, complete: final, loadAverageAtStart: load0, rows: allRows }, null, 2) + "\n",
  );
  if (final) console.log("\n" + lines.join("\n"));
}

async function evaluateVariant(
  label: string,
  colour: Row["colour"],
  fv: { records: LesionRecord[]; featureDim: number },
  variant: { tta: string; head: string; features: Float32Array; extraViews?: Float32Array[] },
  featureSeconds: number,
): Promise<Row> {
  const labels = fv.records.map((r) => (r.label === "malignant" ? 1 : 0));
  const sources = fv.records.map((r) => r.source ?? "unknown");
  const cvFolds = toFoldRows(fv.records, createGroupedKFolds(fv.records, { folds: 5, seed }).map((f) => ({ name: `fold-${f.foldIndex + 1}`, ...f })));
  const losoFolds = toFoldRows(fv.records, createLeaveOneSourceOutFolds(fv.records).map((f) => ({ name: f.heldOutSource, ...f })));
  const t1 = performance.now();
  const diagnoses = fv.records.map((r) => r.diagnosis);
  const base = { features: variant.features, featureDim: fv.featureDim, labels, sources, diagnoses, extraViews: variant.extraViews };
  const cv = await crossValidateHead(base, cvFolds, { head: HEADS[variant.head], seed });
  const loso = await crossValidateHead(base, losoFolds, { head: HEADS[variant.head], seed });
  const losoBySource = Object.fromEntries(loso.folds.map((f) => [f.name, f.rocAuc]));
  const row: Row = {
    backbone: label,
    colour,
    tta: variant.tta,
    head: variant.head,
    cvRocAuc: cv.spread.rocAuc,
    cvPooledRocAuc: computeRocAuc(labels, cv.outOfFoldProbs),
    cvWithinSourceRocAuc: computeWithinSourceRocAuc(labels, cv.outOfFoldProbs, sources).auc,
    losoRocAucBySource: losoBySource,
    losoMinRocAuc: Math.min(...loso.folds.map((f) => f.rocAuc).filter((v) => !Number.isNaN(v))),
    losoWithinSourceRocAuc: computeWithinSourceRocAuc(labels, loso.outOfFoldProbs, sources).auc,
    trainSeconds: (performance.now() - t1) / 1000,
    featureSeconds,
  };
  rows.push(row);
  console.log(
    `${label} | ${colour} | TTA ${variant.tta} | ${variant.head}: CV ${formatFoldSpread(row.cvRocAuc)} (within-source ${row.cvWithinSourceRocAuc.toFixed(3)}), ` +
      `LOSO ${Object.entries(losoBySource).map(([s, v]) => `${s} ${v.toFixed(3)}`).join(", ")} (${row.trainSeconds.toFixed(0)} s, load ${os.loadavg()[0].toFixed(2)})`,
  );
  writeOutputs(false);
  return row;
}

// Staged to fit a shared 2-core machine (a 9-training MLP evaluation took ~10 min at load 8):
// by default the logistic head everywhere, TTA and Shades-of-Gray on the cheap backbone, the
// MLP head on mobilenet_v2's cached features. --full runs every head × trick on each backbone.
async function evaluateBackbone(backbone: Backbone, label: string, plan: { heads: string[]; tricks: boolean }): Promise<void> {
  const dataset = loadDataset(dataDir);
  const t0 = performance.now();
  const views = plan.tricks ? ttaViews : 1;
  const fv = await extractFeatureViews(backbone, dataset.records, { ttaViews: views, cacheDir, onProgress: createProgressBar(`${label} features (${views} views)`) });
  const featureSeconds = (performance.now() - t0) / 1000;
  console.log(`${label}: ${fv.records.length} images, cache hits ${fv.cacheHits}, computed ${fv.computed}, ${featureSeconds.toFixed(0)} s; problems ${fv.problems.length}`);
  const plainRows: Row[] = [];
  for (const head of plan.heads) {
    plainRows.push(await evaluateVariant(label, "none", fv, { tta: "none", head, features: fv.views[0] }, featureSeconds));
  }
  if (!plan.tricks) return;
  const bestHead = [...plainRows].sort((a, b) => b.cvRocAuc.mean - a.cvRocAuc.mean)[0].head;
  if (fv.views.length > 1) {
    const meanView = new Float32Array(fv.views[0].length);
    for (const v of fv.views) for (let i = 0; i < v.length; i++) meanView[i] += v[i] / fv.views.length;
    await evaluateVariant(label, "none", fv, { tta: `${fv.views.length} prob`, head: bestHead, features: fv.views[0], extraViews: fv.views.slice(1) }, featureSeconds);
    await evaluateVariant(label, "none", fv, { tta: `${fv.views.length} feat`, head: bestHead, features: meanView }, featureSeconds);
  }
  const t2 = performance.now();
  const sog = await extractFeatureViews(backbone, dataset.records, { shadesOfGray: true, ttaViews: 1, cacheDir, onProgress: createProgressBar(`${label} Shades-of-Gray features`) });
  const sogSeconds = (performance.now() - t2) / 1000;
  console.log(`${label} Shades-of-Gray: cache hits ${sog.cacheHits}, computed ${sog.computed}, ${sogSeconds.toFixed(0)} s`);
  await evaluateVariant(label, "shades-of-gray", sog, { tta: "none", head: bestHead, features: sog.views[0] }, sogSeconds);
}

// Several backbones' features side by side: each sees the lesion differently (ImageNet-only vs
// nsfwjs-tuned weights, 224 vs 299 px), so the head can combine them. The library's ensemble
// (npm run experiment -- --backbone a+b+c) with each member's feature cache.
async function evaluateEnsemble(heads: string[]): Promise<void> {
  const dataset = loadDataset(dataDir);
  const ensemble = await loadBackboneEnsemble("mobilenet_v2+inception_v3+mobilenet_v1@1.0");
  const matrix = await extractEnsembleFeatures(ensemble, dataset.records, { cacheDir, onProgress: createProgressBar("ensemble features") });
  // Row labels as in earlier tables (rows are merged by label): "mobilenet_v1 α1.0 (1024)".
  const names = matrix.memberStats.map((m) => `${m.name.replace(/@(.+)$/, " α$1")} (${m.featureDim})`);
  console.log(`ensemble: ${matrix.rows} images, cache hits ${matrix.cacheHits}, computed ${matrix.computed}, ${(matrix.elapsedMs / 1000).toFixed(0)} s`);
  disposeBackboneEnsemble(ensemble);
  const fv = { records: matrix.sourceIndices.map((i) => dataset.records[i]), featureDim: matrix.featureDim };
  for (const head of heads) await evaluateVariant(`ensemble: ${names.join(" + ")}`, "none", fv, { tta: "none", head, features: matrix.features }, matrix.elapsedMs / 1000);
}

// Fine-tuning through the experiments pipeline (what `npm run experiment -- --fine-tune N` runs),
// once per split; the rows' numbers come from the two runs' summaries.
async function evaluateFineTune(fineTuneEpochs: number, unfreezeBlocks: number): Promise<void> {
  const headName = "mlp128 drop0.3 l2=1e-4";
  const head = HEADS[headName];
  const outputRoot = fs.mkdtempSync(path.join(os.tmpdir(), "quality-finetune-"));
  const t0 = performance.now();
  const common = {
    dataDir, backboneName: "mobilenet_v2", epochs, fineTuneEpochs, unfreezeBlocks, seed, outputRoot, featureCacheDir: cacheDir,
    head: { hiddenUnits: head.hiddenUnits, dropoutRate: head.dropoutRate, l2: head.l2, batchSize: head.batchSize, learningRate: head.learningRate },
    progress: "lines" as const,
  };
  const cv = await runExperiment({ ...common, split: "lesion", folds: 5 });
  const loso = await runExperiment({ ...common, split: "source" });
  const num = (v: number | null) => (v === null ? NaN : v);
  const spread = cv.summary.metrics.rocAuc;
  // runExperiment names source folds "source-<name>"; the table's columns are the bare names.
  const losoBySource = Object.fromEntries(loso.summary.folds.map((f) => [f.name.replace(/^source-/, ""), num(f.rocAuc)]));
  const row: Row = {
    backbone: `mobilenet_v2 + fine-tune ${unfreezeBlocks} block${unfreezeBlocks > 1 ? "s" : ""} × ${fineTuneEpochs} epoch${fineTuneEpochs > 1 ? "s" : ""}`,
    colour: "none",
    tta: "none",
    head: headName,
    cvRocAuc: { mean: num(spread.mean), sd: num(spread.sd), min: num(spread.min), max: num(spread.max), n: spread.n },
    cvPooledRocAuc: num(cv.summary.metrics.outOfFoldRocAuc),
    cvWithinSourceRocAuc: num(cv.summary.metrics.outOfFoldWithinSourceRocAuc),
    losoRocAucBySource: losoBySource,
    losoMinRocAuc: Math.min(...Object.values(losoBySource).filter((v) => !Number.isNaN(v))),
    losoWithinSourceRocAuc: num(loso.summary.metrics.outOfFoldWithinSourceRocAuc),
    // Cross-validation only (the runs also train and export an all-data model, not counted).
    trainSeconds: (cv.summary.timings.crossValidationMs + loso.summary.timings.crossValidationMs) / 1000,
    featureSeconds: (cv.summary.timings.featuresMs + loso.summary.timings.featuresMs) / 1000,
  };
  rows.push(row);
  console.log(`${row.backbone}: CV ${formatFoldSpread(row.cvRocAuc)}, LOSO ${Object.entries(losoBySource).map(([k, v]) => `${k} ${v.toFixed(3)}`).join(", ")} (${((performance.now() - t0) / 1000).toFixed(0)} s in all)`);
  fs.rmSync(outputRoot, { recursive: true, force: true });
  writeOutputs(false);
}

async function main(): Promise<void> {
  console.log(describeBackend(await selectBackend()));
  console.log(`data ${dataDir}, feature cache ${cacheDir}, load average ${os.loadavg().map((v) => v.toFixed(2)).join(" ")}`);
  const allHeads = Object.keys(HEADS);
  const full = args.full === true;
  const only = args.backbone as string | undefined;
  const known = ["mobilenet_v1", "mobilenet_v1_1.0", "mobilenet_v2", "inception_v3", "ensemble", "none"];
  if (only !== undefined && !known.includes(only)) throw new UnknownNameError("--backbone", only, known);
  const tricks = args.tricks === true;
  const dx = args.dx === true;
  if (dx && !["mobilenet_v2", "mobilenet_v1_1.0", "ensemble"].includes(only ?? "")) {
    throw new UnknownNameError("--backbone with --dx", String(only), ["mobilenet_v2", "mobilenet_v1_1.0", "ensemble"]);
  }
  // Plans below name binary heads; --dx swaps in the diagnosis-target heads and no tricks.
  const binaryHeads = allHeads.filter((h) => !DX_HEADS.includes(h));
  if (args["fine-tune"] !== undefined) {
    await evaluateFineTune(Number(args["fine-tune"]), Number(args["unfreeze-blocks"] ?? 1));
    writeOutputs(true);
    return;
  }
  if (only === undefined || only === "mobilenet_v1") {
    await evaluateBackbone(await loadBackbone("mobilenet_v1", { alpha: 0.25 }), "mobilenet_v1 α0.25", { heads: full ? allHeads : [binaryHeads[0]], tricks: true });
  }
  if (only === "mobilenet_v1_1.0") {
    await evaluateBackbone(await loadBackbone("mobilenet_v1", { alpha: 1.0 }), "mobilenet_v1 α1.0", { heads: dx ? DX_HEADS : binaryHeads.slice(0, 2), tricks: !dx && (full || tricks) });
  }
  if (only === undefined || only === "mobilenet_v2") {
    const heads = dx ? DX_HEADS : full ? allHeads : tricks ? [binaryHeads[0]] : binaryHeads.slice(0, 2);
    await evaluateBackbone(await loadBackbone("mobilenet_v2"), "mobilenet_v2", { heads, tricks: !dx && (full || tricks) });
  }
  if (args.inception || only === "inception_v3") {
    await evaluateBackbone(await loadBackbone("inception_v3"), "inception_v3", { heads: full ? allHeads : binaryHeads.slice(0, 2), tricks: full || tricks });
  }
  if (only === "ensemble") await evaluateEnsemble(dx ? DX_HEADS : binaryHeads.slice(0, 2));
  writeOutputs(true);
  console.log(`total ${((Date.now() - started) / 1000).toFixed(0)} s`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
