import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import * as tf from "@tensorflow/tfjs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { disposeBackbone, extractFeatures, releaseInferencePlan, selectBackend, UnknownNameError } from "../../lib/index.js";
import { featureCacheFolder } from "../../lib/models/features.js";
import type { Backbone } from "../../lib/index.js";
import {
  BackboneEnsembleError,
  concatenateFeatureRows,
  createBackboneEnsemble,
  disposeBackboneEnsemble,
  extractEnsembleFeatures,
  formatBackboneEnsemble,
  isBackboneEnsembleSpec,
  loadBackboneEnsemble,
  parseBackboneEnsemble,
} from "../../lib/models/ensemble.js";
import { requireSharedPath } from "../helpers/shared.js";
import { buildTinyMembers, writeRandomJpegs } from "./ensembleFixtures.js";

describe("parseBackboneEnsemble", () => {
  it("parses members in order, alpha only for mobilenet_v1, and formats a canonical spec", () => {
    expect(parseBackboneEnsemble("mobilenet_v2+inception_v3+mobilenet_v1@1.0")).toEqual([
      { name: "mobilenet_v2" },
      { name: "inception_v3" },
      { name: "mobilenet_v1", alpha: 1 },
    ]);
    expect(parseBackboneEnsemble(" MobileNet_V1@0.25 + VGG16 ")).toEqual([{ name: "mobilenet_v1", alpha: 0.25 }, { name: "vgg16" }]);
    expect(parseBackboneEnsemble("inception_v3")).toEqual([{ name: "inception_v3" }]);
    expect(formatBackboneEnsemble(parseBackboneEnsemble("inception_v3+mobilenet_v1"))).toBe("inception_v3+mobilenet_v1@1.0");
    expect(formatBackboneEnsemble(parseBackboneEnsemble("mobilenet_v1@0.5+mobilenet_v2"))).toBe("mobilenet_v1@0.5+mobilenet_v2");
    expect(formatBackboneEnsemble(parseBackboneEnsemble("MOBILENET_V1@1+inception_v3"))).toBe("mobilenet_v1@1.0+inception_v3");
    expect(isBackboneEnsembleSpec("mobilenet_v2+inception_v3")).toBe(true);
    expect(isBackboneEnsembleSpec("mobilenet_v2")).toBe(false);
  });

  it("names the part that is wrong", () => {
    expect(() => parseBackboneEnsemble("mobilenet_v2+inceptoin_v3")).toThrow(UnknownNameError);
    expect(() => parseBackboneEnsemble("mobilenet_v2+inceptoin_v3")).toThrow(/unknown backbone "inceptoin_v3".*did you mean "inception_v3"/);
    expect(() => parseBackboneEnsemble("mobilenet_v2++inception_v3")).toThrow(BackboneEnsembleError);
    expect(() => parseBackboneEnsemble("mobilenet_v2++inception_v3")).toThrow(/part 2 is empty/);
    expect(() => parseBackboneEnsemble("mobilenet_v2+")).toThrow(/part 2 is empty/);
    expect(() => parseBackboneEnsemble("mobilenet_v2@1.0+inception_v3")).toThrow(/"mobilenet_v2@1.0" gives @1.0, but only mobilenet_v1 takes a width multiplier/);
    expect(() => parseBackboneEnsemble("mobilenet_v1@0.3")).toThrow(/has alpha "0.3", expected one of 0.25, 0.5, 0.75, 1.0/);
    expect(() => parseBackboneEnsemble("mobilenet_v1@")).toThrow(/has alpha "", expected one of/);
    expect(() => parseBackboneEnsemble("mobilenet_v1@abc")).toThrow(BackboneEnsembleError);
    expect(() => parseBackboneEnsemble("mobilenet_v2+inception_v3+MobileNet_V2")).toThrow(/mobilenet_v2 appears twice \(parts 1 and 3\)/);
    expect(() => parseBackboneEnsemble("mobilenet_v1@0.25+mobilenet_v1@1.0")).toThrow(BackboneEnsembleError);
  });
});

describe("concatenateFeatureRows", () => {
  it("joins by key in the given order, keeps only keys every part has, and checks sizes", () => {
    const a = { keys: ["x", "y", "z"], features: Float32Array.from([1, 2, 3, 4, 5, 6]), featureDim: 2 };
    const b = { keys: ["z", "x"], features: Float32Array.from([30, 10]), featureDim: 1 };
    const joined = concatenateFeatureRows([a, b], ["z", "y", "x"]);
    expect(joined.keys).toEqual(["z", "x"]);
    expect(joined.featureDim).toBe(3);
    expect(Array.from(joined.features)).toEqual([5, 6, 30, 1, 2, 10]);
    expect(() => concatenateFeatureRows([{ keys: ["x"], features: new Float32Array(3), featureDim: 2 }], ["x"])).toThrow(/parts\[0\]\.features: received 3 values, expected 1 rows × 2 = 2/);
  });
});

describe("createBackboneEnsemble and extractEnsembleFeatures (tiny real conv backbones)", () => {
  let dir: string;
  let files: string[];
  let members: Backbone[];

  beforeAll(async () => {
    await selectBackend();
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "ml-ensemble-"));
    files = await writeRandomJpegs(dir, 5, 11);
    members = buildTinyMembers(1);
  });
  afterAll(() => {
    for (const m of members) disposeBackbone(m);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it("sums featureDim, gives a stable weightsId that changes with the members, and refuses a backbone twice", () => {
    const ensemble = createBackboneEnsemble(members);
    expect(ensemble.name).toBe("tiny_a+tiny_b+tiny_c");
    expect(ensemble.featureDim).toBe(12);
    expect(ensemble.weightsId).toBe(createBackboneEnsemble(members).weightsId);
    expect(ensemble.weightsId).toMatch(/^ensemble\/sha256:[0-9a-f]{16}$/);
    expect(createBackboneEnsemble([members[1], members[0], members[2]]).weightsId).not.toBe(ensemble.weightsId);
    expect(createBackboneEnsemble([members[0], { ...members[1], weightsId: "other" }, members[2]]).weightsId).not.toBe(ensemble.weightsId);
    expect(() => createBackboneEnsemble([members[0], members[1], members[0]])).toThrow(/members\[2\]: backbone "tiny_a" is also members\[0\]/);
    expect(() => createBackboneEnsemble([])).toThrow(BackboneEnsembleError);
  });

  it("joins the members' extractFeatures rows in member order; a file one member could not read is dropped from all and reported once", async () => {
    const ensemble = createBackboneEnsemble(members);
    const cacheDir = path.join(dir, "cache");
    // lesion_3 is readable for tiny_a, then replaced by garbage before tiny_b and tiny_c run.
    const victim = files[3];
    const victimBytes = fs.readFileSync(victim);
    const input = [files[0], files[1], path.join(dir, "broken.jpg"), files[2], victim, files[4]];
    const progress: number[] = [];
    const passes = new Set<string | undefined>();
    const tensorsBefore = tf.memory().numTensors;
    const m = await extractEnsembleFeatures(ensemble, input, {
      cacheDir,
      batchSize: 2,
      onProgress: (done, total, member) => {
        progress.push(done);
        passes.add(member);
        expect(total).toBe(input.length * 3);
        if (done === input.length) fs.writeFileSync(victim, "truncated");
      },
    });
    fs.writeFileSync(victim, victimBytes);
    // The only tensors left are the inference plans extractFeatures keeps per backbone.
    for (const member of members) releaseInferencePlan(member);
    expect(tf.memory().numTensors).toBe(tensorsBefore);
    expect(progress.at(-1)).toBe(18);
    // Per batch of 2 within each member (6 inputs: 3 batches), the member named.
    expect(progress).toEqual([0, 2, 4, 6, 6, 8, 10, 12, 12, 14, 16, 18]);
    expect([...passes]).toEqual(["tiny_a", "tiny_b", "tiny_c"]);
    expect(m.featureDim).toBe(12);
    expect(m.rows).toBe(4);
    expect(m.sourceIndices).toEqual([0, 1, 3, 5]);
    expect(m.imageIds).toEqual(["lesion_0", "lesion_1", "lesion_2", "lesion_4"]);
    expect(m.problems.map((p) => p.file)).toEqual([path.join(dir, "broken.jpg"), victim]);
    expect(m.problems[0].reason).toMatch(/^tiny_a: .*; tiny_b: .*; tiny_c: /);
    expect(m.problems[1].reason).toMatch(/^tiny_b: .*; tiny_c: /);
    expect(m.problems[1].reason).not.toMatch(/tiny_a/);
    expect(m.memberStats.map((s) => [s.name, s.featureDim, s.featureOffset])).toEqual([["tiny_a", 5, 0], ["tiny_b", 3, 5], ["tiny_c", 4, 8]]);
    expect(m.memberStats.map((s) => s.computed)).toEqual([5, 4, 4]);

    // Independently: each member alone on the readable files, rows placed side by side by hand.
    const kept = [files[0], files[1], files[2], files[4]];
    const alone = [];
    for (const member of members) alone.push(await extractFeatures(member, kept, { batchSize: 4 }));
    for (let row = 0; row < 4; row++) {
      const expected = alone.flatMap((a) => Array.from(a.features.subarray(row * a.featureDim, (row + 1) * a.featureDim)));
      const got = Array.from(m.features.subarray(row * 12, (row + 1) * 12));
      got.forEach((v, i) => expect(Math.abs(v - expected[i])).toBeLessThan(1e-6));
    }

    // Each member's cache is the single-backbone cache: a second run reads every row from it.
    expect(m.memberStats[1].cacheFolder).toBe(featureCacheFolder(cacheDir, members[1], "center-crop"));
    const again = await extractEnsembleFeatures(ensemble, kept, { cacheDir });
    expect([again.computed, again.cacheHits]).toEqual([0, 12]);
    expect(Array.from(again.features)).toEqual(Array.from(m.features));
  });
});

describe("loadBackboneEnsemble (real weights: mobilenet_v2 from nsfwjs + mobilenet_v1 α0.25 mirror)", () => {
  it("loads members in spec order with the shared options and disposes them", async (ctx) => {
    const weightsDir = requireSharedPath(ctx, "weights/mobilenet_v1_0.25_224");
    await selectBackend();
    const before = tf.memory().numTensors;
    const ensemble = await loadBackboneEnsemble("mobilenet_v2+mobilenet_v1@0.25", { weightsCacheDir: path.dirname(weightsDir) });
    expect(ensemble.name).toBe("mobilenet_v2+mobilenet_v1@0.25");
    expect(ensemble.memberNames).toEqual(["mobilenet_v2", "mobilenet_v1@0.25"]);
    expect(ensemble.members.map((m) => [m.name, m.featureDim, m.inputSizePx])).toEqual([["mobilenet_v2", 1280, 224], ["mobilenet_v1", 256, 224]]);
    expect(ensemble.featureDim).toBe(1536);
    disposeBackboneEnsemble(ensemble);
    expect(tf.memory().numTensors).toBe(before);
    // A member that cannot load: the error is rethrown and the members already loaded are freed.
    const emptyCache = fs.mkdtempSync(path.join(os.tmpdir(), "ml-ensemble-weights-"));
    await expect(loadBackboneEnsemble("mobilenet_v2+mobilenet_v1@0.25", { weightsCacheDir: emptyCache, baseUrl: "http://127.0.0.1:9" })).rejects.toThrow(
      /mobilenet_v1 alpha 0.25: no model.json/,
    );
    expect(tf.memory().numTensors).toBe(before);
    fs.rmSync(emptyCache, { recursive: true, force: true });
  });
});
