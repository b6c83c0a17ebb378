import { describe, expect, it } from "vitest";
import { applyShadesOfGray } from "../../lib/data/augment.js";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import {
  buildDihedralViewRows,
  makeTriageMetadata,
  packTriageInputs,
  readTriageMetadata,
} from "../../lib/export/triageModel.js";
import type { Backbone } from "../../lib/models/types.js";
import { makeFixtureMetadata } from "../helpers/triageMetadata.js";

// A 2×1 image with a reddish cast: R 200/100, G 100/50, B 50/25.
const rgb = new Uint8Array([200, 100, 50, 100, 50, 25]);

describe("colour constancy in the exported model's scoring", () => {
  it("Shades of Gray by hand on the 2×1 image: channel p-norm means, gains |e| / (√3 e_c)", () => {
    const p = 6;
    const e = [0, 1, 2].map((c) => (((rgb[c] / 255) ** p + (rgb[3 + c] / 255) ** p) / 2) ** (1 / p));
    const norm = Math.hypot(e[0], e[1], e[2]);
    const expected = Array.from(rgb, (v, i) => Math.min(255, Math.round((v * norm) / (Math.sqrt(3) * e[i % 3]))));
    expect(Array.from(applyShadesOfGray(rgb))).toEqual(expected);
    // The cast is gone: the channels of each pixel move towards each other.
    expect(expected[0] - expected[2]).toBeLessThan(200 - 50);
  });

  it("packTriageInputs applies the metadata's colourConstancy before preprocessing, and nothing without it", () => {
    const plain = makeFixtureMetadata({ inputSizePx: 2, featureDim: 3 });
    // 2×2 input: the 2×1 image twice.
    const image = new Uint8Array([...rgb, ...rgb]);
    const withSog = { ...plain, colourConstancy: "shades-of-gray" as const };
    const [balanced] = packTriageInputs(withSog, [new Map([[2, image]])]);
    const [raw] = packTriageInputs(plain, [new Map([[2, image]])]);
    const sog = applyShadesOfGray(image);
    for (let i = 0; i < image.length; i++) {
      expect(balanced.values[i]).toBeCloseTo(sog[i] / 255, 6);
      expect(raw.values[i]).toBeCloseTo(image[i] / 255, 6);
    }
    expect(Array.from(balanced.values)).not.toEqual(Array.from(raw.values));
  });

  it("with TTA views, each view is balanced as the features were (the gains commute with flips and turns)", () => {
    const image = new Uint8Array([...rgb, 30, 60, 90, 10, 200, 40]);
    const metadata = {
      ...makeFixtureMetadata({ inputSizePx: 2, featureDim: 3 }),
      colourConstancy: "shades-of-gray" as const,
    };
    const rows = buildDihedralViewRows(new Map([[2, image]]), 8);
    const packed = packTriageInputs(metadata, rows)[0].values;
    const balancedViews = buildDihedralViewRows(new Map([[2, applyShadesOfGray(image)]]), 8);
    balancedViews.forEach((view, v) => {
      const expected = view.get(2)!;
      for (let i = 0; i < expected.length; i++) expect(packed[v * 12 + i]).toBeCloseTo(expected[i] / 255, 6);
    });
  });

  it("makeTriageMetadata records colourConstancy only when it is not none", () => {
    const backbone = {
      name: "handmade",
      weightsId: "handmade/1",
      featureLayerName: "f",
      featureDim: 3,
      inputSizePx: 2,
      preprocessing: { kind: "scale", scale: 1 / 255, offset: 0 },
    } as unknown as Backbone;
    const base = { thresholdProb: 0.5, backendName: "cpu" };
    expect(makeTriageMetadata(backbone, { ...base, colourConstancy: "shades-of-gray" }).colourConstancy).toBe(
      "shades-of-gray",
    );
    expect("colourConstancy" in makeTriageMetadata(backbone, { ...base, colourConstancy: "none" })).toBe(false);
    expect("colourConstancy" in makeTriageMetadata(backbone, base)).toBe(false);
  });

  it("readTriageMetadata refuses an unknown colourConstancy instead of scoring without it", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "ml-cc-"));
    try {
      const metadata = makeFixtureMetadata({ inputSizePx: 2, featureDim: 3, backend: "cpu" });
      fs.writeFileSync(path.join(dir, "metadata.json"), JSON.stringify({ ...metadata, colourConstancy: "grey-world" }));
      expect(() => readTriageMetadata(dir)).toThrow(
        /colourConstancy: received "grey-world"; expected one of none, shades-of-gray \(or absent\)/,
      );
      fs.writeFileSync(
        path.join(dir, "metadata.json"),
        JSON.stringify({ ...metadata, colourConstancy: "shades-of-gray" }),
      );
      expect(readTriageMetadata(dir).colourConstancy).toBe("shades-of-gray");
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
