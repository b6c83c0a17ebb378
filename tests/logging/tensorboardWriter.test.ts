// Our writer's files as real TensorBoard read them. Each fixture folder holds a log dir and
// tensorboard-report.json, what scripts/tensorboard-report.py reported with TensorBoard's own
// loader and HTTP server (it needs the tensorboard Python package, which this machine lacks):
//   tb-writer/     every summary kind, written by tests/logging/fixtures/referenceLogDir.ts;
//   tb-experiment/ `npm run experiment -- --fine-tune 1` on 80 real HAM10000 images (folds,
//                  fine-tune stages, hparams sessions);
//   tb-notebook/   notebook 03's log dir after two demo runs (two event files per run).
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { readLogDir } from "../../lib/logging/readLogDir.js";
import { writeReferenceLogDir } from "./fixtures/referenceLogDir.js";
import { listJsonDifferences, projectLogDirData } from "./tensorboardReport.js";

const fixtures = path.join(path.dirname(new URL(import.meta.url).pathname), "fixtures");
const sets = ["tb-writer", "tb-experiment", "tb-notebook"] as const;

interface HttpCall {
  method: string;
  path: string;
  status: number;
  content_type: string;
  json?: unknown;
  image?: { format: string; width: number; height: number; mode: string };
}

function readReport(set: string) {
  return JSON.parse(fs.readFileSync(path.join(fixtures, set, "tensorboard-report.json"), "utf8")) as {
    tensorboard_version: string;
    ok: boolean;
    errors: unknown[];
    warnings: string[];
    runs: string[];
    http_runs: string[];
    http_failures: string[];
    data: Record<string, unknown>;
    http: HttpCall[];
  };
}

/** Event files under `dir` grouped by their folder (file names hold a pid and counter). */
function eventFilesByFolder(dir: string): Map<string, Buffer[]> {
  const out = new Map<string, Buffer[]>();
  const walk = (d: string): void => {
    for (const entry of fs.readdirSync(d, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      const p = path.join(d, entry.name);
      if (entry.isDirectory()) walk(p);
      else if (entry.name.includes("tfevents")) {
        const key = path.relative(dir, d) || ".";
        out.set(key, [...(out.get(key) ?? []), fs.readFileSync(p)]);
      }
    }
  };
  walk(dir);
  return out;
}

describe("event files as real TensorBoard reads them (fixtures/tb-*/tensorboard-report.json)", () => {
  it("the reference files are byte for byte what the writer writes today", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "tb-writer-"));
    try {
      await writeReferenceLogDir(dir);
      const today = eventFilesByFolder(dir);
      const committed = eventFilesByFolder(path.join(fixtures, "tb-writer", "logs"));
      expect([...today.keys()]).toEqual([...committed.keys()]);
      for (const [folder, files] of committed) {
        // A failure here means the writer's output changed: regenerate the fixture and its report
        // (see the header of fixtures/referenceLogDir.ts) on a machine with TensorBoard.
        expect(
          today.get(folder)!.map((b) => b.toString("base64")),
          folder,
        ).toEqual(files.map((b) => b.toString("base64")));
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  for (const set of sets) {
    describe(set, () => {
      const report = readReport(set);
      const contents = readLogDir(path.join(fixtures, set, "logs"));

      it("TensorBoard loaded and served it without an error or warning", () => {
        expect(report.tensorboard_version).toMatch(/^2\./);
        expect(report.errors).toEqual([]);
        expect(report.warnings).toEqual([]);
        expect(report.http_failures).toEqual([]);
        expect(report.ok).toBe(true);
        expect(report.http.length).toBeGreaterThan(5);
      });

      it("our reader sees the runs, tags and every value TensorBoard's loader sees", () => {
        expect(contents.problems).toEqual([]);
        expect(contents.runs.map((r) => r.name).sort()).toEqual(report.runs);
        expect([...report.http_runs].sort()).toEqual(report.runs);
        expect(listJsonDifferences(report.data, projectLogDirData(contents), `${set}.data`)).toEqual([]);
      });

      it("TensorBoard's scalars dashboard serves every point we wrote", () => {
        const calls = report.http.filter((c) => c.path.startsWith("/data/plugin/scalars/scalars?"));
        const expectedCalls = contents.runs.reduce((n, r) => n + Object.keys(r.scalars).length, 0);
        expect(calls.length).toBe(expectedCalls);
        for (const call of calls) {
          const query = new URLSearchParams(call.path.split("?")[1]);
          const series = contents.runs.find((r) => r.name === query.get("run"))!.scalars[query.get("tag")!];
          // The dashboard's rows are [wall time, step, value] (value rounded to float32 like ours).
          expect(call.json, call.path).toEqual(series.points.map((p) => [p.wallTimeSecs, p.step, p.value]));
        }
      });
    });
  }

  it("tb-writer: images decode as PNG of the declared size and channels; hparams sessions group by fold", () => {
    const report = readReport("tb-writer");
    const images = report.http.filter((c) => c.path.startsWith("/data/plugin/images/individualImage?"));
    // 2 folds × 2 logged epochs × (2 RGB + 1 grey + 1 RGBA) images.
    expect(images.length).toBe(16);
    expect(new Set(images.map((c) => `${c.status} ${c.content_type} ${c.image!.format}`))).toEqual(
      new Set(["200 image/png PNG"]),
    );
    expect(new Set(images.map((c) => `${c.image!.width}x${c.image!.height} ${c.image!.mode}`))).toEqual(
      new Set(["12x8 RGB", "5x7 L", "6x6 RGBA"]),
    );
    const groups = report.http.find((c) => c.path === "/data/plugin/hparams/session_groups")!.json as {
      sessionGroups: Array<{
        name: string;
        hparams: Record<string, unknown>;
        sessions: Array<{
          status: string;
          metricValues: Array<{ name: { tag: string; group: string }; value: number }>;
        }>;
      }>;
    };
    expect(groups.sessionGroups.map((g) => g.name)).toEqual(["fold-1", "fold-2"]);
    expect(groups.sessionGroups[0].hparams).toEqual({
      backbone: "mobilenet_v2",
      learning_rate: 0.001,
      augment: true,
      dropout: 0.3,
    });
    expect(groups.sessionGroups.flatMap((g) => g.sessions.map((s) => s.status))).toEqual([
      "STATUS_SUCCESS",
      "STATUS_SUCCESS",
    ]);
    // The metric column is the last validation epoch_auc of the session's validation/ run.
    const auc = groups.sessionGroups[1].sessions[0].metricValues.find((m) => m.name.tag === "epoch_auc")!;
    expect(auc.name.group).toBe("validation");
    expect(auc.value).toBeCloseTo(0.6 + 0.05 * 3 + 0.001, 6);
    const graph = report.http.find((c) => c.path.startsWith("/data/plugin/graphs/graph?run=fold-1/train&tag=keras"))!;
    expect(graph.status).toBe(200);
  });
});
