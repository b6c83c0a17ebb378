import { spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { findProjectRoot, selectBackend } from "../../lib/index.js";
import { exportMeanColourModel, meanColourProbability, solidImage } from "../serve/fixtures.js";

const root = findProjectRoot();
const tsx = path.join(root, "node_modules", "tsx", "dist", "cli.mjs");
const script = path.join(root, "scripts", "serve.ts");
let tmp: string;

beforeAll(async () => {
  await selectBackend();
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), "ml-serve-cli-"));
  await exportMeanColourModel(path.join(tmp, "model"), { onnx: true });
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

function runScript(args: string[]) {
  const r = spawnSync(process.execPath, [tsx, script, ...args], { cwd: root, encoding: "utf8", timeout: 60_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe("npm run serve: command line", () => {
  it("answers --help with its flags, defaults and an example, exit 0", () => {
    const r = runScript(["--help"]);
    expect(r.status).toBe(0);
    for (const flag of [
      "--model <dir>",
      "--host",
      "--port <n>",
      "--max-body-bytes",
      "--max-pixels",
      "--max-in-flight",
      "--body-timeout-ms",
    ])
      expect(r.stdout).toContain(flag);
    expect(r.stdout).toContain("default 127.0.0.1");
    expect(r.stdout).toMatch(/Examples:\n {2}npm run serve -- --model /);
  }, 90_000);

  it("requires --model and checks --port, exit 2 with one line", () => {
    const missing = runScript([]);
    expect(missing.status).toBe(2);
    expect(missing.stderr).toMatch(/^serve: .*--model/);
    const badPort = runScript(["--model", "m", "--port", "70000"]);
    expect(badPort.status).toBe(2);
    expect(badPort.stderr).toBe('serve: --port must be a whole number in [0, 65535]; received "70000"\n');
  }, 90_000);

  it("a missing model folder stops it with the file named, exit 1", () => {
    const r = runScript(["--model", path.join(tmp, "nothing-here"), "--port", "0"]);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/serve: .*nothing-here.*metadata\.json/);
  }, 90_000);

  it("--port 0 binds 127.0.0.1 on a free port, prints it and the runtime, answers, and stops on SIGTERM", async () => {
    const child = spawn(process.execPath, [tsx, script, "--model", path.join(tmp, "model"), "--port", "0"], {
      cwd: root,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stderr = "";
    let stdout = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    const port = await new Promise<number>((resolve, reject) => {
      child.stderr.on("data", (d: Buffer) => {
        stderr += d.toString();
        const m = /listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(stderr);
        if (m) resolve(Number(m[1]));
      });
      child.on("exit", (code) => reject(new Error(`exited ${code}: ${stderr}`)));
    });
    try {
      expect(port).toBeGreaterThan(0);
      expect(stderr).toMatch(/^runtime: onnx \(/m);
      expect(stderr).toMatch(/^model: model version [0-9a-f]{12}$/m);
      const res = await fetch(`http://127.0.0.1:${port}/v1/triage`, {
        method: "POST",
        headers: { "content-type": "image/png" },
        body: await solidImage("png", 90, 30, 200),
      });
      const body = (await res.json()) as { probability: number; runtime: string };
      expect(res.status).toBe(200);
      expect(body.runtime).toBe("onnx");
      expect(body.probability).toBeCloseTo(meanColourProbability(90, 30, 200), 5);
    } finally {
      const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
      child.kill("SIGTERM");
      expect(await exited).toBe(0);
    }
    // stdout holds only JSON log lines, each with a level and a message.
    for (const line of stdout.trim().split("\n")) expect(JSON.parse(line)).toHaveProperty("msg");
    expect(stdout).toContain('"msg":"request completed"');
  }, 120_000);
});
