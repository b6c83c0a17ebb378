import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import * as tf from "@tensorflow/tfjs";
import { readModelArtifactsFromDir } from "./modelFiles.js";
import { findProjectRoot } from "../util/paths.js";
import { BackboneLoadError, cutAtFeatureLayer } from "./cutBackbone.js";
import type { Backbone, PreprocessingSpec } from "./types.js";

/** Width multipliers Google hosts MobileNet v1 224 weights for. */
export const MOBILENET_V1_ALPHAS = [0.25, 0.5, 0.75, 1.0] as const;

/** Where tfjs-models hosts the MobileNet v1 layers models. */
const MOBILENET_V1_BASE_URL = "https://storage.googleapis.com/tfjs-models/tfjs";

/** Keras MobileNet v1 input scaling: x / 127.5 - 1. */
const MOBILENET_V1_PREPROCESSING: PreprocessingSpec = { kind: "scale", scale: 1 / 127.5, offset: -1 };

/** Thrown when weights cannot be downloaded (network, HTTP status, missing shard). */
export class WeightsDownloadError extends BackboneLoadError {}

/**
 * The hosted folder name of a MobileNet v1 224 model, e.g. "mobilenet_v1_0.25_224".
 * Throws {@link BackboneLoadError} for an alpha Google does not host.
 *
 * @example mobilenetV1FolderName(0.5) // "mobilenet_v1_0.50_224"
 */
export function mobilenetV1FolderName(alpha: number): string {
  const labels: Record<string, string> = { "0.25": "0.25", "0.5": "0.50", "0.75": "0.75", "1": "1.0" };
  const label = labels[String(alpha)];
  if (!label) {
    throw new BackboneLoadError(`mobilenet_v1 alpha: received ${alpha}, expected one of ${MOBILENET_V1_ALPHAS.join(", ")}`);
  }
  return `mobilenet_v1_${label}_224`;
}

/**
 * The folder downloaded weights are cached in: `options.weightsCacheDir`, else the env var
 * `MELANOMA_LAB_WEIGHTS_DIR`, else `<project root>/.cache/weights`.
 *
 * @example resolveWeightsCacheDir() // "/work/main/.cache/weights"
 */
export function resolveWeightsCacheDir(weightsCacheDir?: string): string {
  return path.resolve(weightsCacheDir ?? process.env.MELANOMA_LAB_WEIGHTS_DIR ?? path.join(findProjectRoot(), ".cache", "weights"));
}

async function fetchBytes(url: string): Promise<Buffer> {
  let response: Response;
  try {
    response = await fetch(url);
  } catch (err) {
    const cause = err instanceof Error ? ((err.cause as Error | undefined)?.message ?? err.message) : String(err);
    throw new WeightsDownloadError(`${url}: download failed (${cause}); set MELANOMA_LAB_WEIGHTS_DIR to a folder holding a local copy to work offline`);
  }
  if (!response.ok) throw new WeightsDownloadError(`${url}: HTTP ${response.status} ${response.statusText} (expected 200)`);
  return Buffer.from(await response.arrayBuffer());
}

/**
 * Makes sure `filePath` exists, downloading `url` there when it does not (nothing is fetched
 * when it does). Writes to a temporary name first and renames, so an interrupted download is
 * retried rather than half-used. Throws {@link WeightsDownloadError} naming the URL. The one
 * single-file weights download (VGG16's .h5, the ImageNet MobileNetV2 .onnx).
 *
 * @example await downloadFileOnce(url, "/tmp/w/vgg16.h5") // { downloaded: true, bytes: <file size> }
 */
export async function downloadFileOnce(url: string, filePath: string): Promise<{ downloaded: boolean; bytes: number }> {
  if (fs.existsSync(filePath)) return { downloaded: false, bytes: 0 };
  const data = await fetchBytes(url);
  await fs.promises.mkdir(path.dirname(filePath), { recursive: true });
  const tmp = `${filePath}.${process.pid}.tmp`;
  await fs.promises.writeFile(tmp, data);
  await fs.promises.rename(tmp, filePath);
  return { downloaded: true, bytes: data.length };
}

/**
 * Makes sure `<cacheDir>/<folder>/` holds a complete tfjs layers model downloaded from
 * `<baseUrl>/<folder>/model.json`: when model.json is already there nothing is fetched.
 * Shards are written first and model.json last (via a temp name and rename), so an
 * interrupted download is retried rather than half-used. Returns the folder path.
 *
 * @example await downloadLayersModelOnce("http://127.0.0.1:8080", "mobilenet_v1_0.25_224", "/tmp/w")
 */
async function downloadLayersModelOnce(baseUrl: string, folder: string, cacheDir: string): Promise<{ dir: string; downloaded: boolean; bytes: number }> {
  const dir = path.join(cacheDir, folder);
  if (fs.existsSync(path.join(dir, "model.json"))) return { dir, downloaded: false, bytes: 0 };
  await fs.promises.mkdir(dir, { recursive: true });
  const root = `${baseUrl.replace(/\/+$/, "")}/${folder}`;
  const modelJsonBytes = await fetchBytes(`${root}/model.json`);
  let manifest: { paths: string[] }[];
  try {
    manifest = (JSON.parse(modelJsonBytes.toString("utf8")) as { weightsManifest: { paths: string[] }[] }).weightsManifest;
    if (!Array.isArray(manifest)) throw new Error("no weightsManifest array");
  } catch (err) {
    throw new WeightsDownloadError(`${root}/model.json: not a tfjs layers model.json (${err instanceof Error ? err.message : String(err)})`);
  }
  let bytes = modelJsonBytes.length;
  for (const shard of manifest.flatMap((g) => g.paths)) {
    if (shard.includes("..") || path.isAbsolute(shard)) throw new WeightsDownloadError(`${root}/model.json: shard path ${JSON.stringify(shard)} leaves the model folder`);
    const data = await fetchBytes(`${root}/${shard}`);
    bytes += data.length;
    await fs.promises.writeFile(path.join(dir, shard), data);
  }
  const tmp = path.join(dir, `model.json.${process.pid}.tmp`);
  await fs.promises.writeFile(tmp, modelJsonBytes);
  await fs.promises.rename(tmp, path.join(dir, "model.json"));
  return { dir, downloaded: true, bytes };
}

/** Folder of the alpha 1.0 model cut at `conv_dw_13_relu` (every public copy lacks the conv_pw_13 kernel shard). */
export const MOBILENET_V1_NOTOP_FOLDER = "mobilenet_v1_1.0_224_notop";

/**
 * Where {@link loadMobilenetV1Backbone} reads a model from, in order of preference: the full
 * hosted folder if it holds model.json; for alpha 1.0 only, else the "notop" folder
 * (`mobilenet_v1_1.0_224_notop/`, cut at `conv_dw_13_relu`) if it holds model.json; else the
 * full folder, to be downloaded. `searched` lists every folder looked in.
 *
 * @example resolveMobilenetV1Source(1.0, "/work/shared/weights") // { folder: "mobilenet_v1_1.0_224_notop", featureLayerName: "conv_dw_13_relu", present: true, … }
 */
export function resolveMobilenetV1Source(
  alpha: number,
  cacheDir: string,
): { folder: string; dir: string; featureLayerName: string; present: boolean; searched: string[] } {
  const full = mobilenetV1FolderName(alpha);
  const candidates = [{ folder: full, featureLayerName: "conv_pw_13_relu" }];
  if (alpha === 1) candidates.push({ folder: MOBILENET_V1_NOTOP_FOLDER, featureLayerName: "conv_dw_13_relu" });
  const searched = candidates.map((c) => path.join(cacheDir, c.folder));
  for (const [i, c] of candidates.entries()) {
    if (fs.existsSync(path.join(searched[i], "model.json"))) return { ...c, dir: searched[i], present: true, searched };
  }
  return { ...candidates[0], dir: searched[0], present: false, searched };
}

/**
 * Loads ImageNet MobileNet v1 (224 px) cut at a feature layer + global average pooling.
 * Weights come from `<MELANOMA_LAB_WEIGHTS_DIR or weightsCacheDir>/` (a local mirror or an
 * earlier download), see {@link resolveMobilenetV1Source}:
 * - `mobilenet_v1_<alpha>_224/` when it holds model.json: cut at `conv_pw_13_relu` → 1024 × alpha;
 * - alpha 1.0 only, else `mobilenet_v1_1.0_224_notop/`: cut at `conv_dw_13_relu` → 1024
 *   (one block lower; its weightsId names the notop folder, so cached features never mix);
 * - else the full model is downloaded once from `baseUrl` into `mobilenet_v1_<alpha>_224/`.
 * A failed download throws {@link WeightsDownloadError} naming every folder searched.
 *
 * @example const b = await loadMobilenetV1Backbone({ alpha: 0.25 }); // b.featureDim === 256
 */
export async function loadMobilenetV1Backbone(options: { alpha?: number; weightsCacheDir?: string; baseUrl?: string } = {}): Promise<Backbone> {
  const alpha = options.alpha ?? 1.0;
  const started = performance.now();
  const cacheDir = resolveWeightsCacheDir(options.weightsCacheDir);
  const source = resolveMobilenetV1Source(alpha, cacheDir);
  if (!source.present) {
    try {
      await downloadLayersModelOnce(options.baseUrl ?? MOBILENET_V1_BASE_URL, source.folder, cacheDir);
    } catch (err) {
      if (!(err instanceof WeightsDownloadError)) throw err;
      throw new WeightsDownloadError(
        `mobilenet_v1 alpha ${alpha}: no model.json in ${source.searched.join(" or ")}, and downloading ${source.folder} failed: ${err.message}`,
      );
    }
  }
  const artifacts = readModelArtifactsFromDir(source.dir);
  const weightData = artifacts.weightData as ArrayBuffer;
  const hash = crypto.createHash("sha256").update(new Uint8Array(weightData)).digest("hex").slice(0, 16);
  const full = await tf.loadLayersModel(tf.io.fromMemory(artifacts));
  const backbone = cutAtFeatureLayer(full, "mobilenet_v1", source.featureLayerName, 224, MOBILENET_V1_PREPROCESSING, `tfjs-models/${source.folder}/sha256:${hash}`);
  backbone.weightsSource = source.dir;
  backbone.loadMs = performance.now() - started;
  return backbone;
}
