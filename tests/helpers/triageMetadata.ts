import * as tf from "@tensorflow/tfjs";
import type { TriageModelMetadata } from "../../lib/export/triageModel.js";

/**
 * metadata.json for a hand-built test model: the fields every fixture shares (labels, 0..1
 * scaling, squash resize, threshold 0.5, a "handmade" backbone, the current backend) with the
 * given ones on top. A fixture states only what its test depends on.
 *
 * @example makeFixtureMetadata({ inputSizePx: 8, featureDim: 3, thresholdProb: 0.7 })
 */
export function makeFixtureMetadata(
  fields: Partial<TriageModelMetadata> & Pick<TriageModelMetadata, "inputSizePx" | "featureDim">,
): TriageModelMetadata {
  return {
    formatVersion: 1,
    labels: ["benign", "malignant"],
    preprocessing: { kind: "scale", scale: 1 / 255, offset: 0 },
    resizePolicy: "squash",
    thresholdProb: 0.5,
    backboneName: "handmade",
    backboneWeightsId: "handmade/1",
    featureLayerName: "none",
    createdAt: new Date().toISOString(),
    // Read only when not given: tf.getBackend() would start a default backend at import time.
    backend: fields.backend ?? tf.getBackend(),
    ...fields,
  };
}
