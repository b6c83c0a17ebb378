import * as tf from "@tensorflow/tfjs";
import { MelanomaLabError, UnknownNameError } from "../util/errors.js";
import { countMultiplyAddsPerImage } from "./countMultiplyAdds.js";
import type { Backbone, PreprocessingSpec } from "./types.js";

/** Thrown when a backbone's weights cannot be found, read or cut at the feature layer. */
export class BackboneLoadError extends MelanomaLabError {}

/**
 * Builds a {@link Backbone} from a full model: the output of `featureLayerName`, globally
 * average-pooled. Layers after the feature layer are disposed (their weights are not needed).
 *
 * @example cutAtFeatureLayer(fullModel, "my_net", "out_relu", 224, spec, "my_net/v1")
 */
export function cutAtFeatureLayer(
  full: tf.LayersModel,
  name: string,
  featureLayerName: string,
  inputSizePx: number,
  preprocessing: PreprocessingSpec,
  weightsId: string,
): Backbone {
  let featureLayer: tf.layers.Layer;
  try {
    featureLayer = full.getLayer(featureLayerName);
  } catch {
    const names = full.layers.map((l) => l.name);
    throw new UnknownNameError(`feature layer of ${name}`, featureLayerName, names);
  }
  const pooled = tf.layers
    .globalAveragePooling2d({ name: `${name}_features_gap` })
    .apply(featureLayer.output as tf.SymbolicTensor) as tf.SymbolicTensor;
  const model = tf.model({ inputs: full.inputs, outputs: pooled, name: `${name}_features` });
  const kept = new Set(model.layers);
  for (const layer of full.layers) if (!kept.has(layer)) layer.dispose();
  const featureDim = pooled.shape[pooled.shape.length - 1];
  if (typeof featureDim !== "number") throw new BackboneLoadError(`${name}: feature layer ${featureLayerName} has an unknown channel count`);
  return {
    name,
    inputSizePx,
    featureLayerName,
    featureDim,
    preprocessing,
    model,
    weightsId,
    multiplyAddsPerImage: countMultiplyAddsPerImage(model),
  };
}
