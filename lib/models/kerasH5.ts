import { createRequire } from "node:module";
import fs from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";
import * as tf from "@tensorflow/tfjs";
import { MelanomaLabError } from "../util/errors.js";
import { findProjectRoot } from "../util/paths.js";

/** Thrown when a file is not a readable Keras HDF5 weights file (missing, not HDF5, no `layer_names`). */
export class KerasH5FormatError extends MelanomaLabError {}

/** Thrown when weights in a Keras HDF5 file do not fit a model (shape, count, missing layer). */
export class KerasH5MismatchError extends MelanomaLabError {}

/** One weight array of a Keras layer, as stored (Keras layout, e.g. conv kernels [kh, kw, in, out]). */
export interface KerasH5Weight {
  /** Stored weight name, e.g. "block1_conv1/kernel:0" (old files: "block1_conv1_W_1:0"). */
  name: string;
  shape: number[];
  values: Float32Array;
}

/** One layer group of a Keras HDF5 file; weights in the order Keras saved them (kernel, bias, …). */
export interface KerasH5Layer {
  name: string;
  weights: KerasH5Weight[];
}

/** Contents of a Keras HDF5 weights file: layers in model order (including weightless ones). */
export interface KerasH5Weights {
  /** Absolute path of the file read. */
  file: string;
  /** Root attribute `keras_version`, when present. */
  kerasVersion?: string;
  /** Root attribute `backend`, when present. */
  backend?: string;
  /** "weights" for `save_weights` files, "model" when read from a full-model file's `model_weights` group. */
  layout: "weights" | "model";
  layers: KerasH5Layer[];
}

/** Outcome of {@link loadKerasH5IntoModel}: which layers got weights and which were left alone. */
export interface KerasH5LoadReport {
  /** Model layers whose weights were set from the file, in model order. */
  loadedLayers: string[];
  /** File layers holding weights that no model layer is named after (non-strict mode only). */
  unmatchedFileLayers: string[];
  /** Model layers with weights that the file does not hold (non-strict mode only). */
  unmatchedModelLayers: string[];
}

// The slice of h5wasm's API used here, typed locally so lib/ type-checks as CommonJS too
// (h5wasm is ESM-only and its types resolve only under NodeNext resolution).
interface H5Attribute {
  value: unknown;
}
interface H5Object {
  attrs: Record<string, H5Attribute>;
}
interface H5Group extends H5Object {
  keys(): string[];
  get(name: string): H5Object | null;
}
interface H5Dataset extends H5Object {
  shape: number[] | null;
  value: unknown;
}
interface H5File extends H5Group {
  file_id: bigint;
  close(): unknown;
}
interface H5WasmModule {
  ready: Promise<unknown>;
  File: new (filename: string, mode?: string) => H5File;
  Group: abstract new (...args: never[]) => H5Group;
  Dataset: abstract new (...args: never[]) => H5Dataset;
}

let h5wasmPromise: Promise<H5WasmModule> | undefined;

function h5wasmNodeEntry(): string {
  const req = createRequire(path.join(findProjectRoot(), "package.json"));
  // The package's "exports" only offer an `import` condition, so require.resolve cannot find
  // it; the node build's file is located through the package.json on the search path instead.
  for (const dir of req.resolve.paths("h5wasm") ?? []) {
    const pkgFile = path.join(dir, "h5wasm", "package.json");
    if (!fs.existsSync(pkgFile)) continue;
    const pkg = JSON.parse(fs.readFileSync(pkgFile, "utf8")) as { exports?: Record<string, { import?: string }> };
    const entry = pkg.exports?.["./node"]?.import;
    if (entry) return path.join(dir, "h5wasm", entry);
  }
  throw new KerasH5FormatError(`package h5wasm (with its "./node" build) is not installed under ${findProjectRoot()}/node_modules; expected h5wasm 0.10 from package.json`);
}

/** Loads h5wasm's Node build (host filesystem access) once and waits for its wasm to start. */
async function loadH5wasm(): Promise<H5WasmModule> {
  h5wasmPromise ??= (async () => {
    const entry = h5wasmNodeEntry();
    let mod: H5WasmModule;
    try {
      // Node ≥ 20.19 can require() an ES module without top-level await, from ESM and CommonJS
      // (tslab) callers alike.
      mod = createRequire(entry)(entry) as H5WasmModule;
    } catch (err) {
      if ((err as { code?: string }).code !== "ERR_REQUIRE_ESM") throw err;
      // Older Node: a real dynamic import, built at run time so a CommonJS compile keeps it an import().
      const importEsm = new Function("url", "return import(url)") as (url: string) => Promise<H5WasmModule>;
      mod = await importEsm(pathToFileURL(entry).href);
    }
    await mod.ready;
    return mod;
  })();
  try {
    return await h5wasmPromise;
  } catch (err) {
    h5wasmPromise = undefined;
    throw err;
  }
}

const HDF5_SIGNATURE = Buffer.from([0x89, 0x48, 0x44, 0x46, 0x0d, 0x0a, 0x1a, 0x0a]);

/** HDF5 puts its signature at byte 0, or after a user block at 512, 1024, 2048, … */
function hasHdf5Signature(file: string): boolean {
  const fd = fs.openSync(file, "r");
  try {
    const size = fs.fstatSync(fd).size;
    const buf = Buffer.alloc(8);
    for (let offset = 0; offset + 8 <= size && offset <= 1 << 20; offset = offset === 0 ? 512 : offset * 2) {
      fs.readSync(fd, buf, 0, 8, offset);
      if (buf.equals(HDF5_SIGNATURE)) return true;
    }
    return false;
  } finally {
    fs.closeSync(fd);
  }
}

/** A string-list attribute as Keras writes it: whole, or split into name0, name1, … when over 64 KB. */
function readStringListAttr(obj: H5Object, name: string): string[] | undefined {
  const attrs = obj.attrs;
  if (name in attrs) return toStringList(attrs[name].value);
  if (!(`${name}0` in attrs)) return undefined;
  const out: string[] = [];
  for (let i = 0; `${name}${i}` in attrs; i++) out.push(...toStringList(attrs[`${name}${i}`].value));
  return out;
}

function toStringList(value: unknown): string[] {
  if (value === null || value === undefined) return [];
  if (typeof value === "string") return [value];
  if (value instanceof Uint8Array) return [Buffer.from(value).toString("utf8")];
  // An empty list is saved by numpy as an empty float64 array.
  if (ArrayBuffer.isView(value)) return [];
  if (Array.isArray(value)) return value.map((v) => (v instanceof Uint8Array ? Buffer.from(v).toString("utf8") : String(v)));
  return [String(value)];
}

function readStringAttr(obj: H5Object, name: string): string | undefined {
  if (!(name in obj.attrs)) return undefined;
  return toStringList(obj.attrs[name].value)[0];
}

function toFloat32(value: unknown, where: string): Float32Array {
  if (value instanceof Float32Array) return value;
  // float64 (and integer) datasets are converted; BigInt arrays are not weights.
  if (ArrayBuffer.isView(value) && !(value instanceof DataView) && !(value instanceof BigInt64Array) && !(value instanceof BigUint64Array)) {
    return Float32Array.from(value as unknown as ArrayLike<number>);
  }
  if (typeof value === "number") return Float32Array.of(value);
  const kind = value === null ? "null" : ArrayBuffer.isView(value) ? value.constructor.name : typeof value;
  throw new KerasH5FormatError(`${where}: expected a numeric dataset (float32/float64), got ${kind}`);
}

/**
 * Reads every layer's weights from a Keras 2 HDF5 file (`model.save_weights("x.h5")`, the
 * keras-applications `*_notop.h5` downloads, or a full `model.save("x.h5")` whose weights sit
 * under `model_weights`). Layers come in the order of the root attribute `layer_names`; each
 * layer's weights in the order of its `weight_names` attribute; values are converted to float32.
 * Throws {@link KerasH5FormatError} naming the file when it is missing, not HDF5, or lacks the
 * Keras attributes (a Keras 3 `.weights.h5` file, for instance).
 *
 * @example
 * const w = await readKerasH5Weights("vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5");
 * w.layers[1] // { name: "block1_conv1", weights: [{ name: "block1_conv1_W_1:0", shape: [3, 3, 3, 64], values }, …] }
 */
export async function readKerasH5Weights(file: string): Promise<KerasH5Weights> {
  const abs = path.resolve(file);
  if (!fs.existsSync(abs)) throw new KerasH5FormatError(`${abs}: no such file (expected a Keras HDF5 weights file)`);
  if (!fs.statSync(abs).isFile()) throw new KerasH5FormatError(`${abs}: is a folder, expected a Keras HDF5 weights file`);
  if (!hasHdf5Signature(abs)) throw new KerasH5FormatError(`${abs}: not an HDF5 file (no HDF5 signature; expected a Keras .h5 weights file)`);
  const h5 = await loadH5wasm();
  const h5file = new h5.File(abs, "r");
  if (h5file.file_id < 0n) throw new KerasH5FormatError(`${abs}: HDF5 could not open the file (damaged or truncated?)`);
  try {
    let root: H5Group = h5file;
    let layout: KerasH5Weights["layout"] = "weights";
    if (readStringListAttr(h5file, "layer_names") === undefined && h5file.keys().includes("model_weights")) {
      const nested = h5file.get("model_weights");
      if (nested instanceof h5.Group) {
        root = nested;
        layout = "model";
      }
    }
    const layerNames = readStringListAttr(root, "layer_names");
    if (layerNames === undefined) {
      throw new KerasH5FormatError(
        `${abs}: no "layer_names" attribute at "/" or "/model_weights" (found groups: ${h5file.keys().join(", ") || "none"}); expected a Keras 2 HDF5 weights file (Keras 3 ".weights.h5" files use another layout)`,
      );
    }
    const layers: KerasH5Layer[] = [];
    for (const layerName of layerNames) {
      const where = `${abs}: layer "${layerName}"`;
      const group = root.get(layerName);
      if (!(group instanceof h5.Group)) throw new KerasH5FormatError(`${where}: listed in layer_names but no group of that name exists`);
      const weightNames = readStringListAttr(group, "weight_names");
      if (weightNames === undefined) throw new KerasH5FormatError(`${where}: group has no "weight_names" attribute`);
      const weights: KerasH5Weight[] = [];
      for (const weightName of weightNames) {
        const dataset = group.get(weightName);
        if (!(dataset instanceof h5.Dataset)) throw new KerasH5FormatError(`${where}: weight "${weightName}" is listed in weight_names but no dataset of that name exists`);
        const shape = dataset.shape ?? [];
        weights.push({ name: weightName, shape, values: toFloat32(dataset.value, `${where}, weight "${weightName}"`) });
      }
      layers.push({ name: layerName, weights });
    }
    return { file: abs, kerasVersion: readStringAttr(h5file, "keras_version"), backend: readStringAttr(h5file, "backend"), layout, layers };
  } finally {
    h5file.close();
  }
}

function formatShape(shape: readonly (number | null)[]): string {
  return `[${shape.join(", ")}]`;
}

/**
 * Sets the weights of `model`'s layers from a Keras HDF5 file (or weights already read by
 * {@link readKerasH5Weights}), matching layers by name and weights by order, as Keras's
 * `load_weights(by_name=True)` does. Every shape is checked before anything is set, so a
 * mismatch leaves the model untouched; the error names the layer, the weight, the shape in the
 * file and the shape the model expects. With `strict` (default true) a model layer with weights
 * that the file lacks, or a file layer with weights that the model lacks, is an error listing
 * them; otherwise they are returned in the report. Creates no lasting tensors.
 *
 * @example
 * const model = buildVgg16({ includeTop: false });
 * const report = await loadKerasH5IntoModel(model, "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5");
 * report.loadedLayers.length // 13
 */
export async function loadKerasH5IntoModel(
  model: tf.LayersModel,
  source: string | KerasH5Weights,
  options: { strict?: boolean } = {},
): Promise<KerasH5LoadReport> {
  const strict = options.strict ?? true;
  const weights = typeof source === "string" ? await readKerasH5Weights(source) : source;
  const fileLayers = new Map(weights.layers.filter((l) => l.weights.length > 0).map((l) => [l.name, l]));
  const modelLayers = model.layers.filter((l) => l.weights.length > 0);
  const modelNames = new Set(modelLayers.map((l) => l.name));
  const unmatchedModelLayers = modelLayers.filter((l) => !fileLayers.has(l.name)).map((l) => l.name);
  const unmatchedFileLayers = [...fileLayers.keys()].filter((n) => !modelNames.has(n));
  if (strict && (unmatchedModelLayers.length > 0 || unmatchedFileLayers.length > 0)) {
    const parts: string[] = [];
    if (unmatchedModelLayers.length > 0) parts.push(`model layers with no weights in the file: ${unmatchedModelLayers.join(", ")}`);
    if (unmatchedFileLayers.length > 0) parts.push(`file layers with no model layer of that name: ${unmatchedFileLayers.join(", ")}`);
    throw new KerasH5MismatchError(
      `${weights.file}: layers do not match model "${model.name}" (${parts.join("; ")}); file layers with weights: ${[...fileLayers.keys()].join(", ") || "none"} (pass { strict: false } to load the matching ones)`,
    );
  }
  const plan: { layer: tf.layers.Layer; stored: KerasH5Layer }[] = [];
  for (const layer of modelLayers) {
    const stored = fileLayers.get(layer.name);
    if (!stored) continue;
    const expected = layer.weights;
    if (stored.weights.length !== expected.length) {
      throw new KerasH5MismatchError(
        `${weights.file}: layer "${layer.name}" holds ${stored.weights.length} weights (${stored.weights.map((w) => `${w.name} ${formatShape(w.shape)}`).join(", ")}), model expects ${expected.length} (${expected.map((w) => `${w.originalName} ${formatShape(w.shape)}`).join(", ")})`,
      );
    }
    stored.weights.forEach((w, i) => {
      const want = expected[i].shape;
      if (w.shape.length !== want.length || w.shape.some((d, j) => d !== want[j])) {
        throw new KerasH5MismatchError(
          `${weights.file}: layer "${layer.name}", weight ${i} "${w.name}": shape ${formatShape(w.shape)} in the file, model expects ${formatShape(want)} (${expected[i].originalName})`,
        );
      }
    });
    plan.push({ layer, stored });
  }
  for (const { layer, stored } of plan) {
    const tensors = stored.weights.map((w) => tf.tensor(w.values, w.shape, "float32"));
    try {
      layer.setWeights(tensors);
    } finally {
      tf.dispose(tensors);
    }
  }
  return { loadedLayers: plan.map((p) => p.layer.name), unmatchedFileLayers, unmatchedModelLayers };
}
