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

/**
 * Decodes an image file to square RGB bytes: EXIF orientation applied, alpha flattened onto
 * black, grayscale/CMYK/16-bit converted to 8-bit sRGB, then resized to `imageSizePx`.
 * Returns a Uint8Array of length imageSizePx² × 3 in HWC order.
 *
 * @example const rgb = await decodeImageRgb("images/ISIC_0024307.jpg", 224); // 150528 bytes
 */
export async function decodeImageRgb(
  filePath: string,
  imageSizePx: number,
  resizePolicy: ResizePolicy = "center-crop",
): Promise<Uint8Array> {
  let stat: fs.Stats;
  try {
    stat = await fs.promises.stat(filePath);
  } catch {
    throw new ImageDecodeError(filePath, "file not found (expected an image file at this path)");
  }
  if (stat.size === 0) throw new ImageDecodeError(filePath, "file is empty (0 bytes; expected a JPEG or PNG image)");
  try {
    const { data, info } = await sharp(filePath, { limitInputPixels: MAX_INPUT_PIXELS, failOn: "error" })
      .rotate()
      .flatten({ background: { r: 0, g: 0, b: 0 } })
      .toColourspace("srgb")
      .resize(imageSizePx, imageSizePx, { fit: resizePolicy === "squash" ? "fill" : "cover", position: "centre" })
      .removeAlpha()
      .raw({ depth: "uchar" })
      .toBuffer({ resolveWithObject: true });
    if (info.channels !== 3 || data.length !== imageSizePx * imageSizePx * 3) {
      throw new Error(`decoded to ${info.width}x${info.height}x${info.channels}, expected ${imageSizePx}x${imageSizePx}x3`);
    }
    return new Uint8Array(data.buffer, data.byteOffset, data.length);
  } catch (err) {
    const msg = err instanceof Error ? err.message : String(err);
    if (/pixel limit/i.test(msg)) {
      throw new ImageDecodeError(filePath, `image is larger than the limit of ${MAX_INPUT_PIXELS} pixels (${msg})`);
    }
    throw new ImageDecodeError(filePath, `cannot decode as an image (${msg}); expected a valid JPEG or PNG`);
  }
}
