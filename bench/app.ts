// npm run bench -- app [--models models/a,models/b] [--backends webgl,wasm] [--runs N]: in-browser
// inference ms/image of the phone app in headless Chromium (390×844) per model folder and tfjs
// backend. The page reports which backend really ran (webgl without a GPU is SwiftShader's software GL).
import fs from "node:fs";
import path from "node:path";
import { chromium } from "playwright-core";
import { buildPhoneApp, servePhoneApp } from "../app/buildApp.js";
import { defineCli, findProjectRoot, parseCommandLineOrExit } from "../lib/index.js";

const cli = defineCli({
  name: "bench app",
  usage: "npx tsx bench/app.ts",
  summary:
    "Builds the phone app once per model folder and times its model call (one image, preprocessing excluded) in headless Chromium on each tfjs backend.",
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
  console.log("model | requested | ran on | weights MB | ms/image");
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
      for (const backend of args.backends.split(",").filter(Boolean)) {
        const page = await browser.newPage({ viewport: { width: 390, height: 844 } });
        await page.goto(`${server.url}?backend=${backend}`);
        await page.waitForSelector('#result[data-state="ready"], #result[data-state="error"]', { timeout: 300_000 });
        if ((await page.getAttribute("#result", "data-state")) === "error") {
          console.log(
            `${modelDir} | ${backend} | failed: ${await page.textContent("#result")} | ${weightsMb.toFixed(1)} | -`,
          );
        } else {
          const ran = (await page.textContent("#backend"))?.replace("tfjs backend: ", "") ?? "?";
          const ms = await page.evaluate((runs) => (globalThis as any).melanomaApp.timeInference(runs), args.runs);
          console.log(`${modelDir} | ${backend} | ${ran} | ${weightsMb.toFixed(1)} | ${ms.toFixed(1)}`);
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
