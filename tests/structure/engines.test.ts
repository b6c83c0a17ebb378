import fs from "node:fs";
import path from "node:path";
import semver from "semver";
import { describe, expect, it } from "vitest";
import { findProjectRoot } from "../../lib/index.js";

// package.json's `engines.node` is the Node range we support and test (CI runs it). A direct
// dependency whose own `engines.node` is narrower must be listed here with why our range still
// holds for the way we use it; anything else narrower fails this test.
const NARROWER_BY_DESIGN: Record<string, string> = {
  nsfwjs:
    "only its bundled model files (model.json + weight shards) are read by lib/models/backbones.ts; its JavaScript is never loaded",
};

const root = findProjectRoot();
const pkg = JSON.parse(fs.readFileSync(path.join(root, "package.json"), "utf8"));
const ourRange: string = pkg.engines.node;

function enginesOf(name: string): string | undefined {
  const file = path.join(root, "node_modules", name, "package.json");
  if (!fs.existsSync(file)) return undefined;
  return JSON.parse(fs.readFileSync(file, "utf8")).engines?.node;
}

describe("engines", () => {
  it("the running Node satisfies package.json's engines.node", () => {
    expect(semver.satisfies(process.version, ourRange), `${process.version} vs ${ourRange}`).toBe(true);
  });

  it("every direct dependency accepts our whole Node range, or is a documented exception", () => {
    const names = [...Object.keys(pkg.dependencies ?? {}), ...Object.keys(pkg.devDependencies ?? {})];
    const narrower = names.filter((name) => {
      const theirs = enginesOf(name);
      return theirs !== undefined && !semver.subset(ourRange, theirs);
    });
    expect(narrower.sort()).toEqual(Object.keys(NARROWER_BY_DESIGN).sort());
  });

  it("nsfwjs's JavaScript is never imported by lib/ (only its model files are read)", () => {
    const source = fs.readFileSync(path.join(root, "lib", "models", "backbones.ts"), "utf8");
    expect(source).not.toMatch(/from\s+["']nsfwjs["']|import\(\s*["']nsfwjs["']\s*\)|require\(\s*["']nsfwjs["']\s*\)/);
    expect(source).toMatch(/resolve\("nsfwjs"\)/);
  });
});
