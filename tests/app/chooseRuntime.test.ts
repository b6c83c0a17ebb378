import { describe, expect, it } from "vitest";
import {
  chooseOrtThreadCount,
  chooseRuntime,
  needsRuntimeTiming,
  parseRuntimeRequest,
  RuntimeRequestError,
} from "../../app/src/chooseRuntime.js";

describe("parseRuntimeRequest", () => {
  it("missing, empty or auto is auto; onnx and tfjs are kept; anything else is refused naming the value", () => {
    expect(parseRuntimeRequest("")).toBe("auto");
    expect(parseRuntimeRequest("?backend=wasm")).toBe("auto");
    expect(parseRuntimeRequest("?runtime=")).toBe("auto");
    expect(parseRuntimeRequest("?runtime=auto")).toBe("auto");
    expect(parseRuntimeRequest("?runtime=onnx&backend=wasm")).toBe("onnx");
    expect(parseRuntimeRequest("?backend=webgl&runtime=tfjs")).toBe("tfjs");
    expect(() => parseRuntimeRequest("?runtime=ort")).toThrow(RuntimeRequestError);
    expect(() => parseRuntimeRequest("?runtime=ort")).toThrow(/\?runtime=ort: expected auto, onnx or tfjs/);
  });
});

describe("chooseOrtThreadCount", () => {
  it("one thread without cross-origin isolation, whatever the cores", () => {
    const r = chooseOrtThreadCount({ crossOriginIsolated: false, hardwareConcurrency: 8 });
    expect(r.threads).toBe(1);
    expect(r.note).toMatch(/not cross-origin isolated/);
  });

  it("isolated: the cores, capped at 4 (or maxThreads), at least 1", () => {
    expect(chooseOrtThreadCount({ crossOriginIsolated: true, hardwareConcurrency: 2 }).threads).toBe(2);
    expect(chooseOrtThreadCount({ crossOriginIsolated: true, hardwareConcurrency: 8 }).threads).toBe(4);
    expect(chooseOrtThreadCount({ crossOriginIsolated: true, hardwareConcurrency: 8, maxThreads: 6 }).threads).toBe(6);
    expect(chooseOrtThreadCount({ crossOriginIsolated: true, hardwareConcurrency: undefined }).threads).toBe(1);
    expect(chooseOrtThreadCount({ crossOriginIsolated: true, hardwareConcurrency: 8 }).note).toBe(
      "4 threads: cross-origin isolated, 8 cores, capped at 4",
    );
  });

  it("?ortThreads= forces a count; more than 1 without isolation or a non-integer is refused", () => {
    expect(chooseOrtThreadCount({ crossOriginIsolated: true, hardwareConcurrency: 8, requested: "1" })).toEqual({
      threads: 1,
      note: "1 thread: forced by ?ortThreads=1",
    });
    expect(chooseOrtThreadCount({ crossOriginIsolated: true, hardwareConcurrency: 2, requested: "3" }).threads).toBe(3);
    expect(() => chooseOrtThreadCount({ crossOriginIsolated: false, hardwareConcurrency: 8, requested: "2" })).toThrow(
      /\?ortThreads=2: the page is not cross-origin isolated/,
    );
    expect(() => chooseOrtThreadCount({ crossOriginIsolated: true, hardwareConcurrency: 8, requested: "0" })).toThrow(
      /\?ortThreads=0: expected a whole number ≥ 1/,
    );
  });
});

describe("chooseRuntime", () => {
  const withOnnx = { available: true as const, threads: 2 };

  it("auto times both only when model.onnx is usable", () => {
    expect(needsRuntimeTiming("auto", true)).toBe(true);
    expect(needsRuntimeTiming("auto", false)).toBe(false);
    expect(needsRuntimeTiming("onnx", true)).toBe(false);
    expect(needsRuntimeTiming("tfjs", true)).toBe(false);
  });

  it("auto keeps the faster runtime and says both figures", () => {
    expect(
      chooseRuntime({ requested: "auto", onnx: withOnnx, tfjsBackend: "webgl", timingsMs: { onnx: 38.2, tfjs: 95.4 } }),
    ).toEqual({ runtime: "onnx", reason: "ONNX Runtime web (wasm, 2 threads): 38 ms vs tfjs webgl 95 ms per photo" });
    expect(
      chooseRuntime({
        requested: "auto",
        onnx: { available: true, threads: 1 },
        tfjsBackend: "wasm",
        timingsMs: { onnx: 12.5, tfjs: 7.25 },
      }),
    ).toEqual({ runtime: "tfjs", reason: "tfjs wasm: 7.3 ms vs ONNX Runtime web (wasm, 1 thread) 13 ms per photo" });
    // A tie goes to ONNX Runtime.
    expect(
      chooseRuntime({ requested: "auto", onnx: withOnnx, tfjsBackend: "wasm", timingsMs: { onnx: 20, tfjs: 20 } })
        .runtime,
    ).toBe("onnx");
  });

  it("auto without a usable model.onnx runs tfjs and gives the reason", () => {
    expect(
      chooseRuntime({
        requested: "auto",
        onnx: { available: false, reason: "the model folder has no model.onnx" },
        tfjsBackend: "webgl",
      }),
    ).toEqual({ runtime: "tfjs", reason: "tfjs webgl: the model folder has no model.onnx" });
  });

  it("auto with model.onnx but no timings is a caller error, not a silent pick", () => {
    expect(() => chooseRuntime({ requested: "auto", onnx: withOnnx, tfjsBackend: "wasm" })).toThrow(
      /needs both timings; received undefined/,
    );
    expect(() =>
      chooseRuntime({ requested: "auto", onnx: withOnnx, tfjsBackend: "wasm", timingsMs: { onnx: NaN, tfjs: 3 } }),
    ).toThrow(RuntimeRequestError);
  });

  it("?runtime= forces either without timing; a forced onnx that is unavailable is an error", () => {
    expect(chooseRuntime({ requested: "tfjs", onnx: withOnnx, tfjsBackend: "wasm" })).toEqual({
      runtime: "tfjs",
      reason: "tfjs wasm: forced by ?runtime=tfjs",
    });
    expect(chooseRuntime({ requested: "onnx", onnx: withOnnx, tfjsBackend: "not loaded" })).toEqual({
      runtime: "onnx",
      reason: "ONNX Runtime web (wasm, 2 threads): forced by ?runtime=onnx",
    });
    expect(() =>
      chooseRuntime({ requested: "onnx", onnx: { available: false, reason: "no model.onnx" }, tfjsBackend: "wasm" }),
    ).toThrow(/\?runtime=onnx: ONNX Runtime web unavailable \(no model\.onnx\)/);
  });
});
