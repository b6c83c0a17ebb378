// npm run app -- --model models/<run> [--port N] [--host 127.0.0.1]: builds the phone app (PWA,
// on-device tfjs inference) with that model and serves it until Ctrl-C.
import path from "node:path";
import { buildPhoneApp, servePhoneApp, AppBuildError } from "../app/buildApp.js";
import { defineCli, findProjectRoot, MelanomaLabError, parseCommandLineOrExit } from "../lib/index.js";

const cli = defineCli({
  name: "app",
  usage: "npm run app --",
  summary:
    "Builds the offline phone app (installable PWA; the photo is classified on the device with tfjs, webgl else wasm) with an exported triage model and serves it over HTTP.",
  examples: ["npm run app -- --model models/synthetic-mobilenet_v2", "npm run app -- --model models/<run> --port 8080"],
  options: {
    model: {
      type: "string",
      required: true,
      valueName: "<dir>",
      description: "exported triage model folder (model.json, weights, metadata.json), e.g. a float16/uint8 variant",
    },
    port: { type: "integer", min: 0, max: 65535, default: 5173, description: "TCP port (0: any free port)" },
    host: {
      type: "string",
      default: "127.0.0.1",
      valueName: "<address>",
      description: "address to listen on; browsers allow the offline service worker only on localhost or HTTPS",
    },
    "out-dir": {
      type: "string",
      default: "out/app",
      valueName: "<dir>",
      description: "where the built app is written",
    },
  },
  notes: ["The page says which tfjs backend ran. No image leaves the device: the server only serves the app's files."],
});

async function main(): Promise<void> {
  const { values: args } = parseCommandLineOrExit(cli, process.argv.slice(2));
  const outDir = path.resolve(findProjectRoot(), args["out-dir"]);
  const built = await buildPhoneApp({ modelDir: args.model, outDir });
  console.log(
    `app: built ${built.precached.length} files into ${path.relative(process.cwd(), outDir) || "."} (cache ${built.version})`,
  );
  const server = await servePhoneApp(outDir, { host: args.host, port: args.port });
  console.log(`app: serving ${server.url} (model ${args.model}); Ctrl-C stops`);
  process.on("SIGINT", () => void server.close().then(() => process.exit(0)));
}

main().catch((err) => {
  console.error(err instanceof MelanomaLabError || err instanceof AppBuildError ? `app: ${err.message}` : err);
  process.exit(1);
});
