import { spawnSync } from "node:child_process";
import path from "node:path";
import { describe, expect, it } from "vitest";

// Notebooks import lib/index.ts through tslab, which type-checks lib with its own compiler options:
// not strict (no strictNullChecks), Node10 module resolution, declaration emit. Some narrowing that
// strict mode accepts (a truthiness check on a boolean discriminant, `x.format === undefined` on a
// union) fails there, and a notebook then dies in its import cell. tests/structure/notebookTypes
// checks the cells with the project's strict tsconfig; this checks lib the way the kernel does.
const root = path.resolve(import.meta.dirname, "../..");

describe("lib/index.ts compiles under tslab's compiler options", () => {
  it("has no type errors without strict mode (as the notebook kernel compiles it)", () => {
    const tsc = spawnSync(
      process.execPath,
      [
        path.join(root, "node_modules", "typescript", "bin", "tsc"),
        "--noEmit",
        ...["--module", "esnext", "--moduleResolution", "node10", "--target", "es2022", "--lib", "es2022"],
        ...["--esModuleInterop", "--skipLibCheck", "--resolveJsonModule", "--allowJs", "--declaration"],
        ...["--types", "node", "--experimentalDecorators"],
        path.join(root, "lib", "index.ts"),
      ],
      { cwd: root, encoding: "utf8", timeout: 180_000 },
    );
    const errors = tsc.stdout.split("\n").filter((l) => /error TS\d+/.test(l));
    expect(errors).toEqual([]);
    expect(tsc.status).toBe(0);
  }, 200_000);
});
