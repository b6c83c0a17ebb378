import onnxProto from "onnx-proto";
import { MelanomaLabError } from "../util/errors.js";
import { loadOnnxRuntime, RuntimeUnavailableError } from "./selectRuntime.js";

const { onnx } = onnxProto;

/** Thrown for a matrix size or repeat count the sgemm measurement cannot use. */
export class SgemmSizeError extends MelanomaLabError {}

/**
 * A one-node ONNX graph `C = MatMul(A, B)`: float32 inputs `A` [m, k] and `B` [k, n], output
 * `C` [m, n] (opset 13). The smallest model whose run time is one native sgemm in ONNX Runtime.
 *
 * @example const bytes = buildMatMulOnnxModel(1024, 1024, 1024); // a .onnx file's bytes
 */
export function buildMatMulOnnxModel(m: number, k: number, n: number): Uint8Array {
  for (const [name, value] of [
    ["m", m],
    ["k", k],
    ["n", n],
  ] as const) {
    if (!Number.isInteger(value) || value < 1) {
      throw new SgemmSizeError(`${name}: received ${value}, expected a whole number ≥ 1`);
    }
  }
  const FLOAT = onnx.TensorProto.DataType.FLOAT;
  const info = (name: string, dims: number[]) =>
    onnx.ValueInfoProto.create({
      name,
      type: onnx.TypeProto.create({
        tensorType: onnx.TypeProto.Tensor.create({
          elemType: FLOAT,
          shape: onnx.TensorShapeProto.create({
            dim: dims.map((d) => onnx.TensorShapeProto.Dimension.create({ dimValue: d })),
          }),
        }),
      }),
    });
  const model = onnx.ModelProto.create({
    irVersion: 7,
    producerName: "melanoma-lab sgemm probe",
    opsetImport: [onnx.OperatorSetIdProto.create({ domain: "", version: 13 })],
    graph: onnx.GraphProto.create({
      name: `matmul_${m}x${k}x${n}`,
      node: [onnx.NodeProto.create({ opType: "MatMul", input: ["A", "B"], output: ["C"], name: "matmul" })],
      input: [info("A", [m, k]), info("B", [k, n])],
      output: [info("C", [m, n])],
    }),
  });
  return onnx.ModelProto.encode(model).finish();
}

/** One size of {@link measureOnnxSgemmPeak}. */
export interface SgemmSizeResult {
  /** Square size n of the n×n·n×n product. */
  size: number;
  /** Fastest run (after a warm-up), milliseconds. */
  bestMs: number;
  /** 2·n³ / bestMs: floating-point operations per second (a multiply-add counts 2). */
  flopsPerSecond: number;
}

/** What {@link measureOnnxSgemmPeak} measured for one thread count. */
export interface SgemmPeak {
  intraOpThreads: number;
  /** The best flopsPerSecond over the sizes: this machine's native sgemm peak at that thread count. */
  peakFlopsPerSecond: number;
  /** Size that reached the peak. */
  peakSize: number;
  bySize: SgemmSizeResult[];
}

/**
 * Measures the native single-precision GEMM rate through ONNX Runtime (MLAS) on this machine:
 * for each square `size`, a one-node MatMul graph ({@link buildMatMulOnnxModel}) with random
 * inputs runs once to warm up, then `repeats` times and until `minMsPerSize` ms were spent; the fastest run
 * gives 2·n³/seconds FLOP/s. The peak is the best size. Throws {@link RuntimeUnavailableError}
 * when onnxruntime-node does not load, {@link SgemmSizeError} for a bad size or repeat count.
 *
 * @example const peak = await measureOnnxSgemmPeak({ intraOpThreads: 2 }); // peak.peakFlopsPerSecond ≈ 1.7e11 on 2 cores
 */
export async function measureOnnxSgemmPeak(options: {
  intraOpThreads: number;
  sizes?: readonly number[];
  repeats?: number;
  /** Keep repeating each size until this much time was spent (default 1000 ms): on a shared machine the fastest run is the least disturbed. */
  minMsPerSize?: number;
}): Promise<SgemmPeak> {
  const sizes = options.sizes ?? [512, 1024, 1536, 2048];
  const repeats = options.repeats ?? 5;
  if (!Number.isInteger(repeats) || repeats < 1) {
    throw new SgemmSizeError(`repeats: received ${repeats}, expected a whole number ≥ 1`);
  }
  if (sizes.length === 0) throw new SgemmSizeError("sizes: received [], expected at least one size such as 1024");
  const loaded = await loadOnnxRuntime();
  if ("error" in loaded)
    throw new RuntimeUnavailableError(`cannot measure the ONNX Runtime sgemm peak: ${loaded.error}`);
  const { ort } = loaded;
  const bySize: SgemmSizeResult[] = [];
  for (const size of sizes) {
    const session = await ort.InferenceSession.create(buildMatMulOnnxModel(size, size, size), {
      graphOptimizationLevel: "all",
      intraOpNumThreads: options.intraOpThreads,
      interOpNumThreads: 1,
      executionMode: "sequential",
    });
    // Values in [-1, 1) from a fixed linear congruential sequence: no denormals, same work every run.
    const values = new Float32Array(size * size);
    let state = 12345;
    for (let i = 0; i < values.length; i++) {
      state = (Math.imul(state, 1103515245) + 12345) >>> 0;
      values[i] = state / 2 ** 31 - 1;
    }
    const a = new ort.Tensor("float32", values, [size, size]);
    const b = new ort.Tensor("float32", values.slice().reverse(), [size, size]);
    try {
      const runOnce = async () => {
        const t0 = performance.now();
        const out = await session.run({ A: a, B: b });
        const ms = performance.now() - t0;
        out.C.dispose();
        return ms;
      };
      await runOnce();
      let best = Infinity;
      let spentMs = 0;
      const minMs = options.minMsPerSize ?? 1000;
      for (let r = 0; r < repeats || spentMs < minMs; r++) {
        const ms = await runOnce();
        best = Math.min(best, ms);
        spentMs += ms;
        if (r >= repeats * 20) break;
      }
      bySize.push({ size, bestMs: best, flopsPerSecond: (2 * size ** 3) / (best / 1000) });
    } finally {
      a.dispose();
      b.dispose();
      await session.release();
    }
  }
  const best = bySize.reduce((x, y) => (y.flopsPerSecond > x.flopsPerSecond ? y : x));
  return {
    intraOpThreads: options.intraOpThreads,
    peakFlopsPerSecond: best.flopsPerSecond,
    peakSize: best.size,
    bySize,
  };
}
