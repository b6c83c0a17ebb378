import type * as tf from "@tensorflow/tfjs";

type Shape = (number | null)[];

function lastShape(shape: Shape | Shape[]): Shape {
  return (Array.isArray(shape[0]) ? (shape as Shape[])[0] : shape) as Shape;
}

function product(values: (number | null)[]): number {
  return values.reduce<number>((a, b) => a * (b ?? 1), 1);
}

/**
 * Multiply-adds of one forward pass for one image, summed over Conv2D
 * (outH·outW·kH·kW·inC·outC), DepthwiseConv2D (outH·outW·kH·kW·inC·multiplier),
 * SeparableConv2D (depthwise + pointwise) and Dense (in·out) layers; pooling, batch-norm and
 * activations are not counted (they are a few % of the total). Nested models are walked.
 *
 * @example countMultiplyAddsPerImage(backbone.model) // ≈ 3.0e8 for MobileNetV2 224
 */
export function countMultiplyAddsPerImage(model: tf.LayersModel): number {
  let total = 0;
  for (const layer of model.layers) {
    const className = layer.getClassName();
    const config = layer.getConfig() as Record<string, unknown>;
    if (className === "Model" || className === "Sequential" || className === "Functional") {
      total += countMultiplyAddsPerImage(layer as unknown as tf.LayersModel);
      continue;
    }
    if (!["Conv2D", "DepthwiseConv2D", "SeparableConv2D", "Dense"].includes(className)) continue;
    const out = lastShape(layer.outputShape as Shape | Shape[]);
    const inputTensor = layer.input as tf.SymbolicTensor | tf.SymbolicTensor[];
    const input = (Array.isArray(inputTensor) ? inputTensor[0] : inputTensor).shape as Shape;
    const inChannels = input[input.length - 1] ?? 0;
    if (className === "Conv2D") {
      const [kh, kw] = config.kernelSize as number[];
      total += product(out.slice(1)) * kh * kw * inChannels;
    } else if (className === "DepthwiseConv2D") {
      const [kh, kw] = config.kernelSize as number[];
      total += product(out.slice(1)) * kh * kw;
    } else if (className === "SeparableConv2D") {
      const [kh, kw] = config.kernelSize as number[];
      const multiplier = (config.depthMultiplier as number) ?? 1;
      const spatial = product(out.slice(1, -1));
      total += spatial * kh * kw * inChannels * multiplier + spatial * inChannels * multiplier * (out[out.length - 1] ?? 0);
    } else if (className === "Dense") {
      total += inChannels * (out[out.length - 1] ?? 0);
    }
  }
  return total;
}
