// Vite config of the phone app (app/): kept here so vitest's config at the root is untouched.
// scripts/app.ts (through app/buildApp.ts) builds with it and adds the model, icons and service worker.
import { fileURLToPath } from "node:url";
import { defineConfig } from "vite";

export default defineConfig({
  root: fileURLToPath(new URL(".", import.meta.url)),
  // Relative URLs, so the built folder works under any path and the service worker's scope is its folder.
  base: "./",
  logLevel: "warn",
  resolve: {
    // ORT's plain wasm build without its wasm glue inlined: it loads ort-wasm-simd-threaded.mjs/.wasm
    // from env.wasm.wasmPaths (the build's ort/ folder), which is also the worker script for its threads.
    alias: {
      "onnxruntime-web/wasm": fileURLToPath(
        new URL("../node_modules/onnxruntime-web/dist/ort.wasm.min.mjs", import.meta.url),
      ),
    },
  },
  build: { target: "es2022", emptyOutDir: true, chunkSizeWarningLimit: 4096, reportCompressedSize: false },
});
