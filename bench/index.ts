// npm run bench [-- <name> … [--option …]]: runs bench/<name>.ts for each name given (all
// benchmarks when none); options from the first "--" argument on are passed to each benchmark.
// Each benchmark prints its figures and the ratios measured in the same run.
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { findProjectRoot, UnknownNameError } from "../lib/index.js";

const root = findProjectRoot();
const benchDir = path.join(root, "bench");
const available = fs
  .readdirSync(benchDir)
  .filter((f) => f.endsWith(".ts") && f !== "index.ts")
  .map((f) => f.replace(/\.ts$/, ""))
  .sort();
const args = process.argv.slice(2);
const firstOption = args.findIndex((a) => a.startsWith("--"));
const requested = firstOption === -1 ? args : args.slice(0, firstOption);
const forwarded = firstOption === -1 ? [] : args.slice(firstOption);
const names = requested.length > 0 ? requested : available;
for (const name of names) {
  if (!available.includes(name)) throw new UnknownNameError("benchmark", name, available);
}
let failed = 0;
for (const name of names) {
  console.log(`\n=== bench ${name} ===`);
  const run = spawnSync(process.execPath, [path.join(root, "node_modules", "tsx", "dist", "cli.mjs"), path.join(benchDir, `${name}.ts`), ...forwarded], {
    stdio: "inherit",
    cwd: root,
  });
  if (run.status !== 0) failed++;
}
process.exit(failed > 0 ? 1 : 0);
