import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { findProjectRoot } from "../../lib/index.js";

// The pipeline order of lib/'s stages: a stage may import itself and any earlier stage, never a
// later one. util and backend are foundations; experiments and workflow orchestrate everything.
const STAGE_ORDER = [
  "util",
  "backend",
  "data",
  "models",
  "train",
  "logging",
  "display",
  "evaluate",
  "export",
  "triage",
  "serve",
  "notebooks",
  "experiments",
  "workflow",
] as const;

const root = findProjectRoot();

function listTsFiles(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) return entry.name === "node_modules" ? [] : listTsFiles(full);
    return entry.name.endsWith(".ts") ? [full] : [];
  });
}

/** Relative module specifiers of a source file's static imports, re-exports and dynamic imports. */
function importSpecifiers(source: string): string[] {
  const specs: string[] = [];
  const pattern = /(?:^|\n)\s*(?:import|export)\s[^;]*?\sfrom\s+["']([^"']+)["']|import\(\s*["']([^"']+)["']\s*\)/g;
  for (const match of source.matchAll(pattern)) specs.push(match[1] ?? match[2]);
  return specs;
}

/** Every lib→lib import edge as [fromStage, toStage, file, specifier]. */
function libImportEdges(): { from: string; to: string; file: string; spec: string }[] {
  const libDir = path.join(root, "lib");
  const edges: { from: string; to: string; file: string; spec: string }[] = [];
  for (const file of listTsFiles(libDir)) {
    const rel = path.relative(libDir, file).split(path.sep);
    if (rel.length < 2) continue; // lib/index.ts is the public API above every stage
    for (const spec of importSpecifiers(fs.readFileSync(file, "utf8"))) {
      if (!spec.startsWith(".")) continue;
      const target = path.relative(libDir, path.resolve(path.dirname(file), spec)).split(path.sep);
      if (target[0] === ".." || target.length < 2) continue;
      edges.push({ from: rel[0], to: target[0], file: path.relative(root, file), spec });
    }
  }
  return edges;
}

describe("lib/ import graph", () => {
  it("has a known pipeline stage for every folder of lib/", () => {
    const folders = fs
      .readdirSync(path.join(root, "lib"), { withFileTypes: true })
      .filter((e) => e.isDirectory())
      .map((e) => e.name);
    expect(folders.filter((f) => !(STAGE_ORDER as readonly string[]).includes(f))).toEqual([]);
  });

  it("never imports a later stage from an earlier one", () => {
    const upward = libImportEdges()
      .filter((e) => STAGE_ORDER.indexOf(e.to as never) > STAGE_ORDER.indexOf(e.from as never))
      .map((e) => `${e.file} (${e.from}) imports ${e.spec} (${e.to})`);
    expect(upward).toEqual([]);
  });

  it("evaluates from predictions: evaluate imports no training code", () => {
    const edges = libImportEdges().filter((e) => e.from === "evaluate" && e.to === "train");
    expect(edges.map((e) => `${e.file} imports ${e.spec}`)).toEqual([]);
  });

  it("sees real edges (the scan is not vacuous)", () => {
    const edges = libImportEdges();
    expect(edges.some((e) => e.from === "train" && e.to === "models")).toBe(true);
    expect(edges.some((e) => e.from === "evaluate" && e.to === "util")).toBe(true);
  });
});

describe("public API boundary", () => {
  it("scripts, benchmarks and notebooks import lib/ only through lib/index", () => {
    const offenders: string[] = [];
    for (const dir of ["scripts", "bench"]) {
      for (const file of listTsFiles(path.join(root, dir))) {
        for (const spec of importSpecifiers(fs.readFileSync(file, "utf8"))) {
          if (spec.includes("/lib/") && !/\/lib\/index(\.js)?$/.test(spec))
            offenders.push(`${path.relative(root, file)}: ${spec}`);
        }
      }
    }
    for (const name of fs.readdirSync(path.join(root, "notebooks")).filter((n) => n.endsWith(".ipynb"))) {
      const notebook = JSON.parse(fs.readFileSync(path.join(root, "notebooks", name), "utf8"));
      for (const cell of notebook.cells) {
        if (cell.cell_type !== "code") continue;
        const source = Array.isArray(cell.source) ? cell.source.join("") : cell.source;
        for (const spec of importSpecifiers(source)) {
          if (spec.includes("lib/") && !/lib\/index(\.js)?$/.test(spec)) offenders.push(`notebooks/${name}: ${spec}`);
        }
      }
    }
    expect(offenders).toEqual([]);
  });
});
