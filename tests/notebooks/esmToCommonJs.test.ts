import fs from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import type * as TypeScript from "typescript";
import { describe, expect, it } from "vitest";
import { findProjectRoot } from "../../lib/index.js";

const root = findProjectRoot();
const require = createRequire(import.meta.url);
const tslabDir = path.join(root, "node_modules", "tslab");
// tslab's own TypeScript fork, the one the kernel runs.
const ts = require(require.resolve("@tslab/typescript-for-tslab", { paths: [tslabDir] })) as typeof TypeScript;
const { createFastTranspileModule, SKIP_CHECK_MARKER } = require(
  path.join(root, "jupyter", "kernels", "tslab-melanoma", "esmToCommonJs.cjs"),
) as {
  createFastTranspileModule: (t: typeof TypeScript) => typeof TypeScript.transpileModule;
  SKIP_CHECK_MARKER: string;
};

// What tslab's esModuleToCommonJSModule passes (node_modules/tslab/dist/converter.js).
const TSLAB_COMMONJS_OPTIONS: TypeScript.TranspileOptions = {
  fileName: "custom.js",
  compilerOptions: {
    module: ts.ModuleKind.CommonJS,
    esModuleInterop: true,
    target: ts.ScriptTarget.ES2022,
    newLine: ts.NewLineKind.LineFeed,
    noImplicitUseStrict: true,
  },
};

function listTsFiles(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? listTsFiles(p) : p.endsWith(".ts") ? [p] : [];
  });
}

/** The ES module JavaScript tslab hands to its CommonJS step: every lib/ file and every notebook code cell. */
function listEsModuleInputs(): { name: string; js: string }[] {
  const toEsm = (source: string, fileName: string) =>
    ts.transpileModule(source, {
      fileName,
      compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022, esModuleInterop: true },
    }).outputText;
  const libFiles = listTsFiles(path.join(root, "lib")).map((f) => ({
    name: path.relative(root, f),
    js: toEsm(fs.readFileSync(f, "utf8"), f),
  }));
  const notebookDir = path.join(root, "notebooks");
  const cells = fs
    .readdirSync(notebookDir)
    .filter((n) => n.endsWith(".ipynb"))
    .flatMap((n) => {
      const notebook = JSON.parse(fs.readFileSync(path.join(notebookDir, n), "utf8")) as {
        cells: { cell_type: string; source: string | string[] }[];
      };
      return notebook.cells
        .filter((c) => c.cell_type === "code")
        .map((c, k) => {
          const source = Array.isArray(c.source) ? c.source.join("") : c.source;
          return { name: `${n} cell ${k + 1}`, js: toEsm(`${source}\nexport {}`, "__tslab__.ts") };
        });
    });
  return [...libFiles, ...cells];
}

describe("kernel launcher: tslab's ES module → CommonJS step without a type check", () => {
  const fastTranspileModule = createFastTranspileModule(ts);

  it("prints exactly what TypeScript's transpileModule prints, for every lib/ file and notebook cell", () => {
    const inputs = listEsModuleInputs();
    expect(inputs.length).toBeGreaterThan(100);
    const differing = inputs
      .filter(({ js }) => {
        const fast = fastTranspileModule(js, TSLAB_COMMONJS_OPTIONS).outputText;
        return fast !== ts.transpileModule(js, TSLAB_COMMONJS_OPTIONS).outputText;
      })
      .map((i) => i.name);
    expect(differing).toEqual([]);
    // It is CommonJS: imports became require calls and the marker line is gone.
    const converted = fastTranspileModule(inputs[0].js, TSLAB_COMMONJS_OPTIONS).outputText;
    expect(converted).toContain("require(");
    expect(converted).not.toContain(SKIP_CHECK_MARKER.trim());
  });

  it("marks the file so that TypeScript's checker skips it (the saving), and only for tslab's conversion", () => {
    const marked = ts.createSourceFile(
      "custom.js",
      SKIP_CHECK_MARKER + "export const a = 1;\n",
      ts.ScriptTarget.ES2022,
    );
    const skipTypeChecking = (ts as unknown as Record<string, unknown>).skipTypeChecking as (
      sourceFile: TypeScript.SourceFile,
      options: TypeScript.CompilerOptions,
      host: { isSourceOfProjectReferenceRedirect(fileName: string): boolean },
    ) => boolean;
    const host = { isSourceOfProjectReferenceRedirect: () => false };
    expect(marked.hasNoDefaultLib).toBe(true);
    expect(skipTypeChecking(marked, { skipDefaultLibCheck: true }, host)).toBe(true);
    // tslab's conversion goes through the marked, check-free compile once (no fallback).
    const calls: { input: string; options: TypeScript.TranspileOptions }[] = [];
    const recordingTs = {
      ModuleKind: ts.ModuleKind,
      transpileModule: (input: string, options: TypeScript.TranspileOptions) => {
        calls.push({ input, options });
        return ts.transpileModule(input, options);
      },
    } as unknown as typeof TypeScript;
    createFastTranspileModule(recordingTs)("import x from 'y';\nexport const a = x;\n", TSLAB_COMMONJS_OPTIONS);
    expect(calls).toHaveLength(1);
    expect(calls[0].input.startsWith(SKIP_CHECK_MARKER)).toBe(true);
    expect(calls[0].options.compilerOptions?.skipDefaultLibCheck).toBe(true);
    // Other callers (another file name or module kind) get TypeScript's own function's output.
    const esm = "import x from 'y';\nexport const a = x;\n";
    for (const options of [
      { ...TSLAB_COMMONJS_OPTIONS, fileName: "other.ts" },
      { ...TSLAB_COMMONJS_OPTIONS, compilerOptions: { module: ts.ModuleKind.ESNext } },
    ]) {
      expect(fastTranspileModule(esm, options)).toEqual(ts.transpileModule(esm, options));
    }
  });
});
