import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import sharp from "sharp";
import * as tf from "@tensorflow/tfjs";
import { beforeAll, describe, expect, it } from "vitest";
import { selectBackend } from "../../lib/index.js";
import type { LesionRecord } from "../../lib/data/types.js";
import { buildErrorGalleryHtml } from "../../lib/evaluate/charts.js";
import {
  alignRecordsByImageId,
  buildErrorGallery,
  buildErrorGalleryItems,
  GalleryInputError,
  renderGradCamExamplesPng,
  selectOutcomeIndices,
} from "../../lib/evaluate/gallery.js";
import { buildHtmlReport } from "../../lib/evaluate/report.js";
import type { Backbone } from "../../lib/models/types.js";

const SIZE = 16;

/** Feature map = the input channels (1×1 identity conv), pooled by global average. */
function buildIdentityBackbone(): Backbone {
  const input = tf.input({ shape: [SIZE, SIZE, 3] });
  const map = tf.layers
    .conv2d({ filters: 3, kernelSize: 1, useBias: false, name: "features", weights: [tf.eye(3).reshape([1, 1, 3, 3])] })
    .apply(input) as tf.SymbolicTensor;
  const pooled = tf.layers.globalAveragePooling2d({}).apply(map) as tf.SymbolicTensor;
  return {
    name: "identity",
    inputSizePx: SIZE,
    featureLayerName: "features",
    featureDim: 3,
    preprocessing: { kind: "scale", scale: 1 / 255, offset: 0 },
    model: tf.model({ inputs: input, outputs: pooled }),
    weightsId: "test",
  };
}

/** Writes a PNG that is grey with a bright red square in the top-left quarter. */
async function writeImage(file: string, greyLevel: number): Promise<void> {
  const pixels = new Uint8Array(SIZE * SIZE * 3).fill(greyLevel);
  for (let y = 0; y < SIZE / 2; y++) for (let x = 0; x < SIZE / 2; x++) pixels.set([250, 10, 10], 3 * (y * SIZE + x));
  await sharp(Buffer.from(pixels), { raw: { width: SIZE, height: SIZE, channels: 3 } })
    .png()
    .toFile(file);
}

async function decodeDataUrl(url: string): Promise<sharp.Metadata> {
  expect(url).toMatch(/^data:image\/jpeg;base64,/);
  return sharp(Buffer.from(url.slice(url.indexOf(",") + 1), "base64")).metadata();
}

describe("selectOutcomeIndices", () => {
  const labels = [1, 1, 1, 0, 0, 0, 1, 0];
  const probs = [0.1, 0.05, 0.9, 0.8, 0.2, 0.95, 0.6, 0.5];
  it("picks each outcome, most striking first (hand-checked at threshold 0.5)", () => {
    expect(selectOutcomeIndices(labels, probs, 0.5, "false negative", 5)).toEqual([1, 0]);
    expect(selectOutcomeIndices(labels, probs, 0.5, "false positive", 5)).toEqual([5, 3, 7]); // 0.5 ≥ threshold is called malignant
    expect(selectOutcomeIndices(labels, probs, 0.5, "true positive", 1)).toEqual([2]);
    expect(selectOutcomeIndices(labels, probs, 0.5, "true negative", 5)).toEqual([4]);
    expect(selectOutcomeIndices(labels, probs, 0.5, "false positive", 0)).toEqual([]);
  });
  it("rejects bad options", () => {
    expect(() => selectOutcomeIndices(labels, probs, NaN, "false negative", 1)).toThrow(/thresholdProb: received NaN/);
    expect(() => selectOutcomeIndices(labels, probs, 0.5, "false negative", -1)).toThrow(/count: received -1/);
    expect(() => selectOutcomeIndices(labels, probs, 0.5, "fn" as never, 1)).toThrow(
      /kind: received "fn"; expected one of "false negative"/,
    );
  });
});

describe("error gallery on tiny generated images", () => {
  let dir: string;
  let records: LesionRecord[];
  // ids:           a     b     c     d     e     f
  const labels = [1, 1, 0, 0, 1, 0];
  const probs = [0.02, 0.2, 0.9, 0.4, 0.7, 0.1];
  beforeAll(async () => {
    await selectBackend();
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "ml-gallery-"));
    records = [];
    for (const [i, id] of ["a", "b", "c", "d", "e", "f"].entries()) {
      const file = path.join(dir, `${id}.png`);
      await writeImage(file, 40 * i);
      records.push({
        imageId: id,
        imagePath: file,
        label: labels[i] === 1 ? "malignant" : "benign",
        diagnosis: labels[i] === 1 ? "mel" : "nv",
        source: i % 2 ? "clinicB" : "clinicA",
      });
    }
  });

  it("lines records up with feature-table ids and names a missing id", () => {
    expect(alignRecordsByImageId(records, ["c", "a"]).map((r) => r.imageId)).toEqual(["c", "a"]);
    expect(() => alignRecordsByImageId(records, ["a", "zz"])).toThrow(/imageIds\[1\] is "zz", which no record has/);
  });

  it("returns the top false negatives and false positives with JPEG thumbnails, ids and captions", async () => {
    const items = await buildErrorGalleryItems(records, probs, labels, 0.3, { topCount: 2, thumbnailSizePx: 24 });
    expect(items.map((it) => [it.kind, it.imageId, it.prob])).toEqual([
      ["false negative", "a", 0.02],
      ["false negative", "b", 0.2],
      ["false positive", "c", 0.9],
      ["false positive", "d", 0.4],
    ]);
    expect(items[0].caption).toBe("a · mel · clinicA");
    expect(items[0].label).toBe(1);
    expect(items[0].imageDataUrl).toBe(items[0].thumbnailDataUrl);
    expect(items[0].overlayDataUrl).toBeUndefined();
    const meta = await decodeDataUrl(items[0].thumbnailDataUrl);
    expect([meta.format, meta.width, meta.height]).toEqual(["jpeg", 24, 24]);
    // The thumbnail shows the image: top-left red, bottom-right grey 0 (image a is black outside the square).
    const { data } = await sharp(Buffer.from(items[0].thumbnailDataUrl.split(",")[1], "base64"))
      .raw()
      .toBuffer({ resolveWithObject: true });
    expect(data[0]).toBeGreaterThan(200);
    expect(data[data.length - 3]).toBeLessThan(30);
    const html = buildErrorGalleryHtml(items, { thresholdProb: 0.3, topCount: 2 });
    expect(html).toContain("False negatives at threshold 0.3: melanomas with the lowest probability (2)");
    expect(html).toContain("b · mel · clinicB");
    expect(html).not.toContain("e · mel"); // a true positive is not an error
  });

  it("shows Grad-CAM overlays when a backbone and head are given, with the head's probability", async () => {
    const backbone = buildIdentityBackbone();
    const input = tf.input({ shape: [3] });
    // Evidence for malignant = red: the overlay's top-left quarter (where red is) turns hot.
    const head = tf.model({
      inputs: input,
      outputs: tf.layers
        .dense({ units: 1, activation: "sigmoid", weights: [tf.tensor2d([3, 0, 0], [3, 1]), tf.tensor1d([-2])] })
        .apply(input) as tf.SymbolicTensor,
    });
    const before = tf.memory().numTensors;
    const gallery = await buildErrorGallery(records, probs, labels, 0.3, {
      topCount: 1,
      thumbnailSizePx: SIZE,
      gradCam: { backbone, head, alpha: 1 },
    });
    expect(tf.memory().numTensors).toBe(before);
    expect(gallery.items.map((it) => it.imageId)).toEqual(["a", "c"]);
    for (const item of gallery.items) {
      expect(item.imageDataUrl).toBe(item.overlayDataUrl);
      expect(item.overlayDataUrl).not.toBe(item.thumbnailDataUrl);
      await decodeDataUrl(item.overlayDataUrl!);
    }
    // Image a: red 250 on a quarter, black elsewhere → mean red 250/255/4; p = sigmoid(3·that − 2).
    expect(gallery.items[0].gradCamProbability).toBeCloseTo(1 / (1 + Math.exp(-(3 * (250 / 255 / 4) - 2))), 5);
    const { data } = await sharp(Buffer.from(gallery.items[0].overlayDataUrl!.split(",")[1], "base64"))
      .raw()
      .toBuffer({ resolveWithObject: true });
    const at = (x: number, y: number) => Array.from(data.subarray(3 * (y * SIZE + x), 3 * (y * SIZE + x) + 3));
    const [r0, , b0] = at(1, 1); // inside the red square: jet "hot" (red > blue)
    const [r1, , b1] = at(SIZE - 2, SIZE - 2); // outside: jet "cold" (blue > red)
    expect(r0).toBeGreaterThan(b0 + 60);
    expect(b1).toBeGreaterThan(r1 + 60);
    expect(gallery.html).toContain('<img src="data:image/jpeg;base64,');
    expect(gallery.section.heading).toMatch(/Grad-CAM/);
    expect(buildHtmlReport({ title: "t", sections: [gallery.section] })).toContain("melanoma-lab-gallery");

    const examples = await renderGradCamExamplesPng({ backbone, head }, records, labels, probs, 0.3);
    expect(examples.examples.map((e) => [e.kind, e.imageId])).toEqual([
      ["false negative", "a"],
      ["false negative", "b"],
      ["true positive", "e"],
    ]);
    const meta = await sharp(examples.png).metadata();
    expect([meta.format, meta.width, meta.height]).toEqual(["png", 3 * SIZE, SIZE + 18]);
    expect(examples.section.html).toContain(
      `<img src="data:image/png;base64,${Buffer.from(examples.png).toString("base64")}" alt="Grad-CAM overlays: FN a, FN b, TP e"`,
    );
    expect(examples.section.html).toContain("Grad-CAM on features, 16×16 cells upsampled");
    await expect(
      renderGradCamExamplesPng({ backbone, head }, records, labels, probs, 0.3, { counts: { "true negative": 0 } }),
    ).rejects.toThrow(GalleryInputError);
    head.dispose();
  });

  it("rejects records that do not line up with the probabilities", async () => {
    await expect(buildErrorGalleryItems(records.slice(1), probs, labels, 0.3)).rejects.toThrow(
      /records \(5\), labels \(6\) and probs \(6\) differ in length/,
    );
  });
});
