import os from "node:os";
import { createRequire } from "node:module";
import path from "node:path";
import * as tf from "@tensorflow/tfjs";
import { UnknownNameError, MelanomaLabError } from "../util/errors.js";
import { findProjectRoot } from "../util/paths.js";
import { registerWasmGradientKernels } from "./wasmGradKernels.js";
import {
  decideAutoWasmThreads,
  describeWasmThreads,
  enableWasmThreads,
  getWasmThreadsStatus,
  measureIdleCores,
  noteAutoWasmThreadsDecision,
  parseWasmThreadCount,
  WASM_THREADS_ENV,
} from "./wasmThreads.js";

/** Compute backends in the order they are tried: fastest first. */
export const BACKEND_NAMES = ["tfjs-node-gpu", "tfjs-node", "wasm", "cpu"] as const;

/** One of {@link BACKEND_NAMES}. */
export type BackendName = (typeof BACKEND_NAMES)[number];

/** What {@link selectBackend} chose, and why each faster backend was passed over. */
export interface BackendSelection {
  /** Our name for what ran, e.g. "wasm". */
  name: BackendName;
  /** The name tfjs registered it under ("tensorflow", "wasm" or "cpu"). */
  tfBackendName: string;
  /** One entry per backend tried before the winner: why it did not initialise. */
  skipped: { name: BackendName; reason: string }[];
  /** Extra facts (SIMD, threads, GPU) worth printing. */
  details: string;
  /** Whether the choice was forced by an option or `MELANOMA_LAB_BACKEND`. */
  forced: boolean;
}

/** Thrown when a forced backend cannot start. */
export class BackendUnavailableError extends MelanomaLabError {}

let current: BackendSelection | undefined;

/**
 * Parses a backend name (case-insensitive); throws {@link UnknownNameError} listing the valid
 * names otherwise.
 *
 * @example parseBackendName("WASM") // "wasm"
 */
export function parseBackendName(name: string): BackendName {
  const lower = name.trim().toLowerCase();
  const found = BACKEND_NAMES.find((n) => n === lower);
  if (!found) throw new UnknownNameError("backend", name, BACKEND_NAMES);
  return found;
}

function requireFromProject(): NodeRequire {
  return createRequire(path.join(findProjectRoot(), "package.json"));
}

async function tryTfjsNode(pkg: "@tensorflow/tfjs-node-gpu" | "@tensorflow/tfjs-node"): Promise<string> {
  const req = requireFromProject();
  let resolved: string;
  try {
    resolved = req.resolve(pkg);
  } catch {
    throw new Error(`${pkg} is not installed`);
  }
  req(pkg);
  // danfojs-node's override aliases @tensorflow/tfjs-node to plain @tensorflow/tfjs, so a
  // successful require proves nothing: only a registered "tensorflow" backend does.
  if (tf.findBackend("tensorflow") === null) {
    throw new Error(
      `${pkg} resolved to ${resolved} but registered no native "tensorflow" backend (an alias of @tensorflow/tfjs, not the native package)`,
    );
  }
  if (!(await tf.setBackend("tensorflow"))) throw new Error(`${pkg}: tf.setBackend("tensorflow") failed`);
  if (pkg === "@tensorflow/tfjs-node-gpu") {
    // tfjs-node-gpu falls back to the CPU silently when CUDA is missing; check a GPU is visible.
    const native = (tf.backend() as unknown as { binding?: { isUsingGpuDevice?: () => boolean } }).binding;
    if (native?.isUsingGpuDevice && !native.isUsingGpuDevice()) {
      throw new Error("tfjs-node-gpu loaded but TensorFlow sees no CUDA GPU (needs CUDA 11.2 + cuDNN 8.1)");
    }
    return "CUDA";
  }
  return "native TensorFlow on CPU";
}

async function tryWasm(): Promise<string> {
  const req = requireFromProject();
  const wasm = req("@tensorflow/tfjs-backend-wasm") as typeof import("@tensorflow/tfjs-backend-wasm");
  // wasm lacks the convolution gradient kernels (fit would throw and break the wasm heap) and has
  // slow ones for Conv2DBackpropInput/Tile; supply ours before anything computes a gradient.
  registerWasmGradientKernels();
  const distDir = path.dirname(req.resolve("@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm.wasm"));
  wasm.setWasmPaths(distDir + path.sep);
  // Opt-in ("auto" in the demo and experiment CLIs): tfjs keeps wasm single-threaded under Node; see enableWasmThreads.
  const setting = process.env[WASM_THREADS_ENV];
  const parsed = parseWasmThreadCount(setting);
  let threadCount = parsed === "auto" ? undefined : parsed;
  if (parsed === "auto" && tf.engine().registry["wasm"] === undefined) {
    const auto = decideAutoWasmThreads(os.cpus().length, await measureIdleCores());
    noteAutoWasmThreadsDecision(auto.reason);
    threadCount = auto.threadCount;
  }
  if (threadCount !== undefined && tf.engine().registry["wasm"] === undefined) enableWasmThreads({ threadCount });
  if (!(await tf.setBackend("wasm"))) throw new Error(getWasmThreadsStatus().error ?? 'tf.setBackend("wasm") failed');
  const simd = await tf.env().getAsync("WASM_HAS_SIMD_SUPPORT");
  return `SIMD ${simd ? "on" : "off"}, ${describeWasmThreads()}`;
}

async function tryCpu(): Promise<string> {
  if (!(await tf.setBackend("cpu"))) throw new Error('tf.setBackend("cpu") failed');
  return "pure JavaScript, slowest: install tfjs-node or use wasm";
}

async function tryBackend(name: BackendName): Promise<string> {
  switch (name) {
    case "tfjs-node-gpu":
      return tryTfjsNode("@tensorflow/tfjs-node-gpu");
    case "tfjs-node":
      return tryTfjsNode("@tensorflow/tfjs-node");
    case "wasm":
      return tryWasm();
    case "cpu":
      return tryCpu();
  }
}

/**
 * Selects the compute backend: the first of tfjs-node-gpu → tfjs-node → wasm → cpu that
 * initialises, unless `preferred` or the env var `MELANOMA_LAB_BACKEND` forces one (then a
 * failure throws {@link BackendUnavailableError} instead of falling back). Idempotent: later
 * calls return the first selection unless `force` names a different backend. On wasm, the env
 * var `MELANOMA_LAB_WASM_THREADS=<n>` ("all", or "auto": all when the machine is idle) runs XNNPACK on n threads (see
 * {@link enableWasmThreads}); it must be set before the first wasm initialisation.
 *
 * @example
 * const sel = await selectBackend();
 * console.log(describeBackend(sel)); // "backend: wasm (SIMD on, …); skipped tfjs-node-gpu: not installed, …"
 */
export async function selectBackend(options: { preferred?: string } = {}): Promise<BackendSelection> {
  const requested = options.preferred ?? process.env.MELANOMA_LAB_BACKEND;
  const forcedName = requested ? parseBackendName(requested) : undefined;
  // Validated here so a typo throws instead of skipping wasm for the 20x slower cpu backend.
  parseWasmThreadCount(process.env[WASM_THREADS_ENV]);
  if (current && (!forcedName || forcedName === current.name)) return current;
  await tf.ready();
  const skipped: { name: BackendName; reason: string }[] = [];
  const order = forcedName ? [forcedName] : BACKEND_NAMES;
  for (const name of order) {
    try {
      const details = await tryBackend(name);
      await tf.ready();
      current = { name, tfBackendName: tf.getBackend(), skipped, details, forced: forcedName !== undefined };
      return current;
    } catch (err) {
      const reason = err instanceof Error ? err.message : String((err as { message?: string })?.message ?? err);
      if (forcedName) {
        throw new BackendUnavailableError(
          `backend ${JSON.stringify(forcedName)} was requested (option or MELANOMA_LAB_BACKEND) but did not start: ${reason}; valid names: ${BACKEND_NAMES.join(", ")}`,
        );
      }
      skipped.push({ name, reason: reason.split("\n")[0] });
    }
  }
  throw new BackendUnavailableError(
    `no tfjs backend initialised: ${skipped.map((s) => `${s.name}: ${s.reason}`).join("; ")}`,
  );
}

/**
 * One line that says which backend ran and why the faster ones did not.
 *
 * @example describeBackend(await selectBackend())
 */
export function describeBackend(selection: BackendSelection): string {
  const head = `backend: ${selection.name} (${selection.details})${selection.forced ? " [forced]" : ""}`;
  if (selection.skipped.length === 0) return head;
  return `${head}; skipped ${selection.skipped.map((s) => `${s.name}: ${s.reason}`).join("; ")}`;
}
