import path from "node:path";
import { createRequire } from "node:module";
import sharp from "sharp";
import { afterEach, describe, expect, it } from "vitest";
import { findProjectRoot, NotebookDisplayUnavailableError, showPng } from "../../lib/index.js";
import type { DisplayDataContent } from "../../lib/display/showFigure.js";

const tslabJupyter = createRequire(path.join(findProjectRoot(), "package.json"))("tslab/dist/jupyter.js") as {
  lastWriteDisplayData: ((content: DisplayDataContent, update: boolean) => void) | null;
};

afterEach(() => {
  tslabJupyter.lastWriteDisplayData = null;
});

describe("showPng", () => {
  it("sends the PNG as base64 image/png that decodes back to the same pixels", async () => {
    const png = await sharp({ create: { width: 3, height: 2, channels: 3, background: { r: 200, g: 10, b: 30 } } })
      .png()
      .toBuffer();
    const sent: DisplayDataContent[] = [];
    tslabJupyter.lastWriteDisplayData = (content) => void sent.push(content);
    showPng(png, "tiny");
    expect(sent).toHaveLength(1);
    const decoded = await sharp(Buffer.from(sent[0].data["image/png"] as string, "base64"))
      .raw()
      .toBuffer({ resolveWithObject: true });
    expect(decoded.info.width).toBe(3);
    expect(Array.from(decoded.data.subarray(0, 3))).toEqual([200, 10, 30]);
    expect(sent[0].data["text/plain"]).toBe("tiny");
  });

  it("refuses bytes that are not a PNG, and says when no kernel is running", () => {
    tslabJupyter.lastWriteDisplayData = () => undefined;
    expect(() => showPng(new Uint8Array([0xff, 0xd8, 0xff, 0xe0, 0, 0, 0, 0, 0]))).toThrow(
      /do not start with the PNG signature/,
    );
    tslabJupyter.lastWriteDisplayData = null;
    expect(() => showPng(new Uint8Array(16))).toThrow(NotebookDisplayUnavailableError);
  });
});
