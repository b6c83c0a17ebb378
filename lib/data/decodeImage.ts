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
 * Decodes an image file to square RGB bytes: EXIF orientation applied, alpha flattened onto
 * black, grayscale/CMYK/16-bit converted to 8-bit sRGB, then resized to `imageSizePx`.
 * Returns a Uint8Array of length imageSizePx² × 3 in HWC order. `fileBytes`, when given, are the
 * file's contents already read by the caller (errors still name `filePath`).
 *
 * Speed: most dermoscopy files are 8-bit 3-channel JPEGs, for which the alpha and colourspace
 * steps do nothing, so a lean pipeline (orient, resize) runs first; only when its output is not
 * 8-bit 3-channel (alpha, grayscale, 16-bit) does the full pipeline run. Outputs are the same.
 *
 * @example const rgb = await decodeImageRgb("images/ISIC_0024307.jpg", 224); // 150528 bytes
 */
export async function decodeImageRgb(
  filePath: string,
  imageSizePx: number,
  resizePolicy: ResizePolicy = "center-crop",
  fileBytes?: Uint8Array,
): Promise<Uint8Array> {
  const expectedBytes = imageSizePx * imageSizePx * 3;
  // Callers that already read the file (to hash it for a cache) pass its bytes: no second read.
  const source = fileBytes ? Buffer.from(fileBytes.buffer, fileBytes.byteOffset, fileBytes.length) : filePath;
  try {
    const lean = await sharp(source, sharpOptions())
      .rotate()
      .resize(resizeOptions(imageSizePx, resizePolicy))
      .raw()
      .toBuffer({ resolveWithObject: true });
    if (lean.info.channels === 3 && lean.data.length === expectedBytes) {
      return new Uint8Array(lean.data.buffer, lean.data.byteOffset, lean.data.length);
    }
  } catch (err) {
    throw await decodeFailure(filePath, err);
  }
  try {
    const { data, info } = await sharp(source, sharpOptions())
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
  } catch (err) {
    throw await decodeFailure(filePath, err);
  }
}
