// npm run notebook [-- --port N] [-- <Jupyter options>] — classic Jupyter on 127.0.0.1 with the repo's tslab kernel; Ctrl-C twice stops it.
import { spawn } from "node:child_process";
import path from "node:path";
import {
  defineCli,
  findJupyterPython,
  findProjectRoot,
  JupyterMissingError,
  parseCommandLineOrExit,
} from "../lib/index.js";

const cli = defineCli({
  name: "notebook",
  usage: "npm run notebook --",
  summary:
    'Starts classic Jupyter on 127.0.0.1 with the kernel "TypeScript (melanoma-lab)"; stop it with Ctrl-C twice.',
  examples: [
    "npm run notebook",
    "npm run notebook -- --port 8890",
    "npm run notebook -- -- --NotebookApp.token=secret",
  ],
  options: {
    port: { type: "integer", min: 1, max: 65535, default: 8888, description: "port Jupyter listens on" },
  },
  positionals: { name: "jupyter-options", description: "anything after a second -- is passed to Jupyter as is" },
});

const { values, positionals } = parseCommandLineOrExit(cli, process.argv.slice(2));
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
const args = [
  "-m",
  "notebook",
  "--ip=127.0.0.1",
  `--port=${values.port}`,
  "--no-browser",
  ...rootFlag,
  `--notebook-dir=${path.join(root, "notebooks")}`,
  ...positionals,
];
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
