import fs from "node:fs";
import path from "node:path";
import { UnknownNameError, findNearestName } from "../util/errors.js";
import { DatasetFormatError, readCsvTable, requireCsvColumns } from "./csv.js";
import { IMAGE_EXTENSIONS, createImageFinder } from "./imageIndex.js";
import { LESION_LABELS } from "./types.js";
import type { InputProblem, LesionLabel, LesionRecord } from "./types.js";
import {
  loadHam10000MetadataDataset,
  loadIsic2019Dataset,
  loadIsic2020Dataset,
  HAM10000_METADATA_FILE,
  ISIC2019_GROUND_TRUTH_FILE,
  ISIC2020_TRAIN_FILE,
} from "./adapters.js";
import type { LabelPolicy } from "./adapters.js";

export { DatasetFormatError } from "./csv.js";

/** Records that loaded and the problems with the inputs that did not (or loaded only partly). */
export interface LoadedDataset {
  records: LesionRecord[];
  problems: InputProblem[];
}

/** The dataset layouts {@link loadDataset} recognises. */
export type DatasetLayout = "labels-csv" | "folder-per-class" | "ham10000" | "isic2019" | "isic2020";

/** Name of the CSV that the labels-csv layout keeps beside its `images/` folder. */
export const LABELS_CSV_FILE = "labels.csv";

/** Values that mean "not recorded" in the optional CSV columns. */
const MISSING_VALUES = new Set(["", "na", "n/a", "nan", "unknown", "none", "null", "?"]);

/**
 * Reads an optional numeric field (age in years): undefined when blank/unknown; a problem
 * (and undefined) when present but not a number in 0–130.
 *
 * @example parseAgeYears("45.0", { file: "labels.csv", row: 2, field: "age" }, problems) // 45
 */
function parseAgeYears(
  raw: string | undefined,
  where: { file: string; row: number; field: string },
  problems: InputProblem[],
): number | undefined {
  if (raw === undefined || MISSING_VALUES.has(raw.toLowerCase())) return undefined;
  const value = Number(raw);
  if (!Number.isFinite(value) || value < 0 || value > 130) {
    problems.push({ ...where, reason: `age ${JSON.stringify(raw)} is not a number of years in 0–130; left unset` });
    return undefined;
  }
  return value;
}

/**
 * An optional text field: undefined when blank or "unknown"-like (unknown, NA, NaN, none, ?), else the text.
 *
 * @example parseOptionalText("unknown") // undefined
 */
export function parseOptionalText(raw: string | undefined): string | undefined {
  if (raw === undefined || MISSING_VALUES.has(raw.toLowerCase())) return undefined;
  return raw;
}

/**
 * The binary label for a CSV/folder value: "benign"/"malignant" in any case, or "0"/"1";
 * undefined for anything else (the caller records a problem naming the valid labels).
 *
 * @example parseLesionLabel("Malignant") // "malignant"
 */
function parseLesionLabel(raw: string): LesionLabel | undefined {
  const v = raw.trim().toLowerCase();
  if (v === "benign" || v === "0") return "benign";
  if (v === "malignant" || v === "1") return "malignant";
  return undefined;
}

function describeUnknownLabel(raw: string): string {
  const nearest = findNearestName(raw, LESION_LABELS);
  return (
    `unknown label ${JSON.stringify(raw)}: expected one of "benign", "malignant" (or 0/1)` +
    (nearest ? ` (did you mean ${JSON.stringify(nearest)}?)` : "")
  );
}

/**
 * Loads the `labels.csv` + `images/` layout (the layout of ../shared/data/ham10000-dev and of
 * {@link generateSyntheticDataset}). Required columns: `image_id`, `label` (benign/malignant or
 * 0/1). Optional: `diagnosis`, `lesion_id`, `patient_id`, `age`, `sex`, `localization` (or `site`),
 * `ham_dataset` (or `source`). The image is `images/<image_id>.{jpg,jpeg,png}` (or, failing that,
 * beside labels.csv).
 *
 * A missing required column throws {@link DatasetFormatError} (columns found and expected).
 * Row-level trouble becomes a problem and the row is skipped: unknown label (with the nearest
 * valid one), empty image_id, image_id listed twice (the first is kept), missing image file.
 *
 * @example const { records, problems } = loadLabelsCsvDataset("../shared/data/ham10000-dev");
 */
export function loadLabelsCsvDataset(dir: string): LoadedDataset {
  const root = path.resolve(dir);
  const csvFile = path.join(root, LABELS_CSV_FILE);
  const table = readCsvTable(csvFile);
  requireCsvColumns(table, ["image_id", "label"]);
  const findImage = createImageFinder([path.join(root, "images"), root]);
  const records: LesionRecord[] = [];
  const problems: InputProblem[] = [];
  const firstRowOf = new Map<string, number>();
  for (const { rowNumber, values } of table.rows) {
    const imageId = values.image_id ?? "";
    const where = { file: csvFile, row: rowNumber };
    if (imageId === "") {
      problems.push({ ...where, field: "image_id", reason: "image_id is empty; expected an image id such as ISIC_0024307" });
      continue;
    }
    const rawLabel = values.label ?? "";
    const label = parseLesionLabel(rawLabel);
    if (!label) {
      problems.push({ ...where, field: "label", reason: `image ${imageId}: ${describeUnknownLabel(rawLabel)}` });
      continue;
    }
    const earlier = firstRowOf.get(imageId);
    if (earlier !== undefined) {
      problems.push({ ...where, field: "image_id", reason: `image_id ${JSON.stringify(imageId)} is listed twice (first at row ${earlier}); kept the first` });
      continue;
    }
    firstRowOf.set(imageId, rowNumber);
    const imagePath = findImage(imageId);
    if (!imagePath) {
      problems.push({
        ...where,
        field: "image_id",
        reason: `image file for ${imageId} not found: expected ${path.join(root, "images", imageId)}.jpg, .jpeg or .png`,
      });
      continue;
    }
    const record: LesionRecord = { imageId, imagePath, label };
    const diagnosis = parseOptionalText(values.diagnosis);
    if (diagnosis) record.diagnosis = diagnosis.toLowerCase();
    const lesionId = parseOptionalText(values.lesion_id);
    if (lesionId) record.lesionId = lesionId;
    const patientId = parseOptionalText(values.patient_id);
    if (patientId) record.patientId = patientId;
    const ageYears = parseAgeYears(values.age, { ...where, field: "age" }, problems);
    if (ageYears !== undefined) record.ageYears = ageYears;
    const sex = parseOptionalText(values.sex);
    if (sex) record.sex = sex.toLowerCase();
    const site = parseOptionalText(values.localization ?? values.site);
    if (site) record.site = site.toLowerCase();
    const source = parseOptionalText(values.ham_dataset ?? values.source);
    if (source) record.source = source;
    records.push(record);
  }
  return { records, problems };
}

const SPLIT_FOLDERS: Record<string, NonNullable<LesionRecord["predefinedSplit"]>> = {
  train: "train",
  training: "train",
  valid: "validation",
  validation: "validation",
  val: "validation",
  test: "test",
  testing: "test",
};

function listDir(dir: string): fs.Dirent[] {
  return fs
    .readdirSync(dir, { withFileTypes: true })
    .filter((d) => !d.name.startsWith("."))
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/**
 * Loads the folder-per-class layout used by the original Cloudera ML melanoma demo:
 * `train/benign/*.jpg`, `train/malignant/*.jpg`, and likewise `test/…`, `valid/…`
 * (`validation/`, `val/` too), or `benign/` and `malignant/` directly in `dir`. Class folder
 * names are matched case-insensitively; the image id is the file name without extension and
 * `predefinedSplit` records which split folder an image came from.
 *
 * Problems (the rest goes on): a folder that is neither a split nor a class (nearest class named),
 * a non-image file in a class folder, and the same image id twice (first kept).
 *
 * @example const { records } = loadFolderPerClassDataset("data/isic-folders"); records[0].predefinedSplit // "test"
 */
export function loadFolderPerClassDataset(dir: string): LoadedDataset {
  const root = path.resolve(dir);
  const records: LesionRecord[] = [];
  const problems: InputProblem[] = [];
  const firstFileOf = new Map<string, string>();

  const loadClassFolder = (folder: string, label: LesionLabel, split: LesionRecord["predefinedSplit"]) => {
    for (const entry of listDir(folder)) {
      const file = path.join(folder, entry.name);
      const ext = path.extname(entry.name).toLowerCase();
      if (!entry.isFile() || !IMAGE_EXTENSIONS.includes(ext)) {
        problems.push({ file, reason: `not an image file (expected ${IMAGE_EXTENSIONS.join(", ")}); skipped` });
        continue;
      }
      const imageId = entry.name.slice(0, -ext.length);
      const earlier = firstFileOf.get(imageId);
      if (earlier !== undefined) {
        problems.push({ file, field: "image_id", reason: `image id ${JSON.stringify(imageId)} also at ${earlier}; kept the first` });
        continue;
      }
      firstFileOf.set(imageId, file);
      const record: LesionRecord = { imageId, imagePath: file, label };
      if (split) record.predefinedSplit = split;
      records.push(record);
    }
  };

  const loadClassFolders = (folder: string, split: LesionRecord["predefinedSplit"], allowSplits: boolean) => {
    for (const entry of listDir(folder)) {
      const full = path.join(folder, entry.name);
      if (!entry.isDirectory()) {
        problems.push({ file: full, reason: `unexpected file; expected class folders "benign" and "malignant"${allowSplits ? " or split folders train/valid/test" : ""}` });
        continue;
      }
      const name = entry.name.toLowerCase();
      const label = parseLesionLabel(name);
      if (label && (name === "benign" || name === "malignant")) {
        loadClassFolder(full, label, split);
      } else if (allowSplits && SPLIT_FOLDERS[name]) {
        loadClassFolders(full, SPLIT_FOLDERS[name], false);
      } else {
        const valid = allowSplits ? ["benign", "malignant", ...Object.keys(SPLIT_FOLDERS)] : ["benign", "malignant"];
        const nearest = findNearestName(entry.name, valid);
        problems.push({
          file: full,
          reason: `unknown folder ${JSON.stringify(entry.name)}: expected one of ${valid.map((v) => JSON.stringify(v)).join(", ")}` +
            (nearest ? ` (did you mean ${JSON.stringify(nearest)}?)` : "") + "; skipped",
        });
      }
    }
  };

  if (!fs.existsSync(root) || !fs.statSync(root).isDirectory()) {
    throw new DatasetFormatError(root, "dataset folder not found (expected a folder with train/benign, train/malignant, …)");
  }
  loadClassFolders(root, undefined, true);
  return { records, problems };
}

/**
 * Detects the layout of `dir` (see {@link DatasetLayout}) by the files it holds:
 * labels.csv → "labels-csv"; HAM10000_metadata.csv → "ham10000"; ISIC_2019_Training_GroundTruth.csv
 * → "isic2019"; train.csv → "isic2020"; benign/, malignant/ or train/ folders → "folder-per-class".
 * Throws {@link DatasetFormatError} listing what it looked for when none matches.
 *
 * @example detectDatasetLayout("../shared/data/ham10000-dev") // "labels-csv"
 */
export function detectDatasetLayout(dir: string): DatasetLayout {
  const root = path.resolve(dir);
  const has = (name: string) => fs.existsSync(path.join(root, name));
  if (has(LABELS_CSV_FILE)) return "labels-csv";
  if (has(HAM10000_METADATA_FILE)) return "ham10000";
  if (has(ISIC2019_GROUND_TRUTH_FILE)) return "isic2019";
  if (has(ISIC2020_TRAIN_FILE)) return "isic2020";
  let names: string[];
  try {
    names = fs.readdirSync(root).map((n) => n.toLowerCase());
  } catch {
    throw new DatasetFormatError(root, "dataset folder not found");
  }
  if (names.some((n) => n === "benign" || n === "malignant" || SPLIT_FOLDERS[n])) return "folder-per-class";
  throw new DatasetFormatError(
    root,
    `cannot tell the dataset layout: found ${names.slice(0, 10).map((n) => JSON.stringify(n)).join(", ") || "an empty folder"}; ` +
      `expected ${LABELS_CSV_FILE} + images/, ${HAM10000_METADATA_FILE}, ${ISIC2019_GROUND_TRUTH_FILE}, ${ISIC2020_TRAIN_FILE}, or train/benign + train/malignant folders`,
  );
}

/** Options of {@link loadDataset}. */
export interface LoadDatasetOptions {
  /** Force a layout instead of detecting it. */
  layout?: DatasetLayout;
  /** How multi-class archives (HAM10000, ISIC 2019) map to benign/malignant; default "malignant-vs-benign". */
  labelPolicy?: LabelPolicy;
}

/**
 * Loads any supported dataset folder into {@link LesionRecord}s, detecting the layout
 * ({@link detectDatasetLayout}) unless `options.layout` is given.
 *
 * @example const { records, problems, layout } = loadDataset("data/synthetic"); // layout "labels-csv"
 */
export function loadDataset(dir: string, options: LoadDatasetOptions = {}): LoadedDataset & { layout: DatasetLayout } {
  const layouts: DatasetLayout[] = ["labels-csv", "folder-per-class", "ham10000", "isic2019", "isic2020"];
  if (options.layout !== undefined && !layouts.includes(options.layout)) {
    throw new UnknownNameError("dataset layout", options.layout, layouts);
  }
  const layout = options.layout ?? detectDatasetLayout(dir);
  const policy = options.labelPolicy ?? "malignant-vs-benign";
  switch (layout) {
    case "labels-csv":
      return { ...loadLabelsCsvDataset(dir), layout };
    case "folder-per-class":
      return { ...loadFolderPerClassDataset(dir), layout };
    case "ham10000":
      return { ...loadHam10000MetadataDataset(dir, { labelPolicy: policy }), layout };
    case "isic2019":
      return { ...loadIsic2019Dataset(dir, { labelPolicy: policy }), layout };
    case "isic2020":
      return { ...loadIsic2020Dataset(dir, { labelPolicy: policy }), layout };
  }
}

/**
 * Human-readable summary of input problems: a count line, then one line per problem
 * (`file:row [field]: reason`), at most `maxLines` of them, then how many were left out.
 *
 * @example summarizeProblems(problems).forEach((line) => console.log(line));
 */
export function summarizeProblems(problems: readonly InputProblem[], maxLines = 20): string[] {
  if (problems.length === 0) return ["0 input problems"];
  const lines = [`${problems.length} input problem${problems.length === 1 ? "" : "s"} (skipped or partly loaded):`];
  for (const p of problems.slice(0, maxLines)) {
    lines.push(`  ${p.file}${p.row !== undefined ? `:${p.row}` : ""}${p.field ? ` [${p.field}]` : ""}: ${p.reason}`);
  }
  if (problems.length > maxLines) lines.push(`  … and ${problems.length - maxLines} more`);
  return lines;
}
