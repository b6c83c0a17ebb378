import { describe, expect, it } from "vitest";
import { buildHistogramsOverStepsFigure, ChartInputError } from "../../lib/index.js";

describe("buildHistogramsOverStepsFigure", () => {
  it("re-bins every step onto one value grid, each column summing to 1", () => {
    const fig = buildHistogramsOverStepsFigure(
      [
        { step: 0, buckets: [{ leftEdge: 0, rightEdge: 1, count: 4 }] },
        {
          step: 1,
          buckets: [
            { leftEdge: 1, rightEdge: 2, count: 1 },
            { leftEdge: 2, rightEdge: 4, count: 3 },
          ],
        },
      ],
      { binCount: 4 },
    );
    const trace = fig.data[0] as { x: number[]; y: number[]; z: number[][] };
    expect(trace.x).toEqual([0, 1]);
    // Grid 0..4 in 4 bins of width 1: centres 0.5, 1.5, 2.5, 3.5.
    expect(trace.y).toEqual([0.5, 1.5, 2.5, 3.5]);
    expect(trace.z.map((row) => row[0])).toEqual([1, 0, 0, 0]);
    // Step 1: 1 of 4 values in [1,2); 3 spread evenly over [2,4).
    expect(trace.z.map((row) => row[1])).toEqual([0, 0.25, 0.375, 0.375]);
  });

  it("puts a zero-width bucket in the bin holding its value, and refuses empty input", () => {
    const fig = buildHistogramsOverStepsFigure([{ step: 3, buckets: [{ leftEdge: 2, rightEdge: 2, count: 5 }] }], {
      binCount: 2,
    });
    const trace = fig.data[0] as { z: number[][] };
    expect(trace.z.flat().reduce((a, b) => a + b, 0)).toBeCloseTo(1, 12);
    expect(() => buildHistogramsOverStepsFigure([{ step: 0, buckets: [] }])).toThrow(ChartInputError);
  });
});
