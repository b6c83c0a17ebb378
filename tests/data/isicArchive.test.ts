import { spawn } from "node:child_process";
import fs from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import sharp from "sharp";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { downloadIsicArchive, IsicDownloadError } from "../../lib/data/isicArchive.js";
import { loadDataset } from "../../lib/data/loadDataset.js";

let tmp: string;
let server: http.Server;
let base: string;
let jpeg: Buffer;
const hits = new Map<string, number>();
/** Paths that answer an error status the first `n` times. */
let failures: Map<string, { status: number; times: number; retryAfter?: string }>;
/**
 * Image paths whose body goes wrong the first `times` times: "cut" declares the full
 * Content-Length, sends half and closes the connection; "short" sends a complete response of half
 * the bytes; "stall" sends half and then hangs (calling onStall) until the test ends it.
 */
let bodyFaults: Map<string, { kind: "cut" | "short" | "stall"; times: number }>;
let onStall: ((res: http.ServerResponse) => void) | undefined;

function image(id: string, benignMalignant: string | null, extra: Record<string, unknown> = {}) {
  return {
    isic_id: id,
    copyright_license: "CC-BY",
    attribution: "Test Clinic",
    files: { full: { url: `${base}/files/${id}.jpg`, size: jpeg.length } },
    metadata: { clinical: { benign_malignant: benignMalignant, diagnosis: benignMalignant === "malignant" ? "melanoma" : "nevus", age_approx: 50, sex: "female", anatom_site_general: "posterior torso", lesion_id: `IL_${id.slice(5)}`, ...extra } },
  };
}

beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), "mlab-isic-"));
  jpeg = await sharp({ create: { width: 8, height: 8, channels: 3, background: "#996644" } }).jpeg().toBuffer();
  server = http.createServer((req, res) => {
    const url = new URL(req.url!, base);
    const key = url.pathname + url.search;
    hits.set(key, (hits.get(key) ?? 0) + 1);
    const failure = failures.get(key);
    if (failure && failure.times > 0) {
      failure.times--;
      res.writeHead(failure.status, failure.retryAfter ? { "retry-after": failure.retryAfter } : {});
      res.end("try later");
      return;
    }
    if (url.pathname === "/api/v2/images/search/") {
      const json = (body: unknown) => {
        res.writeHead(200, { "content-type": "application/json" });
        res.end(JSON.stringify(body));
      };
      if (url.searchParams.get("cursor") === "p2") {
        return json({ count: 5, next: null, previous: null, results: [image("ISIC_0000004", "malignant"), image("ISIC_0000005", null, { diagnosis_1: "Benign" })] });
      }
      if (url.searchParams.get("query") === "missing") {
        res.writeHead(404);
        return res.end("no");
      }
      return json({
        count: 5,
        next: `${base}/api/v2/images/search/?cursor=p2`,
        previous: null,
        results: [image("ISIC_0000001", "benign"), image("ISIC_0000002", "malignant"), image("ISIC_0000003", "indeterminate")],
      });
    }
    if (url.pathname.startsWith("/files/")) {
      const fault = bodyFaults.get(key);
      if (fault && fault.times > 0) {
        fault.times--;
        const half = jpeg.subarray(0, jpeg.length >> 1);
        if (fault.kind === "short") {
          res.writeHead(200, { "content-type": "image/jpeg", "content-length": String(half.length) });
          return res.end(half);
        }
        res.writeHead(200, { "content-type": "image/jpeg", "content-length": String(jpeg.length) });
        res.flushHeaders();
        if (fault.kind === "cut") {
          res.write(half, () => res.destroy());
          return;
        }
        res.write(half, () => onStall?.(res));
        return;
      }
      res.writeHead(200, { "content-type": "image/jpeg" });
      return res.end(jpeg);
    }
    res.writeHead(404);
    res.end();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  await new Promise((resolve) => server.close(resolve));
  fs.rmSync(tmp, { recursive: true, force: true });
});
beforeEach(() => {
  hits.clear();
  failures = new Map();
  bodyFaults = new Map();
  onStall = undefined;
});

const api = () => `${base}/api/v2`;

describe("downloadIsicArchive (loopback server)", () => {
  it("pages by next, retries 429/503, skips unlabelled images, and writes a loadable dataset", async () => {
    failures.set("/api/v2/images/search/?cursor=p2", { status: 429, times: 1, retryAfter: "0" });
    failures.set("/files/ISIC_0000004.jpg", { status: 503, times: 2 });
    const outDir = path.join(tmp, "full");
    const result = await downloadIsicArchive({ outDir, baseUrl: api(), query: "image_type:dermoscopic", pageSize: 3, retryBaseDelayMs: 5 });
    expect(result).toMatchObject({ imageCount: 4, downloadedThisRun: 4, skippedExisting: 0, complete: true });
    expect(result.problems).toHaveLength(1);
    expect(result.problems[0].reason).toMatch(/ISIC_0000003: label "indeterminate" is not benign or malignant/);
    expect(hits.get("/api/v2/images/search/?query=image_type%3Adermoscopic&limit=3")).toBe(1);
    expect(hits.get("/api/v2/images/search/?cursor=p2")).toBe(2);
    expect(hits.get("/files/ISIC_0000004.jpg")).toBe(3);
    expect(hits.has("/files/ISIC_0000003.jpg")).toBe(false);
    const { records, problems } = loadDataset(outDir);
    expect(problems).toEqual([]);
    expect(records.map((r) => [r.imageId, r.label])).toEqual([
      ["ISIC_0000001", "benign"],
      ["ISIC_0000002", "malignant"],
      ["ISIC_0000004", "malignant"],
      ["ISIC_0000005", "benign"],
    ]);
    expect(records[0]).toMatchObject({ lesionId: "IL_0000001", ageYears: 50, sex: "female", site: "posterior torso", diagnosis: "nevus" });
    expect(fs.readFileSync(records[2].imagePath)).toEqual(jpeg);
  });

  it("resumes: a second run continues where the first stopped and does not fetch an image twice", async () => {
    const outDir = path.join(tmp, "resume");
    const first = await downloadIsicArchive({ outDir, baseUrl: api(), maxImages: 1, retryBaseDelayMs: 5 });
    expect(first).toMatchObject({ imageCount: 1, downloadedThisRun: 1, complete: false });
    const second = await downloadIsicArchive({ outDir, baseUrl: api(), maxImages: 3, retryBaseDelayMs: 5 });
    expect(second).toMatchObject({ imageCount: 3, downloadedThisRun: 2, skippedExisting: 1 });
    const third = await downloadIsicArchive({ outDir, baseUrl: api(), retryBaseDelayMs: 5 });
    expect(third).toMatchObject({ imageCount: 4, downloadedThisRun: 1, complete: true });
    for (const id of ["ISIC_0000001", "ISIC_0000002", "ISIC_0000004", "ISIC_0000005"]) expect(hits.get(`/files/${id}.jpg`)).toBe(1);
    expect(loadDataset(outDir).records).toHaveLength(4);
    await expect(downloadIsicArchive({ outDir, baseUrl: api(), query: "sex:male" })).rejects.toThrow(/earlier download used query "", not "sex:male"/);
  });

  it("re-fetches an image cut short (closed connection, fewer bytes than files.full.size) and reports one that stays short", async () => {
    bodyFaults.set("/files/ISIC_0000002.jpg", { kind: "cut", times: 1 });
    bodyFaults.set("/files/ISIC_0000004.jpg", { kind: "short", times: 2 });
    bodyFaults.set("/files/ISIC_0000005.jpg", { kind: "short", times: 99 });
    const outDir = path.join(tmp, "truncated");
    const result = await downloadIsicArchive({ outDir, baseUrl: api(), maxRetries: 2, retryBaseDelayMs: 5 });
    expect(result).toMatchObject({ imageCount: 3, downloadedThisRun: 3, complete: true });
    expect(hits.get("/files/ISIC_0000002.jpg")).toBe(2);
    expect(hits.get("/files/ISIC_0000004.jpg")).toBe(3);
    expect(hits.get("/files/ISIC_0000005.jpg")).toBe(3);
    const failed = result.problems.filter((p) => p.field === "image");
    expect(failed).toHaveLength(1);
    expect(failed[0].reason).toMatch(/ISIC_0000005: received \d+ bytes; expected \d+ \(files\.full\.size\) from .* after 3 attempts; not saved/);
    // The short image is neither on disk nor in labels.csv; the re-fetched ones are whole.
    expect(fs.readdirSync(path.join(outDir, "images")).sort()).toEqual(["ISIC_0000001.jpg", "ISIC_0000002.jpg", "ISIC_0000004.jpg"]);
    const { records } = loadDataset(outDir);
    expect(records.map((r) => r.imageId)).toEqual(["ISIC_0000001", "ISIC_0000002", "ISIC_0000004"]);
    for (const r of records) expect(fs.readFileSync(r.imagePath)).toEqual(jpeg);
  });

  it("resumes after the downloader process is killed (SIGKILL) mid-image: nothing partial kept, nothing complete fetched twice", async () => {
    const outDir = path.join(tmp, "killed");
    const cli = path.resolve("node_modules/tsx/dist/cli.mjs");
    const runScript = () => {
      // Its own process group: the tsx cli runs the script in a child process, and both must die.
      const child = spawn(process.execPath, [cli, "scripts/download-isic.ts", "--out", outDir, "--base-url", api(), "--concurrency", "1"], {
        stdio: ["ignore", "pipe", "pipe"],
        detached: true,
      });
      let output = "";
      child.stdout.on("data", (d) => (output += d));
      child.stderr.on("data", (d) => (output += d));
      const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; output: string }>((resolve) =>
        child.on("exit", (code, signal) => resolve({ code, signal, output })),
      );
      return { child, exited };
    };
    // Run 1: page 1 (images 1, 2) completes; on page 2 image 4 completes, image 5 stalls half-sent.
    bodyFaults.set("/files/ISIC_0000005.jpg", { kind: "stall", times: 1 });
    let stalledResponse: http.ServerResponse | undefined;
    const stalled = new Promise<void>((resolve) => (onStall = (res) => ((stalledResponse = res), resolve())));
    const first = runScript();
    await Promise.race([stalled, first.exited.then((e) => Promise.reject(new Error(`downloader exited before the stall: ${e.output}`)))]);
    process.kill(-first.child.pid!, "SIGKILL");
    const killed = await first.exited;
    stalledResponse?.destroy();
    expect(killed.signal).toBe("SIGKILL");
    // No process of the group survives (signal 0 only probes; ESRCH = none left).
    const groupAlive = () => {
      try {
        process.kill(-first.child.pid!, 0);
        return true;
      } catch {
        return false;
      }
    };
    for (let i = 0; i < 40 && groupAlive(); i++) await new Promise((resolve) => setTimeout(resolve, 50));
    expect(groupAlive()).toBe(false);
    expect(hits.get("/files/ISIC_0000005.jpg")).toBe(1);
    expect(killed.output).toMatch(/page 1: 2 downloaded/);
    const imagesDir = path.join(outDir, "images");
    expect(fs.existsSync(path.join(imagesDir, "ISIC_0000005.jpg"))).toBe(false);
    expect(loadDataset(outDir).records.map((r) => r.imageId)).toEqual(["ISIC_0000001", "ISIC_0000002"]);
    // As if the kill had come while the part file was being written.
    fs.writeFileSync(path.join(imagesDir, "ISIC_0000005.jpg.part"), jpeg.subarray(0, 10));

    // Run 2 re-reads page 2: image 4 is already complete (skipped), image 5 is fetched whole.
    const second = await runScript().exited;
    expect(second.code).toBe(0);
    expect(second.output).toMatch(/4 labelled images .*\(1 downloaded this run, 1 already there\); search complete/);
    for (const id of ["ISIC_0000001", "ISIC_0000002", "ISIC_0000004"]) expect(hits.get(`/files/${id}.jpg`)).toBe(1);
    expect(hits.get("/files/ISIC_0000005.jpg")).toBe(2);
    expect(fs.readdirSync(imagesDir).sort()).toEqual(["ISIC_0000001.jpg", "ISIC_0000002.jpg", "ISIC_0000004.jpg", "ISIC_0000005.jpg"]);
    const { records, problems } = loadDataset(outDir);
    expect(problems).toEqual([]);
    expect(records.map((r) => r.imageId)).toEqual(["ISIC_0000001", "ISIC_0000002", "ISIC_0000004", "ISIC_0000005"]);
    for (const r of records) expect(fs.readFileSync(r.imagePath)).toEqual(jpeg);
    expect(fs.readdirSync(outDir).filter((f) => f.endsWith(".tmp"))).toEqual([]);
  }, 30_000);

  it("gives up with a named error: at once on 404, after maxRetries + 1 attempts on 500", async () => {
    await expect(downloadIsicArchive({ outDir: path.join(tmp, "e1"), baseUrl: api(), query: "missing", retryBaseDelayMs: 5 })).rejects.toThrow(/HTTP 404.*not retried/);
    expect(hits.get("/api/v2/images/search/?query=missing&limit=100")).toBe(1);
    failures.set("/api/v2/images/search/?query=&limit=100", { status: 500, times: 99 });
    const attempt = downloadIsicArchive({ outDir: path.join(tmp, "e2"), baseUrl: api(), maxRetries: 2, retryBaseDelayMs: 5 });
    await expect(attempt).rejects.toThrow(IsicDownloadError);
    await expect(attempt).rejects.toThrow(/HTTP 500 .* after 3 attempts/);
    expect(hits.get("/api/v2/images/search/?query=&limit=100")).toBe(3);
  });
});
