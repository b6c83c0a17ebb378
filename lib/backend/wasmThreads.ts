import { createRequire } from "node:module";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import * as tf from "@tensorflow/tfjs";
import { MelanomaLabError } from "../util/errors.js";
import { findProjectRoot } from "../util/paths.js";

/**
 * Most threads {@link enableWasmThreads} accepts: tfjs-backend-wasm 4.22.0 pre-starts 8 pthread
 * workers and its C++ `init_with_threads_count` caps XNNPACK's pool at 8.
 */
export const WASM_THREADS_MAX = 8;

/** Environment variable read by {@link parseWasmThreadCount}: a thread count, "all", or 0/1/"off". */
export const WASM_THREADS_ENV = "MELANOMA_LAB_WASM_THREADS";

/** The tfjs-backend-wasm version whose worker source {@link enableWasmThreads} knows how to patch. */
const WASM_THREADS_TFJS_VERSION = "4.22.0";

/** Thrown when multi-threaded wasm cannot be enabled or did not start; the message says why. */
export class WasmThreadsError extends MelanomaLabError {}

/** What {@link enableWasmThreads} did. */
export interface WasmThreadsPlan {
  /** Threads XNNPACK will use (the main thread counts as one): 1 means nothing was changed. */
  threadCount: number;
  /** `os.cpus().length` of this machine. */
  logicalCores: number;
  /** "threaded": the threaded-SIMD binary will load; "single-threaded": threadCount 1, tfjs untouched. */
  mode: "threaded" | "single-threaded";
  /** True when an earlier call had already enabled the same thread count (nothing new done). */
  alreadyEnabled: boolean;
  /** Folder of the pthread worker scripts written for Node (threaded mode only; removed once the backend started, or at exit). */
  scriptDir?: string;
}

/** The state after the wasm backend initialised with threads (see {@link getWasmThreadsStatus}). */
export interface WasmThreadsStatus {
  plan?: WasmThreadsPlan;
  /** XNNPACK's thread count as reported by the initialised backend (undefined before init). */
  actualThreadCount?: number;
  /** Why threaded initialisation failed, when it did. */
  error?: string;
}

/** Subset of the Emscripten pthread bookkeeping we touch (names as in the 4.22.0 bundle). */
interface EmscriptenPThread {
  runningWorkers: { unref(): void; terminate(): unknown }[];
  unusedWorkers: { unref(): void; terminate(): unknown }[];
}

interface WasmBackendLike {
  wasm?: { tfjs?: { getThreadsCount(): number }; PThread?: EmscriptenPThread };
}

interface SharedState {
  plan?: WasmThreadsPlan;
  /** Why "auto" chose what it chose (set by {@link noteAutoWasmThreadsDecision}). */
  autoReason?: string;
  actualThreadCount?: number;
  error?: string;
}

// Kept on globalThis so that a second copy of this module (tsx can load lib/ as ESM and CJS)
// sees the first one's patch instead of wrapping the backend factory twice.
const STATE_KEY = Symbol.for("melanoma-lab.wasmThreads");

function sharedState(): SharedState {
  const holder = globalThis as unknown as Record<symbol, SharedState | undefined>;
  let state = holder[STATE_KEY];
  if (!state) {
    state = {};
    holder[STATE_KEY] = state;
  }
  return state;
}

/**
 * Cores idle over a short sample (from `os.cpus()` time counters): 0…logical cores. The caller
 * is idle while it waits, so on an otherwise idle 2-core machine this reads ≈ 2.
 *
 * @example await measureIdleCores(200) // 1.93
 */
export async function measureIdleCores(sampleMs = 200): Promise<number> {
  const totals = () =>
    os.cpus().map((c) => ({
      idle: c.times.idle,
      all: c.times.user + c.times.nice + c.times.sys + c.times.idle + c.times.irq,
    }));
  const before = totals();
  await new Promise((resolve) => setTimeout(resolve, sampleMs));
  const after = totals();
  return after.reduce((sum, c, i) => {
    const all = c.all - before[i].all;
    return sum + (all > 0 ? (c.idle - before[i].idle) / all : 1);
  }, 0);
}

/**
 * The "auto" thread setting: every logical core (at most {@link WASM_THREADS_MAX}) when the
 * machine has at least 2 and is essentially idle (idle cores ≥ cores − 0.5, see
 * {@link measureIdleCores}), else one thread. Measured on 2 cores: 1.8–2.1× on an idle machine,
 * 0.8× when other processes kept both cores busy. `reason` is for the backend line.
 *
 * @example decideAutoWasmThreads(2, 1.9) // { threadCount: 2, reason: "auto: 1.9 of 2 cores idle" }
 */
export function decideAutoWasmThreads(
  logicalCores: number,
  idleCores: number,
): { threadCount?: number; reason: string } {
  const idle = `${idleCores.toFixed(1)} of ${logicalCores} core${logicalCores === 1 ? "" : "s"} idle`;
  if (logicalCores < 2) return { reason: `auto: ${idle}, nothing to share` };
  if (idleCores < logicalCores - 0.5) return { reason: `auto: ${idle}, others are busy` };
  return { threadCount: Math.min(logicalCores, WASM_THREADS_MAX), reason: `auto: ${idle}` };
}

/**
 * Parses a thread-count setting such as `MELANOMA_LAB_WASM_THREADS`: undefined/""/"0"/"1"/"off"
 * → undefined (stay single-threaded), "all" → every logical core (at most
 * {@link WASM_THREADS_MAX}), "auto" → "auto" (decided at backend start by
 * {@link decideAutoWasmThreads}), "<n>" → n. Anything else
 * throws {@link WasmThreadsError}.
 *
 * @example parseWasmThreadCount("2") // 2
 * @example parseWasmThreadCount("all", 16) // 8
 */
export function parseWasmThreadCount(
  value: string | undefined,
  logicalCores: number = os.cpus().length,
): number | "auto" | undefined {
  const trimmed = (value ?? "").trim().toLowerCase();
  if (trimmed === "" || trimmed === "0" || trimmed === "1" || trimmed === "off") return undefined;
  if (trimmed === "all") return Math.max(1, Math.min(logicalCores, WASM_THREADS_MAX));
  if (trimmed === "auto") return "auto";
  const n = Number(trimmed);
  if (!Number.isInteger(n) || n < 1 || n > WASM_THREADS_MAX) {
    throw new WasmThreadsError(
      `${WASM_THREADS_ENV}=${JSON.stringify(value)}: expected an integer 1..${WASM_THREADS_MAX}, "all", "auto" or "off"`,
    );
  }
  return n;
}

/**
 * Makes the next initialisation of tfjs's wasm backend multi-threaded under Node. tfjs 4.22.0
 * switches wasm threads off under Node (tfjs issue #3830), starts its pthread workers from
 * `blob:` URLs that Node's worker_threads cannot load, and caps threads at half the logical
 * cores. This sets `WASM_HAS_MULTITHREAD_SUPPORT`, calls `setThreadsCount(threadCount)`, and
 * wraps the registered "wasm" backend factory so that, only while it runs: blob sources are
 * written to temp files Node can load, and `os.cpus()` reports 2 × threadCount cores so the
 * halving cap lets threadCount through. After init it unrefs the pool's workers so the process
 * still exits, stops the idle pre-started ones, and checks XNNPACK really got threadCount
 * threads: if not, it warns and records why in {@link getWasmThreadsStatus} (the backend still
 * computes correctly); if the threaded module fails to start, backend init fails with
 * {@link WasmThreadsError} (tfjs then reports `setBackend("wasm")` as failed).
 *
 * Must be called before the wasm backend initialises (before `selectBackend()` /
 * `tf.setBackend("wasm")`); calling again with the same count is a no-op, a different count
 * or a call after init throws {@link WasmThreadsError}. threadCount 1 changes nothing.
 *
 * @example
 * enableWasmThreads({ threadCount: 2 });
 * await selectBackend({ preferred: "wasm" }); // conv2d/matMul now use 2 threads
 */
export function enableWasmThreads(options: { threadCount?: number } = {}): WasmThreadsPlan {
  const logicalCores = os.cpus().length;
  const threadCount = options.threadCount ?? Math.min(logicalCores, WASM_THREADS_MAX);
  if (!Number.isInteger(threadCount) || threadCount < 1 || threadCount > WASM_THREADS_MAX) {
    throw new WasmThreadsError(
      `enableWasmThreads: threadCount ${threadCount} is not an integer 1..${WASM_THREADS_MAX}`,
    );
  }
  const state = sharedState();
  if (state.plan) {
    if (state.plan.threadCount === threadCount) return { ...state.plan, alreadyEnabled: true };
    throw new WasmThreadsError(
      `enableWasmThreads: threadCount ${threadCount} requested but ${state.plan.threadCount} was already enabled (the wasm module can be set up once per process)`,
    );
  }
  // Not tf.findBackend: it starts initialising a registered backend as a side effect.
  if (tf.engine().registry["wasm"] !== undefined) {
    throw new WasmThreadsError(
      'enableWasmThreads: the wasm backend is already initialised single-threaded; call enableWasmThreads before selectBackend()/tf.setBackend("wasm") (in a notebook: restart the kernel)',
    );
  }
  if (threadCount === 1) {
    state.plan = { threadCount, logicalCores, mode: "single-threaded", alreadyEnabled: false };
    return state.plan;
  }
  if (typeof SharedArrayBuffer === "undefined") {
    throw new WasmThreadsError("enableWasmThreads: this Node has no SharedArrayBuffer, which wasm threads need");
  }

  const req = createRequire(path.join(findProjectRoot(), "package.json"));
  const wasmBackend = req("@tensorflow/tfjs-backend-wasm") as typeof import("@tensorflow/tfjs-backend-wasm");
  if (wasmBackend.version_wasm !== WASM_THREADS_TFJS_VERSION) {
    throw new WasmThreadsError(
      `enableWasmThreads: @tensorflow/tfjs-backend-wasm is ${wasmBackend.version_wasm}, expected ${WASM_THREADS_TFJS_VERSION} (its pthread worker source is patched by text)`,
    );
  }
  const entry = tf.engine().registryFactory["wasm"];
  if (!entry) {
    throw new WasmThreadsError(
      'enableWasmThreads: no "wasm" backend factory is registered (was @tensorflow/tfjs-backend-wasm loaded from another copy of tfjs-core?)',
    );
  }

  const scriptDir = fs.mkdtempSync(path.join(os.tmpdir(), "melanoma-lab-wasm-threads-"));
  process.once("exit", () => fs.rmSync(scriptDir, { recursive: true, force: true }));
  const plan: WasmThreadsPlan = { threadCount, logicalCores, mode: "threaded", alreadyEnabled: false, scriptDir };

  const originalFactory = entry.factory;
  const threadedFactory = async (): Promise<tf.KernelBackend> => {
    const restore = installNodePthreadShims(scriptDir, threadCount);
    let backend: tf.KernelBackend;
    try {
      backend = await originalFactory();
    } catch (err) {
      state.error = `threaded wasm init failed: ${err instanceof Error ? err.message : String((err as { message?: string })?.message ?? err)}`;
      throw new WasmThreadsError(state.error);
    } finally {
      restore();
    }
    // Every worker has evaluated the scripts by now and no new worker will be started.
    fs.rmSync(scriptDir, { recursive: true, force: true });
    const module = (backend as unknown as WasmBackendLike).wasm;
    const actual = module?.tfjs?.getThreadsCount();
    state.actualThreadCount = actual;
    if (!module?.PThread) {
      // No pthread runtime: tfjs loaded a non-threaded binary (e.g. SIMD unsupported); it works.
      state.error = `threaded wasm init: tfjs loaded a binary without pthreads (XNNPACK reports ${actual} thread(s), expected ${threadCount}; WASM_HAS_SIMD_SUPPORT must be true for the threaded-SIMD binary)`;
      console.warn(`melanoma-lab: ${state.error}`);
      return backend;
    }
    // Emscripten refs a worker while it runs a pthread; XNNPACK's pool threads never end, so
    // unref them or the event loop (a script, a test runner) never exits.
    for (const worker of module.PThread.runningWorkers) worker.unref();
    // Emscripten pre-starts 8 workers (~20 MB each); XNNPACK's pool took threadCount - 1 and
    // tfjs creates no other pthreads, so the idle ones are only memory.
    for (const worker of module.PThread.unusedWorkers.splice(0)) void worker.terminate();
    if (actual !== threadCount) {
      // The backend computes correctly with fewer threads; say so instead of failing the backend.
      state.error = `threaded wasm init: XNNPACK reports ${actual} thread(s), expected ${threadCount} (tfjs caps threads at os.cpus().length / 2 and 8)`;
      console.warn(`melanoma-lab: ${state.error}`);
    }
    return backend;
  };

  tf.env().set("WASM_HAS_MULTITHREAD_SUPPORT", true);
  wasmBackend.setThreadsCount(threadCount);
  tf.removeBackend("wasm");
  tf.registerBackend("wasm", threadedFactory, entry.priority);
  state.plan = plan;
  return plan;
}

/**
 * What {@link enableWasmThreads} planned and, once the wasm backend initialised, how many
 * threads XNNPACK actually got or why threaded init failed.
 *
 * @example
 * const { plan, actualThreadCount, error } = getWasmThreadsStatus();
 */
export function getWasmThreadsStatus(): WasmThreadsStatus {
  const state = sharedState();
  return { plan: state.plan, actualThreadCount: state.actualThreadCount, error: state.error };
}

/**
 * One line for reports: "wasm threads: 2 (of 2 logical cores)", "wasm threads: off (…)" or
 * the failure reason.
 *
 * @example describeWasmThreads() // "wasm threads: 2 (of 2 logical cores)"
 */
export function describeWasmThreads(): string {
  const { plan, actualThreadCount, error } = getWasmThreadsStatus();
  if (error) return `wasm threads: ${actualThreadCount ?? "not started"} (${error})`;
  const auto = sharedState().autoReason;
  if (!plan || plan.mode === "single-threaded") {
    return auto
      ? `wasm threads: off (${auto}; set ${WASM_THREADS_ENV}=<n> to force)`
      : `wasm threads: off (set ${WASM_THREADS_ENV}=<n>, "all" or "auto" before the backend starts)`;
  }
  const count = actualThreadCount ?? `${plan.threadCount} requested, not initialised yet`;
  return `wasm threads: ${count} (of ${plan.logicalCores} logical cores${auto ? `; ${auto}` : ""})`;
}

const MAIN_SCRIPT_PREFIX = "var WasmBackendModuleThreadedSimd = ";
// The pthread worker only imports the main script from a string URL; Node cannot import a Blob.
const WORKER_URL_NEEDLE = 'typeof e.data.urlOrBlob=="string"';

/**
 * Patches Blob, URL.createObjectURL and os.cpus for the duration of the wasm factory; returns
 * the function that restores them.
 */
function installNodePthreadShims(scriptDir: string, threadCount: number): () => void {
  const g = globalThis as unknown as { Blob: typeof Blob };
  const OriginalBlob = g.Blob;
  const originalCreateObjectUrl = URL.createObjectURL;
  const originalCpus = os.cpus;
  const sources = new WeakMap<object, string>();
  let mainScriptPath: string | undefined;
  let workerScriptPath: string | undefined;

  class RecordingBlob extends OriginalBlob {
    constructor(parts?: unknown[], options?: ConstructorParameters<typeof Blob>[1]) {
      super(parts as ConstructorParameters<typeof Blob>[0], options);
      if (Array.isArray(parts) && parts.every((p) => typeof p === "string")) {
        const text = parts.join("");
        sources.set(this, text);
        if (text.startsWith(MAIN_SCRIPT_PREFIX)) mainScriptPath = writeMainScript(scriptDir, text);
      }
    }
  }
  g.Blob = RecordingBlob as typeof Blob;
  URL.createObjectURL = ((blob: Blob): string => {
    const text = sources.get(blob);
    if (text === undefined || !text.includes(WORKER_URL_NEEDLE)) return originalCreateObjectUrl(blob);
    if (!mainScriptPath) {
      throw new WasmThreadsError(
        "tfjs created its pthread worker before the threaded main script Blob (tfjs-backend-wasm internals changed?)",
      );
    }
    workerScriptPath ??= writeFile(
      scriptDir,
      "pthread-worker.js",
      text.replace(WORKER_URL_NEEDLE, `(e.data.urlOrBlob=${JSON.stringify(mainScriptPath)},true)`),
    );
    return workerScriptPath;
  }) as typeof URL.createObjectURL;
  // tfjs's C++ caps threads at emscripten_num_logical_cores() / 2, which Emscripten reads from
  // os.cpus().length once while the module starts.
  const realCpus = originalCpus();
  const reportedCpus = Array.from(
    { length: Math.max(realCpus.length, 2 * threadCount) },
    (_, i) => realCpus[i % realCpus.length],
  );
  os.cpus = () => reportedCpus;
  return () => {
    g.Blob = OriginalBlob;
    URL.createObjectURL = originalCreateObjectUrl;
    os.cpus = originalCpus;
  };
}

function writeFile(dir: string, name: string, text: string): string {
  const file = path.join(dir, name);
  fs.writeFileSync(file, text);
  return file;
}

// The main script runs inside the worker via eval, outside tfjs's rollup bundle: define the
// bundle-level names it refers to. The tslib helpers are only reached on the main thread but
// are defined so a stray call fails loudly rather than with a ReferenceError.
const MAIN_SCRIPT_PRELUDE = [
  'var require$$0 = require("fs"), require$$1 = require("path"), require$$3 = require("perf_hooks"), require$$4 = require("os");',
  "var commonjsGlobal = globalThis;",
  "function __values(o) { return o[Symbol.iterator](); }",
  "function __read(o, n) { var a = Array.from(o); return n === undefined ? a : a.slice(0, n); }",
  "function __spreadArray(to, from) { return to.concat(Array.from(from)); }",
].join("\n");

function writeMainScript(dir: string, text: string): string {
  return writeFile(dir, "pthread-main.js", `${MAIN_SCRIPT_PRELUDE}\n${text}`);
}

/**
 * Records the "auto" decision so {@link describeWasmThreads} can say why threads are on or off.
 *
 * @example noteAutoWasmThreadsDecision(decideAutoWasmThreads().reason)
 */
export function noteAutoWasmThreadsDecision(reason: string): void {
  sharedState().autoReason = reason;
}
