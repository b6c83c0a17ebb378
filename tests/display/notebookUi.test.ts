import { spawnSync } from "node:child_process";
import fs from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { HEADLESS_CHROMIUM_ARGS } from "../../lib/display/checkChartsRendered.js";
import { findProjectRoot } from "../../lib/util/paths.js";
import { startClassicNotebook } from "../helpers/notebookServer.js";
import { commandExists, requireTool } from "../helpers/shared.js";

const PYTHON = "/usr/bin/python3";
const root = findProjectRoot();
const outDir = path.join(root, "out", "test-notebook-ui");

function hasClassicNotebook(): boolean {
  return (
    commandExists(PYTHON) &&
    spawnSync(PYTHON, ["-c", "import notebook, jupyter_client"], { stdio: "ignore" }).status === 0
  );
}

// The page callbacks run inside Chromium; the project compiles without the DOM library, so the
// little of the DOM and of classic Notebook's page object they touch is declared here.
interface PageElement {
  querySelector(selector: string): PageElement | null;
  querySelectorAll(selector: string): ArrayLike<PageElement>;
  closest(selector: string): PageElement | null;
  getAttribute(name: string): string | null;
  getBoundingClientRect(): { width: number; height: number };
  textContent: string | null;
  scrollWidth: number;
  clientWidth: number;
  style: Record<string, string>;
}
declare function setTimeout(callback: () => void, ms: number): unknown;
declare const document: {
  querySelector(selector: string): PageElement | null;
  querySelectorAll(selector: string): ArrayLike<PageElement>;
};
interface NotebookCell {
  cell_type: string;
  input_prompt_number?: number | string | null;
}
declare const window: {
  Jupyter?: {
    notebook?: {
      dirty: boolean;
      kernel?: { info_reply?: { language_info?: unknown } };
      get_cells(): NotebookCell[];
      events: { on(event: string, handler: () => void): void };
    };
  };
  /** Running code cells 250 ms after each kernel_idle event (recorded by the test). */
  runningCellsAfterIdle?: number[];
};

interface IndicatorSample {
  atMs: number;
  icon: string;
  runningCells: number;
}

// Notebook 01 opened in classic Notebook and run with Cell → Run All, as a new user would, on the
// small synthetic data: what the page shows while it runs and when it is done.
describe("notebook 01 in the classic Notebook UI (headless Chromium)", () => {
  it("opens unmodified, stays busy through Run All, and shows every chart and table unclipped without scroll boxes", async (ctx) => {
    requireTool(
      ctx,
      hasClassicNotebook(),
      "classic Jupyter Notebook for /usr/bin/python3",
      "apt-get install python3-notebook jupyter-client",
    );
    requireTool(ctx, commandExists("/usr/bin/chromium"), "Chromium (/usr/bin/chromium)", "apt-get install chromium");
    fs.rmSync(outDir, { recursive: true, force: true });
    const notebookDir = path.join(outDir, "notebooks");
    fs.mkdirSync(notebookDir, { recursive: true });
    fs.copyFileSync(path.join(root, "notebooks", "01-data.ipynb"), path.join(notebookDir, "01-data.ipynb"));
    const env = {
      ...process.env,
      JUPYTER_PATH: path.join(root, "jupyter"),
      JUPYTER_DATA_DIR: path.join(outDir, "jupyter-data"),
      JUPYTER_RUNTIME_DIR: path.join(outDir, "jupyter-runtime"),
      JUPYTER_CONFIG_DIR: path.join(outDir, "jupyter-config"),
      MELANOMA_LAB_ROOT: root,
      MELANOMA_LAB_SMALL: "1",
      MELANOMA_LAB_RUN: "test-notebook-ui",
      MELANOMA_LAB_DATA: path.join(root, "data", "synthetic-small"),
    };
    const server = await startClassicNotebook({ python: PYTHON, notebookDir, env, token: "melanoma-lab-ui-test" });
    const { chromium } = createRequire(path.join(root, "package.json"))(
      "playwright-core",
    ) as typeof import("playwright-core");
    const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: HEADLESS_CHROMIUM_ARGS });
    try {
      const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
      const pageErrors: string[] = [];
      page.on("pageerror", (e) => pageErrors.push(e.message));
      await page.goto(server.urlOf("01-data.ipynb"), {
        waitUntil: "load",
        timeout: 60_000,
      });
      // Opened: the kernel starts and reports its kernelspec and language_info; nothing else happened.
      await page.waitForFunction(
        () => window.Jupyter?.notebook?.kernel?.info_reply?.language_info !== undefined,
        undefined,
        { timeout: 120_000 },
      );
      await page.waitForTimeout(1500);
      expect
        .soft(await page.evaluate(() => window.Jupyter!.notebook!.dirty), "opening the notebook marked it modified")
        .toBe(false);
      expect.soft(await page.locator("#kernel_indicator_icon").getAttribute("class")).toBe("kernel_idle_icon");

      // Every idle status the page acts on, with how many cells were still running a moment later
      // (execute replies come on another socket than the status, so not at the same instant).
      await page.evaluate(() => {
        window.runningCellsAfterIdle = [];
        window.Jupyter!.notebook!.events.on("kernel_idle.Kernel", () => {
          setTimeout(
            () => window.runningCellsAfterIdle!.push(document.querySelectorAll(".code_cell.running").length),
            250,
          );
        });
      });
      // Cell → Run All, by the menu.
      await page.click("#celllink");
      await page.click("#run_all_cells > a");
      const samples: IndicatorSample[] = [];
      const started = Date.now();
      for (;;) {
        const sample = await page.evaluate(() => ({
          icon: document.querySelector("#kernel_indicator_icon")?.getAttribute("class") ?? "",
          runningCells: document.querySelectorAll(".code_cell.running").length,
          pending: window.Jupyter!.notebook!.get_cells().filter((c) => c.cell_type === "code" && !c.input_prompt_number)
            .length,
        }));
        samples.push({ atMs: Date.now() - started, icon: sample.icon, runningCells: sample.runningCells });
        if (sample.runningCells === 0 && sample.pending === 0 && samples.length > 3) break;
        if (Date.now() - started > 420_000)
          throw new Error(`Run All did not finish in 420 s; last sample ${JSON.stringify(sample)}`);
        await page.waitForTimeout(100);
      }
      await page.waitForTimeout(1500);

      // Busy indicator: never idle while cells are still queued behind the one finishing (a
      // cell's execute_reply and the idle status travel on different sockets, so with exactly one
      // cell left their order can vary).
      // (Samples before the first "busy" arrives are the click's own few milliseconds.)
      const firstBusy = samples.findIndex((s) => s.icon === "kernel_busy_icon");
      const idleWhileQueued = samples
        .slice(Math.max(0, firstBusy))
        .filter((s) => s.icon === "kernel_idle_icon" && s.runningCells > 1);
      console.log(
        `Run All: ${samples.length} samples over ${samples.at(-1)!.atMs} ms; ` +
          samples
            .filter(
              (s, i) => i === 0 || s.icon !== samples[i - 1].icon || s.runningCells !== samples[i - 1].runningCells,
            )
            .map((s) => `${s.atMs}ms ${s.icon.replace("kernel_", "").replace("_icon", "")} ${s.runningCells}`)
            .join(", "),
      );
      expect.soft(samples.some((s) => s.icon === "kernel_busy_icon")).toBe(true);
      expect
        .soft(idleWhileQueued, `${idleWhileQueued.length} of ${samples.length} samples idle with cells queued`)
        .toEqual([]);
      // The same, event by event (sampling can miss a short idle): before the fix tslab sent one
      // idle per cell, the first while all the others were still queued.
      const runningAfterIdle = await page.evaluate(() => window.runningCellsAfterIdle ?? []);
      expect.soft(runningAfterIdle.length, "idle events during Run All").toBeGreaterThan(0);
      expect
        .soft(
          runningAfterIdle.filter((n) => n > 0),
          `cells still running 250 ms after each idle event: ${runningAfterIdle.join(", ")}`,
        )
        .toEqual([]);
      expect.soft(await page.locator("#kernel_indicator_icon").getAttribute("class")).toBe("kernel_idle_icon");

      const view = await page.evaluate(() => {
        const cells = Array.from(document.querySelectorAll(".cell.code_cell"));
        return {
          codeCells: cells.length,
          errors: document.querySelectorAll(".output_error").length,
          scrollBoxes: document.querySelectorAll(".output_scroll").length,
          titles: Array.from(document.querySelectorAll(".js-plotly-plot .gtitle")).map((t) => t.textContent ?? ""),
          charts: Array.from(document.querySelectorAll(".js-plotly-plot")).map((el) => ({
            svg: el.querySelector(".main-svg") !== null,
            bars: el.querySelectorAll(".barlayer path").length,
            heightPx: Math.round(el.getBoundingClientRect().height),
          })),
          tables: document.querySelectorAll("table.melanoma-lab-table").length,
          clippedEditors: Array.from(document.querySelectorAll(".CodeMirror-scroll"))
            .filter((s) => s.scrollWidth > s.clientWidth + 1)
            .map((s) => (s.closest(".cell")?.querySelector(".CodeMirror-code")?.textContent ?? "").slice(0, 80)),
        };
      });
      // Classic Notebook scrolls inside #site; let the page grow so the screenshot shows every cell.
      await page.evaluate(() => {
        const site = document.querySelector("#site");
        if (site) Object.assign(site.style, { height: "auto", overflow: "visible" });
      });
      fs.mkdirSync(path.join(root, "out", "screenshots"), { recursive: true });
      await page.screenshot({ path: path.join(root, "out", "screenshots", "notebook-ui-01-data.png"), fullPage: true });
      expect.soft(view.errors, "error outputs").toBe(0);
      expect.soft(view.scrollBoxes, "outputs in a scroll box").toBe(0);
      expect.soft(view.titles.length).toBeGreaterThanOrEqual(5);
      expect.soft(view.titles.filter((t) => /label and label/.test(t))).toEqual([]);
      expect.soft(view.charts.length).toBeGreaterThanOrEqual(5);
      for (const chart of view.charts) {
        expect.soft(chart.svg).toBe(true);
        expect.soft(chart.bars).toBeGreaterThan(0);
        expect.soft(chart.heightPx).toBeLessThanOrEqual(500);
      }
      expect.soft(view.tables).toBeGreaterThanOrEqual(6);
      expect.soft(view.clippedEditors, "code cells with a horizontal scrollbar").toEqual([]);
      expect.soft(pageErrors).toEqual([]);
    } finally {
      await browser.close();
      await server.stop();
    }
  }, 600_000);
});
