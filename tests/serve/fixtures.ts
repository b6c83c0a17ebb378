import net from "node:net";
import { Writable } from "node:stream";
import sharp from "sharp";
import * as tf from "@tensorflow/tfjs";
import { exportTriageModel, type TriageModelMetadata } from "../../lib/export/triageModel.js";
import { exportTriageModelOnnx } from "../../lib/export/onnxExport.js";
import { makeFixtureMetadata } from "../helpers/triageMetadata.js";

/**
 * Exports a model whose output is hand-computable: sigmoid(2·r − g + 0.5·b − 0.3) of the mean
 * channels after x/255, at `sizePx` (center-crop), with model.onnx too when `onnx`.
 */
export async function exportMeanColourModel(
  dir: string,
  options: { sizePx?: number; onnx?: boolean; thresholdProb?: number } = {},
): Promise<TriageModelMetadata> {
  const sizePx = options.sizePx ?? 8;
  const input = tf.input({ shape: [sizePx, sizePx, 3] });
  const pooled = tf.layers.globalAveragePooling2d({}).apply(input) as tf.SymbolicTensor;
  const dense = tf.layers.dense({ units: 1, activation: "sigmoid" });
  const model = tf.model({ inputs: input, outputs: dense.apply(pooled) as tf.SymbolicTensor });
  dense.setWeights([tf.tensor2d([[2], [-1], [0.5]]), tf.tensor1d([-0.3])]);
  const metadata = makeFixtureMetadata({
    inputSizePx: sizePx,
    resizePolicy: "center-crop",
    thresholdProb: options.thresholdProb ?? 0.6,
    validation: { description: "validation split", images: 10, metrics: { rocAuc: 0.8 } },
    backboneName: "mean_colour",
    featureDim: 3,
    notes: { dataDir: "/data/secret/ham", dataset: "../shared/data/ham10000-dev", seed: 7, split: "lesion-grouped" },
  });
  await exportTriageModel(dir, model, metadata);
  if (options.onnx) await exportTriageModelOnnx(dir, model, metadata);
  model.dispose();
  return metadata;
}

/** The probability {@link exportMeanColourModel}'s model gives a solid image of this colour. */
export function meanColourProbability(r: number, g: number, b: number): number {
  const z = 2 * (r / 255) - g / 255 + 0.5 * (b / 255) - 0.3;
  return 1 / (1 + Math.exp(-z));
}

/** A solid-colour image's bytes. */
export function solidImage(format: "png" | "jpeg", r: number, g: number, b: number, sizePx = 16): Promise<Buffer> {
  const img = sharp({ create: { width: sizePx, height: sizePx, channels: 3, background: { r, g, b } } });
  return format === "png" ? img.png().toBuffer() : img.jpeg({ quality: 100 }).toBuffer();
}

/** A writable that keeps every log line, parsed. */
export function captureLogLines(): { stream: Writable; lines: Record<string, unknown>[]; raw: () => string } {
  const chunks: string[] = [];
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      const text = chunk.toString("utf8");
      chunks.push(text);
      for (const line of text.split("\n").filter((l) => l.trim() !== "")) lines.push(JSON.parse(line));
      done();
    },
  });
  return { stream, lines, raw: () => chunks.join("") };
}

/** An HTTP response read off a raw socket. */
export interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
  elapsedMs: number;
}

function parseRawResponse(text: string, elapsedMs: number): RawResponse {
  const [head, ...rest] = text.split("\r\n\r\n");
  const [statusLine, ...headerLines] = head.split("\r\n");
  const headers: Record<string, string> = {};
  for (const l of headerLines) {
    const i = l.indexOf(":");
    headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
  }
  return { status: Number(statusLine.split(" ")[1]), headers, body: rest.join("\r\n\r\n"), elapsedMs };
}

/**
 * Sends headers declaring `declaredLength` bytes, then `chunk` bytes every `everyMs` ms until the
 * server answers or closes: a slow upload. Resolves with what the server sent.
 */
export function trickleUpload(
  port: number,
  options: { declaredLength: number; chunk: Buffer; everyMs: number; contentType?: string },
): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const socket = net.connect(port, "127.0.0.1");
    let received = "";
    let timer: NodeJS.Timeout | undefined;
    socket.on("connect", () => {
      socket.write(
        `POST /v1/triage HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: ${options.contentType ?? "image/jpeg"}\r\nContent-Length: ${options.declaredLength}\r\n\r\n`,
      );
      timer = setInterval(() => {
        if (!socket.destroyed && socket.writable) socket.write(options.chunk);
      }, options.everyMs);
    });
    socket.on("data", (d) => (received += d.toString("latin1")));
    socket.on("error", (err) => {
      clearInterval(timer);
      if (received) resolve(parseRawResponse(received, Date.now() - started));
      else reject(err);
    });
    socket.on("close", () => {
      clearInterval(timer);
      resolve(parseRawResponse(received, Date.now() - started));
    });
  });
}

/**
 * Exports a small convolutional triage model with seeded weights (conv 3×3 → relu → global
 * average pool → sigmoid unit) at `sizePx`, ImageNet-normalized: its output depends on every
 * pixel's neighbourhood, so two decoders that differ anywhere give different probabilities.
 */
export async function exportSeededConvModel(dir: string, options: { sizePx: number; onnx?: boolean }): Promise<void> {
  const random = (await import("../../lib/util/random.js")).createRandom(11);
  const input = tf.input({ shape: [options.sizePx, options.sizePx, 3] });
  const conv = tf.layers.conv2d({ filters: 6, kernelSize: 3, strides: 2, padding: "same", activation: "relu" });
  const pooled = tf.layers.globalAveragePooling2d({}).apply(conv.apply(input)) as tf.SymbolicTensor;
  const dense = tf.layers.dense({ units: 1, activation: "sigmoid" });
  const model = tf.model({ inputs: input, outputs: dense.apply(pooled) as tf.SymbolicTensor });
  conv.setWeights([
    tf.tensor4d(
      Float32Array.from({ length: 3 * 3 * 3 * 6 }, () => random() - 0.5),
      [3, 3, 3, 6],
    ),
    tf.tensor1d(Float32Array.from({ length: 6 }, () => random() * 0.2)),
  ]);
  dense.setWeights([
    tf.tensor2d(
      Float32Array.from({ length: 6 }, () => 2 * random() - 1),
      [6, 1],
    ),
    tf.tensor1d([0.1]),
  ]);
  const metadata = makeFixtureMetadata({
    inputSizePx: options.sizePx,
    preprocessing: { kind: "normalize", mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] },
    resizePolicy: "center-crop",
    backboneName: "seeded_conv",
    backboneWeightsId: "seeded/11",
    featureDim: 6,
  });
  await exportTriageModel(dir, model, metadata);
  if (options.onnx) await exportTriageModelOnnx(dir, model, metadata);
  model.dispose();
}
