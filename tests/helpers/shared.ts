import fs from "node:fs";
import path from "node:path";
import { beforeEach, type TestContext } from "vitest";
import { findSharedDir } from "../../lib/util/paths.js";

/** True when the tests run under CI (env `CI` set and not "false"/"0"), where a missing prerequisite is a failure. */
export function isCi(): boolean {
  const ci = process.env.CI;
  return ci !== undefined && ci !== "" && ci !== "false" && ci !== "0";
}

/**
 * Ends the current test because a prerequisite is missing: under CI it throws (the test fails
 * with `why`); elsewhere it marks the test SKIPPED through vitest's `ctx.skip(note)`, so the run
 * counts it as skipped (not passed) and the verbose reporter shows `why` beside it. The reason is
 * also printed, since the default reporter lists only the skip count.
 *
 * @example if (!haveTool) skipOrFailUnderCi(ctx, "Chromium is not installed (apt-get install chromium)")
 */
export function skipOrFailUnderCi(ctx: TestContext, why: string): never {
  if (isCi()) throw new Error(`CI: ${why}`);
  console.warn(`skipping "${ctx.task.name}": ${why}`);
  return ctx.skip(why);
}

/**
 * The absolute path of `relativePath` inside the shared data folder (see `findSharedDir`:
 * `MELANOMA_LAB_SHARED` or `<root>/../shared`) when it exists, else undefined. Never throws and
 * never skips: for decisions taken while the file is collected (a server that serves the folder,
 * a `beforeAll` that prepares data), where a throw would hide the test names. Tests that need the
 * path call {@link requireSharedPath}.
 *
 * @example const weightsDir = findSharedPath("weights/mobilenet_v1_0.25_224"); // string | undefined
 */
export function findSharedPath(relativePath: string): string | undefined {
  const full = path.join(findSharedDir(), relativePath);
  return fs.existsSync(full) ? full : undefined;
}

/**
 * Inside a test: the absolute path of `relativePath` in the shared data folder. When it is
 * missing the test is skipped (outside CI) or fails (under CI), naming the path looked for.
 *
 * @example it("loads HAM10000", (ctx) => { const dir = requireSharedPath(ctx, "data/ham10000-dev"); … })
 */
export function requireSharedPath(ctx: TestContext, relativePath: string): string {
  const full = findSharedPath(relativePath);
  if (full) return full;
  return skipOrFailUnderCi(
    ctx,
    `${path.join(findSharedDir(), relativePath)} is missing (real data lives in ../shared beside the checkout, or MELANOMA_LAB_SHARED)`,
  );
}

/** True when a command exists on PATH or at an absolute path. */
export function commandExists(cmd: string): boolean {
  if (path.isAbsolute(cmd)) return fs.existsSync(cmd);
  return (process.env.PATH ?? "").split(path.delimiter).some((dir) => fs.existsSync(path.join(dir, cmd)));
}

/**
 * Inside a test that needs a system tool (Jupyter, Chromium, python3-h5py): returns when
 * `available`; otherwise skips the test (outside CI) or fails it (under CI) with
 * "`what` is not installed (`installHint`)".
 *
 * @example requireTool(ctx, commandExists("/usr/bin/chromium"), "Chromium (/usr/bin/chromium)", "apt-get install chromium")
 */
export function requireTool(ctx: TestContext, available: boolean, what: string, installHint: string): void {
  if (!available) skipOrFailUnderCi(ctx, `${what} is not installed (${installHint})`);
}

/**
 * For a `describe` whose every test needs the same tool: registers a `beforeEach` that calls
 * {@link requireTool}, so each test is reported as skipped (or, under CI, failed) with the reason.
 * A `beforeAll` of the same describe still runs, so it must itself do nothing when `available` is false.
 *
 * @example describe("notebooks", () => { requireToolInEachTest(haveJupyter, "Jupyter (nbclient)", "apt-get install python3-nbclient"); … })
 */
export function requireToolInEachTest(available: boolean, what: string, installHint: string): void {
  beforeEach((ctx) => requireTool(ctx, available, what, installHint));
}

/**
 * For a `describe` whose every test needs the same shared path: registers a `beforeEach` that
 * calls {@link requireSharedPath}. A `beforeAll` of the same describe still runs, so it must
 * check {@link findSharedPath} itself and do nothing when the path is missing.
 *
 * @example describe("golden files", () => { requireSharedPathInEachTest("tfevents-golden"); … })
 */
export function requireSharedPathInEachTest(relativePath: string): void {
  beforeEach((ctx) => void requireSharedPath(ctx, relativePath));
}
