import { createRequire } from "node:module";
import path from "node:path";
import sharp from "sharp";
import type { DataFrame } from "danfojs-node";
import { MelanomaLabError } from "../util/errors.js";
import { findProjectRoot } from "../util/paths.js";
import { shuffleWithSeed } from "../util/random.js";
import { LESION_LABELS } from "./types.js";
import type { InputProblem, LesionRecord } from "./types.js";

/**
 * A stacked-bar Plotly figure as plain JSON (assignable to evaluate's PlotlyFigure): pass to
 * Plotly.newPlot(el, fig.data, fig.layout) or the display stage.
 */
export interface DatasetBarFigure {
  data: { type: "bar"; name: string; x: string[]; y: number[]; marker?: { color: string } }[];
  layout: {
    title: { text: string };
    barmode: "stack" | "group";
    xaxis: { title: { text: string }; automargin?: boolean };
    yaxis: { title: { text: string } };
    /** Pixels; kept moderate so a chart fits a notebook output without a scroll box. */
    height?: number;
    margin?: { t: number; r: number; b: number; l: number };
    legend?: { orientation: "h" | "v"; y?: number; x?: number };
  };
}

/** Counts of one field by label: one row per field value. */
export interface LabelBreakdownRow {
  value: string;
  benign: number;
  malignant: number;
  total: number;
  /** malignant / total. */
  malignantFraction: number;
}

/** What {@link describeDataset} returns: plain rows, the same as danfojs DataFrames, and figures. */
export interface DatasetDescription {
  imageCount: number;
  lesionCount: number;
  patientCount: number;
  /** Rows per field: "label", "diagnosis", "ageGroup", "sex", "site", "source". */
  rows: Record<DescribedField, LabelBreakdownRow[]>;
  /** The same tables as danfojs-node DataFrames (columns value, benign, malignant, total, malignant_fraction). */
  frames: Record<DescribedField, DataFrame>;
  /** Stacked bar chart per field (benign and malignant counts). */
  figures: Record<DescribedField, DatasetBarFigure>;
  /**
   * Missing values per column of the records (danfojs `isNa().sum()`): columns `column`,
   * `missing`, `missing_fraction`, one row per metadata column (image_id and label are never missing).
   */
  missingValues: DataFrame;
  /**
   * danfojs `describe()` of each numeric column (today `age_years`), computed over the rows where
   * it is present: index count, mean, std, min, median, max, variance.
   */
  numericSummary: DataFrame;
}

/** The fields {@link describeDataset} breaks down by label. */
export type DescribedField = "label" | "diagnosis" | "ageGroup" | "sex" | "site" | "source";

const FIELD_TITLES: Record<DescribedField, string> = {
  label: "label",
  diagnosis: "diagnosis",
  ageGroup: "age (years)",
  sex: "sex",
  site: "anatomical site",
  source: "source",
};

const LABEL_COLOURS = { benign: "#4c78a8", malignant: "#e45756" };

/** The record fields as table columns (what {@link describeDataset}'s missing-value table lists). */
const RECORD_COLUMNS = [
  ["diagnosis", (r: LesionRecord) => r.diagnosis],
  ["lesion_id", (r: LesionRecord) => r.lesionId],
  ["patient_id", (r: LesionRecord) => r.patientId],
  ["age_years", (r: LesionRecord) => r.ageYears],
  ["sex", (r: LesionRecord) => r.sex],
  ["site", (r: LesionRecord) => r.site],
  ["source", (r: LesionRecord) => r.source],
] as const;

/** Age bucket of 10 years ("40–49"), or "unknown". */
function ageGroupOf(ageYears: number | undefined): string {
  if (ageYears === undefined) return "unknown";
  const lo = Math.floor(ageYears / 10) * 10;
  return `${String(lo).padStart(2, "0")}–${lo + 9}`;
}

function valueOf(record: LesionRecord, field: DescribedField): string {
  switch (field) {
    case "label":
      return record.label;
    case "ageGroup":
      return ageGroupOf(record.ageYears);
    default:
      return record[field] ?? "unknown";
  }
}

/**
 * Counts records by `field` value and label. Rows are sorted by value (labels in benign, malignant
 * order; "unknown" last).
 *
 * @example countByLabel(records, "diagnosis") // [{ value: "akiec", benign: 0, malignant: 65, total: 65, malignantFraction: 1 }, …]
 */
export function countByLabel(records: readonly LesionRecord[], field: DescribedField): LabelBreakdownRow[] {
  const counts = new Map<string, { benign: number; malignant: number }>();
  for (const r of records) {
    const v = valueOf(r, field);
    const c = counts.get(v) ?? { benign: 0, malignant: 0 };
    c[r.label]++;
    counts.set(v, c);
  }
  const order = (v: string) => (field === "label" ? LESION_LABELS.indexOf(v as never) : 0);
  return [...counts.entries()]
    .sort(([a], [b]) => (a === "unknown" ? 1 : b === "unknown" ? -1 : order(a) - order(b) || (a < b ? -1 : a > b ? 1 : 0)))
    .map(([value, c]) => ({ value, benign: c.benign, malignant: c.malignant, total: c.benign + c.malignant, malignantFraction: c.malignant / (c.benign + c.malignant) }));
}

/**
 * A stacked bar chart (benign and malignant counts per value) as a Plotly figure object.
 *
 * @example const fig = makeLabelBarFigure(countByLabel(records, "site"), "anatomical site");
 */
export function makeLabelBarFigure(rows: readonly LabelBreakdownRow[], fieldTitle: string): DatasetBarFigure {
  const x = rows.map((r) => r.value);
  // For the label itself, "by label and label" said nothing: that chart is the class balance.
  const title = fieldTitle === "label" ? "images per label (class balance)" : `images by ${fieldTitle}, benign and malignant`;
  return {
    data: LESION_LABELS.map((label) => ({ type: "bar" as const, name: label, x, y: rows.map((r) => r[label]), marker: { color: LABEL_COLOURS[label] } })),
    layout: {
      title: { text: title },
      barmode: "stack",
      xaxis: { title: { text: fieldTitle }, automargin: true },
      yaxis: { title: { text: "images" } },
      height: 360,
      margin: { t: 50, r: 20, b: 60, l: 60 },
      legend: { orientation: "h", y: 1.1, x: 0.6 },
    },
  };
}

let danfo: typeof import("danfojs-node") | undefined;
/** danfojs-node is loaded on first use (it takes seconds), from the project's node_modules. */
function loadDanfo(): typeof import("danfojs-node") {
  if (!danfo) danfo = createRequire(path.join(findProjectRoot(), "package.json"))("danfojs-node") as typeof import("danfojs-node");
  return danfo;
}

/**
 * Explores a dataset: image, lesion and patient counts, and by-label breakdowns of label,
 * diagnosis, 10-year age group, sex, site and source, as plain rows, danfojs-node DataFrames
 * (`frames.diagnosis.print()` in a notebook) and stacked-bar Plotly figures; plus, from a danfojs
 * DataFrame of the records, the missing values per column and `describe()` of the numeric columns.
 *
 * @example const d = describeDataset(records); d.frames.diagnosis.print(); d.missingValues.print(); showFigure(d.figures.site);
 */
export function describeDataset(records: readonly LesionRecord[]): DatasetDescription {
  const dfd = loadDanfo();
  const fields: DescribedField[] = ["label", "diagnosis", "ageGroup", "sex", "site", "source"];
  const rows = {} as Record<DescribedField, LabelBreakdownRow[]>;
  const frames = {} as Record<DescribedField, DataFrame>;
  const figures = {} as Record<DescribedField, DatasetBarFigure>;
  for (const field of fields) {
    rows[field] = countByLabel(records, field);
    frames[field] = new dfd.DataFrame(
      rows[field].map((r) => ({ value: r.value, benign: r.benign, malignant: r.malignant, total: r.total, malignant_fraction: Number(r.malignantFraction.toFixed(4)) })),
      { columns: ["value", "benign", "malignant", "total", "malignant_fraction"] },
    );
    figures[field] = makeLabelBarFigure(rows[field], FIELD_TITLES[field]);
  }
  // One row per record, missing values as null (what danfojs counts as NA).
  const table = new dfd.DataFrame(
    records.map((r) => Object.fromEntries(RECORD_COLUMNS.map(([name, get]) => [name, get(r) ?? null]))),
    { columns: RECORD_COLUMNS.map(([name]) => name) },
  );
  const missingCounts = records.length === 0 ? RECORD_COLUMNS.map(() => 0) : (table.isNa().sum({ axis: 0 }).values as number[]);
  const missingValues = new dfd.DataFrame(
    RECORD_COLUMNS.map(([name], i) => ({ column: name, missing: missingCounts[i], missing_fraction: Number((missingCounts[i] / Math.max(1, records.length)).toFixed(4)) })),
    { columns: ["column", "missing", "missing_fraction"] },
  );
  const ages = records.map((r) => r.ageYears).filter((a): a is number => a !== undefined && Number.isFinite(a));
  // danfojs's describe() returns NaN for mean/std/median when any value is missing, so describe the present ones.
  const numericSummary =
    ages.length > 0
      ? new dfd.DataFrame({ age_years: new dfd.Series(ages).describe().values as number[] }, { index: ["count", "mean", "std", "min", "median", "max", "variance"] })
      : new dfd.DataFrame({ age_years: [0] }, { index: ["count"] });
  return {
    imageCount: records.length,
    lesionCount: new Set(records.map((r) => r.lesionId ?? `image:${r.imageId}`)).size,
    patientCount: new Set(records.map((r) => r.patientId).filter(Boolean)).size,
    rows,
    frames,
    figures,
    missingValues,
    numericSummary,
  };
}

/** Options of {@link makeContactSheet}. */
export interface ContactSheetOptions {
  /** Thumbnails per class (one row per class). Default 8. */
  perClass?: number;
  /** Thumbnail side in pixels. Default 96. */
  thumbSizePx?: number;
  /** Seed for which images are picked; without it the first ones are used. */
  seed?: number;
  /** Gap between thumbnails in pixels. Default 4. */
  gapPx?: number;
}

/**
 * A contact sheet of sample images: row 0 benign, row 1 malignant, `perClass` thumbnails each
 * (centre-cropped squares), with a coloured bar at the left of each row (blue benign, red
 * malignant). An image that cannot be decoded becomes a gray tile and a problem.
 *
 * @example const { png } = await makeContactSheet(records, { perClass: 6, thumbSizePx: 96, seed: 1 }); fs.writeFileSync("sheet.png", png);
 */
export async function makeContactSheet(
  records: readonly LesionRecord[],
  options: ContactSheetOptions = {},
): Promise<{ png: Buffer; widthPx: number; heightPx: number; problems: InputProblem[]; imageIds: string[][] }> {
  const perClass = options.perClass ?? 8;
  const thumb = options.thumbSizePx ?? 96;
  const gap = options.gapPx ?? 4;
  if (!(Number.isInteger(perClass) && perClass >= 1 && perClass <= 100)) throw new MelanomaLabError(`perClass must be a whole number in 1–100; received ${perClass}`);
  if (!(Number.isInteger(thumb) && thumb >= 8 && thumb <= 1024)) throw new MelanomaLabError(`thumbSizePx must be a whole number in 8–1024; received ${thumb}`);
  const barPx = Math.max(4, Math.round(thumb / 12));
  const widthPx = barPx + gap + perClass * (thumb + gap);
  const heightPx = LESION_LABELS.length * (thumb + gap) + gap;
  const problems: InputProblem[] = [];
  const composites: sharp.OverlayOptions[] = [];
  const imageIds: string[][] = [];
  for (let row = 0; row < LESION_LABELS.length; row++) {
    const label = LESION_LABELS[row];
    const ofClass = records.filter((r) => r.label === label);
    const picked = (options.seed === undefined ? ofClass : shuffleWithSeed(ofClass, options.seed + row)).slice(0, perClass);
    imageIds.push(picked.map((r) => r.imageId));
    const top = gap + row * (thumb + gap);
    composites.push({
      input: { create: { width: barPx, height: thumb, channels: 3, background: LABEL_COLOURS[label] } },
      left: 0,
      top,
    });
    const tiles = await Promise.all(
      picked.map(async (r) => {
        try {
          return await sharp(r.imagePath, { limitInputPixels: 10_000 * 10_000 }).rotate().resize(thumb, thumb, { fit: "cover" }).removeAlpha().png().toBuffer();
        } catch (err) {
          problems.push({ file: r.imagePath, field: "image", reason: `contact sheet: cannot decode ${r.imageId} (${(err as Error).message}); drew a gray tile` });
          return sharp({ create: { width: thumb, height: thumb, channels: 3, background: "#808080" } }).png().toBuffer();
        }
      }),
    );
    tiles.forEach((input, i) => composites.push({ input, left: barPx + gap + i * (thumb + gap), top }));
  }
  const png = await sharp({ create: { width: widthPx, height: heightPx, channels: 3, background: "#ffffff" } }).composite(composites).png().toBuffer();
  return { png, widthPx, heightPx, problems, imageIds };
}

/**
 * One image as a PNG preview no larger than `maxSidePx` on its longer side (aspect kept, EXIF
 * orientation applied), for showing an image whose label is not known (e.g. a sample to triage).
 * Throws {@link MelanomaLabError} naming the file when it cannot be decoded.
 *
 * @example showPng(await renderImagePreviewPng("data/sample.jpg", 224));
 */
export async function renderImagePreviewPng(imagePath: string, maxSidePx = 224): Promise<Buffer> {
  if (!(Number.isInteger(maxSidePx) && maxSidePx >= 8 && maxSidePx <= 4096)) throw new MelanomaLabError(`maxSidePx must be a whole number in 8–4096; received ${maxSidePx}`);
  try {
    return await sharp(imagePath, { limitInputPixels: 10_000 * 10_000 }).rotate().resize(maxSidePx, maxSidePx, { fit: "inside" }).removeAlpha().png().toBuffer();
  } catch (err) {
    throw new MelanomaLabError(`renderImagePreviewPng: cannot decode ${imagePath} (${(err as Error).message}); expected a JPEG or PNG image`);
  }
}
