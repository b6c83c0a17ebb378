import fs from "node:fs";
import path from "node:path";
import sharp from "sharp";
import * as tf from "@tensorflow/tfjs";
import type { Backbone, PreprocessingSpec } from "../../lib/index.js";
import { createRandom } from "../../lib/util/random.js";

/**
 * A small real convolutional backbone (conv → BatchNorm → ReLU6 → 1×1 conv + ReLU → global
 * average pool) with seeded non-trivial weights, BatchNorm statistics included, so a compiled
 * inference plan has something to fold. Layer names carry `name`, so two of them never share a
 * weight name.
 */
export function buildTinyBackbone(name: string, inputSizePx: number, featureDim: number, preprocessing: PreprocessingSpec, seed: number): Backbone {
  const input = tf.input({ shape: [inputSizePx, inputSizePx, 3], name: `${name}_input` });
  let x = tf.layers.conv2d({ filters: 6, kernelSize: 3, strides: 2, padding: "same", useBias: false, name: `${name}_conv1` }).apply(input) as tf.SymbolicTensor;
  x = tf.layers.batchNormalization({ name: `${name}_bn1` }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.reLU({ maxValue: 6, name: `${name}_relu1` }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.conv2d({ filters: featureDim, kernelSize: 1, activation: "relu", name: `${name}_conv2` }).apply(x) as tf.SymbolicTensor;
  const pooled = tf.layers.globalAveragePooling2d({ name: `${name}_features_gap` }).apply(x) as tf.SymbolicTensor;
  const model = tf.model({ inputs: input, outputs: pooled, name: `${name}_features` });
  setSeededWeights(model, seed);
  return { name, inputSizePx, featureLayerName: `${name}_conv2`, featureDim, preprocessing, model, weightsId: `test/${name}/seed-${seed}` };
}

/**
 * The three tiny members both ensemble test files use: two input sizes (32 and 40 px), all three
 * preprocessing kinds, feature widths 5 + 3 + 4; weights seeded from seedBase, seedBase+1, seedBase+2.
 */
export function buildTinyMembers(seedBase: number): Backbone[] {
  return [
    buildTinyBackbone("tiny_a", 32, 5, { kind: "scale", scale: 1 / 255, offset: 0 }, seedBase),
    buildTinyBackbone("tiny_b", 40, 3, { kind: "caffe", meanBgr: [103.939, 116.779, 123.68] }, seedBase + 1),
    buildTinyBackbone("tiny_c", 32, 4, { kind: "scale", scale: 1 / 127.5, offset: -1 }, seedBase + 2),
  ];
}

/** Replaces every weight with seeded values; variances stay positive. */
export function setSeededWeights(model: tf.LayersModel, seed: number): void {
  const rand = createRandom(seed);
  const values = model.weights.map((w) => {
    const shape = w.shape as number[];
    const size = shape.reduce((a, b) => a * b, 1);
    const isVariance = w.originalName.endsWith("moving_variance") || w.originalName.endsWith("gamma");
    return tf.tensor(Float32Array.from({ length: size }, () => (isVariance ? 0.5 + rand() : (rand() - 0.5) * 0.6)), shape);
  });
  model.setWeights(values);
  tf.dispose(values);
}

/** A head as trainHead makes it (dense → dropout → dense sigmoid) with seeded weights. */
export function buildSeededHead(featureDim: number, seed: number): tf.Sequential {
  const head = tf.sequential({
    layers: [
      tf.layers.dense({ units: 6, activation: "relu", inputShape: [featureDim] }),
      tf.layers.dropout({ rate: 0.3 }),
      tf.layers.dense({ units: 1, activation: "sigmoid" }),
    ],
  });
  setSeededWeights(head, seed);
  return head;
}

/** Writes `count` seeded random JPEGs of different sizes and aspect ratios into `dir`. */
export async function writeRandomJpegs(dir: string, count: number, seed: number): Promise<string[]> {
  const rand = createRandom(seed);
  const files: string[] = [];
  for (let i = 0; i < count; i++) {
    const [width, height] = [40 + 9 * i, 36 + 5 * i];
    const px = Buffer.from(Uint8Array.from({ length: width * height * 3 }, () => Math.floor(rand() * 256)));
    const file = path.join(dir, `lesion_${i}.jpg`);
    await sharp(px, { raw: { width, height, channels: 3 } }).jpeg().toFile(file);
    files.push(file);
  }
  fs.writeFileSync(path.join(dir, "broken.jpg"), "not a jpeg");
  return files;
}

/** Head output for features [rows, featureDim] computed by the head model itself (independent of any triage model). */
export function predictHead(head: tf.LayersModel, features: Float32Array, rows: number): Float32Array {
  return tf.tidy(() => (head.predict(tf.tensor2d(features, [rows, features.length / rows])) as tf.Tensor).dataSync() as Float32Array);
}
