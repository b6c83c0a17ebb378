// The phone app's page: loads the bundled model, picks a tfjs backend (webgl, else wasm, or the
// one named by ?backend=) and the runtime (tfjs, or ONNX Runtime web when model.onnx is bundled and
// measures faster; ?runtime= forces one), and triages a photo from the camera or a file, all on the device.
import * as tf from "@tensorflow/tfjs";
import { setWasmPaths } from "@tensorflow/tfjs-backend-wasm";
import type { TriageModelMetadata } from "../../lib/export/triageModel.js";
import {
  chooseOrtThreadCount,
  chooseRuntime,
  needsRuntimeTiming,
  parseRuntimeRequest,
  type RuntimeEvidence,
} from "./chooseRuntime.js";
import { decodePhoto, scorePhoto, wrapTfjsModel, type PhotoModel } from "./classify.js";
import { loadOnnxPhotoModel } from "./onnxModel.js";
import { decideAppTriage } from "./triageLevel.js";

const $ = (id: string) => document.getElementById(id)!;
const resultEl = $("result");

// The page is cross-origin isolated (servePhoneApp's COOP/COEP, for ONNX Runtime web's threads),
// which would switch tfjs wasm to its threaded binary, whose inlined worker script fails once Vite
// has bundled it ("e is not defined"): tfjs wasm stays on one thread, as it was before isolation.
tf.env().set("WASM_HAS_MULTITHREAD_SUPPORT", false);
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
        let note = name === "wasm" ? " (1 thread)" : "";
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

/** A square RGBA test pattern of the model's input size (no resize needed), for timing only. */
function makeSyntheticPhoto(size: number) {
  const data = new Uint8ClampedArray(size * size * 4).map((_, i) => (i * 37) % 256);
  return { width: size, height: size, channels: 4 as const, data };
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
  const params = new URLSearchParams(location.search);
  const requested = parseRuntimeRequest(location.search);
  const metadata = (await (await fetch("./model/metadata.json")).json()) as TriageModelMetadata;
  $("model").textContent =
    `model: ${metadata.backboneName}, input ${metadata.inputSizePx} px (${metadata.resizePolicy}), exported ${metadata.createdAt}`;

  let tfjsModel: PhotoModel | null = null;
  let tfjsBackend = "not loaded (?runtime=onnx)";
  if (requested !== "onnx") {
    const backend = await chooseBackend();
    tfjsBackend = backend.name;
    $("backend").textContent = `tfjs backend: ${backend.name}${backend.note}`;
    document.body.dataset.backend = backend.name;
    tfjsModel = wrapTfjsModel(await tf.loadLayersModel("./model/model.json"));
  } else {
    $("backend").textContent = `tfjs backend: ${tfjsBackend}`;
  }

  let onnxModel: PhotoModel | null = null;
  let onnx: RuntimeEvidence["onnx"] = { available: false, reason: "forced by ?runtime=tfjs" };
  if (requested !== "tfjs") {
    if (!metadata.onnx) {
      onnx = { available: false, reason: "the model folder has no model.onnx (metadata.json has no onnx entry)" };
    } else {
      const threads = chooseOrtThreadCount({
        crossOriginIsolated: globalThis.crossOriginIsolated === true,
        hardwareConcurrency: navigator.hardwareConcurrency,
        requested: params.get("ortThreads"),
      });
      try {
        onnxModel = await loadOnnxPhotoModel(
          metadata,
          new URL(`./model/${metadata.onnx.file}`, document.baseURI).href,
          new URL("./ort/", document.baseURI).href,
          threads.threads,
        );
        onnx = { available: true, threads: threads.threads };
        document.body.dataset.ortThreads = String(threads.threads);
        $("ort").textContent = `ONNX Runtime web: wasm, ${threads.note}`;
      } catch (err) {
        onnx = {
          available: false,
          reason: `ONNX Runtime web could not open model.onnx: ${err instanceof Error ? err.message : String(err)}`,
        };
      }
    }
  }

  // auto with both: one warm 8-view call of each on the same synthetic photo, the faster is kept.
  let timingsMs: RuntimeEvidence["timingsMs"];
  if (needsRuntimeTiming(requested, onnx.available) && onnxModel && tfjsModel) {
    const image = makeSyntheticPhoto(metadata.inputSizePx);
    const timeWarm = async (model: PhotoModel) => {
      await scorePhoto(model, metadata, image);
      return (await scorePhoto(model, metadata, image)).inferenceMs;
    };
    timingsMs = { onnx: await timeWarm(onnxModel), tfjs: await timeWarm(tfjsModel) };
  }
  const choice = chooseRuntime({ requested, onnx, tfjsBackend, timingsMs });
  const model = choice.runtime === "onnx" ? onnxModel! : tfjsModel!;
  const unused = choice.runtime === "onnx" ? tfjsModel : onnxModel;
  await unused?.release();
  $("runtime").textContent = `runtime: ${choice.reason}`;
  document.body.dataset.runtime = choice.runtime;
  document.body.dataset.runtimeReason = choice.reason;
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
      // Raw model outputs per view (before any calibration), to compare the two runtimes.
      resultEl.dataset.viewProbabilities = JSON.stringify(score.viewProbabilities);
      resultEl.dataset.runtime = model.runtime;
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
    backend: tfjsBackend,
    runtime: choice.runtime,
    async timeInference(runs: number): Promise<number> {
      const image = makeSyntheticPhoto(metadata.inputSizePx);
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
