import { spawnSync } from "node:child_process";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { findProjectRoot } from "../../lib/index.js";

const root = findProjectRoot();

/** Runs a script as `npm run …` does (tsx), with a timeout so a hang fails the test instead of stalling it. */
function runScript(script: string, args: string[]) {
  const result = spawnSync(
    process.execPath,
    [path.join(root, "node_modules", "tsx", "dist", "cli.mjs"), path.join(root, script), ...args],
    {
      cwd: root,
      encoding: "utf8",
      timeout: 60_000,
      env: { ...process.env, MELANOMA_LAB_BACKEND: "cpu" },
    },
  );
  return { status: result.status, signal: result.signal, stdout: result.stdout, stderr: result.stderr };
}

describe("npm run score: command line", () => {
  it("answers --help with its flags, defaults and an example, exit 0", () => {
    const r = runScript("scripts/score.ts", ["--help"]);
    expect(r.status).toBe(0);
    for (const flag of [
      "--model <dir>",
      "--input",
      "--out",
      "--batch-size <n>",
      "--tta",
      "--retry-errors",
      "--overwrite",
      "-h, --help",
    ])
      expect(r.stdout).toContain(flag);
    expect(r.stdout).toContain("default 32");
    expect(r.stdout).toMatch(/Examples?:\n {2}npm run score -- --model /);
  }, 90_000);

  it("rejects an unknown flag with one line naming the nearest, exit 2", () => {
    const r = runScript("scripts/score.ts", ["--model", "m", "--input", "i", "--out", "o", "--bach-size", "3"]);
    expect(r.status).toBe(2);
    expect(r.stderr).toBe("score: unknown option --bach-size; did you mean --batch-size? (see --help)\n");
  }, 90_000);

  it("rejects --batch-size 0 and abc with a clear line instead of hanging or printing NaN, exit 2", () => {
    for (const bad of ["0", "abc"]) {
      const r = runScript("scripts/score.ts", ["--model", "m", "--input", "i", "--out", "o", "--batch-size", bad]);
      expect(r.signal).toBeNull();
      expect(r.status).toBe(2);
      expect(r.stderr).toBe(`score: --batch-size must be a whole number ≥ 1; received "${bad}"\n`);
      expect(r.stdout).not.toContain("NaN");
    }
  }, 150_000);
});

describe("npm run experiment: command line", () => {
  it("answers --help listing every flag, exit 0", () => {
    const r = runScript("scripts/experiment.ts", ["--help"]);
    expect(r.status).toBe(0);
    for (const flag of [
      "--data <dir>",
      "--backbone",
      "--epochs <n>",
      "--folds <n>",
      "--split lesion|source",
      "--target malignant|diagnosis",
      "--dropout <x>",
      "--resume",
      "--external <dir>",
      "--skip-loso",
    ]) {
      expect(r.stdout).toContain(flag);
    }
    expect(r.stdout).toMatch(/--folds <n> +folds of the lesion-grouped split \(a whole number ≥ 2; default 5\)/);
  }, 90_000);

  it("rejects a bad number or choice with one line and no stack trace, exit 2", () => {
    const folds = runScript("scripts/experiment.ts", ["--data", "d", "--backbone", "mobilenet_v2", "--folds", "1"]);
    expect(folds.status).toBe(2);
    expect(folds.stderr).toBe('experiment: --folds must be a whole number ≥ 2; received "1"\n');
    const dropout = runScript("scripts/experiment.ts", [
      "--data",
      "d",
      "--backbone",
      "mobilenet_v2",
      "--dropout",
      "abc",
    ]);
    expect(dropout.stderr).toBe('experiment: --dropout must be a number in [0, 1); received "abc"\n');
    const missing = runScript("scripts/experiment.ts", ["--backbone", "mobilenet_v2"]);
    expect(missing.status).toBe(2);
    expect(missing.stderr.trim().split("\n")).toHaveLength(1);
    expect(missing.stderr).toMatch(/^experiment: --data is required/);
  }, 200_000);
});

describe("transfer report flags", () => {
  it("experiment --external with a missing folder stops with one line naming it, exit 2, before any work", () => {
    const r = runScript("scripts/experiment.ts", [
      "--data",
      "data",
      "--backbone",
      "mobilenet_v2",
      "--external",
      "no/such/isic-ext",
    ]);
    expect(r.status).toBe(2);
    expect(r.stderr).toBe(
      "experiment: --external folder no/such/isic-ext does not exist; expected labels.csv + images/\n",
    );
    expect(r.stdout).not.toContain("backend:");
  }, 90_000);

  it("demo --external with a missing folder stops with one line naming it, exit 2, before any notebook", () => {
    const r = runScript("scripts/demo.ts", ["--small", "--external", "no/such/isic-ext"]);
    expect(r.status).toBe(2);
    expect(r.stderr).toBe("demo: --external folder no/such/isic-ext does not exist; expected labels.csv + images/\n");
    expect(r.stdout).not.toContain("notebook 1/6");
    const help = runScript("scripts/demo.ts", ["--help"]);
    expect(help.stdout).toMatch(/--external <dir>/);
  }, 90_000);

  it("leaderboard --sort lists worst-source|cv|external and refuses another key with one line", () => {
    const help = runScript("scripts/leaderboard.ts", ["--help"]);
    expect(help.stdout).toMatch(/--sort cv\|worst-source\|external/);
    const bad = runScript("scripts/leaderboard.ts", ["--sort", "auc"]);
    expect(bad.status).toBe(2);
    expect(bad.stderr.trim().split("\n")).toHaveLength(1);
    expect(bad.stderr).toMatch(/^leaderboard: --sort must be one of cv, worst-source, external; received "auc"/);
  }, 90_000);
});

describe("the other scripts answer --help and refuse unknown flags", () => {
  it.each([
    ["scripts/demo.ts", "demo", "--notebooks-out <dir>"],
    ["scripts/leaderboard.ts", "leaderboard", "--runs <dir>"],
    ["scripts/make-synthetic.ts", "data:synthetic", "--count <n>"],
    ["scripts/tensorboard.ts", "tensorboard", "--list-only"],
    ["bench/data.ts", "bench data", "--images <n>"],
  ])(
    "%s",
    (script, name, flag) => {
      const help = runScript(script, ["--help"]);
      expect(help.status).toBe(0);
      expect(help.stdout).toContain(flag);
      expect(help.stdout).toMatch(/Examples?:\n/);
      const unknown = runScript(script, ["--no-such-flag"]);
      expect(unknown.status).toBe(2);
      expect(unknown.stderr).toMatch(
        new RegExp(`^${name}: unknown option --no-such-flag; (did you mean|valid options).*\\(see --help\\)\\n$`),
      );
    },
    200_000,
  );
});
