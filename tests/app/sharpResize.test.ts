import path from "node:path";
import sharp from "sharp";
import { describe, expect, it } from "vitest";
import { resizeSquareLikeSharp, type SquareResizePolicy } from "../../app/src/sharpResize.js";
import { createRandom } from "../../lib/util/random.js";
import { requireSharedPath } from "../helpers/shared.js";

// Smooth blobs plus per-pixel noise: every filter tap matters, as in a photo.
function texturedRgb(width: number, height: number, seed: number): Uint8Array {
  const random = createRandom(seed);
  const rgb = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const wave = 60 * Math.sin(x / 7) * Math.cos(y / 11);
      for (let c = 0; c < 3; c++)
        rgb[(y * width + x) * 3 + c] = Math.max(0, Math.min(255, 128 + wave + 60 * (random() - 0.5) + c * 20));
    }
  }
  return rgb;
}

async function resizeWithSharp(
  rgb: Uint8Array,
  width: number,
  height: number,
  sizePx: number,
  policy: SquareResizePolicy,
) {
  // The same call lib/data/decodeImage makes, on raw pixels so only the resize is compared.
  const out = await sharp(rgb, { raw: { width, height, channels: 3 } })
    .resize({ width: sizePx, height: sizePx, fit: policy === "squash" ? "fill" : "cover", position: "centre" })
    .raw()
    .toBuffer();
  return new Uint8Array(out);
}

function compare(a: Uint8Array, b: Uint8Array): { maxAbs: number; meanAbs: number; differing: number } {
  let maxAbs = 0;
  let sum = 0;
  let differing = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    sum += d;
    if (d > 0) differing++;
    maxAbs = Math.max(maxAbs, d);
  }
  return { maxAbs, meanAbs: sum / a.length, differing };
}

describe("resizeSquareLikeSharp (the phone app's resize) against sharp", () => {
  // Downscales a phone or dermatoscope photo goes through: factor < 2, 2–4 (lanczos only) and ≥ 4 (box + lanczos).
  const downscales: [number, number, number, SquareResizePolicy][] = [
    [600, 450, 224, "center-crop"],
    [450, 600, 224, "center-crop"],
    [600, 450, 224, "squash"],
    [1200, 900, 224, "center-crop"],
    [1000, 1000, 224, "center-crop"],
    [2016, 1512, 299, "center-crop"],
    [640, 480, 299, "center-crop"],
  ];
  for (const [width, height, sizePx, policy] of downscales) {
    it(`${width}×${height} → ${sizePx} (${policy}): at most 1 level off, on under 0.2% of values`, async () => {
      const rgb = texturedRgb(width, height, width + height);
      const ours = resizeSquareLikeSharp({ width, height, channels: 3, data: rgb }, sizePx, policy);
      const theirs = await resizeWithSharp(rgb, width, height, sizePx, policy);
      expect(ours.length).toBe(sizePx * sizePx * 3);
      const diff = compare(ours, theirs);
      expect(diff.maxAbs).toBeLessThanOrEqual(1);
      expect(diff.differing / ours.length).toBeLessThan(0.002);
    });
  }

  it("an image already at the input size is passed through unchanged; RGBA input drops alpha", () => {
    const rgb = texturedRgb(4, 4, 1);
    const rgba = new Uint8Array(4 * 4 * 4);
    for (let i = 0; i < 16; i++) rgba.set([...rgb.subarray(i * 3, i * 3 + 3), 77], i * 4);
    expect(
      Array.from(resizeSquareLikeSharp({ width: 4, height: 4, channels: 4, data: rgba }, 4, "center-crop")),
    ).toEqual(Array.from(rgb));
  });

  it("upscaling (a 224-px HAM image to a 299-px input) is close to sharp but not exact", async (ctx) => {
    // libvips upscales with its bicubic affine transform; ours is Catmull-Rom at the same centres.
    // Measured on a real image, not hidden: mean ≈ 1.3 levels, up to ≈ 20 at sharp edges.
    const file = path.join(requireSharedPath(ctx, "data/ham10000-dev/images"), "ISIC_0024307.jpg");
    const { data, info } = await sharp(file).raw().toBuffer({ resolveWithObject: true });
    const rgb = new Uint8Array(data);
    const ours = resizeSquareLikeSharp(
      { width: info.width, height: info.height, channels: 3, data: rgb },
      299,
      "center-crop",
    );
    const diff = compare(ours, await resizeWithSharp(rgb, info.width, info.height, 299, "center-crop"));
    expect(diff.meanAbs).toBeLessThan(2);
  });

  it("refuses a pixel buffer that does not match its size, naming both", () => {
    expect(() =>
      resizeSquareLikeSharp({ width: 3, height: 3, channels: 3, data: new Uint8Array(10) }, 2, "squash"),
    ).toThrow(/received 10 bytes for 3×3×3/);
  });
});
