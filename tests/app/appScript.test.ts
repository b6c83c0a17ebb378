import { spawnSync } from "node:child_process";
import path from "node:path";
import { describe, expect, it } from "vitest";

function runApp(args: string[]) {
  return spawnSync(process.execPath, [path.resolve("node_modules/tsx/dist/cli.mjs"), "scripts/app.ts", ...args], {
    encoding: "utf8",
    timeout: 60_000,
  });
}

describe("npm run app (command line)", () => {
  it("--help lists --model, --port, --host with defaults and an example", () => {
    const r = runApp(["--help"]);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/--model <dir>/);
    expect(r.stdout).toMatch(/--port <n>.*default 5173/);
    expect(r.stdout).toMatch(/--host <address>.*default 127\.0\.0\.1/);
    expect(r.stdout).toMatch(/npm run app -- --model models\//);
  }, 60_000);

  it("a folder without an exported model stops with one line naming the missing file", () => {
    const r = runApp(["--model", "no-such-model-dir", "--out-dir", "out/app-cli-test"]);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(
      /app: .*no-such-model-dir\/model\.json is missing: --model expects an exported triage model folder/,
    );
  }, 60_000);

  it("a bad --port value is refused with exit code 2", () => {
    const r = runApp(["--model", "m", "--port", "70000"]);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/--port/);
  }, 60_000);
});
