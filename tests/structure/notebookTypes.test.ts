import fs from "node:fs";
import path from "node:path";
import ts from "typescript";
import { beforeAll, describe, expect, it } from "vitest";
import { findProjectRoot } from "../../lib/index.js";

// tslab compiles each code cell as it runs, but a type error then surfaces only mid-demo. Here the
// code cells of each notebook are joined, in order, into one module placed at the project root
// (where the kernel starts, so `./lib/index.js` resolves as it does there) and type-checked with
// the project's tsconfig.json.
const root = findProjectRoot();
const notebookDir = path.join(root, "notebooks");
const notebooks = fs
  .readdirSync(notebookDir)
  .filter((n) => /^\d\d-.*\.ipynb$/.test(n))
  .sort();

function readCompilerOptions(): ts.CompilerOptions {
  const configPath = path.join(root, "tsconfig.json");
  const { config, error } = ts.readConfigFile(configPath, ts.sys.readFile);
  if (error) throw new Error(ts.flattenDiagnosticMessageText(error.messageText, "\n"));
  return ts.parseJsonConfigFileContent(config, ts.sys, root).options;
}

interface NotebookCell {
  cell_type: string;
  source: string | string[];
}

/** Code cells joined into one module, with a map from module line to (cell, line in cell). */
function cellsAsModule(cells: NotebookCell[]): { text: string; origin: { cell: number; line: number }[] } {
  const lines: string[] = [];
  const origin: { cell: number; line: number }[] = [];
  cells.forEach((cell, cellIndex) => {
    if (cell.cell_type !== "code") return;
    const source = Array.isArray(cell.source) ? cell.source.join("") : cell.source;
    source.split("\n").forEach((line, i) => {
      lines.push(line);
      origin.push({ cell: cellIndex + 1, line: i + 1 });
    });
  });
  // `export {}` makes the file a module, so top-level await type-checks as tslab runs it.
  return { text: `${lines.join("\n")}\nexport {};\n`, origin };
}

/** Type errors per notebook name, from one program holding every notebook (lib/ is checked once). */
function typeErrorsByNotebook(cellsByName: Map<string, NotebookCell[]>): Map<string, string[]> {
  const options = readCompilerOptions();
  const modules = new Map<string, { name: string; text: string; origin: { cell: number; line: number }[] }>();
  for (const [name, cells] of cellsByName) {
    modules.set(path.join(root, `__notebook_${name.replace(/\W/g, "_")}.ts`), { name, ...cellsAsModule(cells) });
  }
  const host = ts.createCompilerHost(options);
  const readFile = host.readFile.bind(host);
  const fileExists = host.fileExists.bind(host);
  const getSourceFile = host.getSourceFile.bind(host);
  host.readFile = (f) => modules.get(path.resolve(f))?.text ?? readFile(f);
  host.fileExists = (f) => modules.has(path.resolve(f)) || fileExists(f);
  host.getSourceFile = (f, languageVersion, onError, shouldCreate) => {
    const virtual = modules.get(path.resolve(f));
    return virtual
      ? ts.createSourceFile(f, virtual.text, languageVersion, true)
      : getSourceFile(f, languageVersion, onError, shouldCreate);
  };
  const program = ts.createProgram({ rootNames: [...modules.keys()], options, host });
  const errors = new Map<string, string[]>([...cellsByName.keys()].map((name) => [name, []]));
  for (const d of ts.getPreEmitDiagnostics(program)) {
    const virtual = d.file && modules.get(path.resolve(d.file.fileName));
    if (!virtual) continue;
    const { line } = d.file!.getLineAndCharacterOfPosition(d.start ?? 0);
    const where = virtual.origin[line] ?? { cell: 0, line: 0 };
    const message = ts.flattenDiagnosticMessageText(d.messageText, " ");
    errors.get(virtual.name)!.push(`${virtual.name} cell ${where.cell} line ${where.line}: ${message}`);
  }
  return errors;
}

const code = (source: string): NotebookCell => ({ cell_type: "code", source });
const BROKEN = "__broken.ipynb";
let errors: Map<string, string[]>;

beforeAll(() => {
  const cellsByName = new Map<string, NotebookCell[]>(
    notebooks.map((name) => [name, JSON.parse(fs.readFileSync(path.join(notebookDir, name), "utf8")).cells]),
  );
  // A notebook with a known type error in its second cell proves the check is not vacuous.
  cellsByName.set(BROKEN, [
    code('import { computeRocAuc } from "./lib/index.js";'),
    { cell_type: "markdown", source: "text" },
    code("const auc: string = computeRocAuc([1, 0], [0.9, 0.1]);"),
  ]);
  errors = typeErrorsByNotebook(cellsByName);
});

describe("notebook code cells type-check with the project's tsconfig", () => {
  it("finds the notebooks", () => {
    expect(notebooks.length).toBeGreaterThanOrEqual(6);
  });

  it.each(notebooks)("%s has no type errors", (name) => {
    expect(errors.get(name)).toEqual([]);
  });

  it("reports a type error by notebook, cell and line (the check is not vacuous)", () => {
    const broken = errors.get(BROKEN)!;
    expect(broken).toHaveLength(1);
    expect(broken[0]).toMatch(/^__broken\.ipynb cell 3 line 1: Type 'number' is not assignable to type 'string'/);
  });
});
