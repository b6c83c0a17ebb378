import type { Readable } from "node:stream";
import { MelanomaLabError } from "../util/errors.js";

/**
 * A request the service refuses: the HTTP status, a stable code, and what was received and
 * expected (both in the JSON error body). `closeConnection` when the body was not read to its
 * end, so the socket is closed rather than reused mid-body.
 */
export class ServiceRequestError extends MelanomaLabError {
  readonly statusCode: number;
  readonly code: string;
  readonly received: string;
  readonly expected: string;
  readonly closeConnection: boolean;
  constructor(
    statusCode: number,
    code: string,
    fields: { message: string; received: string; expected: string; closeConnection?: boolean },
  ) {
    super(fields.message);
    this.statusCode = statusCode;
    this.code = code;
    this.received = fields.received;
    this.expected = fields.expected;
    this.closeConnection = fields.closeConnection ?? false;
  }
}

/** Image formats the service scores, told apart by their first bytes. */
export type SniffedImageFormat = "jpeg" | "png";

/**
 * What the first bytes of a body are: "jpeg" (FF D8 FF) or "png" (89 50 4E 47 0D 0A 1A 0A) —
 * the formats the service scores — else a description for the error message ("GIF image",
 * "text", "unrecognised binary data", …) that never repeats the bytes themselves.
 *
 * @example sniffImageFormat(Buffer.from([0xff, 0xd8, 0xff, 0xe0])) // { format: "jpeg" }
 * @example sniffImageFormat(Buffer.from("hello")) // { format: undefined, description: "text" }
 */
export function sniffImageFormat(
  bytes: Uint8Array,
): { format: SniffedImageFormat } | { format: undefined; description: string } {
  const starts = (...sig: number[]) => sig.every((b, i) => bytes[i] === b);
  if (bytes.length >= 3 && starts(0xff, 0xd8, 0xff)) return { format: "jpeg" };
  if (bytes.length >= 8 && starts(0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a)) return { format: "png" };
  const head = Buffer.from(bytes.buffer, bytes.byteOffset, Math.min(bytes.length, 512));
  const ascii = head.toString("latin1");
  if (ascii.startsWith("GIF87a") || ascii.startsWith("GIF89a")) return { format: undefined, description: "GIF image" };
  if (ascii.startsWith("RIFF") && ascii.slice(8, 12) === "WEBP")
    return { format: undefined, description: "WebP image" };
  if (ascii.startsWith("II*\0") || ascii.startsWith("MM\0*")) return { format: undefined, description: "TIFF image" };
  if (ascii.startsWith("BM")) return { format: undefined, description: "BMP image" };
  if (ascii.startsWith("%PDF")) return { format: undefined, description: "PDF document" };
  if (ascii.slice(4, 8) === "ftyp") return { format: undefined, description: "ISO media (HEIC/AVIF/MP4)" };
  if (/^\s*<(\?xml|svg|!doctype|html)/i.test(ascii)) return { format: undefined, description: "XML/SVG/HTML text" };
  // Text: printable ASCII or UTF-8 with common whitespace, no NUL.
  const printable = [...head].filter((b) => b === 9 || b === 10 || b === 13 || (b >= 32 && b !== 127)).length;
  if (head.length > 0 && !head.includes(0) && printable / head.length > 0.95)
    return { format: undefined, description: "text" };
  return { format: undefined, description: "unrecognised binary data" };
}

/** Limits on reading one request body. */
export interface BodyReadLimits {
  /** Most bytes accepted; more (declared or received) is a 413. */
  maxBytes: number;
  /** The whole body must arrive within this many ms of the read starting; else 408. */
  deadlineMs: number;
  /** The request's Content-Length header, when it has one. */
  declaredLength?: number;
}

/**
 * Reads a request body into memory, enforcing a byte limit (413 as soon as the declared length
 * or the bytes received pass it) and a deadline for the whole body (408 for a client that
 * trickles bytes). Rejects with {@link ServiceRequestError}; after a refusal the rest of the body
 * is not read and the error asks for the connection to be closed.
 *
 * @example const body = await readBodyWithLimits(request.raw, { maxBytes: 15 * 2 ** 20, deadlineMs: 10_000 });
 */
export function readBodyWithLimits(stream: Readable, limits: BodyReadLimits): Promise<Buffer> {
  const { maxBytes, deadlineMs, declaredLength } = limits;
  if (declaredLength !== undefined && declaredLength > maxBytes) {
    return Promise.reject(
      new ServiceRequestError(413, "BODY_TOO_LARGE", {
        message: `request body: Content-Length ${declaredLength} bytes is over the limit of ${maxBytes} bytes`,
        received: `Content-Length ${declaredLength}`,
        expected: `at most ${maxBytes} bytes`,
        closeConnection: true,
      }),
    );
  }
  return new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let received = 0;
    let settled = false;
    const started = Date.now();
    const finish = (err: ServiceRequestError | undefined, body?: Buffer) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      stream.off("data", onData);
      stream.off("end", onEnd);
      stream.off("error", onError);
      stream.off("aborted", onAborted);
      if (err) {
        // Stop buffering; the socket is closed after the error reply (closeConnection).
        stream.pause();
        reject(err);
      } else resolve(body!);
    };
    const onData = (chunk: Buffer) => {
      received += chunk.length;
      if (received > maxBytes) {
        finish(
          new ServiceRequestError(413, "BODY_TOO_LARGE", {
            message: `request body: more than ${maxBytes} bytes received (${received} so far)`,
            received: `${received} bytes so far`,
            expected: `at most ${maxBytes} bytes`,
            closeConnection: true,
          }),
        );
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = () => finish(undefined, Buffer.concat(chunks, received));
    const onError = (err: Error) =>
      finish(
        new ServiceRequestError(400, "BODY_READ_FAILED", {
          message: `request body: the upload failed after ${received} bytes (${err.message})`,
          received: `${received} bytes, then an error`,
          expected: "a complete body",
          closeConnection: true,
        }),
      );
    const onAborted = () => onError(new Error("client aborted"));
    const timer = setTimeout(() => {
      const of = declaredLength !== undefined ? ` of ${declaredLength} declared` : "";
      finish(
        new ServiceRequestError(408, "BODY_TIMEOUT", {
          message: `request body: ${received}${of} bytes arrived in ${Date.now() - started} ms; the whole body must arrive within ${deadlineMs} ms`,
          received: `${received}${of} bytes in ${deadlineMs} ms`,
          expected: `the whole body within ${deadlineMs} ms`,
          closeConnection: true,
        }),
      );
    }, deadlineMs);
    stream.on("data", onData);
    stream.on("end", onEnd);
    stream.on("error", onError);
    stream.on("aborted", onAborted);
  });
}
