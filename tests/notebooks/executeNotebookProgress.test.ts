import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { executeNotebook, findJupyterPython } from "../../lib/index.js";
import { createProgressLineReader, readStdoutText } from "../../lib/notebooks/executeNotebook.js";
import type { NotebookProgressEvent } from "../../lib/index.js";
import { requireTool } from "../helpers/shared.js";

function jupyterAvailable(): boolean {
  try {
    findJupyterPython();
    return true;
  } catch {
    return false;
  }
}

describe("createProgressLineReader", () => {
  it("splits chunked JSON lines into cell events and whole printed lines", () => {
    const events: NotebookProgressEvent[] = [];
    const reader = createProgressLineReader((e) => events.push(e));
    reader.push('{"event":"cell","cell":1,"cells":2}\n{"event":"stream","name":"stdout","text":"ab');
    reader.push('c\\nde"}\n{"event":"stream","name":"stdout","text":"f\\n"}\n');
    reader.push(
      '{"event":"stream","name":"stderr","text":"warn"}\n{"event":"cell","cell":2,"cells":2}\n{"event":"stream","name":"stdout","text":"tail"}',
    );
    reader.end();
    expect(events).toEqual([
      { kind: "cell", cell: 1, cells: 2 },
      { kind: "line", stream: "stdout", text: "abc" },
      { kind: "line", stream: "stdout", text: "def" },
      { kind: "line", stream: "stderr", text: "warn" },
      { kind: "cell", cell: 2, cells: 2 },
      { kind: "line", stream: "stdout", text: "tail" },
    ]);
  });
});

describe("executeNotebook onProgress through the real tslab kernel", () => {
  it("reports each code cell and each printed line while the notebook runs, and still saves it", async (ctx) => {
    requireTool(
      ctx,
      jupyterAvailable(),
      "Jupyter (nbclient)",
      "apt-get install python3-nbclient jupyter-nbconvert python3-notebook",
    );
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "ml-nb-progress-"));
    const notebook = path.join(tmp, "tiny.ipynb");
    const code = (source: string) => ({ cell_type: "code", metadata: {}, execution_count: null, outputs: [], source });
    fs.writeFileSync(
      notebook,
      JSON.stringify({
        cells: [
          { cell_type: "markdown", metadata: {}, source: "# not counted" },
          code('console.log("first line");'),
          code('await new Promise((resolve) => setTimeout(resolve, 2000));\nconsole.log("a\\nb");'),
        ],
        metadata: {
          kernelspec: { display_name: "TypeScript (melanoma-lab)", language: "typescript", name: "tslab-melanoma" },
        },
        nbformat: 4,
        nbformat_minor: 5,
      }),
    );
    const seen: { event: NotebookProgressEvent; atMs: number }[] = [];
    const run = await executeNotebook(notebook, {
      outDir: path.join(tmp, "out"),
      onProgress: (event) => seen.push({ event, atMs: Date.now() }),
    });
    const finishedMs = Date.now();
    expect(seen.map((s) => s.event)).toEqual([
      { kind: "cell", cell: 1, cells: 2 },
      { kind: "line", stream: "stdout", text: "first line" },
      { kind: "cell", cell: 2, cells: 2 },
      { kind: "line", stream: "stdout", text: "a" },
      { kind: "line", stream: "stdout", text: "b" },
    ]);
    // Live, not replayed at the end: the first line came before the 2 s wait of the next cell.
    expect(finishedMs - seen[1].atMs).toBeGreaterThanOrEqual(1900);
    expect(readStdoutText(run.executedNotebookPath)).toBe("first line\na\nb\n");
    expect(fs.existsSync(run.htmlPath)).toBe(true);
  }, 180_000);
});
