import * as tf from "@tensorflow/tfjs";
import { MelanomaLabError } from "../util/errors.js";
import type { Backbone } from "./types.js";

/** Thrown when a model cannot be compiled into an {@link InferencePlan} (e.g. a shared layer). */
export class InferencePlanError extends MelanomaLabError {}

/** Activations that tfjs's fused conv kernels apply in the same pass (XNNPACK clamps on wasm). */
const FUSABLE_ACTIVATIONS = ["linear", "relu", "relu6", "sigmoid", "elu"] as const;
type FusableActivation = (typeof FUSABLE_ACTIVATIONS)[number];

/** What {@link compileInferencePlan} fused, for reports and tests. */
export interface InferencePlanSummary {
  /** Layers of the source model (InputLayer included). */
  layers: number;
  /** Kernel launches per forward pass after fusion (one per remaining step). */
  steps: number;
  /** BatchNormalization layers folded into the preceding conv's weights and bias. */
  foldedBatchNorms: number;
  /** ReLU / ReLU6 / Activation layers run inside the conv kernel. */
  fusedActivations: number;
  /** ZeroPadding2D layers replaced by the conv's own "same" padding. */
  foldedPaddings: number;
}

/**
 * A frozen model compiled for inference: each Conv2D / DepthwiseConv2D with the
 * BatchNormalization, ReLU(6) and ZeroPadding2D around it runs as one fused kernel call, and
 * intermediate activations are freed as soon as their last consumer has run.
 * Weights are a snapshot taken at compile time: recompile after changing the model's weights.
 */
export interface InferencePlan {
  /** Same input and output as `model.predict(x)` for a single-input, single-output model. */
  predict(x: tf.Tensor): tf.Tensor;
  summary: InferencePlanSummary;
  /** Frees the folded weights (the source model is untouched). */
  dispose(): void;
}

interface LayerVariableLike {
  read(): tf.Tensor;
}
interface NodeLike {
  inputTensors: tf.SymbolicTensor[];
  outputTensors: tf.SymbolicTensor[];
}
type LayerWithNodes = tf.layers.Layer & { inboundNodes: NodeLike[] };
type Config = Record<string, unknown>;

const classOf = (layer: tf.layers.Layer) => layer.getClassName();
const isConv = (layer: tf.layers.Layer) => classOf(layer) === "Conv2D" || classOf(layer) === "DepthwiseConv2D";

function activationOf(layer: tf.layers.Layer): FusableActivation | undefined {
  const config = layer.getConfig() as Config;
  if (classOf(layer) === "ReLU") {
    const maxValue = config.maxValue as number | null | undefined;
    if (maxValue == null) return "relu";
    return maxValue === 6 ? "relu6" : undefined;
  }
  const name = typeof config.activation === "string" ? config.activation : undefined;
  return (FUSABLE_ACTIVATIONS as readonly string[]).includes(name ?? "") ? (name as FusableActivation) : undefined;
}

function pairOf(value: unknown, what: string, layer: tf.layers.Layer): [number, number] {
  if (typeof value === "number") return [value, value];
  if (Array.isArray(value) && value.length === 2 && value.every((v) => typeof v === "number")) return [value[0], value[1]];
  throw new InferencePlanError(`layer ${layer.name}: ${what} ${JSON.stringify(value)}, expected a number or a pair`);
}

/**
 * TensorFlow's "same" padding (before, after) for one spatial axis: total
 * max((ceil(in/stride) − 1)·stride + (kernel − 1)·dilation + 1 − in, 0), the smaller half before.
 * Shared by the inference plan and the ONNX importer and converter.
 *
 * @example samePadding(224, 3, 2, 1) // [0, 1]
 */
export function samePadding(inputPx: number, kernelPx: number, stride: number, dilation: number): [number, number] {
  const outputPx = Math.ceil(inputPx / stride);
  const total = Math.max((outputPx - 1) * stride + (kernelPx - 1) * dilation + 1 - inputPx, 0);
  return [Math.floor(total / 2), total - Math.floor(total / 2)];
}

/** ZeroPadding2D amounts as [[top, bottom], [left, right]]. */
function zeroPaddingOf(layer: tf.layers.Layer): [[number, number], [number, number]] {
  const p = (layer.getConfig() as Config).padding;
  if (typeof p === "number") return [[p, p], [p, p]];
  if (Array.isArray(p) && p.length === 2) {
    const axis = (v: unknown): [number, number] => (typeof v === "number" ? [v, v] : [(v as number[])[0], (v as number[])[1]]);
    return [axis(p[0]), axis(p[1])];
  }
  throw new InferencePlanError(`layer ${layer.name}: padding ${JSON.stringify(p)}, expected a number or [[top, bottom], [left, right]]`);
}

interface FusedConv {
  conv: tf.layers.Layer;
  depthwise: boolean;
  padLayer?: tf.layers.Layer;
  batchNorm?: tf.layers.Layer;
  activationLayer?: tf.layers.Layer;
  activation: FusableActivation;
  strides: [number, number];
  dilations: [number, number];
  pad: "same" | "valid";
  inputId: number;
  outputId: number;
}

/** Reads the conv kernel and bias, folds BatchNormalization into them (in float64). */
function foldWeights(step: FusedConv): { filter: tf.Tensor4D; bias?: tf.Tensor1D } {
  const convVars = step.conv as unknown as { kernel?: LayerVariableLike; depthwiseKernel?: LayerVariableLike; bias?: LayerVariableLike | null };
  const kernelVar = step.depthwise ? convVars.depthwiseKernel : convVars.kernel;
  if (!kernelVar) throw new InferencePlanError(`layer ${step.conv.name}: no kernel weights found`);
  const kernel = kernelVar.read();
  const useBias = (step.conv.getConfig() as Config).useBias !== false && convVars.bias != null;
  if (!step.batchNorm) {
    return { filter: tf.clone(kernel) as tf.Tensor4D, bias: useBias ? (tf.clone(convVars.bias!.read()) as tf.Tensor1D) : undefined };
  }
  const bn = step.batchNorm as unknown as { gamma?: LayerVariableLike; beta?: LayerVariableLike; movingMean: LayerVariableLike; movingVariance: LayerVariableLike };
  const bnConfig = step.batchNorm.getConfig() as Config;
  const epsilon = bnConfig.epsilon as number;
  const mean = bn.movingMean.read().dataSync();
  const variance = bn.movingVariance.read().dataSync();
  const gamma = bnConfig.scale !== false && bn.gamma ? bn.gamma.read().dataSync() : undefined;
  const beta = bnConfig.center !== false && bn.beta ? bn.beta.read().dataSync() : undefined;
  const convBias = useBias ? convVars.bias!.read().dataSync() : undefined;
  const channels = mean.length;
  const scale = new Float64Array(channels);
  const bias = new Float32Array(channels);
  for (let c = 0; c < channels; c++) {
    scale[c] = (gamma ? gamma[c] : 1) / Math.sqrt(variance[c] + epsilon);
    bias[c] = ((convBias ? convBias[c] : 0) - mean[c]) * scale[c] + (beta ? beta[c] : 0);
  }
  // Kernels are [kh, kw, in, out] (Conv2D) or [kh, kw, in, multiplier] (depthwise, output
  // channel in * multiplier + m): both put the output channel innermost when flattened.
  const values = kernel.dataSync();
  if (values.length % channels !== 0) throw new InferencePlanError(`layer ${step.conv.name}: kernel of ${values.length} values does not match ${channels} BatchNormalization channels of ${step.batchNorm.name}`);
  const folded = new Float32Array(values.length);
  for (let i = 0; i < values.length; i++) folded[i] = values[i] * scale[i % channels];
  return { filter: tf.tensor4d(folded, kernel.shape as [number, number, number, number]), bias: tf.tensor1d(bias) };
}

/**
 * Compiles a functional tfjs-layers model (one input, one output, no shared layers) into an
 * {@link InferencePlan} for frozen inference: Conv2D / DepthwiseConv2D followed by
 * BatchNormalization (inference statistics) and ReLU / ReLU6 / Activation become one
 * `tf.fused.conv2d` / `tf.fused.depthwiseConv2d` call; a ZeroPadding2D before a "valid" conv
 * that equals TensorFlow's "same" padding is dropped; every other layer runs its own `call`.
 * On wasm this removes the single-threaded BatchNormalization and clamp passes (≈ 40% of
 * MobileNetV2's time at one thread). Outputs equal `model.predict` to float rounding.
 * Throws {@link InferencePlanError} for models it cannot follow.
 *
 * @example
 * const plan = compileInferencePlan(backbone.model);
 * const features = tf.tidy(() => plan.predict(images)); // [n, featureDim]
 */
export function compileInferencePlan(model: tf.LayersModel): InferencePlan {
  if (model.inputs.length !== 1 || model.outputs.length !== 1) {
    throw new InferencePlanError(`model ${model.name}: ${model.inputs.length} inputs and ${model.outputs.length} outputs, expected one of each`);
  }
  const layers = model.layers as LayerWithNodes[];
  const nodeOf = new Map<tf.layers.Layer, NodeLike>();
  for (const layer of layers) {
    if (layer.inboundNodes.length !== 1) throw new InferencePlanError(`layer ${layer.name} is used ${layer.inboundNodes.length} times, expected once (shared layers are not supported)`);
    nodeOf.set(layer, layer.inboundNodes[0]);
  }
  const outputId = model.outputs[0].id;
  const consumers = new Map<number, tf.layers.Layer[]>();
  const producer = new Map<number, tf.layers.Layer>();
  for (const layer of layers) {
    const node = nodeOf.get(layer)!;
    for (const t of node.inputTensors) consumers.set(t.id, [...(consumers.get(t.id) ?? []), layer]);
    for (const t of node.outputTensors) producer.set(t.id, layer);
  }
  const soleConsumer = (t: tf.SymbolicTensor): tf.layers.Layer | undefined => {
    const list = consumers.get(t.id) ?? [];
    return list.length === 1 && t.id !== outputId ? list[0] : undefined;
  };

  // Pass 1: decide which layers are absorbed into a conv.
  const absorbed = new Set<tf.layers.Layer>();
  const fusedByConv = new Map<tf.layers.Layer, FusedConv>();
  for (const layer of layers) {
    if (!isConv(layer)) continue;
    const config = layer.getConfig() as Config;
    if ((config.dataFormat ?? "channelsLast") !== "channelsLast") continue;
    const activation = activationOf(layer);
    if (activation === undefined) continue;
    const node = nodeOf.get(layer)!;
    const step: FusedConv = {
      conv: layer,
      depthwise: classOf(layer) === "DepthwiseConv2D",
      activation,
      strides: pairOf(config.strides, "strides", layer),
      dilations: pairOf(config.dilationRate ?? 1, "dilationRate", layer),
      pad: config.padding === "same" ? "same" : "valid",
      inputId: node.inputTensors[0].id,
      outputId: node.outputTensors[0].id,
    };
    if (config.padding !== "same" && config.padding !== "valid") continue;
    let tail = node.outputTensors[0];
    const next = soleConsumer(tail);
    if (activation === "linear" && next && classOf(next) === "BatchNormalization") {
      const axis = (next.getConfig() as Config).axis;
      if (axis === -1 || axis === 3 || (Array.isArray(axis) && axis.length === 1 && (axis[0] === -1 || axis[0] === 3))) {
        step.batchNorm = next;
        tail = nodeOf.get(next)!.outputTensors[0];
      }
    }
    const after = activation === "linear" ? soleConsumer(tail) : undefined;
    if (after && (classOf(after) === "ReLU" || classOf(after) === "Activation")) {
      const act = activationOf(after);
      if (act !== undefined && act !== "linear") {
        step.activationLayer = after;
        step.activation = act;
        tail = nodeOf.get(after)!.outputTensors[0];
      }
    }
    step.outputId = tail.id;
    // A ZeroPadding2D feeding only this "valid" conv folds when it equals "same" padding.
    const inputTensor = node.inputTensors[0];
    const padLayer = producer.get(inputTensor.id);
    if (step.pad === "valid" && padLayer && classOf(padLayer) === "ZeroPadding2D" && soleConsumer(inputTensor) === layer) {
      const padInput = nodeOf.get(padLayer)!.inputTensors[0];
      const [h, w] = [padInput.shape[1], padInput.shape[2]];
      const kernel = pairOf(config.kernelSize, "kernelSize", layer);
      if (typeof h === "number" && typeof w === "number") {
        const [[top, bottom], [left, right]] = zeroPaddingOf(padLayer);
        const sameH = samePadding(h, kernel[0], step.strides[0], step.dilations[0]);
        const sameW = samePadding(w, kernel[1], step.strides[1], step.dilations[1]);
        if (top === sameH[0] && bottom === sameH[1] && left === sameW[0] && right === sameW[1]) {
          step.padLayer = padLayer;
          step.pad = "same";
          step.inputId = padInput.id;
        }
      }
    }
    for (const l of [step.padLayer, step.batchNorm, step.activationLayer]) if (l) absorbed.add(l);
    fusedByConv.set(layer, step);
  }

  // Pass 2: the execution steps, in the model's topological order.
  type Step = { inputIds: number[]; outputId: number; run: (inputs: tf.Tensor[]) => tf.Tensor };
  const steps: Step[] = [];
  const ownedWeights: tf.Tensor[] = [];
  const inputId = model.inputs[0].id;
  try {
    for (const layer of layers) {
      if (classOf(layer) === "InputLayer" || absorbed.has(layer)) continue;
      const fused = fusedByConv.get(layer);
      if (fused) {
        const { filter, bias } = foldWeights(fused);
        // Kept: the plan may be compiled inside a caller's tf.tidy and must outlive it.
        for (const w of [filter, ...(bias ? [bias] : [])]) ownedWeights.push(tf.keep(w));
        const common = { filter, bias, strides: fused.strides, pad: fused.pad, dilations: fused.dilations, activation: fused.activation, dataFormat: "NHWC" as const };
        steps.push({
          inputIds: [fused.inputId],
          outputId: fused.outputId,
          run: ([x]) => (fused.depthwise ? tf.fused.depthwiseConv2d({ x: x as tf.Tensor4D, ...common }) : tf.fused.conv2d({ x: x as tf.Tensor4D, ...common })),
        });
        continue;
      }
      const node = nodeOf.get(layer)!;
      if (node.outputTensors.length !== 1) throw new InferencePlanError(`layer ${layer.name} has ${node.outputTensors.length} outputs, expected one`);
      steps.push({
        inputIds: node.inputTensors.map((t) => t.id),
        outputId: node.outputTensors[0].id,
        run: (inputs) => layer.apply(inputs.length === 1 ? inputs[0] : inputs, { training: false }) as tf.Tensor,
      });
    }
  } catch (err) {
    for (const w of ownedWeights) w.dispose();
    throw err;
  }
  if (!steps.some((s) => s.outputId === outputId) && outputId !== inputId) {
    for (const w of ownedWeights) w.dispose();
    throw new InferencePlanError(`model ${model.name}: its output is not produced by any compiled step`);
  }
  // After step i, the tensors whose last reader was step i can be freed.
  const lastUse = new Map<number, number>();
  steps.forEach((s, i) => s.inputIds.forEach((id) => lastUse.set(id, i)));

  const folded = [...fusedByConv.values()];
  const summary: InferencePlanSummary = {
    layers: layers.length,
    steps: steps.length,
    foldedBatchNorms: folded.filter((s) => s.batchNorm).length,
    fusedActivations: folded.filter((s) => s.activationLayer).length,
    foldedPaddings: folded.filter((s) => s.padLayer).length,
  };
  let disposed = false;
  return {
    summary,
    predict(x: tf.Tensor): tf.Tensor {
      if (disposed) throw new InferencePlanError(`inference plan of ${model.name} was disposed`);
      return tf.tidy(() => {
        const values = new Map<number, tf.Tensor>([[inputId, x]]);
        steps.forEach((step, i) => {
          const inputs = step.inputIds.map((id) => {
            const v = values.get(id);
            if (!v) throw new InferencePlanError(`model ${model.name}: tensor ${id} needed before it was computed`);
            return v;
          });
          values.set(step.outputId, step.run(inputs));
          for (const id of step.inputIds) {
            if (lastUse.get(id) === i && id !== inputId && id !== outputId) {
              values.get(id)!.dispose();
              values.delete(id);
            }
          }
        });
        return values.get(outputId)!;
      });
    },
    dispose() {
      if (disposed) return;
      disposed = true;
      for (const w of ownedWeights) w.dispose();
    },
  };
}

/** A compiled plan (or why there is none) and the weight buffers it was folded from. */
interface CachedPlan {
  plan: InferencePlan | InferencePlanError;
  weightDataIds: object[];
}
const plans = new WeakMap<tf.LayersModel, CachedPlan>();

// setWeights/assign give a variable a new data buffer: a plan folded from the old ones is stale.
function weightDataIdsOf(model: tf.LayersModel): object[] {
  return model.weights.map((w) => w.read().dataId);
}

/**
 * Pooled features [n, featureDim] of a preprocessed batch [n, size, size, 3], computed with
 * the backbone's compiled {@link InferencePlan} (compiled once per model and kept, and compiled
 * again when the model's weights were changed in place, e.g. by setWeights), or with
 * `backbone.model.predict` when the model cannot be compiled. The caller disposes the result.
 *
 * @example const features = predictBackboneFeatures(backbone, images); // [8, 1280]
 */
export function predictBackboneFeatures(backbone: Backbone, images: tf.Tensor): tf.Tensor {
  const weightDataIds = weightDataIdsOf(backbone.model);
  let cached = plans.get(backbone.model);
  if (cached !== undefined && cached.weightDataIds.some((id, i) => id !== weightDataIds[i])) {
    releaseInferencePlan(backbone);
    cached = undefined;
  }
  if (cached === undefined) {
    let plan: InferencePlan | InferencePlanError;
    try {
      plan = compileInferencePlan(backbone.model);
    } catch (err) {
      if (!(err instanceof InferencePlanError)) throw err;
      plan = err;
    }
    cached = { plan, weightDataIds };
    plans.set(backbone.model, cached);
  }
  const plan = cached.plan;
  if (plan instanceof InferencePlanError) return tf.tidy(() => backbone.model.predict(images) as tf.Tensor);
  return plan.predict(images);
}

/**
 * Frees the compiled inference plan kept for `backbone.model` (its folded weights); the next
 * predictBackboneFeatures call compiles a new one. The model itself is untouched.
 *
 * @example releaseInferencePlan(backbone);
 */
export function releaseInferencePlan(backbone: Backbone): void {
  const plan = plans.get(backbone.model)?.plan;
  if (plan && !(plan instanceof InferencePlanError)) plan.dispose();
  plans.delete(backbone.model);
}

/**
 * Disposes a backbone: its compiled inference plan (if any) and `backbone.model`'s weights.
 *
 * @example const b = await loadBackbone("mobilenet_v2"); …; disposeBackbone(b);
 */
export function disposeBackbone(backbone: Backbone): void {
  releaseInferencePlan(backbone);
  backbone.model.dispose();
}
