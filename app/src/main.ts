// The phone app's page: loads the bundled model, picks a tfjs backend (webgl, else wasm, or the
// one named by ?backend=), and triages a photo from the camera or a file, all on the device.
import * as tf from "@tensorflow/tfjs";
import { setWasmPaths } from "@tensorflow/tfjs-backend-wasm";
import type { TriageModelMetadata } from "../../lib/export/triageModel.js";
import { decodePhoto, scorePhoto } from "./classify.js";
import { decideAppTriage } from "./triageLevel.js";

const $ = (id: string) => document.getElementById(id)!;
const resultEl = $("result");

// The wasm binaries are copied next to the page by the build, never fetched from a CDN.
setWasmPaths({
  "tfjs-backend-wasm.wasm": new URL("./wasm/tfjs-backend-wasm.wasm", document.baseURI).href,
  "tfjs-backend-wasm-simd.wasm": new URL("./wasm/tfjs-backend-wasm-simd.wasm", document.baseURI).href,
  "tfjs-backend-wasm-threaded-simd.wasm": new URL("./wasm/tfjs-backend-wasm-threaded-simd.wasm", document.baseURI).href,
});

async function chooseBackend(): Promise<{ name: string; note: string }> {
  const requested = new URLSearchParams(location.search).get("backend");
  const order = requested ? [requested] : ["webgl", "wasm", "cpu"];
  const skipped: string[] = [];
  for (const name of order) {
    try {
      if ((await tf.setBackend(name)) && tf.getBackend() === name) {
        await tf.ready();
        let note = "";
        if (name === "webgl") {
          const gl =
            document.createElement("canvas").getContext("webgl2") ??
            document.createElement("canvas").getContext("webgl");
          const info = gl?.getExtension("WEBGL_debug_renderer_info");
          note = info && gl ? ` (${gl.getParameter(info.UNMASKED_RENDERER_WEBGL)})` : "";
        }
        return { name, note: note + (skipped.length ? `; skipped ${skipped.join(", ")}` : "") };
      }
      skipped.push(`${name}: did not initialise`);
    } catch (err) {
      skipped.push(`${name}: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  throw new Error(`no tfjs backend initialised (${skipped.join("; ")})`);
}

function formatPercent(p: number): string {
  return `${(p * 100).toFixed(1)}%`;
}

async function start(): Promise<void> {
  if ("serviceWorker" in navigator) {
    navigator.serviceWorker
      .register("./sw.js")
      .catch((err) => ($("offline").textContent = `offline copy unavailable: ${err}`));
    navigator.serviceWorker.ready.then(
      () => ($("offline").textContent = "Works offline: the app and the model are stored on this device."),
    );
  }
  const backend = await chooseBackend();
  $("backend").textContent = `tfjs backend: ${backend.name}${backend.note}`;
  document.body.dataset.backend = backend.name;
  const metadata = (await (await fetch("./model/metadata.json")).json()) as TriageModelMetadata;
  const model = await tf.loadLayersModel("./model/model.json");
  $("model").textContent =
    `model: ${metadata.backboneName}, input ${metadata.inputSizePx} px (${metadata.resizePolicy}), exported ${metadata.createdAt}`;
  resultEl.textContent = "Ready. Take or choose a photo of the skin spot.";
  resultEl.dataset.state = "ready";

  const photo = $("photo") as HTMLInputElement;
  photo.addEventListener("change", async () => {
    const file = photo.files?.[0];
    if (!file) return;
    resultEl.dataset.state = "working";
    resultEl.textContent = "Analysing on this device…";
    const preview = $("preview") as HTMLImageElement;
    preview.src = URL.createObjectURL(file);
    preview.style.display = "block";
    try {
      const score = await scorePhoto(model, metadata, await decodePhoto(file));
      const decision = decideAppTriage(metadata, score);
      resultEl.dataset.level = decision.level;
      resultEl.dataset.probability = String(decision.probability);
      resultEl.dataset.inferenceMs = score.inferenceMs.toFixed(1);
      resultEl.innerHTML = "";
      const level = document.createElement("div");
      level.className = "level";
      level.textContent = decision.level;
      const sentence = document.createElement("p");
      sentence.textContent = decision.sentence;
      const numbers = document.createElement("p");
      numbers.className = "small";
      const interval = decision.interval
        ? `${decision.intervalKind}: ${formatPercent(decision.interval[0])}–${formatPercent(decision.interval[1])}; `
        : "";
      const point = decision.operatingPoint;
      numbers.textContent =
        `P(malignant) ${formatPercent(decision.probability)}; ${interval}` +
        `${point.level} from ${formatPercent(point.thresholdProb)}` +
        (point.validationSensitivity !== null
          ? ` (validation sensitivity ${formatPercent(point.validationSensitivity)})`
          : "") +
        "." +
        (decision.escalationReason ? ` Moved up: ${decision.escalationReason}.` : "");
      resultEl.append(level, sentence, numbers);
      resultEl.dataset.state = "done";
    } catch (err) {
      resultEl.dataset.state = "error";
      resultEl.textContent = `Could not read this photo: ${err instanceof Error ? err.message : String(err)}`;
    }
  });

  // For the benchmark (bench/app.ts): ms per image of the model alone on this backend.
  (window as any).melanomaApp = {
    backend: backend.name,
    async timeInference(runs: number): Promise<number> {
      const size = metadata.inputSizePx;
      const data = new Uint8ClampedArray(size * size * 4).map((_, i) => (i * 37) % 256);
      const image = { width: size, height: size, channels: 4 as const, data };
      await scorePhoto(model, metadata, image, { views: 1 });
      let total = 0;
      for (let i = 0; i < runs; i++) total += (await scorePhoto(model, metadata, image, { views: 1 })).inferenceMs;
      return total / runs;
    },
  };
}

start().catch((err) => {
  resultEl.dataset.state = "error";
  resultEl.textContent = `The app could not start: ${err instanceof Error ? err.message : String(err)}`;
});
