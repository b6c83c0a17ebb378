import crypto from "node:crypto";
import fs from "node:fs";
import type { InferenceSession } from "onnxruntime-node";
import { loadOnnxRuntime, RuntimeUnavailableError } from "../backend/selectRuntime.js";
import { MelanomaLabError } from "../util/errors.js";
import { PixelShapeError, preprocessToFloat32 } from "./preprocess.js";
import type { Backbone, BackboneOnnxFile } from "./types.js";

/** Thrown when a backbone's ONNX file does not match its description (hash, input/output names, output shape). */
export class OnnxBackboneError extends MelanomaLabError {}

// One session per file description and thread count: creating one parses and optimises the graph (~0.1–1 s).
const sessions = new Map<string, Promise<InferenceSession>>();

async function sha256OfFile(file: string): Promise<string> {
  return crypto
    .createHash("sha256")
    .update(await fs.promises.readFile(file))
    .digest("hex");
}

async function createSession(file: BackboneOnnxFile, intraOpThreads: number): Promise<InferenceSession> {
  const loaded = await loadOnnxRuntime();
  if ("error" in loaded) throw new RuntimeUnavailableError(`cannot run ${file.path}: ${loaded.error}`);
  // Feature-cache entries are keyed by the backbone's weightsId, so the file must be the one it names.
  const actual = await sha256OfFile(file.path);
  if (actual !== file.sha256.toLowerCase()) {
    throw new OnnxBackboneError(`${file.path}: sha256 is ${actual}, expected ${file.sha256} (Backbone.onnx.sha256)`);
  }
  const session = await loaded.ort.InferenceSession.create(file.path, {
    graphOptimizationLevel: "all",
    intraOpNumThreads: intraOpThreads,
    interOpNumThreads: 1,
    executionMode: "sequential",
  });
  if (!session.inputNames.includes(file.inputName)) {
    await session.release();
    throw new OnnxBackboneError(
      `${file.path}: no input ${JSON.stringify(file.inputName)}; the model's inputs are ${JSON.stringify(session.inputNames)}`,
    );
  }
  if (!session.outputNames.includes(file.outputName)) {
    await session.release();
    throw new OnnxBackboneError(
      `${file.path}: no output ${JSON.stringify(file.outputName)}; the model's outputs are ${JSON.stringify(session.outputNames)}`,
    );
  }
  return session;
}

/**
 * The ONNX Runtime session for `file` with `intraOpThreads` threads, created once per process
 * (graph optimisations "all"; the file's sha256, input and output names checked) and shared by
 * later calls. Throws {@link OnnxBackboneError} when the file does not match `file`.
 *
 * @example const session = await getOnnxSession(backbone.onnx!, 2);
 */
export function getOnnxSession(file: BackboneOnnxFile, intraOpThreads: number): Promise<InferenceSession> {
  // The whole description is the key: a session checked against one sha256 or output name says nothing about another.
  const key = JSON.stringify([file.path, file.sha256, file.inputName, file.outputName, intraOpThreads]);
  let session = sessions.get(key);
  if (!session) {
    session = createSession(file, intraOpThreads);
    // A failed creation is not cached, so a fixed file can be retried.
    session.catch(() => sessions.delete(key));
    sessions.set(key, session);
  }
  return session;
}

/**
 * Releases every cached ONNX Runtime session (their native memory); later calls create new ones.
 *
 * @example await releaseOnnxSessions();
 */
export async function releaseOnnxSessions(): Promise<void> {
  const all = [...sessions.values()];
  sessions.clear();
  await Promise.all(all.map(async (s) => (await s.catch(() => undefined))?.release()));
}

/**
 * Reorders a batch of images from [count, sizePx, sizePx, 3] (HWC per image) to
 * [count, 3, sizePx, sizePx] (NCHW, the ONNX model zoo's layout).
 *
 * @example hwcToNchw(Float32Array.from([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]), 1, 2) // [1, 4, 7, 10, 2, 5, 8, 11, 3, 6, 9, 12]
 */
export function hwcToNchw(values: Float32Array, count: number, sizePx: number): Float32Array {
  const plane = sizePx * sizePx;
  if (values.length !== count * plane * 3) {
    throw new PixelShapeError(
      `values: received ${values.length}, expected count ${count} × ${sizePx} × ${sizePx} × 3 = ${count * plane * 3}`,
    );
  }
  const out = new Float32Array(values.length);
  for (let n = 0; n < count; n++) {
    const base = n * plane * 3;
    for (let p = 0; p < plane; p++) {
      const src = base + p * 3;
      out[base + p] = values[src];
      out[base + plane + p] = values[src + 1];
      out[base + 2 * plane + p] = values[src + 2];
    }
  }
  return out;
}

/**
 * Runs `backbone.onnx` through ONNX Runtime on `count` decoded 8-bit RGB images (HWC, back to
 * back, backbone.inputSizePx² × 3 bytes each): backbone.preprocessing, NHWC→NCHW when the file
 * wants NCHW, one forward pass, and returns the `outputName` values [count, featureDim] row-major.
 * Never touches `backbone.model`. Throws {@link OnnxBackboneError} when the output shape is not
 * [count, featureDim].
 *
 * @example const rows = await predictOnnxFeatures(backbone, rgb, 8, 2); // Float32Array(8 × 1280)
 */
export async function predictOnnxFeatures(
  backbone: Pick<Backbone, "name" | "inputSizePx" | "featureDim" | "preprocessing" | "onnx">,
  uint8Pixels: Uint8Array,
  count: number,
  intraOpThreads: number,
): Promise<Float32Array> {
  const file = backbone.onnx;
  if (!file) throw new RuntimeUnavailableError(`${backbone.name} has no ONNX file (Backbone.onnx is not set)`);
  const size = backbone.inputSizePx;
  const expected = count * size * size * 3;
  if (uint8Pixels.length !== expected) {
    throw new PixelShapeError(
      `pixels: received ${uint8Pixels.length} bytes, expected count ${count} × ${size} × ${size} × 3 = ${expected}`,
    );
  }
  const session = await getOnnxSession(file, intraOpThreads);
  const loaded = await loadOnnxRuntime();
  if ("error" in loaded) throw new RuntimeUnavailableError(loaded.error);
  const hwc = preprocessToFloat32(uint8Pixels, backbone.preprocessing);
  const input =
    file.layout === "NCHW"
      ? new loaded.ort.Tensor("float32", hwcToNchw(hwc, count, size), [count, 3, size, size])
      : new loaded.ort.Tensor("float32", hwc, [count, size, size, 3]);
  const results = await session.run({ [file.inputName]: input }, [file.outputName]);
  const output = results[file.outputName];
  try {
    const dims = output.dims;
    // A converted tfjs model (layout NHWC) may end in an activation map (fine-tuning's frozen
    // bottom): flattened row-major it is the same feature vector tfjs flattens. An NCHW model's
    // map would flatten in another order, so there only [n, featureDim] is accepted.
    const perRow = dims.slice(1).reduce((a, b) => a * b, 1);
    const shapeOk =
      dims[0] === count && perRow === backbone.featureDim && (dims.length === 2 || file.layout === "NHWC");
    if (!shapeOk || output.type !== "float32") {
      throw new OnnxBackboneError(
        `${file.path}: output ${JSON.stringify(file.outputName)} is ${output.type} [${dims.join(", ")}], expected float32 [${count}, ${backbone.featureDim}] (pooled features)`,
      );
    }
    // A copy: the tensor's buffer belongs to ONNX Runtime.
    return Float32Array.from(output.data as Float32Array);
  } finally {
    input.dispose();
    output.dispose();
  }
}
