import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  decodeImageRgb,
  decodeImageRgbFromBuffer,
  ImageBytesError,
  readImageHeader,
} from "../../lib/data/decodeImage.js";
import { requireSharedPath } from "../helpers/shared.js";
import { pngDeclaringSize } from "../helpers/pngHeader.js";

let tmp: string;
beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), "ml-decode-buffer-"));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe("decodeImageRgbFromBuffer", () => {
  it("gives the same bytes as decodeImageRgb of the same file (real JPEG; wide EXIF-rotated JPEG; PNG with alpha)", async (ctx) => {
    const images = requireSharedPath(ctx, "data/ham10000-dev/images");
    const real = path.join(images, fs.readdirSync(images).sort()[0]);
    const wide = path.join(tmp, "wide.jpg");
    await sharp(real).extend({ left: 50, extendWith: "mirror" }).jpeg().withMetadata({ orientation: 8 }).toFile(wide);
    const alpha = path.join(tmp, "alpha.png");
    await sharp({ create: { width: 40, height: 20, channels: 4, background: { r: 200, g: 10, b: 90, alpha: 0.5 } } })
      .png()
      .toFile(alpha);
    for (const file of [real, wide, alpha]) {
      for (const policy of ["center-crop", "squash"] as const) {
        const fromFile = await decodeImageRgb(file, 32, policy);
        const fromBytes = await decodeImageRgbFromBuffer(fs.readFileSync(file), 32, policy);
        expect(Buffer.from(fromBytes).equals(Buffer.from(fromFile)), `${path.basename(file)} ${policy}`).toBe(true);
      }
    }
    // The wide image really is cropped differently from squashed (so the comparison above means something).
    const wideBytes = fs.readFileSync(wide);
    expect(
      Buffer.from(await decodeImageRgbFromBuffer(wideBytes, 32, "center-crop")).equals(
        Buffer.from(await decodeImageRgbFromBuffer(wideBytes, 32, "squash")),
      ),
    ).toBe(false);
  });

  it("refuses a header declaring more pixels than the limit as too-large, naming the dimensions", async () => {
    const bomb = pngDeclaringSize(30_000, 30_000);
    expect(await readImageHeader(bomb)).toEqual({ format: "png", widthPx: 30_000, heightPx: 30_000, declaredPixels: 9e8 });
    const err = await decodeImageRgbFromBuffer(bomb, 8, "squash", { maxInputPixels: 1e6 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ImageBytesError);
    expect((err as ImageBytesError).kind).toBe("too-large");
    expect((err as ImageBytesError).message).toBe(
      "image bytes: header declares 30000×30000 = 900000000 pixels; expected at most 1000000",
    );
  });

  it("names empty, headerless and truncated bytes undecodable", async () => {
    const kinds = async (bytes: Uint8Array) =>
      decodeImageRgbFromBuffer(bytes, 8).then(
        () => "decoded",
        (e: ImageBytesError) => `${e.kind}: ${e.message}`,
      );
    expect(await kinds(new Uint8Array(0))).toBe("undecodable: image bytes: empty (0 bytes); expected a JPEG or PNG image");
    expect(await kinds(Buffer.from("hello, not an image"))).toMatch(/^undecodable: image bytes: no readable image header/);
    const jpeg = await sharp({ create: { width: 64, height: 64, channels: 3, background: { r: 128, g: 128, b: 128 }, noise: { type: "gaussian", mean: 128, sigma: 30 } } })
      .jpeg()
      .toBuffer();
    expect(await kinds(jpeg.subarray(0, jpeg.length >> 1))).toMatch(/^undecodable: image bytes: cannot decode as an image \(.*premature end/i);
    expect(await kinds(jpeg)).toBe("decoded");
  });
});
