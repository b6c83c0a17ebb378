import path from "node:path";
import { decodeImageRgb, ImageDecodeError } from "../data/decodeImage.js";
import { MelanomaLabError } from "../util/errors.js";
import { createEventWriter, type EventWriter, type EventWriterOptions } from "./eventWriter.js";
import { renderLabelledImageGrid, type LabelledImage } from "./imageGrid.js";
import { createImageValue, encodeRawImageToPng } from "./summaryValues.js";

/** Sample images that cannot be shown (no record, or none of a label decodes), or a bad option. */
export class SampleImagesError extends MelanomaLabError {}

/** A training image to show in TensorBoard's images dashboard: its id, label and file. */
export interface SampleImageRecord {
  imageId: string;
  /** Class name, e.g. "benign" / "malignant"; it becomes part of the tag. */
  label: string;
  /** Path of the JPEG/PNG file. */
  imagePath: string;
}

/** Options of {@link writeSampleImageGrids}. */
export interface SampleImageGridOptions {
  /** Images shown per label: the first ones in the given order that decode. Default 8. */
  perLabel?: number;
  /** Side of each square tile in px. Default 112 (fits a 12-character ISIC id caption). */
  cellSizePx?: number;
  /** Tag prefix; the label is appended. Default "train/samples". */
  tagPrefix?: string;
  /** Step of the summaries. Default 0. */
  step?: number;
}

/** What {@link writeSampleImageGrids} wrote for one label. */
export interface SampleImageGridSummary {
  tag: string;
  label: string;
  imageIds: string[];
  widthPx: number;
  heightPx: number;
  /** Images of this label left out because they did not decode (decoder message naming the file). */
  skipped: string[];
}

/**
 * Writes one labelled image grid per label into `writer` (TensorBoard's images dashboard):
 * tag `<tagPrefix>/<label>` (e.g. `train/samples/malignant`), each tile captioned with its image
 * id, and a description naming the label and every image id shown (TensorBoard image summaries
 * have no per-image caption, so tag and description carry the labels). Labels in sorted order;
 * per label the first `perLabel` records that decode, in the order given (no random draw).
 * Files that do not decode are skipped and listed in `skipped`; a label none of whose images
 * decode throws {@link SampleImagesError}.
 *
 * @example await writeSampleImageGrids(tb.writers.train, split.train, { perLabel: 8 })
 */
export async function writeSampleImageGrids(
  writer: EventWriter,
  records: readonly SampleImageRecord[],
  options: SampleImageGridOptions = {},
): Promise<SampleImageGridSummary[]> {
  const perLabel = options.perLabel ?? 8;
  const cellSizePx = options.cellSizePx ?? 112;
  const tagPrefix = options.tagPrefix ?? "train/samples";
  const step = options.step ?? 0;
  if (!Number.isInteger(perLabel) || perLabel < 1) {
    throw new SampleImagesError(`sample images perLabel ${perLabel} is not usable: expected a positive integer`);
  }
  if (!Number.isInteger(cellSizePx) || cellSizePx < 16) {
    throw new SampleImagesError(`sample images cellSizePx ${cellSizePx} is not usable: expected an integer >= 16`);
  }
  if (records.length === 0)
    throw new SampleImagesError("sample images received no records: expected at least one training image");
  const labels = [...new Set(records.map((r) => r.label))].sort();
  const written: SampleImageGridSummary[] = [];
  for (const label of labels) {
    const tiles: LabelledImage[] = [];
    const imageIds: string[] = [];
    const skipped: string[] = [];
    for (const record of records) {
      if (record.label !== label) continue;
      if (tiles.length === perLabel) break;
      try {
        const pixels = await decodeImageRgb(record.imagePath, cellSizePx);
        tiles.push({
          image: { pixels, widthPx: cellSizePx, heightPx: cellSizePx, channels: 3 },
          label: record.imageId,
        });
        imageIds.push(record.imageId);
      } catch (err) {
        // One unreadable file must not hide the others; it is named in `skipped`.
        if (!(err instanceof ImageDecodeError)) throw err;
        skipped.push(err.message);
      }
    }
    if (tiles.length === 0) {
      throw new SampleImagesError(
        `no ${JSON.stringify(label)} sample image decodes (${skipped.length} tried): ${skipped.slice(0, 3).join("; ")}`,
      );
    }
    const grid = await renderLabelledImageGrid(tiles, { cellSizePx, columns: Math.min(4, tiles.length) });
    const png = await encodeRawImageToPng(grid);
    const tag = `${tagPrefix}/${label}`;
    const description =
      `${imageIds.length} **${label}** training image(s), label ${label}, left to right and top to bottom: ` +
      imageIds.map((id) => `\`${id}\` (${label})`).join(", ");
    writer.addSummaryValues([createImageValue(tag, [png], grid.widthPx, grid.heightPx, description)], step);
    written.push({ tag, label, imageIds, widthPx: grid.widthPx, heightPx: grid.heightPx, skipped });
  }
  return written;
}

/**
 * A JSON value as a markdown code block (TensorBoard's text dashboard renders markdown), with an
 * optional heading line.
 *
 * @example formatJsonAsMarkdown({ epochs: 5 }, "Run configuration") // "## Run configuration\n\n```json\n{\n  \"epochs\": 5\n}\n```"
 */
export function formatJsonAsMarkdown(value: unknown, heading?: string): string {
  const block = "```json\n" + JSON.stringify(value, null, 2) + "\n```";
  return heading ? `## ${heading}\n\n${block}` : block;
}

function formatCell(value: unknown): string {
  const text = typeof value === "string" ? value : JSON.stringify(value);
  return text.replace(/\|/g, "\\|").replace(/\n/g, " ");
}

/**
 * A model card in markdown from an exported model's `metadata.json` (as an object): a heading,
 * a table of its plain top-level fields (numbers, strings, booleans, lists of them), a table
 * per object field (e.g. `validation`, `test`, `notes`), and the whole file as a JSON block.
 *
 * @example formatModelCardMarkdown(JSON.parse(fs.readFileSync("models/default/metadata.json", "utf8")), "models/default")
 */
export function formatModelCardMarkdown(metadata: Readonly<Record<string, unknown>>, modelName: string): string {
  const isObject = (v: unknown): v is Record<string, unknown> =>
    typeof v === "object" && v !== null && !Array.isArray(v);
  const table = (entries: [string, unknown][]) =>
    ["| field | value |", "|---|---|", ...entries.map(([k, v]) => `| ${formatCell(k)} | ${formatCell(v)} |`)].join(
      "\n",
    );
  const plain = Object.entries(metadata).filter(([, v]) => v !== undefined && !isObject(v));
  const nested = Object.entries(metadata).filter(([, v]) => isObject(v)) as [string, Record<string, unknown>][];
  const parts = [`# Model card: ${modelName}`, table(plain)];
  for (const [name, value] of nested) parts.push(`## ${name}`, table(Object.entries(value)));
  parts.push(formatJsonAsMarkdown(metadata, "metadata.json"));
  return parts.join("\n\n");
}

/**
 * Appends markdown text summaries to a run folder in a new event file (TensorBoard reads every
 * event file of a run), for text known only after training, such as the model card at export.
 * Returns the file written.
 *
 * @example writeTextSummaries("logs/default/train", { model_card: markdown })
 */
export function writeTextSummaries(
  runDir: string,
  texts: Readonly<Record<string, string>>,
  step = 0,
  options: EventWriterOptions = {},
): string {
  const writer = createEventWriter(path.resolve(runDir), { ...options, flushIntervalMs: 0 });
  try {
    for (const [tag, markdown] of Object.entries(texts)) writer.addText(tag, markdown, step);
  } finally {
    writer.close();
  }
  return writer.filePath;
}
