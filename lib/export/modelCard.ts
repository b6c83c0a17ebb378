import fs from "node:fs";
import path from "node:path";
import type { BootstrapGroupIds } from "../evaluate/bootstrap.js";
import { computeSubgroupMetrics, type SubgroupMetrics, type SubgroupRecord } from "../evaluate/subgroups.js";
import { summarizeMetricsWithIntervals } from "../evaluate/summary.js";
import { isSyntheticDatasetCurrent } from "../data/synthetic.js";
import { MelanomaLabError } from "../util/errors.js";
import type { TriageVariantMetadata } from "./quantizedVariants.js";
import {
  readTriageMetadata,
  type CalibrationMetadata,
  type TriageMetricsBlock,
  type TriageModelMetadata,
  type TriageOperatingPointMetadata,
  type TriagePolicyMetadata,
} from "./triageModel.js";

/** Thrown when a model card cannot be made from what it was given. */
export class ModelCardError extends MelanomaLabError {}

/** File name of the human-readable model card written beside metadata.json. */
export const MODEL_CARD_MD_FILE = "MODEL_CARD.md";

/**
 * An interval around a metric, named as what it is, e.g.
 * `{ kind: "95% percentile bootstrap confidence interval", lower: 0.81, upper: 0.9, confidenceLevel: 0.95, iterations: 1000, seed: 42, resampled: "patient/lesion groups" }`.
 */
export interface TriageMetricInterval {
  /** What the interval is, in words (never just "CI"). */
  kind: string;
  lower: number;
  upper: number;
  confidenceLevel: number;
  /** Bootstrap resamples drawn. */
  iterations: number;
  seed: number;
  /** What was resampled: whole patient/lesion groups, or images one by one. */
  resampled: "patient/lesion groups" | "images";
}

/** One data set a model was trained (and tuned) on, with its licence and where the licence was read. */
export interface TrainingDataDescription {
  /** Short name, e.g. "ham10000-dev". */
  name: string;
  /** What it is, e.g. the dataset README's first heading. */
  description: string;
  /** Licence as stated, e.g. "HAM10000, CC BY-NC 4.0 (Tschandl et al., …)"; "not stated" when unknown. */
  licence: string;
  /** Where the licence came from: a README path, "given by the caller", or "generated data". */
  licenceFrom: string;
  /** Images used, when the caller knows. */
  images?: number;
}

/** Per-source results on one set of images (rows as computeSubgroupMetrics gives them, field "source"). */
export interface TriagePerSourceResults {
  /** Which images and threshold, e.g. "held-out test split at the urgent threshold". */
  description: string;
  rows: SubgroupMetrics[];
}

/**
 * The `card` block of metadata.json: what the model is for and not for, its training data and
 * licences, per-source results and limitations. Metrics, operating points, calibration, backend
 * and variants are not repeated here: the card renders them from metadata's own `validation`,
 * `test`, `threshold`, `policy`, `backend` and `variants` fields.
 */
export interface TriageModelCard {
  intendedUse: string[];
  notIntendedUse: string[];
  trainingData: TrainingDataDescription[];
  /** Per-source results where the data has sources (absent when it has none). */
  perSource?: TriagePerSourceResults[];
  limitations: string[];
}

/** The intended uses every card states unless the caller gives its own. */
export const DEFAULT_INTENDED_USE: readonly string[] = [
  "Research and teaching: how a dermoscopy image classifier ranks skin lesions, and how its operating points hold up on images it did not train on.",
  "Decision support under clinical supervision: flagging dermoscopy images of a single skin lesion for an earlier look by a qualified clinician, who makes every decision.",
];

/** The uses every card rules out unless the caller gives its own. */
export const DEFAULT_NOT_INTENDED_USE: readonly string[] = [
  "Not a diagnosis: a level or probability never says that a lesion is or is not melanoma or any other disease.",
  "Not for unsupervised clinical use, self-screening, or deciding against a referral that a clinician or patient would otherwise make.",
  "Not for images other than dermoscopy of one skin lesion (clinical or phone photos without a dermatoscope, mucosa, nails, non-skin images).",
  "Not a medical device: it has no regulatory clearance.",
];

/** The synthetic generator's output: its labels.csv header and its SYN_ image ids (HAM10000 shares the header's source column). */
function isGeneratedSyntheticDataset(dataDir: string): boolean {
  if (!isSyntheticDatasetCurrent(dataDir)) return false;
  const firstRow = fs.readFileSync(path.join(dataDir, "labels.csv"), "utf8").split("\n", 2)[1] ?? "";
  return firstRow.startsWith("SYN_");
}

/**
 * Describes one training data folder for a model card, taking the licence from where the data
 * says it: the caller's `licence` when given; else a `Licence:`/`License:` line of the folder's
 * README.md; else, for the generated synthetic set, that no licence is needed; else "not
 * stated" (and the card lists that as a limitation).
 *
 * @example describeTrainingData("../shared/data/ham10000-dev").licence // "HAM10000, CC BY-NC 4.0 (Tschandl et al., Sci Data 5:180161, 2018). …"
 */
export function describeTrainingData(
  dataDir: string,
  given: { name?: string; description?: string; licence?: string; images?: number } = {},
): TrainingDataDescription {
  const name = given.name ?? path.basename(path.resolve(dataDir));
  const readmePath = ["README.md", "README", "README.txt"]
    .map((f) => path.join(dataDir, f))
    .find((f) => fs.existsSync(f));
  const readme = readmePath ? fs.readFileSync(readmePath, "utf8") : "";
  const heading = readme.split("\n").find((l) => l.trim() !== "");
  const description = given.description ?? (heading ? heading.replace(/^#+\s*/, "").trim() : `images in ${dataDir}`);
  const images = given.images !== undefined ? { images: given.images } : {};
  if (given.licence !== undefined)
    return { name, description, licence: given.licence, licenceFrom: "given by the caller", ...images };
  // "- Licence: …", "License: …", "**Licence**: …" all count.
  const line = readme.split("\n").find((l) => /^[\s*#>-]*\**licen[cs]e\**\s*:/i.test(l));
  if (line && readmePath) {
    return {
      name,
      description,
      licence: line.replace(/^[\s*#>-]*\**licen[cs]e\**\s*:\s*/i, "").trim(),
      licenceFrom: readmePath,
      ...images,
    };
  }
  if (isGeneratedSyntheticDataset(dataDir)) {
    return {
      name,
      description:
        given.description ?? "synthetic dermoscopy-like images generated by melanoma-lab (lib/data/synthetic)",
      licence: "none needed: generated images, no third-party data",
      licenceFrom: "generated data",
      ...images,
    };
  }
  return {
    name,
    description,
    licence: "not stated",
    licenceFrom: readmePath
      ? `no licence line in ${readmePath} and none given (pass { licence })`
      : `no README in ${dataDir} and none given (pass { licence })`,
    ...images,
  };
}

/** What {@link makeModelCard} takes. */
export interface ModelCardFields {
  trainingData: TrainingDataDescription[];
  /** Per-source results: records with `source` and label, and their probabilities in the same order. */
  perSource?: {
    description: string;
    records: readonly SubgroupRecord[];
    probs: ArrayLike<number>;
    thresholdProb: number;
  }[];
  /** Replace {@link DEFAULT_INTENDED_USE}. */
  intendedUse?: string[];
  /** Replace {@link DEFAULT_NOT_INTENDED_USE}. */
  notIntendedUse?: string[];
  /** Appended to the limitations the card derives itself. */
  limitations?: string[];
}

/**
 * The `card` block for makeTriageMetadata's `card` field: default intended and not-intended uses,
 * the training data, per-source results (computeSubgroupMetrics by source, at each given
 * threshold), and limitations derived from the data (generated data, non-commercial or unstated
 * licences, one source only) plus the caller's.
 *
 * @example
 * const card = makeModelCard({
 *   trainingData: [describeTrainingData(config.dataDir, { images: split.train.length })],
 *   perSource: [{ description: "held-out test split at the urgent threshold", records: testRecords, probs: testProbs, thresholdProb: 0.31 }],
 * });
 */
export function makeModelCard(fields: ModelCardFields): TriageModelCard {
  if (!Array.isArray(fields.trainingData) || fields.trainingData.length === 0) {
    throw new ModelCardError(
      `trainingData: received ${JSON.stringify(fields.trainingData)}; expected at least one entry, e.g. [describeTrainingData(config.dataDir)]`,
    );
  }
  const perSource = (fields.perSource ?? []).map((p) => ({
    description: p.description,
    rows: computeSubgroupMetrics(p.records, p.probs, { field: "source", thresholdProb: p.thresholdProb }),
  }));
  const limitations: string[] = [];
  for (const d of fields.trainingData) {
    if (d.licenceFrom === "generated data") {
      limitations.push(
        `${d.name} is generated, not real dermoscopy: metrics on it say nothing about performance on real lesions.`,
      );
    } else if (d.licence === "not stated") {
      limitations.push(`The licence of ${d.name} is not stated (${d.licenceFrom}); check it before using the model.`);
    } else if (/\bNC\b|non-?commercial/i.test(d.licence)) {
      limitations.push(
        `${d.name} is licensed for non-commercial use (${d.licence.match(/CC BY-NC(?:-[A-Z]+)?(?: \d+(?:\.\d+)?)?/i)?.[0] ?? "non-commercial"}): a model trained on it may be restricted to non-commercial use too.`,
      );
    }
  }
  const sources = new Set(perSource.flatMap((p) => p.rows.filter((r) => r.field === "source").map((r) => r.group)));
  if (perSource.length > 0 && sources.size <= 1) {
    limitations.push(
      "All evaluated images come from one source: performance on other clinics, cameras and populations is unknown.",
    );
  }
  limitations.push(
    "Operating points were chosen on validation images; on other populations, cameras or skin types sensitivity may be lower.",
    "The training data record no skin type; performance on darker skin is unknown.",
  );
  return {
    intendedUse: fields.intendedUse ?? [...DEFAULT_INTENDED_USE],
    notIntendedUse: fields.notIntendedUse ?? [...DEFAULT_NOT_INTENDED_USE],
    trainingData: fields.trainingData,
    ...(perSource.length > 0 ? { perSource } : {}),
    limitations: [...limitations, ...(fields.limitations ?? [])],
  };
}

// summarizeMetricsWithIntervals' rows, in its order, under the keys metadata uses.
const SUMMARY_METRIC_KEYS: readonly [string, string][] = [
  ["rocAuc", "ROC AUC"],
  ["partialAucAbove80Tpr", "pAUC above 80% TPR"],
  ["averagePrecision", "Average precision"],
  ["brierScore", "Brier score"],
  ["expectedCalibrationError", "Expected calibration error"],
  ["sensitivity", "Sensitivity at"],
  ["specificity", "Specificity at"],
  ["ppv", "PPV at"],
  ["npv", "NPV at"],
  ["f1", "F1 at"],
];

/**
 * A metrics block for metadata `validation` or `test`: counts, the standard metrics at
 * `thresholdProb` (summarizeMetricsWithIntervals: ROC AUC, pAUC, average precision, Brier, ECE,
 * sensitivity, specificity, PPV, NPV, F1) and, under `intervals`, each one's percentile bootstrap
 * confidence interval named as such. NaN values are recorded as null.
 *
 * @example
 * const test = measureTriageMetricsBlock("held-out test split", testLabels, testProbs, {
 *   thresholdProb: 0.31, seed: 42, iterations: 1000, groupIds: assignGroupIds(testRecords),
 * }); // test.metrics.rocAuc, test.intervals.rocAuc.kind === "95% percentile bootstrap confidence interval"
 */
export function measureTriageMetricsBlock(
  description: string,
  labels: ArrayLike<number>,
  probs: ArrayLike<number>,
  options: {
    thresholdProb: number;
    seed: number;
    iterations?: number;
    confidenceLevel?: number;
    groupIds?: BootstrapGroupIds;
  },
): TriageMetricsBlock {
  const rows = summarizeMetricsWithIntervals(labels, probs, options);
  const metrics: Record<string, number | null> = {};
  const intervals: Record<string, TriageMetricInterval> = {};
  SUMMARY_METRIC_KEYS.forEach(([key, prefix], i) => {
    const row = rows[i];
    if (!row?.metric.startsWith(prefix)) {
      throw new ModelCardError(
        `metric summary row ${i}: received ${JSON.stringify(row?.metric)}; expected one starting "${prefix}"`,
      );
    }
    const { estimate, lower, upper, confidenceLevel, iterations, seed } = row.interval;
    const finite = (x: number) => (Number.isFinite(x) ? x : null);
    metrics[key] = finite(estimate);
    if (Number.isFinite(lower) && Number.isFinite(upper)) {
      intervals[key] = {
        kind: `${Math.round(confidenceLevel * 100)}% percentile bootstrap confidence interval`,
        lower,
        upper,
        confidenceLevel,
        iterations,
        seed,
        resampled: options.groupIds ? "patient/lesion groups" : "images",
      };
    }
  });
  const malignant = Array.from(labels).filter((y) => y === 1).length;
  return { description, images: labels.length, malignant, benign: labels.length - malignant, metrics, intervals };
}

const fmt = (x: number | null | undefined, digits = 3) =>
  x === null || x === undefined || !Number.isFinite(x) ? "n/a" : x.toFixed(digits);
const pct = (x: number | null | undefined) =>
  x === null || x === undefined || !Number.isFinite(x) ? "n/a" : `${(100 * x).toFixed(1)}%`;

function renderMetricsBlock(title: string, block: TriageMetricsBlock | undefined): string[] {
  if (!block) return [`### ${title}`, "", "Not recorded.", ""];
  const counts = [
    `${block.images} images`,
    block.malignant !== undefined ? `${block.malignant} malignant` : "",
    block.benign !== undefined ? `${block.benign} benign` : "",
  ].filter(Boolean);
  const lines = [`### ${title}`, "", `${block.description} — ${counts.join(", ")}.`, ""];
  const withIntervals = block.intervals && Object.keys(block.intervals).length > 0;
  lines.push(withIntervals ? "| metric | value | interval | interval kind |" : "| metric | value |");
  lines.push(withIntervals ? "|---|---|---|---|" : "|---|---|");
  for (const [key, value] of Object.entries(block.metrics)) {
    const interval = block.intervals?.[key];
    const cells = [key, fmt(value, 4)];
    if (withIntervals) {
      cells.push(
        interval ? `${fmt(interval.lower, 4)} – ${fmt(interval.upper, 4)}` : "none",
        interval
          ? `${interval.kind} (${interval.iterations} resamples of ${interval.resampled}, seed ${interval.seed})`
          : "",
      );
    }
    lines.push(`| ${cells.join(" | ")} |`);
  }
  if (!withIntervals) lines.push("", "No intervals were recorded for these metrics: they are point estimates only.");
  lines.push("");
  return lines;
}

/** Scalar fields of a JSON object as "path: value" lines, nested objects flattened with dots. */
function flattenScalars(value: unknown, prefix = ""): string[] {
  if (value === null || typeof value !== "object") return [`${prefix}: ${JSON.stringify(value)}`];
  if (Array.isArray(value)) {
    if (value.every((v) => v === null || typeof v !== "object")) return [`${prefix}: ${JSON.stringify(value)}`];
    return value.flatMap((v, i) => flattenScalars(v, `${prefix}[${i}]`));
  }
  return Object.entries(value as Record<string, unknown>).flatMap(([k, v]) =>
    flattenScalars(v, prefix ? `${prefix}.${k}` : k),
  );
}

function renderOperatingPoint(p: TriageOperatingPointMetadata): string {
  const c = p.counts;
  return (
    `validation sensitivity ${pct(p.validationSensitivity)}, specificity ${pct(p.validationSpecificity)}, ` +
    `NPV ${pct(p.validationNpv)}, PPV ${pct(p.validationPpv)} ` +
    `(TP ${c.truePositives}, FP ${c.falsePositives}, TN ${c.trueNegatives}, FN ${c.falseNegatives})`
  );
}

function renderPolicyLevels(policy: TriagePolicyMetadata): string[] {
  const v = policy.validation;
  const lines = [
    "",
    `Triage policy (\`policy\`), fitted on ${v.images} validation images (${v.malignant} malignant, ${v.benign} benign` +
      `${v.groups !== null ? `, ${v.groups} patient/lesion groups` : ""}); thresholds are on the calibrated probability:`,
    "",
    `- **urgent**: calibrated probability ≥ ${fmt(policy.urgent.thresholdProb, 4)} (raw ≥ ${fmt(policy.urgent.rawThresholdProb, 4)}); ` +
      `${policy.urgent.rule}; ${renderOperatingPoint(policy.urgent)}.`,
  ];
  const r = policy.reassure;
  if (r.enabled) {
    lines.push(
      `- **reassure**: calibrated probability < ${fmt(r.thresholdProb, 4)} (raw < ${fmt(r.rawThresholdProb, 4)}); ${r.rule}; ` +
        `NPV at prevalence ${pct(policy.prevalence)}: ${pct(r.npvAtPrevalence)}; ${renderOperatingPoint(r)}.`,
    );
  } else if (r.enabled === false) {
    // `=== false`, not `else`: tslab compiles lib without strictNullChecks, where only this narrows.
    lines.push(`- **reassure**: disabled — ${r.reason}`);
  }
  lines.push(
    `- **routine**: between${r.enabled ? " the two thresholds" : " (below the urgent threshold)"}.`,
    `- Uncertainty: ${policy.uncertainty.rule}`,
  );
  return lines;
}

function renderCalibration(c: CalibrationMetadata): string[] {
  return [
    `- Method: ${c.method} scaling (${c.selection}); p_cal = σ(${fmt(c.slope, 4)} · logit(p) + ${fmt(c.intercept, 4)})` +
      `${c.temperature !== undefined ? `, temperature ${fmt(c.temperature, 4)}` : ""}.`,
    `- Fitted on ${c.images} validation images (${c.malignant} malignant, ${c.benign} benign).`,
    `- On those images, raw → calibrated: ECE (${c.binCount} equal-width bins) ${fmt(c.before.ece, 4)} → ${fmt(c.after.ece, 4)}, ` +
      `Brier ${fmt(c.before.brier, 4)} → ${fmt(c.after.brier, 4)}, NLL ${fmt(c.before.nll, 4)} → ${fmt(c.after.nll, 4)} ` +
      "(measured on the images the calibration was fitted on, so optimistic).",
  ];
}

function renderVariants(
  variants: readonly TriageVariantMetadata[] | undefined,
  own: TriageVariantMetadata | undefined,
): string[] {
  const lines = ["## Variants", ""];
  if (own) {
    lines.push(
      `This folder holds the **${own.dtype}** variant (${own.weightEncoding}): ${(own.modelBytes / 1e6).toFixed(2)} MB ` +
        `(model.json + weights.bin, ${own.modelBytes} bytes; weights ${(100 * own.weightsBytesRelativeToFloat32).toFixed(1)}% of float32).`,
      "The validation and test metrics above are those of the float32 model; each variant was re-scored on the validation images below.",
      "",
    );
  }
  if (!variants || variants.length === 0) return own ? lines : [...lines, "Only the float32 model was exported.", ""];
  const names = [...new Set(variants.flatMap((v) => v.validation?.operatingPoints.map((p) => p.name) ?? []))];
  lines.push(
    `| variant | folder (from the float32 folder) | MB | validation ROC AUC | ${names.map((n) => `${n}: sensitivity / specificity`).join(" | ")}${names.length ? " | " : ""}max \\|Δp\\| vs float32 |`,
    `|---|---|---|---|${names.map(() => "---|").join("")}---|`,
  );
  for (const v of variants) {
    const val = v.validation;
    const auc = val
      ? `${fmt(val.rocAuc, 4)}${val.rocAucInterval ? ` (${fmt(val.rocAucInterval.lower)} – ${fmt(val.rocAucInterval.upper)}, ${val.rocAucInterval.kind})` : ""}`
      : "not measured";
    const points = names.map((n) => {
      const p = val?.operatingPoints.find((q) => q.name === n);
      return p ? `${pct(p.sensitivity)} / ${pct(p.specificity)} at ≥ ${fmt(p.thresholdProb, 4)}` : "not measured";
    });
    const diff = val ? val.maxAbsProbabilityDifferenceFromFloat32.toExponential(2) : "not measured";
    lines.push(`| ${[v.dtype, v.relativeDir, (v.modelBytes / 1e6).toFixed(2), auc, ...points, diff].join(" | ")} |`);
  }
  const measured = variants.find((v) => v.validation)?.validation;
  if (measured) {
    lines.push(
      "",
      `Re-measured on: ${measured.description} — ${measured.images} images, ${measured.malignant} malignant, ${measured.benign} benign; scored with \`${measured.scoredOnBackend}\`.`,
    );
  }
  lines.push("");
  return lines;
}

/**
 * The model card as markdown, from a triage model's metadata alone: title and variant, intended
 * and not-intended use, training data and licences (`card`), validation and test metrics with
 * their named intervals (`validation`, `test`), operating points (`thresholdProb`, `threshold`,
 * and `policy` levels when present), calibration (`policy` when present, else "not recorded"),
 * per-source results (`card.perSource`, `threshold.perSource`), variants, backend and
 * limitations. Fields that are absent are said to be absent, never invented.
 *
 * @example fs.writeFileSync("models/demo/MODEL_CARD.md", renderModelCardMarkdown(readTriageMetadata("models/demo")));
 */
export function renderModelCardMarkdown(metadata: TriageModelMetadata): string {
  const card = metadata.card;
  const policy = metadata.policy;
  const lines: string[] = [
    `# Model card: melanoma triage — ${metadata.backboneName}${metadata.variant ? ` (${metadata.variant.dtype})` : ""}`,
    "",
    "> Research and teaching software. Not a medical device, not a diagnosis, and not for unsupervised clinical use.",
    "",
    `Outputs the probability that a dermoscopy image shows a malignant lesion (labels ${metadata.labels.join(", ")}; ` +
      `probability of ${metadata.labels[1]}). Input: ${metadata.inputSizePx}×${metadata.inputSizePx} RGB, ${metadata.resizePolicy}, preprocessing \`${metadata.preprocessing.kind}\`.`,
    "",
  ];
  const list = (items: readonly string[] | undefined, none: string) =>
    items && items.length > 0 ? items.map((s) => `- ${s}`) : [none];
  lines.push("## Intended use", "", ...list(card?.intendedUse, "Not recorded (metadata has no `card`)."), "");
  lines.push("## Not intended use", "", ...list(card?.notIntendedUse, "Not recorded (metadata has no `card`)."), "");
  lines.push("## Training data", "");
  if (card) {
    for (const d of card.trainingData) {
      lines.push(
        `- **${d.name}**: ${d.description}${d.images !== undefined ? ` (${d.images} images)` : ""}. Licence: ${d.licence} (from ${d.licenceFrom}).`,
      );
    }
  } else lines.push("Not recorded (metadata has no `card`).");
  lines.push("");
  lines.push("## Metrics", "");
  lines.push(...renderMetricsBlock("Validation", metadata.validation));
  lines.push(...renderMetricsBlock("Test", metadata.test));
  if (!metadata.validation && !metadata.test && metadata.validationMetrics) {
    lines.push(
      "Older file: metrics of unrecorded origin (`validationMetrics`):",
      "",
      ...flattenScalars(metadata.validationMetrics).map((l) => `- ${l}`),
      "",
    );
  }
  lines.push("## Operating points", "");
  lines.push(
    policy
      ? `- Single threshold \`thresholdProb\`: raw probability ≥ ${fmt(metadata.thresholdProb, 4)}, recorded for reference; ` +
          "`npm run score`, the service and the app decide with the policy's levels below."
      : `- **urgent**: probability ≥ ${fmt(metadata.thresholdProb, 4)} (\`thresholdProb\`); else routine.`,
  );
  const t = metadata.threshold;
  if (t) {
    lines.push(
      `  Chosen by: ${t.method} (target sensitivity ${pct(t.targetSensitivity)}) on ${t.scoredOn} — ${t.images} images, ${t.malignant} malignant; ` +
        `there it gave sensitivity ${pct(t.sensitivity)}, specificity ${pct(t.specificity)}.`,
    );
    for (const w of t.warnings) lines.push(`  Warning: ${w}`);
  }
  if (policy) lines.push(...renderPolicyLevels(policy));
  lines.push("");
  lines.push("## Calibration", "");
  if (policy) {
    lines.push(...renderCalibration(policy.calibration));
  } else {
    lines.push(
      "Not recorded: the probabilities are the model's raw scores, not calibrated ones (metadata has no `policy.calibration`).",
    );
  }
  lines.push("");
  lines.push("## Per-source results", "");
  const perSource = card?.perSource ?? [];
  for (const p of perSource) {
    lines.push(
      `${p.description}:`,
      "",
      "| source | images | malignant | ROC AUC | sensitivity | specificity | note |",
      "|---|---|---|---|---|---|---|",
    );
    for (const r of p.rows) {
      lines.push(
        `| ${r.group} | ${r.count} | ${r.positives} | ${fmt(r.rocAuc)} | ${pct(r.sensitivity)} | ${pct(r.specificity)} | ${r.note ?? ""} |`,
      );
    }
    lines.push("");
  }
  if (t && t.perSource.length > 0) {
    lines.push(
      `At the urgent threshold on ${t.scoredOn}:`,
      "",
      "| source | images | malignant | sensitivity | specificity |",
      "|---|---|---|---|---|",
    );
    for (const s of t.perSource)
      lines.push(`| ${s.name} | ${s.images} | ${s.malignant} | ${pct(s.sensitivity)} | ${pct(s.specificity)} |`);
    lines.push("");
  }
  if (perSource.length === 0 && !(t && t.perSource.length > 0))
    lines.push("Not recorded (the data has no sources, or none were given).", "");
  lines.push(...renderVariants(metadata.variants, metadata.variant));
  lines.push("## Model and backend", "");
  lines.push(
    `- Backbone: ${metadata.backboneName} (weights ${metadata.backboneWeightsId}), features ${metadata.featureLayerName} [${metadata.featureDim}].`,
    ...(metadata.ensembleMembers
      ? [`- Ensemble of ${metadata.ensembleMembers.map((m) => m.backboneName).join(", ")}.`]
      : []),
    `- Head trained on the \`${metadata.backend}\` compute backend; exported ${metadata.createdAt}.`,
    ...(metadata.onnx ? [`- ONNX copy: ${metadata.onnx.file} (opset ${metadata.onnx.opset}).`] : []),
    ...(metadata.notes ? flattenScalars(metadata.notes, "notes").map((l) => `- ${l}`) : []),
    "",
  );
  lines.push("## Limitations", "", ...list(card?.limitations, "Not recorded (metadata has no `card`)."), "");
  return lines.join("\n");
}

/**
 * Writes MODEL_CARD.md beside the metadata.json of an exported model folder (rendered by
 * {@link renderModelCardMarkdown}). Returns the file written.
 *
 * @example writeModelCardMarkdown("models/demo") // "models/demo/MODEL_CARD.md"
 */
export function writeModelCardMarkdown(dir: string): string {
  const metadata = readTriageMetadata(dir);
  const file = path.join(dir, MODEL_CARD_MD_FILE);
  fs.writeFileSync(file, renderModelCardMarkdown(metadata));
  return file;
}
