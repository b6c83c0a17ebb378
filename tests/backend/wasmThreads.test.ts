import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import * as tf from "@tensorflow/tfjs";
import { afterAll, describe, expect, it } from "vitest";
import { findProjectRoot } from "../../lib/util/paths.js";
import { selectBackend } from "../../lib/backend/selectBackend.js";
import {
  decideAutoWasmThreads,
  enableWasmThreads,
  measureIdleCores,
  parseWasmThreadCount,
  WASM_THREADS_MAX,
  WasmThreadsError,
} from "../../lib/backend/wasmThreads.js";

const root = findProjectRoot();
const tmpDir = fs.mkdtempSync(path.join(os.tmpdir(), "wasm-threads-test-"));
afterAll(() => fs.rmSync(tmpDir, { recursive: true, force: true }));

// Runs in a fresh process (the wasm module is set up once per process, and a deadlocked pthread
// pool must be killed by a timeout, not hang the runner). It never calls process.exit: the
// parent checks the process ends on its own, i.e. no pthread worker keeps the event loop alive.
const CHILD_SOURCE = `
import fs from "node:fs";
import * as tf from "@tensorflow/tfjs";
import { selectBackend } from "./lib/backend/selectBackend.ts";
import { describeWasmThreads, enableWasmThreads, getWasmThreadsStatus } from "./lib/backend/wasmThreads.ts";
import { loadBackbone } from "./lib/models/backbones.ts";
(async () => {
  const threads = Number(process.env.CHILD_THREADS);
  const report: Record<string, unknown> = { threads };
  const errorName = (fn: () => unknown) => { try { fn(); return "none"; } catch (e) { return (e as Error).name + ": " + (e as Error).message; } };
  if (threads > 1) {
    report.plan = enableWasmThreads({ threadCount: threads });
    report.secondCall = enableWasmThreads({ threadCount: threads });
    report.otherCountError = errorName(() => enableWasmThreads({ threadCount: threads + 1 }));
  }
  await selectBackend({ preferred: "wasm" });
  report.afterInitError = errorName(() => enableWasmThreads({ threadCount: 3 }));
  report.status = getWasmThreadsStatus();
  report.backend = tf.getBackend();
  report.description = describeWasmThreads();
  // Workers that really run a pthread (XNNPACK's pool): threads - 1 of them, the main thread is the other.
  report.runningWorkers = (tf.backend() as unknown as { wasm: { PThread?: { runningWorkers: unknown[] } } }).wasm.PThread?.runningWorkers.length ?? 0;
  const backbone = await loadBackbone("mobilenet_v2");
  const before = tf.memory().numTensors;
  const outputs = tf.tidy(() => {
    const x = tf.randomUniform([2, 40, 40, 16], -1, 1, "float32", 11) as tf.Tensor4D;
    const k = tf.randomUniform([3, 3, 16, 32], -1, 1, "float32", 12) as tf.Tensor4D;
    const a = tf.randomUniform([96, 300], -1, 1, "float32", 13) as tf.Tensor2D;
    const b = tf.randomUniform([300, 80], -1, 1, "float32", 14) as tf.Tensor2D;
    const images = tf.randomUniform([2, 224, 224, 3], 0, 1, "float32", 15);
    return {
      conv2d: Array.from(tf.conv2d(x, k, 1, "same").dataSync()),
      matMul: Array.from(tf.matMul(a, b).dataSync()),
      mobilenetV2: Array.from((backbone.model.predict(images) as tf.Tensor).dataSync()),
    };
  });
  report.outputs = outputs;
  report.tensorsBefore = before;
  report.tensorsAfter = tf.memory().numTensors;
  fs.writeFileSync(process.env.CHILD_OUT as string, JSON.stringify(report));
})().catch((e) => { console.error(e); process.exitCode = 1; });
`;

interface ChildReport {
  threads: number;
  plan?: { threadCount: number; mode: string; alreadyEnabled: boolean; scriptDir?: string };
  secondCall?: { threadCount: number; alreadyEnabled: boolean };
  otherCountError?: string;
  afterInitError: string;
  status: { actualThreadCount?: number; error?: string };
  backend: string;
  description: string;
  runningWorkers: number;
  outputs: { conv2d: number[]; matMul: number[]; mobilenetV2: number[] };
  tensorsBefore: number;
  tensorsAfter: number;
}

function runChild(
  threads: number,
  timeoutMs: number,
): Promise<{ report: ChildReport; code: number | null; timedOut: boolean; stderr: string; ms: number }> {
  const out = path.join(tmpDir, `child-${threads}.json`);
  const started = performance.now();
  return new Promise((resolve) => {
    const child = spawn(
      process.execPath,
      [path.join(root, "node_modules", "tsx", "dist", "cli.mjs"), "--eval", CHILD_SOURCE],
      {
        cwd: root,
        env: { ...process.env, CHILD_THREADS: String(threads), CHILD_OUT: out, MELANOMA_LAB_WASM_THREADS: "" },
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.stdout.resume();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill("SIGKILL");
    }, timeoutMs);
    child.on("exit", (code) => {
      clearTimeout(timer);
      const report = fs.existsSync(out)
        ? (JSON.parse(fs.readFileSync(out, "utf8")) as ChildReport)
        : (undefined as unknown as ChildReport);
      resolve({ report, code, timedOut, stderr, ms: performance.now() - started });
    });
  });
}

function maxAbsDiff(a: number[], b: number[]): number {
  expect(a.length).toBe(b.length);
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i] - b[i]));
  return max;
}

describe("enableWasmThreads", () => {
  it("runs conv2d, matMul and MobileNetV2 on 2 wasm threads with single-threaded results, and the process exits", async () => {
    const [single, multi] = [await runChild(1, 90_000), await runChild(2, 90_000)];
    for (const run of [single, multi]) {
      expect(run.timedOut, `child hung (${run.ms.toFixed(0)} ms): ${run.stderr}`).toBe(false);
      expect(run.code, run.stderr).toBe(0);
      expect(run.report.backend).toBe("wasm");
      expect(run.report.tensorsAfter).toBe(run.report.tensorsBefore);
    }
    expect(single.report.status.actualThreadCount).toBeUndefined();
    expect(multi.report.status).toMatchObject({ actualThreadCount: 2 });
    expect(multi.report.status.error).toBeUndefined();
    expect(multi.report.runningWorkers).toBe(1);
    expect(single.report.runningWorkers).toBe(0);
    expect(multi.report.description).toMatch(/^wasm threads: 2 \(of \d+ logical cores\)$/);
    expect(single.report.description).toMatch(
      /^wasm threads: off \(set MELANOMA_LAB_WASM_THREADS=<n>, "all" or "auto"/,
    );
    expect(multi.report.plan).toMatchObject({ threadCount: 2, mode: "threaded", alreadyEnabled: false });
    expect(multi.report.secondCall).toMatchObject({ threadCount: 2, alreadyEnabled: true });
    expect(multi.report.otherCountError).toMatch(
      /^WasmThreadsError: .*threadCount 3 requested but 2 was already enabled/,
    );
    expect(multi.report.afterInitError).toMatch(/^WasmThreadsError: .*threadCount 3 requested but 2/);
    expect(single.report.afterInitError).toMatch(/^WasmThreadsError: .*already initialised single-threaded/);
    // The worker scripts are temp files, removed once the backend started (and at exit at the latest).
    expect(fs.existsSync(multi.report.plan?.scriptDir as string)).toBe(false);

    const { conv2d, matMul, mobilenetV2 } = single.report.outputs;
    expect(conv2d.length).toBe(2 * 40 * 40 * 32);
    expect(matMul.length).toBe(96 * 80);
    expect(mobilenetV2.length).toBe(2 * 1280);
    // Features are non-trivial (a broken pool could return zeros on both sides).
    expect(Math.max(...mobilenetV2.map(Math.abs))).toBeGreaterThan(0.1);
    expect(maxAbsDiff(multi.report.outputs.conv2d, conv2d)).toBeLessThan(1e-4);
    expect(maxAbsDiff(multi.report.outputs.matMul, matMul)).toBeLessThan(1e-4);
    expect(maxAbsDiff(multi.report.outputs.mobilenetV2, mobilenetV2)).toBeLessThan(1e-4);
  });

  it("parses MELANOMA_LAB_WASM_THREADS values and rejects bad ones by name", () => {
    expect(parseWasmThreadCount(undefined)).toBeUndefined();
    expect(parseWasmThreadCount("")).toBeUndefined();
    expect(parseWasmThreadCount("off")).toBeUndefined();
    expect(parseWasmThreadCount("1")).toBeUndefined();
    expect(parseWasmThreadCount(" 2 ")).toBe(2);
    expect(parseWasmThreadCount("all", 2)).toBe(2);
    expect(parseWasmThreadCount("ALL", 64)).toBe(WASM_THREADS_MAX);
    expect(() => parseWasmThreadCount("two")).toThrow(WasmThreadsError);
    expect(() => parseWasmThreadCount("9")).toThrow(/MELANOMA_LAB_WASM_THREADS="9": expected an integer 1..8/);
    expect(() => parseWasmThreadCount("1.5")).toThrow(WasmThreadsError);
    expect(parseWasmThreadCount(" Auto ")).toBe("auto");
  });

  it("auto uses all cores only on an idle machine, and says why", async () => {
    expect(decideAutoWasmThreads(2, 1.9)).toEqual({ threadCount: 2, reason: "auto: 1.9 of 2 cores idle" });
    expect(decideAutoWasmThreads(2, 1.2)).toEqual({ reason: "auto: 1.2 of 2 cores idle, others are busy" });
    expect(decideAutoWasmThreads(16, 15.8)).toEqual({
      threadCount: WASM_THREADS_MAX,
      reason: "auto: 15.8 of 16 cores idle",
    });
    expect(decideAutoWasmThreads(1, 1)).toEqual({ reason: "auto: 1.0 of 1 core idle, nothing to share" });
    // A busy loop in this process keeps about one core busy while it samples.
    const sampling = measureIdleCores(300);
    const until = performance.now() + 250;
    while (performance.now() < until) Math.sqrt(Math.random());
    const idle = await sampling;
    expect(idle).toBeGreaterThanOrEqual(0);
    expect(idle).toBeLessThanOrEqual(os.cpus().length - 0.5);
  });

  it("refuses bad thread counts and a wasm backend that is already running", async () => {
    expect(() => enableWasmThreads({ threadCount: 0 })).toThrow(/threadCount 0 is not an integer 1..8/);
    expect(() => enableWasmThreads({ threadCount: 9 })).toThrow(WasmThreadsError);
    await selectBackend({ preferred: "wasm" });
    expect(tf.getBackend()).toBe("wasm");
    expect(() => enableWasmThreads({ threadCount: 2 })).toThrow(
      /already initialised single-threaded; call enableWasmThreads before selectBackend/,
    );
  });
});
