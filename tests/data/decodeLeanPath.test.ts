import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { decodeImageRgb } from "../../lib/data/decodeImage.js";

// decodeImageRgb runs a lean pipeline first and the full one (flatten, sRGB, 8-bit) only when
// needed; every kind of input must give the bytes of the full pipeline, computed here directly.
let tmp: string;
const reference = async (file: string, sizePx: number, fit: "cover" | "fill") =>
  new Uint8Array(
    await sharp(file)
      .rotate()
      .flatten({ background: { r: 0, g: 0, b: 0 } })
      .toColourspace("srgb")
      .resize(sizePx, sizePx, { fit, position: "centre" })
      .removeAlpha()
      .raw({ depth: "uchar" })
      .toBuffer(),
  );

beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), "mlab-lean-"));
  const noisy = Buffer.alloc(50 * 37 * 3);
  for (let i = 0; i < noisy.length; i++) noisy[i] = (i * 7919) % 251;
  const base = () => sharp(noisy, { raw: { width: 50, height: 37, channels: 3 } });
  await base().jpeg().toFile(path.join(tmp, "plain.jpg"));
  await base().jpeg().withMetadata({ orientation: 6 }).toFile(path.join(tmp, "exif6.jpg"));
  await base().jpeg().withIccProfile("p3").toFile(path.join(tmp, "p3.jpg"));
  await base().png({ palette: true }).toFile(path.join(tmp, "palette.png"));
  await base().webp().toFile(path.join(tmp, "x.webp"));
  await base().toColourspace("b-w").png().toFile(path.join(tmp, "gray.png"));
  await base().toColourspace("cmyk").jpeg().toFile(path.join(tmp, "cmyk.jpg"));
  await base().ensureAlpha(0.5).png().toFile(path.join(tmp, "alpha.png"));
  await base().toColourspace("b-w").ensureAlpha(0.3).png().toFile(path.join(tmp, "grayalpha.png"));
  await base().toColourspace("rgb16").png().toFile(path.join(tmp, "rgb16.png"));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe("decodeImageRgb lean path", () => {
  it("gives the full pipeline's bytes for plain, EXIF-rotated, ICC, palette, WebP, gray, CMYK, alpha and 16-bit inputs", async () => {
    const names = fs.readdirSync(tmp).sort();
    expect(names).toHaveLength(10);
    for (const name of names) {
      const file = path.join(tmp, name);
      for (const [policy, fit] of [["center-crop", "cover"], ["squash", "fill"]] as const) {
        const got = await decodeImageRgb(file, 24, policy);
        expect(got.length, name).toBe(24 * 24 * 3);
        expect(Buffer.from(got).equals(Buffer.from(await reference(file, 24, fit))), `${name} ${policy}`).toBe(true);
      }
    }
    // The alpha image really is flattened onto black (a lean-only decode would not darken it).
    const alpha = await decodeImageRgb(path.join(tmp, "alpha.png"), 24);
    const plain = await decodeImageRgb(path.join(tmp, "plain.jpg"), 24);
    const mean = (a: Uint8Array) => a.reduce((s, v) => s + v, 0) / a.length;
    expect(mean(alpha)).toBeLessThan(mean(plain) * 0.7);
  });
});
