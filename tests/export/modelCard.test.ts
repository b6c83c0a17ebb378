import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateSyntheticDataset } from "../../lib/data/synthetic.js";
import { bootstrapMetric } from "../../lib/evaluate/bootstrap.js";
import { computeRocAuc } from "../../lib/evaluate/metrics.js";
import {
  describeTrainingData,
  makeModelCard,
  measureTriageMetricsBlock,
  MODEL_CARD_MD_FILE,
  ModelCardError,
  renderModelCardMarkdown,
  writeModelCardMarkdown,
} from "../../lib/export/modelCard.js";
import { METADATA_JSON_FILE, type TriageModelMetadata } from "../../lib/export/triageModel.js";
import { fitTriagePolicy } from "../../lib/triage/triagePolicy.js";
import { requireSharedPath } from "../helpers/shared.js";

describe("training data licence, read from where the data says it", () => {
  let tmp: string;
  beforeAll(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), "ml-card-"));
  });
  afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

  const folder = (name: string, readme?: string) => {
    const dir = path.join(tmp, name);
    fs.mkdirSync(dir, { recursive: true });
    if (readme !== undefined) fs.writeFileSync(path.join(dir, "README.md"), readme);
    return dir;
  };

  it("takes a Licence/License line of README.md, else the caller's, else says it is not stated", () => {
    const a = describeTrainingData(
      folder("a", "# My clinic set\n\nSome words.\n- **License**: CC BY 4.0 (Clinic X)\n"),
    );
    expect(a).toEqual({
      name: "a",
      description: "My clinic set",
      licence: "CC BY 4.0 (Clinic X)",
      licenceFrom: path.join(tmp, "a", "README.md"),
    });
    expect(describeTrainingData(folder("b", "# B\nLicence: proprietary, internal use only\n")).licence).toBe(
      "proprietary, internal use only",
    );
    const given = describeTrainingData(folder("c", "# C\nLicense: MIT\n"), { licence: "CC0", images: 12 });
    expect(given).toMatchObject({ licence: "CC0", licenceFrom: "given by the caller", images: 12 });
    const none = describeTrainingData(folder("d", "# D, no licence line here\n"));
    expect(none.licence).toBe("not stated");
    expect(none.licenceFrom).toMatch(/no licence line in .*README\.md and none given/);
    expect(describeTrainingData(folder("e")).licenceFrom).toMatch(/no README in .*e and none given/);
  });

  it("recognises the generated synthetic set", async () => {
    const dir = path.join(tmp, "synthetic");
    await generateSyntheticDataset({ outDir: dir, imageCount: 4, imageSizePx: 32, seed: 1 });
    expect(describeTrainingData(dir)).toMatchObject({
      licenceFrom: "generated data",
      licence: expect.stringMatching(/^none needed/),
    });
  });

  it("reads CC BY-NC 4.0 from the HAM10000 and ISIC 2020 folders' READMEs", (ctx) => {
    const ham = describeTrainingData(requireSharedPath(ctx, "data/ham10000-dev"));
    expect(ham.licence).toMatch(/^HAM10000, CC BY-NC 4\.0/);
    const isic = describeTrainingData(requireSharedPath(ctx, "data/isic2020-ext"));
    expect(isic.licence).toMatch(/CC BY-NC 4\.0/);
    const card = makeModelCard({ trainingData: [ham, isic] });
    expect(card.limitations.filter((l) => /non-commercial use \(CC BY-NC 4\.0\)/.test(l))).toHaveLength(2);
  });
});

describe("model card block and metrics with named intervals", () => {
  it("makeModelCard: default uses, derived limitations, per-source rows counted by source", () => {
    const records = [
      { label: "malignant" as const, source: "clinicA" },
      { label: "benign" as const, source: "clinicA" },
      { label: "malignant" as const, source: "clinicA" },
      { label: "benign" as const, source: "clinicB" },
      { label: "malignant" as const, source: "clinicB" },
      { label: "benign" as const, source: "clinicB" },
    ];
    const probs = [0.9, 0.2, 0.3, 0.6, 0.8, 0.1];
    const card = makeModelCard({
      trainingData: [{ name: "syn", description: "generated", licence: "none needed", licenceFrom: "generated data" }],
      perSource: [{ description: "test split at urgent", records, probs, thresholdProb: 0.5 }],
      limitations: ["Caller's own limitation."],
    });
    expect(card.notIntendedUse.join(" ")).toMatch(/Not a diagnosis/);
    expect(card.notIntendedUse.join(" ")).toMatch(/unsupervised clinical use/);
    expect(card.limitations[0]).toMatch(/syn is generated, not real dermoscopy/);
    expect(card.limitations.at(-1)).toBe("Caller's own limitation.");
    const rows = card.perSource![0].rows;
    // clinicA: malignant 0.9 ✓, 0.3 ✗ → sensitivity 1/2; benign 0.2 → specificity 1.
    const a = rows.find((r) => r.group === "clinicA")!;
    expect([a.count, a.positives, a.sensitivity, a.specificity]).toEqual([3, 2, 0.5, 1]);
    // clinicB: malignant 0.8 ✓; benign 0.6 ✗, 0.1 ✓ → sensitivity 1, specificity 1/2.
    const b = rows.find((r) => r.group === "clinicB")!;
    expect([b.count, b.positives, b.sensitivity, b.specificity]).toEqual([3, 1, 1, 0.5]);
    expect(() => makeModelCard({ trainingData: [] })).toThrow(ModelCardError);
  });

  it("measureTriageMetricsBlock: hand-counted metrics, intervals named as percentile bootstrap CIs", () => {
    const labels = [1, 1, 1, 1, 0, 0, 0, 0, 0, 0];
    const probs = [0.9, 0.8, 0.4, 0.35, 0.7, 0.3, 0.2, 0.15, 0.1, 0.05];
    const block = measureTriageMetricsBlock("held-out test split", labels, probs, {
      thresholdProb: 0.38,
      seed: 3,
      iterations: 200,
    });
    expect([block.images, block.malignant, block.benign]).toEqual([10, 4, 6]);
    // Pairs: 0.9, 0.8 beat all 6 benign; 0.4 and 0.35 beat 5 (not 0.7) → 22/24.
    expect(block.metrics.rocAuc).toBeCloseTo(22 / 24, 12);
    expect(block.metrics.sensitivity).toBe(3 / 4); // 0.9, 0.8, 0.4 ≥ 0.38
    expect(block.metrics.specificity).toBe(5 / 6); // 0.7 ≥ 0.38
    expect(block.intervals!.rocAuc.kind).toBe("95% percentile bootstrap confidence interval");
    expect(block.intervals!.rocAuc.resampled).toBe("images");
    const independent = bootstrapMetric(labels, probs, computeRocAuc, { seed: 3, iterations: 200 });
    expect(block.intervals!.rocAuc.lower).toBeCloseTo(independent.lower, 12);
    expect(block.intervals!.rocAuc.upper).toBeCloseTo(independent.upper, 12);
    const grouped = measureTriageMetricsBlock("g", labels, probs, {
      thresholdProb: 0.38,
      seed: 3,
      iterations: 20,
      groupIds: labels.map((_, i) => `p${Math.floor(i / 2)}`),
    });
    expect(grouped.intervals!.sensitivity.resampled).toBe("patient/lesion groups");
  });
});

describe("renderModelCardMarkdown and MODEL_CARD.md", () => {
  const base: TriageModelMetadata = {
    formatVersion: 1,
    labels: ["benign", "malignant"],
    inputSizePx: 224,
    preprocessing: { kind: "scale", scale: 1 / 127.5, offset: -1 },
    resizePolicy: "center-crop",
    thresholdProb: 0.31,
    backboneName: "mobilenet_v2",
    backboneWeightsId: "nsfwjs/mobilenet_v2",
    featureLayerName: "global_average_pooling2d",
    featureDim: 1280,
    createdAt: "2026-12-03T00:00:00.000Z",
    backend: "wasm",
  };

  it("says what is not recorded rather than inventing it", () => {
    const md = renderModelCardMarkdown(base);
    expect(md).toContain("Not a medical device, not a diagnosis");
    expect(md).toMatch(/## Intended use\n\nNot recorded \(metadata has no `card`\)/);
    expect(md).toMatch(/### Validation\n\nNot recorded\./);
    expect(md).toMatch(/## Calibration\n\nNot recorded: the probabilities are the model's raw scores/);
    expect(md).toContain("- **urgent**: probability ≥ 0.3100");
    expect(md).toContain("trained on the `wasm` compute backend");
  });

  it("renders the card, metrics with their named intervals, operating points, calibration from policy, per-source and variants", () => {
    const validation = measureTriageMetricsBlock("validation split", [1, 1, 0, 0, 0], [0.9, 0.4, 0.5, 0.2, 0.1], {
      thresholdProb: 0.31,
      seed: 1,
      iterations: 50,
    });
    // A real policy fitted on 200 seeded validation scores: 40 malignant around 0.7, 160 benign around 0.2.
    const labels = Array.from({ length: 200 }, (_, i) => (i < 40 ? 1 : 0));
    const scores = labels.map((y, i) => Math.min(0.99, Math.max(0.01, (y ? 0.7 : 0.2) + (((i * 37) % 41) - 20) / 60)));
    const policy = fitTriagePolicy({ labels, probabilities: scores, targetSensitivity: 0.95, targetNpv: 0.99 });
    const metadata: TriageModelMetadata = {
      ...base,
      validation,
      test: { description: "held-out test split", images: 4, metrics: { rocAuc: 0.75 } },
      threshold: {
        method: "highest threshold with sensitivity ≥ target",
        targetSensitivity: 0.95,
        scoredOn: "validation split",
        images: 5,
        malignant: 2,
        benign: 3,
        sensitivity: 1,
        specificity: 2 / 3,
        perFold: [],
        perSource: [{ name: "clinicA", images: 5, malignant: 2, benign: 3, sensitivity: 1, specificity: 2 / 3 }],
        worstSource: null,
        warnings: ["clinicB: sensitivity 80% below target 95%"],
      },
      policy,
      card: makeModelCard({
        trainingData: [
          { name: "ham", description: "HAM subset", licence: "CC BY-NC 4.0", licenceFrom: "README.md", images: 900 },
        ],
      }),
      variant: {
        dtype: "uint8",
        weightEncoding: "uint8 affine",
        relativeDir: "variants/uint8",
        modelBytes: 2_500_000,
        weightsBytes: 2_400_000,
        weightsBytesRelativeToFloat32: 0.258,
        validation: {
          description: "validation split (re-scored)",
          images: 5,
          malignant: 2,
          benign: 3,
          rocAuc: 0.8333,
          operatingPoints: [{ name: "urgent", thresholdProb: 0.31, sensitivity: 1, specificity: 0.6667 }],
          maxAbsProbabilityDifferenceFromFloat32: 0.0016,
          meanAbsProbabilityDifferenceFromFloat32: 0.0005,
          scoredOnBackend: "wasm",
        },
      },
    };
    const md = renderModelCardMarkdown({ ...metadata, variants: [metadata.variant!] });
    expect(md).toContain("# Model card: melanoma triage — mobilenet_v2 (uint8)");
    expect(md).toContain("- **ham**: HAM subset (900 images). Licence: CC BY-NC 4.0 (from README.md).");
    expect(md).toMatch(
      /\| rocAuc \| 0\.8333 \| [0-9.]+ – [0-9.]+ \| 95% percentile bootstrap confidence interval \(50 resamples of images, seed 1\) \|/,
    );
    expect(md).toMatch(
      /### Test\n\nheld-out test split — 4 images\.[\s\S]*No intervals were recorded for these metrics/,
    );
    expect(md).toContain("there it gave sensitivity 100.0%, specificity 66.7%");
    expect(md).toContain("Warning: clinicB: sensitivity 80% below target 95%");
    const u = policy.urgent;
    expect(md).toContain(
      `- **urgent**: calibrated probability ≥ ${u.thresholdProb.toFixed(4)} (raw ≥ ${u.rawThresholdProb.toFixed(4)})`,
    );
    expect(md).toContain(
      `validation sensitivity ${(u.validationSensitivity * 100).toFixed(1)}%, specificity ${(u.validationSpecificity * 100).toFixed(1)}%`,
    );
    expect(u.validationSensitivity).toBeGreaterThanOrEqual(0.95);
    if (policy.reassure.enabled) {
      expect(md).toContain(`- **reassure**: calibrated probability < ${policy.reassure.thresholdProb.toFixed(4)}`);
    } else {
      expect(md).toContain(`- **reassure**: disabled — ${policy.reassure.reason}`);
    }
    const c = policy.calibration;
    expect(md).toContain(`- Method: ${c.method} scaling (${c.selection})`);
    expect(md).toContain(`ECE (10 equal-width bins) ${c.before.ece.toFixed(4)} → ${c.after.ece.toFixed(4)}`);
    expect(md).toContain("| clinicA | 5 | 2 | 100.0% | 66.7% |");
    expect(md).toContain("This folder holds the **uint8** variant");
    expect(md).toContain("| uint8 | variants/uint8 | 2.50 | 0.8333 | 100.0% / 66.7% at ≥ 0.3100 | 1.60e-3 |");
    expect(md).toContain(
      "Re-measured on: validation split (re-scored) — 5 images, 2 malignant, 3 benign; scored with `wasm`.",
    );
    expect(md).toMatch(/## Limitations\n\n- ham is licensed for non-commercial use/);
  });

  it("writeModelCardMarkdown writes MODEL_CARD.md beside metadata.json", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "ml-card-md-"));
    try {
      fs.writeFileSync(path.join(dir, METADATA_JSON_FILE), JSON.stringify(base));
      const file = writeModelCardMarkdown(dir);
      expect(file).toBe(path.join(dir, MODEL_CARD_MD_FILE));
      expect(fs.readFileSync(file, "utf8")).toBe(renderModelCardMarkdown(JSON.parse(JSON.stringify(base))));
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
