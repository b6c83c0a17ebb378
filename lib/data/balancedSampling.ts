import { createRandom } from "../util/random.js";
import { ClassImbalanceError } from "./imbalance.js";
import type { LesionLabel } from "./types.js";

/** Options of {@link createBalancedBatchOrder}. */
export interface BalancedBatchOrderOptions {
  /** Images per batch (the last batch holds the remainder). */
  batchSize: number;
  /** Seed of the draw; the same (labels, options) always give the same batches. */
  seed: number;
  /** Epoch number, mixed into the seed so each epoch draws new batches. Default 0. */
  epoch?: number;
  /** Indices drawn in the epoch. Default labels.length (one "epoch" = as many samples as images). */
  samplesPerEpoch?: number;
}

function toClassIndex(v: unknown, i: number): 0 | 1 {
  if (v === 1 || v === "malignant") return 1;
  if (v === 0 || v === "benign") return 0;
  throw new ClassImbalanceError(`labels[${i}]: received ${JSON.stringify(v)}, expected 0, 1, "benign" or "malignant"`);
}

/** An endless stream over `pool`: reshuffled passes, so every index is drawn equally often (±1). */
function createPassStream(pool: readonly number[], rand: () => number): () => number {
  let pass: number[] = [];
  let at = 0;
  return () => {
    if (at === pass.length) {
      pass = pool.slice();
      for (let i = pass.length - 1; i > 0; i--) {
        const j = Math.floor(rand() * (i + 1));
        [pass[i], pass[j]] = [pass[j], pass[i]];
      }
      at = 0;
    }
    return pass[at++];
  };
}

/**
 * Class-balanced mini-batches for one epoch: indices into `labels`, grouped per batch, where each
 * batch holds half malignant and half benign images (an odd batch gets its extra image from
 * benign and malignant in alternate batches). The minority class is oversampled: its images are
 * drawn in reshuffled passes, repeating as often as needed, so within an epoch every minority
 * image appears k or k + 1 times; the majority class is drawn the same way (undersampled within
 * the epoch, covered across epochs). Images within a batch are shuffled. Deterministic by
 * (seed, epoch).
 *
 * Labels are 0/1 or "benign"/"malignant"; both classes must be present.
 *
 * @example
 * // 8 benign, 2 malignant, batches of 4 → 3 batches (4, 4, 2 images), each half malignant:
 * createBalancedBatchOrder([0, 0, 0, 0, 0, 0, 0, 0, 1, 1], { batchSize: 4, seed: 1 })
 * // [[9, 1, 8, 5], [0, 9, 4, 8], [9, 3]]
 */
export function createBalancedBatchOrder(
  labels: ArrayLike<number> | readonly LesionLabel[],
  options: BalancedBatchOrderOptions,
): number[][] {
  const { batchSize, seed } = options;
  const epoch = options.epoch ?? 0;
  const total = options.samplesPerEpoch ?? labels.length;
  if (!(Number.isInteger(batchSize) && batchSize >= 1)) {
    throw new ClassImbalanceError(`batchSize: received ${batchSize}, expected a whole number ≥ 1`);
  }
  if (!(Number.isInteger(total) && total >= 1)) {
    throw new ClassImbalanceError(`samplesPerEpoch: received ${total}, expected a whole number ≥ 1`);
  }
  if (!Number.isFinite(seed) || !Number.isInteger(epoch)) {
    throw new ClassImbalanceError(`seed/epoch: received ${seed}/${epoch}, expected a finite seed and a whole epoch number`);
  }
  const benign: number[] = [];
  const malignant: number[] = [];
  for (let i = 0; i < labels.length; i++) {
    ((toClassIndex((labels as ArrayLike<unknown>)[i], i) === 1) ? malignant : benign).push(i);
  }
  if (benign.length === 0 || malignant.length === 0) {
    throw new ClassImbalanceError(`balanced sampling needs both classes; received ${benign.length} benign and ${malignant.length} malignant labels`);
  }
  const rand = createRandom(seed * 7919 + epoch * 104_729 + 17);
  const nextBenign = createPassStream(benign, rand);
  const nextMalignant = createPassStream(malignant, rand);
  const batches: number[][] = [];
  for (let start = 0, b = 0; start < total; start += batchSize, b++) {
    const size = Math.min(batchSize, total - start);
    // An odd batch alternates which class gets the extra image, keeping the epoch at 50 %.
    const malignantCount = Math.floor(size / 2) + (size % 2 === 1 && b % 2 === 1 ? 1 : 0);
    const batch: number[] = [];
    for (let k = 0; k < malignantCount; k++) batch.push(nextMalignant());
    for (let k = malignantCount; k < size; k++) batch.push(nextBenign());
    for (let i = batch.length - 1; i > 0; i--) {
      const j = Math.floor(rand() * (i + 1));
      [batch[i], batch[j]] = [batch[j], batch[i]];
    }
    batches.push(batch);
  }
  return batches;
}

/**
 * Loss weight per row so that every source (clinic/device) carries the same total weight:
 * n / (S · n_s) for a row of source s (S sources, n_s rows in s), so the weights still sum to n
 * and a source with few images counts as much as the largest. Rows with an unknown source ("" or
 * undefined) form one more group of their own. Multiply with class weights in the loss (trainHead's
 * `rowWeights`); class balance within each source is left to those.
 *
 * @example computeSourceBalancedWeights(["a", "a", "a", "b"]) // [0.667, 0.667, 0.667, 2] (4 / (2·3), 4 / (2·1))
 */
export function computeSourceBalancedWeights(sources: readonly (string | undefined | null)[]): Float32Array {
  if (sources.length === 0) throw new ClassImbalanceError("sources: received none, expected one per row");
  const key = (s: string | undefined | null) => (typeof s === "string" && s !== "" ? `source:${s}` : "unknown");
  const counts = new Map<string, number>();
  for (const s of sources) counts.set(key(s), (counts.get(key(s)) ?? 0) + 1);
  const n = sources.length;
  const groups = counts.size;
  return Float32Array.from(sources, (s) => n / (groups * counts.get(key(s))!));
}
