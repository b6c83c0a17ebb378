// buildPhoneApp's files: model.onnx and ONNX Runtime web's plain wasm files when the model has an
// ONNX copy (none of the jsep/jspi/asyncify/webgpu variants), precached by the service worker; none
// of them for a tfjs-only folder; servePhoneApp's cross-origin isolation headers.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AppBuildError, buildPhoneApp, listModelFiles, ORT_WASM_FILES, servePhoneApp } from "../../app/buildApp.js";
import { exportSmallConvTriageModel } from "./appFixtures.js";

function listFiles(dir: string, prefix = ""): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const rel = prefix ? `${prefix}/${e.name}` : e.name;
    return e.isDirectory() ? listFiles(path.join(dir, e.name), rel) : [rel];
  });
}

/** The FILES array the generated sw.js precaches. */
function readPrecachedList(distDir: string): string[] {
  const sw = fs.readFileSync(path.join(distDir, "sw.js"), "utf8");
  const match = sw.match(/const FILES = (\[.*\]);/);
  expect(match, "sw.js declares FILES").not.toBeNull();
  return JSON.parse(match![1]) as string[];
}

describe("buildPhoneApp with and without model.onnx", () => {
  let tmp: string;

  beforeAll(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), "melanoma-app-build-"));
    await exportSmallConvTriageModel(path.join(tmp, "model"), 7, { onnx: true });
    await exportSmallConvTriageModel(path.join(tmp, "model-tfjs-only"), 7);
    await buildPhoneApp({ modelDir: path.join(tmp, "model"), outDir: path.join(tmp, "dist") });
    await buildPhoneApp({ modelDir: path.join(tmp, "model-tfjs-only"), outDir: path.join(tmp, "dist-tfjs-only") });
  }, 240_000);

  afterAll(() => {
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  it("bundles model.onnx and exactly ORT's plain wasm files, byte for byte, and the service worker precaches them", () => {
    const dist = path.join(tmp, "dist");
    const files = listFiles(dist);
    expect(files).toContain("model/model.onnx");
    // Buffer.equals: toEqual compares 14 MB element by element for minutes.
    expect(
      fs
        .readFileSync(path.join(dist, "model", "model.onnx"))
        .equals(fs.readFileSync(path.join(tmp, "model", "model.onnx"))),
    ).toBe(true);
    expect(files.filter((f) => f.startsWith("ort/")).sort()).toEqual(ORT_WASM_FILES.map((f) => `ort/${f}`).sort());
    for (const f of ORT_WASM_FILES) {
      const copied = fs.readFileSync(path.join(dist, "ort", f));
      expect(copied.equals(fs.readFileSync(path.resolve("node_modules", "onnxruntime-web", "dist", f))), f).toBe(true);
    }
    // No other ORT binary anywhere (Vite emitting one as an asset would double the download).
    expect(files.filter((f) => /jsep|jspi|asyncify|webgpu/.test(f))).toEqual([]);
    expect(files.filter((f) => f.endsWith(".wasm") && !f.startsWith("ort/") && !f.startsWith("wasm/"))).toEqual([]);
    const precached = readPrecachedList(dist);
    for (const f of ["model/model.onnx", ...ORT_WASM_FILES.map((n) => `ort/${n}`)]) expect(precached).toContain(f);
    // ORT's JavaScript is its own chunk, loaded only when the page opens model.onnx.
    expect(precached.some((f) => /^assets\/ort\.wasm\.min-.*\.js$/.test(f))).toBe(true);
  });

  it("a tfjs-only folder gets neither model.onnx nor ORT's 14 MB binary", () => {
    const files = listFiles(path.join(tmp, "dist-tfjs-only"));
    expect(files.filter((f) => f.endsWith(".onnx") || f.startsWith("ort/"))).toEqual([]);
    expect(readPrecachedList(path.join(tmp, "dist-tfjs-only")).filter((f) => f.startsWith("ort/"))).toEqual([]);
  });

  it("listModelFiles names model.onnx only when metadata.json records it, and refuses a recorded file that is missing", () => {
    expect(listModelFiles(path.join(tmp, "model"))).toEqual([
      "model.json",
      "weights.bin",
      "metadata.json",
      "model.onnx",
    ]);
    expect(listModelFiles(path.join(tmp, "model-tfjs-only"))).toEqual(["model.json", "weights.bin", "metadata.json"]);
    const broken = path.join(tmp, "model-onnx-missing");
    fs.cpSync(path.join(tmp, "model"), broken, { recursive: true });
    fs.rmSync(path.join(broken, "model.onnx"));
    expect(() => listModelFiles(broken)).toThrow(AppBuildError);
    expect(() => listModelFiles(broken)).toThrow(
      /model\.onnx: ONNX file named in metadata\.json \(onnx\.file\) is missing/,
    );
  });

  it("servePhoneApp sends COOP/COEP (cross-origin isolation for wasm threads) unless told not to", async () => {
    for (const [options, expected] of [
      [{}, ["same-origin", "require-corp"]],
      [{ crossOriginIsolated: false }, [undefined, undefined]],
    ] as const) {
      const server = await servePhoneApp(path.join(tmp, "dist"), options);
      try {
        for (const file of ["", "ort/ort-wasm-simd-threaded.mjs", "model/model.onnx"]) {
          const res = await fetch(new URL(file, server.url));
          expect(res.status).toBe(200);
          expect([
            res.headers.get("cross-origin-opener-policy") ?? undefined,
            res.headers.get("cross-origin-embedder-policy") ?? undefined,
          ]).toEqual(expected);
          if (file.endsWith(".mjs")) expect(res.headers.get("content-type")).toMatch(/^text\/javascript/);
          await res.arrayBuffer();
        }
      } finally {
        await server.close();
      }
    }
  });
});
