import * as tf from "@tensorflow/tfjs";
import { createBackboneEnsemble, type BackboneEnsemble } from "../models/ensemble.js";
import type { Backbone } from "../models/types.js";
import {
  makeTriageMetadata,
  TriageModelError,
  type TriageMetadataFields,
  type TriageModelMetadata,
} from "./triageModel.js";

/** Name of the layer that joins the members' pooled features in an ensemble triage model. */
export const ENSEMBLE_FEATURES_LAYER_NAME = "ensemble_features";

function asEnsemble(members: BackboneEnsemble | readonly Backbone[]): BackboneEnsemble {
  return Array.isArray(members)
    ? createBackboneEnsemble(members as readonly Backbone[])
    : (members as BackboneEnsemble);
}

/**
 * One model from preprocessed images to probability of malignant for a feature ensemble: one
 * image input per member ([null, size, size, 3], that member's size and preprocessing, in
 * member order), each member's backbone model nested whole (its pooled features), the features
 * concatenated in member order (layer {@link ENSEMBLE_FEATURES_LAYER_NAME}), then the head's
 * layers (shared, not copied; a chain taking [sum of featureDim], as trainHead makes). Weights
 * are shared with the members and `head`: disposing the triage model frees the backbones'
 * weights too. Throws {@link TriageModelError} when the head does not fit, or when two members
 * hold weights of the same name (the saved model could not be loaded back).
 *
 * @example
 * const ensemble = await loadBackboneEnsemble("mobilenet_v2+inception_v3");
 * const triage = buildEnsembleTriageModel(ensemble, head); // [x224, x299] → [n, 1]
 */
export function buildEnsembleTriageModel(
  members: BackboneEnsemble | readonly Backbone[],
  head: tf.LayersModel,
): tf.LayersModel {
  const ensemble = asEnsemble(members);
  const headInputDim = head.inputs[0].shape[head.inputs[0].shape.length - 1];
  if (head.inputs.length !== 1 || headInputDim !== ensemble.featureDim) {
    throw new TriageModelError(
      `head input: received shape ${JSON.stringify(head.inputs[0].shape)}, expected [null, ${ensemble.featureDim}] (featureDim of ${ensemble.name}: ${ensemble.members.map((m) => m.featureDim).join(" + ")})`,
    );
  }
  // Weights are saved and matched on load by their original names; a clash would not load back.
  const ownerOf = new Map<string, string>();
  for (const [i, member] of ensemble.members.entries()) {
    const shape = member.model.inputs[0].shape;
    if (
      member.model.inputs.length !== 1 ||
      shape[1] !== member.inputSizePx ||
      shape[2] !== member.inputSizePx ||
      shape[3] !== 3
    ) {
      throw new TriageModelError(
        `members[${i}] (${member.name}): model input is ${JSON.stringify(shape)}, expected [null, ${member.inputSizePx}, ${member.inputSizePx}, 3] (its inputSizePx)`,
      );
    }
    for (const w of member.model.weights) {
      const owner = ownerOf.get(w.originalName);
      if (owner !== undefined) {
        throw new TriageModelError(
          `weight ${w.originalName} is in both ${owner} and ${ensemble.memberNames[i]}: expected distinct weight names, else the exported model cannot be loaded back`,
        );
      }
      ownerOf.set(w.originalName, ensemble.memberNames[i]);
    }
  }
  const inputs = ensemble.members.map((m) =>
    tf.input({ shape: [m.inputSizePx, m.inputSizePx, 3], name: `${m.name.replace(/[^A-Za-z0-9_]/g, "_")}_image` }),
  );
  const features = ensemble.members.map((m, i) => m.model.apply(inputs[i]) as tf.SymbolicTensor);
  let x =
    features.length === 1
      ? features[0]
      : (tf.layers.concatenate({ axis: -1, name: ENSEMBLE_FEATURES_LAYER_NAME }).apply(features) as tf.SymbolicTensor);
  for (const layer of head.layers) {
    if (layer.getClassName() === "InputLayer") continue;
    x = layer.apply(x) as tf.SymbolicTensor;
  }
  const units = x.shape[x.shape.length - 1];
  if (units !== 1)
    throw new TriageModelError(`head output: received ${units} units, expected 1 (probability of malignant)`);
  return tf.model({ inputs, outputs: x, name: "triage_ensemble" });
}

/**
 * Metadata for exportTriageModel of an ensemble triage model: `ensembleMembers` lists each
 * member (canonical name, weights id, feature layer, featureDim, input size, preprocessing) in
 * input order; the top level holds the canonical spec as backboneName, the ensemble's
 * weightsId, the summed featureDim, and the largest input size (with that member's
 * preprocessing), so formatVersion 1 stays readable.
 *
 * @example makeEnsembleTriageMetadata(ensemble, { thresholdProb: 0.3, validation: { description: "pooled out-of-fold predictions of 5 fold models", images: 800, metrics: { outOfFoldRocAuc: 0.87 } } })
 */
export function makeEnsembleTriageMetadata(
  members: BackboneEnsemble | readonly Backbone[],
  fields: TriageMetadataFields,
): TriageModelMetadata {
  const ensemble = asEnsemble(members);
  const largest = ensemble.members.reduce((a, m) => (m.inputSizePx > a.inputSizePx ? m : a));
  // The top-level fields describe the whole; the largest member's input stands for its size.
  const whole: Backbone = {
    ...largest,
    name: ensemble.name,
    weightsId: ensemble.weightsId,
    featureLayerName: ensemble.members.map((m) => m.featureLayerName).join("+"),
    featureDim: ensemble.featureDim,
  };
  return {
    ...makeTriageMetadata(whole, fields),
    ensembleMembers: ensemble.members.map((m, i) => ({
      backboneName: ensemble.memberNames[i],
      backboneWeightsId: m.weightsId,
      featureLayerName: m.featureLayerName,
      featureDim: m.featureDim,
      inputSizePx: m.inputSizePx,
      preprocessing: m.preprocessing,
    })),
  };
}
