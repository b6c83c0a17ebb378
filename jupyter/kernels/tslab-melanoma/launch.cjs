// Starts tslab with the project root as its working folder: tslab uses the start folder as the
// TypeScript rootDir, so notebooks can import ./lib/index.js wherever the notebook file lives.
"use strict";
const path = require("path");
const root = path.resolve(__dirname, "..", "..", "..");
process.chdir(root);
process.env.MELANOMA_LAB_ROOT = process.env.MELANOMA_LAB_ROOT || root;
const tslabDir = path.join(root, "node_modules", "tslab");
// tslab's TypeScript watch program reacts to every file written anywhere under the project root
// (feature cache, logs, models) and then crashes the kernel with "Unexpected pending
// rebuildTimer". Directory watches only serve module resolution of files that do not exist yet;
// lib/ files that exist are still watched one by one, so edits to them are picked up.
const tsPath = require.resolve("@tslab/typescript-for-tslab", { paths: [tslabDir] });
const ts = require(tsPath);
ts.sys.watchDirectory = () => ({ close() {} });
// tslab type-checks every project file a cell imports, on the new Program it builds for each
// cell: every notebook's import cell re-checked all of lib/ (~3.5 s each, ~8 s for the first).
// A file that is not one of tslab's cell files cannot depend on a cell, so its diagnostics only
// change when some non-cell file changes: they are kept while every non-cell file has the version
// it had (the same SourceFile object), and recomputed otherwise (an edit to lib/ is still reported at the next cell).
// typescript's exports are read-only getters, so tslab gets a copy with this function (and
// transpileModule, below) replaced (installed before tslab's converter loads).
const CELL_FILE_NAMES = new Set(["__tslab__.ts", "__tslab__.js", "__prev__.d.ts"]);
const isCellFile = (sourceFile) => CELL_FILE_NAMES.has(path.basename(sourceFile.fileName));
let projectDiagnostics = { signature: "", byFile: new Map() };
// TypeScript keeps the SourceFile object of an unchanged file from one Program to the next and
// makes a new one when the file changed, so the object itself tells whether a file changed.
const sourceFileIds = new WeakMap();
let nextSourceFileId = 0;
function sourceFileIdentity(sourceFile) {
  // A second copy of a package (same name and version) is a redirect, rebuilt with every Program:
  // the file it redirects to is the one that can change.
  const file = sourceFile.redirectInfo ? sourceFile.redirectInfo.redirectTarget : sourceFile;
  if (!sourceFileIds.has(file)) sourceFileIds.set(file, nextSourceFileId++);
  return sourceFileIds.get(file);
}
function getPreEmitDiagnosticsOfFiles(program, sourceFiles, cancellationToken) {
  const signature = program
    .getSourceFiles()
    .filter((f) => !isCellFile(f))
    .map((f) => `${f.fileName}@${sourceFileIdentity(f)}`)
    .join("\n");
  if (signature !== projectDiagnostics.signature) projectDiagnostics = { signature, byFile: new Map() };
  const cells = [];
  const diagnostics = [];
  for (const sourceFile of sourceFiles) {
    if (isCellFile(sourceFile)) {
      cells.push(sourceFile);
      continue;
    }
    let found = projectDiagnostics.byFile.get(sourceFile.fileName);
    if (found === undefined) {
      found = [
        ...program.getSyntacticDiagnostics(sourceFile, cancellationToken),
        ...program.getSemanticDiagnostics(sourceFile, cancellationToken),
        ...(ts.getEmitDeclarations(program.getCompilerOptions())
          ? program.getDeclarationDiagnostics(sourceFile, cancellationToken)
          : []),
      ];
      projectDiagnostics.byFile.set(sourceFile.fileName, found);
    }
    diagnostics.push(...found);
  }
  return ts.sortAndDeduplicateDiagnostics([
    ...diagnostics,
    ...ts.getPreEmitDiagnosticsOfFiles(program, cells, cancellationToken),
  ]);
}
// tslab's ES module → CommonJS step without its needless type check (see esmToCommonJs.cjs), and
// its per-cell programs without the builder state it reads only for dependencies
// (programWithoutBuilderState.cjs).
const createProgram = require("./programWithoutBuilderState.cjs").createProgramWithoutBuilderState(ts);
const replaced = {
  getPreEmitDiagnosticsOfFiles,
  transpileModule: require("./esmToCommonJs.cjs").createFastTranspileModule(ts),
  createWatchCompilerHost: (rootFiles, options, system, createProgramOrNull, ...rest) =>
    ts.createWatchCompilerHost(rootFiles, options, system, createProgramOrNull || createProgram, ...rest),
};
const tsForTslab = {};
for (const key of Object.keys(ts)) {
  const property = key in replaced ? { value: replaced[key] } : { get: () => ts[key] };
  Object.defineProperty(tsForTslab, key, { enumerable: true, ...property });
}
require.cache[tsPath].exports = tsForTslab;
const { ZmqServer } = require(path.join(tslabDir, "dist", "jupyter.js"));
// tslab handles each shell message as it arrives (execute requests then wait in its own queue)
// and publishes "busy" on arrival and "idle" when that one request is done. With Run All, a
// cell's "idle" reached the browser while later cells were still queued, so the busy indicator
// showed idle while they ran. Here every "idle" is held back until no request is in flight, then
// all held ones are sent, in arrival order, each with its own parent: "idle" means the kernel has
// nothing left to do. The short wait before sending lets the socket deliver requests that arrived
// while a synchronous cell blocked the event loop. A client that sends one request at a time
// (nbclient) sees the same messages, 10 ms later.
const IDLE_FLUSH_DELAY_MS = 10;
const handleShellMessage = ZmqServer.prototype.handleShellMessage;
const publishStatus = ZmqServer.prototype.publishStatus;
ZmqServer.prototype.handleShellMessage = async function (...args) {
  this.requestsInFlight = (this.requestsInFlight || 0) + 1;
  try {
    return await handleShellMessage.apply(this, args);
  } finally {
    this.requestsInFlight--;
  }
};
ZmqServer.prototype.publishStatus = function (status, parent) {
  if (status !== "idle") return publishStatus.call(this, status, parent);
  this.heldIdleParents = this.heldIdleParents || [];
  this.heldIdleParents.push(parent);
  const flush = () => {
    for (const held of this.heldIdleParents.splice(0)) publishStatus.call(this, "idle", held);
  };
  // The kernel closes its sockets right after a shutdown reply: send now.
  if (parent.header && parent.header.msg_type === "shutdown_request") return flush();
  clearTimeout(this.idleFlushTimer);
  this.idleFlushTimer = setTimeout(() => {
    // A request still in flight publishes its own idle later, which schedules the flush again.
    if (!(this.requestsInFlight > 0)) flush();
  }, IDLE_FLUSH_DELAY_MS);
  return undefined;
};
// scripts/execute_notebook.py --batch runs the demo's notebooks in one kernel and sends this cell
// before each notebook after the first: reset() drops every declaration of the notebook before (a
// cell that used one then fails to compile, as in a fresh kernel) while lib/'s compiled modules
// and the started tfjs backend stay, so the kernel start and the ~8 s compile of lib/ are paid once.
const RESET_CELL_SOURCE = "/* melanoma-lab: reset kernel state */";
const executorModule = require(path.join(tslabDir, "dist", "executor.js"));
const createExecutor = executorModule.createExecutor;
executorModule.createExecutor = function (...args) {
  const executor = createExecutor.apply(this, args);
  const execute = executor.execute.bind(executor);
  executor.execute = async (src) => {
    if (src.trim() !== RESET_CELL_SOURCE) return execute(src);
    executor.reset();
    // The next notebook is a new page: its first chart must carry plotly.js again
    // (lib/display/showFigure.ts keeps "already sent" under this symbol).
    globalThis[Symbol.for("melanoma-lab.plotlyJsSentToNotebook")] = false;
    return true;
  };
  return executor;
};
const { startKernel } = require(path.join(tslabDir, "dist", "main.js"));
startKernel({ configPath: process.argv[2] || "", enableFindLocal: false });
