import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import * as tf from "@tensorflow/tfjs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { disposeBackbone, loadDataset, selectBackend } from "../../lib/index.js";
import { missingGradientKernels, registerWasmGradientKernels } from "../../lib/backend/wasmGradKernels.js";
import { loadBackbone } from "../../lib/models/backbones.js";
import { fineTuneTopBlocks } from "../../lib/train/fineTune.js";
import { findFineTuneCut, FineTuneError } from "../../lib/train/fineTuneCut.js";
import { buildModel, initializer, node, randomValues, valueInfo } from "../helpers/onnxGraphs.js";
import { describeRequiring, findSharedPath, missingSharedPath } from "../helpers/shared.js";

// Imported ONNX backbones have no numbered layer names (they are named after ONNX nodes); their
// residual Add layers end the blocks fine-tuning unfreezes.

const MODEL_REL = "weights/mobilenet_v2_1.0_imagenet/mobilenetv2-7-backbone.onnx";

function weightValues(model: tf.LayersModel, layerName: string): Float32Array[] {
  return model
    .getLayer(layerName)
    .getWeights()
    .map((w) => Float32Array.from(w.dataSync()));
}

function maxAbsDifference(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
  return worst;
}

describe("findFineTuneCut on an imported ONNX graph: residual Add layers end blocks", () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "ml-residual-"));
  afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));
  beforeAll(async () => {
    await selectBackend();
  });

  it("cuts at the Add below the requested top blocks, names each block by its last layer, and refuses counts beyond the Adds", async () => {
    // stem → [conv → relu → conv] + skip (add_1) → [conv → relu → conv] + skip (add_2) → conv → relu → GAP.
    const conv = (x: string, w: string, y: string) => node("Conv", [x, w], [y], { kernel_shape: { ints: [1, 1] } });
    const nodes = [
      conv("x", "w_stem", "stem"),
      conv("stem", "w_a1", "a1"),
      node("Relu", ["a1"], ["a1r"]),
      conv("a1r", "w_a2", "a2"),
      node("Add", ["a2", "stem"], ["add_1"]),
      conv("add_1", "w_b1", "b1"),
      node("Relu", ["b1"], ["b1r"]),
      conv("b1r", "w_b2", "b2"),
      node("Add", ["b2", "add_1"], ["add_2"]),
      conv("add_2", "w_last", "last"),
      node("Relu", ["last"], ["last_relu"]),
      node("GlobalAveragePool", ["last_relu"], ["gap"]),
      node("Flatten", ["gap"], ["features"]),
    ];
    const inits = [
      initializer("w_stem", [4, 3, 1, 1], randomValues(12, 1)),
      ...["w_a1", "w_a2", "w_b1", "w_b2"].map((n, k) => initializer(n, [4, 4, 1, 1], randomValues(16, 2 + k))),
      initializer("w_last", [6, 4, 1, 1], randomValues(24, 9)),
    ];
    const file = path.join(tmp, "residual.onnx");
    fs.writeFileSync(file, buildModel(nodes, inits, valueInfo("x", ["N", 3, 8, 8]), [valueInfo("features", ["N", 6])]));
    const backbone = await loadBackbone(`onnx:${file}`, { onnxCacheDir: tmp });
    const one = findFineTuneCut(backbone, 1);
    expect(one.cutLayerName).toBe("add_add_2");
    expect(one.blockNames).toEqual(["relu_last_relu"]);
    expect(one.topLayerNames).toEqual(["conv_last", "relu_last_relu", "globalaveragepool_gap"]);
    expect(one.activationShape).toEqual([8, 8, 4]);
    const two = findFineTuneCut(backbone, 2);
    expect(two.cutLayerName).toBe("add_add_1");
    expect(two.blockNames).toEqual(["add_add_2", "relu_last_relu"]);
    expect(two.topLayerNames).toEqual([
      "conv_b1",
      "relu_b1r",
      "conv_b2",
      "add_add_2",
      "conv_last",
      "relu_last_relu",
      "globalaveragepool_gap",
    ]);
    expect(() => findFineTuneCut(backbone, 3)).toThrow(FineTuneError);
    expect(() => findFineTuneCut(backbone, 3)).toThrow(
      /unfreezeBlocks: received 3, expected a whole number 1–2 \(onnx:.*residual\.onnx has 2 residual Add layers/,
    );
    disposeBackbone(backbone);

    // Without numbered names and without Adds there is nothing to cut at.
    const plainFile = path.join(tmp, "plain.onnx");
    fs.writeFileSync(
      plainFile,
      buildModel(
        [
          conv("x", "w_stem", "stem"),
          node("GlobalAveragePool", ["stem"], ["gap"]),
          node("Flatten", ["gap"], ["features"]),
        ],
        inits.slice(0, 1),
        valueInfo("x", ["N", 3, 8, 8]),
        [valueInfo("features", ["N", 4])],
      ),
    );
    const plain = await loadBackbone(`onnx:${plainFile}`, { onnxCacheDir: tmp });
    expect(() => findFineTuneCut(plain, 1)).toThrow(/no numbered blocks found .* and no residual Add layers/);
    disposeBackbone(plain);
  });
});

describeRequiring(
  missingSharedPath(MODEL_REL) ?? missingSharedPath("data/ham10000-dev"),
  "fineTuneTopBlocks on mobilenet_v2_imagenet (the ONNX zoo MobileNetV2 imported to tfjs)",
  () => {
    it("one step trains only the top block (after the last residual Add: conv_90 … conv_95) and the head, leaving the backbone untouched", async () => {
      registerWasmGradientKernels();
      await selectBackend({ preferred: "wasm" });
      expect(missingGradientKernels()).toEqual([]);
      const { records } = loadDataset(findSharedPath("data/ham10000-dev")!);
      const train = [
        ...records.filter((r) => r.label === "malignant").slice(0, 2),
        ...records.filter((r) => r.label === "benign").slice(0, 2),
      ];
      const backbone = await loadBackbone("mobilenet_v2_imagenet", { weightsPath: findSharedPath(MODEL_REL)! });
      const input = tf.input({ shape: [1280] });
      const dense = tf.layers.dense({
        units: 1,
        activation: "sigmoid",
        name: "head_output",
        kernelInitializer: tf.initializers.glorotUniform({ seed: 3 }),
      });
      const head = tf.model({ inputs: input, outputs: dense.apply(input) as tf.SymbolicTensor });
      const before = new Map(
        backbone.model.layers
          .filter((l) => l.weights.length > 0)
          .map((l) => [l.name, weightValues(backbone.model, l.name)]),
      );
      const headBefore = weightValues(head, "head_output");

      const result = await fineTuneTopBlocks(backbone, head, train, [], {
        unfreezeBlocks: 1,
        epochs: 1,
        learningRate: 1e-2,
        batchSize: 4,
        seed: 7,
      });
      expect(result.cutLayerName).toBe("add_88");
      expect(result.activationShape).toEqual([7, 7, 160]);
      // The top block: expand 1×1 (960), depthwise 3×3, project 1×1 (320), the final 1×1 conv (1280); then the head.
      expect(result.trainableLayerNames).toEqual(["conv_90", "conv_92", "conv_94", "conv_95", "head_output"]);
      for (const name of ["conv_90", "conv_92", "conv_94", "conv_95"]) {
        expect(maxAbsDifference(weightValues(result.head, name)[0], before.get(name)![0])).toBeGreaterThan(1e-6);
      }
      expect(maxAbsDifference(weightValues(result.head, "head_output")[0], headBefore[0])).toBeGreaterThan(1e-6);
      // Nothing below the cut is in the trained model (its input is the activation of add_88), and the backbone passed in kept every weight.
      expect(result.head.layers[0].name).toBe("add_88");
      expect(result.head.layers[0].getClassName()).toBe("InputLayer");
      const trained = new Set(result.head.layers.map((l) => l.name));
      for (const below of ["conv_0", "conv_85", "conv_88"]) expect(trained.has(below)).toBe(false);
      for (const [name, values] of before)
        weightValues(backbone.model, name).forEach((w, i) => expect(maxAbsDifference(w, values[i])).toBe(0));
      result.head.dispose();
      head.dispose();
      disposeBackbone(backbone);
    }, 120_000);
  },
);
