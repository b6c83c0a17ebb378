import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { readEventFile } from "../../lib/logging/eventFile.js";
import { findProjectRoot } from "../../lib/util/paths.js";

const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), "melanoma-lab-killed-"));
afterAll(() => fs.rmSync(tmpRoot, { recursive: true, force: true }));
const childScript = path.join(findProjectRoot(), "tests", "logging", "fixtures", "killedWriterChild.ts");

interface ChildResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
}

/** Runs the child writer; when `signal` is given, sends it once the child prints READY. */
function runChild(runDir: string, mode: "kill" | "exit" | "sigterm", signal?: NodeJS.Signals): Promise<ChildResult> {
  return new Promise((resolve, reject) => {
    // Node itself with tsx's loader (not the tsx CLI, which runs the script in a grandchild that
    // a SIGKILL to the CLI would orphan).
    const child = spawn(process.execPath, ["--import", "tsx", childScript, runDir, mode], {
      cwd: findProjectRoot(),
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    const timeout = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`child ${mode} did not finish in 60 s; stdout ${stdout}; stderr ${stderr}`));
    }, 60_000);
    child.stdout.on("data", (chunk: Buffer) => {
      stdout += chunk.toString();
      if (signal && stdout.includes("READY")) child.kill(signal);
    });
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    child.on("exit", (code, sig) => {
      clearTimeout(timeout);
      resolve({ code, signal: sig, stderr });
    });
  });
}

function readOnlyFile(runDir: string) {
  const files = fs.readdirSync(runDir).filter((f) => f.includes("tfevents"));
  expect(files).toHaveLength(1);
  return readEventFile(path.join(runDir, files[0]));
}

function scalarSteps(contents: ReturnType<typeof readEventFile>): number[] {
  return contents.events.flatMap((e) => (e.summaryValues ?? []).filter((v) => v.tag === "loss").map(() => e.step));
}

describe("a writer process that dies leaves a readable file", () => {
  it("SIGKILL mid-run: every complete record reads back, at most a truncated tail is reported", async () => {
    const runDir = path.join(tmpRoot, "kill");
    const result = await runChild(runDir, "kill", "SIGKILL");
    expect(result.signal).toBe("SIGKILL");
    const contents = readOnlyFile(runDir);
    expect(contents.events[0].fileVersion).toBe("brain.Event:2");
    const steps = scalarSteps(contents);
    // READY was printed at step 300 and the 10 ms timer had flushed before: hundreds of steps on disk.
    expect(steps.length).toBeGreaterThan(100);
    expect(steps).toEqual(steps.map((_, i) => i));
    for (const event of contents.events) {
      for (const value of event.summaryValues ?? [])
        if (value.tag === "loss") expect(value.tensor?.numbers?.[0]).toBe(event.step);
    }
    // A kill can cut the last write short (Linux stops a write on a fatal signal): that shows as one
    // truncated record exactly where the good records end, never as a CRC error in the middle.
    for (const problem of contents.problems) {
      expect(problem.kind).toMatch(/^truncated-/);
      expect(problem.byteOffset).toBe(contents.bytesConsumed);
    }
    expect(contents.problems.length).toBeLessThanOrEqual(1);
  });

  it("process.exit without flush: the exit hook writes every queued record", async () => {
    const runDir = path.join(tmpRoot, "exit");
    const result = await runChild(runDir, "exit");
    expect(result).toMatchObject({ code: 0, signal: null });
    const contents = readOnlyFile(runDir);
    expect(contents.problems).toEqual([]);
    expect(scalarSteps(contents)).toEqual(Array.from({ length: 50 }, (_, i) => i));
  });

  it("SIGTERM without flush: records are written and the process still dies of the signal", async () => {
    const runDir = path.join(tmpRoot, "sigterm");
    const result = await runChild(runDir, "sigterm", "SIGTERM");
    expect(result.signal).toBe("SIGTERM");
    const contents = readOnlyFile(runDir);
    expect(contents.problems).toEqual([]);
    expect(scalarSteps(contents)).toEqual(Array.from({ length: 50 }, (_, i) => i));
  });
});
