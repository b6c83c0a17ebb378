// Quality benchmark (not a test): ROC AUC of frozen-feature heads on the real HAM10000 dev set,
// lesion-grouped 5-fold CV (mean ± sd) and leave-one-source-out (AUC per held-out clinic), plus
// within-source AUC, for each backbone and the cheap generalisation tricks (Shades-of-Gray,
// test-time augmentation, head size/regularisation). Writes runs/quality-ham10000-dev.{md,json}.
// Run: npx tsx bench/quality.ts [--full] [--inception] [--backbone NAME [--tricks]] [--tta N] [--epochs N] [--data DIR]
//   NAME: mobilenet_v1 (α 0.25), mobilenet_v1_1.0 (α 1.0, from the weights mirror), mobilenet_v2,
//   mobilenet_v2_imagenet (ImageNet-only ONNX zoo weights, ONNX Runtime when installed),
//   inception_v3, ensemble (the features of mobilenet_v2 + inception_v3 + mobilenet_v1 α 1.0 side
//   by side), none (rewrite the table from runs/quality-ham10000-dev.json).
//   --fine-tune N [--unfreeze-blocks B]: mobilenet_v2 with its top B blocks fine-tuned for N epochs
//   after the head (runExperiment, lesion 5-fold and leave-one-source-out).
//   --dx: only the diagnosis-target heads ("… dx": softmax over the 7 HAM diagnoses, scored as
//   P(mel) + P(bcc) + P(akiec)) for the chosen --backbone (mobilenet_v2, mobilenet_v1_1.0, ensemble).
//   --nested [--inner-folds N] [--nested-heads logistic|all] [--nested-backbones a,b,…]: nested cross-validation of the choice
//   among the table's frozen-feature configurations (outer lesion 5-fold scores, inner grouped
//   folds inside each outer-train part choose; default 3 inner folds, logistic heads only, since
//   each configuration costs 5 + 5 × N head trainings). Its figures are the table's summary: the
//   nested estimate (honest) beside the best-of-N CV score (chosen on the same folds, optimistic).
//   --nested-backbones limits the choice to those feature sets (mobilenet_v1, mobilenet_v2,
//   mobilenet_v1_1.0, inception_v3, ensemble; default all), e.g. when inception_v3 is not cached.
//   --recipes a,b,…|all [--external DIR] [--target-sensitivity X] [--bootstrap-iterations N]:
//   transfer recipes (RECIPES below), each trained on HAM only: pooled CV, within-source and
//   leave-one-source-out AUC, external AUC on DIR (default ../shared/data/isic2020-ext) with a
//   patient-grouped bootstrap CI, and the external sensitivity/specificity of the threshold chosen
//   on pooled HAM out-of-fold scores vs the one that reaches the target on every left-out source.
//   Writes runs/recipes-transfer.{md,json}; ImageNet members need MELANOMA_LAB_WEIGHTS_DIR.
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
  createLeaveOneSourceOutFolds,
  runExperiment,
  crossValidateHead,
  formatFoldSpread,
  toFoldRows,
  extractFeatureViews,
  disposeBackboneEnsemble,
  extractEnsembleFeatures,
  loadBackboneEnsemble,
  computeRocAuc,
  bootstrapPairedDifference,
  createProgressBar,
  nestedCrossValidateHeads,
  concatenateFeatureViews,
  disposeBackbone,
  chooseThresholdForSensitivity,
  chooseThresholdForEverySource,
  computeSourceBalancedWeights,
  scoreExternalSet,
  summarizeFoldSpread,
} from "../lib/index.js";
import type {
  Backbone,
  LesionRecord,
  HeadConfig,
  FoldSpread,
  NestedConfiguration,
  BootstrapInterval,
  FeatureViews,
  FoldRows,
} from "../lib/index.js";

// Transfer recipes (--recipes): each is a feature set (one backbone, or several side by side),
// colour constancy, dihedral views averaged into one feature row, a head, and the loss weighting.
interface RecipeMember {
  name: string;
  alpha?: number;
}
interface Recipe {
  name: string;
  members: RecipeMember[];
  shadesOfGray?: boolean;
  /** Dihedral views whose features are averaged (1 = the image only). */
  views?: number;
  head: "logistic" | "mlp128" | "logistic dx";
  sourceBalanced?: boolean;
  /**
   * "melanoma": the head learns melanoma vs everything else (HAM's bcc/akiec count as negatives in
   * training) — the external set's positives are melanomas only. With a dx head, the softmax still
   * learns all 7 diagnoses and only P(mel) is summed (malignantDiagnoses ["mel"]). Every figure is
   * still scored against the malignant label. Default "malignant".
   */
  trainTarget?: "malignant" | "melanoma";
  /**
   * Train on HAM + one half of the external set's patients (createGroupedKFolds, 2 folds, seed):
   * every CV/LOSO fold and the final head get those rows for training only (they never score a
   * fold), and the external figures are of the held-back patients only. Default false (HAM only).
   */
  withExternalHalf?: boolean;
}
const V2: RecipeMember = { name: "mobilenet_v2" };
const V2_IMAGENET: RecipeMember = { name: "mobilenet_v2_imagenet" };
const V1: RecipeMember = { name: "mobilenet_v1", alpha: 1.0 };
const INCEPTION: RecipeMember = { name: "inception_v3" };
const RECIPES: Recipe[] = [
  { name: "nsfw-v2", members: [V2], head: "logistic" },
  { name: "imagenet", members: [V2_IMAGENET], head: "logistic" },
  { name: "imagenet-mlp", members: [V2_IMAGENET], head: "mlp128" },
  { name: "imagenet-dx", members: [V2_IMAGENET], head: "logistic dx" },
  { name: "imagenet-balanced", members: [V2_IMAGENET], head: "logistic", sourceBalanced: true },
  { name: "imagenet-sog", members: [V2_IMAGENET], head: "logistic", shadesOfGray: true },
  { name: "imagenet-views4", members: [V2_IMAGENET], head: "logistic", views: 4 },
  { name: "v1", members: [V1], head: "logistic" },
  { name: "inception", members: [INCEPTION], head: "logistic" },
  { name: "imagenet+nsfw-v2", members: [V2_IMAGENET, V2], head: "logistic" },
  { name: "ensemble3", members: [V2, INCEPTION, V1], head: "logistic" },
  { name: "ensemble3-dx", members: [V2, INCEPTION, V1], head: "logistic dx" },
  { name: "imagenet-ensemble3-dx", members: [V2_IMAGENET, INCEPTION, V1], head: "logistic dx" },
  { name: "imagenet+v1", members: [V2_IMAGENET, V1], head: "logistic" },
  { name: "imagenet-sog-balanced", members: [V2_IMAGENET], head: "logistic", shadesOfGray: true, sourceBalanced: true },
  { name: "imagenet-mel", members: [V2_IMAGENET], head: "logistic", trainTarget: "melanoma" },
  { name: "nsfw-v2-mel", members: [V2], head: "logistic", trainTarget: "melanoma" },
  { name: "ensemble3-mel", members: [V2, INCEPTION, V1], head: "logistic", trainTarget: "melanoma" },
  { name: "imagenet-sog-mel", members: [V2_IMAGENET], head: "logistic", shadesOfGray: true, trainTarget: "melanoma" },
  { name: "imagenet-sog-dx", members: [V2_IMAGENET], head: "logistic dx", shadesOfGray: true },
  { name: "imagenet-dx-mel", members: [V2_IMAGENET], head: "logistic dx", trainTarget: "melanoma" },
  {
    name: "imagenet-sog+ext-half",
    members: [V2_IMAGENET],
    head: "logistic",
    shadesOfGray: true,
    withExternalHalf: true,
  },
  { name: "imagenet+ext-half", members: [V2_IMAGENET], head: "logistic", withExternalHalf: true },
  {
    name: "imagenet-sog-dx-mel",
    members: [V2_IMAGENET],
    head: "logistic dx",
    shadesOfGray: true,
    trainTarget: "melanoma",
  },
];

const args = parseCommandLineOrExit(
  defineCli({
    name: "bench quality",
    usage: "npx tsx bench/quality.ts",
    summary:
      "ROC AUC of frozen-feature heads on the HAM10000 dev set (lesion-grouped 5-fold CV and leave-one-source-out); writes runs/quality-ham10000-dev.{md,json}.",
    examples: [
      "npx tsx bench/quality.ts --nested",
      "npx tsx bench/quality.ts --backbone mobilenet_v2 --tricks",
      "npx tsx bench/quality.ts --backbone ensemble --dx",
      "MELANOMA_LAB_WEIGHTS_DIR=../shared/weights npx tsx bench/quality.ts --recipes imagenet,imagenet-sog",
    ],
    options: {
      backbone: {
        type: "string",
        choices: [
          "mobilenet_v1",
          "mobilenet_v1_1.0",
          "mobilenet_v2",
          "mobilenet_v2_imagenet",
          "inception_v3",
          "ensemble",
          "none",
        ],
        description: "only this backbone (none: rewrite the table from the JSON)",
      },
      tta: { type: "integer", min: 1, default: 2, description: "test-time augmentation views" },
      epochs: { type: "integer", min: 1, default: 20, description: "head epochs" },
      data: { type: "string", valueName: "<dir>", description: "data set (default ../shared/data/ham10000-dev)" },
      seed: { type: "integer", min: 0, default: 42, description: "seed" },
      "fine-tune": {
        type: "integer",
        min: 1,
        description: "mobilenet_v2 with its top blocks fine-tuned for this many epochs after the head",
      },
      "unfreeze-blocks": { type: "integer", min: 1, default: 1, description: "top blocks fine-tuned with --fine-tune" },
      inception: { type: "boolean", description: "include inception_v3" },
      full: { type: "boolean", description: "the full plan" },
      tricks: {
        type: "boolean",
        description: "with --backbone: Shades-of-Gray, test-time augmentation and head variants",
      },
      dx: { type: "boolean", description: "only the diagnosis-target heads" },
      nested: {
        type: "boolean",
        description:
          "nested CV of the configuration choice (inner folds choose, outer folds score), beside the best-of-N selection score",
      },
      "inner-folds": {
        type: "integer",
        min: 2,
        default: 3,
        description: "with --nested: inner grouped folds inside each outer-train part",
      },
      "nested-heads": {
        type: "string",
        choices: ["logistic", "all"],
        default: "logistic",
        description: "with --nested: which heads compete",
      },
      recipes: {
        type: "string",
        valueName: "<a,b,…|all>",
        description: `transfer recipes (RECIPES in this file), each: pooled CV, within-source, leave-one-source-out, external AUC with a patient-grouped 95% CI, and the external sensitivity/specificity of the pooled and every-source thresholds; writes runs/recipes-transfer.{md,json}. Names: ${RECIPES.map((r) => r.name).join(", ")}`,
      },
      external: {
        type: "string",
        valueName: "<dir>",
        description: "with --recipes: the external set, trained on never (default ../shared/data/isic2020-ext)",
      },
      paired: {
        type: "string",
        valueName: "<a,b,…>",
        description:
          "paired patient-grouped bootstrap of external AUC differences, the first recipe minus each other one, from the " +
          "external probabilities saved in runs/recipes-transfer.json (same resamples for both); writes runs/recipes-paired-external.{md,json}",
      },
      "target-sensitivity": {
        type: "number",
        min: 0.5,
        max: 1,
        default: 0.9,
        description: "with --recipes: sensitivity the pooled and every-source thresholds must reach",
      },
      "bootstrap-iterations": {
        type: "integer",
        min: 10,
        default: 1000,
        description: "with --recipes: patient-grouped bootstrap replicates of the external intervals",
      },
      "nested-backbones": {
        type: "string",
        valueName: "<a,b,…>",
        description: "with --nested: only these backbones' configurations (default all with cached features)",
      },
    },
  }),
  process.argv.slice(2),
).values;
const root = findProjectRoot();
const dataDir =
  typeof args.data === "string" ? path.resolve(args.data) : path.join(findSharedDir(), "data", "ham10000-dev");
const ttaViews = args.tta;
const epochs = args.epochs;
const seed = args.seed;
const cacheDir = resolveFeatureCacheDir();
process.env.MELANOMA_LAB_WEIGHTS_DIR ??= path.join(findSharedDir(), "weights");

const HEADS: Record<string, HeadConfig> = {
  "logistic l2=1e-3": { hiddenUnits: 0, dropoutRate: 0, l2: 1e-3, epochs, batchSize: 32, learningRate: 1e-3 },
  "mlp128 drop0.3 l2=1e-4": { hiddenUnits: 128, dropoutRate: 0.3, l2: 1e-4, epochs, batchSize: 32, learningRate: 1e-3 },
  "mlp256 drop0.5 l2=1e-3": { hiddenUnits: 256, dropoutRate: 0.5, l2: 1e-3, epochs, batchSize: 32, learningRate: 1e-3 },
  // Diagnosis target: the same heads learning the 7 diagnoses, P(malignant) = Σ malignant ones.
  "logistic l2=1e-3 dx": {
    hiddenUnits: 0,
    dropoutRate: 0,
    l2: 1e-3,
    epochs,
    batchSize: 32,
    learningRate: 1e-3,
    target: "diagnosis",
  },
  "mlp128 drop0.3 l2=1e-4 dx": {
    hiddenUnits: 128,
    dropoutRate: 0.3,
    l2: 1e-4,
    epochs,
    batchSize: 32,
    learningRate: 1e-3,
    target: "diagnosis",
  },
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

/** The nested cross-validation of one run (--nested), stored beside the rows in the JSON. */
interface NestedSummary {
  measuredAt: string;
  outerFolds: number;
  innerFolds: number;
  /** The configurations the choice was among (row keys: backbone | colour | TTA | head). */
  configurations: string[];
  /** Table configurations left out of this nested run, and why. */
  leftOut: string[];
  nestedRocAuc: FoldSpread;
  selection: { configuration: string; rocAuc: FoldSpread };
  selectionOptimism: number;
  timesChosen: Record<string, number>;
  outerFoldResults: {
    name: string;
    validationImages: number;
    chosenConfiguration: string;
    outerRocAuc: number;
    innerMeanRocAucByConfiguration: Record<string, number>;
  }[];
  cvRocAucByConfiguration: Record<string, FoldSpread>;
  seconds: number;
}
let nestedSummary: NestedSummary | undefined;
const rowKey = (r: Row) => [r.backbone, r.colour, r.tta, r.head].join("|");
// Rows of earlier runs with the same data, seed and epochs are kept unless re-measured, so the
// table can be completed by several shorter runs (e.g. --backbone mobilenet_v2 --tricks). Read
// at each write, so that runs going on side by side keep each other's rows.
function readPrevious(): { rows: Row[]; nested?: NestedSummary } {
  const file = path.join(root, "runs", "quality-ham10000-dev.json");
  if (!fs.existsSync(file)) return { rows: [] };
  const old = JSON.parse(fs.readFileSync(file, "utf8")) as {
    dataDir: string;
    seed: number;
    epochs: number;
    rows: Row[];
    nested?: NestedSummary;
  };
  const same = old.dataDir === path.relative(root, dataDir) && old.seed === seed && old.epochs === epochs;
  return same
    ? {
        rows: old.rows.map((r) => ({ ...r, cvRocAuc: { ...r.cvRocAuc, sd: r.cvRocAuc.sd ?? NaN } })),
        nested: old.nested,
      }
    : { rows: [] };
}
const started = Date.now();
const load0 = os.loadavg()[0];

function writeOutputs(final: boolean): void {
  const measured = new Set(rows.map(rowKey));
  const previous = readPrevious();
  const allRows = [...previous.rows.filter((r) => !measured.has(rowKey(r))), ...rows];
  const nested = nestedSummary ?? previous.nested;
  const outDir = path.join(root, "runs");
  fs.mkdirSync(outDir, { recursive: true });
  const sources = [...new Set(allRows.flatMap((r) => Object.keys(r.losoRocAucBySource)))].sort();
  const f = (v: number) => (Number.isNaN(v) ? "n/a" : v.toFixed(3));
  const header = [
    "backbone",
    "colour",
    "TTA",
    "head",
    "CV AUC (mean ± sd)",
    "CV within-source",
    ...sources.map((s) => `LOSO ${s}`),
    "LOSO min",
    "LOSO within-source",
    "train s",
  ];
  const lines = [
    `# Quality on ${path.basename(dataDir)} (${final ? "complete" : "partial"})`,
    "",
    `Frozen backbone features + dense head, seed ${seed}, ${epochs} epochs, balanced class weights. CV: lesion-grouped stratified 5-fold. ` +
      `LOSO: leave-one-source-out (ham_dataset), AUC on the held-out source. Within-source: only benign/malignant pairs from the same source. ` +
      `TTA: dihedral views, "prob" = head probabilities averaged, "feat" = features averaged before the head. ` +
      `"ensemble" rows: several backbones' features side by side. Heads ending in "dx": trained on the diagnoses (softmax over the 7 HAM classes), scored as P(mel) + P(bcc) + P(akiec). "+ fine-tune" rows: the head, then the backbone's top blocks with it ` +
      `(npm run experiment -- --fine-tune; LOSO min excludes a source whose AUC is undefined; "train s" = both splits' cross-validation). ` +
      `Measured ${new Date(started).toISOString()} on ${os.cpus().length} cores, load average at start ${load0.toFixed(2)}, now ${os.loadavg()[0].toFixed(2)}` +
      (allRows.length > rows.length
        ? `; ${allRows.length - rows.length} rows kept from an earlier run (their "train s" was measured then, on the same shared machine, load up to ~10).`
        : "."),
    "",
    `| ${header.join(" | ")} |`,
    `| ${header.map(() => "---").join(" | ")} |`,
    ...allRows.map(
      (r) =>
        `| ${[r.backbone, r.colour, r.tta, r.head, formatFoldSpread(r.cvRocAuc), f(r.cvWithinSourceRocAuc), ...sources.map((s) => f(r.losoRocAucBySource[s] ?? NaN)), f(r.losoMinRocAuc), f(r.losoWithinSourceRocAuc), r.trainSeconds.toFixed(0)].join(" | ")} |`,
    ),
  ];
  // The CV column chose and scored each configuration on the same folds, so its maximum is
  // optimistic; the summary's claim is the nested estimate, measured in one run with that maximum.
  const best = [...allRows].sort((a, b) => b.cvRocAuc.mean - a.cvRocAuc.mean)[0];
  if (nested) {
    const sel = nested.selection;
    const chosen = Object.entries(nested.timesChosen)
      .filter(([, n]) => n > 0)
      .map(([c, n]) => `${c} (${n}×)`)
      .join("; ");
    lines.push(
      "",
      `## Summary: nested cross-validation (measured ${nested.measuredAt}, ${nested.seconds.toFixed(0)} s)`,
      "",
      `Choosing among ${nested.configurations.length} configurations by CV and then using the choice: **nested CV ROC AUC ${formatFoldSpread(nested.nestedRocAuc)}** ` +
        `(${nested.outerFolds} outer lesion-grouped folds score; inside each outer-train part, ${nested.innerFolds} inner grouped folds choose). ` +
        `Selection score, same run: best CV mean ${formatFoldSpread(sel.rocAuc)} (${sel.configuration}), chosen and scored on the same folds, hence optimistic by ${nested.selectionOptimism.toFixed(3)}. ` +
        `Chosen in the outer folds: ${chosen}.`,
      "",
      `| outer fold | images | chosen configuration | best inner mean AUC | outer AUC |`,
      `| --- | --- | --- | --- | --- |`,
      // Configuration names hold "|" (backbone | colour | TTA | head): escaped inside table cells.
      ...nested.outerFoldResults.map(
        (o) =>
          `| ${o.name} | ${o.validationImages} | ${o.chosenConfiguration.replaceAll("|", "\\|")} | ${f(o.innerMeanRocAucByConfiguration[o.chosenConfiguration])} | ${f(o.outerRocAuc)} |`,
      ),
      "",
      `Configurations in the nested choice (CV on the outer folds, this run): ${Object.entries(
        nested.cvRocAucByConfiguration,
      )
        .map(([c, v]) => `${c}: ${formatFoldSpread(v)}`)
        .join("; ")}.`,
      ...(nested.leftOut.length > 0 ? ["", `Left out of the nested choice: ${nested.leftOut.join("; ")}.`] : []),
      ...(best && !nested.configurations.includes([best.backbone, best.colour, best.tta, best.head].join(" | "))
        ? [
            "",
            `The table's highest CV mean, ${best.backbone} / ${best.colour} / TTA ${best.tta} / ${best.head}: ${formatFoldSpread(best.cvRocAuc)} (LOSO min ${f(best.losoMinRocAuc)}), is a selection score (best of ${allRows.length} rows, chosen and scored on the same folds, optimistic) and was not in this nested choice.`,
          ]
        : []),
      "",
      `Goal (CV ≥ 0.90 and every held-out source ≥ 0.85): ${nested.nestedRocAuc.mean >= 0.9 ? "CV part reached (nested)" : "not reached (nested CV below 0.90)"}.`,
    );
  } else if (best) {
    lines.push(
      "",
      `Selection score (optimistic: chosen and scored on the same folds; no nested run yet, see --nested): ${best.backbone} / ${best.colour} / TTA ${best.tta} / ${best.head}: CV ${formatFoldSpread(best.cvRocAuc)}, LOSO min ${f(best.losoMinRocAuc)}. ` +
        `Goal (CV ≥ 0.90 and every held-out source ≥ 0.85): ${best.cvRocAuc.mean >= 0.9 && best.losoMinRocAuc >= 0.85 ? "reached" : "not reached"}.`,
    );
  }
  fs.writeFileSync(path.join(outDir, "quality-ham10000-dev.md"), lines.join("\n") + "\n");
  fs.writeFileSync(
    path.join(outDir, "quality-ham10000-dev.json"),
    JSON.stringify(
      {
        kind: "quality-benchmark",
        dataDir: path.relative(root, dataDir),
        seed,
        epochs,
        ttaViews,
        complete: final,
        loadAverageAtStart: load0,
        rows: allRows,
        nested,
      },
      null,
      2,
    ) + "\n",
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
  const cvFolds = toFoldRows(
    fv.records,
    createGroupedKFolds(fv.records, { folds: 5, seed }).map((f) => ({ name: `fold-${f.foldIndex + 1}`, ...f })),
  );
  const losoFolds = toFoldRows(
    fv.records,
    createLeaveOneSourceOutFolds(fv.records).map((f) => ({ name: f.heldOutSource, ...f })),
  );
  const t1 = performance.now();
  const diagnoses = fv.records.map((r) => r.diagnosis);
  const base = {
    features: variant.features,
    featureDim: fv.featureDim,
    labels,
    sources,
    diagnoses,
    extraViews: variant.extraViews,
  };
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
      `LOSO ${Object.entries(losoBySource)
        .map(([s, v]) => `${s} ${v.toFixed(3)}`)
        .join(", ")} (${row.trainSeconds.toFixed(0)} s, load ${os.loadavg()[0].toFixed(2)})`,
  );
  writeOutputs(false);
  return row;
}

// Staged to fit a shared 2-core machine (a 9-training MLP evaluation took ~10 min at load 8):
// by default the logistic head everywhere, TTA and Shades-of-Gray on the cheap backbone, the
// MLP head on mobilenet_v2's cached features. --full runs every head × trick on each backbone.
async function evaluateBackbone(
  backbone: Backbone,
  label: string,
  plan: { heads: string[]; tricks: boolean },
): Promise<void> {
  const dataset = loadDataset(dataDir);
  const t0 = performance.now();
  const views = plan.tricks ? ttaViews : 1;
  const fv = await extractFeatureViews(backbone, dataset.records, {
    ttaViews: views,
    cacheDir,
    onProgress: createProgressBar(`${label} features (${views} views)`),
  });
  const featureSeconds = (performance.now() - t0) / 1000;
  console.log(
    `${label}: ${fv.records.length} images, cache hits ${fv.cacheHits}, computed ${fv.computed}, ${featureSeconds.toFixed(0)} s; problems ${fv.problems.length}`,
  );
  const plainRows: Row[] = [];
  for (const head of plan.heads) {
    plainRows.push(
      await evaluateVariant(label, "none", fv, { tta: "none", head, features: fv.views[0] }, featureSeconds),
    );
  }
  if (!plan.tricks) return;
  const bestHead = [...plainRows].sort((a, b) => b.cvRocAuc.mean - a.cvRocAuc.mean)[0].head;
  if (fv.views.length > 1) {
    const meanView = new Float32Array(fv.views[0].length);
    for (const v of fv.views) for (let i = 0; i < v.length; i++) meanView[i] += v[i] / fv.views.length;
    await evaluateVariant(
      label,
      "none",
      fv,
      { tta: `${fv.views.length} prob`, head: bestHead, features: fv.views[0], extraViews: fv.views.slice(1) },
      featureSeconds,
    );
    await evaluateVariant(
      label,
      "none",
      fv,
      { tta: `${fv.views.length} feat`, head: bestHead, features: meanView },
      featureSeconds,
    );
  }
  const t2 = performance.now();
  const sog = await extractFeatureViews(backbone, dataset.records, {
    shadesOfGray: true,
    ttaViews: 1,
    cacheDir,
    onProgress: createProgressBar(`${label} Shades-of-Gray features`),
  });
  const sogSeconds = (performance.now() - t2) / 1000;
  console.log(
    `${label} Shades-of-Gray: cache hits ${sog.cacheHits}, computed ${sog.computed}, ${sogSeconds.toFixed(0)} s`,
  );
  await evaluateVariant(
    label,
    "shades-of-gray",
    sog,
    { tta: "none", head: bestHead, features: sog.views[0] },
    sogSeconds,
  );
}

// Several backbones' features side by side: each sees the lesion differently (ImageNet-only vs
// nsfwjs-tuned weights, 224 vs 299 px), so the head can combine them. The library's ensemble
// (npm run experiment -- --backbone a+b+c) with each member's feature cache.
async function evaluateEnsemble(heads: string[]): Promise<void> {
  const dataset = loadDataset(dataDir);
  const ensemble = await loadBackboneEnsemble("mobilenet_v2+inception_v3+mobilenet_v1@1.0");
  const matrix = await extractEnsembleFeatures(ensemble, dataset.records, {
    cacheDir,
    onProgress: createProgressBar("ensemble features"),
  });
  // Row labels as in earlier tables (rows are merged by label): "mobilenet_v1 α1.0 (1024)".
  const names = matrix.memberStats.map((m) => `${m.name.replace(/@(.+)$/, " α$1")} (${m.featureDim})`);
  console.log(
    `ensemble: ${matrix.rows} images, cache hits ${matrix.cacheHits}, computed ${matrix.computed}, ${(matrix.elapsedMs / 1000).toFixed(0)} s`,
  );
  disposeBackboneEnsemble(ensemble);
  const fv = { records: matrix.sourceIndices.map((i) => dataset.records[i]), featureDim: matrix.featureDim };
  for (const head of heads)
    await evaluateVariant(
      `ensemble: ${names.join(" + ")}`,
      "none",
      fv,
      { tta: "none", head, features: matrix.features },
      matrix.elapsedMs / 1000,
    );
}

// Fine-tuning through the experiments pipeline (what `npm run experiment -- --fine-tune N` runs),
// once per split; the rows' numbers come from the two runs' summaries.
async function evaluateFineTune(fineTuneEpochs: number, unfreezeBlocks: number): Promise<void> {
  const headName = "mlp128 drop0.3 l2=1e-4";
  const head = HEADS[headName];
  const outputRoot = fs.mkdtempSync(path.join(os.tmpdir(), "quality-finetune-"));
  const t0 = performance.now();
  const common = {
    dataDir,
    backboneName: "mobilenet_v2",
    epochs,
    fineTuneEpochs,
    unfreezeBlocks,
    seed,
    outputRoot,
    featureCacheDir: cacheDir,
    head: {
      hiddenUnits: head.hiddenUnits,
      dropoutRate: head.dropoutRate,
      l2: head.l2,
      batchSize: head.batchSize,
      learningRate: head.learningRate,
    },
    progress: "lines" as const,
  };
  const cv = await runExperiment({ ...common, split: "lesion", folds: 5 });
  const loso = await runExperiment({ ...common, split: "source" });
  const num = (v: number | null) => (v === null ? NaN : v);
  const spread = cv.summary.metrics.rocAuc;
  // runExperiment names source folds "source-<name>"; the table's columns are the bare names.
  const losoBySource = Object.fromEntries(
    loso.summary.folds.map((f) => [f.name.replace(/^source-/, ""), num(f.rocAuc)]),
  );
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
  console.log(
    `${row.backbone}: CV ${formatFoldSpread(row.cvRocAuc)}, LOSO ${Object.entries(losoBySource)
      .map(([k, v]) => `${k} ${v.toFixed(3)}`)
      .join(", ")} (${((performance.now() - t0) / 1000).toFixed(0)} s in all)`,
  );
  fs.rmSync(outputRoot, { recursive: true, force: true });
  writeOutputs(false);
}

// Nested cross-validation of the choice among the table's frozen-feature configurations (same
// labels, folds, seeds and heads as their rows), so the summary can state what choosing by CV is
// worth on unseen folds. Fine-tuning is left out: its 5 + 5 × inner folds runs would take hours here.
const NESTED_BACKBONES = ["mobilenet_v1", "mobilenet_v2", "mobilenet_v1_1.0", "inception_v3", "ensemble"] as const;
async function evaluateNested(
  innerFolds: number,
  headsMode: "logistic" | "all",
  backbones: readonly string[],
): Promise<void> {
  const t0 = performance.now();
  const dataset = loadDataset(dataDir);
  const candidates: {
    key: string;
    records: LesionRecord[];
    featureDim: number;
    features: Float32Array;
    extraViews?: Float32Array[];
    head: string;
  }[] = [];
  const keyOf = (backbone: string, colour: string, tta: string, head: string) =>
    [backbone, colour, tta, head].join(" | ");
  const useHead = (head: string) => headsMode === "all" || HEADS[head].hiddenUnits === 0;
  const leftOut: string[] = [
    "mobilenet_v2 + fine-tune 1 block × 2 epochs (its nested CV would take hours on this CPU)",
  ];
  const addHeads = (
    label: string,
    colour: string,
    fv: { records: LesionRecord[]; featureDim: number },
    tta: string,
    features: Float32Array,
    heads: string[],
    extraViews?: Float32Array[],
  ) => {
    for (const head of heads) {
      const key = keyOf(label, colour, tta, head);
      if (useHead(head))
        candidates.push({ key, records: fv.records, featureDim: fv.featureDim, features, extraViews, head });
      else leftOut.push(`${key} (MLP head; --nested-heads all includes it)`);
    }
  };
  const binary = Object.keys(HEADS).filter((h) => !DX_HEADS.includes(h));
  const [logistic, mlp128] = binary;
  const logisticDx = DX_HEADS[0];
  // Same feature variants as the table's rows (evaluateBackbone / evaluateEnsemble plans).
  const withTricks = async (backbone: Backbone, label: string, heads: string[]) => {
    const fv = await extractFeatureViews(backbone, dataset.records, {
      ttaViews,
      cacheDir,
      onProgress: createProgressBar(`${label} features (${ttaViews} views)`),
    });
    addHeads(label, "none", fv, "none", fv.views[0], heads);
    if (fv.views.length > 1) {
      const meanView = new Float32Array(fv.views[0].length);
      for (const v of fv.views) for (let i = 0; i < v.length; i++) meanView[i] += v[i] / fv.views.length;
      addHeads(label, "none", fv, `${fv.views.length} prob`, fv.views[0], [logistic], fv.views.slice(1));
      addHeads(label, "none", fv, `${fv.views.length} feat`, meanView, [logistic]);
    }
    const sog = await extractFeatureViews(backbone, dataset.records, {
      shadesOfGray: true,
      ttaViews: 1,
      cacheDir,
      onProgress: createProgressBar(`${label} Shades-of-Gray features`),
    });
    addHeads(label, "shades-of-gray", sog, "none", sog.views[0], [logistic]);
  };
  const plain = async (backbone: Backbone, label: string, heads: string[]) => {
    const fv = await extractFeatureViews(backbone, dataset.records, {
      ttaViews: 1,
      cacheDir,
      onProgress: createProgressBar(`${label} features`),
    });
    addHeads(label, "none", fv, "none", fv.views[0], heads);
  };
  const skip = (name: string, rowsOf: string) => {
    if (backbones.includes(name)) return false;
    leftOut.push(`${rowsOf} (not in --nested-backbones)`);
    return true;
  };
  if (!skip("mobilenet_v1", "the 4 mobilenet_v1 α0.25 rows"))
    await withTricks(await loadBackbone("mobilenet_v1", { alpha: 0.25 }), "mobilenet_v1 α0.25", [logistic]);
  if (!skip("mobilenet_v2", "the 7 mobilenet_v2 rows"))
    await withTricks(await loadBackbone("mobilenet_v2"), "mobilenet_v2", [logistic, mlp128, ...DX_HEADS]);
  if (!skip("inception_v3", "the inception_v3 row"))
    await plain(await loadBackbone("inception_v3"), "inception_v3", [logistic]);
  if (!skip("mobilenet_v1_1.0", "the 2 mobilenet_v1 α1.0 rows"))
    await plain(await loadBackbone("mobilenet_v1", { alpha: 1.0 }), "mobilenet_v1 α1.0", [logistic, mlp128]);
  if (!skip("ensemble", "the 4 ensemble rows")) {
    const ensemble = await loadBackboneEnsemble("mobilenet_v2+inception_v3+mobilenet_v1@1.0");
    const matrix = await extractEnsembleFeatures(ensemble, dataset.records, {
      cacheDir,
      onProgress: createProgressBar("ensemble features"),
    });
    const names = matrix.memberStats.map((m) => `${m.name.replace(/@(.+)$/, " α$1")} (${m.featureDim})`);
    disposeBackboneEnsemble(ensemble);
    const ensembleRecords = {
      records: matrix.sourceIndices.map((i) => dataset.records[i]),
      featureDim: matrix.featureDim,
    };
    addHeads(`ensemble: ${names.join(" + ")}`, "none", ensembleRecords, "none", matrix.features, [
      logistic,
      mlp128,
      logisticDx,
      DX_HEADS[1],
    ]);
  }

  // Every configuration must see the same images in the same order: keep the images all have.
  const common = candidates.reduce(
    (set, c) => new Set(c.records.map((r) => r.imageId).filter((id) => set.has(id))),
    new Set(candidates[0].records.map((r) => r.imageId)),
  );
  const records = dataset.records.filter((r) => common.has(r.imageId));
  if (records.length < dataset.records.length)
    console.log(
      `nested: ${dataset.records.length - records.length} images left out (not every configuration could read them)`,
    );
  const labels = records.map((r) => (r.label === "malignant" ? 1 : 0));
  const sources = records.map((r) => r.source ?? "unknown");
  const diagnoses = records.map((r) => r.diagnosis);
  const reorder = (c: (typeof candidates)[number], matrixOf: Float32Array) => {
    const rowOf = new Map(c.records.map((r, i) => [r.imageId, i]));
    const out = new Float32Array(records.length * c.featureDim);
    records.forEach((r, i) => {
      const from = rowOf.get(r.imageId)!;
      out.set(matrixOf.subarray(from * c.featureDim, (from + 1) * c.featureDim), i * c.featureDim);
    });
    return out;
  };
  const configurations: NestedConfiguration[] = candidates.map((c) => ({
    name: c.key,
    head: HEADS[c.head],
    rows: {
      features: reorder(c, c.features),
      featureDim: c.featureDim,
      labels,
      sources,
      diagnoses,
      extraViews: c.extraViews?.map((v) => reorder(c, v)),
    },
  }));
  console.log(
    `nested: ${configurations.length} configurations, 5 outer × ${innerFolds} inner folds, ${configurations.length * (5 + 5 * innerFolds)} head trainings`,
  );
  const tNested = performance.now();
  const nested = await nestedCrossValidateHeads(records, configurations, {
    outerFolds: 5,
    innerFolds,
    seed,
    onProgress: (e) =>
      console.log(
        `nested ${e.done}/${e.total} ${e.configuration} ${e.stage === "selection" ? "CV on the outer folds" : `inner folds of outer fold ${e.outerFold! + 1}`}: mean AUC ${e.meanRocAuc.toFixed(3)} (${((performance.now() - tNested) / 1000).toFixed(0)} s, load ${os.loadavg()[0].toFixed(1)})`,
      ),
  });
  nestedSummary = {
    measuredAt: new Date().toISOString(),
    outerFolds: nested.outerFoldCount,
    innerFolds: nested.innerFoldCount,
    configurations: configurations.map((c) => c.name),
    leftOut,
    nestedRocAuc: nested.nestedRocAuc,
    selection: nested.selection,
    selectionOptimism: nested.selectionOptimism,
    timesChosen: nested.timesChosen,
    outerFoldResults: nested.outerFolds,
    cvRocAucByConfiguration: nested.cvRocAucByConfiguration,
    seconds: (performance.now() - t0) / 1000,
  };
  console.log(
    `nested CV ROC AUC ${formatFoldSpread(nested.nestedRocAuc)} vs selection (best-of-${configurations.length}) ${formatFoldSpread(nested.selection.rocAuc)} (${nested.selection.configuration})`,
  );
}

// ── Transfer recipes (--recipes): trained on HAM only, measured on HAM (CV, within-source,
// leave-one-source-out) and on the external collection (never trained on, never used to choose).
const RECIPE_HEADS: Record<Recipe["head"], string> = {
  logistic: "logistic l2=1e-3",
  mlp128: "mlp128 drop0.3 l2=1e-4",
  "logistic dx": "logistic l2=1e-3 dx",
};
interface ThresholdOnExternal {
  thresholdProb: number;
  /** Lowest sensitivity over the left-out HAM sources' leave-one-source-out scores at this threshold. */
  losoMinSensitivity: number;
  sensitivity: BootstrapInterval;
  specificity: BootstrapInterval;
}
interface RecipeRow {
  recipe: string;
  description: string;
  cvRocAuc: FoldSpread;
  cvPooledRocAuc: number;
  cvWithinSourceRocAuc: number;
  losoRocAucBySource: Record<string, number>;
  losoWorstSource: string;
  losoMinRocAuc: number;
  losoWithinSourceRocAuc: number;
  external: {
    images: number;
    positives: number;
    patients: number;
    rocAuc: BootstrapInterval;
    /** HAM + external half only: a HAM-only head's AUC on the same held-back patients (same resampling seed). */
    hamOnlyRocAuc?: BootstrapInterval;
    /** The external probabilities (6 decimals) per image id, so paired comparisons can be recomputed. */
    scores?: { imageIds: string[]; probabilities: number[] };
  };
  /** Chosen on lesion-grouped 5-fold out-of-fold HAM scores, all images pooled. */
  pooledThreshold: ThresholdOnExternal;
  /** The highest threshold reaching the target on every HAM source's leave-one-source-out scores. */
  everySourceThreshold: ThresholdOnExternal & { limitingSource: string };
  featureSeconds: number;
  trainSeconds: number;
}

function describeRecipe(r: Recipe): string {
  const members = r.members.map((m) => (m.alpha === undefined ? m.name : `${m.name} α${m.alpha}`)).join(" + ");
  return [
    members,
    r.shadesOfGray === true ? "Shades of Gray" : "",
    (r.views ?? 1) > 1 ? `${r.views} dihedral views averaged` : "",
    `${RECIPE_HEADS[r.head]} head`,
    r.sourceBalanced === true ? "source-balanced loss" : "",
    r.withExternalHalf === true
      ? "trained on HAM + half of isic2020-ext's patients; external = the held-back patients only"
      : "",
    r.trainTarget !== "melanoma"
      ? ""
      : r.head === "logistic dx"
        ? "scored as P(melanoma) (7 diagnoses learnt, mel summed)"
        : "trained on melanoma vs rest",
  ]
    .filter((x) => x !== "")
    .join(", ");
}

const backboneCache = new Map<string, Backbone>();
async function recipeFeatures(r: Recipe, records: readonly LesionRecord[], label: string): Promise<FeatureViews> {
  const parts: FeatureViews[] = [];
  for (const m of r.members) {
    const key = `${m.name}@${m.alpha ?? ""}`;
    if (!backboneCache.has(key))
      backboneCache.set(key, await loadBackbone(m.name, m.alpha === undefined ? {} : { alpha: m.alpha }));
    const views = r.views ?? 1;
    const fv = await extractFeatureViews(backboneCache.get(key)!, records, {
      shadesOfGray: r.shadesOfGray === true,
      ttaViews: views,
      cacheDir,
      onProgress: createProgressBar(`${label} ${key}${r.shadesOfGray === true ? " SoG" : ""} (${views} views)`),
    });
    if (fv.views.length > 1) {
      // Views averaged into one feature row ("feat" TTA): the head sees one matrix in training and scoring.
      const meanView = new Float32Array(fv.views[0].length);
      for (const v of fv.views) for (let i = 0; i < v.length; i++) meanView[i] += v[i] / fv.views.length;
      parts.push({ ...fv, views: [meanView] });
    } else parts.push(fv);
  }
  return parts.length === 1 ? parts[0] : concatenateFeatureViews(parts);
}

function sensitivityAt(labels: number[], probs: ArrayLike<number>, threshold: number): number {
  let tp = 0;
  let p = 0;
  labels.forEach((y, i) => {
    if (y === 1) {
      p++;
      if (probs[i] >= threshold) tp++;
    }
  });
  return p > 0 ? tp / p : NaN;
}

async function evaluateRecipe(
  r: Recipe,
  hamRecords: readonly LesionRecord[],
  extRecords: readonly LesionRecord[],
  target: number,
  bootstrapIterations: number,
): Promise<RecipeRow> {
  const t0 = performance.now();
  const ham = await recipeFeatures(r, hamRecords, `${r.name} HAM`);
  const extAll = await recipeFeatures(r, extRecords, `${r.name} external`);
  // HAM + ext: one patient-grouped half of the external set joins training, the other is scored.
  const extHalves =
    r.withExternalHalf === true ? createGroupedKFolds(extAll.records, { folds: 2, seed })[0] : undefined;
  const pickExt = (ids: ReadonlySet<string>) => {
    const keep = extAll.records.flatMap((x, i) => (ids.has(x.imageId) ? [i] : []));
    const features = new Float32Array(keep.length * extAll.featureDim);
    keep.forEach((i, k) =>
      features.set(extAll.views[0].subarray(i * extAll.featureDim, (i + 1) * extAll.featureDim), k * extAll.featureDim),
    );
    return { records: keep.map((i) => extAll.records[i]), features };
  };
  const extTrain = extHalves ? pickExt(new Set(extHalves.train.map((x) => x.imageId))) : undefined;
  const ext = extHalves
    ? (() => {
        const held = pickExt(new Set(extHalves.validation.map((x) => x.imageId)));
        return { records: held.records, featureDim: extAll.featureDim, views: [held.features] };
      })()
    : extAll;
  const featureSeconds = (performance.now() - t0) / 1000;
  const t1 = performance.now();
  const baseHead = HEADS[RECIPE_HEADS[r.head]];
  // A melanoma-target dx head sums only mel: its labels (mel vs rest) then fit its diagnoses.
  const head: HeadConfig =
    r.trainTarget === "melanoma" && baseHead.target === "diagnosis"
      ? { ...baseHead, malignantDiagnoses: ["mel"] }
      : baseHead;
  const labels = ham.records.map((x) => (x.label === "malignant" ? 1 : 0));
  const sources = ham.records.map((x) => x.source ?? "unknown");
  const trainLabels = r.trainTarget === "melanoma" ? ham.records.map((x) => (x.diagnosis === "mel" ? 1 : 0)) : labels;
  const hamRows = ham.records.length;
  // External training rows (if any) follow the HAM rows; they only ever train.
  const extTrainRows = extTrain ? extTrain.records.map((_, k) => hamRows + k) : [];
  const withExtTrain = (a: Float32Array) => {
    if (!extTrain) return a;
    const joined = new Float32Array(a.length + extTrain.features.length);
    joined.set(a);
    joined.set(extTrain.features, a.length);
    return joined;
  };
  const extTrainLabels = extTrain ? extTrain.records.map((x) => (x.label === "malignant" ? 1 : 0)) : [];
  const rowSources = [...sources, ...(extTrain ? extTrain.records.map((x) => x.source ?? "external") : [])];
  const rows = {
    features: withExtTrain(ham.views[0]),
    featureDim: ham.featureDim,
    labels: [...trainLabels, ...extTrainLabels],
    sources: rowSources,
    diagnoses: [...ham.records.map((x) => x.diagnosis), ...(extTrain ? extTrain.records.map((x) => x.diagnosis) : [])],
    rowWeights: r.sourceBalanced === true ? computeSourceBalancedWeights(rowSources) : undefined,
  };
  const addExtTrain = (folds: FoldRows[]) => folds.map((f) => ({ ...f, trainRows: [...f.trainRows, ...extTrainRows] }));
  const cvFolds = addExtTrain(
    toFoldRows(
      ham.records,
      createGroupedKFolds(ham.records, { folds: 5, seed }).map((f) => ({ name: `fold-${f.foldIndex + 1}`, ...f })),
    ),
  );
  const losoFolds = addExtTrain(
    toFoldRows(
      ham.records,
      createLeaveOneSourceOutFolds(ham.records).map((f) => ({ name: f.heldOutSource, ...f })),
    ),
  );
  const cvAll = await crossValidateHead(rows, cvFolds, { head, seed });
  const losoAll = await crossValidateHead(rows, losoFolds, { head, seed });
  // Out-of-fold scores exist for HAM rows only (external training rows never score a fold).
  const cv = { outOfFoldProbs: cvAll.outOfFoldProbs.subarray(0, hamRows) };
  const loso = { outOfFoldProbs: losoAll.outOfFoldProbs.subarray(0, hamRows) };
  // Fold AUCs against the malignant label from the out-of-fold scores (the folds' own AUCs are
  // against the training labels, which differ for a melanoma-target recipe).
  const foldAuc = (f: { validationRows: readonly number[] }, probs: Float32Array) => {
    const y = f.validationRows.map((i) => labels[i]);
    return y.includes(1) && y.includes(0)
      ? computeRocAuc(
          y,
          f.validationRows.map((i) => probs[i]),
        )
      : NaN;
  };
  const cvFoldAucs = cvFolds.map((f) => foldAuc(f, cv.outOfFoldProbs));
  const losoAucs = losoFolds.map((f) => ({ name: f.name, rocAuc: foldAuc(f, loso.outOfFoldProbs) }));
  const losoBySource = Object.fromEntries(losoAucs.map((f) => [f.name, f.rocAuc]));
  const worst = losoAucs.filter((f) => !Number.isNaN(f.rocAuc)).sort((a, b) => a.rocAuc - b.rocAuc)[0];
  // Thresholds from HAM out-of-fold scores only; the external set only measures them.
  const pooled = chooseThresholdForSensitivity(labels, cv.outOfFoldProbs, target);
  const everySource = chooseThresholdForEverySource(labels, loso.outOfFoldProbs, sources, target);
  const losoMinSensitivity = (threshold: number) =>
    Math.min(
      ...losoFolds.map((f) =>
        sensitivityAt(
          f.validationRows.map((i) => labels[i]),
          f.validationRows.map((i) => loso.outOfFoldProbs[i]),
          threshold,
        ),
      ),
    );
  const extLabels = ext.records.map((x) => (x.label === "malignant" ? 1 : 0));
  const extGroups = ext.records.map((x) => `patient:${x.patientId ?? x.lesionId ?? x.imageId}`);
  const external = await scoreExternalSet(
    rows,
    { features: ext.views[0], featureDim: ext.featureDim, labels: extLabels, groupIds: extGroups },
    {
      head,
      seed,
      thresholds: { pooled: pooled.thresholdProb, everySource: everySource.thresholdProb },
      bootstrapIterations,
    },
  );
  const [atPooled, atEvery] = external.summary.thresholds;
  // The comparison the external half needs: a head trained on HAM alone, scored on the same patients.
  const hamOnly = extTrain
    ? await scoreExternalSet(
        {
          features: ham.views[0],
          featureDim: ham.featureDim,
          labels: trainLabels,
          diagnoses: ham.records.map((x) => x.diagnosis),
        },
        { features: ext.views[0], featureDim: ext.featureDim, labels: extLabels, groupIds: extGroups },
        { head, seed, thresholds: {}, bootstrapIterations },
      )
    : undefined;
  const row: RecipeRow = {
    recipe: r.name,
    description: describeRecipe(r),
    cvRocAuc: summarizeFoldSpread(cvFoldAucs),
    cvPooledRocAuc: computeRocAuc(labels, cv.outOfFoldProbs),
    cvWithinSourceRocAuc: computeWithinSourceRocAuc(labels, cv.outOfFoldProbs, sources).auc,
    losoRocAucBySource: losoBySource,
    losoWorstSource: worst.name,
    losoMinRocAuc: worst.rocAuc,
    losoWithinSourceRocAuc: computeWithinSourceRocAuc(labels, loso.outOfFoldProbs, sources).auc,
    external: {
      images: external.summary.images,
      positives: external.summary.positives,
      patients: external.summary.groups,
      rocAuc: external.summary.rocAuc,
      ...(hamOnly ? { hamOnlyRocAuc: hamOnly.summary.rocAuc } : {}),
      scores: {
        imageIds: ext.records.map((x) => x.imageId),
        probabilities: Array.from(external.probabilities, (v) => Number(v.toFixed(6))),
      },
    },
    pooledThreshold: {
      thresholdProb: pooled.thresholdProb,
      losoMinSensitivity: losoMinSensitivity(pooled.thresholdProb),
      sensitivity: atPooled.sensitivity,
      specificity: atPooled.specificity,
    },
    everySourceThreshold: {
      thresholdProb: everySource.thresholdProb,
      limitingSource: everySource.limitingSource,
      losoMinSensitivity: losoMinSensitivity(everySource.thresholdProb),
      sensitivity: atEvery.sensitivity,
      specificity: atEvery.specificity,
    },
    featureSeconds,
    trainSeconds: (performance.now() - t1) / 1000,
  };
  console.log(`${r.name}: ${formatRecipeRow(row).join(" | ")} (load ${os.loadavg()[0].toFixed(1)})`);
  return row;
}

const ci = (b: BootstrapInterval) => `${b.estimate.toFixed(3)} [${b.lower.toFixed(3)}, ${b.upper.toFixed(3)}]`;
function formatRecipeRow(r: RecipeRow): string[] {
  const f = (v: number) => (Number.isNaN(v) ? "n/a" : v.toFixed(3));
  const sources = Object.keys(r.losoRocAucBySource).sort();
  return [
    r.recipe,
    r.description,
    formatFoldSpread(r.cvRocAuc),
    f(r.cvPooledRocAuc),
    f(r.cvWithinSourceRocAuc),
    sources.map((s) => `${s} ${f(r.losoRocAucBySource[s])}`).join(", "),
    `${f(r.losoMinRocAuc)} (${r.losoWorstSource})`,
    f(r.losoWithinSourceRocAuc),
    ci(r.external.rocAuc) +
      (r.external.hamOnlyRocAuc
        ? ` on ${r.external.patients} held-back patients (${r.external.positives} melanomas); HAM-only head there ${ci(r.external.hamOnlyRocAuc)}`
        : ""),
    `${r.pooledThreshold.thresholdProb.toFixed(3)}: LOSO min sens ${f(r.pooledThreshold.losoMinSensitivity)}; ext sens ${ci(r.pooledThreshold.sensitivity)}, spec ${ci(r.pooledThreshold.specificity)}`,
    `${r.everySourceThreshold.thresholdProb.toFixed(3)} (${r.everySourceThreshold.limitingSource}): LOSO min sens ${f(r.everySourceThreshold.losoMinSensitivity)}; ext sens ${ci(r.everySourceThreshold.sensitivity)}, spec ${ci(r.everySourceThreshold.specificity)}`,
    `${r.featureSeconds.toFixed(0)} + ${r.trainSeconds.toFixed(0)}`,
  ];
}

/**
 * Paired bootstrap of external ROC AUC differences: the first recipe minus each other one, on the
 * images both scored, resampling patients (the same resamples for both recipes of a pair).
 */
function comparePairedExternal(names: string[], externalDir: string, iterations: number): void {
  if (names.length < 2) throw new UnknownNameError("--paired (at least two recipes)", names.join(","), ["a,b"]);
  const table = JSON.parse(fs.readFileSync(path.join(root, "runs", "recipes-transfer.json"), "utf8")) as {
    rows: RecipeRow[];
  };
  const scoresOf = (name: string) => {
    const row = table.rows.find((r) => r.recipe === name);
    if (!row?.external.scores)
      throw new UnknownNameError(
        "--paired (a recipe with saved external probabilities)",
        name,
        table.rows.filter((r) => r.external.scores).map((r) => r.recipe),
      );
    return new Map(row.external.scores.imageIds.map((id, i) => [id, row.external.scores!.probabilities[i]]));
  };
  const records = loadDataset(externalDir).records;
  const base = scoresOf(names[0]);
  const comparisons = names.slice(1).map((other) => {
    const b = scoresOf(other);
    const both = records.filter((r) => base.has(r.imageId) && b.has(r.imageId));
    const labels = both.map((r) => (r.label === "malignant" ? 1 : 0));
    const groupIds = both.map((r) => `patient:${r.patientId ?? r.lesionId ?? r.imageId}`);
    const pa = both.map((r) => base.get(r.imageId)!);
    const pb = both.map((r) => b.get(r.imageId)!);
    const paired = bootstrapPairedDifference(labels, pa, pb, computeRocAuc, { seed, iterations, groupIds });
    return {
      a: names[0],
      b: other,
      images: both.length,
      positives: labels.filter((y) => y === 1).length,
      patients: new Set(groupIds).size,
      rocAucA: computeRocAuc(labels, pa),
      rocAucB: computeRocAuc(labels, pb),
      difference: paired.difference,
      fractionAtOrBelowZero: paired.fractionAtOrBelowZero,
    };
  });
  const settings = { externalDir: path.relative(root, externalDir), seed, iterations };
  fs.writeFileSync(
    path.join(root, "runs", "recipes-paired-external.json"),
    JSON.stringify(
      { kind: "recipes-paired-external", settings, measuredAt: new Date().toISOString(), comparisons },
      null,
      2,
    ) + "\n",
  );
  const lines = [
    `# Paired external AUC differences on ${settings.externalDir}`,
    "",
    `Each row: ROC AUC of recipe A minus recipe B on the same images, from the external probabilities saved in runs/recipes-transfer.json; ` +
      `95% percentile interval over ${iterations} stratified bootstrap resamples of patients (seed ${seed}), both recipes scored on each resample. ` +
      `"share ≤ 0" is the fraction of resamples where A did not beat B. Written by npx tsx bench/quality.ts --paired ${names.join(",")}.`,
    "",
    "| A | B | images (melanomas, patients) | AUC A | AUC B | A − B [95% CI] | share ≤ 0 |",
    "| --- | --- | --- | --- | --- | --- | --- |",
    ...comparisons.map(
      (c) =>
        `| ${c.a} | ${c.b} | ${c.images} (${c.positives}, ${c.patients}) | ${c.rocAucA.toFixed(3)} | ${c.rocAucB.toFixed(3)} | ` +
        `${c.difference.estimate.toFixed(3)} [${c.difference.lower.toFixed(3)}, ${c.difference.upper.toFixed(3)}] | ${c.fractionAtOrBelowZero.toFixed(3)} |`,
    ),
  ];
  fs.writeFileSync(path.join(root, "runs", "recipes-paired-external.md"), lines.join("\n") + "\n");
  console.log(lines.join("\n"));
}

async function evaluateRecipes(
  names: string[],
  externalDir: string,
  target: number,
  iterations: number,
): Promise<void> {
  const hamRecords = loadDataset(dataDir).records;
  const extRecords = loadDataset(externalDir).records;
  const file = path.join(root, "runs", "recipes-transfer.json");
  const settings = {
    dataDir: path.relative(root, dataDir),
    externalDir: path.relative(root, externalDir),
    seed,
    epochs,
    targetSensitivity: target,
  };
  for (const name of names) {
    const recipe = RECIPES.find((r) => r.name === name)!;
    const row = await evaluateRecipe(recipe, hamRecords, extRecords, target, iterations);
    // Rows of earlier runs with the same settings are kept unless re-measured (runs can go side by side).
    const previous = fs.existsSync(file)
      ? (JSON.parse(fs.readFileSync(file, "utf8")) as { settings: typeof settings; rows: RecipeRow[] })
      : undefined;
    const kept =
      previous && JSON.stringify(previous.settings) === JSON.stringify(settings)
        ? previous.rows.filter((x) => x.recipe !== row.recipe)
        : [];
    const order = RECIPES.map((x) => x.name);
    const allRows = [...kept, row].sort((a, b) => order.indexOf(a.recipe) - order.indexOf(b.recipe));
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(
      file,
      JSON.stringify(
        { kind: "recipes-transfer", settings, measuredAt: new Date().toISOString(), rows: allRows },
        null,
        2,
      ) + "\n",
    );
    const header = [
      "recipe",
      "what",
      "CV AUC (5 folds, mean ± sd)",
      "CV pooled OOF AUC",
      "CV within-source",
      "LOSO AUC per held-out source",
      "LOSO worst",
      "LOSO within-source",
      "external AUC [95% CI]",
      `pooled threshold (sens ≥ ${target} on CV OOF)`,
      `every-source threshold (sens ≥ ${target} on each LOSO source)`,
      "features + train s",
    ];
    const lines = [
      `# Transfer recipes: trained on ${settings.dataDir}, scored on ${settings.externalDir}`,
      "",
      `Seed ${seed}, head epochs ${epochs}, balanced class weights. CV: lesion-grouped stratified 5-fold on HAM. LOSO: leave-one-source-out (ham_dataset). ` +
        `External: one head trained on all HAM images, scored on the external set; 95% CIs are percentile bootstraps over patients (${iterations} replicates). ` +
        `Thresholds are chosen on HAM out-of-fold scores only: "pooled" on the 5-fold scores of all images, "every-source" = the highest threshold reaching the target on every held-out source's LOSO scores; the external set only measures them. ` +
        `Rows "…+ext-half" train on HAM + one patient-grouped half of the external set and are scored on the other half only, beside a HAM-only head on the same patients. ` +
        `Rows measured since the paired comparison existed keep their external probabilities in the JSON (runs/recipes-paired-external.md). ` +
        `Written by npx tsx bench/quality.ts --recipes …; ${os.cpus().length} cores shared with other jobs.`,
      "",
      `| ${header.join(" | ")} |`,
      `| ${header.map(() => "---").join(" | ")} |`,
      ...allRows.map((x) => `| ${formatRecipeRow(x).join(" | ")} |`),
    ];
    fs.writeFileSync(path.join(root, "runs", "recipes-transfer.md"), lines.join("\n") + "\n");
  }
  for (const b of backboneCache.values()) disposeBackbone(b);
}

async function main(): Promise<void> {
  console.log(describeBackend(await selectBackend()));
  console.log(
    `data ${dataDir}, feature cache ${cacheDir}, load average ${os
      .loadavg()
      .map((v) => v.toFixed(2))
      .join(" ")}`,
  );
  const allHeads = Object.keys(HEADS);
  const full = args.full === true;
  const only = args.backbone;
  const tricks = args.tricks === true;
  const dx = args.dx === true;
  if (dx && !["mobilenet_v2", "mobilenet_v1_1.0", "ensemble"].includes(only ?? "")) {
    throw new UnknownNameError("--backbone with --dx", String(only), ["mobilenet_v2", "mobilenet_v1_1.0", "ensemble"]);
  }
  // Plans below name binary heads; --dx swaps in the diagnosis-target heads and no tricks.
  const binaryHeads = allHeads.filter((h) => !DX_HEADS.includes(h));
  if (typeof args.paired === "string") {
    const externalDir =
      typeof args.external === "string"
        ? path.resolve(args.external)
        : path.join(findSharedDir(), "data", "isic2020-ext");
    comparePairedExternal(args.paired.split(","), externalDir, args["bootstrap-iterations"]);
    return;
  }
  if (typeof args.recipes === "string") {
    const names = args.recipes === "all" ? RECIPES.map((r) => r.name) : args.recipes.split(",");
    for (const n of names)
      if (!RECIPES.some((r) => r.name === n))
        throw new UnknownNameError(
          "--recipes",
          n,
          RECIPES.map((r) => r.name),
        );
    const externalDir =
      typeof args.external === "string"
        ? path.resolve(args.external)
        : path.join(findSharedDir(), "data", "isic2020-ext");
    await evaluateRecipes(names, externalDir, args["target-sensitivity"], args["bootstrap-iterations"]);
    console.log(fs.readFileSync(path.join(root, "runs", "recipes-transfer.md"), "utf8"));
    return;
  }
  if (args.nested === true) {
    const headsMode = args["nested-heads"] as "logistic" | "all"; // the parser allows only these
    const backbones =
      typeof args["nested-backbones"] === "string" ? args["nested-backbones"].split(",") : [...NESTED_BACKBONES];
    for (const b of backbones)
      if (!(NESTED_BACKBONES as readonly string[]).includes(b))
        throw new UnknownNameError("--nested-backbones", b, NESTED_BACKBONES);
    await evaluateNested(args["inner-folds"], headsMode, backbones);
    writeOutputs(true);
    return;
  }
  if (args["fine-tune"] !== undefined) {
    await evaluateFineTune(args["fine-tune"], args["unfreeze-blocks"]);
    writeOutputs(true);
    return;
  }
  if (only === undefined || only === "mobilenet_v1") {
    await evaluateBackbone(await loadBackbone("mobilenet_v1", { alpha: 0.25 }), "mobilenet_v1 α0.25", {
      heads: full ? allHeads : [binaryHeads[0]],
      tricks: true,
    });
  }
  if (only === "mobilenet_v1_1.0") {
    await evaluateBackbone(await loadBackbone("mobilenet_v1", { alpha: 1.0 }), "mobilenet_v1 α1.0", {
      heads: dx ? DX_HEADS : binaryHeads.slice(0, 2),
      tricks: !dx && (full || tricks),
    });
  }
  if (only === undefined || only === "mobilenet_v2") {
    const heads = dx ? DX_HEADS : full ? allHeads : tricks ? [binaryHeads[0]] : binaryHeads.slice(0, 2);
    await evaluateBackbone(await loadBackbone("mobilenet_v2"), "mobilenet_v2", {
      heads,
      tricks: !dx && (full || tricks),
    });
  }
  if (only === "mobilenet_v2_imagenet") {
    // ImageNet-only weights (ONNX model zoo), featurised through ONNX Runtime when it is installed.
    await evaluateBackbone(await loadBackbone("mobilenet_v2_imagenet"), "mobilenet_v2 ImageNet (ONNX zoo)", {
      heads: dx ? DX_HEADS.slice(0, 1) : binaryHeads.slice(0, 2),
      tricks: false,
    });
  }
  if (args.inception || only === "inception_v3") {
    await evaluateBackbone(await loadBackbone("inception_v3"), "inception_v3", {
      heads: full ? allHeads : binaryHeads.slice(0, 2),
      tricks: full || tricks,
    });
  }
  if (only === "ensemble") await evaluateEnsemble(dx ? DX_HEADS : binaryHeads.slice(0, 2));
  writeOutputs(true);
  console.log(`total ${((Date.now() - started) / 1000).toFixed(0)} s`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
