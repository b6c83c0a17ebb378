/**
 * Which inference runtime the phone app uses: tfjs (webgl/wasm/cpu backend) or ONNX Runtime web
 * (wasm). Pure functions of what the page found and measured, so the rules are unit-tested
 * (tests/app/chooseRuntime.test.ts) apart from the browser.
 */

/** What `?runtime=` asked for: `auto` (the default) times both when it can and keeps the faster. */
export type RuntimeRequest = "auto" | "onnx" | "tfjs";

/** The runtime that scores photos. */
export type AppRuntime = "onnx" | "tfjs";

/** Thrown for a `?runtime=` value other than auto, onnx or tfjs, naming the value received. */
export class RuntimeRequestError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "RuntimeRequestError";
  }
}

/**
 * Reads `?runtime=` from a query string: missing or empty is `auto`.
 *
 * @example parseRuntimeRequest("?runtime=onnx") // "onnx"
 */
export function parseRuntimeRequest(search: string): RuntimeRequest {
  const value = new URLSearchParams(search).get("runtime");
  if (value === null || value === "" || value === "auto") return "auto";
  if (value === "onnx" || value === "tfjs") return value;
  throw new RuntimeRequestError(`?runtime=${value}: expected auto, onnx or tfjs`);
}

/**
 * ONNX Runtime web's wasm threads: several only when the page is cross-origin isolated (threads
 * need SharedArrayBuffer), capped at `maxThreads` (default 4: a phone's big cores; more threads
 * mostly add synchronisation on a batch of 8 small images), else 1.
 *
 * @example chooseOrtThreadCount({ crossOriginIsolated: true, hardwareConcurrency: 8 }) // { threads: 4, note: "…" }
 */
export function chooseOrtThreadCount(page: {
  crossOriginIsolated: boolean;
  hardwareConcurrency: number | undefined;
  maxThreads?: number;
  /** `?ortThreads=` (the benchmark's override), or null to choose. */
  requested?: string | null;
}): { threads: number; note: string } {
  const cores = page.hardwareConcurrency && page.hardwareConcurrency >= 1 ? Math.floor(page.hardwareConcurrency) : 1;
  const cap = page.maxThreads ?? 4;
  if (page.requested !== undefined && page.requested !== null) {
    const n = Number(page.requested);
    if (!(Number.isInteger(n) && n >= 1)) {
      throw new RuntimeRequestError(`?ortThreads=${page.requested}: expected a whole number ≥ 1`);
    }
    if (n > 1 && page.crossOriginIsolated === false) {
      throw new RuntimeRequestError(
        `?ortThreads=${n}: the page is not cross-origin isolated (no SharedArrayBuffer), so only 1 thread can run`,
      );
    }
    return { threads: n, note: `${n} thread${n === 1 ? "" : "s"}: forced by ?ortThreads=${n}` };
  }
  if (page.crossOriginIsolated === false) {
    return { threads: 1, note: "1 thread: the page is not cross-origin isolated, so no SharedArrayBuffer" };
  }
  const threads = Math.max(1, Math.min(cores, cap));
  return {
    threads,
    note: `${threads} thread${threads === 1 ? "" : "s"}: cross-origin isolated, ${cores} cores, capped at ${cap}`,
  };
}

/** Whether the page must time both runtimes before {@link chooseRuntime} can decide. */
export function needsRuntimeTiming(requested: RuntimeRequest, onnxAvailable: boolean): boolean {
  return requested === "auto" && onnxAvailable;
}

/** What the page knows when it decides. */
export interface RuntimeEvidence {
  requested: RuntimeRequest;
  /** Whether model.onnx was bundled and its ONNX Runtime session opened; if not, why not. */
  onnx: { available: true; threads: number } | { available: false; reason: string };
  /** The tfjs backend that initialised, e.g. "webgl". */
  tfjsBackend: string;
  /** One warm call of each runtime on the same synthetic photo (ms); needed when auto has both. */
  timingsMs?: { onnx: number; tfjs: number };
}

/** The runtime and one line saying why, shown on the page. */
export interface RuntimeChoice {
  runtime: AppRuntime;
  reason: string;
}

/**
 * Decides the runtime: `?runtime=tfjs` → tfjs; `?runtime=onnx` → ONNX Runtime, or an error when
 * it is unavailable (a forced choice is never silently swapped); `auto` → tfjs when there is no
 * usable model.onnx (saying why), else the faster of the two timings (a tie goes to ONNX Runtime).
 *
 * @example chooseRuntime({ requested: "auto", onnx: { available: true, threads: 1 }, tfjsBackend: "webgl", timingsMs: { onnx: 38, tfjs: 95 } })
 *   // { runtime: "onnx", reason: "ONNX Runtime web (wasm, 1 thread): 38 ms vs tfjs webgl 95 ms per photo" }
 */
export function chooseRuntime(evidence: RuntimeEvidence): RuntimeChoice {
  const { requested, onnx, tfjsBackend } = evidence;
  if (requested === "tfjs") return { runtime: "tfjs", reason: `tfjs ${tfjsBackend}: forced by ?runtime=tfjs` };
  if (onnx.available === false) {
    if (requested === "onnx")
      throw new RuntimeRequestError(`?runtime=onnx: ONNX Runtime web unavailable (${onnx.reason})`);
    return { runtime: "tfjs", reason: `tfjs ${tfjsBackend}: ${onnx.reason}` };
  }
  const ortLabel = `ONNX Runtime web (wasm, ${onnx.threads} thread${onnx.threads === 1 ? "" : "s"})`;
  if (requested === "onnx") return { runtime: "onnx", reason: `${ortLabel}: forced by ?runtime=onnx` };
  const timings = evidence.timingsMs;
  if (!timings || !(timings.onnx >= 0) || !(timings.tfjs >= 0)) {
    throw new RuntimeRequestError(
      `auto with model.onnx needs both timings; received ${JSON.stringify(timings)}, expected { onnx: ms, tfjs: ms }`,
    );
  }
  const ortMs = `${formatMs(timings.onnx)} ms`;
  const tfjsMs = `${formatMs(timings.tfjs)} ms`;
  return timings.onnx <= timings.tfjs
    ? { runtime: "onnx", reason: `${ortLabel}: ${ortMs} vs tfjs ${tfjsBackend} ${tfjsMs} per photo` }
    : { runtime: "tfjs", reason: `tfjs ${tfjsBackend}: ${tfjsMs} vs ${ortLabel} ${ortMs} per photo` };
}

/** Whole milliseconds, or one decimal below 10 ms (a small model's call can take 2.4 ms). */
function formatMs(ms: number): string {
  return ms < 10 ? ms.toFixed(1) : ms.toFixed(0);
}
