import { describe, expect, it } from "vitest";
import {
  applyShadesOfGray,
  AugmentationError,
  createTtaVariants,
  NO_AUGMENTATION,
  randomAugmentImage,
  transformImageDihedral,
} from "../../lib/data/augment.js";
import { createRandom } from "../../lib/util/random.js";

const S = 16;
/** An image with no symmetry: every pixel distinct-ish, channels differ. */
function asymmetricImage(sizePx = S): Uint8Array {
  const rgb = new Uint8Array(sizePx * sizePx * 3);
  for (let y = 0; y < sizePx; y++) {
    for (let x = 0; x < sizePx; x++) {
      const o = (y * sizePx + x) * 3;
      rgb[o] = (x * 13 + y * 3) % 256;
      rgb[o + 1] = (y * 11 + x * x) % 256;
      rgb[o + 2] = (x * y * 7 + 5) % 256;
    }
  }
  return rgb;
}

function handFlip(rgb: Uint8Array, horizontal: boolean, vertical: boolean): Uint8Array {
  const out = new Uint8Array(rgb.length);
  for (let y = 0; y < S; y++) {
    for (let x = 0; x < S; x++) {
      const sx = horizontal ? S - 1 - x : x;
      const sy = vertical ? S - 1 - y : y;
      for (let c = 0; c < 3; c++) out[(y * S + x) * 3 + c] = rgb[(sy * S + sx) * 3 + c];
    }
  }
  return out;
}

const channelMeans = (rgb: Uint8Array) => [0, 1, 2].map((c) => {
  let s = 0;
  for (let i = c; i < rgb.length; i += 3) s += rgb[i];
  return s / (rgb.length / 3);
});

describe("transformImageDihedral", () => {
  it("rotates a 3×3 image clockwise exactly", () => {
    const grid = new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8, 9].flatMap((v) => [v, v * 2, v * 3]));
    const turned = transformImageDihedral(grid, 3, { quarterTurns: 1 });
    expect([...turned].filter((_, i) => i % 3 === 0)).toEqual([7, 4, 1, 8, 5, 2, 9, 6, 3]);
    expect([...turned].filter((_, i) => i % 3 === 2)).toEqual([21, 12, 3, 24, 15, 6, 27, 18, 9]);
    expect([...transformImageDihedral(grid, 3, { quarterTurns: 4 })]).toEqual([...grid]);
    expect(() => transformImageDihedral(grid, 4, {})).toThrow(/image buffer has 27 bytes; expected sizePx² × 3 = 4² × 3 = 48/);
  });
});

describe("randomAugmentImage", () => {
  const image = asymmetricImage();

  it("is deterministic by seed, differs across seeds, and leaves the input alone", () => {
    const copy = image.slice();
    const a = randomAugmentImage(image, S, 5);
    expect(randomAugmentImage(image, S, 5)).toEqual(a);
    expect(randomAugmentImage(image, S, 6)).not.toEqual(a);
    expect(image).toEqual(copy);
  });

  it("flips only: the output is exactly one of the four hand-made flips, and all four occur", () => {
    const candidates = [
      [false, false],
      [true, false],
      [false, true],
      [true, true],
    ].map(([h, v]) => handFlip(image, h, v));
    const seen = new Set<number>();
    for (let seed = 0; seed < 40; seed++) {
      const out = randomAugmentImage(image, S, seed, { ...NO_AUGMENTATION, flips: true });
      const match = candidates.findIndex((c) => c.every((v, i) => v === out[i]));
      expect(match).toBeGreaterThanOrEqual(0);
      seen.add(match);
    }
    expect(seen.size).toBe(4);
  });

  it("with everything off returns the image unchanged", () => {
    expect(randomAugmentImage(image, S, 9, NO_AUGMENTATION)).toEqual(image);
  });

  it("small rotation/zoom/shift keeps a centred disk roughly in place", () => {
    const size = 64;
    const disk = new Uint8Array(size * size * 3);
    for (let y = 0; y < size; y++) for (let x = 0; x < size; x++) if ((x - 31.5) ** 2 + (y - 31.5) ** 2 < 15 ** 2) disk.fill(200, (y * size + x) * 3, (y * size + x) * 3 + 3);
    const out = randomAugmentImage(disk, size, 3, { ...NO_AUGMENTATION, maxRotationDeg: 15, maxZoomFraction: 0.1, maxShiftFraction: 0.05 });
    expect(out).not.toEqual(disk);
    const lit = (buf: Uint8Array) => buf.reduce((n, v, i) => n + (i % 3 === 0 && v > 100 ? 1 : 0), 0);
    const ratio = lit(out) / lit(disk);
    expect(ratio).toBeGreaterThan(0.75);
    expect(ratio).toBeLessThan(1.3);
    expect(out[(32 * size + 32) * 3]).toBe(200); // the centre stays inside the disk
  });

  it("colour jitter: brightness shifts the mean within its range; saturation/hue keep gray gray", () => {
    const gray = new Uint8Array(S * S * 3).fill(120);
    for (let seed = 0; seed < 10; seed++) {
      const b = channelMeans(randomAugmentImage(gray, S, seed, { ...NO_AUGMENTATION, brightness: 0.1 }));
      expect(Math.abs(b[0] - 120)).toBeLessThanOrEqual(25.5 + 0.5);
      expect(b[0]).toBeCloseTo(b[1], 0);
      const sh = randomAugmentImage(gray, S, seed, { ...NO_AUGMENTATION, saturation: 0.5, hueDeg: 30 });
      expect(Math.max(...sh) - Math.min(...sh)).toBeLessThanOrEqual(1);
    }
    expect(() => randomAugmentImage(gray, S, 1, { brightness: 2 })).toThrow(AugmentationError);
  });

  it("hue jitter turns a colour but keeps its luma; contrast spreads values about the mean", () => {
    const brown = new Uint8Array(S * S * 3);
    for (let i = 0; i < brown.length; i += 3) brown.set([150, 90, 60], i);
    const luma = (r: number, g: number, b: number) => 0.299 * r + 0.587 * g + 0.114 * b;
    const shifted = randomAugmentImage(brown, S, 2, { ...NO_AUGMENTATION, hueDeg: 40 });
    expect([...shifted.subarray(0, 3)]).not.toEqual([150, 90, 60]);
    expect(Math.abs(luma(shifted[0], shifted[1], shifted[2]) - luma(150, 90, 60))).toBeLessThan(1.5);
    const ramp = new Uint8Array(S * S * 3).map((_, i) => 60 + (Math.floor(i / 3) % 100));
    const spread = (buf: Uint8Array) => Math.max(...buf) - Math.min(...buf);
    const contrasts = Array.from({ length: 8 }, (_, seed) => spread(randomAugmentImage(ramp, S, seed, { ...NO_AUGMENTATION, contrast: 0.3 })) / spread(ramp));
    expect(Math.min(...contrasts)).toBeGreaterThanOrEqual(0.69);
    expect(Math.max(...contrasts)).toBeLessThanOrEqual(1.31);
    expect(Math.max(...contrasts) - Math.min(...contrasts)).toBeGreaterThan(0.1);
  });
});

describe("createTtaVariants", () => {
  it("gives the 8 exact dihedral views, identity first, all distinct permutations of the pixels", () => {
    const image = asymmetricImage();
    const variants = createTtaVariants(image, S);
    expect(variants).toHaveLength(8);
    expect(variants[0]).toEqual(image);
    expect(variants[1]).toEqual(handFlip(image, true, false));
    const keys = new Set(variants.map((v) => Buffer.from(v).toString("base64")));
    expect(keys.size).toBe(8);
    const sorted = (v: Uint8Array) => [...v].sort((a, b) => a - b).join(",");
    for (const v of variants) expect(sorted(v)).toBe(sorted(image));
    const more = createTtaVariants(image, S, { variantCount: 10, seed: 1 });
    expect(more).toHaveLength(10);
    expect(createTtaVariants(image, S, { variantCount: 10, seed: 1 })[9]).toEqual(more[9]);
  });
});

describe("applyShadesOfGray", () => {
  it("makes a tinted gray texture's channel means equal (p = 6)", () => {
    const rand = createRandom(4);
    const tint = [1.25, 1.0, 0.65];
    const rgb = new Uint8Array(32 * 32 * 3);
    for (let i = 0; i < rgb.length; i += 3) {
      const v = 60 + 120 * rand();
      for (let c = 0; c < 3; c++) rgb[i + c] = Math.round(v * tint[c]);
    }
    const before = channelMeans(rgb);
    expect(before[0] - before[2]).toBeGreaterThan(50);
    const after = channelMeans(applyShadesOfGray(rgb, 6));
    expect(Math.max(...after) - Math.min(...after)).toBeLessThan(1.5);
  });

  it("p = 1 is Gray World: equal channel means for any colourful image; rejects bad p", () => {
    const rand = createRandom(8);
    const rgb = new Uint8Array(24 * 24 * 3);
    for (let i = 0; i < rgb.length; i += 3) {
      rgb[i] = 40 + 100 * rand();
      rgb[i + 1] = 20 + 60 * rand();
      rgb[i + 2] = 10 + 40 * rand();
    }
    const after = channelMeans(applyShadesOfGray(rgb, 1));
    expect(Math.max(...after) - Math.min(...after)).toBeLessThan(1);
    expect(() => applyShadesOfGray(rgb, 0)).toThrow(/p must be in 1–64; received 0/);
  });
});
