// The phone app in headless Chromium at a phone viewport: it loads, classifies a photo-sized JPEG
// with the probability `npm run score` gives, sends no image anywhere, and works offline.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { chromium, type Browser, type Page, type Request } from "playwright-core";
import { afterAll, beforeAll, expect, it } from "vitest";
import { buildPhoneApp, servePhoneApp } from "../../app/buildApp.js";
import { scoreImagesToCsv } from "../../lib/index.js";
import { commandExists, describeRequiring, missingTool } from "../helpers/shared.js";
import { exportSmallConvTriageModel, writeTexturedJpeg } from "./appFixtures.js";

const CHROMIUM = "/usr/bin/chromium";
const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--no-first-run",
];
const VIEWPORT = { width: 390, height: 844 };
const screenshotDir = path.resolve("out", "app-screenshots");

describeRequiring(
  missingTool(commandExists(CHROMIUM), `Chromium (${CHROMIUM})`, "apt-get install chromium"),
  "phone app (PWA) in Chromium at 390×844",
  () => {
    let tmp: string;
    let photo: string;
    let scoredProbability: number;
    let server: { url: string; close: () => Promise<void> };
    let browser: Browser;

    beforeAll(async () => {
      tmp = fs.mkdtempSync(path.join(os.tmpdir(), "melanoma-app-"));
      fs.mkdirSync(path.join(tmp, "photos"));
      fs.mkdirSync(screenshotDir, { recursive: true });
      await exportSmallConvTriageModel(path.join(tmp, "model"));
      // 600×450 like HAM10000's originals: the 224-px model input needs a resize and a centre crop.
      photo = await writeTexturedJpeg(path.join(tmp, "photos", "lesion.jpg"), 600, 450);
      await scoreImagesToCsv({
        modelDir: path.join(tmp, "model"),
        input: path.join(tmp, "photos"),
        outPath: path.join(tmp, "scores.csv"),
        batchSize: 1,
        runtime: "tfjs",
      });
      const row = fs.readFileSync(path.join(tmp, "scores.csv"), "utf8").trim().split("\n")[1].split(",");
      expect(row[0]).toBe("lesion");
      scoredProbability = Number(row[1]);
      await buildPhoneApp({ modelDir: path.join(tmp, "model"), outDir: path.join(tmp, "dist") });
      server = await servePhoneApp(path.join(tmp, "dist"));
      browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
    }, 240_000);

    afterAll(async () => {
      await browser?.close();
      await server?.close();
      if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
    });

    async function waitForState(page: Page, states: string[]): Promise<string> {
      const selector = [...states, "error"].map((s) => `#result[data-state="${s}"]`).join(", ");
      await page.waitForSelector(selector, { timeout: 120_000 });
      return (await page.getAttribute("#result", "data-state"))!;
    }

    async function classify(page: Page): Promise<number> {
      await page.setInputFiles("#photo", photo);
      expect(await waitForState(page, ["done"]), (await page.textContent("#result")) ?? undefined).toBe("done");
      return Number(await page.getAttribute("#result", "data-probability"));
    }

    it("loads: installable manifest with icons, backend named, model ready", async () => {
      const page = await browser.newPage({ viewport: VIEWPORT });
      await page.goto(server.url);
      expect(await waitForState(page, ["ready"]), (await page.textContent("#result")) ?? undefined).toBe("ready");
      expect(await page.textContent("#backend")).toMatch(/^tfjs backend: (webgl|wasm|cpu)/);
      const manifest = await (await page.request.get(new URL("manifest.webmanifest", server.url).href)).json();
      expect(manifest.display).toBe("standalone");
      for (const icon of manifest.icons) {
        const res = await page.request.get(new URL(icon.src, server.url).href);
        expect(res.status()).toBe(200);
        expect(res.headers()["content-type"]).toBe("image/png");
      }
      expect(await page.getAttribute("#photo", "capture")).toBe("environment");
      await page.screenshot({ path: path.join(screenshotDir, "1-loaded.png"), fullPage: true });
      await page.close();
    }, 180_000);

    for (const backend of ["wasm", "webgl"]) {
      it(`classifies a 600×450 JPEG on ${backend} with npm run score's probability (±1e-3), sending no image`, async () => {
        const page = await browser.newPage({ viewport: VIEWPORT });
        const requests: Request[] = [];
        page.on("request", (r) => requests.push(r));
        await page.goto(`${server.url}?backend=${backend}`);
        expect(await waitForState(page, ["ready"]), (await page.textContent("#result")) ?? undefined).toBe("ready");
        // Headless Chromium without a GPU may still offer webgl through SwiftShader; the page says which ran.
        expect(await page.textContent("#backend")).toContain(`tfjs backend: ${backend}`);
        const afterLoad = requests.length;
        const probability = await classify(page);
        expect(Math.abs(probability - scoredProbability)).toBeLessThan(1e-3);
        const expectedLevel = probability >= 0.5 ? "urgent" : "routine";
        expect(await page.getAttribute("#result", "data-level")).toBe(expectedLevel);
        expect(await page.textContent("#result .level")).toBe(expectedLevel);
        expect((await page.textContent("#result")) ?? undefined).toMatch(/not a diagnosis/);
        await page.screenshot({ path: path.join(screenshotDir, `2-classified-${backend}.png`), fullPage: true });
        // No request carries a body; after load only same-origin GETs (the preview is a blob: URL).
        expect(requests.filter((r) => r.postData() !== null).map((r) => r.url())).toEqual([]);
        const origin = new URL(server.url).origin;
        const late = requests
          .slice(afterLoad)
          .filter((r) => !r.url().startsWith("blob:") && !r.url().startsWith("data:"));
        expect(
          late.filter((r) => r.method() !== "GET" || new URL(r.url()).origin !== origin).map((r) => r.url()),
        ).toEqual([]);
        expect(requests.every((r) => ["GET"].includes(r.method()))).toBe(true);
        await page.close();
      }, 180_000);
    }

    it("a second load with the network blocked still works and classifies (service worker cache)", async () => {
      const context = await browser.newContext({ viewport: VIEWPORT });
      const page = await context.newPage();
      await page.goto(`${server.url}?backend=wasm`);
      expect(await waitForState(page, ["ready"])).toBe("ready");
      await page.evaluate(async () => {
        await (globalThis as any).navigator.serviceWorker.ready;
      });
      await page.waitForFunction(() => (globalThis as any).navigator.serviceWorker.controller !== null, undefined, {
        timeout: 60_000,
      });
      await context.setOffline(true);
      // A request that is not cached fails offline: proof the network is really blocked.
      expect(
        await page.evaluate(() =>
          fetch("/not-cached.txt").then(
            () => "fetched",
            () => "failed",
          ),
        ),
      ).toBe("failed");
      await page.reload();
      expect(await waitForState(page, ["ready"]), (await page.textContent("#result")) ?? undefined).toBe("ready");
      const probability = await classify(page);
      expect(Math.abs(probability - scoredProbability)).toBeLessThan(1e-3);
      await page.screenshot({ path: path.join(screenshotDir, "3-offline-classified.png"), fullPage: true });
      await context.close();
    }, 180_000);
  },
);
