import { spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { MelanomaLabError } from "../util/errors.js";
import { findProjectRoot } from "../util/paths.js";

/** Debian packages that provide Jupyter and nbclient for headless execution. */
export const JUPYTER_DEBIAN_PACKAGES = [
  "python3-notebook",
  "jupyter-notebook",
  "jupyter-nbconvert",
  "python3-nbclient",
  "python3-ipykernel",
  "jupyter-client",
] as const;

/** Thrown when no Python with Jupyter/nbclient is found; the message says how to install it. */
export class JupyterMissingError extends MelanomaLabError {}

/** Thrown when a notebook cell raises; names the notebook and the cell, with the kernel's error. */
export class NotebookExecutionError extends MelanomaLabError {
  readonly notebook: string;
  readonly executedCopy: string;
  constructor(notebook: string, detail: string, executedCopy: string) {
    super(`${notebook} failed:\n${detail}\n(executed copy with outputs so far: ${executedCopy})`);
    this.notebook = notebook;
    this.executedCopy = executedCopy;
  }
}

/**
 * The Python interpreter that has Jupyter's nbclient: `MELANOMA_LAB_JUPYTER_PYTHON`, else
 * Debian's /usr/bin/python3 (the default `python3` may be a pyenv one without Jupyter), else
 * `python3`. Throws {@link JupyterMissingError} with the apt command when none has it.
 *
 * @example const py = findJupyterPython(); // "/usr/bin/python3"
 */
export function findJupyterPython(): string {
  const candidates = [process.env.MELANOMA_LAB_JUPYTER_PYTHON, "/usr/bin/python3", "python3"].filter(
    (c): c is string => Boolean(c),
  );
  for (const python of candidates) {
    const probe = spawnSync(python, ["-c", "import nbclient, nbformat, nbconvert, jupyter_client"], { stdio: "ignore" });
    if (probe.status === 0) return python;
  }
  throw new JupyterMissingError(
    `no Python with Jupyter found (tried ${candidates.join(", ")}; expected one that can import nbclient, nbformat, nbconvert, jupyter_client). ` +
      `Install Debian's packages: sudo apt-get install -y ${JUPYTER_DEBIAN_PACKAGES.join(" ")}`,
  );
}

/** The result of executing one notebook. */
export interface NotebookRun {
  notebook: string;
  executedNotebookPath: string;
  htmlPath: string;
  seconds: number;
  /** Text the notebook printed to stdout, all cells joined. */
  stdoutText: string;
}

/**
 * Executes one notebook headless through the real tslab kernel (kernel spec in
 * `jupyter/kernels/tslab-melanoma`) over the Jupyter protocol with Debian's nbclient, then saves
 * the executed, signed copy and its HTML render into `outDir`. `env` is added to the kernel's
 * environment (notebooks read their configuration from `MELANOMA_LAB_*` variables).
 * Throws {@link NotebookExecutionError} naming the notebook and cell when a cell raises; the
 * executed copy is saved either way.
 *
 * @example await executeNotebook("notebooks/01-data.ipynb", { outDir: "out/notebooks", env: { MELANOMA_LAB_SMALL: "1" } });
 */
export async function executeNotebook(
  notebookPath: string,
  options: { outDir: string; env?: Record<string, string>; timeoutSec?: number; python?: string },
): Promise<NotebookRun> {
  const root = findProjectRoot();
  const python = options.python ?? findJupyterPython();
  const base = path.basename(notebookPath, ".ipynb");
  fs.mkdirSync(options.outDir, { recursive: true });
  const executedNotebookPath = path.resolve(options.outDir, `${base}.ipynb`);
  const htmlPath = path.resolve(options.outDir, `${base}.html`);
  const script = path.join(root, "scripts", "execute_notebook.py");
  const args = [script, path.resolve(notebookPath), executedNotebookPath, htmlPath, "--root", root, "--timeout", String(options.timeoutSec ?? 3600)];
  const started = Date.now();
  const { status, stderr } = await new Promise<{ status: number | null; stderr: string }>((resolve, reject) => {
    const child = spawn(python, args, {
      cwd: root,
      env: { ...process.env, MELANOMA_LAB_ROOT: root, ...options.env },
      stdio: ["ignore", "inherit", "pipe"],
    });
    let err = "";
    child.stderr.on("data", (chunk: Buffer) => {
      err += chunk.toString();
    });
    child.on("error", reject);
    child.on("close", (code) => resolve({ status: code, stderr: err }));
  });
  const seconds = (Date.now() - started) / 1000;
  if (status !== 0) {
    const detail = stderr.includes("NOTEBOOK FAILED") ? stderr.slice(stderr.indexOf("NOTEBOOK FAILED")) : stderr;
    throw new NotebookExecutionError(path.basename(notebookPath), detail.trim(), executedNotebookPath);
  }
  return { notebook: path.basename(notebookPath), executedNotebookPath, htmlPath, seconds, stdoutText: readStdoutText(executedNotebookPath) };
}

/**
 * All text a saved notebook printed to stdout, in cell order.
 *
 * @example readStdoutText("out/notebooks/06-triage.ipynb")
 */
export function readStdoutText(notebookPath: string): string {
  const nb = JSON.parse(fs.readFileSync(notebookPath, "utf8")) as {
    cells: { cell_type: string; outputs?: { output_type: string; name?: string; text?: string | string[] }[] }[];
  };
  const parts: string[] = [];
  for (const cell of nb.cells) {
    for (const out of cell.outputs ?? []) {
      if (out.output_type === "stream" && out.name === "stdout") {
        parts.push(Array.isArray(out.text) ? out.text.join("") : (out.text ?? ""));
      }
    }
  }
  return parts.join("");
}

/**
 * The notebooks in `dir` in pipeline order (file names start with their number: 01-…, 02-…).
 *
 * @example listNotebooks("notebooks") // ["notebooks/01-data.ipynb", …]
 */
export function listNotebooks(dir: string): string[] {
  return fs
    .readdirSync(dir)
    .filter((f) => /^\d+.*\.ipynb$/.test(f))
    .sort()
    .map((f) => path.join(dir, f));
}
