/**
 * Node side of the phone app: builds app/ with Vite, adds the chosen model, the tfjs wasm
 * binaries, ONNX Runtime web's wasm files (and model.onnx when exported), icons, the web manifest and a service worker that precaches all of it, and serves
 * the folder on loopback. Used by `npm run app`, tests/app and bench/app.ts.
 */
import crypto from "node:crypto";
import fs from "node:fs";
import http from "node:http";
import path from "node:path";
import { fileURLToPath } from "node:url";
import sharp from "sharp";
import { build } from "vite";

const appDir = path.dirname(fileURLToPath(import.meta.url));
const rootDir = path.dirname(appDir);

/** Thrown when the model folder cannot be bundled (missing file), naming the path and what was expected. */
export class AppBuildError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "AppBuildError";
  }
}

/**
 * The files of an exported triage model the app needs: model.json, its weight files, metadata.json,
 * and the ONNX copy (e.g. model.onnx) when metadata.json names one.
 */
export function listModelFiles(modelDir: string): string[] {
  const modelJson = path.join(modelDir, "model.json");
  const metadata = path.join(modelDir, "metadata.json");
  for (const file of [modelJson, metadata]) {
    if (!fs.existsSync(file)) {
      throw new AppBuildError(
        `${file} is missing: --model expects an exported triage model folder (model.json, weights.bin, metadata.json), e.g. models/<run>`,
      );
    }
  }
  const manifest = JSON.parse(fs.readFileSync(modelJson, "utf8")) as { weightsManifest?: { paths: string[] }[] };
  const weights = (manifest.weightsManifest ?? []).flatMap((group) => group.paths.map((p) => p.replace(/^\.\//, "")));
  for (const w of weights) {
    if (w.includes("/") || w.includes("\\") || !fs.existsSync(path.join(modelDir, w))) {
      throw new AppBuildError(
        `${path.join(modelDir, w)}: weight file named in model.json is missing or not in the folder`,
      );
    }
  }
  const onnxFile = (JSON.parse(fs.readFileSync(metadata, "utf8")) as { onnx?: { file?: unknown } }).onnx?.file;
  if (onnxFile !== undefined) {
    if (typeof onnxFile !== "string" || /[/\\]/.test(onnxFile) || !fs.existsSync(path.join(modelDir, onnxFile))) {
      throw new AppBuildError(
        `${path.join(modelDir, String(onnxFile))}: ONNX file named in metadata.json (onnx.file) is missing or not in the folder`,
      );
    }
    return ["model.json", ...weights, "metadata.json", onnxFile];
  }
  return ["model.json", ...weights, "metadata.json"];
}

const ICON_SVG = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 64 64"><rect width="64" height="64" rx="12" fill="#1f4e79"/><circle cx="32" cy="32" r="17" fill="#8a5a44"/><circle cx="27" cy="28" r="6" fill="#4a2c20"/><path d="M10 54h44" stroke="#fff" stroke-width="4" stroke-linecap="round"/></svg>`;

function listFilesRecursive(dir: string, prefix = ""): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const rel = prefix ? `${prefix}/${e.name}` : e.name;
    return e.isDirectory() ? listFilesRecursive(path.join(dir, e.name), rel) : [rel];
  });
}

/** ONNX Runtime web's wasm binary and its Emscripten glue (also the worker script of its threads), copied to `ort/`. */
export const ORT_WASM_FILES = ["ort-wasm-simd-threaded.wasm", "ort-wasm-simd-threaded.mjs"] as const;

/** What {@link buildPhoneApp} wrote. */
export interface PhoneAppBuild {
  outDir: string;
  /** Files the service worker precaches (relative URLs), the page itself first. */
  precached: string[];
  /** sha256 prefix of every precached file: the service worker's cache name changes with it. */
  version: string;
}

/**
 * Builds the app into `outDir` with `modelDir`'s model under `model/`.
 *
 * @example await buildPhoneApp({ modelDir: "models/demo", outDir: "out/app" }) // { precached: ["./", "index.html", …] }
 */
export async function buildPhoneApp(options: { modelDir: string; outDir: string }): Promise<PhoneAppBuild> {
  const outDir = path.resolve(options.outDir);
  const modelFiles = listModelFiles(options.modelDir);
  await build({ configFile: path.join(appDir, "vite.config.ts"), build: { outDir } });
  fs.mkdirSync(path.join(outDir, "model"), { recursive: true });
  for (const f of modelFiles) fs.copyFileSync(path.join(options.modelDir, f), path.join(outDir, "model", f));
  const wasmSrc = path.join(rootDir, "node_modules", "@tensorflow", "tfjs-backend-wasm", "dist");
  fs.mkdirSync(path.join(outDir, "wasm"), { recursive: true });
  for (const f of fs.readdirSync(wasmSrc).filter((n) => n.endsWith(".wasm"))) {
    fs.copyFileSync(path.join(wasmSrc, f), path.join(outDir, "wasm", f));
  }
  // ONNX Runtime web's plain wasm build only (ort.wasm.min.mjs is bundled by Vite): not the
  // jsep/jspi/asyncify/webgpu variants, which the page never loads. Its 14 MB binary is left out
  // when there is no model.onnx to run, so a tfjs-only app stays small to precache.
  if (modelFiles.some((f) => f.endsWith(".onnx"))) {
    const ortSrc = path.join(rootDir, "node_modules", "onnxruntime-web", "dist");
    fs.mkdirSync(path.join(outDir, "ort"), { recursive: true });
    for (const f of ORT_WASM_FILES) fs.copyFileSync(path.join(ortSrc, f), path.join(outDir, "ort", f));
  }
  fs.mkdirSync(path.join(outDir, "icons"), { recursive: true });
  for (const size of [192, 512]) {
    await sharp(Buffer.from(ICON_SVG))
      .resize(size, size)
      .png()
      .toFile(path.join(outDir, "icons", `icon-${size}.png`));
  }
  const manifest = {
    name: "Melanoma triage (research demo)",
    short_name: "Triage",
    description: "On-device triage of a skin-lesion photo. Research software, not a medical device.",
    start_url: "./",
    scope: "./",
    display: "standalone",
    background_color: "#ffffff",
    theme_color: "#1f4e79",
    icons: [192, 512].map((s) => ({
      src: `icons/icon-${s}.png`,
      sizes: `${s}x${s}`,
      type: "image/png",
      purpose: "any",
    })),
  };
  fs.writeFileSync(path.join(outDir, "manifest.webmanifest"), JSON.stringify(manifest, null, 2));
  const files = listFilesRecursive(outDir)
    .filter((f) => f !== "sw.js")
    .sort();
  const hash = crypto.createHash("sha256");
  for (const f of files) hash.update(f).update(fs.readFileSync(path.join(outDir, f)));
  const version = hash.digest("hex").slice(0, 16);
  const precached = ["./", ...files];
  fs.writeFileSync(path.join(outDir, "sw.js"), serviceWorkerSource(precached, version));
  return { outDir, precached, version };
}

/**
 * The service worker: on install, caches every file of the build (app shell, wasm, model) under a
 * name that changes with their content; on activate, drops older caches; serves GETs cache-first,
 * so a second visit works with the network off. Non-GET requests are never handled or cached.
 */
function serviceWorkerSource(precached: string[], version: string): string {
  return `// Generated by app/buildApp.ts: precaches the app shell and the model (version ${version}).
const CACHE = "melanoma-app-${version}";
const FILES = ${JSON.stringify(precached)};
self.addEventListener("install", (event) => {
  event.waitUntil(caches.open(CACHE).then((cache) => cache.addAll(FILES)).then(() => self.skipWaiting()));
});
self.addEventListener("activate", (event) => {
  event.waitUntil(
    caches.keys()
      .then((keys) => Promise.all(keys.filter((k) => k.startsWith("melanoma-app-") && k !== CACHE).map((k) => caches.delete(k))))
      .then(() => self.clients.claim()),
  );
});
self.addEventListener("fetch", (event) => {
  if (event.request.method !== "GET") return;
  event.respondWith(
    caches.open(CACHE).then((cache) =>
      cache.match(event.request, { ignoreSearch: true }).then((hit) => hit || fetch(event.request)),
    ),
  );
});
`;
}

const CONTENT_TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".json": "application/json",
  ".webmanifest": "application/manifest+json",
  ".png": "image/png",
  ".wasm": "application/wasm",
  ".bin": "application/octet-stream",
  ".onnx": "application/octet-stream",
};

/**
 * Makes the page cross-origin isolated, so SharedArrayBuffer and hence wasm threads are available
 * (ONNX Runtime web's and tfjs wasm's). Harmless for the app: everything it loads is same-origin
 * (the photo preview is a blob: URL).
 */
const CROSS_ORIGIN_ISOLATION_HEADERS = {
  "Cross-Origin-Opener-Policy": "same-origin",
  "Cross-Origin-Embedder-Policy": "require-corp",
};

/**
 * Serves a built app folder read-only on `host:port` (port 0: any free one). Only GET and HEAD of
 * files inside the folder; anything else is 405/404. Every file is sent with COOP/COEP headers
 * (cross-origin isolation, for wasm threads) unless `crossOriginIsolated: false`. Resolves once listening.
 *
 * @example const server = await servePhoneApp("out/app", { port: 0 }); console.log(server.url)
 */
export async function servePhoneApp(
  dir: string,
  options: { host?: string; port?: number; crossOriginIsolated?: boolean } = {},
): Promise<{ url: string; close: () => Promise<void> }> {
  const root = path.resolve(dir);
  const server = http.createServer((req, res) => {
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.writeHead(405, { Allow: "GET, HEAD" }).end();
      return;
    }
    let pathname: string;
    try {
      pathname = decodeURIComponent(new URL(req.url ?? "/", "http://x").pathname);
    } catch {
      res.writeHead(400).end();
      return;
    }
    if (pathname.endsWith("/")) pathname += "index.html";
    const file = path.resolve(root, "." + pathname);
    if (!file.startsWith(root + path.sep) || !fs.existsSync(file) || !fs.statSync(file).isFile()) {
      res.writeHead(404, { "Content-Type": "text/plain" }).end("not found");
      return;
    }
    res.writeHead(200, {
      "Content-Type": CONTENT_TYPES[path.extname(file)] ?? "application/octet-stream",
      "Cache-Control": "no-cache",
      ...(options.crossOriginIsolated === false ? {} : CROSS_ORIGIN_ISOLATION_HEADERS),
    });
    if (req.method === "HEAD") res.end();
    else fs.createReadStream(file).pipe(res);
  });
  const host = options.host ?? "127.0.0.1";
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 0, host, resolve);
  });
  const address = server.address() as { port: number };
  return {
    url: `http://${host}:${address.port}/`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
