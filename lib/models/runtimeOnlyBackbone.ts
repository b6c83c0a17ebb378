import { MelanomaLabError } from "../util/errors.js";
import type { Backbone, FeatureBackbone, OnnxRuntimeOnlyBackbone } from "./types.js";

/**
 * Thrown when something needing a tfjs model (fine-tuning, Grad-CAM, tfjs export, the tfjs
 * runtime) gets a backbone that runs only on ONNX Runtime.
 */
export class OnnxRuntimeOnlyError extends MelanomaLabError {}

/**
 * True when `backbone` runs only on ONNX Runtime (no tfjs model).
 *
 * @example if (isOnnxRuntimeOnly(b)) console.log(b.tfjsUnavailableReason);
 */
export function isOnnxRuntimeOnly(backbone: FeatureBackbone): backbone is OnnxRuntimeOnlyBackbone {
  return backbone.model === undefined;
}

/**
 * `backbone` as a tfjs backbone, or {@link OnnxRuntimeOnlyError} naming `purpose` and why the
 * backbone has no tfjs model.
 *
 * @example const b = requireTfjsBackbone(backbone, "fine-tuning");
 */
export function requireTfjsBackbone(backbone: FeatureBackbone, purpose: string): Backbone {
  if (!isOnnxRuntimeOnly(backbone)) return backbone;
  throw new OnnxRuntimeOnlyError(
    `${purpose} needs a tfjs model, but backbone ${backbone.name} runs only on ONNX Runtime (${backbone.tfjsUnavailableReason}); expected a backbone the tfjs importer converts, e.g. mobilenet_v2_imagenet`,
  );
}

/**
 * The one-line note printed when an ONNX-Runtime-only backbone is loaded.
 *
 * @example describeOnnxRuntimeOnly(b) // "onnx:/w/mobilenetv2-12-int8.onnx: features on ONNX Runtime only (…); fine-tuning, Grad-CAM and tfjs export are not available"
 */
export function describeOnnxRuntimeOnly(backbone: OnnxRuntimeOnlyBackbone): string {
  const reason = backbone.tfjsUnavailableReason.split("\n")[0];
  return `${backbone.name}: features on ONNX Runtime only (the tfjs importer cannot convert it: ${reason}); fine-tuning, Grad-CAM and tfjs export are not available`;
}
