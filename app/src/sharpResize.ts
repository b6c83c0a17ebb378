/**
 * Square resize of 8-bit RGBA/RGB pixels that repeats what `npm run score` does with sharp
 * (libvips 8.17, `fit: "cover"` or `"fill"`, `position: "centre"`, the default lanczos3 kernel), so
 * the phone app feeds the model the same pixels as the node scorer. Pure (no DOM, no node), so the
 * node tests compare it with sharp directly.
 *
 * What libvips does, and this file repeats:
 * - cover: one scale factor for both axes, `min(width, height) / sizePx`; the scaled image is
 *   `round(width / factor)` × `round(height / factor)`, then cropped at the centre
 *   (`left = (scaledWidth − sizePx + 1) >> 1`). fill ("squash"): a factor per axis.
 * - downscale (factor > 1): when the factor is at least 4, an integer box shrink by
 *   `floor(factor / 2)` first (vips_shrink, rounded mean, a partial last block padded with the
 *   edge); then a lanczos3 filter stretched by the remaining factor, `2·round(3·factor) + 1` taps
 *   centred at `(x + 0.5)·factor − 0.5 − extra / 2` (extra: pixels gained by rounding the output size), its phase rounded to 1/64 pixel, weights normalised and
 *   truncated to 12-bit fixed point, the sum rounded and clipped to 0..255, edge pixels repeated;
 *   vertical pass first. Found by comparing with sharp 0.34.5 (libvips 8.17) on raw pixels:
 *   identical bytes for downscales (tests/app/sharpResize.test.ts).
 * - upscale (factor < 1): libvips uses an affine transform with a bicubic interpolator; this file
 *   repeats it with Catmull-Rom weights at the same centre convention (not bit-exact; the
 *   difference is measured in tests/app/sharpResize.test.ts).
 * Not repeated: sharp's JPEG shrink-on-load (libjpeg DCT scaling) for JPEGs at least about 4×
 * larger than the model input; the browser decodes at full size. tests/app measures that case.
 */

/** How a non-square image becomes square (the same names as lib/data's ResizePolicy). */
export type SquareResizePolicy = "center-crop" | "squash";

/** An 8-bit image, `channels` bytes per pixel (3 = RGB, 4 = RGBA; alpha is dropped), rows top to bottom. */
export interface PixelImage {
  width: number;
  height: number;
  channels: 3 | 4;
  data: Uint8Array | Uint8ClampedArray;
}

const FIXED_POINT_SCALE = 1 << 12;

function lanczos3(x: number): number {
  if (x === 0) return 1;
  if (x < -3 || x > 3) return 0;
  return (3 * Math.sin(Math.PI * x) * Math.sin((Math.PI * x) / 3)) / (Math.PI * Math.PI * x * x);
}

/** Box shrink of one axis by an integer factor, rounding like vips_shrinkh/v ("ceil": a partial last block is averaged over what it has). */
function boxShrinkAxis(
  src: Float64Array,
  length: number,
  lines: number,
  factor: number,
): { data: Float64Array; length: number } {
  const outLength = Math.ceil(length / factor);
  const out = new Float64Array(outLength * lines * 3);
  for (let line = 0; line < lines; line++) {
    for (let o = 0; o < outLength; o++) {
      for (let c = 0; c < 3; c++) {
        let sum = 0;
        for (let k = 0; k < factor; k++) {
          // libvips extends the edge by copying the last pixel for a partial block.
          const i = Math.min(o * factor + k, length - 1);
          sum += src[(line * length + i) * 3 + c];
        }
        out[(line * outLength + o) * 3 + c] = Math.floor((sum + Math.floor(factor / 2)) / factor);
      }
    }
  }
  return { data: out, length: outLength };
}

/** Lanczos3 reduce of one axis (lines of `length` pixels) to `outLength`, as sharp's libvips does for uchar. */
function reduceAxis(
  src: Float64Array,
  length: number,
  lines: number,
  outLength: number,
  factorIn: number,
): { data: Float64Array; length: number } {
  let data = src;
  let len = length;
  let factor = factorIn;
  // libvips leaves a factor of at least the "gap" (2) to the lanczos filter after an integer box shrink.
  const intShrink = Math.max(1, Math.floor(factor / 2));
  if (intShrink > 1) {
    ({ data, length: len } = boxShrinkAxis(data, len, lines, intShrink));
    factor /= intShrink;
  }
  const points = 2 * Math.round(3 * factor) + 1;
  const half = Math.floor(points / 2);
  const coefs = new Int32Array(outLength * points);
  const firstTap = new Int32Array(outLength);
  // Output pixels invented (+) or input pixels left unused (−) by rounding the output size: libvips
  // moves the origin by half of them so both edges share the difference.
  const extraPixels = (outLength * factorIn - length) / intShrink;
  let X = 0.5 * factor - 0.5 - extraPixels / 2;
  for (let o = 0; o < outLength; o++) {
    const ix = Math.floor(X);
    // The filter phase is looked up in a table of 64 sub-pixel positions (VIPS_TRANSFORM_SCALE).
    const phase = Math.round((X - ix) * 64) / 64;
    const weights: number[] = [];
    let sum = 0;
    for (let k = 0; k < points; k++) {
      const w = lanczos3((k - half - phase) / factor);
      weights.push(w);
      sum += w;
    }
    firstTap[o] = ix - half;
    // Each normalised weight × 4096, truncated toward zero (12-bit fixed point).
    for (let k = 0; k < points; k++) coefs[o * points + k] = Math.trunc((weights[k] / sum) * FIXED_POINT_SCALE);
    X += factor;
  }
  const out = new Float64Array(outLength * lines * 3);
  for (let line = 0; line < lines; line++) {
    for (let o = 0; o < outLength; o++) {
      for (let c = 0; c < 3; c++) {
        let acc = 0;
        for (let k = 0; k < points; k++) {
          // Taps outside the image repeat the edge pixel (libvips embeds with "extend copy").
          const j = Math.min(len - 1, Math.max(0, firstTap[o] + k));
          acc += coefs[o * points + k] * data[(line * len + j) * 3 + c];
        }
        const v = (acc + FIXED_POINT_SCALE / 2) >> 12;
        out[(line * outLength + o) * 3 + c] = v < 0 ? 0 : v > 255 ? 255 : v;
      }
    }
  }
  return { data: out, length: outLength };
}

/** Catmull-Rom upscale of one axis, centre convention, edges extended (libvips's bicubic affine, approximately). */
function upscaleAxis(
  src: Float64Array,
  length: number,
  lines: number,
  outLength: number,
  factor: number,
): { data: Float64Array; length: number } {
  const out = new Float64Array(outLength * lines * 3);
  for (let o = 0; o < outLength; o++) {
    const x = (o + 0.5) * factor - 0.5;
    const ix = Math.floor(x);
    const t = x - ix;
    const w = [
      ((-t + 2) * t - 1) * t * 0.5,
      ((3 * t - 5) * t * t + 2) * 0.5,
      ((-3 * t + 4) * t + 1) * t * 0.5,
      (t - 1) * t * t * 0.5,
    ];
    for (let line = 0; line < lines; line++) {
      for (let c = 0; c < 3; c++) {
        let acc = 0;
        for (let k = 0; k < 4; k++) {
          const j = Math.min(length - 1, Math.max(0, ix - 1 + k));
          acc += w[k] * src[(line * length + j) * 3 + c];
        }
        const v = Math.round(acc);
        out[(line * outLength + o) * 3 + c] = v < 0 ? 0 : v > 255 ? 255 : v;
      }
    }
  }
  return { data: out, length: outLength };
}

function resizeAxis(
  src: Float64Array,
  length: number,
  lines: number,
  outLength: number,
  factor: number,
): { data: Float64Array; length: number } {
  if (outLength === length) return { data: src, length };
  return factor > 1
    ? reduceAxis(src, length, lines, outLength, factor)
    : upscaleAxis(src, length, lines, outLength, factor);
}

function transpose(src: Float64Array, width: number, height: number): Float64Array {
  const out = new Float64Array(src.length);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const s = (y * width + x) * 3;
      const d = (x * height + y) * 3;
      out[d] = src[s];
      out[d + 1] = src[s + 1];
      out[d + 2] = src[s + 2];
    }
  }
  return out;
}

/**
 * Resizes an image to `sizePx` × `sizePx` RGB (HWC, Uint8Array of sizePx² × 3) as sharp's
 * `resize({ width: sizePx, height: sizePx, fit: cover|fill, position: "centre" })` does.
 *
 * @example resizeSquareLikeSharp({ width: 600, height: 450, channels: 4, data: rgba }, 224, "center-crop").length // 150528
 */
export function resizeSquareLikeSharp(image: PixelImage, sizePx: number, policy: SquareResizePolicy): Uint8Array {
  const { width, height, channels, data } = image;
  if (!(width > 0 && height > 0 && data.length === width * height * channels)) {
    throw new RangeError(
      `image: received ${data.length} bytes for ${width}×${height}×${channels}, expected width × height × channels bytes`,
    );
  }
  let rgb: Float64Array = new Float64Array(width * height * 3);
  for (let i = 0, j = 0; i < width * height; i++, j += channels) {
    rgb[i * 3] = data[j];
    rgb[i * 3 + 1] = data[j + 1];
    rgb[i * 3 + 2] = data[j + 2];
  }
  let xFactor = width / sizePx;
  let yFactor = height / sizePx;
  if (policy === "center-crop") xFactor = yFactor = Math.min(xFactor, yFactor);
  const scaledWidth = policy === "center-crop" ? Math.round(width / xFactor) : sizePx;
  const scaledHeight = policy === "center-crop" ? Math.round(height / yFactor) : sizePx;
  // Vertical pass first, as vips_resize does; it runs along columns, hence the transposes.
  const columns = resizeAxis(transpose(rgb, width, height), height, width, scaledHeight, yFactor);
  rgb = transpose(columns.data, scaledHeight, width);
  const rows = resizeAxis(rgb, width, scaledHeight, scaledWidth, xFactor);
  const left = (scaledWidth - sizePx + 1) >> 1;
  const top = (scaledHeight - sizePx + 1) >> 1;
  const out = new Uint8Array(sizePx * sizePx * 3);
  for (let y = 0; y < sizePx; y++) {
    for (let x = 0; x < sizePx; x++) {
      const s = ((y + top) * scaledWidth + (x + left)) * 3;
      const d = (y * sizePx + x) * 3;
      out[d] = rows.data[s];
      out[d + 1] = rows.data[s + 1];
      out[d + 2] = rows.data[s + 2];
    }
  }
  return out;
}
