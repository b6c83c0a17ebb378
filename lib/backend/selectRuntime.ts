import fs from "node:fs";
import os from "node:os";
import { MelanomaLabError, UnknownNameError } from "../util/errors.js";
import { decideAutoWasmThreads, measureIdleCores } from "./wasmThreads.js";

/** Inference runtimes for frozen-network forward passes: ONNX Runtime (onnxruntime-node) or tfjs. */
export const INFERENCE_RUNTIMES = ["onnx", "tfjs"] as const;

/** One of {@link INFERENCE_RUNTIMES}. */
export type InferenceRuntimeName = (typeof INFERENCE_RUNTIMES)[number];

/** Environment variable that forces the runtime: "onnx" or "tfjs" (unset or "auto": choose). */
export const RUNTIME_ENV = "MELANOMA_LAB_RUNTIME";

/** Environment variable giving ONNX Runtime's intra-op thread count: "<n>", "all" or "auto" (default). */
export const ORT_THREADS_ENV = "MELANOMA_LAB_ORT_THREADS";

/** Thrown when ONNX Runtime is forced but cannot run: the package does not load or the model has no ONNX file. */
export class RuntimeUnavailableError extends MelanomaLabError {}

/** Thrown for a `MELANOMA_LAB_ORT_THREADS` value that is not a thread count. */
export class OrtThreadsError extends MelanomaLabError {}

/** What {@link selectInferenceRuntime} chose for one model, and why. */
export interface InferenceRuntimeSelection {
  runtime: InferenceRuntimeName;
  /** Why, e.g. "onnxruntime-node 1.30.0 loaded and the model has an ONNX file". */
  reason: string;
  /** Whether an option or `MELANOMA_LAB_RUNTIME` forced the choice. */
  forced: boolean;
  /** ONNX Runtime intra-op threads (runtime "onnx" only). */
  ortThreads?: number;
  /** Why that many threads ("MELANOMA_LAB_ORT_THREADS=2", "auto: 1.9 of 2 cores idle", …). */
  ortThreadsReason?: string;
}

/** The part of the onnxruntime-node module this library uses. */
export type OnnxRuntimeModule = typeof import("onnxruntime-node");

type OrtLoad = { ort: OnnxRuntimeModule; version: string } | { error: string };
let ortLoad: Promise<OrtLoad> | undefined;
let autoThreads: Promise<{ threadCount: number; reason: string }> | undefined;

/**
 * Parses a runtime name (case-insensitive). Undefined, "" and "auto" mean "choose"
 * (undefined); anything else but "onnx"/"tfjs" throws {@link UnknownNameError} listing them.
 *
 * @example parseRuntimeName("ONNX") // "onnx"
 * @example parseRuntimeName(undefined) // undefined
 */
export function parseRuntimeName(value: string | undefined): InferenceRuntimeName | undefined {
  const lower = (value ?? "").trim().toLowerCase();
  if (lower === "" || lower === "auto") return undefined;
  const found = INFERENCE_RUNTIMES.find((n) => n === lower);
  if (!found) throw new UnknownNameError(`runtime (${RUNTIME_ENV})`, value!, [...INFERENCE_RUNTIMES, "auto"]);
  return found;
}

/**
 * Parses an ONNX Runtime thread setting such as `MELANOMA_LAB_ORT_THREADS`: undefined/""/"auto"
 * → "auto" (every core when the machine is idle, else 1, as the wasm "auto" setting decides),
 * "all" → the logical cores, "<n>" (1…logical cores × 4) → n. Anything else throws
 * {@link OrtThreadsError}.
 *
 * @example parseOrtThreads("2") // 2
 * @example parseOrtThreads("all", 16) // 16
 */
export function parseOrtThreads(value: string | undefined, logicalCores: number = os.cpus().length): number | "auto" {
  const trimmed = (value ?? "").trim().toLowerCase();
  if (trimmed === "" || trimmed === "auto") return "auto";
  if (trimmed === "all") return Math.max(1, logicalCores);
  const n = Number(trimmed);
  const most = Math.max(1, logicalCores) * 4;
  if (!Number.isInteger(n) || n < 1 || n > most) {
    throw new OrtThreadsError(
      `${ORT_THREADS_ENV}=${JSON.stringify(value)}: expected an integer 1..${most} (4 × the ${logicalCores} logical cores), "all" or "auto"`,
    );
  }
  return n;
}

/**
 * Imports onnxruntime-node once (a dynamic import, so a missing or broken install only matters
 * when ONNX Runtime is wanted). Resolves to the module and its version, or to why it failed.
 *
 * @example const loaded = await loadOnnxRuntime(); if ("ort" in loaded) loaded.ort.InferenceSession
 */
export function loadOnnxRuntime(): Promise<OrtLoad> {
  ortLoad ??= import("onnxruntime-node").then(
    (mod) => {
      const ort = ((mod as { default?: OnnxRuntimeModule }).default ?? mod) as OnnxRuntimeModule;
      if (typeof ort.InferenceSession?.create !== "function") {
        return { error: "onnxruntime-node loaded but has no InferenceSession.create" };
      }
      return { ort, version: ort.env?.versions?.node ?? "unknown version" };
    },
    (err: unknown) => ({
      error: `onnxruntime-node did not load (${(err instanceof Error ? err.message : String(err)).split("\n")[0]})`,
    }),
  );
  return ortLoad;
}

async function resolveOrtThreads(override: number | undefined): Promise<{ threadCount: number; reason: string }> {
  if (override !== undefined) {
    if (!Number.isInteger(override) || override < 1) {
      throw new OrtThreadsError(`ortThreads: received ${override}, expected a positive integer`);
    }
    return { threadCount: override, reason: `option ortThreads=${override}` };
  }
  const setting = process.env[ORT_THREADS_ENV];
  const parsed = parseOrtThreads(setting);
  if (parsed !== "auto") return { threadCount: parsed, reason: `${ORT_THREADS_ENV}=${setting}` };
  // Decided once per process: an idle-core sample costs 200 ms and the answer should not flip mid-run.
  autoThreads ??= measureIdleCores().then((idle) => {
    const cores = os.cpus().length;
    const auto = decideAutoWasmThreads(cores, idle);
    // The wasm cap (8 pthread workers) does not apply to ONNX Runtime's own thread pool.
    return { threadCount: auto.threadCount === undefined ? 1 : cores, reason: auto.reason };
  });
  return autoThreads;
}

/**
 * Chooses the runtime for one frozen model's forward passes: "onnx" when onnxruntime-node loads
 * and the model has an ONNX file on disk, else "tfjs". `preferred` (or `MELANOMA_LAB_RUNTIME`)
 * forces either: "onnx" forced but unavailable throws {@link RuntimeUnavailableError} naming
 * what is missing (the package or the file); an unknown name throws {@link UnknownNameError}.
 * On "onnx" it also fixes the intra-op threads: `ortThreads`, else `MELANOMA_LAB_ORT_THREADS`,
 * else "auto" (all cores when idle, else 1). Training always stays in tfjs.
 *
 * @example
 * const sel = await selectInferenceRuntime({ modelName: "mobilenet_v2_imagenet", onnxPath: backbone.onnx?.path });
 * console.log(describeInferenceRuntime(sel)); // "runtime: onnx (onnxruntime-node 1.30.0 …; 2 threads: auto: 1.9 of 2 cores idle)"
 */
export async function selectInferenceRuntime(options: {
  modelName: string;
  onnxPath?: string;
  preferred?: string;
  ortThreads?: number;
}): Promise<InferenceRuntimeSelection> {
  const fromOption = options.preferred !== undefined;
  const requested = parseRuntimeName(fromOption ? options.preferred : process.env[RUNTIME_ENV]);
  const source = fromOption ? `option runtime="${requested}"` : `${RUNTIME_ENV}=${requested}`;
  if (requested === "tfjs") return { runtime: "tfjs", reason: `forced by ${source}`, forced: true };

  // Without an ONNX file there is nothing for ONNX Runtime to run: do not load it at all.
  if (!options.onnxPath && requested !== "onnx") {
    return {
      runtime: "tfjs",
      reason: `${options.modelName} has no ONNX file (Backbone.onnx is not set)`,
      forced: false,
    };
  }
  const missing: string[] = [];
  if (!options.onnxPath) missing.push(`${options.modelName} has no ONNX file (Backbone.onnx is not set)`);
  else if (!fs.existsSync(options.onnxPath))
    missing.push(`${options.modelName}'s ONNX file ${options.onnxPath} does not exist`);
  const loaded = await loadOnnxRuntime();
  if ("error" in loaded) missing.push(loaded.error);
  if (missing.length > 0 || "error" in loaded) {
    if (requested === "onnx") {
      throw new RuntimeUnavailableError(
        `runtime "onnx" was forced by ${source} but cannot run: ${missing.join("; ")}; use ${RUNTIME_ENV}=tfjs or unset it to fall back`,
      );
    }
    return { runtime: "tfjs", reason: missing.join("; "), forced: false };
  }
  const threads = await resolveOrtThreads(options.ortThreads);
  return {
    runtime: "onnx",
    reason:
      requested === "onnx"
        ? `forced by ${source}, onnxruntime-node ${loaded.version}`
        : `onnxruntime-node ${loaded.version} loaded and ${options.modelName} has an ONNX file`,
    forced: requested === "onnx",
    ortThreads: threads.threadCount,
    ortThreadsReason: threads.reason,
  };
}

/**
 * One line that says which runtime ran and why (compare describeBackend).
 *
 * @example describeInferenceRuntime(sel) // "runtime: tfjs (mobilenet_v2 has no ONNX file (Backbone.onnx is not set))"
 */
export function describeInferenceRuntime(selection: InferenceRuntimeSelection): string {
  const threads =
    selection.runtime === "onnx"
      ? `; ${selection.ortThreads} intra-op thread${selection.ortThreads === 1 ? "" : "s"} (${selection.ortThreadsReason})`
      : "";
  return `runtime: ${selection.runtime} (${selection.reason}${threads})${selection.forced ? " [forced]" : ""}`;
}
