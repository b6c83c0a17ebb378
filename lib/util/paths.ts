import fs from "node:fs";
import path from "node:path";

/**
 * The melanoma-lab project root: `MELANOMA_LAB_ROOT` when set (the notebook kernel sets it),
 * else the nearest folder at or above the working folder whose package.json is named
 * "melanoma-lab". Written without `import.meta` so the same code runs under tsx, vitest and
 * tslab (which compiles lib/ to CommonJS).
 *
 * @example path.join(findProjectRoot(), "data", "synthetic")
 */
export function findProjectRoot(startDir: string = process.cwd()): string {
  const fromEnv = process.env.MELANOMA_LAB_ROOT;
  if (fromEnv && fs.existsSync(path.join(fromEnv, "package.json"))) return path.resolve(fromEnv);
  let dir = path.resolve(startDir);
  for (;;) {
    const pkg = path.join(dir, "package.json");
    if (fs.existsSync(pkg)) {
      try {
        if (JSON.parse(fs.readFileSync(pkg, "utf8")).name === "melanoma-lab") return dir;
      } catch {
        // An unreadable package.json is not ours; keep walking up.
      }
    }
    const parent = path.dirname(dir);
    if (parent === dir) return path.resolve(startDir);
    dir = parent;
  }
}

/**
 * Where the real shared data lives: `MELANOMA_LAB_SHARED` or `<root>/../shared`.
 *
 * @example path.join(findSharedDir(), "data", "ham10000-dev")
 */
export function findSharedDir(): string {
  return path.resolve(process.env.MELANOMA_LAB_SHARED ?? path.join(findProjectRoot(), "..", "shared"));
}

/**
 * The one on-disk feature cache shared by notebooks, experiments, tests and benchmarks:
 * `MELANOMA_LAB_FEATURE_CACHE` when set, else `<root>/data/cache/features`. Entries are keyed by
 * backbone, weights and image content, so any run can reuse another's features.
 *
 * @example extractFeatures(backbone, records, { cacheDir: resolveFeatureCacheDir() })
 */
export function resolveFeatureCacheDir(): string {
  return path.resolve(
    process.env.MELANOMA_LAB_FEATURE_CACHE || path.join(findProjectRoot(), "data", "cache", "features"),
  );
}
