// npm run serve -- --model models/<run> [--host 127.0.0.1] [--port 8080] [--max-body-bytes N] [--max-pixels N] [--max-in-flight N] [--body-timeout-ms N]
import {
  createTriageService,
  DEFAULT_SERVICE_LIMITS,
  defineCli,
  describeBackend,
  describeScorerRuntime,
  INFERENCE_RUNTIMES,
  MelanomaLabError,
  parseCommandLineOrExit,
  selectBackend,
} from "../lib/index.js";

const cli = defineCli({
  name: "serve",
  usage: "npm run serve --",
  summary:
    "Point-inference service: POST /v1/triage with an image body (JPEG or PNG) answers its triage as JSON; GET /healthz; GET /v1/model (the model card). Logs are JSON lines on stdout.",
  examples: [
    "npm run serve -- --model models/synthetic-mobilenet_v2",
    "npm run serve -- --model models/synthetic-mobilenet_v2 --port 0   # a free port, printed",
    "curl -s --data-binary @lesion.jpg -H 'content-type: image/jpeg' http://127.0.0.1:8080/v1/triage",
  ],
  options: {
    model: {
      type: "string",
      required: true,
      valueName: "<dir>",
      description: "exported model folder (metadata.json with model.json and/or model.onnx), loaded once at start",
    },
    host: { type: "string", default: "127.0.0.1", description: "address to bind (127.0.0.1: this machine only)" },
    port: { type: "integer", min: 0, max: 65535, default: 8080, description: "TCP port (0: a free port, printed)" },
    runtime: {
      type: "string",
      choices: ["auto", ...INFERENCE_RUNTIMES],
      description: "ONNX Runtime (model.onnx) or tfjs (model.json); default MELANOMA_LAB_RUNTIME, else auto",
    },
    "tta-views": {
      type: "integer",
      min: 1,
      max: 8,
      default: 8,
      description:
        "dihedral views scored per upload: their spread gives the interval (1: the upload as sent, no interval)",
    },
    "max-body-bytes": {
      type: "integer",
      min: 1,
      default: DEFAULT_SERVICE_LIMITS.maxBodyBytes,
      description: "largest request body in bytes (413 past it)",
    },
    "max-pixels": {
      type: "integer",
      min: 1,
      default: DEFAULT_SERVICE_LIMITS.maxInputPixels,
      description: "most pixels (width × height) an image may declare; 413 past it, before decoding",
    },
    "max-in-flight": {
      type: "integer",
      min: 1,
      default: DEFAULT_SERVICE_LIMITS.maxInFlight,
      description: "triage requests read or scored at once (503 with Retry-After past it)",
    },
    "body-timeout-ms": {
      type: "integer",
      min: 1,
      default: DEFAULT_SERVICE_LIMITS.bodyTimeoutMs,
      description: "ms for a request's whole body to arrive (408 past it)",
    },
    "retry-after-s": {
      type: "integer",
      min: 1,
      default: DEFAULT_SERVICE_LIMITS.retryAfterS,
      description: "Retry-After seconds sent with a 503",
    },
    "log-level": {
      type: "string",
      choices: ["trace", "debug", "info", "warn", "error", "fatal", "silent"],
      default: "info",
      description: "structured log level",
    },
  },
});

async function main(): Promise<void> {
  const { values: args } = parseCommandLineOrExit(cli, process.argv.slice(2));
  // Start-up lines go to stderr: stdout carries only the JSON log lines.
  console.error(describeBackend(await selectBackend()));
  const service = await createTriageService({
    modelDir: args.model,
    runtime: args.runtime,
    ttaViews: args["tta-views"],
    logLevel: args["log-level"],
    limits: {
      maxBodyBytes: args["max-body-bytes"],
      maxInputPixels: args["max-pixels"],
      maxInFlight: args["max-in-flight"],
      bodyTimeoutMs: args["body-timeout-ms"],
      retryAfterS: args["retry-after-s"],
    },
  });
  console.error(describeScorerRuntime(service.scorer));
  console.error(`model: ${service.modelId} version ${service.modelVersion}`);
  await service.app.listen({ host: args.host, port: args.port });
  const address = service.app.server.address();
  const port = typeof address === "object" && address ? address.port : args.port;
  console.error(`listening on http://${args.host.includes(":") ? `[${args.host}]` : args.host}:${port} (Ctrl-C stops)`);
  const stop = (signal: string) => {
    console.error(`${signal}: closing`);
    service.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.once("SIGINT", () => stop("SIGINT"));
  process.once("SIGTERM", () => stop("SIGTERM"));
}

main().catch((err) => {
  console.error(err instanceof MelanomaLabError ? `serve: ${err.message}` : err);
  process.exit(1);
});
