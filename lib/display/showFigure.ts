import path from "node:path";
import { createRequire } from "node:module";
import { MelanomaLabError } from "../util/errors.js";
import { findProjectRoot } from "../util/paths.js";
import type { PlotlyFigure } from "./plotlyFigure.js";
import { buildFigureHtml, describeFigureTitle } from "./plotlyHtml.js";

/** Thrown when {@link showFigure} runs outside a Jupyter kernel (tslab's display channel is not ready). */
export class NotebookDisplayUnavailableError extends MelanomaLabError {}

/** A Jupyter mime bundle: mime type → content. */
export type MimeBundle = Record<string, unknown>;

/** The message content tslab's kernel sends as `display_data`. */
export interface DisplayDataContent {
  data: MimeBundle;
  metadata: Record<string, unknown>;
  transient: Record<string, unknown>;
}

type WriteDisplayData = (content: DisplayDataContent, update: boolean) => void;

// Kept on globalThis so a re-evaluated lib/ module (tslab recompiles on change) still knows
// plotly.js has already been sent to this notebook's kernel session. The kernel launcher
// (jupyter/kernels/tslab-melanoma/launch.cjs) clears it when it resets the kernel for the next
// notebook of a batch, since that notebook is a new page.
const PLOTLY_SENT_KEY = Symbol.for("melanoma-lab.plotlyJsSentToNotebook");

function getGlobalFlag(): boolean {
  return (globalThis as Record<symbol, unknown>)[PLOTLY_SENT_KEY] === true;
}

/**
 * Forgets that plotly.js was sent, so the next {@link showFigure} inlines it again (e.g. after
 * clearing all outputs without restarting the kernel).
 *
 * @example resetPlotlyJsSent(); showFigure(fig); // this output carries plotly.js again
 */
export function resetPlotlyJsSent(): void {
  (globalThis as Record<symbol, unknown>)[PLOTLY_SENT_KEY] = false;
}

/**
 * The mime bundle for one figure: `application/vnd.plotly.v1+json` (JupyterLab with the plotly
 * renderer, VS Code), `text/html` (classic Notebook, nbconvert HTML, any frontend without a
 * plotly renderer; inlines plotly.js when `includePlotlyJs`) and `text/plain`.
 *
 * @example const bundle = buildFigureMimeBundle(fig, { includePlotlyJs: false });
 */
export function buildFigureMimeBundle(fig: PlotlyFigure, options: { includePlotlyJs: boolean }): MimeBundle {
  return {
    "application/vnd.plotly.v1+json": { data: fig.data, layout: fig.layout, config: { displaylogo: false } },
    "text/html": buildFigureHtml(fig, { includePlotlyJs: options.includePlotlyJs }),
    "text/plain": `Plotly figure: ${describeFigureTitle(fig)} (${fig.data.length} traces)`,
  };
}

/**
 * tslab's process-wide `display_data` writer. tslab's public `display.raw(type, data)` sends
 * one mime type per output; its internal `jupyter.lastWriteDisplayData` (what `display.raw`
 * calls) takes a whole bundle, so one output can carry several mime types. Null outside a kernel.
 */
function getTslabDisplayWriter(): WriteDisplayData | null {
  try {
    const requireFromRoot = createRequire(path.join(findProjectRoot(), "package.json"));
    const jupyter = requireFromRoot("tslab/dist/jupyter.js") as { lastWriteDisplayData?: WriteDisplayData | null };
    return jupyter.lastWriteDisplayData ?? null;
  } catch {
    return null;
  }
}

/**
 * Shows a Plotly figure in a tslab notebook as one output holding both the plotly mime type
 * and HTML, so it renders in classic Notebook, JupyterLab, VS Code and nbconvert's HTML export
 * (offline). plotly.js (~4.8 MB) is inlined in the first chart of the kernel session only; later
 * charts reuse `window.Plotly`. Classic Notebook runs output scripts only in trusted notebooks.
 * Returns nothing (so the notebook does not echo the bundle). Outside a kernel throws {@link NotebookDisplayUnavailableError}.
 *
 * @example import { buildRocFigure, showFigure } from "../lib/index.js";
 * showFigure(buildRocFigure(labels, probs));
 */
export function showFigure(fig: PlotlyFigure): void {
  const write = getTslabDisplayWriter();
  if (!write) {
    throw new NotebookDisplayUnavailableError(
      "showFigure: no Jupyter kernel is running this code (tslab's display channel is not ready); " +
        "expected a tslab notebook cell. In scripts use writeHtmlReport(...) or buildFigureHtml(...).",
    );
  }
  const includePlotlyJs = !getGlobalFlag();
  const bundle = buildFigureMimeBundle(fig, { includePlotlyJs });
  write({ data: bundle, metadata: {}, transient: {} }, false);
  if (includePlotlyJs) (globalThis as Record<symbol, unknown>)[PLOTLY_SENT_KEY] = true;
}

/**
 * Shows an HTML snippet (e.g. {@link buildErrorGalleryHtml}) with a plain-text fallback, in one output.
 *
 * @example showHtml(buildErrorGalleryHtml(items, { thresholdProb: 0.3 }), "error gallery");
 */
export function showHtml(html: string, plainText = "HTML output"): void {
  const write = getTslabDisplayWriter();
  if (!write) {
    throw new NotebookDisplayUnavailableError(
      "showHtml: no Jupyter kernel is running this code; expected a tslab notebook cell",
    );
  }
  const bundle = { "text/html": html, "text/plain": plainText };
  write({ data: bundle, metadata: {}, transient: {} }, false);
}

/**
 * Displays a PNG image in the current tslab notebook cell (`image/png` output, which classic
 * Notebook, JupyterLab, VS Code and nbconvert's HTML all render).
 *
 * @example showPng((await makeContactSheet(records)).png)
 */
export function showPng(png: Uint8Array, plainText = "PNG image"): void {
  const write = getTslabDisplayWriter();
  if (!write) {
    throw new NotebookDisplayUnavailableError(
      "showPng: no Jupyter kernel is running this code; expected a tslab notebook cell",
    );
  }
  if (!(png.length > 8 && png[0] === 0x89 && png[1] === 0x50 && png[2] === 0x4e && png[3] === 0x47)) {
    throw new NotebookDisplayUnavailableError(
      `showPng: received ${png.length} bytes that do not start with the PNG signature; expected PNG-encoded bytes`,
    );
  }
  const bundle = {
    "image/png": Buffer.from(png.buffer, png.byteOffset, png.length).toString("base64"),
    "text/plain": plainText,
  };
  write({ data: bundle, metadata: {}, transient: {} }, false);
}
