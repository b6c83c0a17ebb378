import fs from "node:fs";
import path from "node:path";
import Papa from "papaparse";
import { MelanomaLabError } from "../util/errors.js";
import { mapWithConcurrency } from "./loadImageBatch.js";
import type { InputProblem, LesionLabel } from "./types.js";

/** Thrown when the ISIC API cannot be reached or answers with something unusable after retries. */
export class IsicDownloadError extends MelanomaLabError {}

/** The public ISIC Archive API v2 root. */
export const ISIC_API_BASE_URL = "https://api.isic-archive.com/api/v2";

/** Options of {@link downloadIsicArchive}. */
export interface IsicDownloadOptions {
  /** Folder that receives images/, labels.csv and the resume state. */
  outDir: string;
  /** ISIC search query, e.g. `benign_malignant:malignant AND image_type:dermoscopic`. Default "" (all). */
  query?: string;
  /** Stop after this many labelled images in total (counting ones from earlier runs). */
  maxImages?: number;
  /** API root; tests point it at a loopback server. Default {@link ISIC_API_BASE_URL}. */
  baseUrl?: string;
  /** Results per page (`limit`). Default 100. */
  pageSize?: number;
  /** Retries on HTTP 429/5xx or a network error, with exponential backoff. Default 5. */
  maxRetries?: number;
  /** First backoff delay; doubles each retry; a Retry-After header wins when longer. Default 1000 ms. */
  retryBaseDelayMs?: number;
  /** Image downloads in parallel. Default 4. */
  concurrency?: number;
  /** Injected fetch (defaults to the global one). */
  fetchImpl?: typeof fetch;
  /** Called after each page. */
  onProgress?: (progress: { downloaded: number; skippedExisting: number; pages: number }) => void;
}

/** What {@link downloadIsicArchive} did. */
export interface IsicDownloadResult {
  labelsCsvPath: string;
  /** Labelled images in labels.csv (this run and earlier ones). */
  imageCount: number;
  downloadedThisRun: number;
  /** Images already on disk from an earlier run, not fetched again. */
  skippedExisting: number;
  /** Whether the search was read to its last page. */
  complete: boolean;
  problems: InputProblem[];
}

interface IsicImage {
  isic_id?: string;
  copyright_license?: string;
  attribution?: string;
  files?: { full?: { url?: string; size?: number } };
  urls?: { full?: string };
  metadata?: { clinical?: Record<string, unknown>; acquisition?: Record<string, unknown> };
}

interface SavedState {
  query: string;
  /** Next page URL to read; null when the search is exhausted. */
  nextUrl: string | null;
  rows: Record<string, string>[];
}

const STATE_FILE = ".isic-download-state.json";
const CSV_COLUMNS = ["image_id", "label", "diagnosis", "lesion_id", "patient_id", "age", "sex", "localization", "copyright_license", "attribution"];

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * fetch with retries: HTTP 429 and 5xx and network errors are retried after
 * retryBaseDelayMs × 2^(attempt − 1) (or Retry-After seconds when longer); other statuses fail at once.
 */
async function fetchWithRetry(url: string, options: { maxRetries: number; retryBaseDelayMs: number; fetchImpl: typeof fetch }): Promise<Response> {
  let lastReason = "";
  let retryAfterMs = 0;
  for (let attempt = 0; attempt <= options.maxRetries; attempt++) {
    if (attempt > 0) await sleep(Math.max(options.retryBaseDelayMs * 2 ** (attempt - 1), retryAfterMs));
    retryAfterMs = 0;
    let response: Response;
    try {
      response = await options.fetchImpl(url);
    } catch (err) {
      lastReason = `network error (${(err as Error).message})`;
      continue;
    }
    if (response.ok) return response;
    lastReason = `HTTP ${response.status} ${response.statusText}`;
    if (response.status !== 429 && response.status < 500) {
      throw new IsicDownloadError(`${url}: ${lastReason}; expected 200 (not retried: a client error)`);
    }
    const retryAfterSeconds = Number(response.headers.get("retry-after"));
    // Cap a server's Retry-After at a minute so a bad header cannot stall a download for hours.
    if (Number.isFinite(retryAfterSeconds) && retryAfterSeconds > 0) retryAfterMs = Math.min(60_000, retryAfterSeconds * 1000);
    await response.body?.cancel();
  }
  throw new IsicDownloadError(`${url}: ${lastReason} after ${options.maxRetries + 1} attempts; expected 200`);
}

function text(v: unknown): string {
  if (v === undefined || v === null) return "";
  return String(v);
}

/**
 * The binary label of an ISIC API image: `metadata.clinical.benign_malignant`, else the newer
 * taxonomy's `diagnosis_1` ("Benign"/"Malignant"); undefined for indeterminate or missing.
 *
 * @example labelOfIsicImage({ isic_id: "ISIC_0000001", metadata: { clinical: { diagnosis_1: "Malignant" } } }) // "malignant"
 */
function labelOfIsicImage(image: IsicImage): LesionLabel | undefined {
  const clinical = image.metadata?.clinical ?? {};
  const raw = text(clinical.benign_malignant ?? clinical.diagnosis_1).toLowerCase();
  if (raw === "benign") return "benign";
  if (raw === "malignant") return "malignant";
  return undefined;
}

function rowOf(image: IsicImage, label: LesionLabel): Record<string, string> {
  const c = image.metadata?.clinical ?? {};
  return {
    image_id: text(image.isic_id),
    label,
    diagnosis: text(c.diagnosis ?? c.diagnosis_3 ?? c.diagnosis_2),
    lesion_id: text(c.lesion_id),
    patient_id: text(c.patient_id),
    age: text(c.age_approx),
    sex: text(c.sex),
    localization: text(c.anatom_site_general),
    copyright_license: text(image.copyright_license),
    attribution: text(image.attribution),
  };
}

function writeLabelsCsv(file: string, rows: Record<string, string>[]): void {
  const tmp = `${file}.tmp`;
  fs.writeFileSync(tmp, Papa.unparse(rows, { columns: CSV_COLUMNS, newline: "\n" }) + "\n");
  fs.renameSync(tmp, file);
}

/**
 * Downloads labelled images and metadata from the ISIC Archive API v2 into the labels.csv +
 * images/ layout that {@link loadDataset} reads. Pages through
 * `<baseUrl>/images/search/?query=…&limit=…` by each answer's `next` URL; images without a
 * benign/malignant label become problems and are not downloaded.
 *
 * Resumable: after each page, labels.csv and `.isic-download-state.json` (query, next page,
 * rows) are saved; a later run with the same query continues from there, and an image already on
 * disk is not fetched again (downloads go to `.part` files, renamed when complete). HTTP 429/5xx
 * and network errors are retried with exponential backoff (honouring Retry-After); so is an image
 * body cut short (connection closed early, or fewer bytes than `files.full.size` or Content-Length),
 * which is reported as a problem, never saved, when every attempt fails. A process killed
 * mid-download resumes from its last finished page without fetching a complete image again.
 *
 * @example await downloadIsicArchive({ outDir: "data/isic", query: "image_type:dermoscopic", maxImages: 500 });
 */
export async function downloadIsicArchive(options: IsicDownloadOptions): Promise<IsicDownloadResult> {
  const outDir = path.resolve(options.outDir);
  const imagesDir = path.join(outDir, "images");
  fs.mkdirSync(imagesDir, { recursive: true });
  const query = options.query ?? "";
  const baseUrl = (options.baseUrl ?? ISIC_API_BASE_URL).replace(/\/+$/, "");
  const pageSize = options.pageSize ?? 100;
  const maxImages = options.maxImages ?? Infinity;
  const retry = { maxRetries: options.maxRetries ?? 5, retryBaseDelayMs: options.retryBaseDelayMs ?? 1000, fetchImpl: options.fetchImpl ?? fetch };
  const stateFile = path.join(outDir, STATE_FILE);
  const labelsCsvPath = path.join(outDir, "labels.csv");
  const problems: InputProblem[] = [];

  let state: SavedState = {
    query,
    nextUrl: `${baseUrl}/images/search/?query=${encodeURIComponent(query)}&limit=${pageSize}`,
    rows: [],
  };
  if (fs.existsSync(stateFile)) {
    const saved = JSON.parse(fs.readFileSync(stateFile, "utf8")) as SavedState;
    if (saved.query !== query) {
      throw new IsicDownloadError(`${stateFile}: an earlier download used query ${JSON.stringify(saved.query)}, not ${JSON.stringify(query)}; use another outDir or delete the state file`);
    }
    state = saved;
  }
  const known = new Set(state.rows.map((r) => r.image_id));
  let downloaded = 0;
  let skippedExisting = 0;
  let pages = 0;

  const fetchImage = async (image: IsicImage, row: Record<string, string>) => {
    const id = row.image_id;
    const target = path.join(imagesDir, `${id}.jpg`);
    const url = image.files?.full?.url ?? image.urls?.full;
    if (!url) throw new IsicDownloadError(`image ${id}: no files.full.url in the API answer`);
    const expectedSize = image.files?.full?.size;
    if (fs.existsSync(target) && (expectedSize === undefined || fs.statSync(target).size === expectedSize)) {
      skippedExisting++;
      return;
    }
    // A body cut short (connection closed, fewer bytes than files.full.size) is fetched again
    // like a 5xx; only a complete body is written, to a .part file renamed into place.
    let lastReason = "";
    for (let attempt = 0; attempt <= retry.maxRetries; attempt++) {
      if (attempt > 0) await sleep(retry.retryBaseDelayMs * 2 ** (attempt - 1));
      const response = await fetchWithRetry(url, retry);
      let bytes: Buffer;
      try {
        bytes = Buffer.from(await response.arrayBuffer());
      } catch (err) {
        lastReason = `download cut short (${(err as Error).message})`;
        continue;
      }
      const declared = Number(response.headers.get("content-length"));
      if (expectedSize !== undefined && bytes.length !== expectedSize) {
        lastReason = `received ${bytes.length} bytes; expected ${expectedSize} (files.full.size)`;
        continue;
      }
      // Content-Length counts encoded bytes, so it is only comparable without a Content-Encoding.
      if (response.headers.has("content-length") && !response.headers.has("content-encoding") && Number.isFinite(declared) && bytes.length !== declared) {
        lastReason = `received ${bytes.length} bytes; expected ${declared} (Content-Length)`;
        continue;
      }
      if (bytes.length === 0) {
        lastReason = "received 0 bytes; expected an image";
        continue;
      }
      const part = `${target}.part`;
      fs.writeFileSync(part, bytes);
      fs.renameSync(part, target);
      downloaded++;
      return;
    }
    throw new IsicDownloadError(`image ${id}: ${lastReason} from ${url} after ${retry.maxRetries + 1} attempts; not saved`);
  };

  while (state.nextUrl && state.rows.length < maxImages) {
    const pageUrl = state.nextUrl;
    const response = await fetchWithRetry(pageUrl, retry);
    let page: { next?: string | null; results?: IsicImage[] };
    try {
      page = (await response.json()) as typeof page;
    } catch (err) {
      throw new IsicDownloadError(`${pageUrl}: answer is not JSON (${(err as Error).message}); expected {count, next, results}`);
    }
    if (!Array.isArray(page.results)) throw new IsicDownloadError(`${pageUrl}: answer has no results array; expected {count, next, results}`);
    const wanted: { image: IsicImage; row: Record<string, string> }[] = [];
    let newRows = 0;
    let stoppedEarly = false;
    for (const image of page.results) {
      const id = text(image.isic_id);
      if (!/^ISIC_\d+$/.test(id)) {
        problems.push({ file: pageUrl, field: "isic_id", reason: `isic_id ${JSON.stringify(image.isic_id)} is not like ISIC_0000000; skipped` });
        continue;
      }
      const label = labelOfIsicImage(image);
      if (!label) {
        const raw = image.metadata?.clinical?.benign_malignant ?? image.metadata?.clinical?.diagnosis_1;
        problems.push({ file: pageUrl, field: "benign_malignant", reason: `image ${id}: label ${JSON.stringify(raw ?? null)} is not benign or malignant; skipped` });
        continue;
      }
      if (known.has(id)) {
        // Listed by an earlier, interrupted run: make sure its file is there.
        wanted.push({ image, row: state.rows.find((r) => r.image_id === id)! });
        continue;
      }
      if (state.rows.length + newRows >= maxImages) {
        stoppedEarly = true;
        break;
      }
      newRows++;
      wanted.push({ image, row: rowOf(image, label) });
    }
    const results = await mapWithConcurrency(wanted, options.concurrency ?? 4, ({ image, row }) => fetchImage(image, row));
    results.forEach((r, i) => {
      const row = wanted[i].row;
      if ("error" in r) {
        problems.push({ file: pageUrl, field: "image", reason: `image ${row.image_id}: ${(r.error as Error).message}` });
      } else if (!known.has(row.image_id)) {
        known.add(row.image_id);
        state.rows.push(row);
      }
    });
    pages++;
    // A page cut short by maxImages is read again by the next run (its done images are skipped).
    // Failed images are reported; the page still counts as read, so one broken file never blocks resuming.
    if (!stoppedEarly) state.nextUrl = page.next ?? null;
    writeLabelsCsv(labelsCsvPath, state.rows);
    // Temporary file + rename: a process killed mid-write leaves the previous state, never a torn one.
    fs.writeFileSync(`${stateFile}.tmp`, JSON.stringify(state));
    fs.renameSync(`${stateFile}.tmp`, stateFile);
    options.onProgress?.({ downloaded, skippedExisting, pages });
  }
  writeLabelsCsv(labelsCsvPath, state.rows);
  return { labelsCsvPath, imageCount: state.rows.length, downloadedThisRun: downloaded, skippedExisting, complete: state.nextUrl === null, problems };
}
