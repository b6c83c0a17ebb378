// Multi-threaded wasm benchmark (GitHub issue 4): MobileNetV2-224 images/s at batch 8 on wasm
// single-threaded vs enableWasmThreads({ threadCount }), each in its own child process (the wasm
// module is set up once per process), alternating single/multi for `--rounds` rounds so that a
// change in machine load hits both. Each child times the path features take (the compiled
// inference plan: BatchNorm folded, activations fused) and, for reference, tfjs-layers'
// `model.predict`. Prints per-round figures, medians and the ratios.
// Run: npm run bench -- wasm-threads, or with options:
// npx tsx bench/wasm-threads.ts --threads 2 --rounds 2 --min-seconds 10
import { spawn } from "node:child_process";
import os from "node:os";
import path from "node:path";
import * as tf from "@tensorflow/tfjs";
import {
  selectBackend,
  describeWasmThreads,
  enableWasmThreads,
  getWasmThreadsStatus,
  loadBackbone,
  predictBackboneFeatures,
  defineCli,
  parseCommandLineOrExit,
  findProjectRoot,
} from "../lib/index.js";

const BATCH_SIZE = 8;
const CHILD_TIMEOUT_MS = 300_000;

interface ChildResult {
  threads: number;
  actualThreads: number;
  /** Through the compiled inference plan (what extractFeatures uses). */
  imagesPerSecond: number;
  /** Through tfjs-layers' model.predict (unfused), timed in the same child. */
  layersImagesPerSecond: number;
  /** CPU seconds (all threads of the process, user + system) per image while timed. */
  cpuSecondsPerImage: number;
  batches: number;
  initMs: number;
  detail: string;
}

const cli = defineCli({
  name: "bench wasm-threads",
  usage: "npx tsx bench/wasm-threads.ts",
  summary:
    "MobileNetV2-224 images/s at batch 8 on wasm, single-threaded vs multi-threaded, each in its own child process, alternating for --rounds rounds.",
  examples: ["npx tsx bench/wasm-threads.ts --threads 2 --rounds 2 --min-seconds 10"],
  options: {
    threads: {
      type: "integer",
      min: 2,
      max: 64,
      default: Math.max(2, Math.min(os.cpus().length, 8)),
      description: "threads of the multi-threaded runs (default: logical cores, at most 8)",
    },
    rounds: { type: "integer", min: 1, default: 2, description: "single/multi pairs to run" },
    "min-seconds": {
      type: "number",
      min: 0,
      minExclusive: true,
      default: 10,
      description: "seconds timed per run (at least 3 batches)",
    },
    child: {
      type: "boolean",
      description: "internal: run one measurement (with --threads 1 or more) and print RESULT",
    },
  },
});
// A child measures one thread count, including 1, so its --threads may be below the parent's minimum.
const cliArgs = parseCommandLineOrExit(
  process.argv.includes("--child")
    ? { ...cli, options: { ...cli.options, threads: { ...cli.options.threads, min: 1 } } }
    : cli,
  process.argv.slice(2),
).values;

async function runChildMode(): Promise<void> {
  const threads = cliArgs.threads;
  const minSeconds = cliArgs["min-seconds"];
  const t0 = performance.now();
  if (threads > 1) enableWasmThreads({ threadCount: threads });
  await selectBackend({ preferred: "wasm" });
  const initMs = performance.now() - t0;
  const status = getWasmThreadsStatus();
  const backbone = await loadBackbone("mobilenet_v2");
  const images = tf.randomUniform([BATCH_SIZE, 224, 224, 3], 0, 1, "float32", 7);
  const timeBatches = (runBatch: () => void, seconds: number) => {
    runBatch();
    runBatch();
    let batches = 0;
    const cpuBefore = process.cpuUsage();
    const started = performance.now();
    while (batches < 3 || performance.now() - started < seconds * 1000) {
      runBatch();
      batches++;
    }
    const cpu = process.cpuUsage(cpuBefore);
    return {
      batches,
      imagesPerSecond: (batches * BATCH_SIZE) / ((performance.now() - started) / 1000),
      cpuSecondsPerImage: (cpu.user + cpu.system) / 1e6 / (batches * BATCH_SIZE),
    };
  };
  const fused = timeBatches(() => tf.tidy(() => void predictBackboneFeatures(backbone, images).dataSync()), minSeconds);
  const layers = timeBatches(
    () => tf.tidy(() => void (backbone.model.predict(images) as tf.Tensor).dataSync()),
    minSeconds / 2,
  );
  images.dispose();
  const result: ChildResult = {
    threads,
    actualThreads: status.actualThreadCount ?? 1,
    imagesPerSecond: fused.imagesPerSecond,
    layersImagesPerSecond: layers.imagesPerSecond,
    cpuSecondsPerImage: fused.cpuSecondsPerImage,
    batches: fused.batches,
    initMs,
    detail: describeWasmThreads(),
  };
  console.log(`RESULT ${JSON.stringify(result)}`);
}

function runChild(threads: number, minSeconds: number): Promise<ChildResult> {
  const root = findProjectRoot();
  const args = [
    path.join(root, "node_modules", "tsx", "dist", "cli.mjs"),
    path.join(root, "bench", "wasm-threads.ts"),
    "--child",
    "--threads",
    String(threads),
    "--min-seconds",
    String(minSeconds),
  ];
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { cwd: root, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill("SIGKILL");
    }, CHILD_TIMEOUT_MS);
    child.on("exit", (code) => {
      clearTimeout(timer);
      const line = stdout.split("\n").find((l) => l.startsWith("RESULT "));
      if (timedOut)
        reject(
          new Error(
            `${threads}-thread child did not finish in ${CHILD_TIMEOUT_MS / 1000} s (hung pthread pool or a worker keeping the process alive); stderr: ${stderr.slice(-2000)}`,
          ),
        );
      else if (code !== 0 || !line)
        reject(new Error(`${threads}-thread child exited with ${code}; stderr: ${stderr.slice(-2000)}`));
      else resolve(JSON.parse(line.slice("RESULT ".length)) as ChildResult);
    });
  });
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

async function runParentMode(): Promise<void> {
  const threads = cliArgs.threads;
  const rounds = cliArgs.rounds;
  const minSeconds = cliArgs["min-seconds"];
  console.log(
    `MobileNetV2-224, batch ${BATCH_SIZE}, wasm SIMD: 1 thread vs ${threads} threads, ${rounds} round(s), ≥ ${minSeconds} s timed per run`,
  );
  console.log(
    `machine: ${os.cpus().length} logical cores, load average before: ${os
      .loadavg()
      .map((l) => l.toFixed(2))
      .join(", ")}`,
  );
  const single: number[] = [];
  const multi: number[] = [];
  const singleLayers: number[] = [];
  const multiLayers: number[] = [];
  for (let r = 1; r <= rounds; r++) {
    const one = await runChild(1, minSeconds);
    let many: ChildResult;
    try {
      many = await runChild(threads, minSeconds);
    } catch (err) {
      console.error(`FAILED: multi-threaded wasm did not run: ${(err as Error).message}`);
      process.exitCode = 1;
      return;
    }
    single.push(one.imagesPerSecond);
    multi.push(many.imagesPerSecond);
    singleLayers.push(one.layersImagesPerSecond);
    multiLayers.push(many.layersImagesPerSecond);
    console.log(
      `round ${r}: 1 thread ${one.imagesPerSecond.toFixed(2)} img/s (${one.batches} batches, ${one.cpuSecondsPerImage.toFixed(3)} CPU s/img) | ` +
        `${many.actualThreads} threads ${many.imagesPerSecond.toFixed(2)} img/s (${many.batches} batches, ${many.cpuSecondsPerImage.toFixed(3)} CPU s/img, init ${many.initMs.toFixed(0)} ms) | ` +
        `ratio ${(many.imagesPerSecond / one.imagesPerSecond).toFixed(2)}× | unfused model.predict: ${one.layersImagesPerSecond.toFixed(2)} → ${many.layersImagesPerSecond.toFixed(2)} img/s`,
    );
  }
  const ratio = median(multi) / median(single);
  console.log(
    `median (inference plan, what features use): 1 thread ${median(single).toFixed(2)} img/s, ${threads} threads ${median(multi).toFixed(2)} img/s, ratio ${ratio.toFixed(2)}× (goal ≥ 1.5× on 2 cores)`,
  );
  const layersRatio = median(multiLayers) / median(singleLayers);
  console.log(
    `median (unfused tfjs-layers model.predict): 1 thread ${median(singleLayers).toFixed(2)} img/s, ${threads} threads ${median(multiLayers).toFixed(2)} img/s, ratio ${layersRatio.toFixed(2)}×`,
  );
  console.log(
    `inference plan vs model.predict: ${(median(single) / median(singleLayers)).toFixed(2)}× at 1 thread, ${(median(multi) / median(multiLayers)).toFixed(2)}× at ${threads} threads`,
  );
  console.log(
    `load average after: ${os
      .loadavg()
      .map((l) => l.toFixed(2))
      .join(", ")}`,
  );
}

const run = cliArgs.child ? runChildMode() : runParentMode();
run.catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
