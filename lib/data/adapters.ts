import path from "node:path";
import { UnknownNameError, findNearestName } from "../util/errors.js";
import { readCsvTable, requireCsvColumns } from "./csv.js";
import type { CsvTable } from "./csv.js";
import { createImageFinder } from "./imageIndex.js";
import type { InputProblem, LesionLabel, LesionRecord } from "./types.js";

/**
 * How a multi-class diagnosis becomes the binary label:
 * - "malignant-vs-benign": mel, bcc, akiec (actinic keratosis / Bowen's), scc are malignant;
 * - "melanoma-vs-rest": only mel is malignant (the ISIC 2020 challenge task).
 */
export type LabelPolicy = "melanoma-vs-rest" | "malignant-vs-benign";

/** The label policies, for validation and UIs. */
export const LABEL_POLICIES: readonly LabelPolicy[] = ["malignant-vs-benign", "melanoma-vs-rest"];

/** HAM10000-style diagnosis codes this library knows, lower case. */
export const KNOWN_DIAGNOSES: readonly string[] = ["akiec", "bcc", "bkl", "df", "mel", "nv", "vasc", "scc"];

const MALIGNANT_DIAGNOSES = new Set(["mel", "bcc", "akiec", "scc"]);

/** HAM10000 release metadata file (lesion_id, image_id, dx, dx_type, age, sex, localization[, dataset]). */
export const HAM10000_METADATA_FILE = "HAM10000_metadata.csv";
/** ISIC 2019 one-hot ground truth (image, MEL, NV, BCC, AK, BKL, DF, VASC, SCC, UNK). */
export const ISIC2019_GROUND_TRUTH_FILE = "ISIC_2019_Training_GroundTruth.csv";
/** ISIC 2019 metadata (image, age_approx, anatom_site_general, lesion_id, sex); optional. */
const ISIC2019_METADATA_FILE = "ISIC_2019_Training_Metadata.csv";
/** ISIC 2020 challenge training table (image_name, patient_id, …, benign_malignant, target). */
export const ISIC2020_TRAIN_FILE = "train.csv";

/**
 * The binary label of a diagnosis code under `policy`.
 *
 * @example labelForDiagnosis("bcc", "melanoma-vs-rest") // "benign"
 */
export function labelForDiagnosis(diagnosis: string, policy: LabelPolicy): LesionLabel {
  if (!LABEL_POLICIES.includes(policy)) throw new UnknownNameError("label policy", policy, LABEL_POLICIES);
  const dx = diagnosis.toLowerCase();
  if (policy === "melanoma-vs-rest") return dx === "mel" ? "malignant" : "benign";
  return MALIGNANT_DIAGNOSES.has(dx) ? "malignant" : "benign";
}

/** Options shared by the archive adapters. */
export interface AdapterOptions {
  /** Default "malignant-vs-benign". */
  labelPolicy?: LabelPolicy;
  /** Folders searched for `<image>.jpg|.jpeg|.png`; defaults per archive (see each adapter). */
  imageFolders?: string[];
}

const MISSING = new Set(["", "na", "n/a", "nan", "unknown", "none", "null", "?"]);
const text = (raw: string | undefined): string | undefined =>
  raw === undefined || MISSING.has(raw.toLowerCase()) ? undefined : raw;

function parseAge(raw: string | undefined, file: string, row: number, field: string, problems: InputProblem[]): number | undefined {
  const t = text(raw);
  if (t === undefined) return undefined;
  const v = Number(t);
  if (!Number.isFinite(v) || v < 0 || v > 130) {
    problems.push({ file, row, field, reason: `age ${JSON.stringify(raw)} is not a number of years in 0–130; left unset` });
    return undefined;
  }
  return v;
}

/** Builds records row by row with the duplicate-id and missing-image checks every layout shares. */
function collectRecords(
  table: CsvTable,
  findImage: (id: string) => string | undefined,
  expectedFolder: string,
  toRecord: (values: Record<string, string>, row: number, problems: InputProblem[]) => Omit<LesionRecord, "imagePath"> | undefined,
): { records: LesionRecord[]; problems: InputProblem[] } {
  const records: LesionRecord[] = [];
  const problems: InputProblem[] = [];
  const firstRow = new Map<string, number>();
  for (const { rowNumber, values } of table.rows) {
    const partial = toRecord(values, rowNumber, problems);
    if (!partial) continue;
    const earlier = firstRow.get(partial.imageId);
    if (earlier !== undefined) {
      problems.push({ file: table.file, row: rowNumber, field: "image", reason: `image id ${JSON.stringify(partial.imageId)} is listed twice (first at row ${earlier}); kept the first` });
      continue;
    }
    firstRow.set(partial.imageId, rowNumber);
    const imagePath = findImage(partial.imageId);
    if (!imagePath) {
      problems.push({ file: table.file, row: rowNumber, field: "image", reason: `image file for ${partial.imageId} not found in ${expectedFolder} (expected .jpg, .jpeg or .png)` });
      continue;
    }
    records.push({ ...partial, imagePath });
  }
  return { records, problems };
}

function checkPolicy(options: AdapterOptions): LabelPolicy {
  const policy = options.labelPolicy ?? "malignant-vs-benign";
  if (!LABEL_POLICIES.includes(policy)) throw new UnknownNameError("label policy", policy, LABEL_POLICIES);
  return policy;
}

/**
 * Loads the HAM10000 release: `HAM10000_metadata.csv` (lesion_id, image_id, dx, dx_type, age,
 * sex, localization[, dataset]) with images in `HAM10000_images_part_1/`, `HAM10000_images_part_2/`,
 * `HAM10000_images/`, `images/` or beside the CSV. `dataset` becomes `source`. An unknown dx is
 * a problem naming the nearest known code.
 *
 * @example const { records } = loadHam10000MetadataDataset("data/HAM10000", { labelPolicy: "melanoma-vs-rest" });
 */
export function loadHam10000MetadataDataset(dir: string, options: AdapterOptions = {}): { records: LesionRecord[]; problems: InputProblem[] } {
  const policy = checkPolicy(options);
  const root = path.resolve(dir);
  const table = readCsvTable(path.join(root, HAM10000_METADATA_FILE));
  requireCsvColumns(table, ["lesion_id", "image_id", "dx"]);
  const folders = options.imageFolders ?? ["HAM10000_images_part_1", "HAM10000_images_part_2", "HAM10000_images", "images", "."].map((f) => path.join(root, f));
  return collectRecords(table, createImageFinder(folders), folders.join(", "), (v, row, problems) => {
    const imageId = v.image_id ?? "";
    if (!imageId) {
      problems.push({ file: table.file, row, field: "image_id", reason: "image_id is empty" });
      return undefined;
    }
    const dx = (v.dx ?? "").toLowerCase();
    if (!KNOWN_DIAGNOSES.includes(dx)) {
      const nearest = findNearestName(dx, KNOWN_DIAGNOSES);
      problems.push({ file: table.file, row, field: "dx", reason: `image ${imageId}: unknown dx ${JSON.stringify(v.dx)}; expected one of ${KNOWN_DIAGNOSES.join(", ")}${nearest ? ` (did you mean ${JSON.stringify(nearest)}?)` : ""}` });
      return undefined;
    }
    const record: Omit<LesionRecord, "imagePath"> = { imageId, label: labelForDiagnosis(dx, policy), diagnosis: dx };
    const lesionId = text(v.lesion_id);
    if (lesionId) record.lesionId = lesionId;
    const age = parseAge(v.age, table.file, row, "age", problems);
    if (age !== undefined) record.ageYears = age;
    const sex = text(v.sex);
    if (sex) record.sex = sex.toLowerCase();
    const site = text(v.localization);
    if (site) record.site = site.toLowerCase();
    const source = text(v.dataset);
    if (source) record.source = source;
    return record;
  });
}

const ISIC2019_CLASSES: Record<string, string> = {
  MEL: "mel",
  NV: "nv",
  BCC: "bcc",
  AK: "akiec",
  BKL: "bkl",
  DF: "df",
  VASC: "vasc",
  SCC: "scc",
};

/**
 * Loads the ISIC 2019 training set: `ISIC_2019_Training_GroundTruth.csv` (image + one-hot MEL, NV,
 * BCC, AK, BKL, DF, VASC, SCC, UNK) joined with `ISIC_2019_Training_Metadata.csv` when present
 * (image, age_approx, anatom_site_general, lesion_id, sex). Images in `ISIC_2019_Training_Input/`,
 * `images/` or beside the CSV. Diagnoses are mapped to HAM codes (AK → akiec). A row whose one-hot
 * has no class, several classes, or UNK is a problem.
 *
 * @example const { records } = loadIsic2019Dataset("data/isic2019", { labelPolicy: "melanoma-vs-rest" });
 */
export function loadIsic2019Dataset(dir: string, options: AdapterOptions = {}): { records: LesionRecord[]; problems: InputProblem[] } {
  const policy = checkPolicy(options);
  const root = path.resolve(dir);
  const truth = readCsvTable(path.join(root, ISIC2019_GROUND_TRUTH_FILE));
  requireCsvColumns(truth, ["image", ...Object.keys(ISIC2019_CLASSES)]);
  const metaByImage = new Map<string, { values: Record<string, string>; row: number }>();
  const metaFile = path.join(root, ISIC2019_METADATA_FILE);
  let metaTable: CsvTable | undefined;
  try {
    metaTable = readCsvTable(metaFile);
  } catch {
    metaTable = undefined; // Metadata is optional in this layout.
  }
  if (metaTable) {
    requireCsvColumns(metaTable, ["image"]);
    for (const { rowNumber, values } of metaTable.rows) metaByImage.set(values.image, { values, row: rowNumber });
  }
  const folders = options.imageFolders ?? ["ISIC_2019_Training_Input", "images", "."].map((f) => path.join(root, f));
  return collectRecords(truth, createImageFinder(folders), folders.join(", "), (v, row, problems) => {
    const imageId = v.image ?? "";
    if (!imageId) {
      problems.push({ file: truth.file, row, field: "image", reason: "image is empty" });
      return undefined;
    }
    const hot = [...Object.keys(ISIC2019_CLASSES), "UNK"].filter((c) => c in v && Number(v[c]) >= 0.5);
    if (hot.length !== 1 || hot[0] === "UNK") {
      problems.push({
        file: truth.file,
        row,
        field: "diagnosis",
        reason: `image ${imageId}: one-hot diagnosis has ${hot.length === 0 ? "no class set" : hot.join("+")}; expected exactly one of ${Object.keys(ISIC2019_CLASSES).join(", ")}`,
      });
      return undefined;
    }
    const dx = ISIC2019_CLASSES[hot[0]];
    const record: Omit<LesionRecord, "imagePath"> = { imageId, label: labelForDiagnosis(dx, policy), diagnosis: dx, source: "isic2019" };
    const meta = metaByImage.get(imageId);
    if (meta) {
      const age = parseAge(meta.values.age_approx, metaFile, meta.row, "age_approx", problems);
      if (age !== undefined) record.ageYears = age;
      const site = text(meta.values.anatom_site_general);
      if (site) record.site = site.toLowerCase();
      const lesionId = text(meta.values.lesion_id);
      if (lesionId) record.lesionId = lesionId;
      const sex = text(meta.values.sex);
      if (sex) record.sex = sex.toLowerCase();
    }
    return record;
  });
}

const ISIC2020_DIAGNOSIS_CODES: Record<string, string> = { melanoma: "mel", nevus: "nv", "seborrheic keratosis": "bkl" };

/**
 * Loads the ISIC 2020 challenge training set: `train.csv` (image_name, patient_id, sex, age_approx,
 * anatom_site_general_challenge, diagnosis, benign_malignant, target) with images in `jpeg/train/`,
 * `train/`, `images/` or beside the CSV. The label comes from `target` (1 = malignant; every
 * malignant image there is a melanoma, so both policies agree); a `target` that contradicts
 * `benign_malignant` or is not 0/1 is a problem. patient_id is kept, so splits group by patient.
 *
 * @example const { records } = loadIsic2020Dataset("data/isic2020");
 */
export function loadIsic2020Dataset(dir: string, options: AdapterOptions = {}): { records: LesionRecord[]; problems: InputProblem[] } {
  const policy = checkPolicy(options);
  const root = path.resolve(dir);
  const table = readCsvTable(path.join(root, ISIC2020_TRAIN_FILE));
  requireCsvColumns(table, ["image_name", "target"]);
  const folders = options.imageFolders ?? [path.join("jpeg", "train"), "train", "images", "."].map((f) => path.join(root, f));
  return collectRecords(table, createImageFinder(folders), folders.join(", "), (v, row, problems) => {
    const imageId = v.image_name ?? "";
    if (!imageId) {
      problems.push({ file: table.file, row, field: "image_name", reason: "image_name is empty" });
      return undefined;
    }
    const target = v.target;
    if (target !== "0" && target !== "1") {
      problems.push({ file: table.file, row, field: "target", reason: `image ${imageId}: target ${JSON.stringify(target)} is not 0 or 1` });
      return undefined;
    }
    const bm = (v.benign_malignant ?? "").toLowerCase();
    if (bm && bm !== (target === "1" ? "malignant" : "benign")) {
      problems.push({ file: table.file, row, field: "benign_malignant", reason: `image ${imageId}: benign_malignant ${JSON.stringify(v.benign_malignant)} contradicts target ${target}` });
      return undefined;
    }
    const rawDx = text(v.diagnosis)?.toLowerCase();
    const dx = rawDx ? (ISIC2020_DIAGNOSIS_CODES[rawDx] ?? rawDx) : undefined;
    let label: LesionLabel = target === "1" ? "malignant" : "benign";
    if (policy === "melanoma-vs-rest" && dx && dx !== "mel") label = "benign";
    const record: Omit<LesionRecord, "imagePath"> = { imageId, label, source: "isic2020" };
    if (dx) record.diagnosis = dx;
    const patientId = text(v.patient_id);
    if (patientId) record.patientId = patientId;
    const age = parseAge(v.age_approx, table.file, row, "age_approx", problems);
    if (age !== undefined) record.ageYears = age;
    const sex = text(v.sex);
    if (sex) record.sex = sex.toLowerCase();
    const site = text(v.anatom_site_general_challenge);
    if (site) record.site = site.toLowerCase();
    return record;
  });
}
