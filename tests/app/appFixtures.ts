// Shared by the app tests and bench/app.ts's smoke use: a small exported triage model whose output
// depends on every pixel's position (a seeded 3×3 convolution, then a dense layer without pooling), and a photo-sized JPEG that needs resizing.
import path from "node:path";
import * as tf from "@tensorflow/tfjs";
import sharp from "sharp";
import { exportTriageModel, exportTriageModelOnnx } from "../../lib/index.js";
import { createRandom } from "../../lib/util/random.js";
import { makeFixtureMetadata } from "../helpers/triageMetadata.js";

/**
 * Exports a 224-px model, one 3×3 convolution then a dense layer over every position (seeded weights, ImageNet "normalize" preprocessing,
 * centre crop) into `dir`, with metadata like a real export; with `onnx: true` also model.onnx
 * (exportTriageModelOnnx, as notebook 05 writes it) and metadata.json's `onnx` entry.
 */
export async function exportSmallConvTriageModel(
  dir: string,
  seed = 7,
  options: { onnx?: boolean } = {},
): Promise<void> {
  const input = tf.input({ shape: [224, 224, 3] });
  const conv1 = tf.layers.conv2d({
    filters: 8,
    kernelSize: 3,
    strides: 2,
    activation: "relu",
    kernelInitializer: tf.initializers.glorotUniform({ seed }),
  });
  // Flatten, not pooling: a dense weight per position, so a resize that shifts or blurs pixels
  // moves the probability (a pooled model would average such errors away).
  const flat = tf.layers.flatten().apply(conv1.apply(input) as tf.SymbolicTensor) as tf.SymbolicTensor;
  const dense = tf.layers.dense({
    units: 1,
    activation: "sigmoid",
    kernelInitializer: tf.initializers.glorotUniform({ seed: seed + 1 }),
  });
  const model = tf.model({ inputs: input, outputs: dense.apply(flat) as tf.SymbolicTensor });
  const metadata = makeFixtureMetadata({
    inputSizePx: 224,
    preprocessing: { kind: "normalize", mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] },
    resizePolicy: "center-crop",
    backboneName: "small_conv_fixture",
    backboneWeightsId: `small_conv_fixture/seed-${seed}`,
    featureLayerName: "flatten",
    featureDim: 111 * 111 * 8,
  });
  await exportTriageModel(dir, model, metadata);
  if (options.onnx === true) await exportTriageModelOnnx(dir, model, metadata);
  model.dispose();
}

/**
 * Writes a `width`×`height` JPEG with texture at every scale (seeded noise, blurred blobs), as a
 * phone photo would need resizing and cropping to the model's input.
 */
export async function writeTexturedJpeg(file: string, width = 600, height = 450, seed = 3): Promise<string> {
  const random = createRandom(seed);
  const rgb = Buffer.alloc(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = (y * width + x) * 3;
      const blob = Math.exp(-((x - width * 0.45) ** 2 + (y - height * 0.55) ** 2) / (2 * (height / 5) ** 2));
      rgb[i] = Math.min(255, 200 - 120 * blob + 40 * random());
      rgb[i + 1] = Math.min(255, 160 - 110 * blob + 40 * random());
      rgb[i + 2] = Math.min(255, 140 - 100 * blob + 40 * random());
    }
  }
  await sharp(rgb, { raw: { width, height, channels: 3 } })
    .jpeg({ quality: 88 })
    .toFile(file);
  return path.resolve(file);
}
