// npm run tensorboard [-- --logdir logs --port 6006 --list-only]
// Starts TensorBoard on our logs when it is installed; otherwise says how to install it. Either way
// it first lists the runs and tags our own reader finds, so the logs can be checked without it.
import { spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import {
  readLogDir,
  findTensorBoardExecutable,
  formatLogDirSummary,
  TENSORBOARD_INSTALL_HINT,
  defineCli,
  parseCommandLineOrExit,
  findProjectRoot,
} from "../lib/index.js";

const cli = defineCli({
  name: "tensorboard",
  usage: "npm run tensorboard --",
  summary:
    "Lists the runs and tags our reader finds in the logs, then starts TensorBoard on them when it is installed.",
  examples: [
    "npm run tensorboard",
    "npm run tensorboard -- --logdir logs --port 6007",
    "npm run tensorboard -- --list-only",
  ],
  options: {
    logdir: {
      type: "string",
      default: "logs",
      valueName: "<dir>",
      description: "log folder (relative to the project root)",
    },
    port: { type: "integer", min: 1, max: 65535, description: "TensorBoard's port (default: TensorBoard's own, 6006)" },
    "list-only": { type: "boolean", description: "only list runs and tags; do not start TensorBoard" },
  },
});

const { values: args } = parseCommandLineOrExit(cli, process.argv.slice(2));
const logdir = path.resolve(findProjectRoot(), args.logdir);

if (fs.existsSync(logdir)) {
  console.log(formatLogDirSummary(readLogDir(logdir)));
} else {
  console.log(
    `${logdir} does not exist yet: training with createTensorBoardCallback("${path.relative(process.cwd(), logdir) || "."}/<run>") writes there.`,
  );
}

const executable = findTensorBoardExecutable();
if (args["list-only"]) process.exit(0);
if (!executable) {
  console.log(
    `\nTensorBoard is not installed (no "tensorboard" on PATH). Install it with:\n  ${TENSORBOARD_INSTALL_HINT}`,
  );
  console.log(`Logs are in ${logdir}; any machine with TensorBoard can show them: tensorboard --logdir ${logdir}`);
  process.exit(0);
}
const tbArgs = [
  "--logdir",
  logdir,
  "--host",
  "127.0.0.1",
  ...(args.port !== undefined ? ["--port", String(args.port)] : []),
];
console.log(`\n${executable} ${tbArgs.join(" ")}`);
const child = spawn(executable, tbArgs, { stdio: "inherit" });
child.on("exit", (code, signal) => process.exit(signal ? 1 : (code ?? 0)));
// Ctrl-C reaches TensorBoard through the shared terminal; keep this process until it exits.
process.on("SIGINT", () => undefined);
