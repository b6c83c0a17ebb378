import { spawnSync } from "node:child_process";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { findProjectRoot } from "../../lib/index.js";
import { commandExists, toolOrSkip } from "../helpers/shared.js";

const PYTHON = "/usr/bin/python3";
const root = findProjectRoot();

function hasJupyterClient(): boolean {
  return commandExists(PYTHON) && spawnSync(PYTHON, ["-c", "import jupyter_client"], { stdio: "ignore" }).status === 0;
}

// Sends three execute_requests at once (as Run All does) to the project's kernel and records,
// in arrival order, the iopub status and stream messages that belong to them.
const script = `
import json, sys
from jupyter_client.manager import start_new_kernel
km, kc = start_new_kernel(kernel_name="tslab-melanoma", startup_timeout=120, cwd=sys.argv[1])
try:
    cells = [f'await new Promise((resolve) => setTimeout(resolve, 400)); console.log("cell {i} done");' for i in range(3)]
    ids = [kc.execute(code) for code in cells]
    events, idle = [], 0
    while idle < len(ids):
        msg = kc.get_iopub_msg(timeout=120)
        parent = msg["parent_header"].get("msg_id")
        if parent not in ids:
            continue
        if msg["msg_type"] == "status":
            state = msg["content"]["execution_state"]
            events.append([state, ids.index(parent)])
            idle += state == "idle"
        elif msg["msg_type"] == "stream":
            events.append(["stream", ids.index(parent)])
    print(json.dumps(events))
finally:
    kc.stop_channels()
    km.shutdown_kernel(now=True)
`;

describe("the tslab-melanoma kernel's busy/idle status", () => {
  it("stays busy until the last of three queued execute_requests is done, then sends each request's idle", (ctx) => {
    if (!toolOrSkip(hasJupyterClient(), "jupyter_client for /usr/bin/python3", "apt-get install python3-jupyter-client")) return ctx.skip();
    const run = spawnSync(PYTHON, ["-c", script, root], {
      cwd: root,
      env: { ...process.env, JUPYTER_PATH: path.join(root, "jupyter"), MELANOMA_LAB_ROOT: root },
      encoding: "utf8",
      timeout: 240_000,
    });
    expect(run.status, run.stderr.slice(-3000)).toBe(0);
    const events = JSON.parse(run.stdout.trim().split("\n").at(-1)!) as [string, number][];
    // Without the launcher's fix tslab sends request 0's idle right after cell 0, while cells 1
    // and 2 are still queued: [busy 0, busy 1, busy 2, stream 0, idle 0, stream 1, idle 1, …].
    expect(events).toEqual([
      ["busy", 0],
      ["busy", 1],
      ["busy", 2],
      ["stream", 0],
      ["stream", 1],
      ["stream", 2],
      ["idle", 0],
      ["idle", 1],
      ["idle", 2],
    ]);
  }, 300_000);
});
