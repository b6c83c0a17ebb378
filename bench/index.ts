// npm run bench [-- <name> … [--option …]]: runs bench/<name>.ts for each name given (all
// benchmarks when none); options from the first "--" argument on are passed to each benchmark.
// Each benchmark prints its figures and the ratios measured in the same run. `npm run bench -- --help`
// lists the benchmarks; `npm run bench -- <name> --help` shows a benchmark's own options.
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { defineCli, findNearestName, findProjectRoot, formatCliHelp } from "../lib/index.js";

const root = findProjectRoot();
const benchDir = path.join(root, "bench");
const available = fs
  .readdirSync(benchDir)
  .filter((f) => f.endsWith(".ts") && f !== "index.ts")
  .map((f) => f.replace(/\.ts$/, ""))
  .sort();
const cli = defineCli({
  name: "bench",
  usage: "npm run bench --",
  summary:
    "Runs bench/<name>.ts for each benchmark named (all when none); options from the first --option on go to each benchmark, which checks them itself.",
  examples: [
    "npm run bench -- wasm-threads --rounds 1",
    "npm run bench -- data features",
    "npx tsx bench/data.ts --help",
  ],
  options: {},
  positionals: { name: "benchmark", description: `one of ${available.join(", ")}` },
});
const args = process.argv.slice(2);
const firstOption = args.findIndex((a) => a.startsWith("-"));
const requested = firstOption === -1 ? args : args.slice(0, firstOption);
const forwarded = firstOption === -1 ? [] : args.slice(firstOption);
if (forwarded.length > 0 && (forwarded[0] === "--help" || forwarded[0] === "-h") && requested.length === 0) {
  console.log(formatCliHelp(cli));
  process.exit(0);
}
const names = requested.length > 0 ? requested : available;
for (const name of names) {
  if (!available.includes(name)) {
    const nearest = findNearestName(name, available);
    console.error(
      `bench: unknown benchmark ${JSON.stringify(name)}; ${nearest ? `did you mean ${nearest}?` : `expected one of ${available.join(", ")}`} (see --help)`,
    );
    process.exit(2);
  }
}
let failed = 0;
for (const name of names) {
  console.log(`\n=== bench ${name} ===`);
  const run = spawnSync(
    process.execPath,
    [path.join(root, "node_modules", "tsx", "dist", "cli.mjs"), path.join(benchDir, `${name}.ts`), ...forwarded],
    {
      stdio: "inherit",
      cwd: root,
    },
  );
  if (run.status !== 0) failed++;
}
process.exit(failed > 0 ? 1 : 0);
