import fs from "node:fs";
import sharp from "sharp";
import { MelanomaLabError } from "../util/errors.js";

/** How a non-square image becomes square: centre crop keeping aspect, or squash (stretch). */
export type ResizePolicy = "center-crop" | "squash";

/** Thrown for a file that is missing, empty, not an image, truncated or too large. */
export class ImageDecodeError extends MelanomaLabError {
  readonly file: string;
  constructor(file: string, reason: string) {
    super(`${file}: ${reason}`);
    this.file = file;
  }
}

/** Largest image accepted, in pixels (width × height): guards against decompression bombs. */
export const MAX_INPUT_PIXELS = 10_000 * 10_000;

function sharpOptions(): sharp.SharpOptions {
  return { limitInputPixels: MAX_INPUT_PIXELS, failOn: "error" };
}

function resizeOptions(imageSizePx: number, resizePolicy: ResizePolicy): sharp.ResizeOptions {
  return { width: imageSizePx, height: imageSizePx, fit: resizePolicy === "squash" ? "fill" : "cover", position: "centre" };
}

/**
 * Why a file could not be decoded: a missing or empty file is named as such (checked only after
 * a failure, so the usual path costs no extra stat), anything else gets the decoder's message.
 */
async function decodeFailure(filePath: string, err: unknown): Promise<ImageDecodeError> {
  let stat: fs.Stats | undefined;
  try {
    stat = await fs.promises.stat(filePath);
  } catch {
    return new ImageDecodeError(filePath, "file not found (expected an image file at this path)");
  }
  if (stat.size === 0) return new ImageDecodeError(filePath, "file is empty (0 bytes; expected a JPEG or PNG image)");
  const msg = err instanceof Error ? err.message : String(err);
  if (/pixel limit/i.test(msg)) {
    return new ImageDecodeError(filePath, `image is larger than the limit of ${MAX_INPUT_PIXELS} pixels (${msg})`);
  }
  return new ImageDecodeError(filePath, `cannot decode as an image (${msg}); expected a valid JPEG or PNG`);
}

/**
 * Decodes `source` (a file path or the file's bytes) to square 8-bit RGB, HWC, length
 * imageSizePx² × 3. Throws the decoder's own error: callers name the source in their message.
 *
 * Speed: most dermoscopy files are 8-bit 3-channel JPEGs, for which the alpha and colourspace
 * steps do nothing, so a lean pipeline (orient, resize) runs first; only when its output is not
 * 8-bit 3-channel (alpha, grayscale, 16-bit) does the full pipeline run. Outputs are the same.
 */
async function decodeSourceRgb(
  source: string | Buffer,
  imageSizePx: number,
  resizePolicy: ResizePolicy,
  options: sharp.SharpOptions,
): Promise<Uint8Array> {
  const expectedBytes = imageSizePx * imageSizePx * 3;
  const lean = await sharp(source, options)
    .rotate()
    .resize(resizeOptions(imageSizePx, resizePolicy))
    .raw()
    .toBuffer({ resolveWithObject: true });
  if (lean.info.channels === 3 && lean.data.length === expectedBytes) {
    return new Uint8Array(lean.data.buffer, lean.data.byteOffset, lean.data.length);
  }
  const { data, info } = await sharp(source, options)
    .rotate()
    .flatten({ background: { r: 0, g: 0, b: 0 } })
    .toColourspace("srgb")
    .resize(resizeOptions(imageSizePx, resizePolicy))
    .removeAlpha()
    .raw({ depth: "uchar" })
    .toBuffer({ resolveWithObject: true });
  if (info.channels !== 3 || data.length !== expectedBytes) {
    throw new Error(`decoded to ${info.width}x${info.height}x${info.channels}, expected ${imageSizePx}x${imageSizePx}x3`);
  }
  return new Uint8Array(data.buffer, data.byteOffset, data.length);
}

/**
 * Decodes an image file to square RGB bytes: EXIF orientation applied, alpha flattened onto
 * black, grayscale/CMYK/16-bit converted to 8-bit sRGB, then resized to `imageSizePx`.
 * Returns a Uint8Array of length imageSizePx² × 3 in HWC order. `fileBytes`, when given, are the
 * file's contents already read by the caller (errors still name `filePath`).
 *
 * @example const rgb = await decodeImageRgb("images/ISIC_0024307.jpg", 224); // 150528 bytes
 */
export async function decodeImageRgb(
  filePath: string,
  imageSizePx: number,
  resizePolicy: ResizePolicy = "center-crop",
  fileBytes?: Uint8Array,
): Promise<Uint8Array> {
  // Callers that already read the file (to hash it for a cache) pass its bytes: no second read.
  const source = fileBytes ? toBuffer(fileBytes) : filePath;
  try {
    return await decodeSourceRgb(source, imageSizePx, resizePolicy, sharpOptions());
  } catch (err) {
    throw await decodeFailure(filePath, err);
  }
}

function toBuffer(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
}

/** What an image's header says, read without decoding its pixels (see {@link readImageHeader}). */
export interface ImageHeader {
  /** Container format as the decoder names it, e.g. "jpeg", "png". */
  format: string;
  widthPx: number;
  heightPx: number;
  /** widthPx × heightPx as declared; a decompression bomb declares far more than its bytes hold. */
  declaredPixels: number;
}

/** Thrown for image bytes (not a file) that cannot be decoded, or that declare more pixels than allowed. */
export class ImageBytesError extends MelanomaLabError {
  /** "too-large": the header declares more pixels than the limit; "undecodable": anything else. */
  readonly kind: "too-large" | "undecodable";
  /** The header, when it was read before the refusal. */
  readonly header?: ImageHeader;
  constructor(kind: "too-large" | "undecodable", message: string, header?: ImageHeader) {
    super(message);
    this.kind = kind;
    this.header = header;
  }
}

/**
 * Reads an image's format and dimensions from its header only (sharp's metadata: no pixels are
 * decoded), so a caller can refuse a decompression bomb — a small file declaring 30000×30000 —
 * before it costs memory. Throws {@link ImageBytesError} ("undecodable") when there is no
 * readable header.
 *
 * @example (await readImageHeader(bytes)).declaredPixels // 600 × 450 = 270000
 */
export async function readImageHeader(bytes: Uint8Array, label = "image bytes"): Promise<ImageHeader> {
  let meta: sharp.Metadata;
  try {
    meta = await sharp(toBuffer(bytes), { limitInputPixels: false }).metadata();
  } catch (err) {
    throw new ImageBytesError(
      "undecodable",
      `${label}: no readable image header (${err instanceof Error ? err.message : String(err)}); expected a valid JPEG or PNG`,
    );
  }
  if (!meta.format || !meta.width || !meta.height) {
    throw new ImageBytesError(
      "undecodable",
      `${label}: header gives format ${meta.format ?? "none"}, ${meta.width ?? "?"}×${meta.height ?? "?"} px; expected a JPEG or PNG with its dimensions`,
    );
  }
  return { format: meta.format, widthPx: meta.width, heightPx: meta.height, declaredPixels: meta.width * meta.height };
}

/**
 * Decodes image bytes held in memory (an upload, never a file) exactly as {@link decodeImageRgb}
 * decodes a file — same orientation, colour handling and resize, so the pixels (and a model's
 * probability) equal those of the same image read from disk. The header is checked first:
 * more than `maxInputPixels` declared (default {@link MAX_INPUT_PIXELS}) throws
 * {@link ImageBytesError} "too-large" before any pixel is decoded; bytes that do not decode
 * (truncated, corrupt) throw "undecodable". Nothing touches the file system.
 *
 * @example const rgb = await decodeImageRgbFromBuffer(uploadBytes, 224, "center-crop", { maxInputPixels: 25e6 }); // 150528 bytes
 */
export async function decodeImageRgbFromBuffer(
  bytes: Uint8Array,
  imageSizePx: number,
  resizePolicy: ResizePolicy = "center-crop",
  options: { maxInputPixels?: number; label?: string } = {},
): Promise<Uint8Array> {
  const maxInputPixels = options.maxInputPixels ?? MAX_INPUT_PIXELS;
  const label = options.label ?? "image bytes";
  if (bytes.length === 0) throw new ImageBytesError("undecodable", `${label}: empty (0 bytes); expected a JPEG or PNG image`);
  const header = await readImageHeader(bytes, label);
  if (header.declaredPixels > maxInputPixels) {
    throw new ImageBytesError(
      "too-large",
      `${label}: header declares ${header.widthPx}×${header.heightPx} = ${header.declaredPixels} pixels; expected at most ${maxInputPixels}`,
      header,
    );
  }
  try {
    return await decodeSourceRgb(toBuffer(bytes), imageSizePx, resizePolicy, {
      limitInputPixels: maxInputPixels,
      failOn: "error",
    });
  } catch (err) {
    throw new ImageBytesError(
      "undecodable",
      `${label}: cannot decode as an image (${err instanceof Error ? err.message : String(err)}); expected a valid JPEG or PNG`,
    );
  }
}
