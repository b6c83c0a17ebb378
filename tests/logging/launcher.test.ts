import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { createEventWriter } from "../../lib/logging/eventWriter.js";
import { readLogDir } from "../../lib/logging/readLogDir.js";
import { findTensorBoardExecutable, formatLogDirSummary } from "../../lib/logging/tensorBoardLauncher.js";
import { findProjectRoot } from "../../lib/util/paths.js";

const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), "melanoma-lab-launcher-"));
afterAll(() => fs.rmSync(tmpRoot, { recursive: true, force: true }));

const logdir = path.join(tmpRoot, "logs");
for (const run of ["train", "validation"]) {
  const writer = createEventWriter(path.join(logdir, "exp-1", run), { flushIntervalMs: 0 });
  for (let epoch = 0; epoch < 3; epoch++) writer.addScalar("epoch_loss", 1 / (epoch + 1), epoch);
  if (run === "train") writer.addText("notes", "hello", 0);
  writer.close();
}
// A TensorBoard stand-in: prints the arguments it was started with.
const fakeBin = path.join(tmpRoot, "bin");
fs.mkdirSync(fakeBin);
fs.writeFileSync(path.join(fakeBin, "tensorboard"), '#!/bin/sh\necho "FAKE-TENSORBOARD $*"\n', { mode: 0o755 });
const nodeDir = path.dirname(process.execPath);

function runScript(pathEnv: string, extraArgs: string[] = []) {
  return spawnSync(process.execPath, ["--import", "tsx", "scripts/tensorboard.ts", "--logdir", logdir, ...extraArgs], {
    cwd: findProjectRoot(),
    env: { ...process.env, PATH: pathEnv },
    encoding: "utf8",
    timeout: 60_000,
  });
}

describe("npm run tensorboard", () => {
  it("lists runs and tags per plugin with point counts", () => {
    const summary = formatLogDirSummary(readLogDir(logdir));
    expect(summary).toContain(`${logdir}: 2 runs`);
    expect(summary).toMatch(
      / {2}exp-1\/train\n {4}scalars: epoch_loss \(3 pts, last step 2\)\n {4}text: notes \(1 pts, last step 0\)/,
    );
    expect(summary).toMatch(/ {2}exp-1\/validation\n {4}scalars: epoch_loss \(3 pts, last step 2\)/);
  });

  it("finds tensorboard on PATH only when it is there", () => {
    expect(findTensorBoardExecutable(fakeBin)).toBe(path.join(fakeBin, "tensorboard"));
    expect(findTensorBoardExecutable(nodeDir)).toBeUndefined();
  });

  it("starts tensorboard on 127.0.0.1 with our logdir when installed", () => {
    const result = runScript([fakeBin, nodeDir].join(path.delimiter), ["--port", "6123"]);
    expect(result.stderr).toBe("");
    expect(result.status).toBe(0);
    expect(result.stdout).toContain("exp-1/train");
    expect(result.stdout).toContain(`FAKE-TENSORBOARD --logdir ${logdir} --host 127.0.0.1 --port 6123`);
  });

  it("says how to install it, and where the logs are, when it is missing", () => {
    const result = runScript(nodeDir);
    expect(result.status).toBe(0);
    expect(result.stdout).toContain("pip install tensorboard");
    expect(result.stdout).toContain(`Logs are in ${logdir}`);
    expect(result.stdout).toContain("exp-1/validation");
  });
});
