import crypto from "node:crypto";
import type { Writable } from "node:stream";
import Fastify, { LogController, type FastifyError, type FastifyInstance, type FastifyRequest } from "fastify";
import { ImageBytesError } from "../data/decodeImage.js";
import { MelanomaLabError } from "../util/errors.js";
import { checkTtaOptions, DEFAULT_TTA_VIEWS } from "../export/triageModel.js";
import { decideWithModelPolicy, type DecideTriage } from "./decide.js";
import { openImageBytesScorer, type ImageBytesScorer } from "./imageScorer.js";
import { identifyModel, toModelCard } from "./modelCard.js";
import { readBodyWithLimits, ServiceRequestError, sniffImageFormat } from "./requestBody.js";

/** Thrown for service options out of range (a limit of 0, a negative timeout). */
export class ServiceOptionError extends MelanomaLabError {}

/** Content types `POST /v1/triage` accepts; the body's first bytes, not this header, decide what it is. */
export const ACCEPTED_IMAGE_CONTENT_TYPES = ["image/jpeg", "image/png", "application/octet-stream"] as const;

/** The service's limits, each a flag of `npm run serve`. */
export interface ServiceLimits {
  /** Largest request body, bytes (413 past it). */
  maxBodyBytes: number;
  /** Most pixels an image's header may declare (width × height); 413 past it, before decoding. */
  maxInputPixels: number;
  /** Triage requests being read or scored at once; past it 503 with Retry-After. */
  maxInFlight: number;
  /** Time for a request's whole body to arrive, ms (408 past it). */
  bodyTimeoutMs: number;
  /** Retry-After sent with a 503, seconds. */
  retryAfterS: number;
}

/** Defaults of {@link ServiceLimits}: 15 MiB bodies, 25 megapixels, 8 in flight, 10 s per body, retry after 1 s. */
export const DEFAULT_SERVICE_LIMITS: ServiceLimits = {
  maxBodyBytes: 15 * 1024 * 1024,
  maxInputPixels: 25_000_000,
  maxInFlight: 8,
  bodyTimeoutMs: 10_000,
  retryAfterS: 1,
};

/** Options of {@link createTriageService}. */
export interface TriageServiceOptions {
  /** Exported triage model folder (metadata.json with model.json and/or model.onnx). Read once, at start. */
  modelDir: string;
  /** "onnx", "tfjs" or "auto" (default: MELANOMA_LAB_RUNTIME, else auto). */
  runtime?: string;
  /**
   * Probability → level, interval and sentence. Default: decideWithModelPolicy (the model's
   * triage policy when it has one, else urgent/routine at metadata.thresholdProb).
   */
  decide?: DecideTriage;
  /**
   * Dihedral views scored per upload (1–8, default 8): their spread gives the decision its
   * interval and can escalate an uncertain result; 1 scores the upload as sent only (no interval).
   */
  ttaViews?: number;
  limits?: Partial<ServiceLimits>;
  /** Where the structured (JSON lines, pino) logs go; default stdout. */
  logStream?: Writable;
  /** pino level: "info" (default), "warn", "silent", … */
  logLevel?: string;
}

/** A created service: the Fastify app (not yet listening), what it loaded, and how to stop it. */
export interface TriageService {
  app: FastifyInstance;
  scorer: ImageBytesScorer;
  modelId: string;
  modelVersion: string;
  limits: ServiceLimits;
  /** Stops the app and frees the model. */
  close(): Promise<void>;
}

const ERROR_SCHEMA = {
  type: "object",
  required: ["error", "message", "received", "expected", "requestId"],
  properties: {
    error: { type: "string" },
    message: { type: "string" },
    received: { type: "string" },
    expected: { type: "string" },
    requestId: { type: "string" },
  },
} as const;

const TRIAGE_RESPONSE_SCHEMA = {
  type: "object",
  required: ["probability", "interval", "level", "sentence", "modelId", "modelVersion", "requestId", "runtime"],
  properties: {
    probability: { type: "number" },
    rawProbability: { type: "number" },
    interval: { type: ["array", "null"], items: { type: "number" } },
    level: { type: "string" },
    escalated: { type: "boolean" },
    escalationReason: { type: ["string", "null"] },
    operatingPoint: {
      type: "object",
      properties: {
        level: { type: "string" },
        thresholdProb: { type: "number" },
        validationSensitivity: { type: ["number", "null"] },
        validationSpecificity: { type: ["number", "null"] },
        validationNpv: { type: ["number", "null"] },
      },
    },
    sentence: { type: "string" },
    modelId: { type: "string" },
    modelVersion: { type: "string" },
    requestId: { type: "string" },
    runtime: { type: "string", enum: ["onnx", "tfjs"] },
  },
} as const;

const ERROR_RESPONSES = {
  400: ERROR_SCHEMA,
  404: ERROR_SCHEMA,
  405: ERROR_SCHEMA,
  408: ERROR_SCHEMA,
  413: ERROR_SCHEMA,
  415: ERROR_SCHEMA,
  422: ERROR_SCHEMA,
  500: ERROR_SCHEMA,
  503: ERROR_SCHEMA,
} as const;

/** Routes and their methods, for 405 (known path, other method) versus 404 (unknown path). */
const ROUTES: Record<string, string[]> = {
  "/v1/triage": ["POST"],
  "/healthz": ["GET", "HEAD"],
  "/v1/model": ["GET", "HEAD"],
};

function errorBody(request: FastifyRequest, code: string, message: string, received: string, expected: string) {
  return { error: code, message, received, expected, requestId: String(request.id) };
}

function checkLimits(limits: ServiceLimits): void {
  for (const [name, value] of Object.entries(limits)) {
    if (!Number.isInteger(value) || value < 1) {
      throw new ServiceOptionError(`limits.${name}: received ${value}, expected a whole number ≥ 1`);
    }
  }
}

/**
 * The point-inference service: a Fastify app that loads the exported triage model in
 * `modelDir` once (ONNX Runtime when model.onnx is present, else tfjs) and answers
 *
 * - `POST /v1/triage` — body: the raw image (Content-Type image/jpeg, image/png or
 *   application/octet-stream; the first bytes must be a JPEG or PNG whatever the header says) →
 *   `{ probability, interval, level, sentence, modelId, modelVersion, requestId, runtime }`;
 * - `GET /healthz` → `{ status: "ok", modelId, modelVersion, runtime, inFlight, maxInFlight }`;
 * - `GET /v1/model` → the model card (metadata.json minus file paths).
 *
 * Refusals are JSON `{ error, message, received, expected, requestId }`: 400 empty body, 404/405
 * wrong path/method, 408 body not in time, 413 body or declared pixels over the limit, 415 a
 * content type or content that is not a JPEG/PNG, 422 an image that does not decode, 503 (with
 * Retry-After) past `maxInFlight`. Images stay in memory for the request only; nothing from a
 * request reaches the file system; logs are pino JSON lines with the request id, method, route,
 * status and timings — never image bytes, URLs' query strings, client addresses or file names.
 *
 * @example
 * const service = await createTriageService({ modelDir: "models/demo" });
 * await service.app.listen({ host: "127.0.0.1", port: 0 });
 */
export async function createTriageService(options: TriageServiceOptions): Promise<TriageService> {
  const limits: ServiceLimits = { ...DEFAULT_SERVICE_LIMITS, ...options.limits };
  checkLimits(limits);
  const ttaViews = checkTtaOptions({ views: options.ttaViews ?? DEFAULT_TTA_VIEWS }).views;
  const scorer = await openImageBytesScorer(options.modelDir, { runtime: options.runtime });
  let identity: { modelId: string; modelVersion: string };
  try {
    identity = identifyModel(options.modelDir, scorer.metadata);
  } catch (err) {
    await scorer.release();
    throw err;
  }
  const { modelId, modelVersion } = identity;
  const modelCard = toModelCard(scorer.metadata);
  const decide = options.decide ?? decideWithModelPolicy;
  const runtime = scorer.runtime.runtime;

  const app = Fastify({
    logger: {
      level: options.logLevel ?? "info",
      ...(options.logStream ? { stream: options.logStream } : {}),
      // Only what is written below is logged: no URLs, headers, addresses or bodies.
      serializers: { req: () => ({}), res: () => ({}) },
    },
    // Fastify's own per-request lines (URL, client address) are off; onResponse logs what is safe.
    logController: new LogController({ disableRequestLogging: true }),
    genReqId: () => crypto.randomUUID(),
    requestIdHeader: false,
    bodyLimit: limits.maxBodyBytes,
    // Node's own timers are the backstop behind the JSON 408 of readBodyWithLimits.
    requestTimeout: limits.bodyTimeoutMs * 2 + 1000,
    connectionTimeout: limits.bodyTimeoutMs * 3 + 1000,
    return503OnClosing: true,
  });

  let inFlight = 0;

  // Fastify's JSON and text parsers go: only the image types are read at all (others: 415).
  app.removeAllContentTypeParsers();
  app.addContentTypeParser([...ACCEPTED_IMAGE_CONTENT_TYPES], async (request: FastifyRequest) => {
    const header = request.headers["content-length"];
    const declaredLength = header !== undefined && /^\d+$/.test(header) ? Number(header) : undefined;
    return readBodyWithLimits(request.raw, {
      maxBytes: limits.maxBodyBytes,
      deadlineMs: limits.bodyTimeoutMs,
      declaredLength,
    });
  });

  app.addHook("onRequest", async (request, reply) => {
    reply.header("x-request-id", String(request.id));
  });

  app.addHook("onResponse", async (request, reply) => {
    request.log.info(
      {
        method: request.method,
        route: request.routeOptions.url ?? "unmatched",
        status: reply.statusCode,
        responseTimeMs: Math.round(reply.elapsedTime * 10) / 10,
      },
      "request completed",
    );
  });

  app.setErrorHandler((error: FastifyError | ServiceRequestError | Error, request, reply) => {
    const refusal = describeRefusal(error, request, limits);
    if (refusal.statusCode >= 500) request.log.error({ err: { type: error.name, message: error.message } }, "failed");
    else request.log.info({ refusal: refusal.code, status: refusal.statusCode }, "refused");
    if (refusal.closeConnection) reply.header("connection", "close");
    return reply
      .code(refusal.statusCode)
      .send(errorBody(request, refusal.code, refusal.message, refusal.received, refusal.expected));
  });

  app.setNotFoundHandler((request, reply) => {
    const pathOnly = request.url.split("?")[0];
    const methods = ROUTES[pathOnly];
    const routes = Object.entries(ROUTES)
      .map(([p, ms]) => `${ms[0]} ${p}`)
      .join(", ");
    // The body of a refused request is never read: close rather than reuse the socket.
    reply.header("connection", "close");
    if (methods) {
      reply.header("allow", methods.join(", "));
      return reply
        .code(405)
        .send(
          errorBody(
            request,
            "METHOD_NOT_ALLOWED",
            `${request.method} is not allowed on ${pathOnly}; use ${methods.join(" or ")}`,
            `${request.method} ${pathOnly}`,
            methods.map((m) => `${m} ${pathOnly}`).join(" or "),
          ),
        );
    }
    return reply
      .code(404)
      .send(
        errorBody(
          request,
          "NOT_FOUND",
          `no route ${request.method} ${truncate(pathOnly)}; the service answers ${routes}`,
          `${request.method} ${truncate(pathOnly)}`,
          routes,
        ),
      );
  });

  app.get("/healthz", { schema: { response: { 200: healthSchema() } } }, async () => ({
    status: "ok",
    modelId,
    modelVersion,
    runtime,
    inFlight,
    maxInFlight: limits.maxInFlight,
  }));

  app.get(
    "/v1/model",
    { schema: { response: { 200: { type: "object", additionalProperties: true } } } },
    async () => modelCard,
  );

  app.post(
    "/v1/triage",
    {
      schema: {
        // Query strings carry nothing the service uses: stripped, never read.
        querystring: { type: "object", additionalProperties: false, properties: {} },
        response: { 200: TRIAGE_RESPONSE_SCHEMA, ...ERROR_RESPONSES },
      },
      // Counted before the body is read: in-flight bodies are what bound memory (maxInFlight × maxBodyBytes).
      onRequest: (request, reply, done) => {
        if (inFlight >= limits.maxInFlight) {
          reply
            .code(503)
            .header("retry-after", String(limits.retryAfterS))
            .header("connection", "close")
            .send(
              errorBody(
                request,
                "BUSY",
                `the service is scoring ${inFlight} requests, its limit; retry after ${limits.retryAfterS} s`,
                `request ${inFlight + 1} at once`,
                `at most ${limits.maxInFlight} at once`,
              ),
            );
          return;
        }
        inFlight++;
        reply.raw.once("close", () => inFlight--);
        done();
      },
    },
    async (request, reply) => {
      const body = Buffer.isBuffer(request.body) ? request.body : undefined;
      const contentType = request.headers["content-type"] ?? "none";
      if (body === undefined || body.length === 0) {
        throw new ServiceRequestError(400, "EMPTY_BODY", {
          message: `request body is empty (Content-Type ${contentType}); expected the image's bytes`,
          received: "0 bytes",
          expected: "a JPEG or PNG image as the body",
        });
      }
      const sniffed = sniffImageFormat(body);
      if ("description" in sniffed) {
        throw new ServiceRequestError(415, "NOT_AN_IMAGE", {
          message: `request body (${body.length} bytes, Content-Type ${contentType}) is ${sniffed.description}, not a JPEG or PNG by its first bytes`,
          received: `${sniffed.description}, ${body.length} bytes`,
          expected: "a JPEG (starts FF D8 FF) or PNG (starts 89 50 4E 47 0D 0A 1A 0A)",
        });
      }
      let scored: { probability: number; viewProbabilities?: number[] };
      try {
        scored = await scorer.scoreImageBytes(body, { maxInputPixels: limits.maxInputPixels, views: ttaViews });
      } catch (err) {
        if (!(err instanceof ImageBytesError)) throw err;
        throw err.kind === "too-large"
          ? new ServiceRequestError(413, "TOO_MANY_PIXELS", {
              message: err.message,
              received: err.header
                ? `${err.header.widthPx}×${err.header.heightPx} = ${err.header.declaredPixels} pixels declared`
                : "more pixels than allowed",
              expected: `at most ${limits.maxInputPixels} pixels`,
            })
          : new ServiceRequestError(422, "UNDECODABLE_IMAGE", {
              message: err.message,
              received: `a ${sniffed.format.toUpperCase()} signature with ${body.length} bytes that do not decode`,
              expected: `a complete, valid ${sniffed.format.toUpperCase()}`,
            });
      }
      const decision = decide(scored, scorer.metadata);
      reply.header("cache-control", "no-store");
      return { ...decision, modelId, modelVersion, requestId: String(request.id), runtime };
    },
  );

  return {
    app,
    scorer,
    modelId,
    modelVersion,
    limits,
    async close() {
      await app.close();
      await scorer.release();
    },
  };
}

function healthSchema() {
  return {
    type: "object",
    required: ["status", "modelId", "modelVersion", "runtime", "inFlight", "maxInFlight"],
    properties: {
      status: { type: "string" },
      modelId: { type: "string" },
      modelVersion: { type: "string" },
      runtime: { type: "string" },
      inFlight: { type: "integer" },
      maxInFlight: { type: "integer" },
    },
  } as const;
}

function truncate(text: string, most = 80): string {
  return text.length > most ? `${text.slice(0, most)}…` : text;
}

/** Status, code and what was received/expected for any error a request raised. */
function describeRefusal(
  error: FastifyError | ServiceRequestError | Error,
  request: FastifyRequest,
  limits: ServiceLimits,
): { statusCode: number; code: string; message: string; received: string; expected: string; closeConnection: boolean } {
  if (error instanceof ServiceRequestError) {
    return {
      statusCode: error.statusCode,
      code: error.code,
      message: error.message,
      received: error.received,
      expected: error.expected,
      closeConnection: error.closeConnection,
    };
  }
  const fastifyError = error as FastifyError;
  const contentType = request.headers["content-type"] ?? "none";
  const expectedTypes = ACCEPTED_IMAGE_CONTENT_TYPES.join(", ");
  switch (fastifyError.code) {
    case "FST_ERR_CTP_INVALID_MEDIA_TYPE":
      return {
        statusCode: 415,
        code: "UNSUPPORTED_CONTENT_TYPE",
        message: `Content-Type ${truncate(contentType)} is not accepted; send the image with Content-Type ${expectedTypes}`,
        received: `Content-Type ${truncate(contentType)}`,
        expected: `Content-Type ${expectedTypes}`,
        closeConnection: true,
      };
    case "FST_ERR_CTP_BODY_TOO_LARGE":
      return {
        statusCode: 413,
        code: "BODY_TOO_LARGE",
        message: `request body is over the limit of ${limits.maxBodyBytes} bytes`,
        received: `Content-Length ${request.headers["content-length"] ?? "unknown"}`,
        expected: `at most ${limits.maxBodyBytes} bytes`,
        closeConnection: true,
      };
    case "FST_ERR_CTP_INVALID_CONTENT_LENGTH":
      return {
        statusCode: 400,
        code: "BAD_CONTENT_LENGTH",
        message: "Content-Length does not match the bytes received",
        received: `Content-Length ${request.headers["content-length"] ?? "unknown"}`,
        expected: "a Content-Length equal to the body's size",
        closeConnection: true,
      };
  }
  const statusCode = fastifyError.statusCode;
  if (statusCode !== undefined && statusCode >= 400 && statusCode < 500) {
    return {
      statusCode,
      code: fastifyError.code ?? "BAD_REQUEST",
      message: fastifyError.message,
      received: `${request.method} ${truncate(request.url.split("?")[0])}`,
      expected: "POST /v1/triage with a JPEG or PNG body",
      closeConnection: true,
    };
  }
  return {
    statusCode: 500,
    code: "INTERNAL",
    message: "the service failed to score this request; the failure is logged with its request id",
    received: "a request the service could not handle",
    expected: "a JPEG or PNG image",
    closeConnection: false,
  };
}
