import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import * as tf from "@tensorflow/tfjs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { disposeBackbone, extractFeatures, selectBackend } from "../../lib/index.js";
import type { Backbone } from "../../lib/index.js";
import {
  buildEnsembleTriageModel,
  ENSEMBLE_FEATURES_LAYER_NAME,
  makeEnsembleTriageMetadata,
} from "../../lib/export/ensembleTriageModel.js";
import {
  buildTriageModel,
  exportTriageModel,
  loadTriageModel,
  makeTriageMetadata,
  METADATA_JSON_FILE,
  predictMalignantProbability,
  TriageModelError,
  type ImagePrediction,
  type TriageModelMetadata,
} from "../../lib/export/triageModel.js";
import {
  createBackboneEnsemble,
  disposeBackboneEnsemble,
  extractEnsembleFeatures,
  loadBackboneEnsemble,
} from "../../lib/models/ensemble.js";
import { InferencePlanError } from "../../lib/models/inferencePlan.js";
import { compileNestedInferencePlan } from "../../lib/models/nestedInferencePlan.js";
import { requireSharedPath } from "../helpers/shared.js";
import {
  buildSeededHead,
  buildTinyBackbone,
  buildTinyMembers,
  predictHead,
  writeRandomJpegs,
} from "../models/ensembleFixtures.js";

const probabilityOf = (p: ImagePrediction): number => ("probability" in p ? p.probability : NaN);

/** head(concat(member features)) from each member's own extractFeatures, joined by hand. */
async function predictIndependently(
  members: readonly Backbone[],
  head: tf.LayersModel,
  files: readonly string[],
): Promise<Float32Array> {
  const parts = [];
  for (const m of members) parts.push(await extractFeatures(m, files, { batchSize: files.length }));
  const featureDim = parts.reduce((s, p) => s + p.featureDim, 0);
  const joined = new Float32Array(files.length * featureDim);
  for (let row = 0; row < files.length; row++) {
    let offset = row * featureDim;
    for (const p of parts) {
      expect(p.rows).toBe(files.length);
      joined.set(p.features.subarray(row * p.featureDim, (row + 1) * p.featureDim), offset);
      offset += p.featureDim;
    }
  }
  return predictHead(head, joined, files.length);
}

describe("ensemble triage model: build → export → load → score (tiny real conv backbones, two input sizes)", () => {
  let dir: string;
  let files: string[];
  let members: Backbone[];
  let head: tf.Sequential;

  beforeAll(async () => {
    await selectBackend();
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "ml-ensemble-export-"));
    files = await writeRandomJpegs(dir, 5, 23);
    members = buildTinyMembers(4);
    head = buildSeededHead(12, 7);
  });
  afterAll(() => {
    for (const m of members) disposeBackbone(m);
    head.dispose();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it("builds one model with an image input per member, concatenated features and the head; refuses a head that does not fit", () => {
    const triage = buildEnsembleTriageModel(members, head);
    expect(triage.inputs.map((t) => t.shape)).toEqual([
      [null, 32, 32, 3],
      [null, 40, 40, 3],
      [null, 32, 32, 3],
    ]);
    expect(triage.getLayer(ENSEMBLE_FEATURES_LAYER_NAME).outputShape).toEqual([null, 12]);
    expect(triage.outputs[0].shape).toEqual([null, 1]);
    const wrong = buildSeededHead(11, 1);
    expect(() => buildEnsembleTriageModel(members, wrong)).toThrow(TriageModelError);
    expect(() => buildEnsembleTriageModel(members, wrong)).toThrow(
      /expected \[null, 12\] \(featureDim of tiny_a\+tiny_b\+tiny_c: 5 \+ 3 \+ 4\)/,
    );
    wrong.dispose();
  });

  it("refuses members whose weights share names (the saved model could not be loaded back)", () => {
    const twinA = buildTinyBackbone("twin", 32, 2, { kind: "scale", scale: 1, offset: 0 }, 1);
    const twinB = { ...buildTinyBackbone("twin", 16, 2, { kind: "scale", scale: 1, offset: 0 }, 2), name: "twin_b" };
    const smallHead = buildSeededHead(4, 3);
    expect(() => buildEnsembleTriageModel([twinA, twinB], smallHead)).toThrow(
      /weight twin_conv1\/kernel is in both twin and twin_b/,
    );
    for (const m of [twinA, twinB]) disposeBackbone(m);
    smallHead.dispose();
  });

  it("round-trips through model.json + weights.bin + metadata.json and scores = head(concat(extractFeatures of each member)) to 1e-5, without leaking tensors", async () => {
    const ensemble = createBackboneEnsemble(members);
    const triage = buildEnsembleTriageModel(ensemble, head);
    const out = path.join(dir, "triage");
    const metadata = makeEnsembleTriageMetadata(ensemble, {
      thresholdProb: 0.4,
      validation: { description: "random", images: 0, metrics: { rocAuc: 0.7 } },
      notes: { data: "random" },
    });
    await exportTriageModel(out, triage, metadata);
    expect(fs.readdirSync(out).sort()).toEqual(["metadata.json", "model.json", "weights.bin"]);
    const saved = JSON.parse(fs.readFileSync(path.join(out, METADATA_JSON_FILE), "utf8")) as TriageModelMetadata;
    expect(saved).toMatchObject({
      formatVersion: 1,
      backboneName: "tiny_a+tiny_b+tiny_c",
      backboneWeightsId: ensemble.weightsId,
      featureDim: 12,
      inputSizePx: 40,
      thresholdProb: 0.4,
    });
    expect(saved.preprocessing).toEqual(members[1].preprocessing);
    expect(saved.featureLayerName).toBe("tiny_a_conv2+tiny_b_conv2+tiny_c_conv2");
    expect(saved.ensembleMembers).toEqual(
      members.map((m) => ({
        backboneName: m.name,
        backboneWeightsId: m.weightsId,
        featureLayerName: m.featureLayerName,
        featureDim: m.featureDim,
        inputSizePx: m.inputSizePx,
        preprocessing: m.preprocessing,
      })),
    );

    const expected = await predictIndependently(members, head, files);
    const loaded = await loadTriageModel(out);
    const broken = path.join(dir, "broken.jpg");
    const missing = path.join(dir, "missing.jpg");
    const input = [files[0], files[1], broken, files[2], files[3], missing, files[4]];
    const before = tf.memory().numTensors;
    const first = await predictMalignantProbability(loaded, input, { batchSize: 3 });
    const second = await predictMalignantProbability(loaded, input, { batchSize: 4 });
    expect(tf.memory().numTensors).toBe(before);
    for (const preds of [first, second]) {
      expect(preds.map((p) => p.imageId)).toEqual([
        "lesion_0",
        "lesion_1",
        "broken",
        "lesion_2",
        "lesion_3",
        "missing",
        "lesion_4",
      ]);
      expect("problem" in preds[2] && preds[2].problem.file).toBe(broken);
      expect("problem" in preds[5] && preds[5].problem.file).toBe(missing);
      expect("problem" in preds[5] && preds[5].problem.reason).toMatch(/cannot read file/);
      const scored = [0, 1, 3, 4, 6].map((i) => probabilityOf(preds[i]));
      scored.forEach((p, i) => expect(Math.abs(p - expected[i])).toBeLessThan(1e-5));
    }
    // The probabilities are not all alike: the check above would catch members fed the wrong image.
    expect(Math.max(...expected) - Math.min(...expected)).toBeGreaterThan(1e-3);

    // The in-memory model, and one image alone (tfjs-layers predict, no compiled plan): the same.
    const inMemory = await predictMalignantProbability({ model: triage, metadata, dir: "" }, files);
    inMemory.forEach((p, i) => expect(Math.abs(probabilityOf(p) - expected[i])).toBeLessThan(1e-5));
    const one = await predictMalignantProbability(loaded, [files[3]]);
    expect(Math.abs(probabilityOf(one[0]) - expected[3])).toBeLessThan(1e-5);

    // The plan compiled every nested backbone (BatchNorm folded) and equals model.predict.
    const plan = compileNestedInferencePlan(loaded.model);
    expect(plan.summary.nestedModels).toBe(3);
    expect(plan.summary.compiled.map((s) => s.foldedBatchNorms)).toEqual([1, 1, 1]);
    const xs = loaded.model.inputs.map((t, i) =>
      tf.randomUniform([2, t.shape[1] as number, t.shape[2] as number, 3], -1, 1, "float32", i),
    );
    const viaPlan = plan.predict(xs);
    const viaLayers = loaded.model.predict(xs) as tf.Tensor;
    const diff = tf.tidy(() => tf.max(tf.abs(tf.sub(viaPlan, viaLayers))).dataSync()[0]);
    expect(diff).toBeLessThan(1e-5);
    expect(() => plan.predict(xs.slice(0, 2))).toThrow(/received 2 input tensors, expected 3/);
    tf.dispose([...xs, viaPlan, viaLayers]);
    plan.dispose();
    loaded.model.dispose();
  });

  it("refuses metadata whose members do not match the model's inputs, naming what differs", async () => {
    const ensemble = createBackboneEnsemble(members);
    const triage = buildEnsembleTriageModel(ensemble, head);
    const out = path.join(dir, "mismatch");
    const metadata = makeEnsembleTriageMetadata(ensemble, { thresholdProb: 0.5 });
    await exportTriageModel(out, triage, metadata);
    const metaPath = path.join(out, METADATA_JSON_FILE);
    const rewrite = (change: (m: TriageModelMetadata) => void) => {
      const m = structuredClone(metadata);
      change(m);
      fs.writeFileSync(metaPath, JSON.stringify(m));
    };
    rewrite((m) => {
      m.ensembleMembers![1].inputSizePx = 32;
      m.inputSizePx = 32;
    });
    await expect(loadTriageModel(out)).rejects.toThrow(TriageModelError);
    await expect(loadTriageModel(out)).rejects.toThrow(
      /ensembleMembers\[1\] \(tiny_b\) has inputSizePx 32, but model input 1 \(tiny_b_image\) is \[null,40,40,3\], expected \[null, 32, 32, 3\]/,
    );
    // tiny_a and tiny_c both take 32 px: listed the other way round, their widths differ.
    rewrite((m) => m.ensembleMembers!.reverse());
    await expect(loadTriageModel(out)).rejects.toThrow(
      /ensembleMembers\[0\] \(tiny_c\) has featureDim 4, but model input 0 \(tiny_a_image\) feeds tiny_a_features with 5 features/,
    );
    rewrite((m) => {
      m.inputSizePx = 32;
    });
    await expect(loadTriageModel(out)).rejects.toThrow(
      /inputSizePx: received 32, expected 40 \(the largest of ensembleMembers' inputSizePx\)/,
    );
    rewrite((m) => {
      m.ensembleMembers!.pop();
      m.featureDim = 8;
    });
    await expect(loadTriageModel(out)).rejects.toThrow(
      /lists 2 ensemble members \(tiny_a, tiny_b\), expecting 2 model input\(s\), but model triage_ensemble has 3/,
    );
    rewrite((m) => {
      m.featureDim = 13;
    });
    await expect(loadTriageModel(out)).rejects.toThrow(
      /featureDim: received 13, expected 12 \(the sum of ensembleMembers' featureDim 5 \+ 3 \+ 4\)/,
    );
    rewrite((m) => {
      delete m.ensembleMembers;
    });
    await expect(loadTriageModel(out)).rejects.toThrow(
      /describes a single-backbone model, expecting 1 model input\(s\), but model triage_ensemble has 3/,
    );
    // The same check guards export: single-backbone metadata cannot be written for an ensemble.
    await expect(
      exportTriageModel(path.join(dir, "never"), triage, makeTriageMetadata(members[0], { thresholdProb: 0.5 })),
    ).rejects.toThrow(/^metadata describes a single-backbone model/);
    expect(fs.existsSync(path.join(dir, "never"))).toBe(false);
    // And scoring an in-memory pair that does not match.
    await expect(
      predictMalignantProbability(
        { model: triage, metadata: makeTriageMetadata(members[0], { thresholdProb: 0.5 }), dir: "" },
        files,
      ),
    ).rejects.toThrow(TriageModelError);
  });

  it("single-backbone metadata still checks the input size", async () => {
    const single = buildTriageModel(members[1], buildSeededHead(3, 9));
    const metadata = { ...makeTriageMetadata(members[1], { thresholdProb: 0.5 }), inputSizePx: 32 };
    await expect(exportTriageModel(path.join(dir, "single"), single, metadata)).rejects.toThrow(
      /backbone tiny_b has inputSizePx 32, but model input 0 \(tiny_b_input.*\) is \[null,40,40,3\]/,
    );
  });
});

describe("compileNestedInferencePlan", () => {
  it("refuses several outputs and an input layer that is not a model input", () => {
    const a = tf.input({ shape: [2] });
    const b = tf.input({ shape: [2] });
    const twoOutputs = tf.model({
      inputs: a,
      outputs: [
        tf.layers.dense({ units: 1 }).apply(a) as tf.SymbolicTensor,
        tf.layers.dense({ units: 1 }).apply(a) as tf.SymbolicTensor,
      ],
    });
    expect(() => compileNestedInferencePlan(twoOutputs)).toThrow(InferencePlanError);
    expect(() => compileNestedInferencePlan(twoOutputs)).toThrow(/2 outputs, expected one/);
    const joined = tf.layers.add().apply([a, b]) as tf.SymbolicTensor;
    const full = tf.model({ inputs: [a, b], outputs: joined });
    // A model whose graph reaches input b without declaring it (rebuilt around a alone is not allowed by tfjs, so fake it).
    const partial = { name: "partial", inputs: [a], outputs: full.outputs } as unknown as tf.LayersModel;
    expect(() => compileNestedInferencePlan(partial)).toThrow(
      /input layer .* feeds the output but is not one of the model's inputs/,
    );
    const plan = compileNestedInferencePlan(full);
    const y = plan.predict([tf.tensor2d([[1, 2]]), tf.tensor2d([[10, 20]])]);
    expect(Array.from(y.dataSync())).toEqual([11, 22]);
    plan.dispose();
    expect(() => plan.predict([])).toThrow(/was disposed/);
  });
});

describe("ensemble triage model with real backbones (mobilenet_v2 + mobilenet_v1 α0.25 mirror)", () => {
  it("exports, reloads and scores = head(concat(features)) from extractEnsembleFeatures to 1e-5", async (ctx) => {
    const weightsDir = requireSharedPath(ctx, "weights/mobilenet_v1_0.25_224");
    await selectBackend();
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "ml-ensemble-real-"));
    try {
      const files = await writeRandomJpegs(dir, 3, 31);
      const ensemble = await loadBackboneEnsemble("mobilenet_v2+mobilenet_v1@0.25", {
        weightsCacheDir: path.dirname(weightsDir),
      });
      const head = buildSeededHead(ensemble.featureDim, 13);
      const features = await extractEnsembleFeatures(ensemble, files, { batchSize: 3 });
      expect(features.featureDim).toBe(1536);
      const expected = predictHead(head, features.features, features.rows);
      const out = path.join(dir, "triage");
      const { bytes } = await exportTriageModel(
        out,
        buildEnsembleTriageModel(ensemble, head),
        makeEnsembleTriageMetadata(ensemble, { thresholdProb: 0.5 }),
      );
      console.log(`exported ensemble triage model: ${(bytes / 1e6).toFixed(2)} MB`);
      const loaded = await loadTriageModel(out);
      expect(loaded.metadata.ensembleMembers!.map((m) => m.backboneName)).toEqual([
        "mobilenet_v2",
        "mobilenet_v1@0.25",
      ]);
      const before = tf.memory().numTensors;
      const preds = await predictMalignantProbability(loaded, files);
      expect(tf.memory().numTensors).toBe(before);
      preds.forEach((p, i) => expect(Math.abs(probabilityOf(p) - expected[i])).toBeLessThan(1e-5));
      loaded.model.dispose();
      disposeBackboneEnsemble(ensemble);
      head.dispose();
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
