import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { selectBackend } from "../../lib/index.js";
import { disposeBackbone } from "../../lib/index.js";
import {
  exportTriageModel,
  loadTriageModel,
  predictMalignantProbability,
  predictMalignantProbabilityTta,
} from "../../lib/export/triageModel.js";
import { buildEnsembleTriageModel, makeEnsembleTriageMetadata } from "../../lib/export/ensembleTriageModel.js";
import { createBackboneEnsemble } from "../../lib/models/ensemble.js";
import { buildSeededHead, buildTinyMembers, writeRandomJpegs } from "../models/ensembleFixtures.js";
import { openOnnxTriageScorer, predictMalignantProbabilityWithOnnx } from "../../lib/export/onnxScoring.js";
import { decideTriageForModel } from "../../lib/triage/triagePolicy.js";
import { scoreImagesToCsv } from "../../lib/triage/scoreImages.js";
import { createTriageService } from "../../lib/serve/triageService.js";
import { findSharedPath, requireSharedPath } from "../helpers/shared.js";
import { exportSeededConvModel } from "./fixtures.js";

// The service must answer an image with the probability `npm run score` writes for the same
// file: same decode (orientation, crop, resize), same preprocessing, same runtime.
let tmp: string;
// Three HAM images as they are (224×224, no EXIF), and one made wide and EXIF-rotated from a
// fourth, so the crop and the orientation must match too.
const IMAGE_COUNT = 4;

beforeAll(async () => {
  await selectBackend();
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), "ml-serve-parity-"));
  await exportSeededConvModel(path.join(tmp, "tfjs"), { sizePx: 64 });
  await exportSeededConvModel(path.join(tmp, "onnx"), { sizePx: 64, onnx: true });
  const images = findSharedPath("data/ham10000-dev/images");
  if (images) {
    fs.mkdirSync(path.join(tmp, "images"));
    const names = fs.readdirSync(images).sort().slice(0, IMAGE_COUNT);
    for (const f of names.slice(0, IMAGE_COUNT - 1)) fs.copyFileSync(path.join(images, f), path.join(tmp, "images", f));
    await sharp(path.join(images, names[IMAGE_COUNT - 1]))
      .extend({ left: 60, right: 30, extendWith: "mirror" })
      .jpeg({ quality: 92 })
      .withMetadata({ orientation: 6 })
      .toFile(path.join(tmp, "images", "wide_rotated.jpg"));
  }
});

afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe("service probability equals npm run score's on real HAM10000 images", () => {
  for (const runtime of ["tfjs", "onnx"] as const) {
    it(`${runtime}: within 1e-6 of scoreImagesToCsv's rows and of the file scorer's unrounded values`, async (ctx) => {
      requireSharedPath(ctx, "data/ham10000-dev/images");
      const modelDir = path.join(tmp, runtime);
      const outPath = path.join(tmp, `preds-${runtime}.csv`);
      const summary = await scoreImagesToCsv({ modelDir, input: path.join(tmp, "images"), outPath, runtime });
      expect(summary.runtime.runtime).toBe(runtime);
      const rows = fs
        .readFileSync(outPath, "utf8")
        .trim()
        .split("\n")
        .slice(1)
        .map((l) => l.split(","));
      expect(rows).toHaveLength(IMAGE_COUNT);
      const files = rows.map((r) => path.join(tmp, "images", `${r[0]}.jpg`));
      const unrounded =
        runtime === "onnx"
          ? await predictMalignantProbabilityWithOnnx(modelDir, files)
          : await (async () => {
              const loaded = await loadTriageModel(modelDir);
              try {
                return await predictMalignantProbability(loaded, files);
              } finally {
                loaded.model.dispose();
              }
            })();
      const service = await createTriageService({ modelDir, runtime, logLevel: "silent" });
      try {
        expect(service.scorer.runtime.runtime).toBe(runtime);
        const probabilities: number[] = [];
        for (const [i, file] of files.entries()) {
          const res = await service.app.inject({
            method: "POST",
            url: "/v1/triage",
            headers: { "content-type": "image/jpeg" },
            payload: fs.readFileSync(file),
          });
          expect(res.statusCode, res.body).toBe(200);
          const body = res.json() as { probability: number; runtime: string; interval: [number, number] };
          expect(body.runtime).toBe(runtime);
          // The interval comes from the upload's 8 dihedral views: the same views the file scorer's TTA scores.
          const [tta] =
            runtime === "tfjs"
              ? await (async () => {
                  const loaded = await loadTriageModel(modelDir);
                  try {
                    return await predictMalignantProbabilityTta(loaded, [file]);
                  } finally {
                    loaded.model.dispose();
                  }
                })()
              : await (async () => {
                  const onnx = await openOnnxTriageScorer(modelDir);
                  try {
                    return await onnx.predictTta([file]);
                  } finally {
                    await onnx.release();
                  }
                })();
          if ("problem" in tta) throw new Error(tta.problem.reason);
          const expected = decideTriageForModel(service.scorer.metadata, {
            probability: tta.viewProbabilities[0],
            viewProbabilities: tta.viewProbabilities,
          });
          expect(expected.interval![1] - expected.interval![0]).toBeGreaterThan(0);
          expect(Math.abs(body.interval[0] - expected.interval![0])).toBeLessThanOrEqual(1e-6);
          expect(Math.abs(body.interval[1] - expected.interval![1])).toBeLessThanOrEqual(1e-6);
          // The CSV keeps 6 decimals: rounding alone may differ by 5e-7.
          expect(Math.abs(body.probability - Number(rows[i][1]))).toBeLessThanOrEqual(1e-6);
          const fileProbability = (unrounded[i] as { probability: number }).probability;
          expect(Math.abs(body.probability - fileProbability)).toBeLessThanOrEqual(1e-6);
          probabilities.push(body.probability);
        }
        // The images differ, so equal probabilities are not an artefact of a constant model.
        expect(new Set(probabilities.map((p) => p.toFixed(5))).size).toBe(IMAGE_COUNT);
      } finally {
        await service.close();
      }
    });
  }
});

describe("an ensemble (members of two input sizes) answers as the file scorer does", () => {
  it("each upload is decoded once per member size and preprocessed per member: within 1e-6", async () => {
    const dir = path.join(tmp, "ensemble");
    fs.mkdirSync(dir);
    const files = await writeRandomJpegs(dir, 3, 29);
    const members = buildTinyMembers(6);
    const head = buildSeededHead(12, 9);
    const ensemble = createBackboneEnsemble(members);
    const triage = buildEnsembleTriageModel(ensemble, head);
    const metadata = makeEnsembleTriageMetadata(ensemble, { thresholdProb: 0.5 });
    await exportTriageModel(path.join(dir, "model"), triage, metadata);
    expect(new Set(members.map((m) => m.inputSizePx)).size).toBeGreaterThan(1);
    for (const m of members) disposeBackbone(m);
    head.dispose();
    const loaded = await loadTriageModel(path.join(dir, "model"));
    const fromFiles = await predictMalignantProbability(loaded, files);
    loaded.model.dispose();
    const service = await createTriageService({
      modelDir: path.join(dir, "model"),
      runtime: "tfjs",
      logLevel: "silent",
    });
    try {
      for (const [i, file] of files.entries()) {
        const res = await service.app.inject({
          method: "POST",
          url: "/v1/triage",
          headers: { "content-type": "application/octet-stream" },
          payload: fs.readFileSync(file),
        });
        expect(res.statusCode, res.body).toBe(200);
        const expected = (fromFiles[i] as { probability: number }).probability;
        expect(Math.abs((res.json() as { probability: number }).probability - expected)).toBeLessThanOrEqual(1e-6);
      }
    } finally {
      await service.close();
    }
  });
});
