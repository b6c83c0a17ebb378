/**
 * A seeded pseudo-random generator (mulberry32): same seed, same sequence, on every machine.
 * Returns a function giving floats in [0, 1).
 *
 * @example const rand = createRandom(42); rand(); // 0.6011…
 */
export function createRandom(seed: number): () => number {
  let state = (Math.floor(seed) ^ 0x9e3779b9) >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Fisher–Yates shuffle of a copy of `items`, driven by `seed`.
 *
 * @example shuffleWithSeed([1, 2, 3], 7)
 */
export function shuffleWithSeed<T>(items: readonly T[], seed: number): T[] {
  const rand = createRandom(seed);
  const out = items.slice();
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}
