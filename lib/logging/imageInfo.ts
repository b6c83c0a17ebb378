/** Format, size and pixel mode of an encoded image, read from its header (no decoding). */
export interface EncodedImageInfo {
  format: "PNG" | "JPEG" | "GIF" | "unknown";
  widthPx: number;
  heightPx: number;
  /** PIL-style mode: "L", "LA", "RGB", "RGBA", "P", "I", "1", "CMYK" ("" when unknown). */
  mode: string;
  byteLength: number;
}

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

function describePngMode(colorType: number, bitDepth: number): string {
  switch (colorType) {
    case 0:
      return bitDepth === 1 ? "1" : bitDepth === 16 ? "I" : "L";
    case 2:
      return "RGB";
    case 3:
      return "P";
    case 4:
      return "LA";
    case 6:
      return "RGBA";
    default:
      return "";
  }
}

/**
 * Reads the header of a PNG, JPEG or GIF: format, width, height and PIL-style mode, as
 * TensorBoard's image dashboard (and PIL) would report them. Unknown formats give zeros.
 *
 * @example describeEncodedImage(pngBytes) // { format: "PNG", widthPx: 12, heightPx: 8, mode: "RGB", byteLength: 364 }
 */
export function describeEncodedImage(bytes: Uint8Array): EncodedImageInfo {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const unknown: EncodedImageInfo = {
    format: "unknown",
    widthPx: 0,
    heightPx: 0,
    mode: "",
    byteLength: bytes.byteLength,
  };
  if (bytes.byteLength >= 29 && PNG_SIGNATURE.every((b, i) => bytes[i] === b)) {
    // IHDR is always the first chunk: width, height, bit depth, colour type.
    return {
      format: "PNG",
      widthPx: view.getUint32(16),
      heightPx: view.getUint32(20),
      mode: describePngMode(bytes[25], bytes[24]),
      byteLength: bytes.byteLength,
    };
  }
  if (bytes.byteLength >= 10 && bytes[0] === 0x47 && bytes[1] === 0x49 && bytes[2] === 0x46) {
    return {
      format: "GIF",
      widthPx: view.getUint16(6, true),
      heightPx: view.getUint16(8, true),
      mode: "P",
      byteLength: bytes.byteLength,
    };
  }
  if (bytes.byteLength >= 4 && bytes[0] === 0xff && bytes[1] === 0xd8) {
    let offset = 2;
    while (offset + 9 < bytes.byteLength) {
      if (bytes[offset] !== 0xff) return unknown;
      const marker = bytes[offset + 1];
      const segmentLength = view.getUint16(offset + 2);
      // SOF0..SOF15 except DHT (C4), JPG (C8) and DAC (CC) carry the frame size.
      if (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) {
        const components = bytes[offset + 9];
        return {
          format: "JPEG",
          heightPx: view.getUint16(offset + 5),
          widthPx: view.getUint16(offset + 7),
          mode: components === 1 ? "L" : components === 4 ? "CMYK" : "RGB",
          byteLength: bytes.byteLength,
        };
      }
      offset += 2 + segmentLength;
    }
  }
  return unknown;
}
