import { describe, expect, it } from "vitest";
import { ImageGridError, renderLabelledImageGrid } from "../../lib/logging/imageGrid.js";
import type { RawImage } from "../../lib/logging/summaryValues.js";

function solid(rgb: [number, number, number], widthPx = 10, heightPx = 10): RawImage {
  const pixels = new Uint8Array(widthPx * heightPx * 3);
  for (let i = 0; i < pixels.length; i += 3) pixels.set(rgb, i);
  return { pixels, widthPx, heightPx, channels: 3 };
}

function pixelAt(image: RawImage, x: number, y: number): number[] {
  const i = (y * image.widthPx + x) * image.channels;
  return Array.from(image.pixels.slice(i, i + image.channels));
}

describe("renderLabelledImageGrid", () => {
  it("lays tiles out row by row, fits images, frames by outcome and captions them", async () => {
    const grid = await renderLabelledImageGrid(
      [
        { image: solid([255, 0, 0]), label: "mel p=0.91", outcome: "correct" },
        { image: solid([0, 255, 0]), label: "nv p=0.12", outcome: "wrong" },
        { image: solid([0, 0, 255], 20, 10), label: "bcc <&>" },
      ],
      { columns: 2, cellSizePx: 32, labelHeightPx: 14 },
    );
    expect([grid.widthPx, grid.heightPx, grid.channels]).toEqual([64, 92, 3]);
    expect(grid.pixels.length).toBe(64 * 92 * 3);
    expect(pixelAt(grid, 16, 16)).toEqual([255, 0, 0]);
    expect(pixelAt(grid, 48, 16)).toEqual([0, 255, 0]);
    expect(pixelAt(grid, 16, 46 + 16)).toEqual([0, 0, 255]);
    // A 2:1 image is letterboxed: the top rows of its tile stay background.
    expect(pixelAt(grid, 16, 46 + 5)).toEqual([32, 32, 32]);
    // Frames: green-ish for correct, red-ish for wrong (anti-aliased edges, so compare channels).
    const [fr, fg] = pixelAt(grid, 1, 16);
    expect(fg).toBeGreaterThan(fr);
    const [wr, wg] = pixelAt(grid, 33, 16);
    expect(wr).toBeGreaterThan(wg);
    // The unused fourth tile is plain background; caption strips hold light text pixels.
    expect(pixelAt(grid, 48, 46 + 16)).toEqual([32, 32, 32]);
    let light = 0;
    for (let y = 32; y < 46; y++) for (let x = 0; x < 32; x++) if (pixelAt(grid, x, y)[0] > 150) light++;
    expect(light).toBeGreaterThan(10);
  });

  it("rejects an empty list and unusable layouts", async () => {
    await expect(renderLabelledImageGrid([])).rejects.toThrow(ImageGridError);
    await expect(renderLabelledImageGrid([{ image: solid([1, 2, 3]), label: "x" }], { cellSizePx: 4 })).rejects.toThrow(
      /cellSizePx 4/,
    );
  });
});
