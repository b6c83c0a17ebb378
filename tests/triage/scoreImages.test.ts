import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import * as tf from "@tensorflow/tfjs";
import sharp from "sharp";
import { spawnSync } from "node:child_process";
import { beforeAll, describe, expect, it } from "vitest";
import {
  exportTriageModel,
  exportTriageModelOnnx,
  listImagesToScore,
  loadTriageModel,
  describeScoreSummary,
  predictMalignantProbabilityTta,
  ScoreInputError,
  ScoreOutputMismatchError,
  scoreImagesToCsv,
  scoreMetaPath,
  selectBackend,
} from "../../lib/index.js";
import type { TriageModelMetadata } from "../../lib/index.js";
import { decideTriageForModel, fitTriagePolicy } from "../../lib/triage/triagePolicy.js";
import { killProcessGroup, spawnTsxScript, waitWhileRunning } from "../helpers/experimentChild.js";
import { makeFixtureMetadata } from "../helpers/triageMetadata.js";

// A model whose output is hand-computable: sigmoid(mean red channel / 255) (× redWeight).
async function exportRedModel(
  dir: string,
  options: { onnx?: boolean; redWeight?: number; policy?: TriageModelMetadata["policy"] } = {},
): Promise<void> {
  const input = tf.input({ shape: [8, 8, 3] });
  const pooled = tf.layers.globalAveragePooling2d({}).apply(input) as tf.SymbolicTensor;
  const dense = tf.layers.dense({ units: 1, activation: "sigmoid" });
  const model = tf.model({ inputs: input, outputs: dense.apply(pooled) as tf.SymbolicTensor });
  dense.setWeights([tf.tensor2d([[options.redWeight ?? 1], [0], [0]]), tf.tensor1d([0])]);
  const metadata = makeFixtureMetadata({
    inputSizePx: 8,
    thresholdProb: 0.7,
    validationMetrics: {},
    featureDim: 3,
    ...(options.policy ? { policy: options.policy } : {}),
  });
  await exportTriageModel(dir, model, metadata);
  if (options.onnx) await exportTriageModelOnnx(dir, model, metadata);
  model.dispose();
}

async function solidPng(file: string, r: number, g: number, b: number): Promise<void> {
  await sharp({ create: { width: 12, height: 12, channels: 3, background: { r, g, b } } })
    .png()
    .toFile(file);
}

/** Data rows of a scores CSV by image id (throws on an id seen twice), and its raw text. */
function readRowsById(file: string): { rows: Map<string, string>; text: string } {
  const text = fs.readFileSync(file, "utf8");
  const rows = new Map<string, string>();
  for (const line of text.split("\n").slice(1)) {
    if (line === "") continue;
    const id = line.split(",")[0];
    if (rows.has(id)) throw new Error(`${file}: image id ${id} has two rows`);
    rows.set(id, line);
  }
  return { rows, text };
}

describe("scoreImagesToCsv", () => {
  let tmp: string;
  beforeAll(async () => {
    await selectBackend();
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), "ml-score-"));
    await exportRedModel(path.join(tmp, "model"));
    await exportRedModel(path.join(tmp, "model-onnx"), { onnx: true });
    await exportRedModel(path.join(tmp, "model-other"), { redWeight: 2 });
    fs.mkdirSync(path.join(tmp, "plain"));
    await solidPng(path.join(tmp, "plain", "a_red.png"), 255, 0, 0);
    await solidPng(path.join(tmp, "plain", "b_blue.png"), 0, 0, 255);
    fs.writeFileSync(path.join(tmp, "plain", "c_broken.jpg"), "not an image at all");
    fs.writeFileSync(path.join(tmp, "plain", "notes.txt"), "ignored");
    fs.mkdirSync(path.join(tmp, "dataset", "images"), { recursive: true });
    await solidPng(path.join(tmp, "dataset", "images", "ISIC_1.png"), 128, 0, 0);
    fs.writeFileSync(path.join(tmp, "dataset", "labels.csv"), "image_id,label\nISIC_1,malignant\n");
  });

  it("writes image_id,probability,triage,error per image; a broken image gets an error row naming the file", async () => {
    const out = path.join(tmp, "preds.csv");
    const summary = await scoreImagesToCsv({
      modelDir: path.join(tmp, "model"),
      input: path.join(tmp, "plain"),
      outPath: out,
      batchSize: 2,
    });
    const lines = fs.readFileSync(out, "utf8").trim().split("\n");
    expect(lines[0]).toBe("image_id,probability,triage,error");
    const rows = lines.slice(1).map((l) => l.split(","));
    expect(rows.map((r) => r[0])).toEqual(["a_red", "b_blue", "c_broken"]);
    expect(Number(rows[0][1])).toBeCloseTo(1 / (1 + Math.exp(-1)), 5);
    expect(rows[0][2]).toBe("urgent");
    expect(rows[0][3]).toBe("");
    expect(Number(rows[1][1])).toBeCloseTo(0.5, 5);
    expect(rows[1][2]).toBe("routine");
    expect(rows[2].slice(0, 3)).toEqual(["c_broken", "", ""]);
    expect(rows[2].slice(3).join(",")).toContain(path.join(tmp, "plain", "c_broken.jpg"));
    expect(summary.scoredCount).toBe(2);
    expect(summary.errorCount).toBe(1);
    expect(summary.alreadyScoredCount).toBe(0);
    expect(summary.levelCounts).toEqual({ urgent: 1, routine: 1 });
    expect(summary.problems).toHaveLength(1);
    expect(summary.problems[0].file).toContain("c_broken.jpg");
    // No model.onnx in the folder: tfjs ran, and the summary's first line says so.
    expect(summary.runtime.runtime).toBe("tfjs");
    const described = describeScoreSummary(summary);
    expect(described[0]).toMatch(/^runtime: tfjs/);
    expect(described[1]).toMatch(/^scored 2 images, skipped 0 already scored, 1 error rows → .* \(\d+\.\d images\/s\)/);
  });

  it("scores through ONNX Runtime when the folder has model.onnx (same rows), and tfjs when forced", async () => {
    const viaOnnx = await scoreImagesToCsv({
      modelDir: path.join(tmp, "model-onnx"),
      input: path.join(tmp, "plain"),
      outPath: path.join(tmp, "preds-onnx.csv"),
      batchSize: 2,
      runtime: "auto",
    });
    expect(viaOnnx.runtime.runtime).toBe("onnx");
    expect(describeScoreSummary(viaOnnx)[0]).toMatch(/^runtime: onnx/);
    const rows = fs.readFileSync(path.join(tmp, "preds-onnx.csv"), "utf8").trim().split("\n").slice(1);
    expect(rows.map((r) => r.split(",")[0])).toEqual(["a_red", "b_blue", "c_broken"]);
    expect(Number(rows[0].split(",")[1])).toBeCloseTo(1 / (1 + Math.exp(-1)), 5);
    expect(rows.map((r) => r.split(",")[2])).toEqual(["urgent", "routine", ""]);
    expect(viaOnnx.problems.map((p) => path.basename(p.file))).toEqual(["c_broken.jpg"]);
    const forced = await scoreImagesToCsv({
      modelDir: path.join(tmp, "model-onnx"),
      input: path.join(tmp, "plain"),
      outPath: path.join(tmp, "preds-tfjs.csv"),
      runtime: "tfjs",
    });
    expect(forced.runtime).toMatchObject({ runtime: "tfjs", forced: true });
    expect(fs.readFileSync(path.join(tmp, "preds-tfjs.csv"), "utf8").split("\n")[1].split(",")[1]).toBe(
      rows[0].split(",")[1],
    );
  });

  it("reads a labels.csv file or a dataset folder", async () => {
    const viaCsv = listImagesToScore(path.join(tmp, "dataset", "labels.csv"));
    const viaDir = listImagesToScore(path.join(tmp, "dataset"));
    expect(viaCsv.images).toEqual(viaDir.images);
    expect(viaCsv.images.map((i) => i.imageId)).toEqual(["ISIC_1"]);
    const out = path.join(tmp, "preds2.csv");
    await scoreImagesToCsv({
      modelDir: path.join(tmp, "model"),
      input: path.join(tmp, "dataset", "labels.csv"),
      outPath: out,
    });
    const [, row] = fs.readFileSync(out, "utf8").trim().split("\n");
    expect(Number(row.split(",")[1])).toBeCloseTo(1 / (1 + Math.exp(-128 / 255)), 4);
  });

  it("refuses a batch size that is not a whole number ≥ 1 (0 used to loop forever, NaN to score nothing)", async () => {
    for (const batchSize of [0, -1, 1.5, Number.NaN]) {
      const out = path.join(tmp, `preds-bad-${batchSize}.csv`);
      await expect(
        scoreImagesToCsv({
          modelDir: path.join(tmp, "model"),
          input: path.join(tmp, "plain"),
          outPath: out,
          batchSize,
        }),
      ).rejects.toThrow(
        new ScoreInputError(`batchSize: received ${batchSize}, expected a whole number ≥ 1 (images per forward pass)`),
      );
      expect(fs.existsSync(out)).toBe(false);
    }
  }, 20_000);

  it("names bad inputs", () => {
    expect(() => listImagesToScore(path.join(tmp, "nope"))).toThrow(ScoreInputError);
    expect(() => listImagesToScore(path.join(tmp, "plain", "notes.txt"))).toThrow(/must be a labels.csv/);
    fs.mkdirSync(path.join(tmp, "empty"), { recursive: true });
    expect(() => listImagesToScore(path.join(tmp, "empty"))).toThrow(/no .jpg, .jpeg or .png files/);
  });

  it("a rerun skips the ids already in the output, repairs a partial last line and appends the rest", async () => {
    const full = path.join(tmp, "resume-full.csv");
    await scoreImagesToCsv({ modelDir: path.join(tmp, "model"), input: path.join(tmp, "plain"), outPath: full });
    const reference = readRowsById(full);
    const out = path.join(tmp, "resume.csv");
    await scoreImagesToCsv({ modelDir: path.join(tmp, "model"), input: path.join(tmp, "plain"), outPath: out });
    // As a kill -9 in the middle of the second row's write would leave it: one row and a fragment.
    const lines = reference.text.split("\n");
    fs.writeFileSync(out, `${lines[0]}\n${lines[1]}\n${lines[2].slice(0, 7)}`);
    const started: unknown[] = [];
    const summary = await scoreImagesToCsv({
      modelDir: path.join(tmp, "model"),
      input: path.join(tmp, "plain"),
      outPath: out,
      onStart: (plan) => started.push(plan),
    });
    expect(started).toEqual([{ toScore: 2, alreadyScored: 1, retried: 0, resumed: true }]);
    expect(summary).toMatchObject({ scoredCount: 1, alreadyScoredCount: 1, errorCount: 1 });
    const resumed = readRowsById(out);
    expect(resumed.text.startsWith(`${lines[0]}\n${lines[1]}\n`)).toBe(true);
    expect(resumed.text.endsWith("\n")).toBe(true);
    expect(resumed.rows).toEqual(reference.rows);
    // A third run has nothing left to do and writes nothing.
    const again = await scoreImagesToCsv({
      modelDir: path.join(tmp, "model"),
      input: path.join(tmp, "plain"),
      outPath: out,
    });
    expect(again).toMatchObject({ scoredCount: 0, alreadyScoredCount: 3, errorCount: 0 });
    expect(fs.readFileSync(out, "utf8")).toBe(resumed.text);
    expect(describeScoreSummary(again)[1]).toMatch(/^scored 0 images, skipped 3 already scored, 0 error rows/);
  });

  it("error rows count as done unless retryErrors, which scores them again (one row per id)", async () => {
    const input = path.join(tmp, "retry");
    fs.mkdirSync(input);
    await solidPng(path.join(input, "a.png"), 255, 0, 0);
    fs.writeFileSync(path.join(input, "b.png"), "truncated");
    const out = path.join(tmp, "retry.csv");
    const opts = { modelDir: path.join(tmp, "model"), input, outPath: out };
    expect(await scoreImagesToCsv(opts)).toMatchObject({ scoredCount: 1, errorCount: 1 });
    await solidPng(path.join(input, "b.png"), 0, 0, 0);
    expect(await scoreImagesToCsv(opts)).toMatchObject({ scoredCount: 0, alreadyScoredCount: 2, errorCount: 0 });
    expect(readRowsById(out).rows.get("b")).toMatch(/^b,,,.*b\.png/);
    const retried = await scoreImagesToCsv({ ...opts, retryErrors: true });
    expect(retried).toMatchObject({ scoredCount: 1, alreadyScoredCount: 1, retriedCount: 1, errorCount: 0 });
    const { rows } = readRowsById(out);
    expect([...rows.keys()]).toEqual(["a", "b"]);
    expect(rows.get("b")).toBe("b,0.500000,routine,");
  });

  it("refuses an output written by another model, with other TTA views or of unknown origin, naming both; --overwrite replaces it", async () => {
    const out = path.join(tmp, "guarded.csv");
    const input = path.join(tmp, "plain");
    await scoreImagesToCsv({ modelDir: path.join(tmp, "model"), input, outPath: out });
    const other = scoreImagesToCsv({ modelDir: path.join(tmp, "model-other"), input, outPath: out });
    await expect(other).rejects.toThrow(ScoreOutputMismatchError);
    await expect(other).rejects.toThrow(
      new RegExp(
        `was written by model ${tmp}/model \\(handmade, .*\\), but this run scores with model ${tmp}/model-other \\(`,
      ),
    );
    await expect(scoreImagesToCsv({ modelDir: path.join(tmp, "model"), input, outPath: out, tta: 4 })).rejects.toThrow(
      `${out} was written with no --tta, but this run uses --tta (4 views)`,
    );
    const overwritten = await scoreImagesToCsv({
      modelDir: path.join(tmp, "model-other"),
      input,
      outPath: out,
      overwrite: true,
    });
    expect(overwritten).toMatchObject({ scoredCount: 2, alreadyScoredCount: 0 });
    expect(Number(readRowsById(out).rows.get("a_red")!.split(",")[1])).toBeCloseTo(1 / (1 + Math.exp(-2)), 5);
    fs.rmSync(scoreMetaPath(out));
    await expect(scoreImagesToCsv({ modelDir: path.join(tmp, "model-other"), input, outPath: out })).rejects.toThrow(
      /exists without guarded\.csv\.meta\.json .* so its model is unknown/,
    );
  });

  it("--tta writes the mean over the views and their spread (tta_sd)", async () => {
    const out = path.join(tmp, "tta.csv");
    const summary = await scoreImagesToCsv({
      modelDir: path.join(tmp, "model"),
      input: path.join(tmp, "plain"),
      outPath: out,
      tta: true,
    });
    expect(summary.ttaViews).toBe(8);
    const lines = fs.readFileSync(out, "utf8").trim().split("\n");
    expect(lines[0]).toBe("image_id,probability,triage,tta_sd,error");
    const loaded = await loadTriageModel(path.join(tmp, "model"));
    const expected = await predictMalignantProbabilityTta(loaded, [path.join(tmp, "plain", "a_red.png")]);
    loaded.model.dispose();
    const p = expected[0];
    if (!("viewProbabilities" in p)) throw new Error("expected a prediction");
    const mean = p.viewProbabilities.reduce((a, b) => a + b, 0) / 8;
    const sd = Math.sqrt(p.viewProbabilities.reduce((a, v) => a + (v - mean) ** 2, 0) / 8);
    const row = lines[1].split(",");
    expect(row[0]).toBe("a_red");
    expect(row[1]).toBe(mean.toFixed(6));
    expect(row[3]).toBe(sd.toFixed(6));
    expect(lines[3].split(",").slice(0, 4)).toEqual(["c_broken", "", "", ""]);
  });

  it("a labels.csv row naming an unscorable image gets an error row; an id listed twice gets none", async () => {
    const dir = path.join(tmp, "listing");
    fs.mkdirSync(path.join(dir, "images"), { recursive: true });
    await solidPng(path.join(dir, "images", "ISIC_1.png"), 255, 0, 0);
    await solidPng(path.join(dir, "images", "ISIC_2.png"), 0, 0, 0);
    fs.writeFileSync(
      path.join(dir, "labels.csv"),
      "image_id,label\nISIC_1,malignant\nISIC_2,spitz\nISIC_3,benign\nISIC_1,benign\n",
    );
    const out = path.join(tmp, "listing.csv");
    const summary = await scoreImagesToCsv({ modelDir: path.join(tmp, "model"), input: dir, outPath: out });
    const { rows } = readRowsById(out);
    expect([...rows.keys()].sort()).toEqual(["ISIC_1", "ISIC_2", "ISIC_3"]);
    expect(rows.get("ISIC_1")).toMatch(/^ISIC_1,0\.731059,urgent,$/);
    expect(rows.get("ISIC_2")).toMatch(/^ISIC_2,,,.*labels\.csv row 3: .*spitz/);
    expect(rows.get("ISIC_3")).toMatch(/^ISIC_3,,,.*labels\.csv row 4: image file for ISIC_3 not found/);
    expect(summary.errorCount).toBe(2);
    // The duplicate ISIC_1 (row 5) is listed as a problem, not as a second row.
    expect(summary.problems.some((p) => p.row === 5 && /listed twice/.test(p.reason))).toBe(true);
  });
});

describe("npm run score killed with kill -9 and run again", () => {
  it("ends with every image exactly once, no partial row, and the values of an uninterrupted run", async () => {
    await selectBackend();
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "ml-score-kill-"));
    const model = path.join(tmp, "model");
    await exportRedModel(model);
    const input = path.join(tmp, "images");
    fs.mkdirSync(input);
    for (let i = 0; i < 60; i++) await solidPng(path.join(input, `img${String(i).padStart(2, "0")}.png`), i * 4, 7, 9);
    fs.writeFileSync(path.join(input, "img60_broken.jpg"), "not a jpeg");
    const reference = path.join(tmp, "reference.csv");
    await scoreImagesToCsv({ modelDir: model, input, outPath: reference, batchSize: 2 });
    const expected = readRowsById(reference).rows;
    expect(expected.size).toBe(61);

    const out = path.join(tmp, "preds.csv");
    const run = spawnTsxScript("tests/helpers/slowScoreChild.ts", [model, input, out, "60"]);
    const rowCount = () => (fs.existsSync(out) ? fs.readFileSync(out, "utf8").split("\n").length - 2 : 0);
    await waitWhileRunning(run, () => rowCount() >= 10);
    const killed = await killProcessGroup(run);
    expect(killed.signal).toBe("SIGKILL");
    const atKill = fs.readFileSync(out, "utf8");
    const keptAtKill = atKill.slice(0, atKill.lastIndexOf("\n") + 1);
    const rowsAtKill = keptAtKill.split("\n").length - 2;
    expect(rowsAtKill).toBeGreaterThanOrEqual(10);
    expect(rowsAtKill).toBeLessThan(61);

    const rerun = spawnSync(
      process.execPath,
      [
        "node_modules/tsx/dist/cli.mjs",
        "scripts/score.ts",
        "--model",
        model,
        "--input",
        input,
        "--out",
        out,
        "--batch-size",
        "2",
      ],
      { encoding: "utf8" },
    );
    expect(rerun.status, rerun.stderr).toBe(0);
    expect(rerun.stdout).toContain(`skipped ${rowsAtKill} images as already scored; ${61 - rowsAtKill} to score`);
    expect(rerun.stdout).toMatch(new RegExp(`^scored \\d+ images, skipped ${rowsAtKill} already scored`, "m"));
    const final = readRowsById(out);
    expect(final.text.startsWith(keptAtKill)).toBe(true);
    expect(final.text.endsWith("\n")).toBe(true);
    expect(final.rows).toEqual(expected);
    fs.rmSync(tmp, { recursive: true, force: true });
  }, 180_000);
});

describe("scoreImagesToCsv with a model that carries a triage policy", () => {
  it("writes the policy's calibrated probability and level (urgent/routine/reassure), as decideTriageForModel gives", async () => {
    await selectBackend();
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "ml-score-policy-"));
    try {
      // The red model's raw output is σ(mean red / 255) ∈ [0.5, 0.73]. A policy fitted on 400
      // validation scores in that range: six malignant from 0.56 to 0.61, 34 from 0.62 to 0.73
      // (urgent for 80% sensitivity sits among those), benign spread over 0.50–0.68; NPV 99% then
      // holds only below the lowest malignant score, so reassure < 0.56 < routine < urgent.
      const labels = Array.from({ length: 400 }, (_, i) => (i < 40 ? 1 : 0));
      const probabilities = labels.map((y, i) =>
        y ? (i < 6 ? 0.56 + 0.01 * i : 0.62 + (0.11 * ((i * 7) % 34)) / 34) : 0.5 + (0.18 * ((i * 13) % 360)) / 360,
      );
      const policy = fitTriagePolicy({ labels, probabilities, targetSensitivity: 0.8, targetNpv: 0.99 });
      if (!policy.reassure.enabled) throw new Error(`reassure disabled: ${policy.reassure.reason}`);
      const modelDir = path.join(tmp, "model");
      await exportRedModel(modelDir, { policy });
      const images = path.join(tmp, "images");
      fs.mkdirSync(images);
      // Red levels below, between and above the two raw thresholds (σ⁻¹(p) · 255).
      const redAt = (p: number) => 255 * Math.log(p / (1 - p));
      const between = Math.round((redAt(policy.reassure.rawThresholdProb) + redAt(policy.urgent.rawThresholdProb)) / 2);
      const reds = [0, 20, between, between + 1, 200, 255];
      for (const r of reds) await solidPng(path.join(images, `red${r}.png`), r, 0, 0);
      const outPath = path.join(tmp, "preds.csv");
      const summary = await scoreImagesToCsv({ modelDir, input: images, outPath, runtime: "tfjs" });
      expect(summary.scoredCount).toBe(reds.length);
      const { rows } = readRowsById(outPath);
      const metadata = JSON.parse(fs.readFileSync(path.join(modelDir, "metadata.json"), "utf8")) as TriageModelMetadata;
      const levels = new Set<string>();
      for (const r of reds) {
        const [, probability, level] = rows.get(`red${r}`)!.split(",");
        const raw = 1 / (1 + Math.exp(-r / 255));
        const expected = decideTriageForModel(metadata, { probability: raw });
        expect(Number(probability)).toBeCloseTo(expected.probability, 5);
        expect(level).toBe(expected.level);
        levels.add(level);
      }
      // Calibration moved the probabilities, and the images span the policy's three levels.
      expect(Math.abs(decideTriageForModel(metadata, { probability: 0.6 }).probability - 0.6)).toBeGreaterThan(1e-3);
      expect([...levels].sort()).toEqual(["reassure", "routine", "urgent"]);
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  });
});
