import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it, vi } from "vitest";
import { RuntimeUnavailableError, selectInferenceRuntime } from "../../lib/backend/selectRuntime.js";

// As if onnxruntime-node were not installed (or its native binding failed to load).
vi.mock("onnxruntime-node", () => {
  throw new Error("Cannot find module 'onnxruntime-node' (simulated)");
});

const saved = process.env.MELANOMA_LAB_RUNTIME;
afterEach(() => {
  if (saved === undefined) delete process.env.MELANOMA_LAB_RUNTIME;
  else process.env.MELANOMA_LAB_RUNTIME = saved;
});

function existingFile(): string {
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "runtime-")), "model.onnx");
  fs.writeFileSync(file, "x");
  return file;
}

describe("selectInferenceRuntime without onnxruntime-node", () => {
  it("falls back to tfjs and says the package did not load", async () => {
    delete process.env.MELANOMA_LAB_RUNTIME;
    const sel = await selectInferenceRuntime({ modelName: "m", onnxPath: existingFile() });
    expect(sel.runtime).toBe("tfjs");
    // vitest wraps the factory's error in its own message; what matters is the package named and the fallback.
    expect(sel.reason).toMatch(/^onnxruntime-node did not load \(/);
  });

  it("throws a named error naming the package when onnx is forced", async () => {
    process.env.MELANOMA_LAB_RUNTIME = "onnx";
    const attempt = selectInferenceRuntime({ modelName: "m", onnxPath: existingFile() });
    await expect(attempt).rejects.toThrow(RuntimeUnavailableError);
    await expect(selectInferenceRuntime({ modelName: "m", onnxPath: existingFile() })).rejects.toThrow(
      /forced by MELANOMA_LAB_RUNTIME=onnx but cannot run: onnxruntime-node did not load/,
    );
  });
});
