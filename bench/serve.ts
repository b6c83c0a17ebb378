// Point-inference service under load: starts `npm run serve` (scripts/serve.ts) as a child process
// on a free loopback port, sends POST /v1/triage with a real image through autocannon, bounded in
// request count and time, and reports throughput, p50/p99 latency and failed valid requests (must be 0).
// Usage: npx tsx bench/serve.ts [--model models/<run>] [--requests 300] [--connections 4] [--max-seconds 60]
import { spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import autocannon from "autocannon";
import * as tf from "@tensorflow/tfjs";
import sharp from "sharp";
import {
  defineCli,
  exportTriageModel,
  exportTriageModelOnnx,
  findProjectRoot,
  findSharedDir,
  parseCommandLineOrExit,
  selectBackend,
  type TriageModelMetadata,
} from "../lib/index.js";

const cli = defineCli({
  name: "bench serve",
  usage: "npx tsx bench/serve.ts",
  summary:
    "Service load test on loopback: throughput, p50/p99 latency and failed valid requests of POST /v1/triage (autocannon, bounded in count and time).",
  examples: ["npx tsx bench/serve.ts --model models/synthetic-mobilenet_v2 --requests 300 --connections 4"],
  options: {
    model: {
      type: "string",
      valueName: "<dir>",
      description:
        "exported model folder (default: the newest models/*/ with metadata.json, else a small generated 224 px conv model)",
    },
    requests: { type: "integer", min: 1, default: 300, description: "valid requests sent in all" },
    connections: { type: "integer", min: 1, max: 64, default: 4, description: "concurrent connections" },
    "max-seconds": {
      type: "integer",
      min: 1,
      default: 60,
      description: "stop after this many seconds even if requests remain",
    },
    image: {
      type: "string",
      valueName: "<file>",
      description:
        "JPEG or PNG sent as the body (default: the first ../shared/data/ham10000-dev image, else a generated one)",
    },
    runtime: {
      type: "string",
      choices: ["auto", "onnx", "tfjs"],
      default: "auto",
      description: "runtime of the service",
    },
    "tta-views": {
      type: "integer",
      min: 1,
      max: 8,
      default: 8,
      description: "dihedral views the service scores per upload (its default 8; 1 = the upload alone, no interval)",
    },
  },
});

function findExportedModel(root: string): string | undefined {
  const models = path.join(root, "models");
  if (!fs.existsSync(models)) return undefined;
  const dirs = fs
    .readdirSync(models)
    .map((d) => path.join(models, d))
    .filter((d) => fs.existsSync(path.join(d, "metadata.json")))
    .sort((a, b) => fs.statSync(b).mtimeMs - fs.statSync(a).mtimeMs);
  return dirs[0];
}

/** A small 224 px model (conv → pool → sigmoid, fixed weights) with model.onnx, when no exported model exists. */
async function exportSmallModel(dir: string): Promise<void> {
  await selectBackend();
  const input = tf.input({ shape: [224, 224, 3] });
  const conv1 = tf.layers.conv2d({ filters: 16, kernelSize: 3, strides: 2, padding: "same", activation: "relu" });
  const conv2 = tf.layers.conv2d({ filters: 32, kernelSize: 3, strides: 2, padding: "same", activation: "relu" });
  const pooled = tf.layers.globalAveragePooling2d({}).apply(conv2.apply(conv1.apply(input))) as tf.SymbolicTensor;
  const out = tf.layers.dense({ units: 1, activation: "sigmoid" }).apply(pooled) as tf.SymbolicTensor;
  const model = tf.model({ inputs: input, outputs: out });
  const metadata: TriageModelMetadata = {
    formatVersion: 1,
    labels: ["benign", "malignant"],
    inputSizePx: 224,
    preprocessing: { kind: "normalize", mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] },
    resizePolicy: "center-crop",
    thresholdProb: 0.5,
    backboneName: "bench_small_conv",
    backboneWeightsId: "glorot-initialised (untrained)",
    featureLayerName: "none",
    featureDim: 32,
    createdAt: new Date().toISOString(),
    backend: tf.getBackend(),
  };
  await exportTriageModel(dir, model, metadata);
  await exportTriageModelOnnx(dir, model, metadata);
  model.dispose();
}

async function imageBytes(given: string | undefined): Promise<{ bytes: Buffer; what: string }> {
  if (given) return { bytes: fs.readFileSync(given), what: given };
  const images = path.join(findSharedDir(), "data", "ham10000-dev", "images");
  if (fs.existsSync(images)) {
    const first = fs.readdirSync(images).sort()[0];
    return { bytes: fs.readFileSync(path.join(images, first)), what: `ham10000-dev/images/${first}` };
  }
  const bytes = await sharp({
    create: {
      width: 600,
      height: 450,
      channels: 3,
      background: { r: 128, g: 128, b: 128 },
      noise: { type: "gaussian", mean: 128, sigma: 40 },
    },
  })
    .jpeg()
    .toBuffer();
  return { bytes, what: "a generated 600×450 JPEG" };
}

/** Starts scripts/serve.ts on a free port; resolves with its port once it prints "listening on". */
function startService(root: string, args: string[]): Promise<{ child: ChildProcess; port: number; startup: string[] }> {
  const child = spawn(
    process.execPath,
    [path.join(root, "node_modules", "tsx", "dist", "cli.mjs"), path.join(root, "scripts", "serve.ts"), ...args],
    {
      cwd: root,
      stdio: ["ignore", "ignore", "pipe"],
    },
  );
  return new Promise((resolve, reject) => {
    const startup: string[] = [];
    let buffered = "";
    child.stderr!.on("data", (d: Buffer) => {
      buffered += d.toString();
      const lines = buffered.split("\n");
      buffered = lines.pop()!;
      for (const line of lines) {
        startup.push(line);
        const m = /listening on http:\/\/[^:]+:(\d+)/.exec(line);
        if (m) resolve({ child, port: Number(m[1]), startup });
      }
    });
    child.on("exit", (code) =>
      reject(new Error(`serve exited with code ${code} before listening:\n${startup.join("\n")}${buffered}`)),
    );
  });
}

async function main(): Promise<void> {
  const { values } = parseCommandLineOrExit(cli, process.argv.slice(2));
  const root = findProjectRoot();
  let tmp: string | undefined;
  let modelDir = values.model ?? findExportedModel(root);
  if (!modelDir) {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), "mlab-bench-serve-"));
    modelDir = path.join(tmp, "model");
    console.log(
      "no exported model in models/: generating a small untrained 224 px conv model (figures are for the service, not a real backbone)",
    );
    await exportSmallModel(modelDir);
  }
  const image = await imageBytes(values.image);
  const { child, port, startup } = await startService(root, [
    "--model",
    modelDir,
    "--port",
    "0",
    "--runtime",
    values.runtime,
    "--tta-views",
    String(values["tta-views"]),
    "--log-level",
    "warn",
    "--max-in-flight",
    String(Math.max(8, values.connections)),
  ]);
  try {
    for (const line of startup) console.log(`  serve | ${line}`);
    const url = `http://127.0.0.1:${port}/v1/triage`;
    const check = await fetch(url, { method: "POST", headers: { "content-type": "image/jpeg" }, body: image.bytes });
    const checkBody = (await check.json()) as { probability?: number; runtime?: string };
    if (check.status !== 200) throw new Error(`a single request failed: ${check.status} ${JSON.stringify(checkBody)}`);
    console.log(
      `image: ${image.what} (${image.bytes.length} bytes) → probability ${checkBody.probability} via ${checkBody.runtime}`,
    );
    console.log(
      `load average (1/5/15 min): ${os
        .loadavg()
        .map((l) => l.toFixed(2))
        .join(" ")}; ${os.cpus().length} cores`,
    );
    const result = await new Promise<autocannon.Result>((resolve, reject) => {
      const instance = autocannon(
        {
          url,
          method: "POST",
          headers: { "content-type": "image/jpeg" },
          body: image.bytes,
          connections: values.connections,
          amount: values.requests,
          timeout: 30,
        },
        (err, res) => {
          clearTimeout(stopAt);
          if (err) reject(err);
          else resolve(res);
        },
      );
      const stopAt = setTimeout(() => instance.stop(), values["max-seconds"] * 1000);
    });
    const completed = result.requests.total;
    const failed = result.non2xx + result.errors + result.timeouts;
    const seconds = result.duration;
    console.log(
      `service: ${completed} requests in ${seconds.toFixed(1)} s over ${values.connections} connections → ${(result["2xx"] / seconds).toFixed(1)} requests/s`,
    );
    console.log(
      `latency ms: p50 ${result.latency.p50}, p99 ${result.latency.p99}, mean ${result.latency.average.toFixed(1)}, max ${result.latency.max}`,
    );
    console.log(
      `failed valid requests: ${failed} (non-2xx ${result.non2xx}, errors ${result.errors}, timeouts ${result.timeouts})${completed < values.requests ? `; stopped at --max-seconds after ${completed} of ${values.requests}` : ""}`,
    );
    if (failed > 0) process.exitCode = 1;
  } finally {
    child.kill("SIGTERM");
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
