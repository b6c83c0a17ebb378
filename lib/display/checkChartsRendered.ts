import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";
import { MelanomaLabError } from "../util/errors.js";
import { findProjectRoot } from "../util/paths.js";

/** Thrown when the HTML file is missing or headless Chromium cannot start. */
export class ChartRenderCheckError extends MelanomaLabError {}

/** What the browser saw for one chart. */
export interface ChartRenderResult {
  index: number;
  /** `data-chart-title` of melanoma-lab charts, else the plot's title text. */
  title: string;
  /** True when the chart drew an SVG with axes, marks and a non-blank picture. */
  rendered: boolean;
  hasMainSvg: boolean;
  xTickCount: number;
  yTickCount: number;
  /** Trace groups Plotly created (scatter, bar, heatmap…). */
  traceCount: number;
  /** Drawn marks: line paths with geometry, markers, bars, heatmap images. */
  drawnMarkCount: number;
  widthPx: number;
  heightPx: number;
  /**
   * Height of the (first) plotting area, where the marks are drawn, in pixels; 0 when none. With
   * `heightPx` it shows how much of a chart goes to margins, tick labels and legend.
   */
  plotAreaHeightPx: number;
  /** Fraction of screenshot pixels that are not near-white (0..1). */
  inkFraction: number;
  screenshotPath?: string;
  /** Why `rendered` is false (empty when it is true). */
  problems: string[];
  /** Text left in the chart's div (e.g. "plotly.js is not loaded…"). */
  fallbackText?: string;
}

/** The result of {@link checkChartsRendered} for one HTML file. */
export interface ChartsRenderReport {
  htmlPath: string;
  charts: ChartRenderResult[];
  allRendered: boolean;
  /** Uncaught page errors and console errors. */
  pageErrors: string[];
  pageScreenshotPath?: string;
}

// The page callbacks below run inside Chromium. lib/ is compiled without the DOM library (tslab
// type-checks it with ES libs only), so the little of the DOM they touch is declared here.
interface PageElement {
  querySelector(selector: string): PageElement | null;
  querySelectorAll(selector: string): ArrayLike<PageElement>;
  textContent: string | null;
  getAttribute(name: string): string | null;
  setAttribute(name: string, value: string): void;
  contains(other: PageElement): boolean;
  getBoundingClientRect(): { width: number; height: number };
}
declare const document: { querySelectorAll(selector: string): ArrayLike<PageElement> };

/** Chromium flags for a headless, sandbox-free, offline run (containers, CI). */
export const HEADLESS_CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--no-first-run",
];

type PlaywrightCore = typeof import("playwright-core");

function loadPlaywright(): PlaywrightCore {
  try {
    return createRequire(path.join(findProjectRoot(), "package.json"))("playwright-core") as PlaywrightCore;
  } catch (e) {
    throw new ChartRenderCheckError(
      `playwright-core could not be loaded from ${findProjectRoot()}/node_modules (${(e as Error).message}); expected the devDependency from package.json`,
    );
  }
}

function slugify(s: string): string {
  return (
    s
      .toLowerCase()
      .replace(/[^a-z0-9]+/g, "-")
      .replace(/^-|-$/g, "")
      .slice(0, 50) || "chart"
  );
}

async function measureInk(png: Buffer): Promise<number> {
  const requireFromRoot = createRequire(path.join(findProjectRoot(), "package.json"));
  const sharp = requireFromRoot("sharp") as typeof import("sharp");
  const { data, info } = await sharp(png).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  let ink = 0;
  const pixels = info.width * info.height;
  for (let i = 0; i < data.length; i += info.channels) {
    if (data[i] < 235 || data[i + 1] < 235 || data[i + 2] < 235) ink++;
  }
  return pixels ? ink / pixels : 0;
}

/**
 * Opens an HTML file (a report from writeHtmlReport, an nbconvert export of a notebook, any
 * page with Plotly charts) in headless Chromium, offline — or an http(s) URL such as a notebook
 * open in a local Jupyter server — and checks that every chart drew: an
 * SVG `.main-svg` with x and y ticks, at least one drawn trace, and a screenshot that is not
 * blank. Charts are the `.melanoma-lab-chart` divs and any other `.js-plotly-plot`. Saves a
 * page screenshot and one per chart under `screenshotDir` when given.
 *
 * @example const report = await checkChartsRendered("out/report.html", { screenshotDir: "out/screenshots" });
 * report.charts.filter((c) => !c.rendered) // []
 */
export async function checkChartsRendered(
  htmlPath: string,
  options: {
    screenshotDir?: string;
    chromiumPath?: string;
    timeoutMs?: number;
    minInkFraction?: number;
    /** For live pages (a Jupyter server): wait for this selector after load, e.g. ".melanoma-lab-chart". */
    waitForSelector?: string;
  } = {},
): Promise<ChartsRenderReport> {
  const isUrl = /^(https?|file):\/\//.test(htmlPath);
  const full = isUrl ? htmlPath : path.resolve(htmlPath);
  if (!isUrl && !fs.existsSync(full))
    throw new ChartRenderCheckError(
      `checkChartsRendered: ${full} does not exist; expected an HTML file or an http(s):// URL`,
    );
  const chromiumPath = options.chromiumPath ?? "/usr/bin/chromium";
  if (!fs.existsSync(chromiumPath))
    throw new ChartRenderCheckError(
      `checkChartsRendered: Chromium is not at ${chromiumPath}; expected a Chromium binary (apt-get install chromium)`,
    );
  const timeoutMs = options.timeoutMs ?? 30_000;
  const minInk = options.minInkFraction ?? 0.01;
  const { chromium } = loadPlaywright();
  let browser: Awaited<ReturnType<PlaywrightCore["chromium"]["launch"]>>;
  try {
    browser = await chromium.launch({ executablePath: chromiumPath, args: HEADLESS_CHROMIUM_ARGS, timeout: timeoutMs });
  } catch (e) {
    throw new ChartRenderCheckError(
      `checkChartsRendered: Chromium at ${chromiumPath} did not start: ${(e as Error).message.split("\n")[0]}`,
    );
  }
  const pageErrors: string[] = [];
  try {
    // Files are checked offline (the charts must not need a CDN); URLs need the (local) network.
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, offline: !isUrl });
    const page = await context.newPage();
    page.on("pageerror", (e) => pageErrors.push(`pageerror: ${e.message}`));
    page.on("console", (m) => {
      if (m.type() === "error") pageErrors.push(`console.error: ${m.text()}`);
    });
    // Big inline scripts (4.8 MB plotly.js) take a while to parse on a busy machine.
    await page.goto(isUrl ? full : `file://${full}`, { waitUntil: "load", timeout: timeoutMs });
    if (options.waitForSelector) await page.waitForSelector(options.waitForSelector, { timeout: timeoutMs });
    // Wait until each chart either drew an SVG or wrote its fallback message; a timeout is a result, not a crash.
    await page
      .waitForFunction(
        () => {
          const els = Array.from(document.querySelectorAll(".melanoma-lab-chart, .js-plotly-plot"));
          return els.every((el) => el.querySelector(".main-svg") !== null || (el.textContent ?? "").trim().length > 0);
        },
        undefined,
        { timeout: timeoutMs, polling: 200 },
      )
      .catch(() => undefined);
    // Let Plotly finish any transitions before measuring.
    await page.waitForTimeout(300);
    const found = await page.evaluate(() => {
      const all = Array.from(document.querySelectorAll(".melanoma-lab-chart, .js-plotly-plot"));
      // A melanoma-lab chart div becomes a .js-plotly-plot itself; keep outermost elements only.
      const charts = all.filter(
        (el, i) => all.findIndex((o) => o === el) === i && !all.some((o) => o !== el && o.contains(el)),
      );
      return charts.map((el, index) => {
        el.setAttribute("data-render-check-index", String(index));
        const svg = el.querySelector(".main-svg");
        const rect = el.getBoundingClientRect();
        const lines = Array.from(el.querySelectorAll(".scatterlayer path.js-line")).filter(
          (p) => (p.getAttribute("d") ?? "").length > 4,
        ).length;
        const fills = Array.from(el.querySelectorAll(".scatterlayer path.js-fill")).filter(
          (p) => (p.getAttribute("d") ?? "").length > 4,
        ).length;
        const points = el.querySelectorAll(".scatterlayer path.point").length;
        const bars = el.querySelectorAll(".barlayer path").length;
        const heatmaps = el.querySelectorAll(".heatmaplayer image").length;
        const titleText = el.getAttribute("data-chart-title") ?? el.querySelector(".gtitle")?.textContent ?? "";
        return {
          index,
          title: titleText,
          hasMainSvg: svg !== null,
          xTickCount: el.querySelectorAll(".xaxislayer-above .xtick").length,
          yTickCount: el.querySelectorAll(".yaxislayer-above .ytick").length,
          traceCount: el.querySelectorAll(".scatterlayer .trace, .barlayer .trace, .heatmaplayer .hm").length,
          drawnMarkCount: lines + fills + points + bars + heatmaps,
          widthPx: Math.round(rect.width),
          heightPx: Math.round(rect.height),
          plotAreaHeightPx: Math.round(el.querySelector(".draglayer .nsewdrag")?.getBoundingClientRect().height ?? 0),
          fallbackText: svg ? undefined : (el.textContent ?? "").trim().slice(0, 200) || undefined,
        };
      });
    });
    const base = path.basename(isUrl ? new URL(full).pathname : full).replace(/\.[^.]+$/, "") || "page";
    let pageScreenshotPath: string | undefined;
    if (options.screenshotDir) {
      fs.mkdirSync(options.screenshotDir, { recursive: true });
      pageScreenshotPath = path.resolve(options.screenshotDir, `${slugify(base)}-page.png`);
      await page.screenshot({ path: pageScreenshotPath, fullPage: true });
    }
    const charts: ChartRenderResult[] = [];
    for (const c of found) {
      const problems: string[] = [];
      let inkFraction = 0;
      let screenshotPath: string | undefined;
      if (c.widthPx > 0 && c.heightPx > 0) {
        const png = await page.locator(`[data-render-check-index="${c.index}"]`).screenshot({ timeout: timeoutMs });
        inkFraction = await measureInk(png);
        if (options.screenshotDir) {
          screenshotPath = path.resolve(
            options.screenshotDir,
            `${slugify(base)}-chart-${c.index}-${slugify(c.title)}.png`,
          );
          fs.writeFileSync(screenshotPath, png);
        }
      } else problems.push(`chart box is ${c.widthPx}×${c.heightPx} px`);
      if (!c.hasMainSvg)
        problems.push(`no .main-svg (Plotly did not draw)${c.fallbackText ? `: "${c.fallbackText}"` : ""}`);
      if (c.hasMainSvg && c.xTickCount === 0 && c.yTickCount === 0) problems.push("no axis ticks");
      if (c.hasMainSvg && c.traceCount === 0) problems.push("no traces");
      if (c.hasMainSvg && c.drawnMarkCount === 0)
        problems.push("traces drew nothing (no line, marker, bar or heatmap)");
      if (inkFraction < minInk)
        problems.push(
          `screenshot is blank (${(inkFraction * 100).toFixed(2)}% non-white pixels, expected >= ${(minInk * 100).toFixed(2)}%)`,
        );
      charts.push({ ...c, rendered: problems.length === 0, inkFraction, screenshotPath, problems });
    }
    return {
      htmlPath: full,
      charts,
      allRendered: charts.length > 0 && charts.every((c) => c.rendered),
      pageErrors,
      pageScreenshotPath,
    };
  } finally {
    await browser.close();
  }
}
