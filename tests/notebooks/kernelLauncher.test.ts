import { createRequire } from "node:module";
import path from "node:path";
import type * as TypeScript from "typescript";
import { describe, expect, it } from "vitest";
import { findProjectRoot } from "../../lib/index.js";

const root = findProjectRoot();
const require = createRequire(import.meta.url);
// tslab's own TypeScript fork, the one the kernel runs.
const ts = require(
  require.resolve("@tslab/typescript-for-tslab", { paths: [path.join(root, "node_modules", "tslab")] }),
) as typeof TypeScript;
const { createProgramWithoutBuilderState } = require(
  path.join(root, "jupyter", "kernels", "tslab-melanoma", "programWithoutBuilderState.cjs"),
) as {
  createProgramWithoutBuilderState: (t: typeof TypeScript) => TypeScript.CreateProgram<TypeScript.BuilderProgram>;
};

type Builder = TypeScript.BuilderProgram & { getAllDependencies(file: TypeScript.SourceFile): readonly string[] };

/**
 * Builds the programs tslab builds for a cell (its watch host and compiler options) over an
 * in-memory cell file at the project root, with `createProgram` (undefined: TypeScript's default,
 * the emit-and-semantic-diagnostics builder tslab uses): first with an empty cell, then, as tslab
 * does for each cell, with `cellSource` written and the program rebuilt at once.
 */
function buildCellProgram(cellSource: string, createProgram?: TypeScript.CreateProgram<TypeScript.BuilderProgram>) {
  const cellPath = path.join(root, "__tslab__.ts");
  let content = "export {};\n";
  let cellWatcher: TypeScript.FileWatcherCallback | undefined;
  let pendingRebuild: (() => void) | undefined;
  const system: TypeScript.System = {
    ...ts.sys,
    readFile: (p, encoding) => (p === cellPath ? content : ts.sys.readFile(p, encoding)),
    fileExists: (p) => p === cellPath || ts.sys.fileExists(p),
    watchFile: (p, callback) => {
      if (p === cellPath) cellWatcher = callback;
      return { close() {} };
    },
    watchDirectory: () => ({ close() {} }),
    setTimeout: (callback: () => void) => ((pendingRebuild = callback), 0),
    clearTimeout: () => (pendingRebuild = undefined),
  };
  const options: TypeScript.CompilerOptions = {
    module: ts.ModuleKind.ESNext,
    moduleResolution: ts.ModuleResolutionKind.Node10,
    esModuleInterop: true,
    target: ts.ScriptTarget.ES2022,
    lib: ["lib.es2022.d.ts"],
    declaration: true,
    allowJs: true,
    checkJs: true,
    skipLibCheck: true,
    resolveJsonModule: true,
    rootDir: root,
    outDir: path.join(root, "out", "tslab-probe"),
  };
  let builder: Builder | undefined;
  const host = ts.createWatchCompilerHost(
    [cellPath],
    options,
    system,
    createProgram,
    () => {},
    () => {},
  );
  host.afterProgramCreate = (b) => (builder = b as Builder);
  const watch = ts.createWatchProgram(host);
  content = cellSource;
  cellWatcher!(cellPath, ts.FileWatcherEventKind.Changed);
  pendingRebuild!();
  watch.close();
  return { builder: builder!, cell: builder!.getSourceFile(cellPath)! };
}

// What tslab keeps of a cell's dependencies: the project sources it compiles and checks.
const projectSources = (names: readonly string[]) =>
  names.filter((d) => d.endsWith(".js") || (d.endsWith(".ts") && !d.endsWith(".d.ts"))).sort();

describe("kernel launcher: tslab's per-cell programs without the builder state", () => {
  it("lists the same project files as TypeScript's builder for an import cell and for a script cell", () => {
    for (const cellSource of [
      'import { showTable } from "./lib/index.js";\nexport { showTable };\n',
      "const answer = 42;\n",
    ]) {
      const reference = buildCellProgram(cellSource);
      const fast = buildCellProgram(cellSource, createProgramWithoutBuilderState(ts));
      const expected = projectSources(reference.builder.getAllDependencies(reference.cell));
      expect(projectSources(fast.builder.getAllDependencies(fast.cell))).toEqual(expected);
      if (cellSource.startsWith("import")) {
        expect(expected).toContain(path.join(root, "lib", "index.ts"));
        expect(expected.length).toBeGreaterThan(100);
      } else expect(expected).toEqual([path.join(root, "__tslab__.ts")]);
      // tslab reads the cell's bound names straight after the program is made.
      const localCount = (f: TypeScript.SourceFile) => (f as unknown as { locals?: Map<string, unknown> }).locals?.size;
      expect(localCount(fast.cell)).toBe(localCount(reference.cell));
      expect(localCount(fast.cell)).toBeGreaterThan(0);
    }
  });
});
