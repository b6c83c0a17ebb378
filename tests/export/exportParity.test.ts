import { describe, expect, it } from "vitest";
import { checkExportParity, ExportParityError } from "../../lib/export/exportParity.js";
import type { ImagePrediction } from "../../lib/export/triageModel.js";

const scored = (imageId: string, probability: number): ImagePrediction => ({
  imageId,
  imagePath: `${imageId}.jpg`,
  probability,
});

describe("checkExportParity", () => {
  it("returns the largest absolute difference and where it is", () => {
    const result = checkExportParity([scored("a", 0.25), scored("b", 0.5), scored("c", 0.9)], [0.2501, 0.5, 0.8996]);
    expect(result.worstImageId).toBe("c");
    expect(result.maxAbsDifference).toBeCloseTo(0.0004, 12);
    expect(result.comparedCount).toBe(3);
    expect(result.toleranceProb).toBe(1e-3);
  });

  it("throws a named error naming the image and the tolerance when the difference is too large", () => {
    const call = () => checkExportParity([scored("a", 0.25), scored("b", 0.5)], [0.25, 0.52], { toleranceProb: 0.01 });
    expect(call).toThrow(ExportParityError);
    expect(call).toThrow(/differs from the in-memory model by 2\.00e-2 in probability on b; expected at most 0\.01/);
    // Exactly at the tolerance passes.
    expect(checkExportParity([scored("a", 0.75)], [0.5], { toleranceProb: 0.25 }).maxAbsDifference).toBe(0.25);
  });

  it("throws for an unscored image, a non-probability, mismatched lengths or nothing to compare", () => {
    const problem: ImagePrediction = {
      imageId: "x",
      imagePath: "x.jpg",
      problem: { file: "x.jpg", field: "image", reason: "cannot decode" },
    };
    expect(() => checkExportParity([scored("a", 0.1), problem], [0.1, 0.2])).toThrow(
      /could not score x \(cannot decode\)/,
    );
    expect(() => checkExportParity([scored("a", Number.NaN)], [0.1])).toThrow(
      /exported probability of a is NaN; expected a number in \[0, 1\]/,
    );
    expect(() => checkExportParity([scored("a", 0.1)], [1.5])).toThrow(/reference probability of a is 1\.5/);
    expect(() => checkExportParity([scored("a", 0.1)], [0.1, 0.2])).toThrow(
      /received 1 exported predictions and 2 reference probabilities/,
    );
    expect(() => checkExportParity([], [])).toThrow(ExportParityError);
    expect(() => checkExportParity([scored("a", 0.1)], [0.1], { toleranceProb: -1 })).toThrow(
      /toleranceProb must be in \[0, 1\); received -1/,
    );
  });
});
