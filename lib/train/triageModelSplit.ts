import * as tf from "@tensorflow/tfjs";
import type { Backbone } from "../models/types.js";
import { collectLayersAfterCut, copyWeightsByName, FineTuneError, modelJsonOf, type ModelJson } from "./fineTuneCut.js";

/**
 * One image → probability model from `backbone`'s frozen bottom and a fine-tuned top (the `head`
 * of {@link fineTuneTopBlocks}): the same layer names and topology as `buildTriageModel`, with the
 * top layers' weights taken from the fine-tuned model. Fresh weight copies: disposing the result
 * leaves `backbone` and `fineTuned` intact. {@link exportTriageModel} accepts it.
 *
 * @example
 * const ft = await fineTuneTopBlocks(backbone, head, train, val, { unfreezeBlocks: 1, epochs: 3, learningRate: 1e-4, batchSize: 8, seed: 1 });
 * const triage = await buildFineTunedTriageModel(backbone, ft.head); // [n,224,224,3] → [n,1]
 * await exportTriageModel("models/ft", triage, makeTriageMetadata(backbone, { thresholdProb: 0.3 }));
 */
export async function buildFineTunedTriageModel(
  backbone: Backbone,
  fineTuned: tf.LayersModel,
): Promise<tf.LayersModel> {
  const topJson = modelJsonOf(fineTuned);
  const cutInputs = topJson.config.input_layers;
  if (cutInputs.length !== 1)
    throw new FineTuneError(
      `fineTuned: received a model with ${cutInputs.length} inputs, expected 1 (the activation at the cut layer)`,
    );
  const cutLayerName = cutInputs[0][0];
  let cutLayer: tf.layers.Layer;
  try {
    cutLayer = backbone.model.getLayer(cutLayerName);
  } catch {
    throw new FineTuneError(
      `fineTuned: its input ${cutLayerName} is not a layer of backbone ${backbone.name}; was it fine-tuned from this backbone?`,
    );
  }
  const expected = JSON.stringify(cutLayer.outputShape);
  const received = JSON.stringify(fineTuned.inputs[0].shape);
  if (expected !== received)
    throw new FineTuneError(
      `fineTuned input: received shape ${received}, expected ${expected} (output of ${backbone.name}'s ${cutLayerName})`,
    );
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
  const model = await tf.models.modelFromJSON({
    modelTopology: topology as unknown as tf.io.ModelJSON["modelTopology"],
  });
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
export async function splitTriageModel(
  triage: tf.LayersModel,
  backbone: Backbone,
): Promise<{ backbone: Backbone; head: tf.LayersModel }> {
  const pooledName = backbone.model.outputLayers[0].name;
  const json = modelJsonOf(triage);
  if (!json.config.layers.some((l) => l.name === pooledName)) {
    throw new FineTuneError(
      `triage model ${triage.name}: no layer ${pooledName} (the pooled features of ${backbone.name}); expected a model built from this backbone`,
    );
  }
  const headLayers = collectLayersAfterCut(json, pooledName, triage.name);
  const headTopology: ModelJson = {
    ...json,
    config: {
      name: `${triage.name}_head`,
      // An input layer named like the pooling layer, so the head's first inbound reference stays valid.
      layers: [
        {
          name: pooledName,
          class_name: "InputLayer",
          config: { batch_input_shape: [null, backbone.featureDim], dtype: "float32", sparse: false, name: pooledName },
          inbound_nodes: [],
        },
        ...headLayers,
      ],
      input_layers: [[pooledName, 0, 0]],
      output_layers: json.config.output_layers,
    },
  };
  const head = await tf.models.modelFromJSON({
    modelTopology: headTopology as unknown as tf.io.ModelJSON["modelTopology"],
  });
  copyWeightsByName(head, [triage]);
  const features = tf.model({
    inputs: triage.inputs,
    outputs: triage.getLayer(pooledName).output as tf.SymbolicTensor,
    name: `${triage.name}_features`,
  });
  return { backbone: { ...backbone, model: features, weightsId: `${backbone.weightsId}+${triage.name}` }, head };
}
