import * as tf from "@tensorflow/tfjs";
import { beforeAll, describe, expect, it } from "vitest";
import { selectBackend } from "../../lib/index.js";
import {
  isOwnWasmKernel,
  missingGradientKernels,
  registerWasmGradientKernels,
  WASM_GRADIENT_KERNEL_NAMES,
  WASM_REPLACED_KERNEL_NAMES,
} from "../../lib/backend/wasmGradKernels.js";

type Shape4 = [number, number, number, number];
type Pad = "same" | "valid" | [[number, number], [number, number], [number, number], [number, number]];

/** Runs `make` on a backend and returns its values; the inputs come from seeded generators so both backends see the same numbers. */
async function valuesOn(backend: "cpu" | "wasm", make: () => tf.Tensor): Promise<Float32Array> {
  expect(await tf.setBackend(backend)).toBe(true);
  const out = make();
  const values = (await out.data()) as Float32Array;
  out.dispose();
  return Float32Array.from(values);
}

/** Same-valued random inputs on either backend (the seeded generator runs in JS, not in the kernel). */
function seeded(shape: number[], seed: number): tf.Tensor {
  return tf.randomUniform(shape, -1, 1, "float32", seed);
}

async function expectParity(make: () => tf.Tensor, tolerance = 1e-4): Promise<void> {
  const reference = await valuesOn("cpu", make);
  const before = tf.memory().numTensors;
  const actual = await valuesOn("wasm", make);
  expect(tf.memory().numTensors).toBe(before);
  expect(actual.length).toBe(reference.length);
  let worst = 0;
  for (let i = 0; i < reference.length; i++) worst = Math.max(worst, Math.abs(actual[i] - reference[i]));
  expect(worst).toBeLessThan(tolerance);
  // A kernel that returned zeros would also "match" an all-zero reference: make sure it is not one.
  expect(reference.some((v) => Math.abs(v) > 1e-3)).toBe(true);
}

interface ConvCase {
  heightPx: number;
  widthPx: number;
  filterPx: number;
  stride: number;
  pad: Pad;
  channels: number;
  /** Output channels (conv) or channel multiplier (depthwise). */
  outChannels: number;
  dilation?: number;
}

const CONV_CASES: ConvCase[] = [
  { heightPx: 7, widthPx: 7, filterPx: 1, stride: 1, pad: "valid", channels: 6, outChannels: 4 },
  { heightPx: 8, widthPx: 9, filterPx: 3, stride: 2, pad: "same", channels: 4, outChannels: 5 },
  { heightPx: 9, widthPx: 8, filterPx: 3, stride: 2, pad: "valid", channels: 3, outChannels: 2 },
  { heightPx: 7, widthPx: 7, filterPx: 3, stride: 1, pad: "same", channels: 5, outChannels: 3 },
  { heightPx: 10, widthPx: 11, filterPx: 5, stride: 2, pad: "same", channels: 2, outChannels: 3 },
  {
    heightPx: 6,
    widthPx: 7,
    filterPx: 3,
    stride: 1,
    pad: [
      [0, 0],
      [1, 2],
      [2, 0],
      [0, 0],
    ],
    channels: 3,
    outChannels: 2,
  },
];

function describeCase(c: ConvCase): string {
  return `${c.heightPx}×${c.widthPx}×${c.channels}, ${c.filterPx}×${c.filterPx} filter, stride ${c.stride}, pad ${JSON.stringify(c.pad)}${c.dilation ? `, dilation ${c.dilation}` : ""}`;
}

describe("wasm gradient kernels", () => {
  beforeAll(async () => {
    // Register before any gradient runs: a missing kernel leaves the wasm heap unusable.
    registerWasmGradientKernels();
    await selectBackend({ preferred: "wasm" });
  });

  it("registers every missing kernel once and is idempotent", () => {
    expect(missingGradientKernels("wasm")).toEqual([]);
    for (const name of WASM_GRADIENT_KERNEL_NAMES) expect(tf.getKernel(name, "wasm")?.backendName).toBe("wasm");
    for (const name of [...WASM_GRADIENT_KERNEL_NAMES, ...WASM_REPLACED_KERNEL_NAMES])
      expect(isOwnWasmKernel(name)).toBe(true);
    expect(isOwnWasmKernel("Conv2D")).toBe(false);
    expect(registerWasmGradientKernels()).toEqual([]);
    expect(missingGradientKernels("no-such-backend")).toEqual([...WASM_GRADIENT_KERNEL_NAMES]);
  });

  for (const c of CONV_CASES) {
    it(`Conv2DBackpropFilter matches cpu: ${describeCase(c)}`, async () => {
      const xShape: Shape4 = [2, c.heightPx, c.widthPx, c.channels];
      const filterShape: Shape4 = [c.filterPx, c.filterPx, c.channels, c.outChannels];
      const info = tf.backend_util.computeConv2DInfo(xShape, filterShape, c.stride, 1, c.pad);
      await expectParity(() =>
        tf.tidy(
          () =>
            tf
              .engine()
              .runKernel(
                "Conv2DBackpropFilter",
                { x: seeded(xShape, 1), dy: seeded([2, info.outHeight, info.outWidth, c.outChannels], 2) },
                { strides: c.stride, pad: c.pad, dataFormat: "NHWC", filterShape },
              ) as tf.Tensor,
        ),
      );
    });
  }

  for (const c of CONV_CASES) {
    it(`Conv2DBackpropInput (replaced) matches cpu: ${describeCase(c)}`, async () => {
      const xShape: Shape4 = [2, c.heightPx, c.widthPx, c.channels];
      const filterShape: Shape4 = [c.filterPx, c.filterPx, c.channels, c.outChannels];
      const info = tf.backend_util.computeConv2DInfo(xShape, filterShape, c.stride, 1, c.pad);
      await expectParity(() =>
        tf.tidy(
          () =>
            tf
              .engine()
              .runKernel(
                "Conv2DBackpropInput",
                { dy: seeded([2, info.outHeight, info.outWidth, c.outChannels], 2), filter: seeded(filterShape, 3) },
                { strides: c.stride, pad: c.pad, dataFormat: "NHWC", inputShape: xShape },
              ) as tf.Tensor,
        ),
      );
    });
  }

  it("Conv2DBackpropInput (replaced) honours NCHW, and conv2dTranspose still works", async () => {
    await expectParity(() =>
      tf.tidy(
        () =>
          tf
            .engine()
            .runKernel(
              "Conv2DBackpropInput",
              { dy: seeded([2, 5, 5, 4], 4), filter: seeded([3, 3, 4, 5], 5) },
              { strides: 2, pad: "same", dataFormat: "NCHW", inputShape: [2, 4, 9, 8] },
            ) as tf.Tensor,
      ),
    );
    await expectParity(() =>
      tf.tidy(() =>
        tf.conv2dTranspose(
          seeded([1, 4, 4, 3], 6) as tf.Tensor4D,
          seeded([3, 3, 2, 3], 7) as tf.Tensor4D,
          [1, 8, 8, 2],
          2,
          "same",
        ),
      ),
    );
  });

  it("Tile (replaced) matches cpu for broadcasts, other repeats and int32", async () => {
    await expectParity(() => tf.tidy(() => tf.tile(seeded([2, 1, 1, 5], 8), [1, 3, 4, 1])));
    await expectParity(() => tf.tidy(() => tf.tile(seeded([2, 3], 9), [2, 2])));
    await expectParity(() =>
      tf.tidy(() => tf.cast(tf.tile(tf.tensor2d([[1], [2]], [2, 1], "int32"), [1, 3]), "float32")),
    );
  });

  it("BatchMatMul (replaced) matches cpu with either or both operands transposed, batched or not", async () => {
    for (const [transposeA, transposeB] of [
      [true, false],
      [false, true],
      [true, true],
      [false, false],
    ]) {
      const a = transposeA ? [7, 5] : [5, 7];
      const b = transposeB ? [3, 7] : [7, 3];
      await expectParity(() => tf.tidy(() => tf.matMul(seeded(a, 11), seeded(b, 12), transposeA, transposeB)));
      await expectParity(() =>
        tf.tidy(() => tf.matMul(seeded([2, ...a], 13), seeded([2, ...b], 14), transposeA, transposeB)),
      );
    }
  });

  it("_FusedMatMul (replaced) matches cpu with transposed operands, bias and activation", async () => {
    await expectParity(() =>
      tf.tidy(() =>
        tf.fused.matMul({
          a: seeded([6, 4], 15),
          b: seeded([5, 6], 16),
          transposeA: true,
          transposeB: true,
          bias: seeded([5], 17),
          activation: "relu",
        }),
      ),
    );
  });

  it("a Dense layer's weight gradient (a transposed product) matches cpu", async () => {
    await expectParity(() =>
      tf.tidy(() => {
        const x = seeded([9, 6], 18);
        const w = seeded([6, 4], 19);
        return tf.grad((wv: tf.Tensor) => tf.sum(tf.square(tf.matMul(x, wv))))(w);
      }),
    );
  });

  it("Conv2DBackpropFilter honours NCHW input", async () => {
    const filterShape: Shape4 = [3, 3, 4, 5];
    await expectParity(() =>
      tf.tidy(
        () =>
          tf
            .engine()
            .runKernel(
              "Conv2DBackpropFilter",
              { x: seeded([2, 4, 8, 9], 3), dy: seeded([2, 5, 4, 5], 4) },
              { strides: 2, pad: "same", dataFormat: "NCHW", filterShape },
            ) as tf.Tensor,
      ),
    );
  });

  const depthwiseCases: ConvCase[] = [
    ...CONV_CASES.map((c) => ({ ...c, outChannels: 1 })),
    ...CONV_CASES.filter((c) => c.filterPx > 1).map((c) => ({ ...c, outChannels: 2 })),
  ];
  for (const c of depthwiseCases) {
    const dilation = c.dilation ?? 1;
    const xShape: Shape4 = [2, c.heightPx, c.widthPx, c.channels];
    const filterShape: Shape4 = [c.filterPx, c.filterPx, c.channels, c.outChannels];
    const info = tf.backend_util.computeConv2DInfo(xShape, filterShape, c.stride, dilation, c.pad, undefined, true);
    const dyShape = [2, info.outHeight, info.outWidth, c.channels * c.outChannels];

    it(`DepthwiseConv2dNativeBackpropFilter matches cpu: ${describeCase(c)}, multiplier ${c.outChannels}`, async () => {
      await expectParity(() =>
        tf.tidy(
          () =>
            tf
              .engine()
              .runKernel(
                "DepthwiseConv2dNativeBackpropFilter",
                { x: seeded(xShape, 5), dy: seeded(dyShape, 6) },
                { strides: c.stride, pad: c.pad, dilations: dilation, filterShape },
              ) as tf.Tensor,
        ),
      );
    });

    it(`DepthwiseConv2dNativeBackpropInput matches cpu: ${describeCase(c)}, multiplier ${c.outChannels}`, async () => {
      await expectParity(() =>
        tf.tidy(
          () =>
            tf
              .engine()
              .runKernel(
                "DepthwiseConv2dNativeBackpropInput",
                { dy: seeded(dyShape, 7), filter: seeded(filterShape, 8) },
                { strides: c.stride, pad: c.pad, dilations: dilation, inputShape: xShape },
              ) as tf.Tensor,
        ),
      );
    });
  }

  // tfjs's cpu depthwise backprop kernels ignore dilations (its gradient refuses them), so dilated
  // cases are checked by the adjoint identity ⟨dy, conv(x, W)⟩ = ⟨dW(x, dy), W⟩ = ⟨x, dX(dy, W)⟩
  // with wasm's forward depthwiseConv2d, itself checked against cpu's forward pass.
  const dilatedCases: ConvCase[] = [
    { heightPx: 9, widthPx: 10, filterPx: 3, stride: 1, pad: "same", channels: 3, outChannels: 1, dilation: 2 },
    { heightPx: 9, widthPx: 9, filterPx: 3, stride: 1, pad: "valid", channels: 2, outChannels: 2, dilation: 2 },
  ];
  for (const c of dilatedCases) {
    it(`depthwise backprop kernels are the adjoints of the dilated forward pass: ${describeCase(c)}, multiplier ${c.outChannels}`, async () => {
      const dilation = c.dilation!;
      const xShape: Shape4 = [2, c.heightPx, c.widthPx, c.channels];
      const filterShape: Shape4 = [c.filterPx, c.filterPx, c.channels, c.outChannels];
      const info = tf.backend_util.computeConv2DInfo(xShape, filterShape, c.stride, dilation, c.pad, undefined, true);
      const dyShape = [2, info.outHeight, info.outWidth, c.channels * c.outChannels];
      const pad = c.pad as "same" | "valid";
      await expectParity(() =>
        tf.tidy(() =>
          tf.depthwiseConv2d(
            seeded(xShape, 1) as tf.Tensor4D,
            seeded(filterShape, 2) as tf.Tensor4D,
            c.stride,
            pad,
            "NHWC",
            dilation,
          ),
        ),
      );
      expect(await tf.setBackend("wasm")).toBe(true);
      const before = tf.memory().numTensors;
      const [forward, viaFilter, viaInput] = tf.tidy(() => {
        const x = seeded(xShape, 1) as tf.Tensor4D;
        const w = seeded(filterShape, 2) as tf.Tensor4D;
        const dy = seeded(dyShape, 3);
        const attrs = { strides: c.stride, pad, dilations: dilation };
        const dW = tf
          .engine()
          .runKernel("DepthwiseConv2dNativeBackpropFilter", { x, dy }, { ...attrs, filterShape }) as tf.Tensor;
        const dX = tf
          .engine()
          .runKernel(
            "DepthwiseConv2dNativeBackpropInput",
            { dy, filter: w },
            { ...attrs, inputShape: xShape },
          ) as tf.Tensor;
        return [
          tf.sum(tf.mul(dy, tf.depthwiseConv2d(x, w, c.stride, pad, "NHWC", dilation))).dataSync()[0],
          tf.sum(tf.mul(dW, w)).dataSync()[0],
          tf.sum(tf.mul(dX, x)).dataSync()[0],
        ];
      });
      expect(tf.memory().numTensors).toBe(before);
      expect(Math.abs(forward)).toBeGreaterThan(0.1);
      expect(Math.abs(viaFilter - forward)).toBeLessThan(1e-4 * Math.max(1, Math.abs(forward)));
      expect(Math.abs(viaInput - forward)).toBeLessThan(1e-4 * Math.max(1, Math.abs(forward)));
    });
  }

  it("UnsortedSegmentSum matches hand-computed sums and drops out-of-range ids", async () => {
    expect(await tf.setBackend("wasm")).toBe(true);
    const before = tf.memory().numTensors;
    const out = tf.tidy(
      () =>
        tf.engine().runKernel(
          "UnsortedSegmentSum",
          {
            x: tf.tensor2d([
              [1, 2],
              [3, 4],
              [5, 6],
              [7, 8],
              [9, 10],
            ]),
            segmentIds: tf.tensor1d([2, 0, 2, -1, 3], "int32"),
          },
          { numSegments: 4 },
        ) as tf.Tensor,
    );
    expect(out.shape).toEqual([4, 2]);
    // segment 0: row 1; segment 1: nothing; segment 2: rows 0 + 2; segment 3: row 4; id -1 dropped.
    expect(Array.from(out.dataSync())).toEqual([3, 4, 0, 0, 6, 8, 9, 10]);
    out.dispose();
    expect(tf.memory().numTensors).toBe(before);
    await expectParity(() =>
      tf.tidy(
        () =>
          tf
            .engine()
            .runKernel(
              "UnsortedSegmentSum",
              { x: seeded([6, 3, 2], 9), segmentIds: tf.tensor1d([0, 4, 4, 1, 2, 0], "int32") },
              { numSegments: 5 },
            ) as tf.Tensor,
      ),
    );
  });

  it("gives the same gradients as cpu for a conv → depthwise → gather network, without leaking", async () => {
    // Each backend gets its own variables (initialised from the same seeds) and computes d loss / d weights.
    const gradientsOn = async (backend: "cpu" | "wasm"): Promise<Float32Array[]> => {
      expect(await tf.setBackend(backend)).toBe(true);
      const x = seeded([3, 9, 9, 4], 11);
      const w1 = tf.variable(seeded([3, 3, 4, 6], 12));
      const w2 = tf.variable(seeded([3, 3, 6, 1], 13));
      const w3 = tf.variable(seeded([1, 1, 6, 8], 14));
      const before = tf.memory().numTensors;
      const { grads, value } = tf.variableGrads(() => {
        const h1 = tf.relu6(tf.conv2d(x as tf.Tensor4D, w1 as tf.Tensor4D, 2, "same"));
        const h2 = tf.depthwiseConv2d(h1, w2 as tf.Tensor4D, 1, "same");
        const h3 = tf.fused.conv2d({ x: h2, filter: w3 as tf.Tensor4D, strides: 1, pad: "valid", activation: "relu" });
        const picked = tf.gather(tf.reshape(h3, [-1, 8]), tf.tensor1d([0, 5, 5, 17, 40], "int32"));
        return tf.sum(tf.square(picked)) as tf.Scalar;
      }, [w1, w2, w3]);
      const out = [w1, w2, w3].map((w) => Float32Array.from(grads[w.name].dataSync()));
      tf.dispose([value, ...Object.values(grads)]);
      expect(tf.memory().numTensors).toBe(before);
      tf.dispose([x, w1, w2, w3]);
      return out;
    };
    const reference = await gradientsOn("cpu");
    const actual = await gradientsOn("wasm");
    for (let k = 0; k < reference.length; k++) {
      expect(reference[k].some((v) => Math.abs(v) > 1e-3)).toBe(true);
      let worst = 0;
      let scale = 0;
      for (let i = 0; i < reference[k].length; i++) {
        worst = Math.max(worst, Math.abs(actual[k][i] - reference[k][i]));
        scale = Math.max(scale, Math.abs(reference[k][i]));
      }
      expect(worst / scale).toBeLessThan(1e-5);
    }
  });
});
