import { createRequire } from "node:module";
import path from "node:path";
import * as tf from "@tensorflow/tfjs";
import { MelanomaLabError } from "../util/errors.js";
import { findProjectRoot } from "../util/paths.js";

/** Thrown when a gradient kernel receives attributes it cannot honour (e.g. an unknown data format). */
export class WasmGradKernelError extends MelanomaLabError {}

/**
 * Kernels the tfjs 4.22 wasm backend lacks and that training convolutional layers needs:
 * conv / depthwise-conv filter gradients, the depthwise input gradient, and UnsortedSegmentSum
 * (the gradient of `tf.gather`). {@link registerWasmGradientKernels} supplies them.
 */
export const WASM_GRADIENT_KERNEL_NAMES = [
  "Conv2DBackpropFilter",
  "DepthwiseConv2dNativeBackpropFilter",
  "DepthwiseConv2dNativeBackpropInput",
  "UnsortedSegmentSum",
] as const;

type PadAttr = "same" | "valid" | number | tf.backend_util.ExplicitPadding;
type RoundingMode = "floor" | "round" | "ceil" | undefined;
type Pair = number | [number, number];

interface KernelArgs {
  inputs: tf.NamedTensorInfoMap;
  attrs?: tf.NamedAttrMap;
}

/** Kernel inputs are TensorInfos; on the engine's own path they are Tensors, but wrap to be sure. */
function asTensor(info: tf.TensorInfo | undefined, name: string, kernel: string): tf.Tensor {
  if (info === undefined) throw new WasmGradKernelError(`${kernel}: input ${name} is missing`);
  if (info instanceof tf.Tensor) return info;
  return tf.engine().makeTensorFromTensorInfo(info);
}

function toNhwc(x: tf.Tensor, dataFormat: string | undefined, kernel: string): tf.Tensor4D {
  if (dataFormat === undefined || dataFormat === "NHWC") return x as tf.Tensor4D;
  if (dataFormat === "NCHW") return tf.transpose(x, [0, 2, 3, 1]) as tf.Tensor4D;
  throw new WasmGradKernelError(
    `${kernel}: dataFormat received ${JSON.stringify(dataFormat)}, expected "NHWC" or "NCHW"`,
  );
}

/**
 * The window of `xPadded` seen by kernel offset (i, j): rows i·dh, i·dh + sh, …, Ho of them;
 * likewise columns. [N, Ho, Wo, C].
 */
function windowAt(xPadded: tf.Tensor4D, i: number, j: number, info: tf.backend_util.Conv2DInfo): tf.Tensor4D {
  const [n, , , c] = xPadded.shape;
  const top = i * info.dilationHeight;
  const left = j * info.dilationWidth;
  const { outHeight, outWidth, strideHeight, strideWidth } = info;
  const whole = top === 0 && left === 0 && outHeight === xPadded.shape[1] && outWidth === xPadded.shape[2];
  if (whole && strideHeight === 1 && strideWidth === 1) return xPadded;
  if (strideHeight === 1 && strideWidth === 1) {
    return tf.slice(xPadded, [0, top, left, 0], [n, outHeight, outWidth, c]);
  }
  return tf.stridedSlice(
    xPadded,
    [0, top, left, 0],
    [n, top + (outHeight - 1) * strideHeight + 1, left + (outWidth - 1) * strideWidth + 1, c],
    [1, strideHeight, strideWidth, 1],
  ) as tf.Tensor4D;
}

function padSpatially(x: tf.Tensor4D, info: tf.backend_util.Conv2DInfo): tf.Tensor4D {
  const { top, bottom, left, right } = info.padInfo;
  if (top === 0 && bottom === 0 && left === 0 && right === 0) return x;
  return tf.pad(x, [
    [0, 0],
    [top, bottom],
    [left, right],
    [0, 0],
  ]);
}

/**
 * dW[i, j, ci, co] = Σ_{n, ho, wo} xPadded[n, ho·sh + i·dh, wo·sw + j·dw, ci] · dy[n, ho, wo, co]:
 * one matMul per kernel offset (a single matMul for 1×1 kernels).
 */
function conv2DBackpropFilter({ inputs, attrs }: KernelArgs): tf.Tensor {
  const kernel = "Conv2DBackpropFilter";
  const a = (attrs ?? {}) as {
    strides: Pair;
    pad: PadAttr;
    dataFormat?: "NHWC" | "NCHW";
    dimRoundingMode?: RoundingMode;
    filterShape: [number, number, number, number];
  };
  return tf.tidy(() => {
    const x = toNhwc(asTensor(inputs.x, "x", kernel), a.dataFormat, kernel);
    const dy = toNhwc(asTensor(inputs.dy, "dy", kernel), a.dataFormat, kernel);
    const [fh, fw, ci, co] = a.filterShape;
    const info = tf.backend_util.computeConv2DInfo(
      x.shape,
      a.filterShape,
      a.strides,
      1,
      a.pad,
      a.dimRoundingMode,
      false,
      "channelsLast",
    );
    const dy2 = tf.reshape(dy, [-1, co]);
    const xPadded = padSpatially(x, info);
    const perOffset: tf.Tensor[] = [];
    for (let i = 0; i < fh; i++) {
      for (let j = 0; j < fw; j++) {
        const window = windowAt(xPadded, i, j, info);
        // An explicit transpose: wasm's matMul with transposeA is ~6× slower than without.
        perOffset.push(tf.matMul(tf.transpose(tf.reshape(window, [-1, ci])), dy2));
      }
    }
    const stacked = perOffset.length === 1 ? perOffset[0] : tf.stack(perOffset);
    return tf.reshape(stacked, [fh, fw, ci, co]);
  });
}

/**
 * dW[i, j, c, m] = Σ_{n, ho, wo} xPadded[n, ho·sh + i·dh, wo·sw + j·dw, c] · dy[n, ho, wo, c·M + m]:
 * a sum of shifted-window products per kernel offset.
 */
function depthwiseBackpropFilter({ inputs, attrs }: KernelArgs): tf.Tensor {
  const kernel = "DepthwiseConv2dNativeBackpropFilter";
  const a = (attrs ?? {}) as {
    strides: Pair;
    pad: PadAttr;
    dilations?: Pair;
    dimRoundingMode?: RoundingMode;
    filterShape: [number, number, number, number];
  };
  return tf.tidy(() => {
    const x = asTensor(inputs.x, "x", kernel) as tf.Tensor4D;
    const dy = asTensor(inputs.dy, "dy", kernel) as tf.Tensor4D;
    const [fh, fw, c, m] = a.filterShape;
    const info = tf.backend_util.computeConv2DInfo(
      x.shape,
      a.filterShape,
      a.strides,
      a.dilations ?? 1,
      a.pad,
      a.dimRoundingMode,
      true,
      "channelsLast",
    );
    const rows = x.shape[0] * info.outHeight * info.outWidth;
    const dyRows = m === 1 ? tf.reshape(dy, [rows, c]) : tf.reshape(dy, [rows, c, m]);
    const xPadded = padSpatially(x, info);
    const perOffset: tf.Tensor[] = [];
    for (let i = 0; i < fh; i++) {
      for (let j = 0; j < fw; j++) {
        const window = tf.reshape(windowAt(xPadded, i, j, info), m === 1 ? [rows, c] : [rows, c, 1]);
        perOffset.push(tf.sum(tf.mul(window, dyRows), 0));
      }
    }
    return tf.reshape(tf.stack(perOffset), [fh, fw, c, m]);
  });
}

/** Inserts (stride − 1) zeros between neighbouring rows and columns: [N, (Ho−1)·sh+1, (Wo−1)·sw+1, C]. */
function dilateByStride(dy: tf.Tensor4D, strideHeight: number, strideWidth: number): tf.Tensor4D {
  const [n, ho, wo, c] = dy.shape;
  let out: tf.Tensor4D = dy;
  if (strideHeight > 1) {
    const rows = tf.pad(tf.reshape(out, [n, ho, 1, wo * c]), [
      [0, 0],
      [0, 0],
      [0, strideHeight - 1],
      [0, 0],
    ]);
    out = tf.reshape(rows, [n, ho * strideHeight, wo, c]);
  }
  const h = out.shape[1];
  if (strideWidth > 1) {
    const cols = tf.pad(tf.reshape(out, [n * h, wo, 1, c]), [
      [0, 0],
      [0, 0],
      [0, strideWidth - 1],
      [0, 0],
    ]);
    out = tf.reshape(cols, [n, h, wo * strideWidth, c]);
  }
  if (strideHeight === 1 && strideWidth === 1) return out;
  return tf.slice(out, [0, 0, 0, 0], [n, (ho - 1) * strideHeight + 1, (wo - 1) * strideWidth + 1, c]);
}

/**
 * Pads (or crops, for negative amounts) axis 1 and 2 of x: before/after amounts per axis.
 */
function padOrCrop(x: tf.Tensor4D, rows: [number, number], cols: [number, number]): tf.Tensor4D {
  const padded =
    rows.some((v) => v > 0) || cols.some((v) => v > 0)
      ? tf.pad(x, [
          [0, 0],
          [Math.max(0, rows[0]), Math.max(0, rows[1])],
          [Math.max(0, cols[0]), Math.max(0, cols[1])],
          [0, 0],
        ])
      : x;
  if (rows.every((v) => v >= 0) && cols.every((v) => v >= 0)) return padded;
  const [n, h, w, c] = padded.shape;
  const top = Math.max(0, -rows[0]);
  const left = Math.max(0, -cols[0]);
  return tf.slice(padded, [0, top, left, 0], [n, h - top - Math.max(0, -rows[1]), w - left - Math.max(0, -cols[1]), c]);
}

/**
 * dx = depthwise correlation of the stride-dilated, padded dy with the spatially flipped filter
 * (a transposed depthwise convolution), channel multipliers summed.
 */
function depthwiseBackpropInput({ inputs, attrs }: KernelArgs): tf.Tensor {
  const kernel = "DepthwiseConv2dNativeBackpropInput";
  const a = (attrs ?? {}) as {
    strides: Pair;
    pad: PadAttr;
    dilations?: Pair;
    dimRoundingMode?: RoundingMode;
    inputShape: [number, number, number, number];
  };
  return tf.tidy(() => {
    const dy = asTensor(inputs.dy, "dy", kernel) as tf.Tensor4D;
    const filter = asTensor(inputs.filter, "filter", kernel) as tf.Tensor4D;
    const [fh, fw, c, m] = filter.shape;
    const [n, h, w] = a.inputShape;
    const info = tf.backend_util.computeConv2DInfo(
      a.inputShape,
      filter.shape,
      a.strides,
      a.dilations ?? 1,
      a.pad,
      a.dimRoundingMode,
      true,
      "channelsLast",
    );
    const { dilationHeight: dh, dilationWidth: dw, effectiveFilterHeight: feh, effectiveFilterWidth: few } = info;
    const dilated = dilateByStride(dy, info.strideHeight, info.strideWidth);
    const before: [number, number] = [feh - 1 - info.padInfo.top, few - 1 - info.padInfo.left];
    // Total length must be H + feh − 1 so that a valid correlation yields exactly H rows.
    const rows: [number, number] = [before[0], h + feh - 1 - before[0] - dilated.shape[1]];
    const cols: [number, number] = [before[1], w + few - 1 - before[1] - dilated.shape[2]];
    const padded = padOrCrop(dilated, rows, cols);
    const flipped = tf.reshape(tf.reverse(filter, [0, 1]), [fh, fw, c * m, 1]) as tf.Tensor4D;
    const dx = tf.depthwiseConv2d(padded, flipped, 1, "valid", "NHWC", [dh, dw]);
    return m === 1 ? dx : tf.sum(tf.reshape(dx, [n, h, w, c, m]), 4);
  });
}

/**
 * out[s, …] = Σ_{k : ids[k] = s} x[k, …]; ids outside [0, numSegments) are dropped, as in
 * TensorFlow. Computed as oneHot(ids)ᵀ · x.
 */
function unsortedSegmentSum({ inputs, attrs }: KernelArgs): tf.Tensor {
  const kernel = "UnsortedSegmentSum";
  const { numSegments } = (attrs ?? {}) as { numSegments: number };
  return tf.tidy(() => {
    const x = asTensor(inputs.x, "x", kernel);
    const ids = asTensor(inputs.segmentIds, "segmentIds", kernel);
    const rows = ids.size;
    const inner = x.shape.slice(ids.rank);
    const innerSize = inner.reduce((p, v) => p * v, 1);
    const oneHot = tf.cast(tf.oneHot(tf.cast(tf.reshape(ids, [rows]), "int32"), numSegments), "float32");
    const xf = x.dtype === "float32" ? x : tf.cast(x, "float32");
    const summed = tf.matMul(tf.transpose(oneHot), tf.reshape(xf, [rows, innerSize]));
    const out = tf.reshape(summed, [numSegments, ...inner]);
    return x.dtype === "int32" ? tf.round(out).toInt() : out;
  });
}

/**
 * dx = correlation of the stride-dilated, padded dy with the spatially flipped filter whose in/out
 * channels are swapped (a transposed convolution), on wasm's fast conv2d.
 */
function conv2DBackpropInput({ inputs, attrs }: KernelArgs): tf.Tensor {
  const kernel = "Conv2DBackpropInput";
  const a = (attrs ?? {}) as {
    strides: Pair;
    pad: PadAttr;
    dataFormat?: "NHWC" | "NCHW";
    dimRoundingMode?: RoundingMode;
    inputShape: [number, number, number, number];
  };
  return tf.tidy(() => {
    const dy = toNhwc(asTensor(inputs.dy, "dy", kernel), a.dataFormat, kernel);
    const filter = asTensor(inputs.filter, "filter", kernel) as tf.Tensor4D;
    const [n, c, hc, wc] = a.inputShape;
    const inputShape: [number, number, number, number] = a.dataFormat === "NCHW" ? [n, hc, wc, c] : a.inputShape;
    const [, h, w] = inputShape;
    const [fh, fw] = filter.shape;
    const info = tf.backend_util.computeConv2DInfo(
      inputShape,
      filter.shape,
      a.strides,
      1,
      a.pad,
      a.dimRoundingMode,
      false,
      "channelsLast",
    );
    const dilated = dilateByStride(dy, info.strideHeight, info.strideWidth);
    const before: [number, number] = [fh - 1 - info.padInfo.top, fw - 1 - info.padInfo.left];
    const padded = padOrCrop(
      dilated,
      [before[0], h + fh - 1 - before[0] - dilated.shape[1]],
      [before[1], w + fw - 1 - before[1] - dilated.shape[2]],
    );
    const flipped = fh === 1 && fw === 1 ? filter : tf.reverse(filter, [0, 1]);
    const dx = tf.conv2d(padded, tf.transpose(flipped, [0, 1, 3, 2]) as tf.Tensor4D, 1, "valid");
    return a.dataFormat === "NCHW" ? tf.transpose(dx, [0, 3, 1, 2]) : dx;
  });
}

type KernelFuncOf = (args: KernelArgs & { backend: unknown }) => tf.TensorInfo | tf.TensorInfo[];

/**
 * Tile that only repeats size-1 axes is a broadcast: x + zeros(reps) runs on wasm's SIMD binary
 * kernel (~60× faster than its Tile; BatchNorm gradients tile this way). Other tiles go to the
 * original kernel.
 */
function makeTile(original: tf.KernelConfig | undefined): KernelFuncOf {
  return (args) => {
    const info = args.inputs.x;
    if (info === undefined) throw new WasmGradKernelError("Tile: input x is missing");
    const { reps } = (args.attrs ?? {}) as { reps: number[] };
    const broadcastOnly = reps.length === info.shape.length && reps.every((r, i) => r === 1 || info.shape[i] === 1);
    if (broadcastOnly && (info.dtype === "float32" || info.dtype === "int32")) {
      return tf.tidy(() =>
        tf.add(
          asTensor(info, "x", "Tile"),
          tf.zeros(
            reps.map((r, i) => (info.shape[i] === 1 ? r : 1)),
            info.dtype,
          ),
        ),
      );
    }
    if (!original)
      throw new WasmGradKernelError(
        `Tile: reps ${JSON.stringify(reps)} on shape ${JSON.stringify(info.shape)} needs the original wasm Tile kernel, which is not registered`,
      );
    return original.kernelFunc(args as unknown as Parameters<tf.KernelFunc>[0]);
  };
}

/**
 * A matrix product with a transposed operand (every Dense/1×1-conv weight gradient is one) runs
 * 5–12× slower on wasm than transposing that operand first and multiplying plainly (measured here:
 * [392,960]ᵀ·[392,320] 120 ms vs 10 ms; [32,1280]ᵀ·[32,128] 6.4 ms vs 1.3 ms). For BatchMatMul
 * and _FusedMatMul: transposes the flagged operands' last two axes, then runs the original kernel
 * with both flags off. Products without transposes go straight to the original.
 */
function makeMatMulWithoutTransposes(kernelName: string, original: tf.KernelConfig | undefined): KernelFuncOf {
  return (args) => {
    if (!original) throw new WasmGradKernelError(`${kernelName}: the original wasm kernel is not registered`);
    const run = original.kernelFunc as unknown as KernelFuncOf;
    const attrs = (args.attrs ?? {}) as { transposeA?: boolean; transposeB?: boolean };
    if (attrs.transposeA !== true && attrs.transposeB !== true) return run(args);
    const made: tf.Tensor[] = [];
    const swapLastAxes = (info: tf.TensorInfo | undefined, name: string): tf.Tensor => {
      const x = asTensor(info, name, kernelName);
      if (x !== info) made.push(x);
      const rank = x.shape.length;
      const perm = [...Array.from({ length: rank - 2 }, (_, i) => i), rank - 1, rank - 2];
      const swapped = tf.transpose(x, perm);
      made.push(swapped);
      return swapped;
    };
    try {
      const inputs = { ...args.inputs };
      if (attrs.transposeA === true) inputs.a = swapLastAxes(inputs.a, "a");
      if (attrs.transposeB === true) inputs.b = swapLastAxes(inputs.b, "b");
      return run({ ...args, inputs, attrs: { ...args.attrs, transposeA: false, transposeB: false } });
    } finally {
      // The kernel's output has its own buffer, so the transposed copies can go.
      tf.dispose(made);
    }
  };
}

/**
 * Kernels wasm has but runs far slower than the same math on its fast kernels (measured on this
 * machine: Conv2DBackpropInput 1×1, batch 8 at 7×7×960→320: 311 ms vs 19 ms as a conv2d; Tile of
 * [8,1,1,1280] to [8,7,7,1280]: 111 ms vs 2 ms as a broadcast add; a matrix product with a
 * transposed operand 5–12× slower than transposing first). Replaced by
 * {@link registerWasmGradientKernels} unless told not to.
 */
export const WASM_REPLACED_KERNEL_NAMES = ["Conv2DBackpropInput", "Tile", "BatchMatMul", "_FusedMatMul"] as const;

const ours = new Set<unknown>();

const KERNELS: Record<(typeof WASM_GRADIENT_KERNEL_NAMES)[number], (args: KernelArgs) => tf.Tensor> = {
  Conv2DBackpropFilter: conv2DBackpropFilter,
  DepthwiseConv2dNativeBackpropFilter: depthwiseBackpropFilter,
  DepthwiseConv2dNativeBackpropInput: depthwiseBackpropInput,
  UnsortedSegmentSum: unsortedSegmentSum,
};

/**
 * Registers, for the "wasm" backend, the gradient kernels that tfjs-backend-wasm 4.22 lacks
 * ({@link WASM_GRADIENT_KERNEL_NAMES}), built from ops wasm has (pad, strided slices, matMul,
 * depthwiseConv2d, oneHot). Without them training any conv layer on wasm throws, and the wasm
 * heap is unusable afterwards. Unless `replaceSlowKernels` is false it also replaces
 * {@link WASM_REPLACED_KERNEL_NAMES} with equivalent faster compositions. Idempotent: missing
 * kernels already registered for wasm (ours from an earlier call, or native ones in a later
 * tfjs) are left alone, and replacements happen once. Safe to call before the wasm backend is
 * initialised. Returns the names it registered by this call.
 *
 * @example
 * registerWasmGradientKernels(); // ["Conv2DBackpropFilter", …, "Tile"] the first time, [] afterwards
 * await selectBackend({ preferred: "wasm" });
 */
export function registerWasmGradientKernels(options: { replaceSlowKernels?: boolean } = {}): string[] {
  const registered: string[] = [];
  for (const kernelName of WASM_GRADIENT_KERNEL_NAMES) {
    if (tf.getKernel(kernelName, "wasm") !== undefined) continue;
    ours.add(KERNELS[kernelName]);
    tf.registerKernel({ kernelName, backendName: "wasm", kernelFunc: KERNELS[kernelName] as unknown as tf.KernelFunc });
    registered.push(kernelName);
  }
  if (options.replaceSlowKernels === false) return registered;
  try {
    // Importing the package registers its kernels; it must happen before we replace some, or
    // a later import (selectBackend's) would put the slow ones back.
    createRequire(path.join(findProjectRoot(), "package.json"))("@tensorflow/tfjs-backend-wasm");
  } catch {
    return registered;
  }
  for (const kernelName of WASM_REPLACED_KERNEL_NAMES) {
    const original = tf.getKernel(kernelName, "wasm");
    if (original && ours.has(original.kernelFunc)) continue;
    const kernelFunc =
      kernelName === "Tile"
        ? makeTile(original)
        : kernelName === "Conv2DBackpropInput"
          ? conv2DBackpropInput
          : makeMatMulWithoutTransposes(kernelName, original);
    ours.add(kernelFunc);
    if (original) tf.unregisterKernel(kernelName, "wasm");
    // Keep the original's setup: our Tile falls back to it, and it may not have run yet.
    tf.registerKernel({
      kernelName,
      backendName: "wasm",
      kernelFunc: kernelFunc as unknown as tf.KernelFunc,
      setupFunc: original?.setupFunc,
      disposeFunc: original?.disposeFunc,
    });
    registered.push(kernelName);
  }
  return registered;
}

/**
 * Whether the kernel tfjs would run for `kernelName` on wasm is one of ours
 * (from {@link registerWasmGradientKernels}).
 *
 * @example isOwnWasmKernel("Tile") // true after registerWasmGradientKernels()
 */
export function isOwnWasmKernel(kernelName: string): boolean {
  const kernel = tf.getKernel(kernelName, "wasm");
  return kernel !== undefined && ours.has(kernel.kernelFunc);
}

/**
 * Names of {@link WASM_GRADIENT_KERNEL_NAMES} that have no kernel for `backendName` (default
 * "wasm"): empty once {@link registerWasmGradientKernels} ran. Check before the first gradient.
 *
 * @example missingGradientKernels() // [] after registerWasmGradientKernels()
 */
export function missingGradientKernels(backendName = "wasm"): string[] {
  return WASM_GRADIENT_KERNEL_NAMES.filter((name) => tf.getKernel(name, backendName) === undefined);
}
