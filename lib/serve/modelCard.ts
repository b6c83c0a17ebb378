import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import type { TriageModelMetadata } from "../export/triageModel.js";

/** Keys whose values name files or folders: dropped from the card wherever they occur. */
const PATH_KEYS = new Set(["file", "path", "dir", "folder", "modelDir", "dataDir", "outDir", "logDir"]);

/** A string that reads as a file-system path: absolute, ./ ../ ~/, a Windows drive, or a/b.ext. */
function looksLikePath(value: string): boolean {
  if (/^(\/|\.{1,2}[\\/]|~[\\/]|[A-Za-z]:[\\/]|\\\\)/.test(value)) return true;
  return !/\s/.test(value) && /[\\/]/.test(value) && /\.[A-Za-z0-9]{1,5}$/.test(value);
}

function withoutPaths(value: unknown): unknown {
  if (Array.isArray(value)) return value.filter((v) => !(typeof v === "string" && looksLikePath(v))).map(withoutPaths);
  if (value !== null && typeof value === "object") {
    const out: Record<string, unknown> = {};
    for (const [key, v] of Object.entries(value)) {
      if (PATH_KEYS.has(key) || (typeof v === "string" && looksLikePath(v))) continue;
      out[key] = withoutPaths(v);
    }
    return out;
  }
  return value;
}

/**
 * The model card the service shows at `GET /v1/model`: the exported metadata.json minus file
 * paths — keys that name files (`file`, `path`, `dir`, …, e.g. `onnx.file`) and any string that
 * reads as a path (the data folder in `notes`) — so the service reveals nothing of its disk.
 *
 * @example toModelCard(metadata).onnx // { opset: 13, inputNames: ["input_1"], outputName: "probability" } (no "file")
 */
export function toModelCard(metadata: TriageModelMetadata): Record<string, unknown> {
  return withoutPaths(metadata) as Record<string, unknown>;
}

/**
 * A short content hash of an exported model folder (sha256 over each regular file's name and
 * bytes, sorted by name; first 12 hex digits): it changes whenever the weights, ONNX file or
 * metadata change, so a response names exactly which model answered.
 *
 * @example hashModelFolder("models/demo") // "3f9a0c1b7d2e"
 */
export function hashModelFolder(dir: string): string {
  const hash = crypto.createHash("sha256");
  const files = fs
    .readdirSync(dir, { withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => e.name)
    .sort();
  for (const name of files) {
    hash.update(name);
    hash.update("\0");
    hash.update(fs.readFileSync(path.join(dir, name)));
    hash.update("\0");
  }
  return hash.digest("hex").slice(0, 12);
}

/**
 * The model's id and version for responses: metadata's own `modelId`/`modelVersion` strings when
 * the export wrote them, else the folder's name and {@link hashModelFolder}.
 *
 * @example identifyModel("models/demo", metadata) // { modelId: "demo", modelVersion: "3f9a0c1b7d2e" }
 */
export function identifyModel(dir: string, metadata: TriageModelMetadata): { modelId: string; modelVersion: string } {
  const record = metadata as unknown as Record<string, unknown>;
  const modelId = typeof record.modelId === "string" ? record.modelId : path.basename(path.resolve(dir));
  const modelVersion = typeof record.modelVersion === "string" ? record.modelVersion : hashModelFolder(dir);
  return { modelId, modelVersion };
}
