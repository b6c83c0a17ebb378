import { spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
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

/** The Python packages the notebook executor (scripts/execute_notebook.py) imports. */
const JUPYTER_PYTHON_MODULES = ["nbclient", "nbformat", "nbconvert", "jupyter_client"];
const JUPYTER_PACKAGES_PROBE =
  "import importlib.util as u, sys; " +
  `sys.exit(0 if all(u.find_spec(m) for m in (${JUPYTER_PYTHON_MODULES.map((m) => `'${m}'`).join(", ")})) else 1)`;

/**
 * The Python interpreter that has Jupyter's nbclient: `MELANOMA_LAB_JUPYTER_PYTHON`, else
 * Debian's /usr/bin/python3 (the default `python3` may be a pyenv one without Jupyter), else
 * `python3`. Throws {@link JupyterMissingError} with the apt command when none has it.
 *
 * @example const py = findJupyterPython(); // "/usr/bin/python3"
 */
export function findJupyterPython(): string {
  const candidates = [process.env.MELANOMA_LAB_JUPYTER_PYTHON, "/usr/bin/python3", "python3"].filter((c): c is string =>
    Boolean(c),
  );
  for (const python of candidates) {
    // find_spec locates the packages without importing them: 0.04 s instead of 0.6 s here, paid
    // before every demo's kernel starts (the executor imports them itself and reports a broken one).
    const probe = spawnSync(python, ["-c", JUPYTER_PACKAGES_PROBE], { stdio: "ignore" });
    if (probe.status === 0) return python;
  }
  throw new JupyterMissingError(
    `no Python with Jupyter found (tried ${candidates.join(", ")}; expected one that can import ${JUPYTER_PYTHON_MODULES.join(", ")}). ` +
      `Install Debian's packages: sudo apt-get install -y ${JUPYTER_DEBIAN_PACKAGES.join(" ")}`,
  );
}

/**
 * What a running notebook reports, live: a code cell starting (1-based `cell` of `cells`), or
 * one complete line the notebook printed (stream outputs, split at newlines; the last partial
 * line comes when its cell ends).
 */
export type NotebookProgressEvent =
  | { kind: "cell"; cell: number; cells: number }
  | { kind: "line"; stream: "stdout" | "stderr"; text: string }
  /** executeNotebooks only: notebook `index` (0-based, in the order given) starts or ends. */
  | { kind: "notebook"; index: number }
  | { kind: "notebook-end"; index: number; status: number };

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
 * executed copy is saved either way. `onProgress` hears each code cell start and each line the
 * notebook prints while it runs (without it, nothing is reported until the notebook ends).
 *
 * @example
 * await executeNotebook("notebooks/01-data.ipynb", {
 *   outDir: "out/notebooks", env: { MELANOMA_LAB_SMALL: "1" },
 *   onProgress: (e) => console.log(e.kind === "cell" ? `cell ${e.cell}/${e.cells}` : e.text),
 * });
 */
export async function executeNotebook(notebookPath: string, options: ExecuteNotebookOptions): Promise<NotebookRun> {
  const [job] = planNotebookJobs([notebookPath], options.outDir);
  const onProgress = options.onProgress;
  const started = Date.now();
  const args = [job.input, job.output_ipynb, job.output_html];
  const { status, stderr } = await runExecuteScript(args, options, onProgress);
  if (status !== 0) throw notebookFailure(path.basename(notebookPath), stderr, job.output_ipynb);
  return finishedRun(job, (Date.now() - started) / 1000);
}

/** Options of {@link executeNotebook} and {@link executeNotebooks}. */
export interface ExecuteNotebookOptions {
  outDir: string;
  env?: Record<string, string>;
  timeoutSec?: number;
  python?: string;
  onProgress?: (event: NotebookProgressEvent) => void;
}

/**
 * Executes several notebooks in order in ONE tslab kernel (as {@link executeNotebook} does each
 * alone), resetting the kernel's declarations between them: a cell that uses a name from an
 * earlier notebook fails to compile, as in a fresh kernel, while the kernel start, tslab's
 * compile of lib/ and the tfjs backend's start are paid once instead of once per notebook.
 * Each executed copy and its HTML go to `outDir`; it stops at the first failing notebook and
 * throws {@link NotebookExecutionError} naming it and its cell (the copies so far are saved).
 * `onProgress` also hears `{ kind: "notebook", index }` as each one starts.
 *
 * @example const runs = await executeNotebooks(listNotebooks("notebooks"), { outDir: "out/notebooks" });
 */
export async function executeNotebooks(
  notebookPaths: readonly string[],
  options: ExecuteNotebookOptions,
): Promise<NotebookRun[]> {
  const jobs = planNotebookJobs(notebookPaths, options.outDir);
  const batchFile = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "melanoma-lab-notebooks-")), "jobs.json");
  fs.writeFileSync(batchFile, JSON.stringify(jobs));
  const startedMs: number[] = [];
  const endedMs: number[] = [];
  let failedIndex: number | undefined;
  const onProgress = (event: NotebookProgressEvent) => {
    if (event.kind === "notebook") startedMs[event.index] = Date.now();
    if (event.kind === "notebook-end") {
      endedMs[event.index] = Date.now();
      if (event.status !== 0) failedIndex = event.index;
    }
    options.onProgress?.(event);
  };
  try {
    const { status, stderr } = await runExecuteScript(["--batch", batchFile], options, onProgress);
    if (status !== 0) {
      const index = failedIndex ?? Math.max(0, startedMs.length - 1);
      throw notebookFailure(path.basename(jobs[index].input), stderr, jobs[index].output_ipynb);
    }
  } finally {
    fs.rmSync(path.dirname(batchFile), { recursive: true, force: true });
  }
  return jobs.map((job, i) => finishedRun(job, ((endedMs[i] ?? Date.now()) - (startedMs[i] ?? Date.now())) / 1000));
}

interface NotebookJob {
  input: string;
  output_ipynb: string;
  output_html: string;
}

function planNotebookJobs(notebookPaths: readonly string[], outDir: string): NotebookJob[] {
  fs.mkdirSync(outDir, { recursive: true });
  return notebookPaths.map((notebookPath) => {
    const base = path.basename(notebookPath, ".ipynb");
    return {
      input: path.resolve(notebookPath),
      output_ipynb: path.resolve(outDir, `${base}.ipynb`),
      output_html: path.resolve(outDir, `${base}.html`),
    };
  });
}

/** Runs scripts/execute_notebook.py with `args` (+ root, timeout, progress), streaming its progress. */
async function runExecuteScript(
  args: string[],
  options: ExecuteNotebookOptions,
  onProgress: ((event: NotebookProgressEvent) => void) | undefined,
): Promise<{ status: number | null; stderr: string }> {
  const root = findProjectRoot();
  const python = options.python ?? findJupyterPython();
  const fullArgs = [
    path.join(root, "scripts", "execute_notebook.py"),
    ...args,
    "--root",
    root,
    "--timeout",
    String(options.timeoutSec ?? 3600),
  ];
  if (onProgress) fullArgs.push("--progress-json");
  return new Promise<{ status: number | null; stderr: string }>((resolve, reject) => {
    const child = spawn(python, fullArgs, {
      cwd: root,
      env: { ...process.env, MELANOMA_LAB_ROOT: root, ...options.env },
      stdio: ["ignore", onProgress ? "pipe" : "inherit", "pipe"],
    });
    if (onProgress) {
      const lines = createProgressLineReader(onProgress);
      child.stdout!.on("data", (chunk: Buffer) => lines.push(chunk.toString()));
      child.stdout!.on("end", () => lines.end());
    }
    let err = "";
    child.stderr!.on("data", (chunk: Buffer) => {
      err += chunk.toString();
    });
    child.on("error", reject);
    child.on("close", (code) => resolve({ status: code, stderr: err }));
  });
}

function notebookFailure(notebook: string, stderr: string, executedNotebookPath: string): NotebookExecutionError {
  const detail = stderr.includes("NOTEBOOK FAILED") ? stderr.slice(stderr.indexOf("NOTEBOOK FAILED")) : stderr;
  return new NotebookExecutionError(notebook, detail.trim(), executedNotebookPath);
}

function finishedRun(job: NotebookJob, seconds: number): NotebookRun {
  return {
    notebook: path.basename(job.input),
    executedNotebookPath: job.output_ipynb,
    htmlPath: job.output_html,
    seconds,
    stdoutText: readStdoutText(job.output_ipynb),
  };
}

/**
 * Turns execute_notebook.py's `--progress-json` output (one JSON object a line, arriving in
 * arbitrary chunks) into {@link NotebookProgressEvent}s: stream text is split into lines, and a
 * cell's unfinished line is flushed when the next cell starts or the output ends.
 *
 * @example const r = createProgressLineReader(console.log); r.push('{"event":"cell","cell":1,"cells":3}\n'); r.end();
 */
export function createProgressLineReader(onProgress: (event: NotebookProgressEvent) => void): {
  push(chunk: string): void;
  end(): void;
} {
  let pending = "";
  const partial: Record<"stdout" | "stderr", string> = { stdout: "", stderr: "" };
  const flushPartial = () => {
    for (const stream of ["stdout", "stderr"] as const) {
      if (partial[stream] !== "") onProgress({ kind: "line", stream, text: partial[stream] });
      partial[stream] = "";
    }
  };
  const handle = (jsonLine: string) => {
    if (jsonLine.trim() === "") return;
    let event: {
      event?: string;
      cell?: number;
      cells?: number;
      name?: string;
      text?: string;
      index?: number;
      status?: number;
    };
    try {
      event = JSON.parse(jsonLine);
    } catch {
      // Anything else on stdout (a library printing from Python) is passed on as a line.
      onProgress({ kind: "line", stream: "stdout", text: jsonLine });
      return;
    }
    if (event.event === "cell") {
      flushPartial();
      onProgress({ kind: "cell", cell: event.cell ?? 0, cells: event.cells ?? 0 });
    } else if (event.event === "notebook" || event.event === "notebook-end") {
      flushPartial();
      onProgress(
        event.event === "notebook"
          ? { kind: "notebook", index: event.index ?? 0 }
          : { kind: "notebook-end", index: event.index ?? 0, status: event.status ?? 0 },
      );
    } else if (event.event === "stream") {
      const stream = event.name === "stderr" ? "stderr" : "stdout";
      const parts = (partial[stream] + (event.text ?? "")).split("\n");
      partial[stream] = parts.pop()!;
      for (const text of parts) onProgress({ kind: "line", stream, text });
    }
  };
  return {
    push(chunk) {
      const parts = (pending + chunk).split("\n");
      pending = parts.pop()!;
      for (const line of parts) handle(line);
    },
    end() {
      handle(pending);
      pending = "";
      flushPartial();
    },
  };
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
