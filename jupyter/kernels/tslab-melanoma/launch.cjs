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
const ts = require(require.resolve("@tslab/typescript-for-tslab", { paths: [tslabDir] }));
ts.sys.watchDirectory = () => ({ close() {} });
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
