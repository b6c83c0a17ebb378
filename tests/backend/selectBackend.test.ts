import * as tf from "@tensorflow/tfjs";
import { describe, expect, it } from "vitest";
import { BACKEND_NAMES, describeBackend, parseBackendName, selectBackend, UnknownNameError } from "../../lib/index.js";

describe("selectBackend", () => {
  it("picks the first backend that initialises and says why faster ones were skipped", async () => {
    const selection = await selectBackend();
    expect(BACKEND_NAMES).toContain(selection.name);
    // Never fall back to pure-JS cpu while wasm can start (it is 20x slower).
    expect(selection.name).not.toBe("cpu");
    expect(tf.getBackend()).toBe(selection.tfBackendName);
    const order = BACKEND_NAMES.indexOf(selection.name);
    expect(selection.skipped.map((s) => s.name)).toEqual(BACKEND_NAMES.slice(0, order));
    const line = describeBackend(selection);
    expect(line.startsWith(`backend: ${selection.name}`)).toBe(true);
    for (const s of selection.skipped) expect(line).toContain(s.name);
  });

  it("does not mistake danfojs's aliased @tensorflow/tfjs-node for the native backend", async () => {
    const selection = await selectBackend();
    const skippedNode = selection.skipped.find((s) => s.name === "tfjs-node");
    if (selection.name !== "tfjs-node" && selection.name !== "tfjs-node-gpu") {
      expect(skippedNode?.reason).toMatch(/not installed|no native "tensorflow" backend/);
      expect(tf.findBackend("tensorflow")).toBeNull();
    }
  });

  it("honours a forced backend and computes correctly on it", async () => {
    const selection = await selectBackend({ preferred: "cpu" });
    expect(selection.name).toBe("cpu");
    expect(selection.forced).toBe(true);
    expect(tf.getBackend()).toBe("cpu");
    const sum = tf.tidy(() => tf.sum(tf.tensor1d([1, 2, 3.5])).dataSync()[0]);
    expect(sum).toBe(6.5);
    const back = await selectBackend({ preferred: "wasm" });
    expect(back.name).toBe("wasm");
    expect(tf.getBackend()).toBe("wasm");
  });

  it("rejects an unknown backend name listing valid names and the nearest", async () => {
    expect(() => parseBackendName("wasn")).toThrow(UnknownNameError);
    expect(() => parseBackendName("wasn")).toThrow(
      /expected one of "tfjs-node-gpu", "tfjs-node", "wasm", "cpu" \(did you mean "wasm"\?\)/,
    );
    await expect(selectBackend({ preferred: "gpu" })).rejects.toThrow(/unknown backend "gpu"/);
    expect(parseBackendName(" WASM ")).toBe("wasm");
  });

  it("fails loudly when a forced native backend is not installed", async () => {
    await expect(selectBackend({ preferred: "tfjs-node-gpu" })).rejects.toThrow(/tfjs-node-gpu.*did not start/);
  });
});
