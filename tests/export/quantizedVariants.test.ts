import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import * as tf from "@tensorflow/tfjs";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { disposeBackbone, selectBackend } from "../../lib/index.js";
import type { Backbone, LesionRecord } from "../../lib/index.js";
import { generateSyntheticDataset } from "../../lib/data/synthetic.js";
import { buildEnsembleTriageModel, makeEnsembleTriageMetadata } from "../../lib/export/ensembleTriageModel.js";
import { describeTrainingData, makeModelCard, MODEL_CARD_MD_FILE } from "../../lib/export/modelCard.js";
import {
  encodeFloat16,
  exportTriageModelVariants,
  formatVariantComparisonMarkdown,
  quantizeUint8Affine,
  TriageVariantError,
  VARIANTS_DIR,
  writeQuantizedModelFiles,
  type ExportedTriageVariant,
} from "../../lib/export/quantizedVariants.js";
import {
  buildTriageModel,
  loadTriageModel,
  makeTriageMetadata,
  predictMalignantProbabilities,
  type TriageModelMetadata,
} from "../../lib/export/triageModel.js";
import { loadBackbone } from "../../lib/models/backbones.js";
import { saveLayersModelToDir } from "../../lib/models/modelFiles.js";
import { buildSeededHead, buildTinyBackbone, buildTinyMembers } from "../models/ensembleFixtures.js";
import { requireSharedPath } from "../helpers/shared.js";

/** ROC AUC by counting pairs (Mann–Whitney, ties ½): independent of lib/evaluate. */
function countPairsAuc(labels: readonly number[], probs: ArrayLike<number>): number {
  let wins = 0;
  let pairs = 0;
  labels.forEach((yi, i) => {
    if (yi !== 1) return;
    labels.forEach((yj, j) => {
      if (yj !== 0) return;
      pairs++;
      wins += probs[i] > probs[j] ? 1 : probs[i] === probs[j] ? 0.5 : 0;
    });
  });
  return wins / pairs;
}

function countRates(labels: readonly number[], probs: ArrayLike<number>, t: number) {
  let tp = 0;
  let pos = 0;
  let tn = 0;
  let neg = 0;
  labels.forEach((y, i) => {
    if (y === 1) {
      pos++;
      if (probs[i] >= t) tp++;
    } else {
      neg++;
      if (probs[i] < t) tn++;
    }
  });
  return { sensitivity: tp / pos, specificity: tn / neg };
}

/** Half-precision bits back to a number, written from the IEEE 754 definition. */
function decodeHalf(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >> 10) & 0x1f;
  const fraction = bits & 0x3ff;
  if (exponent === 0) return sign * fraction * 2 ** -24;
  if (exponent === 0x1f) return fraction ? NaN : sign * Infinity;
  return sign * (1 + fraction / 1024) * 2 ** (exponent - 15);
}

describe("float16 encoding (IEEE 754 binary16, round to nearest even)", () => {
  it("gives the textbook bit patterns, ties to even, subnormals and overflow", () => {
    expect(encodeFloat16(1)).toBe(0x3c00);
    expect(encodeFloat16(-2)).toBe(0xc000);
    expect(encodeFloat16(0)).toBe(0x0000);
    expect(encodeFloat16(-0)).toBe(0x8000);
    expect(encodeFloat16(65504)).toBe(0x7bff); // largest finite half
    expect(encodeFloat16(65520)).toBe(0x7c00); // halfway to the next → rounds to even = Infinity
    expect(encodeFloat16(1e6)).toBe(0x7c00);
    expect(encodeFloat16(-Infinity)).toBe(0xfc00);
    expect(encodeFloat16(NaN) & 0x7c00).toBe(0x7c00);
    expect(encodeFloat16(NaN) & 0x3ff).not.toBe(0);
    expect(encodeFloat16(0.1)).toBe(0x2e66);
    expect(encodeFloat16(1 / 3)).toBe(0x3555);
    expect(encodeFloat16(1 + 2 ** -11)).toBe(0x3c00); // tie between 0x3c00 and 0x3c01 → even
    expect(encodeFloat16(1 + 3 * 2 ** -11)).toBe(0x3c02); // tie between 0x3c01 and 0x3c02 → even
    expect(encodeFloat16(2 ** -14)).toBe(0x0400); // smallest normal
    expect(encodeFloat16(2 ** -24)).toBe(0x0001); // smallest subnormal
    expect(encodeFloat16(2 ** -25)).toBe(0x0000); // tie with 0 → even
    expect(encodeFloat16(3 * 2 ** -25)).toBe(0x0002); // tie between 1 and 2 ulps → even
    expect(encodeFloat16(2 ** -26)).toBe(0x0000);
  });

  it("round-trips within half an ulp over a sweep of magnitudes", () => {
    for (let e = -20; e <= 15; e++) {
      for (const m of [1, 1.1, 1.37, 1.999]) {
        const v = m * 2 ** e;
        const back = decodeHalf(encodeFloat16(v));
        const ulp = 2 ** (Math.max(Math.floor(Math.log2(v)), -14) - 10);
        expect(Math.abs(back - v)).toBeLessThanOrEqual(ulp / 2 + 1e-12 * v);
      }
    }
  });
});

describe("uint8 affine quantization (as tfjs-converter)", () => {
  it("nudges the range so 0 is a code, and q·scale + min reproduces within half a step", () => {
    // range [-1, 2]: scale 3/255, zero point round(1/scale) = 85, min = -85·3/255 = -1.
    const { codes, scale, min } = quantizeUint8Affine(Float32Array.of(-1, 0, 0.5, 2, 1));
    expect(scale).toBeCloseTo(3 / 255, 12);
    expect(min).toBeCloseTo(-1, 12);
    // (0.5 + 1)/(3/255) = 127.5 → 128; (1 + 1)/(3/255) = 170.
    expect(Array.from(codes)).toEqual([0, 85, 128, 255, 170]);
    expect(codes[1] * scale + min).toBeCloseTo(0, 12);
  });

  it("widens an all-positive range to hold 0, keeps a constant tensor exact, refuses non-finite values", () => {
    const positive = quantizeUint8Affine(Float32Array.of(0.5, 1));
    expect(positive.min === 0).toBe(true); // range [0, 1]: 0 is code 0
    expect(positive.scale).toBeCloseTo(1 / 255, 12);
    expect(Array.from(positive.codes)).toEqual([128, 255]);
    const constant = quantizeUint8Affine(Float32Array.of(0.25, 0.25));
    expect(Array.from(constant.codes).map((q) => q * constant.scale + constant.min)).toEqual([0.25, 0.25]);
    expect(() => quantizeUint8Affine(Float32Array.of(1, NaN))).toThrow(TriageVariantError);
  });
});

describe("triage model variants: float32, float16, uint8 (tiny real conv backbones, synthetic images)", () => {
  let tmp: string;
  let records: LesionRecord[];
  let labels: number[];
  let single: Backbone;
  let members: Backbone[];

  beforeAll(async () => {
    await selectBackend();
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), "ml-variants-"));
    ({ records } = await generateSyntheticDataset({
      outDir: path.join(tmp, "data"),
      imageCount: 24,
      imageSizePx: 48,
      seed: 5,
    }));
    labels = records.map((r) => (r.label === "malignant" ? 1 : 0));
    single = buildTinyBackbone("tiny_s", 32, 6, { kind: "scale", scale: 1 / 255, offset: 0 }, 31);
    members = buildTinyMembers(40);
  });
  afterAll(() => {
    disposeBackbone(single);
    for (const m of members) disposeBackbone(m);
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  /** Every variant folder loads with loadTriageModel, its weights are the float32 ones within the dtype's step, and its metrics recount. */
  async function checkVariants(variants: ExportedTriageVariant[], dir: string, metadata: TriageModelMetadata) {
    expect(variants.map((v) => v.dtype)).toEqual(["float32", "float16", "uint8"]);
    expect(variants.map((v) => v.dir)).toEqual([
      dir,
      path.join(dir, VARIANTS_DIR, "float16"),
      path.join(dir, VARIANTS_DIR, "uint8"),
    ]);
    const [f32, f16, u8] = variants;
    expect(f16.weightsBytes * 2).toBe(f32.weightsBytes);
    // uint8: one byte per weight, except BatchNorm parameters/statistics, stored float16.
    const u8Specs = JSON.parse(fs.readFileSync(path.join(u8.dir, "model.json"), "utf8")).weightsManifest[0].weights;
    const isBn = (name: string) => /\/(moving_mean|moving_variance|gamma|beta)$/.test(name);
    const size = (shape: number[]) => shape.reduce((a, b) => a * b, 1);
    expect(u8.weightsBytes).toBe(
      u8Specs.reduce(
        (n: number, s: { name: string; shape: number[] }) => n + size(s.shape) * (isBn(s.name) ? 2 : 1),
        0,
      ),
    );
    expect(u8Specs.some((s: { name: string }) => isBn(s.name))).toBe(true);
    const loaded = [];
    for (const v of variants) {
      expect(
        fs
          .readdirSync(v.dir)
          .filter((f) => f !== VARIANTS_DIR)
          .sort(),
      ).toEqual([MODEL_CARD_MD_FILE, "metadata.json", "model.json", "weights.bin"]);
      expect(v.modelBytes).toBe(
        fs.statSync(path.join(v.dir, "model.json")).size + fs.statSync(path.join(v.dir, "weights.bin")).size,
      );
      const l = await loadTriageModel(v.dir);
      loaded.push(l);
      const { variant, variants: table, ...rest } = l.metadata;
      expect(variant).toMatchObject({ dtype: v.dtype, modelBytes: v.modelBytes, weightsBytes: v.weightsBytes });
      expect(table?.map((row) => row.dtype)).toEqual(["float32", "float16", "uint8"]);
      expect(rest).toEqual(JSON.parse(JSON.stringify(metadata)));
      const manifest = JSON.parse(fs.readFileSync(path.join(v.dir, "model.json"), "utf8")).weightsManifest[0].weights;
      for (const spec of manifest) {
        if (v.dtype === "float32") expect(spec.quantization).toBeUndefined();
        else expect(spec.quantization.dtype).toBe(v.dtype === "uint8" && isBn(spec.name) ? "float16" : v.dtype);
      }
    }
    // Weights as tfjs dequantized them, against the float32 file's: float16 within half an ulp
    // (relative 2^-11), uint8 within half a quantization step of that tensor.
    const w32 = loaded[0].model.getWeights().map((w) => w.dataSync());
    const names = loaded[0].model.weights.map((w) => w.originalName);
    loaded[1].model.getWeights().forEach((w, k) => {
      const a = w.dataSync();
      w32[k].forEach((x, i) => expect(Math.abs(a[i] - x)).toBeLessThanOrEqual(Math.abs(x) * 2 ** -11 + 2 ** -25));
    });
    const specs = JSON.parse(fs.readFileSync(path.join(u8.dir, "model.json"), "utf8")).weightsManifest[0].weights;
    loaded[2].model.getWeights().forEach((w, k) => {
      const a = w.dataSync();
      const spec = specs.find((s: { name: string }) => s.name === names[k]);
      const bound =
        spec.quantization.dtype === "uint8"
          ? spec.quantization.scale / 2 + 1e-6
          : Math.max(...Array.from(w32[k], Math.abs)) * 2 ** -11;
      w32[k].forEach((x, i) => expect(Math.abs(a[i] - x)).toBeLessThanOrEqual(bound));
    });
    // Re-measured metrics recount from each variant's own probabilities.
    const paths = records.map((r) => r.imagePath);
    const probs: Float32Array[] = [];
    for (const l of loaded) probs.push(await predictMalignantProbabilities(l, paths));
    variants.forEach((v, k) => {
      const val = v.validation!;
      expect(val.images).toBe(records.length);
      // ONNX Runtime (installed here) re-scores the dequantized weights; tfjs scored `probs` (agree ~1e-6).
      expect(val.scoredOnBackend).toMatch(
        /^onnxruntime-node \S+ \(the variant.s dequantized weights converted to ONNX\)$/,
      );
      expect(val.malignant).toBe(labels.filter((y) => y === 1).length);
      expect(val.rocAuc).toBeCloseTo(countPairsAuc(labels, probs[k]), 12);
      for (const p of val.operatingPoints) {
        const counted = countRates(labels, probs[k], p.thresholdProb);
        expect(p.sensitivity).toBeCloseTo(counted.sensitivity, 12);
        expect(p.specificity).toBeCloseTo(counted.specificity, 12);
      }
      const diffs = Array.from(probs[k], (p, i) => Math.abs(p - probs[0][i]));
      // Within the two runtimes' rounding (~1e-7 here), far below the quantization error measured.
      expect(Math.abs(val.maxAbsProbabilityDifferenceFromFloat32 - Math.max(...diffs))).toBeLessThan(1e-6);
    });
    expect(f32.validation!.maxAbsProbabilityDifferenceFromFloat32).toBe(0);
    for (const l of loaded) l.model.dispose();
    return {
      maxDiff16: f16.validation!.maxAbsProbabilityDifferenceFromFloat32,
      maxDiff8: u8.validation!.maxAbsProbabilityDifferenceFromFloat32,
    };
  }

  it("single backbone: writes loadable float32/float16/uint8 folders at 1, 1/2, 1/4 the weight bytes, close outputs, re-measured metrics", async () => {
    const head = buildSeededHead(6, 32);
    const triage = buildTriageModel(single, head);
    const metadata = makeTriageMetadata(single, {
      thresholdProb: 0.5,
      validation: { description: "validation split", images: 24, metrics: { rocAuc: 0.5 } },
      card: makeModelCard({ trainingData: [describeTrainingData(path.join(tmp, "data"))] }),
    });
    const dir = path.join(tmp, "single");
    const { variants, comparisonMarkdown } = await exportTriageModelVariants(dir, triage, metadata, {
      validation: { imagePaths: records.map((r) => r.imagePath), labels },
      operatingPoints: [
        { name: "urgent", thresholdProb: 0.5 },
        { name: "reassure", thresholdProb: 0.45 },
      ],
      bootstrap: { seed: 7, iterations: 50 },
    });
    const { maxDiff16, maxDiff8 } = await checkVariants(variants, dir, metadata);
    console.log(
      `single tiny backbone: max |Δp| float16 ${maxDiff16.toExponential(2)}, uint8 ${maxDiff8.toExponential(2)}`,
    );
    // Measured: float16 2.7e-6, uint8 2.0e-5 on this model; the bounds leave more than 10×.
    expect(maxDiff16).toBeLessThan(1e-4);
    expect(maxDiff8).toBeLessThan(1e-3);
    expect(variants[0].validation!.rocAucInterval).toMatchObject({
      kind: "95% percentile bootstrap confidence interval",
      iterations: 50,
      seed: 7,
      resampled: "images",
    });
    expect(comparisonMarkdown.split("\n")).toHaveLength(5);
    expect(comparisonMarkdown).toContain("urgent: sensitivity / specificity");
    expect(comparisonMarkdown).toContain("reassure: sensitivity / specificity");
    const card = fs.readFileSync(path.join(variants[2].dir, MODEL_CARD_MD_FILE), "utf8");
    expect(card).toContain("**uint8** variant");
    expect(card).toContain("Licence: none needed: generated images");
    const u8 = variants[2].validation!;
    expect(card).toContain(
      `| uint8 | variants/uint8 | ${(variants[2].modelBytes / 1e6).toFixed(2)} | ${u8.rocAuc.toFixed(4)} (`,
    );
    expect(fs.readFileSync(path.join(dir, MODEL_CARD_MD_FILE), "utf8")).toContain(
      "# Model card: melanoma triage — tiny_s (float32)",
    );
  });

  it("ensemble: the same three variants load and score through loadTriageModel", async () => {
    const head = buildSeededHead(12, 41);
    const triage = buildEnsembleTriageModel(members, head);
    const metadata = makeEnsembleTriageMetadata(members, { thresholdProb: 0.4 });
    const dir = path.join(tmp, "ensemble");
    const { variants } = await exportTriageModelVariants(dir, triage, metadata, {
      validation: { imagePaths: records.map((r) => r.imagePath), labels },
    });
    const { maxDiff16, maxDiff8 } = await checkVariants(variants, dir, metadata);
    console.log(`tiny ensemble: max |Δp| float16 ${maxDiff16.toExponential(2)}, uint8 ${maxDiff8.toExponential(2)}`);
    // Measured: float16 4.4e-5, uint8 7.4e-5.
    expect(maxDiff16).toBeLessThan(1e-3);
    expect(maxDiff8).toBeLessThan(1e-3);
    expect(variants[1].validation!.operatingPoints.map((p) => p.name)).toEqual(["urgent"]);
    expect(variants[1].validation!.operatingPoints[0].thresholdProb).toBe(0.4);
  });

  it("re-scores on the runtime MELANOMA_LAB_RUNTIME selects: tfjs when forced, with the same metrics", async () => {
    const head = buildSeededHead(6, 32);
    const triage = buildTriageModel(single, head);
    const metadata = makeTriageMetadata(single, { thresholdProb: 0.5 });
    const options = { validation: { imagePaths: records.map((r) => r.imagePath), labels } };
    const onOnnx = await exportTriageModelVariants(path.join(tmp, "runtime-auto"), triage, metadata, options);
    vi.stubEnv("MELANOMA_LAB_RUNTIME", "tfjs");
    try {
      const onTfjs = await exportTriageModelVariants(path.join(tmp, "runtime-tfjs"), triage, metadata, options);
      onTfjs.variants.forEach((v, k) => {
        expect(v.validation!.scoredOnBackend).toBe(tf.getBackend());
        const other = onOnnx.variants[k].validation!;
        expect(other.scoredOnBackend).toMatch(/^onnxruntime-node /);
        // The two runtimes agree to ~1e-7 on these probabilities; the AUC counts the same pairs.
        expect(v.validation!.rocAuc).toBeCloseTo(other.rocAuc, 6);
      });
    } finally {
      vi.unstubAllEnvs();
    }
  });

  it("refuses repeated operating point names, thresholds outside [0, 1], labels that do not match the images, and a quantized source", async () => {
    const triage = buildTriageModel(single, buildSeededHead(6, 33));
    const metadata = makeTriageMetadata(single, { thresholdProb: 0.5 });
    const dir = path.join(tmp, "refused");
    const imagePaths = records.map((r) => r.imagePath);
    await expect(
      exportTriageModelVariants(dir, triage, metadata, {
        operatingPoints: [
          { name: "urgent", thresholdProb: 0.5 },
          { name: "urgent", thresholdProb: 0.4 },
        ],
      }),
    ).rejects.toThrow(/name "urgent" is empty or repeated/);
    await expect(
      exportTriageModelVariants(dir, triage, metadata, { operatingPoints: [{ name: "urgent", thresholdProb: 1.5 }] }),
    ).rejects.toThrow(/received 1.5; expected a probability in \[0, 1\]/);
    await expect(
      exportTriageModelVariants(dir, triage, metadata, { validation: { imagePaths, labels: labels.slice(1) } }),
    ).rejects.toThrow(/24 image paths and 23 labels/);
    // An ONNX copy (written first, as notebook 05 does) stays recorded only where model.onnx is.
    const onnx = { file: "model.onnx", opset: 13, inputNames: ["input"], outputName: "probability_malignant" };
    const { variants, metadata: written } = await exportTriageModelVariants(
      dir,
      triage,
      { ...metadata, onnx },
      {
        quantizedDtypes: ["uint8"],
      },
    );
    expect(variants.map((v) => v.dtype)).toEqual(["float32", "uint8"]);
    expect(written.onnx).toEqual(onnx);
    expect(JSON.parse(fs.readFileSync(path.join(dir, "metadata.json"), "utf8")).onnx).toEqual(onnx);
    expect(JSON.parse(fs.readFileSync(path.join(variants[1].dir, "metadata.json"), "utf8")).onnx).toBeUndefined();
    expect(variants[1].validation).toBeUndefined();
    expect(() => writeQuantizedModelFiles(variants[1].dir, path.join(tmp, "again"), "float16")).toThrow(
      /already quantized \(uint8\)/,
    );
    expect(formatVariantComparisonMarkdown(variants)).toContain("not measured");
    // A weight float16 cannot hold is refused by name rather than written as Infinity.
    const big = tf.sequential({ layers: [tf.layers.dense({ units: 1, inputShape: [2], name: "big" })] });
    big.setWeights([tf.tensor2d([[1], [7e4]]), tf.tensor1d([0])]);
    await saveLayersModelToDir(big, path.join(tmp, "big"));
    expect(() => writeQuantizedModelFiles(path.join(tmp, "big"), path.join(tmp, "big16"), "float16")).toThrow(
      /weight big\/kernel\[1\] is 70000, beyond float16's largest finite value 65504/,
    );
    expect(writeQuantizedModelFiles(path.join(tmp, "big"), path.join(tmp, "big8"), "uint8").weightsBytes).toBe(3);
    big.dispose();
  });
});

describe("triage model variants of ImageNet-size MobileNetV2 on real HAM10000 images", () => {
  it("float16 and uint8 stay close to float32 on 16 dermoscopy images (bound measured)", async (ctx) => {
    const dataDir = requireSharedPath(ctx, "data/ham10000-dev");
    await selectBackend();
    const lines = fs.readFileSync(path.join(dataDir, "labels.csv"), "utf8").trim().split("\n");
    const header = lines[0].split(",");
    const rows = lines.slice(1).map((l) => l.split(","));
    const id = header.indexOf("image_id");
    const label = header.indexOf("label");
    const pick = [
      ...rows.filter((r) => r[label] === "malignant").slice(0, 8),
      ...rows.filter((r) => r[label] === "benign").slice(0, 8),
    ];
    const imagePaths = pick.map((r) => path.join(dataDir, "images", `${r[id]}.jpg`));
    const y = pick.map((r) => (r[label] === "malignant" ? 1 : 0));
    const backbone = await loadBackbone("mobilenet_v2");
    const head = buildSeededHead(backbone.featureDim, 51);
    const triage = buildTriageModel(backbone, head);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "ml-variants-mnv2-"));
    try {
      const { variants, comparisonMarkdown } = await exportTriageModelVariants(
        dir,
        triage,
        makeTriageMetadata(backbone, { thresholdProb: 0.5 }),
        {
          validation: { imagePaths, labels: y },
        },
      );
      console.log(comparisonMarkdown);
      const [f32, f16, u8] = variants;
      expect(f16.weightsBytes / f32.weightsBytes).toBeCloseTo(0.5, 6);
      // BatchNorm stored float16 (~6% of MobileNetV2's weights) keeps uint8 just above a quarter.
      expect(u8.weightsBytes / f32.weightsBytes).toBeGreaterThan(0.25);
      expect(u8.weightsBytes / f32.weightsBytes).toBeLessThan(0.27);
      // MobileNetV2 (3.5 M weights): f32 ≈ 14 MB, uint8 ≈ 3.5 MB.
      expect(f32.weightsBytes).toBeGreaterThan(8e6);
      // Measured: float16 2.2e-3, uint8 1.6e-3 (uint8 with BatchNorm also uint8: 0.24).
      expect(f16.validation!.maxAbsProbabilityDifferenceFromFloat32).toBeLessThan(1e-2);
      expect(u8.validation!.maxAbsProbabilityDifferenceFromFloat32).toBeLessThan(1e-2);
    } finally {
      triage.dispose();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }, 240_000);
});
