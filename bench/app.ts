// npm run bench -- app [--models models/a,models/b] [--backends webgl,wasm] [--ort-threads 1,2] [--runs N]:
// in-browser inference ms/image of the phone app in headless Chromium (390×844) per model folder:
// tfjs on each backend and, when the folder has model.onnx, ONNX Runtime web (wasm) per thread count,
// side by side. The page reports what really ran (webgl without a GPU is SwiftShader's software GL).
import fs from "node:fs";
import path from "node:path";
import { chromium } from "playwright-core";
import { buildPhoneApp, servePhoneApp } from "../app/buildApp.js";
import { defineCli, findProjectRoot, parseCommandLineOrExit } from "../lib/index.js";

const cli = defineCli({
  name: "bench app",
  usage: "npx tsx bench/app.ts",
  summary:
    "Builds the phone app once per model folder and times its model call (one image, preprocessing excluded) in headless Chromium on each tfjs backend and on ONNX Runtime web (wasm) when the folder has model.onnx.",
  examples: ["npm run bench -- app --models models/demo,models/demo-uint8 --runs 20"],
  options: {
    models: {
      type: "string",
      valueName: "<dir,dir,…>",
      description:
        "comma-separated exported model folders (float32/float16/uint8 variants); default every models/*/ with metadata.json",
    },
    backends: {
      type: "string",
      default: "webgl,wasm",
      valueName: "<list>",
      description: "tfjs backends to try, comma-separated",
    },
    "ort-threads": {
      type: "string",
      default: "1,2",
      valueName: "<list>",
      description:
        "ONNX Runtime web wasm thread counts to try, comma-separated (the page is cross-origin isolated); empty: none",
    },
    runs: {
      type: "integer",
      min: 1,
      default: 10,
      description: "timed images per model and backend (after one warm-up)",
    },
  },
});

async function main(): Promise<void> {
  const { values: args } = parseCommandLineOrExit(cli, process.argv.slice(2));
  const root = findProjectRoot();
  const modelsDir = path.join(root, "models");
  const models = args.models
    ? args.models.split(",").filter(Boolean)
    : fs.existsSync(modelsDir)
      ? fs
          .readdirSync(modelsDir)
          .map((d) => path.join(modelsDir, d))
          .filter((d) => fs.existsSync(path.join(d, "metadata.json")))
      : [];
  if (models.length === 0) {
    console.error(
      "bench app: no model folder; pass --models <dir,…> or run `npm run demo` first (it leaves one in models/)",
    );
    process.exit(2);
  }
  const browser = await chromium.launch({
    executablePath: "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"],
  });
  console.log("model | runtime | requested | ran on | weights MB | ms/image");
  try {
    for (const [i, modelDir] of models.entries()) {
      const outDir = path.join(root, "out", "app-bench", String(i));
      await buildPhoneApp({ modelDir, outDir });
      const weightsMb =
        fs
          .readdirSync(path.join(outDir, "model"))
          .filter((f) => f.endsWith(".bin"))
          .reduce((n, f) => n + fs.statSync(path.join(outDir, "model", f)).size, 0) /
        (1024 * 1024);
      const server = await servePhoneApp(outDir);
      const hasOnnx = fs.existsSync(path.join(outDir, "model", "model.onnx"));
      const rows = [
        ...args.backends
          .split(",")
          .filter(Boolean)
          .map((backend) => ({ runtime: "tfjs", requested: backend, query: `?runtime=tfjs&backend=${backend}` })),
        ...(hasOnnx ? args["ort-threads"].split(",").filter(Boolean) : []).map((threads) => ({
          runtime: "ORT web",
          requested: `wasm ${threads} thr`,
          query: `?runtime=onnx&ortThreads=${threads}`,
        })),
      ];
      if (!hasOnnx)
        console.log(`${modelDir} | ORT web | - | no model.onnx in the folder | ${weightsMb.toFixed(1)} | -`);
      for (const row of rows) {
        const page = await browser.newPage({ viewport: { width: 390, height: 844 } });
        await page.goto(server.url + row.query);
        await page.waitForSelector('#result[data-state="ready"], #result[data-state="error"]', { timeout: 300_000 });
        const prefix = `${modelDir} | ${row.runtime} | ${row.requested}`;
        if ((await page.getAttribute("#result", "data-state")) === "error") {
          console.log(`${prefix} | failed: ${await page.textContent("#result")} | ${weightsMb.toFixed(1)} | -`);
        } else {
          const ran =
            row.runtime === "tfjs"
              ? ((await page.textContent("#backend"))?.replace("tfjs backend: ", "") ?? "?")
              : ((await page.textContent("#ort"))?.replace("ONNX Runtime web: ", "") ?? "?");
          const ms = await page.evaluate((runs) => (globalThis as any).melanomaApp.timeInference(runs), args.runs);
          console.log(`${prefix} | ${ran} | ${weightsMb.toFixed(1)} | ${ms.toFixed(1)}`);
        }
        await page.close();
      }
      await server.close();
    }
  } finally {
    await browser.close();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
