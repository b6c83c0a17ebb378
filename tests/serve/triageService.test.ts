import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { selectBackend } from "../../lib/index.js";
import { createTriageService, type TriageService } from "../../lib/serve/triageService.js";
import { createRandom } from "../../lib/util/random.js";
import {
  captureLogLines,
  exportMeanColourModel,
  meanColourProbability,
  solidImage,
  trickleUpload,
} from "./fixtures.js";
import { pngDeclaringSize } from "../helpers/pngHeader.js";

let tmp: string;
let service: TriageService;
let base: string;
let port: number;
const logs = captureLogLines();
let validJpeg: Buffer;
let validPng: Buffer;

const LIMITS = { maxBodyBytes: 64 * 1024, maxInputPixels: 4_000_000, maxInFlight: 4, bodyTimeoutMs: 600 };

async function post(body: Uint8Array | string | undefined, contentType?: string, urlPath = "/v1/triage") {
  const res = await fetch(`${base}${urlPath}`, {
    method: "POST",
    headers: contentType ? { "content-type": contentType } : {},
    body,
  });
  const text = await res.text();
  return { status: res.status, headers: res.headers, json: JSON.parse(text) as Record<string, unknown> };
}

/** A valid upload succeeds with the hand-computed probability: the service kept serving. */
async function expectStillServing(): Promise<void> {
  const ok = await post(validJpeg, "image/jpeg");
  expect(ok.status).toBe(200);
  expect(ok.json.probability as number).toBeCloseTo(meanColourProbability(200, 40, 60), 2);
}

function expectRefusal(
  res: { status: number; json: Record<string, unknown> },
  status: number,
  code: string,
  received: RegExp,
  expected: RegExp,
): void {
  expect(res.status, JSON.stringify(res.json)).toBe(status);
  expect(res.json.error).toBe(code);
  expect(res.json.received).toMatch(received);
  expect(res.json.expected).toMatch(expected);
  expect(res.json.requestId).toMatch(/^[0-9a-f-]{36}$/);
  expect(typeof res.json.message).toBe("string");
}

beforeAll(async () => {
  await selectBackend();
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), "ml-serve-"));
  await exportMeanColourModel(path.join(tmp, "model"));
  validJpeg = await solidImage("jpeg", 200, 40, 60);
  validPng = await solidImage("png", 10, 200, 30);
  service = await createTriageService({
    modelDir: path.join(tmp, "model"),
    limits: LIMITS,
    logStream: logs.stream,
    runtime: "tfjs",
  });
  await service.app.listen({ host: "127.0.0.1", port: 0 });
  port = (service.app.server.address() as { port: number }).port;
  base = `http://127.0.0.1:${port}`;
});

afterAll(async () => {
  await service?.close();
  fs.rmSync(tmp, { recursive: true, force: true });
});

describe("POST /v1/triage", () => {
  it("answers a PNG with the hand-computed probability, the threshold's level and the model's identity", async () => {
    const res = await post(validPng, "image/png");
    expect(res.status).toBe(200);
    // Solid colour: every pixel is (10, 200, 30), so the mean is too; PNG is lossless.
    expect(res.json.probability as number).toBeCloseTo(meanColourProbability(10, 200, 30), 6);
    expect(meanColourProbability(10, 200, 30)).toBeLessThan(0.6);
    expect(res.json.level).toBe("routine");
    // Eight dihedral views of a solid image are the same image: zero spread, the interval is the point.
    const [lo, hi] = res.json.interval as number[];
    expect(lo).toBeCloseTo(meanColourProbability(10, 200, 30), 6);
    expect(hi).toBeCloseTo(meanColourProbability(10, 200, 30), 6);
    expect(res.json.escalated).toBe(false);
    expect(res.json.sentence).toMatch(/not a diagnosis/);
    expect(res.json.modelId).toBe("model");
    expect(res.json.modelVersion).toMatch(/^[0-9a-f]{12}$/);
    expect(res.json.runtime).toBe("tfjs");
    expect(res.headers.get("x-request-id")).toBe(res.json.requestId);
    expect(res.headers.get("cache-control")).toBe("no-store");
  });

  it("decides urgent at or above metadata.thresholdProb", async () => {
    const red = await solidImage("png", 255, 0, 0);
    const res = await post(red, "image/png");
    expect(res.json.probability as number).toBeCloseTo(meanColourProbability(255, 0, 0), 6);
    expect(meanColourProbability(255, 0, 0)).toBeGreaterThanOrEqual(0.6);
    expect(res.json.level).toBe("urgent");
  });

  it("sniffs the content: a PNG declared image/jpeg or octet-stream is scored as the PNG it is", async () => {
    const asJpeg = await post(validPng, "image/jpeg");
    const asOctets = await post(validPng, "application/octet-stream");
    expect(asJpeg.status).toBe(200);
    expect(asOctets.status).toBe(200);
    expect(asJpeg.json.probability).toBe(asOctets.json.probability);
    expect(asJpeg.json.probability as number).toBeCloseTo(meanColourProbability(10, 200, 30), 6);
  });
});

describe("hostile and malformed requests, one by one, each followed by a valid one", () => {
  it("empty body → 400", async () => {
    expectRefusal(await post(new Uint8Array(0), "image/jpeg"), 400, "EMPTY_BODY", /^0 bytes$/, /JPEG or PNG/);
    expectRefusal(await post(undefined), 400, "EMPTY_BODY", /^0 bytes$/, /JPEG or PNG/);
    await expectStillServing();
  });

  it("a content type other than the three accepted → 415, even with a valid image as body", async () => {
    const res = await post(validJpeg, "text/plain");
    expectRefusal(
      res,
      415,
      "UNSUPPORTED_CONTENT_TYPE",
      /Content-Type text\/plain/,
      /image\/jpeg, image\/png, application\/octet-stream/,
    );
    expectRefusal(
      await post(validJpeg, "application/json"),
      415,
      "UNSUPPORTED_CONTENT_TYPE",
      /application\/json/,
      /image\/jpeg/,
    );
    await expectStillServing();
  });

  it("text declared as image/jpeg → 415 naming it text (the declared type does not decide)", async () => {
    const res = await post("patient=Jane Doe; this is not an image", "image/jpeg");
    expectRefusal(res, 415, "NOT_AN_IMAGE", /^text, 38 bytes$/, /JPEG \(starts FF D8 FF\)/);
    await expectStillServing();
  });

  it("random bytes → 415 unrecognised binary data", async () => {
    const random = createRandom(13);
    const bytes = Uint8Array.from({ length: 4096 }, () => Math.floor(random() * 256));
    bytes[0] = 0; // not by chance a JPEG or PNG signature
    expectRefusal(
      await post(bytes, "application/octet-stream"),
      415,
      "NOT_AN_IMAGE",
      /unrecognised binary data, 4096 bytes/,
      /PNG/,
    );
    // Other image formats are named, not decoded (sharp would read GIF or WebP).
    const gif = await (
      await import("sharp")
    )
      .default({ create: { width: 4, height: 4, channels: 3, background: "red" } })
      .gif()
      .toBuffer();
    expectRefusal(await post(gif, "image/png"), 415, "NOT_AN_IMAGE", /^GIF image/, /JPEG/);
    await expectStillServing();
  });

  it("truncated JPEG (a valid signature, bytes cut) → 422", async () => {
    const photo = await (
      await import("sharp")
    )
      .default({
        create: {
          width: 64,
          height: 64,
          channels: 3,
          background: { r: 128, g: 128, b: 128 },
          noise: { type: "gaussian", mean: 128, sigma: 40 },
        },
      })
      .jpeg()
      .toBuffer();
    const truncated = photo.subarray(0, Math.floor(photo.length / 2));
    const res = await post(truncated, "image/jpeg");
    expectRefusal(
      res,
      422,
      "UNDECODABLE_IMAGE",
      /JPEG signature with \d+ bytes that do not decode/,
      /complete, valid JPEG/,
    );
    expect(res.json.message).toMatch(/premature end/i);
    await expectStillServing();
  });

  it("a tiny PNG declaring 30000×30000 → 413 from its header, before any pixel is decoded", async () => {
    const bomb = pngDeclaringSize(30_000, 30_000);
    expect(bomb.length).toBeLessThan(100);
    const started = Date.now();
    const res = await post(bomb, "image/png");
    expectRefusal(res, 413, "TOO_MANY_PIXELS", /^30000×30000 = 900000000 pixels declared$/, /at most 4000000 pixels/);
    // The header check's own message (sharp's pixel-limit error would read "exceeds pixel limit").
    expect(res.json.message).toMatch(/header declares 30000×30000/);
    expect(Date.now() - started).toBeLessThan(2000);
    // Within the pixel limit the same kind of file is decoded — and fails as undecodable (422), not 413.
    expect((await post(pngDeclaringSize(1000, 1000), "image/png")).status).toBe(422);
    await expectStillServing();
  });

  it("a body over maxBodyBytes → 413, whether declared by Content-Length or not", async () => {
    const big = new Uint8Array(LIMITS.maxBodyBytes + 1);
    big.set([0xff, 0xd8, 0xff]);
    expectRefusal(await post(big, "image/jpeg"), 413, "BODY_TOO_LARGE", /Content-Length 65537/, /at most 65536 bytes/);
    // Chunked: no Content-Length, the byte count decides mid-stream.
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        for (let i = 0; i < 5; i++) controller.enqueue(big.subarray(i * 16384, (i + 1) * 16384));
        controller.close();
      },
    });
    const res = await fetch(`${base}/v1/triage`, {
      method: "POST",
      headers: { "content-type": "image/jpeg" },
      body: stream,
      duplex: "half",
    } as RequestInit);
    const json = (await res.json()) as Record<string, unknown>;
    expectRefusal({ status: res.status, json }, 413, "BODY_TOO_LARGE", /bytes so far/, /at most 65536 bytes/);
    await expectStillServing();
  });

  it("a slow upload that trickles bytes → 408 JSON after the body deadline, and the socket is closed", async () => {
    const res = await trickleUpload(port, { declaredLength: 5000, chunk: validJpeg.subarray(0, 10), everyMs: 100 });
    expect(res.status).toBe(408);
    expect(res.headers.connection).toBe("close");
    const json = JSON.parse(res.body) as Record<string, unknown>;
    expect(json.error).toBe("BODY_TIMEOUT");
    expect(json.received).toMatch(/^\d+ of 5000 declared bytes in 600 ms$/);
    expect(json.expected).toBe("the whole body within 600 ms");
    expect(res.elapsedMs).toBeGreaterThanOrEqual(590);
    expect(res.elapsedMs).toBeLessThan(3000);
    await expectStillServing();
  });

  it("a client that disconnects mid-upload frees its slot and the service keeps serving", async () => {
    await new Promise<void>((resolve, reject) => {
      const socket = net.connect(port, "127.0.0.1", () => {
        socket.write(
          "POST /v1/triage HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/jpeg\r\nContent-Length: 5000\r\n\r\n",
        );
        socket.write(validJpeg.subarray(0, 100), () => setTimeout(() => socket.destroy(), 100));
      });
      socket.on("close", () => resolve());
      socket.on("error", reject);
    });
    await new Promise((r) => setTimeout(r, 100));
    const health = (await (await fetch(`${base}/healthz`)).json()) as Record<string, unknown>;
    expect(health.inFlight).toBe(0);
    await expectStillServing();
  });

  it("wrong method → 405 with Allow; wrong path → 404 naming the routes", async () => {
    const get = await fetch(`${base}/v1/triage`);
    const getJson = (await get.json()) as Record<string, unknown>;
    expectRefusal(
      { status: get.status, json: getJson },
      405,
      "METHOD_NOT_ALLOWED",
      /^GET \/v1\/triage$/,
      /^POST \/v1\/triage$/,
    );
    expect(get.headers.get("allow")).toBe("POST");
    const postHealth = await post(validJpeg, "image/jpeg", "/healthz");
    expectRefusal(postHealth, 405, "METHOD_NOT_ALLOWED", /POST \/healthz/, /GET \/healthz/);
    const missing = await post(validJpeg, "image/jpeg", "/v1/triage/../../etc/passwd");
    expect(missing.status).toBe(404);
    const unknown = await post(validJpeg, "image/jpeg", "/v2/classify?file=/etc/passwd");
    expectRefusal(
      unknown,
      404,
      "NOT_FOUND",
      /^POST \/v2\/classify$/,
      /POST \/v1\/triage, GET \/healthz, GET \/v1\/model/,
    );
    await expectStillServing();
  });
});

describe("limits, logs and the file system", () => {
  it("past maxInFlight answers 503 with Retry-After, and serves again once a slot frees", async () => {
    // Four slow uploads hold every slot until their deadline.
    const slow = Array.from({ length: LIMITS.maxInFlight }, () =>
      trickleUpload(port, { declaredLength: 5000, chunk: Buffer.from([0xff]), everyMs: 50 }),
    );
    await new Promise((r) => setTimeout(r, 200));
    const busy = await post(validJpeg, "image/jpeg");
    expectRefusal(busy, 503, "BUSY", /^request 5 at once$/, /^at most 4 at once$/);
    expect(busy.headers.get("retry-after")).toBe("1");
    const health = (await (await fetch(`${base}/healthz`)).json()) as Record<string, unknown>;
    expect(health).toMatchObject({ status: "ok", inFlight: 4, maxInFlight: 4 });
    expect((await Promise.all(slow)).map((r) => r.status)).toEqual([408, 408, 408, 408]);
    await expectStillServing();
    const after = (await (await fetch(`${base}/healthz`)).json()) as Record<string, unknown>;
    expect(after.inFlight).toBe(0);
  });

  it("reads nothing from the file system while answering, whatever names the request carries", async () => {
    const spies = (
      [
        "readFileSync",
        "readFile",
        "openSync",
        "open",
        "statSync",
        "stat",
        "existsSync",
        "writeFileSync",
        "writeFile",
        "createReadStream",
        "createWriteStream",
        "readdirSync",
      ] as const
    ).map((name) => vi.spyOn(fs, name));
    const promiseSpies = (["readFile", "open", "stat", "writeFile", "access"] as const).map((name) =>
      vi.spyOn(fs.promises, name),
    );
    try {
      const res = await fetch(
        `${base}/v1/triage?path=${encodeURIComponent(path.join(tmp, "model", "metadata.json"))}`,
        {
          method: "POST",
          headers: { "content-type": "image/jpeg", "content-disposition": 'attachment; filename="../../etc/passwd"' },
          body: validJpeg,
        },
      );
      expect(res.status).toBe(200);
      expect((await post(pngDeclaringSize(30_000, 30_000), "image/png")).status).toBe(413);
      // An undecodable upload: a file decoder would stat its path to explain the failure.
      expect((await post(pngDeclaringSize(1000, 1000), "image/png")).status).toBe(422);
      expect((await fetch(`${base}/v1/model`)).status).toBe(200);
      for (const spy of [...spies, ...promiseSpies]) expect(spy, spy.getMockName()).not.toHaveBeenCalled();
    } finally {
      for (const spy of [...spies, ...promiseSpies]) spy.mockRestore();
    }
  });

  it("logs JSON lines with a request id, and never image bytes, query strings, names or client addresses", async () => {
    const before = logs.lines.length;
    const marker = await solidImage("png", 1, 2, 3, 20);
    const res = await fetch(`${base}/v1/triage?patient=JANE_DOE_1234`, {
      method: "POST",
      headers: { "content-type": "image/png", "x-filename": "ISIC_SECRET_99.png" },
      body: marker,
    });
    const { requestId } = (await res.json()) as { requestId: string };
    await post("not an image, patient JANE_DOE_1234", "image/jpeg");
    const mine = logs.lines.slice(before);
    const completed = mine.find((l) => l.reqId === requestId && l.msg === "request completed");
    expect(completed).toMatchObject({ method: "POST", route: "/v1/triage", status: 200 });
    expect(typeof completed!.responseTimeMs).toBe("number");
    expect(mine.filter((l) => l.msg === "refused")).toHaveLength(1);
    const text = logs.raw();
    for (const secret of ["JANE_DOE_1234", "ISIC_SECRET_99", "remoteAddress", "remotePort", "not an image"]) {
      expect(text).not.toContain(secret);
    }
    // The client's address (and the server's own, said once at start) is in no request's line.
    for (const line of mine) expect(JSON.stringify(line)).not.toContain("127.0.0.1");
    // No run of the image's bytes in any encoding.
    for (const encoding of ["base64", "hex", "latin1"] as const) {
      expect(text).not.toContain(marker.subarray(8, 40).toString(encoding));
    }
    for (const line of logs.lines) if (line.msg === "request completed") expect(line.reqId).toMatch(/^[0-9a-f-]{36}$/);
  });
});

describe("GET /healthz and GET /v1/model", () => {
  it("healthz says ok with the model's identity and runtime", async () => {
    const res = await fetch(`${base}/healthz`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({
      status: "ok",
      modelId: "model",
      modelVersion: service.modelVersion,
      runtime: "tfjs",
      inFlight: 0,
      maxInFlight: 4,
    });
  });

  it("the model card is metadata.json minus file paths", async () => {
    const card = (await (await fetch(`${base}/v1/model`)).json()) as Record<string, unknown>;
    const metadata = JSON.parse(fs.readFileSync(path.join(tmp, "model", "metadata.json"), "utf8")) as Record<
      string,
      unknown
    >;
    expect(card.thresholdProb).toBe(metadata.thresholdProb);
    expect(card.validation).toEqual(metadata.validation);
    expect(card.backboneName).toBe("mean_colour");
    // notes.dataDir (a key naming a folder) and notes.dataset (a relative path) are gone; the rest stays.
    expect(card.notes).toEqual({ seed: 7, split: "lesion-grouped" });
    expect(JSON.stringify(card)).not.toContain(tmp);
  });
});
