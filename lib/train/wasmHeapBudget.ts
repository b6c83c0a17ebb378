import * as tf from "@tensorflow/tfjs";
import type { Backbone } from "../models/types.js";
import { FineTuneError, type FineTuneCut } from "./fineTuneCut.js";

/** The wasm backend's heap cannot grow past 4 GiB (32-bit addresses); keep a tenth for everything else. */
const WASM_HEAP_BUDGET_BYTES = 0.9 * 4 * 1024 ** 3;
/**
 * Peak heap growth of one training step per float of the top layers' outputs: the forward
 * activations kept for the backward pass, their gradients and the kernels' scratch. Measured on
 * wasm (heap high-water mark, 2026-11): 4.0–5.9 across MobileNetV2 2/6 blocks and MobileNet v1
 * α1.0 6/13 blocks at batch 2–16; 5 × 4 bytes errs on the safe side of most of them.
 */
const STEP_BYTES_PER_TOP_OUTPUT_FLOAT = 5 * 4;

/**
 * Refuses a fine-tuning step that cannot fit the wasm heap before it starts: past 4 GiB wasm fails
 * with "memory access out of bounds" and its heap stays unusable until the process restarts.
 */
export function assertFitsWasmHeap(
  backbone: Backbone,
  cut: FineTuneCut,
  unfreezeBlocks: number,
  batchSize: number,
): void {
  let outputFloatsPerImage = 0;
  for (const name of cut.topLayerNames) {
    const shape = backbone.model.getLayer(name).outputShape as (number | null)[];
    outputFloatsPerImage += shape.slice(1).reduce<number>((a, d) => a * (d ?? 1), 1);
  }
  const perImageBytes = outputFloatsPerImage * STEP_BYTES_PER_TOP_OUTPUT_FLOAT;
  const availableBytes = WASM_HEAP_BUDGET_BYTES - tf.memory().numBytes;
  if (batchSize * perImageBytes <= availableBytes) return;
  const largestBatch = Math.floor(availableBytes / perImageBytes);
  const gib = (bytes: number) => (bytes / 1024 ** 3).toFixed(1);
  throw new FineTuneError(
    `batchSize ${batchSize} with unfreezeBlocks ${unfreezeBlocks} of ${backbone.name}: a training step needs about ` +
      `${gib(batchSize * perImageBytes)} GiB of wasm memory, more than the ${gib(availableBytes)} GiB left under the wasm backend's 4 GiB limit; ` +
      (largestBatch >= 1 ? `expected batchSize ≤ ${largestBatch}, or fewer blocks` : "expected fewer blocks") +
      " (tfjs-node has no such limit)",
  );
}
