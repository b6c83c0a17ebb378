import sharp from "sharp";
import type * as tf from "@tensorflow/tfjs";
import type { PixelTransform } from "../data/augment.js";
import { decodeImageRgb, type ResizePolicy } from "../data/decodeImage.js";
import type { LesionRecord } from "../data/types.js";
import { renderLabelledImageGrid } from "../logging/imageGrid.js";
import { encodeRawImageToPng } from "../logging/summaryValues.js";
import type { Backbone } from "../models/types.js";
import { MelanomaLabError } from "../util/errors.js";
import { buildErrorGalleryHtml, type GalleryItem } from "./charts.js";
import { blendGradCamOverlay, computeGradCam, decodeImageForModel } from "./gradCam.js";
import { validateBinaryInputs, type BinaryLabels, type ProbabilityScores } from "./metrics.js";
import type { ReportSection } from "./report.js";

/** Thrown for gallery input that does not line up (records vs probabilities, unknown image ids) or a bad option. */
export class GalleryInputError extends MelanomaLabError {}

/** The four outcomes of a thresholded prediction. */
export const OUTCOME_KINDS = ["false negative", "false positive", "true positive", "true negative"] as const;

/** One of {@link OUTCOME_KINDS}. */
export type OutcomeKind = (typeof OUTCOME_KINDS)[number];

/** A gallery tile for {@link buildErrorGalleryHtml}, with where it came from. */
export interface ErrorGalleryItem extends GalleryItem {
  imageId: string;
  kind: OutcomeKind;
  /** Index of the record in the input arrays. */
  index: number;
  /** JPEG thumbnail of the image, as a data URL. */
  thumbnailDataUrl: string;
  /** JPEG thumbnail of the image with its Grad-CAM overlay (when a backbone and head were given); it is then also `imageDataUrl`. */
  overlayDataUrl?: string;
  /** Probability the head gives the decoded image during Grad-CAM (equals `prob` when the features came from the same pipeline). */
  gradCamProbability?: number;
}

/** Grad-CAM inputs for the gallery and the example grid. */
export interface GradCamSource {
  backbone: Backbone;
  head: tf.LayersModel;
  /** Weight of the colour map (default 0.4). */
  alpha?: number;
  /** How files are made square, as in feature extraction (default "center-crop"). */
  resizePolicy?: ResizePolicy;
  /** The run's pixel transform (runPixelTransform, e.g. Shades of Gray), applied before the backbone as in training. */
  pixelTransform?: PixelTransform;
}

/** Options of {@link buildErrorGalleryItems}. */
export interface ErrorGalleryOptions {
  /** Tiles per kind (default 8). */
  topCount?: number;
  /** Side of each thumbnail in px (default 128). */
  thumbnailSizePx?: number;
  /** When given, each tile shows the image with its Grad-CAM overlay. */
  gradCam?: GradCamSource;
}

/**
 * Indices of the records with a given outcome at `thresholdProb` (called malignant when
 * prob ≥ threshold), most striking first: false negatives and true negatives by increasing
 * probability, false positives and true positives by decreasing probability. At most `count`.
 *
 * @example selectOutcomeIndices([1, 1, 0], [0.1, 0.9, 0.8], 0.5, "false negative", 2) // [0]
 */
export function selectOutcomeIndices(
  labels: BinaryLabels,
  probs: ProbabilityScores,
  thresholdProb: number,
  kind: OutcomeKind,
  count: number,
): number[] {
  validateBinaryInputs(labels, probs, { metricName: "outcome selection" });
  if (!Number.isFinite(thresholdProb))
    throw new GalleryInputError(`thresholdProb: received ${thresholdProb}; expected a probability such as 0.3`);
  if (!(Number.isInteger(count) && count >= 0))
    throw new GalleryInputError(`count: received ${count}; expected a non-negative integer`);
  if (!OUTCOME_KINDS.includes(kind))
    throw new GalleryInputError(
      `kind: received ${JSON.stringify(kind)}; expected one of ${OUTCOME_KINDS.map((k) => JSON.stringify(k)).join(", ")}`,
    );
  const wantLabel = kind === "false negative" || kind === "true positive" ? 1 : 0;
  const wantCalledMalignant = kind === "true positive" || kind === "false positive";
  const ascending = kind === "false negative" || kind === "true negative";
  const picked: number[] = [];
  for (let i = 0; i < labels.length; i++) {
    if (labels[i] === wantLabel && probs[i] >= thresholdProb === wantCalledMalignant) picked.push(i);
  }
  // Ties broken by index so the order is reproducible.
  picked.sort((a, b) => (ascending ? probs[a] - probs[b] : probs[b] - probs[a]) || a - b);
  return picked.slice(0, count);
}

/**
 * Records in the order of `imageIds` (e.g. a feature table's rows, which skip unreadable
 * images), so records line up with labels and probabilities. Throws {@link GalleryInputError}
 * naming the first id without a record.
 *
 * @example const rows = alignRecordsByImageId(split.validation, validation.imageIds);
 */
export function alignRecordsByImageId(records: readonly LesionRecord[], imageIds: readonly string[]): LesionRecord[] {
  const byId = new Map(records.map((r) => [r.imageId, r]));
  return imageIds.map((id, row) => {
    const record = byId.get(id);
    if (!record)
      throw new GalleryInputError(
        `imageIds[${row}] is ${JSON.stringify(id)}, which no record has; expected ids from the same split as the records (${records.length} records)`,
      );
    return record;
  });
}

function checkAligned(records: readonly LesionRecord[], labels: BinaryLabels, probs: ProbabilityScores): void {
  if (records.length !== labels.length || probs.length !== labels.length) {
    throw new GalleryInputError(
      `records (${records.length}), labels (${labels.length}) and probs (${probs.length}) differ in length; expected one record per probability (see alignRecordsByImageId)`,
    );
  }
}

async function jpegDataUrl(image: sharp.Sharp, sizePx: number): Promise<string> {
  const jpeg = await image
    .resize(sizePx, sizePx, { fit: "cover", position: "centre" })
    .jpeg({ quality: 82 })
    .toBuffer();
  return `data:image/jpeg;base64,${jpeg.toString("base64")}`;
}

function rawSharp(pixels: Uint8Array, sizePx: number): sharp.Sharp {
  return sharp(Buffer.from(pixels.buffer, pixels.byteOffset, pixels.length), {
    raw: { width: sizePx, height: sizePx, channels: 3 },
  });
}

function captionOf(record: LesionRecord): string {
  return [record.imageId, record.diagnosis, record.source].filter((s) => s !== undefined && s !== "").join(" · ");
}

/**
 * The tiles of an error gallery: the `topCount` false negatives (melanomas with the lowest
 * probability under the threshold) and false positives (benign lesions with the highest
 * probability at or above it), each with a JPEG thumbnail data URL and, when
 * `options.gradCam` is given, its Grad-CAM overlay as the shown image. Feed the result to
 * {@link buildErrorGalleryHtml} (or use {@link buildErrorGallery}). `records[i]` must belong to
 * `labels[i]` and `probs[i]`.
 *
 * @example
 * const items = await buildErrorGalleryItems(rows, probs, labels, 0.3, { topCount: 4, gradCam: { backbone, head } });
 * showHtml(buildErrorGalleryHtml(items, { thresholdProb: 0.3, topCount: 4 }));
 */
export async function buildErrorGalleryItems(
  records: readonly LesionRecord[],
  probs: ProbabilityScores,
  labels: BinaryLabels,
  thresholdProb: number,
  options: ErrorGalleryOptions = {},
): Promise<ErrorGalleryItem[]> {
  checkAligned(records, labels, probs);
  const topCount = options.topCount ?? 8;
  const sizePx = options.thumbnailSizePx ?? 128;
  if (!(Number.isInteger(sizePx) && sizePx >= 8))
    throw new GalleryInputError(`thumbnailSizePx: received ${sizePx}; expected an integer ≥ 8`);
  const picks = (["false negative", "false positive"] as const).flatMap((kind) =>
    selectOutcomeIndices(labels, probs, thresholdProb, kind, topCount).map((index) => ({ kind, index })),
  );
  const items: ErrorGalleryItem[] = [];
  // One image at a time: each Grad-CAM is a full backbone forward pass.
  for (const { kind, index } of picks) {
    const record = records[index];
    const item: ErrorGalleryItem = {
      imageId: record.imageId,
      kind,
      index,
      label: labels[index] === 1 ? 1 : 0,
      prob: probs[index],
      caption: captionOf(record),
      imageDataUrl: "",
      thumbnailDataUrl: "",
    };
    if (options.gradCam) {
      const { backbone, head, alpha } = options.gradCam;
      const rgb = await decodeImageForModel(record.imagePath, backbone, options.gradCam);
      const cam = computeGradCam(backbone, head, rgb, backbone.inputSizePx);
      const overlay = await blendGradCamOverlay(rgb, backbone.inputSizePx, cam.heatmap, cam.featureMapSizePx, {
        alpha,
      });
      item.thumbnailDataUrl = await jpegDataUrl(rawSharp(rgb, backbone.inputSizePx), sizePx);
      item.overlayDataUrl = await jpegDataUrl(rawSharp(overlay, backbone.inputSizePx), sizePx);
      item.gradCamProbability = cam.probability;
      item.imageDataUrl = item.overlayDataUrl;
    } else {
      const rgb = await decodeImageRgb(record.imagePath, sizePx, "center-crop");
      item.thumbnailDataUrl = await jpegDataUrl(rawSharp(rgb, sizePx), sizePx);
      item.imageDataUrl = item.thumbnailDataUrl;
    }
    items.push(item);
  }
  return items;
}

/**
 * {@link buildErrorGalleryItems} and the HTML of {@link buildErrorGalleryHtml} in one call;
 * `section` is ready for {@link writeHtmlReport}.
 *
 * @example
 * const gallery = await buildErrorGallery(rows, probs, labels, operatingPoint.thresholdProb, { topCount: 6, gradCam: { backbone, head } });
 * showHtml(gallery.html, "error gallery");
 */
export async function buildErrorGallery(
  records: readonly LesionRecord[],
  probs: ProbabilityScores,
  labels: BinaryLabels,
  thresholdProb: number,
  options: ErrorGalleryOptions = {},
): Promise<{ items: ErrorGalleryItem[]; html: string; section: ReportSection }> {
  const items = await buildErrorGalleryItems(records, probs, labels, thresholdProb, options);
  const html = buildErrorGalleryHtml(items, {
    thresholdProb,
    topCount: options.topCount ?? 8,
    imageSizePx: options.thumbnailSizePx ?? 128,
  });
  const heading = options.gradCam ? "Error gallery with Grad-CAM (red = evidence for malignant)" : "Error gallery";
  return { items, html, section: { heading, html } };
}

/** Options of {@link renderGradCamExamplesPng}. */
export interface GradCamExamplesOptions {
  /** How many of each outcome, in this order (default two false negatives and two true positives). */
  counts?: Partial<Record<OutcomeKind, number>>;
  /** Tile side in px (default the backbone's input size). */
  cellSizePx?: number;
  /** Tiles per row (default: all in one row). */
  columns?: number;
}

/** One tile of {@link renderGradCamExamplesPng}. */
export interface GradCamExample {
  index: number;
  imageId: string;
  kind: OutcomeKind;
  /** Probability given (e.g. from cached features). */
  prob: number;
  /** Probability of the decoded image under Grad-CAM. */
  gradCamProbability: number;
  /** Maximum of the un-normalised map (0 = no evidence for malignant anywhere). */
  camMax: number;
}

const SHORT_KIND: Record<OutcomeKind, string> = {
  "false negative": "FN",
  "false positive": "FP",
  "true positive": "TP",
  "true negative": "TN",
};

/**
 * One PNG grid of Grad-CAM overlays for the most striking examples of each requested outcome
 * (default: the two melanomas the model missed worst and the two it was surest of), captioned
 * "FN p=0.041 ISIC_…". `records[i]` must belong to `labels[i]` and `probs[i]`.
 *
 * `section` shows the same PNG in {@link writeHtmlReport}.
 *
 * @example
 * const { png } = await renderGradCamExamplesPng({ backbone, head }, rows, labels, probs, operatingPoint.thresholdProb);
 * showPng(png, "Grad-CAM: 2 false negatives, 2 true positives");
 */
export async function renderGradCamExamplesPng(
  gradCam: GradCamSource,
  records: readonly LesionRecord[],
  labels: BinaryLabels,
  probs: ProbabilityScores,
  thresholdProb: number,
  options: GradCamExamplesOptions = {},
): Promise<{ png: Uint8Array; examples: GradCamExample[]; section: ReportSection }> {
  checkAligned(records, labels, probs);
  const counts = options.counts ?? { "false negative": 2, "true positive": 2 };
  const picks = (Object.entries(counts) as [OutcomeKind, number][]).flatMap(([kind, count]) =>
    selectOutcomeIndices(labels, probs, thresholdProb, kind, count).map((index) => ({ kind, index })),
  );
  if (picks.length === 0) {
    throw new GalleryInputError(
      `no record matches ${JSON.stringify(counts)} at threshold ${thresholdProb}; expected at least one image to explain`,
    );
  }
  const { backbone, head, alpha } = gradCam;
  const sizePx = backbone.inputSizePx;
  const tiles = [];
  const examples: GradCamExample[] = [];
  let featureMapSizePx = 0;
  for (const { kind, index } of picks) {
    const record = records[index];
    const rgb = await decodeImageForModel(record.imagePath, backbone, gradCam);
    const cam = computeGradCam(backbone, head, rgb, sizePx);
    featureMapSizePx = cam.featureMapSizePx;
    const overlay = await blendGradCamOverlay(rgb, sizePx, cam.heatmap, cam.featureMapSizePx, { alpha });
    tiles.push({
      image: { pixels: overlay, widthPx: sizePx, heightPx: sizePx, channels: 3 as const },
      label: `${SHORT_KIND[kind]} p=${probs[index].toFixed(3)} ${record.imageId}`,
      outcome: kind.startsWith("true") ? ("correct" as const) : ("wrong" as const),
    });
    examples.push({
      index,
      imageId: record.imageId,
      kind,
      prob: probs[index],
      gradCamProbability: cam.probability,
      camMax: cam.camMax,
    });
  }
  const grid = await renderLabelledImageGrid(tiles, {
    columns: options.columns ?? tiles.length,
    cellSizePx: options.cellSizePx ?? sizePx,
  });
  const png = await encodeRawImageToPng(grid);
  const alt = examples.map((e) => `${SHORT_KIND[e.kind]} ${e.imageId}`).join(", ");
  const html =
    `<img src="data:image/png;base64,${Buffer.from(png.buffer, png.byteOffset, png.length).toString("base64")}" alt="Grad-CAM overlays: ${alt}" style="max-width:100%">` +
    `<p style="font:12px sans-serif;color:#555">Red = image regions whose features raise the malignant logit most (Grad-CAM on ${backbone.featureLayerName}, ` +
    `${featureMapSizePx}×${featureMapSizePx} cells upsampled); green frame = correct at threshold ${Number(thresholdProb.toFixed(4))}, red frame = missed or false alarm.</p>`;
  return { png, examples, section: { heading: "Grad-CAM examples", html } };
}
