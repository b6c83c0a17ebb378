import { describe, expect, it } from "vitest";
import * as ort from "onnxruntime-node";
import { buildMatMulOnnxModel, measureOnnxSgemmPeak, SgemmSizeError } from "../../lib/backend/onnxSgemm.js";

describe("buildMatMulOnnxModel", () => {
  it("is a MatMul graph that ONNX Runtime runs to the hand-computed product", async () => {
    const session = await ort.InferenceSession.create(buildMatMulOnnxModel(2, 3, 2));
    expect(session.inputNames).toEqual(["A", "B"]);
    expect(session.outputNames).toEqual(["C"]);
    // [[1,2,3],[4,5,6]] · [[7,8],[9,10],[11,12]] = [[58,64],[139,154]]
    const a = new ort.Tensor("float32", Float32Array.from([1, 2, 3, 4, 5, 6]), [2, 3]);
    const b = new ort.Tensor("float32", Float32Array.from([7, 8, 9, 10, 11, 12]), [3, 2]);
    const out = await session.run({ A: a, B: b });
    expect(out.C.dims).toEqual([2, 2]);
    expect(Array.from(out.C.data as Float32Array)).toEqual([58, 64, 139, 154]);
    await session.release();
  });

  it("rejects a size that is not a whole number ≥ 1, naming it and the value", () => {
    expect(() => buildMatMulOnnxModel(0, 4, 4)).toThrow(SgemmSizeError);
    expect(() => buildMatMulOnnxModel(4, 2.5, 4)).toThrow("k: received 2.5, expected a whole number ≥ 1");
  });
});

describe("measureOnnxSgemmPeak", () => {
  it("reports 2·n³ / best time per size and the best size as the peak", async () => {
    const peak = await measureOnnxSgemmPeak({ intraOpThreads: 1, sizes: [64, 128], repeats: 2, minMsPerSize: 50 });
    expect(peak.intraOpThreads).toBe(1);
    expect(peak.bySize.map((s) => s.size)).toEqual([64, 128]);
    for (const s of peak.bySize) {
      expect(s.bestMs).toBeGreaterThan(0);
      expect(s.flopsPerSecond).toBeCloseTo((2 * s.size ** 3) / (s.bestMs / 1000), 0);
    }
    const best = Math.max(...peak.bySize.map((s) => s.flopsPerSecond));
    expect(peak.peakFlopsPerSecond).toBe(best);
    expect(peak.bySize.find((s) => s.flopsPerSecond === best)!.size).toBe(peak.peakSize);
  });

  it("rejects an empty size list and a repeat count below 1", async () => {
    await expect(measureOnnxSgemmPeak({ intraOpThreads: 1, sizes: [] })).rejects.toThrow(SgemmSizeError);
    await expect(measureOnnxSgemmPeak({ intraOpThreads: 1, repeats: 0 })).rejects.toThrow(
      "repeats: received 0, expected a whole number ≥ 1",
    );
  });
});
