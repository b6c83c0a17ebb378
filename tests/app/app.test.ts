// The phone app in headless Chromium at a phone viewport: it loads, classifies a photo-sized JPEG
// with the probability `npm run score` gives on tfjs and on ONNX Runtime web, picks between them,
// sends no image anywhere, and works offline.
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
    let tfjsOnlyServer: { url: string; close: () => Promise<void> };
    let browser: Browser;

    beforeAll(async () => {
      tmp = fs.mkdtempSync(path.join(os.tmpdir(), "melanoma-app-"));
      fs.mkdirSync(path.join(tmp, "photos"));
      fs.mkdirSync(screenshotDir, { recursive: true });
      await exportSmallConvTriageModel(path.join(tmp, "model"), 7, { onnx: true });
      await exportSmallConvTriageModel(path.join(tmp, "model-tfjs-only"), 7);
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
      await buildPhoneApp({ modelDir: path.join(tmp, "model-tfjs-only"), outDir: path.join(tmp, "dist-tfjs-only") });
      tfjsOnlyServer = await servePhoneApp(path.join(tmp, "dist-tfjs-only"));
      browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
    }, 240_000);

    afterAll(async () => {
      await browser?.close();
      await server?.close();
      await tfjsOnlyServer?.close();
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

    /** Opens the page with `query`, waits until ready, classifies the photo; the 8 views' raw probabilities. */
    async function classifyViews(url: string): Promise<{ views: number[]; runtime: string; page: Page }> {
      const page = await browser.newPage({ viewport: VIEWPORT });
      await page.goto(url);
      expect(await waitForState(page, ["ready"]), (await page.textContent("#result")) ?? undefined).toBe("ready");
      await classify(page);
      const views = JSON.parse((await page.getAttribute("#result", "data-view-probabilities"))!) as number[];
      return { views, runtime: (await page.getAttribute("#result", "data-runtime"))!, page };
    }

    it("loads: installable manifest with icons, backend named, model ready", async () => {
      const page = await browser.newPage({ viewport: VIEWPORT });
      await page.goto(server.url);
      expect(await waitForState(page, ["ready"]), (await page.textContent("#result")) ?? undefined).toBe("ready");
      expect(await page.textContent("#backend")).toMatch(/^tfjs backend: (webgl|wasm|cpu)/);
      // servePhoneApp's COOP/COEP: cross-origin isolated, so ONNX Runtime web gets wasm threads.
      const { isolated, cores } = await page.evaluate(() => ({
        isolated: (globalThis as any).crossOriginIsolated as boolean,
        cores: (globalThis as any).navigator.hardwareConcurrency as number,
      }));
      expect(isolated).toBe(true);
      expect(await page.getAttribute("body", "data-ort-threads")).toBe(String(Math.min(cores, 4)));
      expect(await page.textContent("#ort")).toMatch(/^ONNX Runtime web: wasm, \d+ threads?: cross-origin isolated/);
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
        await page.goto(`${server.url}?runtime=tfjs&backend=${backend}`);
        expect(await waitForState(page, ["ready"]), (await page.textContent("#result")) ?? undefined).toBe("ready");
        expect(await page.textContent("#runtime")).toBe(`runtime: tfjs ${backend}: forced by ?runtime=tfjs`);
        // Headless Chromium without a GPU may still offer webgl through SwiftShader; the page says which ran.
        expect(await page.textContent("#backend")).toContain(`tfjs backend: ${backend}`);
        const afterLoad = requests.length;
        const probability = await classify(page);
        expect(await page.getAttribute("#result", "data-runtime")).toBe("tfjs");
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

    it("?runtime=onnx scores the photo as npm run score does and as ?runtime=tfjs does (all 8 views within 1e-4)", async () => {
      const onnx = await classifyViews(`${server.url}?runtime=onnx`);
      expect(onnx.runtime).toBe("onnx");
      expect(await onnx.page.textContent("#runtime")).toMatch(
        /^runtime: ONNX Runtime web \(wasm, \d+ threads?\): forced by \?runtime=onnx$/,
      );
      // Forced ONNX never loads the tfjs model.
      expect(await onnx.page.textContent("#backend")).toBe("tfjs backend: not loaded (?runtime=onnx)");
      expect(Math.abs(onnx.views[0] - scoredProbability)).toBeLessThan(1e-3);
      await onnx.page.screenshot({ path: path.join(screenshotDir, "2-classified-onnx.png"), fullPage: true });
      await onnx.page.close();
      const tfjs = await classifyViews(`${server.url}?runtime=tfjs&backend=wasm`);
      expect(tfjs.runtime).toBe("tfjs");
      await tfjs.page.close();
      expect(onnx.views).toHaveLength(8);
      expect(tfjs.views).toHaveLength(8);
      // The views differ from one another, so agreement is not agreement on a constant.
      expect(Math.max(...onnx.views) - Math.min(...onnx.views)).toBeGreaterThan(1e-2);
      const maxAbs = Math.max(...onnx.views.map((p, i) => Math.abs(p - tfjs.views[i])));
      expect(maxAbs).toBeLessThan(1e-4);
    }, 180_000);

    it("auto times both runtimes, runs the faster and says which with both figures", async () => {
      const auto = await classifyViews(`${server.url}?backend=wasm`);
      const reason = (await auto.page.textContent("#runtime"))!;
      const match = reason.match(
        /^runtime: (ONNX Runtime web \(wasm, \d+ threads?\)|tfjs wasm): ([\d.]+) ms vs (tfjs wasm|ONNX Runtime web \(wasm, \d+ threads?\)) ([\d.]+) ms per photo$/,
      );
      expect(match, reason).not.toBeNull();
      const [, winner, winnerMs, loser, loserMs] = match!;
      expect(winner).not.toBe(loser);
      expect(Number(winnerMs)).toBeLessThanOrEqual(Number(loserMs));
      const expectedRuntime = winner.startsWith("ONNX") ? "onnx" : "tfjs";
      expect(await auto.page.getAttribute("body", "data-runtime")).toBe(expectedRuntime);
      expect(auto.runtime).toBe(expectedRuntime);
      expect(Math.abs(auto.views[0] - scoredProbability)).toBeLessThan(1e-3);
      await auto.page.close();
    }, 180_000);

    it("a model folder without model.onnx runs tfjs and says why; ?runtime=onnx there is an error", async () => {
      const auto = await classifyViews(`${tfjsOnlyServer.url}?backend=wasm`);
      expect(auto.runtime).toBe("tfjs");
      expect(await auto.page.textContent("#runtime")).toBe(
        "runtime: tfjs wasm: the model folder has no model.onnx (metadata.json has no onnx entry)",
      );
      expect(Math.abs(auto.views[0] - scoredProbability)).toBeLessThan(1e-3);
      await auto.page.close();
      const page = await browser.newPage({ viewport: VIEWPORT });
      await page.goto(`${tfjsOnlyServer.url}?runtime=onnx`);
      expect(await waitForState(page, ["ready"])).toBe("error");
      expect(await page.textContent("#result")).toMatch(
        /\?runtime=onnx: ONNX Runtime web unavailable \(the model folder has no model\.onnx/,
      );
      await page.close();
    }, 180_000);

    it("a second load with the network blocked still works and classifies (service worker cache)", async () => {
      const context = await browser.newContext({ viewport: VIEWPORT });
      const page = await context.newPage();
      // auto: loads tfjs wasm and ONNX Runtime web, so both sets of wasm files must come from the cache.
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
      expect(await page.textContent("#runtime")).toMatch(/ ms vs .* ms per photo$/);
      expect(await page.evaluate(() => (globalThis as any).crossOriginIsolated)).toBe(true);
      const probability = await classify(page);
      expect(Math.abs(probability - scoredProbability)).toBeLessThan(1e-3);
      await page.screenshot({ path: path.join(screenshotDir, "3-offline-classified.png"), fullPage: true });
      await context.close();
    }, 180_000);
  },
);
