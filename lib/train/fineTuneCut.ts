import * as tf from "@tensorflow/tfjs";
import { requireTfjsBackbone } from "../models/runtimeOnlyBackbone.js";
import type { Backbone } from "../models/types.js";
import { MelanomaLabError } from "../util/errors.js";

// Graph surgery for fine-tuning: where to cut a backbone, and the trainable top (top blocks + head)
// rebuilt from the Keras topology JSON with its own weight copies.

/** Thrown when fine-tuning input does not fit together (block count, head shape, records, options). */
export class FineTuneError extends MelanomaLabError {}

/** Where a backbone is cut for fine-tuning its top blocks. */
export interface FineTuneCut {
  /** Layer whose output feeds the first unfrozen block. */
  cutLayerName: string;
  /** Block prefixes that are unfrozen, lowest first, e.g. ["block_15", "block_16"] (for residual blocks of an imported model: the layer ending each block, e.g. ["add_conv_85", "conv_95_relu6"]). */
  blockNames: string[];
  /** Every backbone layer after the cut (the unfrozen blocks, then the final conv/pooling layers). */
  topLayerNames: string[];
  /** Shape of one activation at the cut, without the batch axis. */
  activationShape: number[];
}

export type InboundRef = [string, number, number, Record<string, unknown>];
export interface LayerJson {
  name: string;
  class_name: string;
  config: Record<string, unknown>;
  inbound_nodes: InboundRef[][];
}
export interface ModelJson {
  class_name: string;
  config: {
    name: string;
    layers: LayerJson[];
    input_layers: [string, number, number][];
    output_layers: [string, number, number][];
  };
  keras_version?: string;
  backend?: string;
}

export function modelJsonOf(model: tf.LayersModel): ModelJson {
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
 * Supports MobileNetV2 (`block_N_…`) and MobileNet v1 (`conv_dw_N`/`conv_pw_N`) naming, and
 * models without numbered names but with residual Add layers (imported ONNX models such as
 * mobilenet_v2_imagenet: each Add ends a block); throws {@link FineTuneError} otherwise, or when
 * the block count is out of range.
 *
 * @example findFineTuneCut(mobilenetV2, 2) // { cutLayerName: "block_14_add", blockNames: ["block_15", "block_16"], activationShape: [7, 7, 160], … }
 */
export function findFineTuneCut(backbone: Backbone, unfreezeBlocks: number): FineTuneCut {
  requireTfjsBackbone(backbone, "fine-tuning");
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
    const residual = findResidualCut(backbone, unfreezeBlocks);
    if (residual) return residual;
    throw new FineTuneError(
      `backbone ${backbone.name}: no numbered blocks found (expected MobileNetV2 layer names block_N_… or MobileNet v1 conv_dw_N/conv_pw_N) and no residual Add layers (imported ONNX models); fine-tuning supports mobilenet_v2, mobilenet_v1 and residual networks such as mobilenet_v2_imagenet`,
    );
  }
  blockNumbers.sort((a, b) => a - b);
  if (!(Number.isInteger(unfreezeBlocks) && unfreezeBlocks >= 1 && unfreezeBlocks <= blockNumbers.length)) {
    throw new FineTuneError(
      `unfreezeBlocks: received ${unfreezeBlocks}, expected a whole number 1–${blockNumbers.length} (${backbone.name} has blocks ${blockNumbers[0]}–${blockNumbers.at(-1)})`,
    );
  }
  const topBlocks = blockNumbers.slice(blockNumbers.length - unfreezeBlocks);
  const firstIndex = firstLayerOfBlock.get(topBlocks[0])!;
  const json = modelJsonOf(backbone.model);
  const firstJson = json.config.layers.find((l) => l.name === layers[firstIndex].name)!;
  const inbound = inboundNamesOf(firstJson);
  if (inbound.length !== 1) {
    throw new FineTuneError(
      `${backbone.name}: layer ${firstJson.name} has ${inbound.length} inputs, expected 1 to cut the model before it`,
    );
  }
  const cutLayerName = inbound[0];
  const top = collectLayersAfterCut(json, cutLayerName, backbone.name);
  const shape = backbone.model.getLayer(cutLayerName).outputShape as (number | null)[];
  return {
    cutLayerName,
    blockNames: topBlocks.map((n) =>
      BLOCK_PATTERN.exec(layers[firstLayerOfBlock.get(n)!].name)![1].replace(/^conv_(?:dw|pw|pad)_/, "conv_"),
    ),
    topLayerNames: top.map((l) => l.name),
    activationShape: shape.slice(1) as number[],
  };
}

/**
 * Blocks of a model without numbered layer names (an imported ONNX graph, whose layers are named
 * after ONNX nodes, e.g. conv_94): its residual Add layers end blocks, as Keras's block_N_add
 * does. With m Add layers, block k (k = 1 … m) is what follows the (m − k + 1)-th Add from the
 * top, up to the next Add (or the pooled output): unfreezing k blocks cuts at that Add. Names each
 * block after the layer that ends it. Undefined when the model has no Add layer.
 */
function findResidualCut(backbone: Backbone, unfreezeBlocks: number): FineTuneCut | undefined {
  const layers = backbone.model.layers;
  const adds = layers.filter((l) => l.getClassName() === "Add");
  if (adds.length === 0) return undefined;
  if (!(Number.isInteger(unfreezeBlocks) && unfreezeBlocks >= 1 && unfreezeBlocks <= adds.length)) {
    throw new FineTuneError(
      `unfreezeBlocks: received ${unfreezeBlocks}, expected a whole number 1–${adds.length} (${backbone.name} has ${adds.length} residual Add layers, each ending a block)`,
    );
  }
  const cutLayerName = adds[adds.length - unfreezeBlocks].name;
  const json = modelJsonOf(backbone.model);
  const top = collectLayersAfterCut(json, cutLayerName, backbone.name);
  // The last block ends at the last layer before the pooled output.
  const lastBeforeOutput = top.length >= 2 ? top[top.length - 2].name : top[top.length - 1].name;
  const blockEnds = [...adds.slice(adds.length - unfreezeBlocks + 1).map((l) => l.name), lastBeforeOutput];
  const shape = backbone.model.getLayer(cutLayerName).outputShape as (number | null)[];
  return {
    cutLayerName,
    blockNames: blockEnds,
    topLayerNames: top.map((l) => l.name),
    activationShape: shape.slice(1) as number[],
  };
}

/** The layers computed from `cutLayerName`'s output alone, in order; throws when anything else feeds them. */
export function collectLayersAfterCut(json: ModelJson, cutLayerName: string, modelName: string): LayerJson[] {
  const inTop = new Set<string>([cutLayerName]);
  const top: LayerJson[] = [];
  for (const layer of json.config.layers) {
    const inbound = inboundNamesOf(layer);
    if (inbound.length === 0) continue;
    const fromTop = inbound.filter((n) => inTop.has(n));
    if (fromTop.length === 0) continue;
    if (fromTop.length !== inbound.length) {
      const outside = inbound.filter((n) => !inTop.has(n));
      throw new FineTuneError(
        `${modelName}: layer ${layer.name} also reads ${outside.join(", ")} from below the cut at ${cutLayerName}; a cut must be a single tensor`,
      );
    }
    inTop.add(layer.name);
    top.push(layer);
  }
  const outputName = json.config.output_layers[0][0];
  if (!inTop.has(outputName))
    throw new FineTuneError(`${modelName}: output layer ${outputName} does not depend on the cut at ${cutLayerName}`);
  return top;
}

export function copyWeightsByName(target: tf.LayersModel, sources: readonly tf.LayersModel[]): void {
  for (const layer of target.layers) {
    if (layer.weights.length === 0) continue;
    const source = sources.map((m) => m.layers.find((l) => l.name === layer.name)).find((l) => l !== undefined);
    if (!source)
      throw new FineTuneError(`layer ${layer.name}: no source model has a layer of that name to copy weights from`);
    const values = source.getWeights();
    const shapes = layer.weights.map((w) => JSON.stringify(w.shape));
    if (values.length !== shapes.length || values.some((v, i) => JSON.stringify(v.shape) !== shapes[i])) {
      throw new FineTuneError(
        `layer ${layer.name}: source weights ${JSON.stringify(values.map((v) => v.shape))} do not match ${JSON.stringify(layer.weights.map((w) => w.shape))}`,
      );
    }
    // Clones so later optimizer updates of one model never touch the other's buffers.
    tf.tidy(() => layer.setWeights(values.map((v) => v.clone())));
  }
}

/**
 * The trainable top of `backbone` after `cut`, followed by `head`'s layers, as one new model with
 * its own copies of the weights: input = activation at the cut, output = probability.
 */
export async function buildTopModel(
  backbone: Backbone,
  head: tf.LayersModel,
  cut: FineTuneCut,
): Promise<tf.LayersModel> {
  const json = modelJsonOf(backbone.model);
  const top = collectLayersAfterCut(json, cut.cutLayerName, backbone.name);
  if (head.inputs.length !== 1 || head.outputs.length !== 1) {
    throw new FineTuneError(
      `head: received a model with ${head.inputs.length} inputs and ${head.outputs.length} outputs, expected 1 input taking [${backbone.featureDim}] features and 1 output`,
    );
  }
  const headInputDim = head.inputs[0].shape.at(-1);
  if (headInputDim !== backbone.featureDim) {
    throw new FineTuneError(
      `head input: received shape ${JSON.stringify(head.inputs[0].shape)}, expected [null, ${backbone.featureDim}] (featureDim of ${backbone.name})`,
    );
  }
  // A Sequential serialises without its InputLayer; its functional twin (same layers) does not.
  const headJson = modelJsonOf(
    head instanceof tf.Sequential ? tf.model({ inputs: head.inputs, outputs: head.outputs }) : head,
  );
  const headInputs = new Set(headJson.config.layers.filter((l) => l.class_name === "InputLayer").map((l) => l.name));
  const outputName = json.config.output_layers[0][0];
  const topNames = new Set(top.map((l) => l.name).concat(cut.cutLayerName));
  const headLayers = headJson.config.layers.filter((l) => !headInputs.has(l.name));
  for (const l of headLayers) {
    if (topNames.has(l.name))
      throw new FineTuneError(`head layer ${l.name}: the backbone ${backbone.name} already has a layer of that name`);
    for (const node of l.inbound_nodes) for (const ref of node) if (headInputs.has(ref[0])) ref[0] = outputName;
  }
  const inputLayer: LayerJson = {
    name: cut.cutLayerName,
    class_name: "InputLayer",
    config: {
      batch_input_shape: [null, ...cut.activationShape],
      dtype: "float32",
      sparse: false,
      name: cut.cutLayerName,
    },
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
  const model = await tf.models.modelFromJSON({
    modelTopology: topology as unknown as tf.io.ModelJSON["modelTopology"],
  });
  copyWeightsByName(model, [head, backbone.model]);
  return model;
}
