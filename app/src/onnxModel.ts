/**
 * The phone app's ONNX Runtime web path: opens the bundled model.onnx (written by
 * exportTriageModelOnnx beside the tfjs files) on ORT's plain wasm build and wraps it as a
 * PhotoModel. ORT's JavaScript is loaded only when this is called, and its wasm files come from
 * the build's `ort/` folder (app/buildApp.ts copies them), never from a CDN.
 */
import type { TriageModelMetadata } from "../../lib/export/triageModel.js";
import type { PhotoModel } from "./classify.js";

/**
 * Opens `onnxUrl` in ONNX Runtime web (wasm execution provider, graph optimisations "all") with
 * `threads` wasm threads; inputs are fed under metadata.onnx.inputNames in member order as NHWC
 * float32 batches, and metadata.onnx.outputName is read as P(malignant) per view.
 *
 * @example const model = await loadOnnxPhotoModel(metadata, "./model/model.onnx", "./ort/", 1);
 */
export async function loadOnnxPhotoModel(
  metadata: TriageModelMetadata,
  onnxUrl: string,
  wasmDirUrl: string,
  threads: number,
): Promise<PhotoModel> {
  const onnx = metadata.onnx;
  if (!onnx) throw new Error("metadata.json has no onnx entry (exportTriageModelOnnx writes it beside model.onnx)");
  const members = metadata.ensembleMembers?.length || 1;
  if (onnx.inputNames.length !== members) {
    throw new Error(
      `metadata onnx.inputNames lists ${onnx.inputNames.length} inputs; expected ${members}, one per backbone`,
    );
  }
  const ort = await import("onnxruntime-web/wasm");
  ort.env.wasm.wasmPaths = wasmDirUrl;
  ort.env.wasm.numThreads = threads;
  // The page's thread is free while ORT runs (await), so no proxy worker is needed.
  ort.env.wasm.proxy = false;
  const response = await fetch(onnxUrl);
  if (!response.ok) throw new Error(`${onnxUrl}: HTTP ${response.status}; expected the bundled model.onnx`);
  const session = await ort.InferenceSession.create(new Uint8Array(await response.arrayBuffer()), {
    executionProviders: ["wasm"],
    graphOptimizationLevel: "all",
  });
  return {
    runtime: "onnx",
    async run(inputs, views) {
      const feeds: Record<string, InstanceType<typeof ort.Tensor>> = {};
      inputs.forEach(({ values, sizePx }, m) => {
        feeds[onnx.inputNames[m]] = new ort.Tensor("float32", values, [views, sizePx, sizePx, 3]);
      });
      try {
        const results = await session.run(feeds);
        try {
          const output = results[onnx.outputName];
          if (!output) throw new Error(`model.onnx has no output ${onnx.outputName} (metadata onnx.outputName)`);
          // A copy: the output's buffer belongs to ORT and is freed with the tensor.
          return Float32Array.from(output.data as Float32Array);
        } finally {
          Object.values(results).forEach((t) => t.dispose());
        }
      } finally {
        Object.values(feeds).forEach((t) => t.dispose());
      }
    },
    release: () => session.release(),
  };
}
