import * as tf from "@tensorflow/tfjs";
import { MelanomaLabError } from "../util/errors.js";
import type { PreprocessingSpec } from "./types.js";

/** Thrown when pixel buffers do not match the count and size they are said to have. */
export class PixelShapeError extends MelanomaLabError {}

/**
 * Applies a {@link PreprocessingSpec} to a batch of 8-bit RGB images (HWC, images back to back)
 * and returns a float tensor [count, sizePx, sizePx, 3] ready for a backbone. The arithmetic is
 * done in JavaScript so no intermediate tensors exist; the caller disposes the result.
 *
 * @example
 * const x = preprocessImages(rgb, 1, 224, { kind: "scale", scale: 1 / 127.5, offset: -1 });
 * // pixel 0 → -1, pixel 255 → 1
 */
export function preprocessImages(
  uint8Pixels: Uint8Array,
  count: number,
  sizePx: number,
  spec: PreprocessingSpec,
): tf.Tensor4D {
  const expected = count * sizePx * sizePx * 3;
  if (uint8Pixels.length !== expected) {
    throw new PixelShapeError(
      `pixels: received ${uint8Pixels.length} bytes, expected count ${count} × ${sizePx} × ${sizePx} × 3 = ${expected}`,
    );
  }
  return tf.tensor4d(preprocessToFloat32(uint8Pixels, spec), [count, sizePx, sizePx, 3], "float32");
}

/**
 * The same arithmetic as {@link preprocessImages} on a flat buffer, returning a Float32Array
 * (HWC order kept; "caffe" swaps each pixel's RGB to BGR).
 *
 * @example preprocessToFloat32(new Uint8Array([0, 255, 51]), { kind: "scale", scale: 1 / 255, offset: 0 }) // [0, 1, 0.2]
 */
export function preprocessToFloat32(uint8Pixels: Uint8Array, spec: PreprocessingSpec): Float32Array {
  const out = new Float32Array(uint8Pixels.length);
  if (spec.kind === "scale") {
    const { scale, offset } = spec;
    for (let i = 0; i < uint8Pixels.length; i++) out[i] = uint8Pixels[i] * scale + offset;
  } else if (spec.kind === "normalize") {
    if (uint8Pixels.length % 3 !== 0) {
      throw new PixelShapeError(`pixels: ${uint8Pixels.length} bytes is not a whole number of RGB pixels`);
    }
    // (x / 255 − mean) / std, as one multiply-add per channel.
    const scales = spec.std.map((s) => 1 / (255 * s));
    const offsets = spec.mean.map((m, c) => -m / spec.std[c]);
    for (let i = 0; i < uint8Pixels.length; i += 3) {
      out[i] = uint8Pixels[i] * scales[0] + offsets[0];
      out[i + 1] = uint8Pixels[i + 1] * scales[1] + offsets[1];
      out[i + 2] = uint8Pixels[i + 2] * scales[2] + offsets[2];
    }
  } else {
    if (uint8Pixels.length % 3 !== 0) {
      throw new PixelShapeError(`pixels: ${uint8Pixels.length} bytes is not a whole number of RGB pixels`);
    }
    const [mb, mg, mr] = spec.meanBgr;
    for (let i = 0; i < uint8Pixels.length; i += 3) {
      out[i] = uint8Pixels[i + 2] - mb;
      out[i + 1] = uint8Pixels[i + 1] - mg;
      out[i + 2] = uint8Pixels[i] - mr;
    }
  }
  return out;
}

/**
 * One line describing a spec, e.g. "x * 0.00392157 + 0" for reports and metadata.
 *
 * @example describePreprocessing({ kind: "scale", scale: 1 / 127.5, offset: -1 }) // "x * 0.00784314 + -1"
 */
export function describePreprocessing(spec: PreprocessingSpec): string {
  if (spec.kind === "scale") return `x * ${Number(spec.scale.toPrecision(6))} + ${spec.offset}`;
  if (spec.kind === "normalize") return `(x / 255 − mean [${spec.mean.join(", ")}]) / std [${spec.std.join(", ")}]`;
  return `RGB→BGR, minus mean BGR [${spec.meanBgr.join(", ")}]`;
}
