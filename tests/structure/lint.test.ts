import { spawnSync } from "node:child_process";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { findProjectRoot } from "../../lib/index.js";

// The linter and formatter run inside `npm test`, so CI fails on a lint error or unformatted code
// (fix with `npm run lint:fix`).
const root = findProjectRoot();

function runTool(bin: string, args: string[]): { status: number | null; output: string } {
  const result = spawnSync(process.execPath, [path.join(root, "node_modules", bin), ...args], {
    cwd: root,
    encoding: "utf8",
  });
  return { status: result.status, output: `${result.stdout}${result.stderr}` };
}

describe("lint and format", () => {
  it("ESLint (typescript-eslint recommended) reports no problems", () => {
    const { status, output } = runTool("eslint/bin/eslint.js", ["--max-warnings", "0", "."]);
    expect(output.trim()).toBe("");
    expect(status).toBe(0);
  });

  it("Prettier finds every source file formatted", () => {
    const { status, output } = runTool("prettier/bin/prettier.cjs", ["--check", "--log-level", "warn", "."]);
    expect(output.trim()).toBe("");
    expect(status).toBe(0);
  });
});
