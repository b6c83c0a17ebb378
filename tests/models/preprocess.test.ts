import { describe, expect, it } from "vitest";
import { describePreprocessing, preprocessToFloat32, PixelShapeError } from "../../lib/models/preprocess.js";

describe("preprocessToFloat32", () => {
  it('"normalize": (x / 255 − mean) / std per RGB channel (hand-computed)', () => {
    const spec = { kind: "normalize", mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] } as const;
    const out = preprocessToFloat32(new Uint8Array([0, 255, 51, 255, 0, 102]), { ...spec, mean: [...spec.mean], std: [...spec.std] });
    const expected = [(0 - 0.485) / 0.229, (1 - 0.456) / 0.224, (0.2 - 0.406) / 0.225, (1 - 0.485) / 0.229, (0 - 0.456) / 0.224, (0.4 - 0.406) / 0.225];
    expected.forEach((v, i) => expect(out[i]).toBeCloseTo(v, 5));
    expect(() => preprocessToFloat32(new Uint8Array(4), { kind: "normalize", mean: [0, 0, 0], std: [1, 1, 1] })).toThrow(PixelShapeError);
    expect(describePreprocessing({ kind: "normalize", mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] })).toBe(
      "(x / 255 − mean [0.485, 0.456, 0.406]) / std [0.229, 0.224, 0.225]",
    );
  });

  it('"scale" and "caffe" as before', () => {
    expect(Array.from(preprocessToFloat32(new Uint8Array([0, 255, 51]), { kind: "scale", scale: 1 / 255, offset: 0 }))).toEqual([
      0,
      1,
      expect.closeTo(0.2, 6),
    ]);
    expect(Array.from(preprocessToFloat32(new Uint8Array([10, 20, 30]), { kind: "caffe", meanBgr: [1, 2, 3] }))).toEqual([29, 18, 7]);
  });
});
