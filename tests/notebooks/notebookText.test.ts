import fs from "node:fs";
import path from "node:path";
import ts from "typescript";
import { describe, expect, it } from "vitest";
import { findProjectRoot, listNotebooks } from "../../lib/index.js";

const root = findProjectRoot();
const notebooks = listNotebooks(path.join(root, "notebooks")).map((file) => ({
  name: path.basename(file),
  cells: (
    JSON.parse(fs.readFileSync(file, "utf8")).cells as {
      cell_type: string;
      metadata: Record<string, unknown>;
      source: string | string[];
    }[]
  ).map((c) => ({
    ...c,
    text: Array.isArray(c.source) ? c.source.join("") : c.source,
  })),
}));

// What a reader sees without running anything: the committed cells.
describe("notebook cells as committed", () => {
  it("keeps every code line within 100 characters (classic Notebook clips longer lines at its default width)", () => {
    const long = notebooks.flatMap((nb) =>
      nb.cells.flatMap((c, i) =>
        c.cell_type === "code"
          ? c.text
              .split("\n")
              .filter((l) => l.length > 100)
              .map((l) => `${nb.name} cell ${i} (${l.length}): ${l}`)
          : [],
      ),
    );
    expect(long).toEqual([]);
  });

  it("writes no shorthand property ({ name }) for a variable of another cell (tslab leaves it unresolved at run time)", () => {
    // tslab rewrites each cell's references to earlier cells' variables, but not the shorthand
    // form: `{ backbone }` compiles and then throws "backbone is not defined" when the cell runs.
    const found = notebooks.flatMap((nb) =>
      nb.cells.flatMap((c, i) => {
        if (c.cell_type !== "code") return [];
        const file = ts.createSourceFile(`cell${i}.ts`, c.text, ts.ScriptTarget.ES2022, true);
        const declaredHere = new Set<string>();
        const shorthand: string[] = [];
        const visit = (node: ts.Node): void => {
          if (
            (ts.isVariableDeclaration(node) || ts.isParameter(node) || ts.isBindingElement(node)) &&
            ts.isIdentifier(node.name)
          )
            declaredHere.add(node.name.text);
          if (ts.isShorthandPropertyAssignment(node)) shorthand.push(node.name.text);
          ts.forEachChild(node, visit);
        };
        visit(file);
        return shorthand.filter((name) => !declaredHere.has(name)).map((name) => `${nb.name} cell ${i}: { ${name} }`);
      }),
    );
    expect(found).toEqual([]);
  });

  it("marks every cell that shows a chart, image or table as not scrolled (no ~330 px scroll box in classic Notebook)", () => {
    const scrolled = notebooks.flatMap((nb) =>
      nb.cells.flatMap((c, i) =>
        c.cell_type === "code" && /\bshow(Figure|Png|Html|Table)\(/.test(c.text) && c.metadata.scrolled !== false
          ? [`${nb.name} cell ${i}`]
          : [],
      ),
    );
    expect(scrolled).toEqual([]);
    // Notebook 01 shows one chart per cell, so no output grows past classic Notebook's auto-scroll height.
    const nb01 = notebooks.find((nb) => nb.name === "01-data.ipynb")!;
    for (const c of nb01.cells) expect((c.text.match(/\bshowFigure\(/g) ?? []).length, c.text).toBeLessThanOrEqual(1);
  });

  it("does not state facts the default data contradicts", () => {
    const markdown = notebooks.flatMap((nb) =>
      nb.cells.filter((c) => c.cell_type === "markdown").map((c) => `${nb.name}: ${c.text}`),
    );
    // The synthetic default is 50/50 and has three sources: "malignant is the minority" and "a single source" were wrong there.
    expect(markdown.filter((t) => /malignant (images|lesions) are the minority/i.test(t))).toEqual([]);
    expect(markdown.filter((t) => /single source/i.test(t))).toEqual([]);
  });
});
