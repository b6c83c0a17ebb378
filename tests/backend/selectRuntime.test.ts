import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { UnknownNameError } from "../../lib/index.js";
import {
  describeInferenceRuntime,
  OrtThreadsError,
  parseOrtThreads,
  parseRuntimeName,
  RuntimeUnavailableError,
  selectInferenceRuntime,
} from "../../lib/backend/selectRuntime.js";

const saved = { runtime: process.env.MELANOMA_LAB_RUNTIME, threads: process.env.MELANOMA_LAB_ORT_THREADS };
afterEach(() => {
  for (const [name, value] of [
    ["MELANOMA_LAB_RUNTIME", saved.runtime],
    ["MELANOMA_LAB_ORT_THREADS", saved.threads],
  ] as const) {
    if (value === undefined) delete process.env[name];
    else process.env[name] = value;
  }
});

/** An existing file standing in for an ONNX file: selection only checks that it exists. */
function existingFile(): string {
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "runtime-")), "model.onnx");
  fs.writeFileSync(file, "not parsed by the selection");
  return file;
}

describe("parseRuntimeName / parseOrtThreads", () => {
  it("accepts onnx/tfjs in any case, treats unset and auto as 'choose', rejects others listing the options", () => {
    expect(parseRuntimeName("ONNX")).toBe("onnx");
    expect(parseRuntimeName(" tfjs ")).toBe("tfjs");
    expect(parseRuntimeName(undefined)).toBeUndefined();
    expect(parseRuntimeName("auto")).toBeUndefined();
    expect(() => parseRuntimeName("onx")).toThrow(UnknownNameError);
    expect(() => parseRuntimeName("onx")).toThrow(
      /"onx": expected one of "onnx", "tfjs", "auto" \(did you mean "onnx"\?\)/,
    );
  });

  it("parses thread counts, 'all' and 'auto', and rejects anything else naming the value", () => {
    expect(parseOrtThreads("2", 2)).toBe(2);
    expect(parseOrtThreads("all", 16)).toBe(16);
    expect(parseOrtThreads(undefined, 2)).toBe("auto");
    expect(parseOrtThreads("AUTO", 2)).toBe("auto");
    expect(() => parseOrtThreads("0", 2)).toThrow(OrtThreadsError);
    expect(() => parseOrtThreads("many", 2)).toThrow(/MELANOMA_LAB_ORT_THREADS="many": expected an integer 1\.\.8/);
    expect(() => parseOrtThreads("9", 2)).toThrow(OrtThreadsError);
  });
});

describe("selectInferenceRuntime", () => {
  it("chooses onnx when onnxruntime-node loads and the ONNX file exists, with the thread count and why", async () => {
    delete process.env.MELANOMA_LAB_RUNTIME;
    process.env.MELANOMA_LAB_ORT_THREADS = "2";
    const sel = await selectInferenceRuntime({ modelName: "m", onnxPath: existingFile() });
    expect(sel).toMatchObject({
      runtime: "onnx",
      forced: false,
      ortThreads: 2,
      ortThreadsReason: "MELANOMA_LAB_ORT_THREADS=2",
    });
    expect(describeInferenceRuntime(sel)).toMatch(
      /^runtime: onnx \(onnxruntime-node 1\.\d+\.\d+ loaded and m has an ONNX file; 2 intra-op threads \(MELANOMA_LAB_ORT_THREADS=2\)\)$/,
    );
    const option = await selectInferenceRuntime({ modelName: "m", onnxPath: existingFile(), ortThreads: 1 });
    expect(option.ortThreads).toBe(1);
  });

  it("decides 'auto' threads from idle cores: all logical cores or 1", async () => {
    delete process.env.MELANOMA_LAB_RUNTIME;
    delete process.env.MELANOMA_LAB_ORT_THREADS;
    const sel = await selectInferenceRuntime({ modelName: "m", onnxPath: existingFile() });
    expect([1, os.cpus().length]).toContain(sel.ortThreads);
    expect(sel.ortThreadsReason).toMatch(/^auto: [\d.]+ of \d+ cores? idle/);
  });

  it("falls back to tfjs, saying why, when the model has no ONNX file or the file is missing", async () => {
    delete process.env.MELANOMA_LAB_RUNTIME;
    const none = await selectInferenceRuntime({ modelName: "mobilenet_v2" });
    expect(none).toEqual({
      runtime: "tfjs",
      forced: false,
      reason: "mobilenet_v2 has no ONNX file (Backbone.onnx is not set)",
    });
    expect(describeInferenceRuntime(none)).toBe(
      "runtime: tfjs (mobilenet_v2 has no ONNX file (Backbone.onnx is not set))",
    );
    const gone = await selectInferenceRuntime({ modelName: "m", onnxPath: "/nonexistent/m.onnx" });
    expect(gone.runtime).toBe("tfjs");
    expect(gone.reason).toBe("m's ONNX file /nonexistent/m.onnx does not exist");
  });

  it("MELANOMA_LAB_RUNTIME=tfjs forces tfjs even with an ONNX file; the option beats the variable", async () => {
    process.env.MELANOMA_LAB_RUNTIME = "tfjs";
    const sel = await selectInferenceRuntime({ modelName: "m", onnxPath: existingFile() });
    expect(sel).toEqual({ runtime: "tfjs", forced: true, reason: "forced by MELANOMA_LAB_RUNTIME=tfjs" });
    expect(describeInferenceRuntime(sel)).toBe("runtime: tfjs (forced by MELANOMA_LAB_RUNTIME=tfjs) [forced]");
    const option = await selectInferenceRuntime({ modelName: "m", onnxPath: existingFile(), preferred: "onnx" });
    expect(option).toMatchObject({ runtime: "onnx", forced: true });
    expect(option.reason).toMatch(/^forced by option runtime="onnx", onnxruntime-node 1\./);
  });

  it("onnx forced without an ONNX file throws a named error saying what is missing", async () => {
    process.env.MELANOMA_LAB_RUNTIME = "onnx";
    await expect(selectInferenceRuntime({ modelName: "mobilenet_v2" })).rejects.toThrow(RuntimeUnavailableError);
    await expect(selectInferenceRuntime({ modelName: "mobilenet_v2" })).rejects.toThrow(
      'runtime "onnx" was forced by MELANOMA_LAB_RUNTIME=onnx but cannot run: mobilenet_v2 has no ONNX file (Backbone.onnx is not set)',
    );
    await expect(selectInferenceRuntime({ modelName: "m", onnxPath: "/nonexistent/m.onnx" })).rejects.toThrow(
      /cannot run: m's ONNX file \/nonexistent\/m\.onnx does not exist/,
    );
  });

  it("an unknown MELANOMA_LAB_RUNTIME or ORT thread setting throws instead of silently choosing", async () => {
    process.env.MELANOMA_LAB_RUNTIME = "tensorrt";
    await expect(selectInferenceRuntime({ modelName: "m" })).rejects.toThrow(
      /unknown runtime \(MELANOMA_LAB_RUNTIME\) "tensorrt"/,
    );
    delete process.env.MELANOMA_LAB_RUNTIME;
    process.env.MELANOMA_LAB_ORT_THREADS = "-1";
    await expect(selectInferenceRuntime({ modelName: "m", onnxPath: existingFile() })).rejects.toThrow(OrtThreadsError);
  });
});
