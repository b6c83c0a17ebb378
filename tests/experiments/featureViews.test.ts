import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import sharp from "sharp";
import * as tf from "@tensorflow/tfjs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  applyShadesOfGray,
  concatenateFeatureViews,
  decodeImageRgb,
  disposeBackbone,
  extractFeatures,
  extractFeatureViews,
  FeatureViewError,
  selectBackend,
  TTA_DIHEDRAL_VIEWS,
  transformImageDihedral,
} from "../../lib/index.js";
import type { Backbone, FeatureViews, LesionRecord } from "../../lib/index.js";
import { createRandom } from "../../lib/util/random.js";

const SIZE_PX = 8;

/** A backbone whose "features" are the RGB of the top-left pixel: every view is checkable by hand. */
function buildTopLeftPixelBackbone(): Backbone {
  const input = tf.input({ shape: [SIZE_PX, SIZE_PX, 3] });
  const cropped = tf.layers
    .cropping2D({
      cropping: [
        [0, SIZE_PX - 1],
        [0, SIZE_PX - 1],
      ],
    })
    .apply(input) as tf.SymbolicTensor;
  const flat = tf.layers.flatten().apply(cropped) as tf.SymbolicTensor;
  return {
    name: "top_left_pixel",
    inputSizePx: SIZE_PX,
    featureLayerName: "flatten",
    featureDim: 3,
    preprocessing: { kind: "scale", scale: 1, offset: 0 },
    model: tf.model({ inputs: input, outputs: flat }),
    weightsId: "test/top-left-pixel",
  };
}

describe("extractFeatureViews and concatenateFeatureViews", () => {
  let dir: string;
  let records: LesionRecord[];
  let backbone: Backbone;

  beforeAll(async () => {
    await selectBackend();
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "feature-views-"));
    const rand = createRandom(5);
    records = [];
    for (let i = 0; i < 5; i++) {
      const file = path.join(dir, `img_${i}.png`);
      const rgb = Buffer.from(Array.from({ length: SIZE_PX * SIZE_PX * 3 }, () => Math.floor(rand() * 256)));
      await sharp(rgb, { raw: { width: SIZE_PX, height: SIZE_PX, channels: 3 } })
        .png()
        .toFile(file);
      records.push({ imageId: `img_${i}`, imagePath: file, label: i % 2 ? "malignant" : "benign" });
    }
    // An unreadable image in the middle: reported, the rest go on with rows still aligned.
    fs.writeFileSync(path.join(dir, "broken.png"), "not a png");
    records.splice(2, 0, { imageId: "broken", imagePath: path.join(dir, "broken.png"), label: "benign" });
    backbone = buildTopLeftPixelBackbone();
  });
  afterAll(() => {
    disposeBackbone(backbone);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it("gives view k = the features of the image under TTA_DIHEDRAL_VIEWS[k], rows aligned, broken file reported", async () => {
    const cacheDir = path.join(dir, "cache");
    const fv = await extractFeatureViews(backbone, records, { ttaViews: 4, cacheDir });
    expect(fv.records.map((r) => r.imageId)).toEqual(["img_0", "img_1", "img_2", "img_3", "img_4"]);
    expect(fv.problems.map((p) => p.file)).toEqual([path.join(dir, "broken.png")]);
    expect(fv.views.length).toBe(4);
    for (const [row, record] of fv.records.entries()) {
      const rgb = await decodeImageRgb(record.imagePath, SIZE_PX);
      for (let v = 0; v < 4; v++) {
        const view = v === 0 ? rgb : transformImageDihedral(rgb, SIZE_PX, TTA_DIHEDRAL_VIEWS[v]);
        expect(Array.from(fv.views[v].subarray(row * 3, row * 3 + 3))).toEqual([view[0], view[1], view[2]]);
      }
    }
    expect(fv.computed).toBe(5 * 4);
    const again = await extractFeatureViews(backbone, records, { ttaViews: 4, cacheDir });
    expect(again.cacheHits).toBe(5 * 4);
    expect(again.views).toEqual(fv.views);
  });

  it("keys the cache by transform name: a cached transformed image is neither decoded nor transformed again", async () => {
    const cacheDir = path.join(dir, "cache-transform");
    const readable = records.filter((r) => r.imageId !== "broken");
    let applied = 0;
    const invert = { name: "test:invert", apply: (rgb: Uint8Array) => (applied++, rgb.map((v) => 255 - v)) };
    const first = await extractFeatures(backbone, readable, { cacheDir, pixelTransform: invert });
    expect([first.computed, applied]).toEqual([5, 5]);
    const rgb = await decodeImageRgb(readable[0].imagePath, SIZE_PX);
    expect(Array.from(first.features.subarray(0, 3))).toEqual([255 - rgb[0], 255 - rgb[1], 255 - rgb[2]]);
    const second = await extractFeatures(backbone, readable, { cacheDir, pixelTransform: invert });
    expect([second.cacheHits, second.computed, applied]).toEqual([5, 0, 5]);
    expect(second.features).toEqual(first.features);
    // Another name is another cache entry; no transform is the plain features.
    const plain = await extractFeatures(backbone, readable, { cacheDir });
    expect([plain.cacheHits, plain.computed]).toEqual([0, 5]);
    expect(Array.from(plain.features.subarray(0, 3))).toEqual([rgb[0], rgb[1], rgb[2]]);
  });

  it("applies Shades-of-Gray before the backbone when asked", async () => {
    const fv = await extractFeatureViews(
      backbone,
      records.filter((r) => r.imageId !== "broken"),
      { shadesOfGray: true },
    );
    const rgb = applyShadesOfGray(await decodeImageRgb(records[0].imagePath, SIZE_PX));
    expect(Array.from(fv.views[0].subarray(0, 3))).toEqual([rgb[0], rgb[1], rgb[2]]);
  });

  it("concatenates backbones side by side for the records all parts have, by imageId", () => {
    const part = (ids: string[], dim: number, base: number): FeatureViews => ({
      records: ids.map((id) => ({ imageId: id, imagePath: `/x/${id}.jpg`, label: "benign" })),
      featureDim: dim,
      views: [Float32Array.from({ length: ids.length * dim }, (_, i) => base + i)],
      problems: [],
      cacheHits: 1,
      computed: 2,
      elapsedMs: 3,
    });
    const a = part(["a", "b", "c"], 2, 0); // rows a: 0 1, b: 2 3, c: 4 5
    const b = part(["c", "a"], 1, 100); // rows c: 100, a: 101
    const joined = concatenateFeatureViews([a, b]);
    expect(joined.records.map((r) => r.imageId)).toEqual(["a", "c"]);
    expect(joined.featureDim).toBe(3);
    expect(Array.from(joined.views[0])).toEqual([0, 1, 101, 4, 5, 100]);
    expect(joined.cacheHits).toBe(2);
    const twoViews = { ...a, views: [a.views[0], a.views[0]] };
    expect(() => concatenateFeatureViews([a, twoViews])).toThrow(FeatureViewError);
    expect(() => concatenateFeatureViews([a, twoViews])).toThrow(/parts\[1\]: received 2 views, expected 1/);
  });
});
