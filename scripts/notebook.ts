// npm run notebook — classic Jupyter on 127.0.0.1 with the repo's tslab kernel; Ctrl-C twice stops it.
import { spawn } from "node:child_process";
import path from "node:path";
import { findJupyterPython, findProjectRoot, JupyterMissingError } from "../lib/index.js";

const root = findProjectRoot();
let python: string;
try {
  python = findJupyterPython();
} catch (err) {
  console.error(err instanceof JupyterMissingError ? err.message : err);
  process.exit(2);
}
const jupyterPath = [path.join(root, "jupyter"), process.env.JUPYTER_PATH].filter(Boolean).join(path.delimiter);
// Jupyter refuses to start as root without --allow-root (containers, CI machines run as root).
const rootFlag = process.getuid?.() === 0 ? ["--allow-root"] : [];
const args = ["-m", "notebook", "--ip=127.0.0.1", "--no-browser", ...rootFlag, `--notebook-dir=${path.join(root, "notebooks")}`, ...process.argv.slice(2)];
console.log(`starting classic Jupyter (kernel "TypeScript (melanoma-lab)"); stop it with Ctrl-C twice`);
const child = spawn(python, args, {
  cwd: root,
  stdio: "inherit",
  env: { ...process.env, JUPYTER_PATH: jupyterPath, MELANOMA_LAB_ROOT: root },
});
child.on("close", (code) => process.exit(code ?? 0));
process.on("SIGINT", () => {
  // Jupyter asks for confirmation on the first Ctrl-C; pass it on and let Jupyter decide.
});
