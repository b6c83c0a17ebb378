import { spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import path from "node:path";

/** How a child process ended, with its stdout and stderr interleaved. */
export interface ChildExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  output: string;
}

/** A running `scripts/experiment.ts` child and the promise of its exit. */
export interface ExperimentChild {
  child: ChildProcess;
  exited: Promise<ChildExit>;
}

/**
 * Starts `tsx scripts/experiment.ts <args>` in its own process group (the tsx cli runs the script
 * in a grandchild, and a kill must reach both: see {@link killProcessGroup}), with `env` added to
 * this process's environment.
 */
export function spawnExperimentScript(args: readonly string[], env: Record<string, string> = {}): ExperimentChild {
  return spawnTsxScript("scripts/experiment.ts", args, env);
}

/** Starts `tsx <script> <args>` as {@link spawnExperimentScript} starts scripts/experiment.ts (own process group). */
export function spawnTsxScript(
  script: string,
  args: readonly string[],
  env: Record<string, string> = {},
): ExperimentChild {
  const cli = path.resolve("node_modules/tsx/dist/cli.mjs");
  const child = spawn(process.execPath, [cli, script, ...args], {
    stdio: ["ignore", "pipe", "pipe"],
    detached: true,
    env: { ...process.env, ...env },
  });
  let output = "";
  child.stdout!.on("data", (d) => (output += d));
  child.stderr!.on("data", (d) => (output += d));
  const exited = new Promise<ChildExit>((resolve) =>
    child.on("exit", (code, signal) => resolve({ code, signal, output })),
  );
  return { child, exited };
}

/** SIGKILLs the child's whole process group (started detached by {@link spawnExperimentScript}) and waits for its exit. */
export async function killProcessGroup(run: ExperimentChild): Promise<ChildExit> {
  process.kill(-run.child.pid!, "SIGKILL");
  return run.exited;
}

/**
 * Polls `ready` every `pollMs` until it is true, then returns; throws with the child's output when
 * the child exits first (the run finished before the point it was meant to be killed at).
 */
export async function waitWhileRunning(run: ExperimentChild, ready: () => boolean, pollMs = 10): Promise<void> {
  let finished = false;
  void run.exited.then(() => (finished = true));
  while (!finished && !ready()) await new Promise((resolve) => setTimeout(resolve, pollMs));
  if (finished) throw new Error(`the run ended before it could be killed:\n${(await run.exited).output}`);
}

/** Epoch that `<checkpointDir>/latest.json` points at (trainHead / fineTuneTopBlocks checkpoints); 0 when there is none yet. */
export function readLatestCheckpointEpoch(checkpointDir: string): number {
  try {
    return (JSON.parse(fs.readFileSync(path.join(checkpointDir, "latest.json"), "utf8")) as { epoch: number }).epoch;
  } catch {
    return 0;
  }
}
