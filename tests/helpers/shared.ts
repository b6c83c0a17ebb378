import fs from "node:fs";
import path from "node:path";
import { findSharedDir } from "../../lib/index.js";

/**
 * Resolves a path inside ../shared for a test. When it is missing: under CI (env `CI` set) the
 * test fails; otherwise it returns undefined and the caller skips with the reason printed.
 */
export function sharedPathOrSkip(relativePath: string): string | undefined {
  const full = path.join(findSharedDir(), relativePath);
  if (fs.existsSync(full)) return full;
  const why = `${full} is missing (real data lives in ../shared beside the checkout)`;
  if (process.env.CI) throw new Error(`CI: ${why}`);
  console.warn(`skipping: ${why}`);
  return undefined;
}

/** True when a command exists on PATH or at an absolute path. */
export function commandExists(cmd: string): boolean {
  if (path.isAbsolute(cmd)) return fs.existsSync(cmd);
  return (process.env.PATH ?? "").split(path.delimiter).some((dir) => fs.existsSync(path.join(dir, cmd)));
}

/**
 * For tests that need a system tool (Jupyter, Chromium, python3-sklearn): under CI a missing tool
 * fails the test; otherwise returns false so the caller can skip with a message.
 */
export function toolOrSkip(available: boolean, what: string, installHint: string): boolean {
  if (available) return true;
  const why = `${what} is not installed (${installHint})`;
  if (process.env.CI) throw new Error(`CI: ${why}`);
  console.warn(`skipping: ${why}`);
  return false;
}
