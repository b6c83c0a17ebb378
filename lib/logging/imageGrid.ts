import sharp from "sharp";
import { MelanomaLabError } from "../util/errors.js";
import type { RawImage } from "./summaryValues.js";
import { escapeHtml } from "../util/html.js";

/** One tile of {@link renderLabelledImageGrid}: an image, its caption, and how the model did. */
export interface LabelledImage {
  image: RawImage;
  /** Caption under the image, e.g. "mel · p=0.91". */
  label: string;
  /** Frames the tile green (correct) or red (wrong); no frame when absent. */
  outcome?: "correct" | "wrong";
}

/** Layout of {@link renderLabelledImageGrid}. */
export interface ImageGridOptions {
  /** Tiles per row; default ceil(sqrt(n)). */
  columns?: number;
  /** Side of each square tile in px (the image is fitted inside, aspect kept). Default 128. */
  cellSizePx?: number;
  /** Height of the caption strip under each tile in px. Default 18. */
  labelHeightPx?: number;
}

/** An empty grid or an unusable layout option. */
export class ImageGridError extends MelanomaLabError {}

/** Background of the grid and of letterboxing: dark grey, so dermoscopy colours stand out. */
const BACKGROUND = { r: 32, g: 32, b: 32 };
const OUTCOME_COLOURS = { correct: "#2ca02c", wrong: "#d62728" } as const;
const FRAME_PX = 3;

/**
 * Renders sample images as one labelled grid (RGB), for an images summary:
 * `await writer.addImages("val/samples", [await renderLabelledImageGrid(items)], epoch)`.
 * Each image is fitted into a square tile, captioned below, and framed by its outcome.
 *
 * @example const grid = await renderLabelledImageGrid([{ image, label: "mel p=0.91", outcome: "correct" }], { cellSizePx: 160 })
 */
export async function renderLabelledImageGrid(
  items: readonly LabelledImage[],
  options: ImageGridOptions = {},
): Promise<RawImage> {
  if (items.length === 0) throw new ImageGridError("image grid received no images: expected at least one");
  const columns = options.columns ?? Math.ceil(Math.sqrt(items.length));
  const cell = options.cellSizePx ?? 128;
  const labelHeight = options.labelHeightPx ?? 18;
  if (!Number.isInteger(columns) || columns < 1)
    throw new ImageGridError(`image grid columns ${columns}: expected a positive integer`);
  if (!Number.isInteger(cell) || cell <= 2 * FRAME_PX) {
    throw new ImageGridError(`image grid cellSizePx ${cell}: expected an integer > ${2 * FRAME_PX}`);
  }
  if (!Number.isInteger(labelHeight) || labelHeight < 0)
    throw new ImageGridError(`image grid labelHeightPx ${labelHeight}: expected an integer >= 0`);
  const rows = Math.ceil(items.length / columns);
  const widthPx = columns * cell;
  const heightPx = rows * (cell + labelHeight);
  const inner = cell - 2 * FRAME_PX;

  const tiles = await Promise.all(
    items.map(async (item, i) => {
      const { pixels, widthPx: w, heightPx: h, channels } = item.image;
      const fitted = await sharp(Buffer.from(pixels.buffer, pixels.byteOffset, pixels.byteLength), {
        raw: { width: w, height: h, channels },
      })
        .resize(inner, inner, { fit: "contain", background: BACKGROUND })
        .removeAlpha()
        .png()
        .toBuffer();
      return {
        input: fitted,
        left: (i % columns) * cell + FRAME_PX,
        top: Math.floor(i / columns) * (cell + labelHeight) + FRAME_PX,
      };
    }),
  );
  const fontSize = Math.max(8, Math.round(labelHeight * 0.7));
  const overlay = items
    .map((item, i) => {
      const x = (i % columns) * cell;
      const y = Math.floor(i / columns) * (cell + labelHeight);
      const frame = item.outcome
        ? `<rect x="${x + FRAME_PX / 2}" y="${y + FRAME_PX / 2}" width="${cell - FRAME_PX}" height="${cell - FRAME_PX}" fill="none" stroke="${OUTCOME_COLOURS[item.outcome]}" stroke-width="${FRAME_PX}"/>`
        : "";
      // A nested <svg> clips its content, so a long caption cannot spill into the next tile; it
      // is also shortened with an ellipsis at about 0.6 em per character (DejaVu Sans).
      const maxChars = Math.max(1, Math.floor((cell - 6) / (0.6 * fontSize)));
      const label = item.label.length > maxChars ? `${item.label.slice(0, maxChars - 1)}…` : item.label;
      const caption =
        labelHeight > 0
          ? `<svg x="${x}" y="${y + cell}" width="${cell}" height="${labelHeight}"><text x="3" y="${labelHeight - Math.round((labelHeight - fontSize) / 2) - 2}" font-family="DejaVu Sans, sans-serif" font-size="${fontSize}" fill="#f0f0f0">${escapeHtml(label)}</text></svg>`
          : "";
      return frame + caption;
    })
    .join("");
  const svg = Buffer.from(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${widthPx}" height="${heightPx}">${overlay}</svg>`,
  );
  const { data } = await sharp({ create: { width: widthPx, height: heightPx, channels: 3, background: BACKGROUND } })
    .composite([...tiles, { input: svg, left: 0, top: 0 }])
    .removeAlpha()
    .raw()
    .toBuffer({ resolveWithObject: true });
  return { pixels: new Uint8Array(data.buffer, data.byteOffset, data.byteLength), widthPx, heightPx, channels: 3 };
}
