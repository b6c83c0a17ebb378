import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { beforeAll, expect, it } from "vitest";
import { findProjectRoot, listNotebooks } from "../../lib/index.js";
import { commandExists, describeRequiring, missingTool } from "../helpers/shared.js";

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
    info = kc.kernel_info(reply=True, timeout=60)["content"]
    print(json.dumps({"events": events, "languageInfo": info["language_info"]}))
finally:
    kc.stop_channels()
    km.shutdown_kernel(now=True)
`;

interface KernelObservation {
  events: [string, number][];
  languageInfo: Record<string, unknown>;
}

describeRequiring(
  missingTool(hasJupyterClient(), "jupyter_client for /usr/bin/python3", "apt-get install python3-jupyter-client"),
  "the tslab-melanoma kernel over the Jupyter protocol",
  () => {
    let observed: KernelObservation;
    beforeAll(() => {
      const run = spawnSync(PYTHON, ["-c", script, root], {
        cwd: root,
        env: { ...process.env, JUPYTER_PATH: path.join(root, "jupyter"), MELANOMA_LAB_ROOT: root },
        encoding: "utf8",
        timeout: 240_000,
      });
      if (run.status !== 0) throw new Error(`kernel session failed (${run.status}):\n${run.stderr.slice(-3000)}`);
      observed = JSON.parse(run.stdout.trim().split("\n").at(-1)!) as KernelObservation;
    }, 300_000);

    it("stays busy until the last of three queued execute_requests is done, then sends each request's idle", () => {
      // Without the launcher's fix tslab sends request 0's idle right after cell 0, while cells 1
      // and 2 are still queued: [busy 0, busy 1, busy 2, stream 0, idle 0, stream 1, idle 1, …].
      expect(observed.events).toEqual([
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
    });

    it("reports the kernelspec and language_info committed in every notebook (so opening one does not mark it modified)", () => {
      const spec = JSON.parse(
        fs.readFileSync(path.join(root, "jupyter", "kernels", "tslab-melanoma", "kernel.json"), "utf8"),
      );
      for (const file of listNotebooks(path.join(root, "notebooks"))) {
        const { metadata } = JSON.parse(fs.readFileSync(file, "utf8"));
        // Classic Notebook compares these with _.isEqual (deep, key order ignored) and marks the notebook dirty when they differ.
        expect(metadata.language_info, file).toEqual(observed.languageInfo);
        expect(metadata.kernelspec, file).toEqual({
          name: "tslab-melanoma",
          display_name: spec.display_name,
          language: spec.language,
        });
      }
    });
  },
);
