import { MelanomaLabError } from "../util/errors.js";
import { createRandom } from "../util/random.js";

/**
 * A named image → image function (a flip, a rotation, colour constancy), applied to decoded RGB
 * bytes before a backbone sees them; see `ExtractFeaturesOptions.pixelTransform` in lib/models.
 */
export interface PixelTransform {
  /** Identifies the transform and its settings in cache keys, e.g. "dihedral:h1q0". */
  name: string;
  /** Returns the transformed RGB bytes (same size); must not depend on anything but its input. */
  apply: (rgb: Uint8Array, sizePx: number) => Uint8Array;
}

/** Thrown for an image buffer whose length does not match its size, or options out of range. */
export class AugmentationError extends MelanomaLabError {}

/** Ranges of {@link randomAugmentImage}; a zero/false turns that augmentation off. */
export interface AugmentOptions {
  /** Random horizontal and vertical flips (each p = 0.5). Default true. */
  flips?: boolean;
  /** Random rotation by 0/90/180/270°. Default true (dermoscopy has no "up"). */
  rotate90?: boolean;
  /** Extra rotation, uniform in ±maxRotationDeg degrees. Default 15. */
  maxRotationDeg?: number;
  /** Zoom factor uniform in 1 ± maxZoomFraction. Default 0.1. */
  maxZoomFraction?: number;
  /** Shift uniform in ± maxShiftFraction of the side, each axis. Default 0.05. */
  maxShiftFraction?: number;
  /** Additive brightness, uniform in ± brightness × 255. Default 0.1. */
  brightness?: number;
  /** Contrast factor uniform in 1 ± contrast (around the mean luma). Default 0.1. */
  contrast?: number;
  /** Saturation factor uniform in 1 ± saturation. Default 0.1. */
  saturation?: number;
  /** Hue rotation uniform in ± hueDeg degrees (in the YIQ chroma plane). Default 5. */
  hueDeg?: number;
}

/** No augmentation at all: handy as a base to switch single ones on. */
export const NO_AUGMENTATION: Required<AugmentOptions> = {
  flips: false,
  rotate90: false,
  maxRotationDeg: 0,
  maxZoomFraction: 0,
  maxShiftFraction: 0,
  brightness: 0,
  contrast: 0,
  saturation: 0,
  hueDeg: 0,
};

const DEFAULTS: Required<AugmentOptions> = {
  flips: true,
  rotate90: true,
  maxRotationDeg: 15,
  maxZoomFraction: 0.1,
  maxShiftFraction: 0.05,
  brightness: 0.1,
  contrast: 0.1,
  saturation: 0.1,
  hueDeg: 5,
};

function checkImage(rgb: Uint8Array, sizePx: number): void {
  if (!(Number.isInteger(sizePx) && sizePx > 0) || rgb.length !== sizePx * sizePx * 3) {
    throw new AugmentationError(`image buffer has ${rgb.length} bytes; expected sizePx² × 3 = ${sizePx}² × 3 = ${sizePx * sizePx * 3} (HWC RGB)`);
  }
}

/**
 * Exact dihedral transform of a square HWC RGB image: optional horizontal flip, vertical flip, then
 * `quarterTurns` × 90° clockwise. Pure index permutation (no resampling).
 *
 * @example const mirrored = transformImageDihedral(rgb, 224, { flipHorizontal: true });
 */
export function transformImageDihedral(
  rgb: Uint8Array,
  sizePx: number,
  t: { flipHorizontal?: boolean; flipVertical?: boolean; quarterTurns?: number },
): Uint8Array {
  checkImage(rgb, sizePx);
  const S = sizePx;
  const turns = (((t.quarterTurns ?? 0) % 4) + 4) % 4;
  const out = new Uint8Array(rgb.length);
  for (let y = 0; y < S; y++) {
    for (let x = 0; x < S; x++) {
      // Output (x, y) looks up its source by undoing the rotation, then the flips.
      let sx = x;
      let sy = y;
      for (let k = 0; k < turns; k++) {
        const tx = sy;
        sy = S - 1 - sx;
        sx = tx;
      }
      if (t.flipVertical) sy = S - 1 - sy;
      if (t.flipHorizontal) sx = S - 1 - sx;
      const o = (y * S + x) * 3;
      const i = (sy * S + sx) * 3;
      out[o] = rgb[i];
      out[o + 1] = rgb[i + 1];
      out[o + 2] = rgb[i + 2];
    }
  }
  return out;
}

/** Bilinear resample for rotation (radians), zoom and shift (pixels) about the centre; edges reflect. */
function resampleAffine(rgb: Uint8Array, S: number, angle: number, zoom: number, shiftX: number, shiftY: number): Uint8Array {
  const out = new Uint8Array(rgb.length);
  const cos = Math.cos(angle) / zoom;
  const sin = Math.sin(angle) / zoom;
  const c = (S - 1) / 2;
  const last = S - 1;
  const reflect = (v: number) => {
    if (v >= 0 && v <= last) return v;
    const period = 2 * last;
    let m = ((v % period) + period) % period;
    if (m > last) m = period - m;
    return m;
  };
  let o = 0;
  for (let y = 0; y < S; y++) {
    const dy = y - c - shiftY;
    // Source coordinates advance linearly along a row: start, then add (cos, -sin) per pixel.
    let rawX = c + cos * (-c - shiftX) + sin * dy;
    let rawY = c - sin * (-c - shiftX) + cos * dy;
    for (let x = 0; x < S; x++, rawX += cos, rawY -= sin, o += 3) {
      const sx = reflect(rawX);
      const sy = reflect(rawY);
      const x0 = sx | 0;
      const y0 = sy | 0;
      const fx = sx - x0;
      const fy = sy - y0;
      const i00 = (y0 * S + x0) * 3;
      const dx1 = x0 < last ? 3 : 0;
      const dy1 = y0 < last ? S * 3 : 0;
      const w00 = (1 - fx) * (1 - fy);
      const w01 = fx * (1 - fy);
      const w10 = (1 - fx) * fy;
      const w11 = fx * fy;
      const i01 = i00 + dx1;
      const i10 = i00 + dy1;
      const i11 = i10 + dx1;
      out[o] = rgb[i00] * w00 + rgb[i01] * w01 + rgb[i10] * w10 + rgb[i11] * w11 + 0.5;
      out[o + 1] = rgb[i00 + 1] * w00 + rgb[i01 + 1] * w01 + rgb[i10 + 1] * w10 + rgb[i11 + 1] * w11 + 0.5;
      out[o + 2] = rgb[i00 + 2] * w00 + rgb[i01 + 2] * w01 + rgb[i10 + 2] * w10 + rgb[i11 + 2] * w11 + 0.5;
    }
  }
  return out;
}

/**
 * Brightness/contrast/saturation/hue as one affine colour map in YIQ space (luma Y, chroma I/Q):
 * contrast scales Y about the image's mean luma, saturation scales the chroma, hue rotates it.
 */
function jitterColour(rgb: Uint8Array, brightness: number, contrast: number, saturation: number, hueRad: number): Uint8Array {
  let meanY = 0;
  for (let i = 0; i < rgb.length; i += 3) meanY += 0.299 * rgb[i] + 0.587 * rgb[i + 1] + 0.114 * rgb[i + 2];
  meanY /= rgb.length / 3;
  const cosH = Math.cos(hueRad) * saturation;
  const sinH = Math.sin(hueRad) * saturation;
  const out = new Uint8Array(rgb.length);
  for (let i = 0; i < rgb.length; i += 3) {
    const r = rgb[i];
    const g = rgb[i + 1];
    const b = rgb[i + 2];
    let Y = 0.299 * r + 0.587 * g + 0.114 * b;
    const I = 0.596 * r - 0.274 * g - 0.322 * b;
    const Q = 0.211 * r - 0.523 * g + 0.312 * b;
    Y = (Y - meanY) * contrast + meanY + brightness;
    const I2 = I * cosH - Q * sinH;
    const Q2 = I * sinH + Q * cosH;
    const nr = Y + 0.956 * I2 + 0.621 * Q2;
    const ng = Y - 0.272 * I2 - 0.647 * Q2;
    const nb = Y - 1.106 * I2 + 1.703 * Q2;
    out[i] = nr < 0 ? 0 : nr > 255 ? 255 : Math.round(nr);
    out[i + 1] = ng < 0 ? 0 : ng > 255 ? 255 : Math.round(ng);
    out[i + 2] = nb < 0 ? 0 : nb > 255 ? 255 : Math.round(nb);
  }
  return out;
}

/**
 * One random training augmentation of a square HWC RGB image, fully determined by `seed`:
 * flips, a 90° rotation, a small rotation/zoom/shift (bilinear, reflected edges), then
 * brightness/contrast/saturation/hue jitter (see {@link AugmentOptions} for ranges). Returns a new
 * buffer of the same size; the input is not modified. Pure JS: no tensors to dispose.
 *
 * @example const augmented = randomAugmentImage(rgb, 224, epoch * 100_003 + index);
 */
export function randomAugmentImage(rgb: Uint8Array, sizePx: number, seed: number, options: AugmentOptions = {}): Uint8Array {
  checkImage(rgb, sizePx);
  const o = { ...DEFAULTS, ...options };
  for (const key of ["maxRotationDeg", "maxZoomFraction", "maxShiftFraction", "brightness", "contrast", "saturation", "hueDeg"] as const) {
    const v = o[key];
    const max = key === "maxRotationDeg" || key === "hueDeg" ? 180 : 0.9;
    if (!(Number.isFinite(v) && v >= 0 && v <= max)) throw new AugmentationError(`augmentation option ${key} must be in 0–${max}; received ${v}`);
  }
  const rand = createRandom(seed);
  // Every draw happens whether or not its option is on, so switching one off leaves the others' values unchanged.
  const flipH = rand() < 0.5;
  const flipV = rand() < 0.5;
  const turns = Math.floor(rand() * 4);
  const angle = ((rand() * 2 - 1) * o.maxRotationDeg * Math.PI) / 180;
  const zoom = 1 + (rand() * 2 - 1) * o.maxZoomFraction;
  const shiftX = (rand() * 2 - 1) * o.maxShiftFraction * sizePx;
  const shiftY = (rand() * 2 - 1) * o.maxShiftFraction * sizePx;
  const brightness = (rand() * 2 - 1) * o.brightness * 255;
  const contrast = 1 + (rand() * 2 - 1) * o.contrast;
  const saturation = 1 + (rand() * 2 - 1) * o.saturation;
  const hue = ((rand() * 2 - 1) * o.hueDeg * Math.PI) / 180;
  let out = transformImageDihedral(rgb, sizePx, {
    flipHorizontal: o.flips && flipH,
    flipVertical: o.flips && flipV,
    quarterTurns: o.rotate90 ? turns : 0,
  });
  if (angle !== 0 || zoom !== 1 || shiftX !== 0 || shiftY !== 0) out = resampleAffine(out, sizePx, angle, zoom, shiftX, shiftY);
  if (brightness !== 0 || contrast !== 1 || saturation !== 1 || hue !== 0) out = jitterColour(out, brightness, contrast, saturation, hue);
  return out;
}

/** The 8 exact dihedral views used for test-time augmentation, in a fixed order. */
export const TTA_DIHEDRAL_VIEWS: readonly { flipHorizontal: boolean; quarterTurns: number }[] = [0, 1, 2, 3].flatMap((quarterTurns) => [
  { flipHorizontal: false, quarterTurns },
  { flipHorizontal: true, quarterTurns },
]);

/**
 * Test-time augmentation variants of one image: first the exact dihedral views (identity first,
 * then flips and 90° rotations, up to 8), then, for `variantCount` > 8, mild seeded random
 * augmentations from {@link randomAugmentImage} (no colour jitter). Average the model's
 * probabilities over the variants.
 *
 * @example const variants = createTtaVariants(rgb, 224, { variantCount: 8 }); // variants[0] equals rgb
 */
export function createTtaVariants(rgb: Uint8Array, sizePx: number, options: { variantCount?: number; seed?: number } = {}): Uint8Array[] {
  checkImage(rgb, sizePx);
  const count = options.variantCount ?? 8;
  if (!(Number.isInteger(count) && count >= 1 && count <= 64)) throw new AugmentationError(`variantCount must be a whole number in 1–64; received ${count}`);
  const variants: Uint8Array[] = [];
  for (let i = 0; i < Math.min(count, TTA_DIHEDRAL_VIEWS.length); i++) variants.push(transformImageDihedral(rgb, sizePx, TTA_DIHEDRAL_VIEWS[i]));
  for (let i = TTA_DIHEDRAL_VIEWS.length; i < count; i++) {
    variants.push(
      randomAugmentImage(rgb, sizePx, (options.seed ?? 0) * 1000 + i, { ...NO_AUGMENTATION, flips: true, rotate90: true, maxRotationDeg: 10, maxZoomFraction: 0.05, maxShiftFraction: 0.03 }),
    );
  }
  return variants;
}

/**
 * Shades-of-Gray colour constancy (Finlayson & Trezzi 2004), as used by top ISIC entries: the
 * illuminant of each channel is its Minkowski p-norm mean e_c = (mean I_c^p)^(1/p); each channel is
 * scaled by |e| / (√3 · e_c) so the illuminant becomes neutral gray. p = 1 is Gray World; p → ∞
 * is max-RGB. Returns a new HWC RGB buffer (values clipped to 0–255).
 *
 * @example const balanced = applyShadesOfGray(rgb); // p = 6
 */
export function applyShadesOfGray(rgb: Uint8Array, p = 6): Uint8Array {
  if (rgb.length % 3 !== 0 || rgb.length === 0) throw new AugmentationError(`image buffer has ${rgb.length} bytes; expected a non-empty multiple of 3 (RGB)`);
  if (!(Number.isFinite(p) && p >= 1 && p <= 64)) throw new AugmentationError(`Shades-of-Gray p must be in 1–64; received ${p}`);
  const sums = [0, 0, 0];
  // Normalising to 0–1 before the power keeps p = 64 inside double range.
  for (let i = 0; i < rgb.length; i += 3) {
    sums[0] += (rgb[i] / 255) ** p;
    sums[1] += (rgb[i + 1] / 255) ** p;
    sums[2] += (rgb[i + 2] / 255) ** p;
  }
  const n = rgb.length / 3;
  const e = sums.map((s) => (s / n) ** (1 / p));
  const norm = Math.hypot(e[0], e[1], e[2]);
  const gains = e.map((ec) => (ec > 0 ? norm / (Math.sqrt(3) * ec) : 1));
  const out = new Uint8Array(rgb.length);
  for (let i = 0; i < rgb.length; i += 3) {
    for (let c = 0; c < 3; c++) {
      const v = rgb[i + c] * gains[c];
      out[i + c] = v > 255 ? 255 : Math.round(v);
    }
  }
  return out;
}

/**
 * The pixel transform of TTA view `view` (index into {@link TTA_DIHEDRAL_VIEWS}), optionally after
 * Shades-of-Gray, for `extractFeatures`'s `pixelTransform` (its name keys the feature cache);
 * undefined for the image as is.
 *
 * @example extractFeatures(backbone, records, { cacheDir, pixelTransform: createDihedralViewTransform(1) }) // flipped views
 */
export function createDihedralViewTransform(view: number, options: { shadesOfGray?: boolean } = {}): PixelTransform | undefined {
  const t = TTA_DIHEDRAL_VIEWS[view];
  if (!t) throw new AugmentationError(`view: received ${view}, expected 0–${TTA_DIHEDRAL_VIEWS.length - 1}`);
  const shadesOfGray = options.shadesOfGray === true;
  if (view === 0 && !shadesOfGray) return undefined;
  return {
    name: `${shadesOfGray ? "shades-of-gray-p6+" : ""}dihedral:h${t.flipHorizontal ? 1 : 0}q${t.quarterTurns}`,
    apply: (rgb, sizePx) => {
      const balanced = shadesOfGray ? applyShadesOfGray(rgb) : rgb;
      return view === 0 ? balanced : transformImageDihedral(balanced, sizePx, t);
    },
  };
}

/**
 * Colour constancy applied to every decoded image before the backbone, in training and in
 * scoring: "none", or "shades-of-gray" ({@link applyShadesOfGray}, p = 6).
 */
export type ColourConstancy = "none" | "shades-of-gray";

/** Valid values of {@link ColourConstancy}. */
export const COLOUR_CONSTANCY_METHODS: readonly ColourConstancy[] = ["none", "shades-of-gray"];

/**
 * Checks a colour-constancy name (e.g. from a flag or MELANOMA_LAB_COLOUR_CONSTANCY).
 * Throws {@link AugmentationError} naming the value received and the valid ones.
 *
 * @example parseColourConstancy("shades-of-gray") // "shades-of-gray"
 */
export function parseColourConstancy(raw: string): ColourConstancy {
  const found = COLOUR_CONSTANCY_METHODS.find((m) => m === raw);
  if (found === undefined)
    throw new AugmentationError(
      `colour constancy: received ${JSON.stringify(raw)}, expected one of ${COLOUR_CONSTANCY_METHODS.join(", ")}`,
    );
  return found;
}

/**
 * The `extractFeatures` pixel transform of a colour-constancy method (undefined for "none"). Its
 * name is that of the recipes bench's Shades-of-Gray view 0, so both share cached features.
 *
 * @example extractFeatures(backbone, records, { cacheDir, pixelTransform: createColourConstancyTransform("shades-of-gray") })
 */
export function createColourConstancyTransform(method: ColourConstancy): PixelTransform | undefined {
  return createDihedralViewTransform(0, { shadesOfGray: method === "shades-of-gray" });
}

/**
 * An 8-bit RGB image (HWC) after a colour-constancy method: a new buffer for "shades-of-gray",
 * the same buffer for "none".
 *
 * @example const balanced = applyColourConstancy(rgb, "shades-of-gray");
 */
export function applyColourConstancy(rgb: Uint8Array, method: ColourConstancy): Uint8Array {
  return method === "shades-of-gray" ? applyShadesOfGray(rgb) : rgb;
}
