import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { findProjectRoot } from "../../lib/util/paths.js";

// Runs a real vitest on a small spec that uses the helpers, with the shared folder pointed at an
// empty or a prepared place and CI set or not, and reads what vitest itself reported.
const root = findProjectRoot();

interface ProbeRun {
  exitCode: number | null;
  output: string;
  statusByTitle: Record<string, string>;
  failureByTitle: Record<string, string>;
  skippedCount: number;
}

const SPEC = `import fs from "node:fs";
import { beforeAll, expect, it } from "vitest";
import {
  describeRequiring,
  findSharedPath,
  missingSharedPath,
  requireSharedPath,
  requireTool,
} from "../../tests/helpers/shared.js";

it("needs shared data", (ctx) => {
  const file = requireSharedPath(ctx, "data/probe.txt");
  expect(fs.readFileSync(file, "utf8")).toBe("probe");
});
it("needs a tool", (ctx) => {
  requireTool(ctx, false, "probe-tool", "apt-get install probe-tool");
  expect.unreachable("requireTool returned for a missing tool");
});
describeRequiring(missingSharedPath("data/probe.txt"), "suite", () => {
  let text = "";
  // Unguarded: a skipped suite must not run its hooks (this one would throw without the file).
  beforeAll(() => {
    text = fs.readFileSync(findSharedPath("data/probe.txt") ?? "no-such-file", "utf8");
  });
  it("needs shared data through its suite", () => {
    expect(text).toBe("probe");
  });
});
it("needs nothing", () => {
  // Runs in every configuration; it checks the harness handed the child its shared folder.
  expect(process.env.MELANOMA_LAB_SHARED).toMatch(/ml-skip-helper/);
});
`;

describe("tests/helpers/shared: a missing prerequisite is a vitest skip outside CI and a failure under CI", () => {
  let probeDir: string;
  let sharedDir: string;

  beforeAll(() => {
    fs.mkdirSync(path.join(root, "out"), { recursive: true });
    // Inside the project so the spec resolves "vitest" and the helpers like the real tests do.
    probeDir = fs.mkdtempSync(path.join(root, "out", "skip-helper-probe-"));
    fs.writeFileSync(path.join(probeDir, "probe.test.ts"), SPEC);
    fs.writeFileSync(
      path.join(probeDir, "vitest.config.mts"),
      `export default { test: { include: ["*.test.ts"] } };\n`,
    );
    sharedDir = fs.mkdtempSync(path.join(os.tmpdir(), "ml-skip-helper-shared-"));
    fs.mkdirSync(path.join(sharedDir, "data"));
    fs.writeFileSync(path.join(sharedDir, "data", "probe.txt"), "probe");
  });

  afterAll(() => {
    fs.rmSync(probeDir, { recursive: true, force: true });
    fs.rmSync(sharedDir, { recursive: true, force: true });
  });

  function runProbe(env: { sharedDir: string; ci: boolean }): ProbeRun {
    const jsonFile = path.join(probeDir, `result-${env.ci ? "ci" : "local"}-${path.basename(env.sharedDir)}.json`);
    const childEnv: NodeJS.ProcessEnv = {
      ...process.env,
      MELANOMA_LAB_SHARED: env.sharedDir,
      NO_COLOR: "1",
      FORCE_COLOR: "0",
    };
    // The outer vitest's own markers would make the inner one think it is a worker.
    for (const key of Object.keys(childEnv)) if (key.startsWith("VITEST") || key === "CI") delete childEnv[key];
    if (env.ci) childEnv.CI = "1";
    const result = spawnSync(
      process.execPath,
      [
        path.join(root, "node_modules", "vitest", "vitest.mjs"),
        "run",
        "--root",
        probeDir,
        "--config",
        path.join(probeDir, "vitest.config.mts"),
        "--reporter=verbose",
        "--reporter=json",
        `--outputFile.json=${jsonFile}`,
      ],
      { cwd: probeDir, env: childEnv, encoding: "utf8", timeout: 120_000 },
    );
    const output = `${result.stdout}\n${result.stderr}`;
    expect(fs.existsSync(jsonFile), output).toBe(true);
    const report = JSON.parse(fs.readFileSync(jsonFile, "utf8")) as {
      numPendingTests: number;
      numTodoTests: number;
      testResults: { assertionResults: { title: string; status: string; failureMessages: string[] }[] }[];
    };
    const statusByTitle: Record<string, string> = {};
    const failureByTitle: Record<string, string> = {};
    for (const a of report.testResults.flatMap((t) => t.assertionResults)) {
      statusByTitle[a.title] = a.status;
      failureByTitle[a.title] = a.failureMessages.join("\n");
    }
    return {
      exitCode: result.status,
      output,
      statusByTitle,
      failureByTitle,
      skippedCount: report.numPendingTests + report.numTodoTests,
    };
  }

  it("outside CI with the shared folder missing: tests needing it or a tool are reported as skipped, with the reason", () => {
    const missing = path.join(os.tmpdir(), "ml-skip-helper-no-such-shared-dir");
    const run = runProbe({ sharedDir: missing, ci: false });
    expect(run.statusByTitle, run.output).toEqual({
      "needs shared data": "skipped",
      "needs a tool": "skipped",
      "needs shared data through its suite": "skipped",
      "needs nothing": "passed",
    });
    expect(run.skippedCount).toBe(3);
    expect(run.exitCode, run.output).toBe(0);
    // The verbose reporter prints the note beside each skipped test.
    expect(run.output).toContain(`[${path.join(missing, "data", "probe.txt")} is missing`);
    expect(run.output).toContain("[probe-tool is not installed (apt-get install probe-tool)]");
    // A skipped suite carries its reason in its name.
    expect(run.output).toContain(`suite (skipped: ${path.join(missing, "data", "probe.txt")} is missing`);
  });

  it("under CI with the shared folder missing: they fail instead (a suite as one prerequisite test), naming what is missing", () => {
    const missing = path.join(os.tmpdir(), "ml-skip-helper-no-such-shared-dir");
    const run = runProbe({ sharedDir: missing, ci: true });
    expect(run.statusByTitle, run.output).toEqual({
      "needs shared data": "failed",
      "needs a tool": "failed",
      prerequisite: "failed",
      "needs nothing": "passed",
    });
    expect(run.skippedCount).toBe(0);
    expect(run.exitCode).not.toBe(0);
    expect(run.failureByTitle["needs shared data"]).toContain(
      `CI: ${path.join(missing, "data", "probe.txt")} is missing`,
    );
    expect(run.failureByTitle["needs a tool"]).toContain(
      "CI: probe-tool is not installed (apt-get install probe-tool)",
    );
    // The suite's own hooks and tests do not run under CI: one failing test names what is missing.
    expect(run.failureByTitle.prerequisite).toContain(`CI: ${path.join(missing, "data", "probe.txt")} is missing`);
  });

  it("with the shared folder present, the tests that need it run (and only the missing tool skips)", () => {
    const run = runProbe({ sharedDir, ci: false });
    expect(run.statusByTitle, run.output).toEqual({
      "needs shared data": "passed",
      "needs a tool": "skipped",
      "needs shared data through its suite": "passed",
      "needs nothing": "passed",
    });
    expect(run.skippedCount).toBe(1);
  });
});
