import { describe, expect, it } from "vitest";
import { computeSourceBalancedWeights, createBalancedBatchOrder } from "../../lib/data/balancedSampling.js";
import { ClassImbalanceError } from "../../lib/data/imbalance.js";

const labelsOf = (benign: number, malignant: number) => [...Array<number>(benign).fill(0), ...Array<number>(malignant).fill(1)];

describe("createBalancedBatchOrder", () => {
  it("gives each batch half malignant, oversampling the minority in even passes (hand-checkable)", () => {
    // 8 benign (indices 0–7), 2 malignant (8, 9), batches of 4 → sizes 4, 4, 2 with 2, 2, 1 malignant.
    const labels = labelsOf(8, 2);
    const batches = createBalancedBatchOrder(labels, { batchSize: 4, seed: 1 });
    expect(batches.map((b) => b.length)).toEqual([4, 4, 2]);
    expect(batches.map((b) => b.filter((i) => labels[i] === 1).length)).toEqual([2, 2, 1]);
    // 5 malignant draws over 2 images in reshuffled passes: each appears 2 or 3 times.
    const flat = batches.flat();
    const count = (i: number) => flat.filter((j) => j === i).length;
    expect([count(8), count(9)].sort()).toEqual([2, 3]);
    // 5 benign draws over 8 images: no benign image twice within the epoch's first pass.
    const benignDrawn = flat.filter((i) => labels[i] === 0);
    expect(new Set(benignDrawn).size).toBe(5);
    expect(flat.every((i) => Number.isInteger(i) && i >= 0 && i < 10)).toBe(true);
  });

  it("is deterministic by (seed, epoch) and differs across seeds and epochs", () => {
    const labels = labelsOf(90, 10);
    const a = createBalancedBatchOrder(labels, { batchSize: 16, seed: 7, epoch: 3 });
    expect(createBalancedBatchOrder(labels, { batchSize: 16, seed: 7, epoch: 3 })).toEqual(a);
    expect(createBalancedBatchOrder(labels, { batchSize: 16, seed: 8, epoch: 3 })).not.toEqual(a);
    expect(createBalancedBatchOrder(labels, { batchSize: 16, seed: 7, epoch: 4 })).not.toEqual(a);
  });

  it("balances every batch of an imbalanced set and covers all minority images equally", () => {
    const labels = labelsOf(950, 50).map((v): "benign" | "malignant" => (v === 1 ? "malignant" : "benign"));
    const batches = createBalancedBatchOrder(labels, { batchSize: 32, seed: 3 });
    expect(batches).toHaveLength(Math.ceil(1000 / 32));
    expect(batches.flat()).toHaveLength(1000);
    let malignantTotal = 0;
    batches.forEach((batch, b) => {
      const m = batch.filter((i) => labels[i] === "malignant").length;
      // 31 full batches of 32 → 16 each; the last batch of 8 → 4.
      expect(m).toBe(batch.length / 2);
      expect(batch.length).toBe(b < 31 ? 32 : 8);
      malignantTotal += m;
    });
    expect(malignantTotal).toBe(500);
    // 500 malignant draws over 50 images → exactly 10 each (whole passes).
    const perImage = new Map<number, number>();
    for (const i of batches.flat()) if (labels[i] === "malignant") perImage.set(i, (perImage.get(i) ?? 0) + 1);
    expect(perImage.size).toBe(50);
    expect(new Set(perImage.values())).toEqual(new Set([10]));
  });

  it("alternates the extra image of odd batches between the classes", () => {
    const labels = labelsOf(30, 6);
    const batches = createBalancedBatchOrder(labels, { batchSize: 5, seed: 2, samplesPerEpoch: 20 });
    expect(batches.map((b) => b.filter((i) => labels[i] === 1).length)).toEqual([2, 3, 2, 3]);
  });

  it("refuses a single class, bad labels or a bad batch size with a named error", () => {
    expect(() => createBalancedBatchOrder(labelsOf(5, 0), { batchSize: 2, seed: 1 })).toThrow(ClassImbalanceError);
    expect(() => createBalancedBatchOrder(labelsOf(5, 0), { batchSize: 2, seed: 1 })).toThrow(/received 5 benign and 0 malignant/);
    expect(() => createBalancedBatchOrder([0, 1, 2], { batchSize: 2, seed: 1 })).toThrow(/labels\[2\]: received 2/);
    expect(() => createBalancedBatchOrder([0, 1], { batchSize: 0, seed: 1 })).toThrow(/batchSize: received 0/);
  });
});

describe("computeSourceBalancedWeights", () => {
  it("gives each source the same total weight, summing to n (hand-checked)", () => {
    // 6 rows, 3 groups (a: 3 rows, b: 1 row, unknown: 2 rows) → n/(S·n_s) = 6/9, 6/3, 6/6.
    const w = computeSourceBalancedWeights(["a", "a", "b", undefined, "a", ""]);
    expect(Array.from(w)).toEqual([6 / 9, 6 / 9, 2, 1, 6 / 9, 1].map(Math.fround));
    expect(Array.from(w).reduce((s, v) => s + v, 0)).toBeCloseTo(6, 5);
    expect(Array.from(computeSourceBalancedWeights(["x", "x"]))).toEqual([1, 1]);
    expect(() => computeSourceBalancedWeights([])).toThrow(/sources: received none/);
  });
});
