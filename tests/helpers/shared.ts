import fs from "node:fs";
import path from "node:path";
import { describe, it, type TestContext } from "vitest";
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
  return full ?? skipOrFailUnderCi(ctx, missingSharedPath(relativePath)!);
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
  const missing = missingTool(available, what, installHint);
  if (missing) skipOrFailUnderCi(ctx, missing);
}

/**
 * Why `relativePath` in the shared data folder cannot be used ("<path> is missing …"), or
 * undefined when it exists: the reason {@link requireSharedPath} and {@link describeRequiring} give.
 *
 * @example describeRequiring(missingSharedPath("tfevents-golden"), "golden files", () => { … })
 */
export function missingSharedPath(relativePath: string): string | undefined {
  if (findSharedPath(relativePath)) return undefined;
  return `${path.join(findSharedDir(), relativePath)} is missing (real data lives in ../shared beside the checkout, or MELANOMA_LAB_SHARED)`;
}

/**
 * Why a system tool cannot be used ("`what` is not installed (`installHint`)"), or undefined when
 * `available`: the reason {@link requireTool} and {@link describeRequiring} give.
 *
 * @example describeRequiring(missingTool(haveJupyter, "Jupyter", "apt-get install python3-nbclient"), "notebooks", () => { … })
 */
export function missingTool(available: boolean, what: string, installHint: string): string | undefined {
  return available ? undefined : `${what} is not installed (${installHint})`;
}

/**
 * `describe` for a suite whose hooks and tests all need one prerequisite; `missing` says why it
 * is missing (see {@link missingSharedPath}, {@link missingTool}) or is undefined. Outside CI a
 * missing prerequisite makes vitest report every test of the suite as skipped, and its hooks
 * never run (so a `beforeAll` needs no guard); the reason is printed. Under CI the suite's
 * hooks and tests do not run either: it holds one failing test, "prerequisite", whose error
 * names what is missing (a failing hook would leave its tests reported as skipped).
 *
 * @example describeRequiring(missingSharedPath("data/ham10000-dev"), "fine-tuning on HAM10000", () => { beforeAll(…); it(…); })
 */
export function describeRequiring(missing: string | undefined, name: string, factory: () => void): void {
  if (missing === undefined) {
    describe(name, factory);
  } else if (!isCi()) {
    console.warn(`skipping suite "${name}": ${missing}`);
    // Skip reason: a local machine without this suite's prerequisite (../shared data, Jupyter or
    // Chromium), named in `missing`; under CI the branch below fails instead. The reason travels
    // in the suite's name, so vitest's report says why it was skipped.
    describe.skip(`${name} (skipped: ${missing})`, factory);
  } else {
    describe(name, () => {
      it("prerequisite", () => {
        throw new Error(`CI: ${missing}`);
      });
    });
  }
}
