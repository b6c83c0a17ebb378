import * as tf from "@tensorflow/tfjs";
import { registerWasmGradientKernels } from "../backend/wasmGradKernels.js";
import type { ResizePolicy } from "../data/decodeImage.js";
import { createDihedralViewTransform, TTA_DIHEDRAL_VIEWS } from "../data/augment.js";
import type { InputProblem, LesionRecord } from "../data/types.js";
import { extractFeatures, type FeatureMatrix } from "../models/features.js";
import { releaseInferencePlan } from "../models/inferencePlan.js";
import type { Backbone } from "../models/types.js";
import { MelanomaLabError } from "../util/errors.js";
import { createRandom, shuffleWithSeed } from "../util/random.js";
import { BestEpochWeights, computeValuesChecksum, readCheckpoint, writeCheckpoint, type FineTuneCheckpointFingerprint } from "./checkpoints.js";
import { scoreBinaryPredictions } from "./scoreBinaryPredictions.js";
import { binaryCrossEntropy, toBinaryLabels, toKerasLogs, type EpochMetrics, type TrainingCallback } from "./trainHead.js";

/** Thrown when fine-tuning input does not fit together (block count, head shape, records, options). */
export class FineTuneError extends MelanomaLabError {}

/** Options of {@link fineTuneTopBlocks}. */
export interface FineTuneOptions {
  /** Number of top backbone blocks to train (MobileNetV2: 1 = block_16, 2 = block_15 + block_16, …). */
  unfreezeBlocks: number;
  epochs: number;
  /** Adam learning rate; use about 1/10 of the head's (Keras's two-stage recipe), e.g. 1e-4. */
  learningRate: number;
  batchSize: number;
  /** Seed of batch order, dropout masks and augmentation views. */
  seed: number;
  /** Folder of the on-disk activation cache (same layout as the feature cache); omitted = memory only. */
  cacheDir?: string;
  /**
   * Train on the 8 dihedral views (flips × quarter turns) of each training image, one drawn per
   * image per epoch. Their activations are computed and cached up front (8× the bottom passes).
   */
  augment?: boolean;
  /** Loss weight of [benign, malignant], or "balanced" (n / (2·n_class)). Default [1, 1]. */
  classWeights?: [number, number] | "balanced";
  /** How image files are made square (default "center-crop"); part of the cache key. */
  resizePolicy?: ResizePolicy;
  /** Images per forward pass of the frozen bottom when filling the cache (default 16). */
  cacheBatchSize?: number;
  /**
   * Folder for per-epoch checkpoints, as trainHead's: `epoch-0001/` … (top blocks + head weights,
   * Adam moments and step count, epoch history, fingerprint) and `latest.json`, written after
   * each epoch's metrics and before the callbacks run. Omitted = no checkpoints.
   */
  checkpointDir?: string;
  /**
   * With checkpointDir: continue after its latest checkpoint (same backbone cut, data, starting
   * head and options required, else CheckpointError naming what differs), giving the result of
   * an uninterrupted run. Default false (start afresh).
   */
  resume?: boolean;
  /**
   * tf.Callback-like objects (e.g. createTensorBoardCallback(...)), awaited at each event, as in
   * trainHead: 0-based epochs, Keras log names (loss, accuracy, auc, learning_rate, val_*). A
   * resumed run calls onEpochBegin/onEpochEnd only for the epochs it trains.
   */
  callbacks?: readonly TrainingCallback[];
  /** Called after each epoch (metrics as in trainHead; valAuc etc. when validation is non-empty). */
  onEpochEnd?: (metrics: EpochMetrics) => void | Promise<void>;
  /**
   * With validation records: keep the weights of the epoch with the best validation AUC (as
   * trainHead's option), so the result compares fairly with a head whose best epoch was kept.
   * A resumed run finds the best epoch in its checkpoints (each epoch's folder must still be
   * there). Default false: the last epoch's weights.
   */
  restoreBestWeights?: boolean;
  /** Progress of the activation cache: images done and total, per split. */
  onCacheProgress?: (split: "train" | "validation", done: number, total: number) => void;
}

/** What {@link fineTuneTopBlocks} returns. */
export interface FineTuneResult {
  /**
   * Cached activation [n, h, w, c] of `cutLayerName` → probability of malignant [n, 1]: the
   * fine-tuned top blocks, the backbone's pooling and the fine-tuned head (its own weights; the
   * backbone is not modified). Build the image → probability model with {@link buildFineTunedTriageModel}.
   */
  head: tf.LayersModel;
  /** One entry per epoch 1…epochs (a resumed run's first entries come from the checkpoint). */
  history: EpochMetrics[];
  /** Training images per second over this call's optimisation steps (forward + backward + update); NaN when it ran none. */
  imagesPerSecond: number;
  /** Epoch whose weights `head` holds: the last, or the best by valAuc with restoreBestWeights. */
  keptEpoch: number;
  /** Wall time of each optimisation step this call ran, in order, milliseconds (the first includes warm-up). */
  stepDurationsMs: number[];
  /** Epoch a resumed run continued after (0 when it started afresh). */
  resumedFromEpoch: number;
  /** Layers whose weights were trained (backbone top layers, then head layers). */
  trainableLayerNames: string[];
  /** Backbone layer whose output is cached and fed to `head`. */
  cutLayerName: string;
  /** Shape of one cached activation, e.g. [7, 7, 160]. */
  activationShape: number[];
  /** Records whose image could not be read (dropped from training/validation). */
  problems: InputProblem[];
  /** Activations read from the cache instead of computed. */
  cacheHits: number;
  /** Milliseconds spent filling (or reading) the activation cache. */
  cacheMs: number;
}

/** Where a backbone is cut for fine-tuning its top blocks. */
export interface FineTuneCut {
  /** Layer whose output feeds the first unfrozen block. */
  cutLayerName: string;
  /** Block prefixes that are unfrozen, lowest first, e.g. ["block_15", "block_16"]. */
  blockNames: string[];
  /** Every backbone layer after the cut (the unfrozen blocks, then the final conv/pooling layers). */
  topLayerNames: string[];
  /** Shape of one activation at the cut, without the batch axis. */
  activationShape: number[];
}

type InboundRef = [string, number, number, Record<string, unknown>];
interface LayerJson {
  name: string;
  class_name: string;
  config: Record<string, unknown>;
  inbound_nodes: InboundRef[][];
}
interface ModelJson {
  class_name: string;
  config: { name: string; layers: LayerJson[]; input_layers: [string, number, number][]; output_layers: [string, number, number][] };
  keras_version?: string;
  backend?: string;
}

function modelJsonOf(model: tf.LayersModel): ModelJson {
  return JSON.parse(JSON.stringify(model.toJSON(undefined, false))) as ModelJson;
}

function inboundNamesOf(layer: LayerJson): string[] {
  return layer.inbound_nodes.flatMap((node) => node.map((ref) => ref[0]));
}

// MobileNetV2 "block_16_expand", MobileNet v1 "conv_dw_13" / "conv_pw_13_relu" / "conv_pad_12".
const BLOCK_PATTERN = /^((?:block|conv_dw|conv_pw|conv_pad)_(\d+))(?:_|$)/;

/**
 * Finds where to cut `backbone` so its top `unfreezeBlocks` numbered blocks (and the layers after
 * them, up to the pooled features) can be trained on cached activations of the layers below.
 * Supports MobileNetV2 (`block_N_…`) and MobileNet v1 (`conv_dw_N`/`conv_pw_N`) naming; throws
 * {@link FineTuneError} otherwise, or when the block count is out of range.
 *
 * @example findFineTuneCut(mobilenetV2, 2) // { cutLayerName: "block_14_add", blockNames: ["block_15", "block_16"], activationShape: [7, 7, 160], … }
 */
export function findFineTuneCut(backbone: Backbone, unfreezeBlocks: number): FineTuneCut {
  const layers = backbone.model.layers;
  const blockNumbers: number[] = [];
  const firstLayerOfBlock = new Map<number, number>();
  layers.forEach((layer, index) => {
    const match = BLOCK_PATTERN.exec(layer.name);
    if (!match) return;
    const n = Number(match[2]);
    if (!firstLayerOfBlock.has(n)) {
      firstLayerOfBlock.set(n, index);
      blockNumbers.push(n);
    }
  });
  if (blockNumbers.length === 0) {
    throw new FineTuneError(
      `backbone ${backbone.name}: no numbered blocks found (expected MobileNetV2 layer names block_N_… or MobileNet v1 conv_dw_N/conv_pw_N); fine-tuning supports mobilenet_v2 and mobilenet_v1`,
    );
  }
  blockNumbers.sort((a, b) => a - b);
  if (!(Number.isInteger(unfreezeBlocks) && unfreezeBlocks >= 1 && unfreezeBlocks <= blockNumbers.length)) {
    throw new FineTuneError(`unfreezeBlocks: received ${unfreezeBlocks}, expected a whole number 1–${blockNumbers.length} (${backbone.name} has blocks ${blockNumbers[0]}–${blockNumbers.at(-1)})`);
  }
  const topBlocks = blockNumbers.slice(blockNumbers.length - unfreezeBlocks);
  const firstIndex = firstLayerOfBlock.get(topBlocks[0])!;
  const json = modelJsonOf(backbone.model);
  const firstJson = json.config.layers.find((l) => l.name === layers[firstIndex].name)!;
  const inbound = inboundNamesOf(firstJson);
  if (inbound.length !== 1) {
    throw new FineTuneError(`${backbone.name}: layer ${firstJson.name} has ${inbound.length} inputs, expected 1 to cut the model before it`);
  }
  const cutLayerName = inbound[0];
  const top = collectLayersAfterCut(json, cutLayerName, backbone.name);
  const shape = backbone.model.getLayer(cutLayerName).outputShape as (number | null)[];
  return {
    cutLayerName,
    blockNames: topBlocks.map((n) => BLOCK_PATTERN.exec(layers[firstLayerOfBlock.get(n)!].name)![1].replace(/^conv_(?:dw|pw|pad)_/, "conv_")),
    topLayerNames: top.map((l) => l.name),
    activationShape: shape.slice(1) as number[],
  };
}

/** The layers computed from `cutLayerName`'s output alone, in order; throws when anything else feeds them. */
function collectLayersAfterCut(json: ModelJson, cutLayerName: string, modelName: string): LayerJson[] {
  const inTop = new Set<string>([cutLayerName]);
  const top: LayerJson[] = [];
  for (const layer of json.config.layers) {
    const inbound = inboundNamesOf(layer);
    if (inbound.length === 0) continue;
    const fromTop = inbound.filter((n) => inTop.has(n));
    if (fromTop.length === 0) continue;
    if (fromTop.length !== inbound.length) {
      const outside = inbound.filter((n) => !inTop.has(n));
      throw new FineTuneError(`${modelName}: layer ${layer.name} also reads ${outside.join(", ")} from below the cut at ${cutLayerName}; a cut must be a single tensor`);
    }
    inTop.add(layer.name);
    top.push(layer);
  }
  const outputName = json.config.output_layers[0][0];
  if (!inTop.has(outputName)) throw new FineTuneError(`${modelName}: output layer ${outputName} does not depend on the cut at ${cutLayerName}`);
  return top;
}

function copyWeightsByName(target: tf.LayersModel, sources: readonly tf.LayersModel[]): void {
  for (const layer of target.layers) {
    if (layer.weights.length === 0) continue;
    const source = sources.map((m) => m.layers.find((l) => l.name === layer.name)).find((l) => l !== undefined);
    if (!source) throw new FineTuneError(`layer ${layer.name}: no source model has a layer of that name to copy weights from`);
    const values = source.getWeights();
    const shapes = layer.weights.map((w) => JSON.stringify(w.shape));
    if (values.length !== shapes.length || values.some((v, i) => JSON.stringify(v.shape) !== shapes[i])) {
      throw new FineTuneError(`layer ${layer.name}: source weights ${JSON.stringify(values.map((v) => v.shape))} do not match ${JSON.stringify(layer.weights.map((w) => w.shape))}`);
    }
    // Clones so later optimizer updates of one model never touch the other's buffers.
    tf.tidy(() => layer.setWeights(values.map((v) => v.clone())));
  }
}

/**
 * The trainable top of `backbone` after `cut`, followed by `head`'s layers, as one new model with
 * its own copies of the weights: input = activation at the cut, output = probability.
 */
async function buildTopModel(backbone: Backbone, head: tf.LayersModel, cut: FineTuneCut): Promise<tf.LayersModel> {
  const json = modelJsonOf(backbone.model);
  const top = collectLayersAfterCut(json, cut.cutLayerName, backbone.name);
  if (head.inputs.length !== 1 || head.outputs.length !== 1) {
    throw new FineTuneError(`head: received a model with ${head.inputs.length} inputs and ${head.outputs.length} outputs, expected 1 input taking [${backbone.featureDim}] features and 1 output`);
  }
  const headInputDim = head.inputs[0].shape.at(-1);
  if (headInputDim !== backbone.featureDim) {
    throw new FineTuneError(`head input: received shape ${JSON.stringify(head.inputs[0].shape)}, expected [null, ${backbone.featureDim}] (featureDim of ${backbone.name})`);
  }
  // A Sequential serialises without its InputLayer; its functional twin (same layers) does not.
  const headJson = modelJsonOf(head instanceof tf.Sequential ? tf.model({ inputs: head.inputs, outputs: head.outputs }) : head);
  const headInputs = new Set(headJson.config.layers.filter((l) => l.class_name === "InputLayer").map((l) => l.name));
  const outputName = json.config.output_layers[0][0];
  const topNames = new Set(top.map((l) => l.name).concat(cut.cutLayerName));
  const headLayers = headJson.config.layers.filter((l) => !headInputs.has(l.name));
  for (const l of headLayers) {
    if (topNames.has(l.name)) throw new FineTuneError(`head layer ${l.name}: the backbone ${backbone.name} already has a layer of that name`);
    for (const node of l.inbound_nodes) for (const ref of node) if (headInputs.has(ref[0])) ref[0] = outputName;
  }
  const inputLayer: LayerJson = {
    name: cut.cutLayerName,
    class_name: "InputLayer",
    config: { batch_input_shape: [null, ...cut.activationShape], dtype: "float32", sparse: false, name: cut.cutLayerName },
    inbound_nodes: [],
  };
  const topology: ModelJson = {
    ...json,
    config: {
      name: `${backbone.name}_finetune_top`,
      layers: [inputLayer, ...top, ...headLayers],
      input_layers: [[cut.cutLayerName, 0, 0]],
      output_layers: headJson.config.output_layers,
    },
  };
  const model = await tf.models.modelFromJSON({ modelTopology: topology as unknown as tf.io.ModelJSON["modelTopology"] });
  copyWeightsByName(model, [head, backbone.model]);
  return model;
}

/**
 * One image → probability model from `backbone`'s frozen bottom and a fine-tuned top (the `head`
 * of {@link fineTuneTopBlocks}): the same layer names and topology as `buildTriageModel`, with the
 * top layers' weights taken from the fine-tuned model. Fresh weight copies: disposing the result
 * leaves `backbone` and `fineTuned` intact. {@link exportTriageModel} accepts it.
 *
 * @example
 * const ft = await fineTuneTopBlocks(backbone, head, train, val, { unfreezeBlocks: 1, epochs: 3, learningRate: 1e-4, batchSize: 8, seed: 1 });
 * const triage = await buildFineTunedTriageModel(backbone, ft.head); // [n,224,224,3] → [n,1]
 * await exportTriageModel("models/ft", triage, makeTriageMetadata(backbone, { thresholdProb: 0.3, validationMetrics: {} }));
 */
export async function buildFineTunedTriageModel(backbone: Backbone, fineTuned: tf.LayersModel): Promise<tf.LayersModel> {
  const topJson = modelJsonOf(fineTuned);
  const cutInputs = topJson.config.input_layers;
  if (cutInputs.length !== 1) throw new FineTuneError(`fineTuned: received a model with ${cutInputs.length} inputs, expected 1 (the activation at the cut layer)`);
  const cutLayerName = cutInputs[0][0];
  let cutLayer: tf.layers.Layer;
  try {
    cutLayer = backbone.model.getLayer(cutLayerName);
  } catch {
    throw new FineTuneError(`fineTuned: its input ${cutLayerName} is not a layer of backbone ${backbone.name}; was it fine-tuned from this backbone?`);
  }
  const expected = JSON.stringify(cutLayer.outputShape);
  const received = JSON.stringify(fineTuned.inputs[0].shape);
  if (expected !== received) throw new FineTuneError(`fineTuned input: received shape ${received}, expected ${expected} (output of ${backbone.name}'s ${cutLayerName})`);
  const backboneJson = modelJsonOf(backbone.model);
  const topLayers = topJson.config.layers.filter((l) => l.name !== cutLayerName);
  const topNames = new Set(topLayers.map((l) => l.name));
  const bottom = backboneJson.config.layers.filter((l) => !topNames.has(l.name));
  const topology: ModelJson = {
    ...backboneJson,
    config: {
      name: `triage_${backbone.name}_finetuned`,
      layers: [...bottom, ...topLayers],
      input_layers: backboneJson.config.input_layers,
      output_layers: topJson.config.output_layers,
    },
  };
  const model = await tf.models.modelFromJSON({ modelTopology: topology as unknown as tf.io.ModelJSON["modelTopology"] });
  copyWeightsByName(model, [fineTuned, backbone.model]);
  return model;
}

/**
 * Splits an image → probability triage model (from {@link buildFineTunedTriageModel} or
 * `buildTriageModel`) back into a backbone (image → pooled features, `backbone`'s name, sizes,
 * preprocessing and feature layer, with the triage model's weights) and a head (pooled features →
 * probability, its own weight copies): what Grad-CAM and feature-level tools take, so a fine-tuned
 * model can be explained with its own weights. The returned backbone shares the triage model's
 * weights (dispose the triage model when done with it); dispose the head separately.
 *
 * @example
 * const tuned = await buildFineTunedTriageModel(backbone, ft.head);
 * const parts = await splitTriageModel(tuned, backbone); // computeGradCam(parts.backbone, parts.head, rgb, 224)
 */
export async function splitTriageModel(triage: tf.LayersModel, backbone: Backbone): Promise<{ backbone: Backbone; head: tf.LayersModel }> {
  const pooledName = backbone.model.outputLayers[0].name;
  const json = modelJsonOf(triage);
  if (!json.config.layers.some((l) => l.name === pooledName)) {
    throw new FineTuneError(`triage model ${triage.name}: no layer ${pooledName} (the pooled features of ${backbone.name}); expected a model built from this backbone`);
  }
  const headLayers = collectLayersAfterCut(json, pooledName, triage.name);
  const headTopology: ModelJson = {
    ...json,
    config: {
      name: `${triage.name}_head`,
      // An input layer named like the pooling layer, so the head's first inbound reference stays valid.
      layers: [
        { name: pooledName, class_name: "InputLayer", config: { batch_input_shape: [null, backbone.featureDim], dtype: "float32", sparse: false, name: pooledName }, inbound_nodes: [] },
        ...headLayers,
      ],
      input_layers: [[pooledName, 0, 0]],
      output_layers: json.config.output_layers,
    },
  };
  const head = await tf.models.modelFromJSON({ modelTopology: headTopology as unknown as tf.io.ModelJSON["modelTopology"] });
  copyWeightsByName(head, [triage]);
  const features = tf.model({ inputs: triage.inputs, outputs: triage.getLayer(pooledName).output as tf.SymbolicTensor, name: `${triage.name}_features` });
  return { backbone: { ...backbone, model: features, weightsId: `${backbone.weightsId}+${triage.name}` }, head };
}

interface CachedActivations {
  /** [views][rows × activationSize], view 0 the image as is. */
  views: Float32Array[];
  labels: Int32Array;
  rows: number;
  problems: InputProblem[];
  cacheHits: number;
}

async function cacheActivations(
  bottom: Backbone,
  records: readonly LesionRecord[],
  split: "train" | "validation",
  viewCount: number,
  options: FineTuneOptions,
): Promise<CachedActivations> {
  const size = bottom.featureDim;
  const extractOptions = {
    cacheDir: options.cacheDir,
    batchSize: options.cacheBatchSize ?? 16,
    resizePolicy: options.resizePolicy ?? "center-crop",
  };
  // One pass per view, each view's transform named in the cache key: a cached view is neither
  // decoded nor transformed again. A file that fails fails in every view.
  const perView: FeatureMatrix[] = [];
  for (let v = 0; v < viewCount; v++) {
    perView.push(
      await extractFeatures(bottom, records, {
        ...extractOptions,
        pixelTransform: createDihedralViewTransform(v),
        onProgress: (d, t) => options.onCacheProgress?.(split, v * t + d, viewCount * t),
      }),
    );
  }
  const m = perView[0];
  const labels = toBinaryLabels(m.sourceIndices.map((i) => records[i].label), `${split} labels`);
  return { views: perView.map((p) => p.features), labels, rows: m.rows, problems: m.problems, cacheHits: perView.reduce((a, p) => a + p.cacheHits, 0) };
}

function checksumWeights(model: tf.LayersModel): number {
  let h = 0;
  for (const w of model.weights) h = computeValuesChecksum(w.read().dataSync(), h);
  return h;
}

function predictRows(model: tf.LayersModel, values: Float32Array, rows: number, shape: number[], batchSize: number): Float32Array {
  const size = shape.reduce((a, b) => a * b, 1);
  const out = new Float32Array(rows);
  for (let start = 0; start < rows; start += batchSize) {
    const end = Math.min(rows, start + batchSize);
    const probs = tf.tidy(() => {
      const x = tf.tensor(values.subarray(start * size, end * size), [end - start, ...shape]);
      return (model.predict(x) as tf.Tensor).dataSync();
    });
    out.set(probs, start);
  }
  return out;
}

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
function assertFitsWasmHeap(backbone: Backbone, cut: FineTuneCut, unfreezeBlocks: number, batchSize: number): void {
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

/**
 * Fine-tunes the top `unfreezeBlocks` blocks of a backbone together with an already trained head
 * (Keras's second stage of transfer learning: head first on frozen features, then the top blocks
 * with a lower learning rate). The model is split at the cut ({@link findFineTuneCut}): the frozen
 * bottom runs once per image and its activations are cached (in memory, and on disk under
 * `cacheDir` keyed like the feature cache), so each step runs only the top blocks + head.
 * Every BatchNormalization layer runs in inference mode: moving mean/variance never change
 * (those in unfrozen blocks still train their scale and offset). Adam on class-weighted binary
 * cross-entropy, head dropout by hand with per-step seeds, batches shuffled from `seed`: the same
 * seed gives the same result. Neither `backbone` nor `head` is modified.
 * With `checkpointDir` every epoch is checkpointed; `resume: true` continues after the latest
 * one. Batch order, dropout masks and augmentation views are drawn from seeds of (seed, epoch,
 * batch), so a resumed run trains exactly as an uninterrupted one (on the same backend).
 * On wasm it registers the missing gradient kernels first ({@link registerWasmGradientKernels});
 * the training path itself uses only tfjs ops, so tfjs-node(-gpu) runs it unchanged.
 *
 * @example
 * const ft = await fineTuneTopBlocks(backbone, headModel, trainRecords, valRecords, {
 *   unfreezeBlocks: 2, epochs: 3, learningRate: 1e-4, batchSize: 8, seed: 7, cacheDir: ".cache/activations",
 * });
 * console.log(ft.history.at(-1)?.valAuc, `${ft.imagesPerSecond.toFixed(1)} img/s`);
 */
export async function fineTuneTopBlocks(
  backbone: Backbone,
  head: tf.LayersModel,
  train: readonly LesionRecord[],
  validation: readonly LesionRecord[],
  options: FineTuneOptions,
): Promise<FineTuneResult> {
  const { epochs, batchSize, learningRate, seed } = options;
  if (!(Number.isInteger(epochs) && epochs >= 1)) throw new FineTuneError(`epochs: received ${epochs}, expected a positive integer`);
  if (!(Number.isInteger(batchSize) && batchSize >= 1)) throw new FineTuneError(`batchSize: received ${batchSize}, expected a positive integer`);
  if (!(learningRate > 0 && Number.isFinite(learningRate))) throw new FineTuneError(`learningRate: received ${learningRate}, expected a positive number`);
  if (train.length === 0) throw new FineTuneError("train: received 0 records, expected at least one of each label");
  // wasm lacks conv gradient kernels, and a missing one leaves its heap unusable: supply them
  // before the first gradient (a no-op when already registered; other backends have their own).
  if (tf.getBackend() === "wasm") registerWasmGradientKernels();
  const cut = findFineTuneCut(backbone, options.unfreezeBlocks);
  if (tf.getBackend() === "wasm") assertFitsWasmHeap(backbone, cut, options.unfreezeBlocks, batchSize);
  const activationSize = cut.activationShape.reduce((a, b) => a * b, 1);
  const top = await buildTopModel(backbone, head, cut);
  // The cached-activation "backbone": same weights id and input, features = raw activation at the cut.
  const bottomModel = tf.model({ inputs: backbone.model.inputs, outputs: backbone.model.getLayer(cut.cutLayerName).output as tf.SymbolicTensor });
  const bottom: Backbone = { ...backbone, model: bottomModel, featureLayerName: `${cut.cutLayerName}:activation`, featureDim: activationSize };
  const optimizer = tf.train.adam(learningRate);
  // Weights of the best validation epoch so far (restoreBestWeights); freed in `finally`.
  const best = new BestEpochWeights();
  // Before any update: the starting weights are part of what a checkpoint must match.
  const initialWeightsChecksum = options.checkpointDir ? checksumWeights(top) : 0;
  try {
    const cacheStarted = performance.now();
    const viewCount = options.augment ? TTA_DIHEDRAL_VIEWS.length : 1;
    const trainSet = await cacheActivations(bottom, train, "train", viewCount, options);
    const valSet = await cacheActivations(bottom, validation, "validation", 1, options);
    const cacheMs = performance.now() - cacheStarted;
    const n = trainSet.rows;
    const positives = trainSet.labels.reduce((a, b) => a + b, 0);
    if (positives === 0 || positives === n) throw new FineTuneError(`train: need both labels among readable images, received ${positives} malignant and ${n - positives} benign`);
    const classWeights: [number, number] =
      options.classWeights === "balanced" ? [n / (2 * (n - positives)), n / (2 * positives)] : (options.classWeights ?? [1, 1]);

    // Training forward pass: top blocks + pooling through a sub-model (BN in inference mode),
    // then the head's layers one by one so dropout can be seeded per step as in trainHead.
    const headLayerNames = head.layers.filter((l) => l.getClassName() !== "InputLayer").map((l) => l.name);
    const featureTensor = top.getLayer(backbone.model.outputLayers[0].name).output as tf.SymbolicTensor;
    const featureModel = tf.model({ inputs: top.inputs, outputs: featureTensor });
    const headLayers = headLayerNames.map((name) => top.getLayer(name));
    const forward = (x: tf.Tensor, dropoutSeed: number | undefined): tf.Tensor1D => {
      let h = featureModel.apply(x, { training: false }) as tf.Tensor;
      for (const layer of headLayers) {
        if (layer.getClassName() === "Dropout") {
          const rate = (layer.getConfig() as { rate: number }).rate;
          if (dropoutSeed !== undefined && rate > 0) h = tf.dropout(h, rate, undefined, dropoutSeed);
        } else {
          h = layer.apply(h, { training: false }) as tf.Tensor;
        }
      }
      return tf.reshape(h, [-1]) as tf.Tensor1D;
    };
    const variables = top.trainableWeights.map((w) => w.read() as tf.Variable);
    const trainableLayerNames = top.layers.filter((l) => l.trainableWeights.length > 0).map((l) => l.name);
    const history: EpochMetrics[] = [];
    const stepDurationsMs: number[] = [];
    let stepImages = 0;
    const batchesPerEpoch = Math.ceil(n / batchSize);
    const batchValues = new Float32Array(batchSize * activationSize);
    const fingerprint: FineTuneCheckpointFingerprint = {
      stage: "fine-tune",
      backbone: backbone.name,
      cutLayerName: cut.cutLayerName,
      unfreezeBlocks: options.unfreezeBlocks,
      rows: n,
      validationRows: valSet.rows,
      positives,
      seed,
      batchSize,
      learningRate,
      classWeights,
      viewCount,
      activationChecksum: computeValuesChecksum(trainSet.views[0]),
      validationChecksum: computeValuesChecksum(valSet.views[0]),
      initialWeightsChecksum,
    };
    let resumedFromEpoch = 0;
    const keepBest = options.restoreBestWeights === true && valSet.rows > 0;
    if (options.checkpointDir && options.resume) {
      const restored = await readCheckpoint(options.checkpointDir, fingerprint, top, optimizer, keepBest);
      if (restored) {
        resumedFromEpoch = restored.epoch;
        history.push(...(restored.history as EpochMetrics[]));
        best.adopt(restored.best);
      }
    }
    const callbacks = options.callbacks ?? [];
    for (const cb of callbacks) cb.setModel?.(top);
    for (const cb of callbacks) await cb.onTrainBegin?.({});
    for (let epoch = resumedFromEpoch + 1; epoch <= epochs; epoch++) {
      const started = performance.now();
      for (const cb of callbacks) await cb.onEpochBegin?.(epoch - 1, {});
      // Per-epoch stream (not one running generator), so a resumed epoch draws the same views.
      const rand = createRandom(Math.imul(seed * 31 + 17, 1_000_003) + epoch);
      const order = shuffleWithSeed(Array.from({ length: n }, (_, i) => i), seed * 7919 + epoch);
      let lossSum = 0;
      for (let b = 0; b < batchesPerEpoch; b++) {
        const indices = order.slice(b * batchSize, (b + 1) * batchSize);
        indices.forEach((row, k) => {
          const view = trainSet.views[viewCount === 1 ? 0 : Math.floor(rand() * viewCount)];
          batchValues.set(view.subarray(row * activationSize, (row + 1) * activationSize), k * activationSize);
        });
        const dropoutSeed = seed * 1_000_003 + (epoch - 1) * batchesPerEpoch + b;
        const stepStarted = performance.now();
        const cost = tf.tidy(() => {
          const xb = tf.tensor(batchValues.subarray(0, indices.length * activationSize), [indices.length, ...cut.activationShape]);
          const yb = tf.tensor1d(indices.map((i) => trainSet.labels[i]), "float32");
          const wb = tf.tensor1d(indices.map((i) => classWeights[trainSet.labels[i]]), "float32");
          return optimizer.minimize(() => tf.mean(tf.mul(binaryCrossEntropy(yb, forward(xb, dropoutSeed)), wb)) as tf.Scalar, true, variables)!;
        });
        lossSum += (await cost.data())[0];
        cost.dispose();
        stepDurationsMs.push(performance.now() - stepStarted);
        stepImages += indices.length;
      }
      const evalBatch = Math.max(batchSize, 32);
      const trainScore = scoreBinaryPredictions(trainSet.labels, predictRows(top, trainSet.views[0], n, cut.activationShape, evalBatch));
      const metrics: EpochMetrics = { epoch, trainLoss: lossSum / batchesPerEpoch, trainAccuracy: trainScore.accuracy, trainAuc: trainScore.auc, elapsedMs: 0 };
      if (valSet.rows > 0) {
        const valScore = scoreBinaryPredictions(valSet.labels, predictRows(top, valSet.views[0], valSet.rows, cut.activationShape, evalBatch));
        metrics.valLoss = valScore.loss;
        metrics.valAccuracy = valScore.accuracy;
        metrics.valAuc = valScore.auc;
      }
      metrics.elapsedMs = performance.now() - started;
      history.push(metrics);
      if (keepBest && metrics.valAuc !== undefined) best.offer(top, epoch, metrics.valAuc);
      if (options.checkpointDir) await writeCheckpoint(options.checkpointDir, epoch, fingerprint, top, optimizer, history);
      const logs = toKerasLogs(metrics, learningRate);
      for (const cb of callbacks) await cb.onEpochEnd?.(epoch - 1, logs);
      await options.onEpochEnd?.(metrics);
    }
    for (const cb of callbacks) await cb.onTrainEnd?.({});
    const keptEpoch = best.restoreInto(top, history.length);
    return {
      head: top,
      keptEpoch,
      history,
      imagesPerSecond: stepImages > 0 ? stepImages / (stepDurationsMs.reduce((a, b) => a + b, 0) / 1000) : NaN,
      stepDurationsMs,
      resumedFromEpoch,
      trainableLayerNames,
      cutLayerName: cut.cutLayerName,
      activationShape: cut.activationShape,
      problems: [...trainSet.problems, ...valSet.problems],
      cacheHits: trainSet.cacheHits + valSet.cacheHits,
      cacheMs,
    };
  } catch (err) {
    top.dispose();
    throw err;
  } finally {
    // The activation cache compiled an inference plan (own folded weights) for this call's bottom model.
    releaseInferencePlan(bottom);
    optimizer.dispose();
    best.dispose();
  }
}
