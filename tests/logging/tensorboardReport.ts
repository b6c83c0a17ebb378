// Projects our reader's output onto the JSON shape of tfevents-golden/_expected/<set>.json (what
// TensorBoard's own loader reported), so the two can be compared field by field.
import path from "node:path";
import type { EventFileContents } from "../../lib/logging/eventFile.js";
import type { LogDirContents, RunContents } from "../../lib/logging/readLogDir.js";

type Json = null | number | string | boolean | Json[] | { [key: string]: Json };

function maxStep(steps: number[]): number {
  return steps.length ? Math.max(...steps) : 0;
}

function projectRun(run: RunContents): Record<string, Json> {
  const out: Record<string, Json> = { start_time: run.startTimeSecs ?? null };
  for (const [plugin, tags] of Object.entries(run.tagsByPlugin)) {
    const byTag: Record<string, Json> = {};
    for (const tag of tags) {
      const meta = run.metadataByTag[tag];
      const points = run.tensorsByTag[tag] ?? [];
      const head = { count: points.length, max_step: maxStep(points.map((p) => p.step)) };
      if (plugin === "scalars") {
        const s = run.scalars[tag];
        byTag[tag] = {
          ...head,
          display_name: s.displayName,
          description: s.description,
          points: s.points.map((p) => [p.step, p.value, p.wallTimeSecs]),
        };
      } else if (plugin === "histograms") {
        const s = run.histograms[tag];
        byTag[tag] = {
          ...head,
          display_name: s.displayName,
          steps: s.points.map((p, i) => ({
            step: p.step,
            wall_time: p.wallTimeSecs,
            shape: points[i].tensor.shape,
            buckets: p.buckets.map((b) => [b.leftEdge, b.rightEdge, b.count]),
            total_count: p.totalCount,
          })),
        };
      } else if (plugin === "text") {
        const s = run.text[tag];
        byTag[tag] = {
          ...head,
          display_name: s.displayName,
          steps: s.points.map((p) => ({
            step: p.step,
            wall_time: p.wallTimeSecs,
            shape: p.shape,
            value: p.shape.length === 0 ? p.values[0] : p.values,
          })),
        };
      } else if (plugin === "hparams") {
        byTag[tag] = { ...head, display_name: meta.displayName, plugin_data: run.hparams[tag].json };
      } else if (plugin === "images") {
        const s = run.images[tag];
        byTag[tag] = {
          count: s.points.length,
          max_step: head.max_step,
          max_length: Math.max(0, ...points.map((p) => p.tensor.strings?.length ?? 0)),
          steps: s.points.map((p) => ({
            step: p.step,
            wall_time: p.wallTimeSecs,
            n_blobs: 2 + p.encodedImages.length,
            declared_width: String(p.declaredWidthPx),
            declared_height: String(p.declaredHeightPx),
            images: p.images.map((im) => ({
              bytes: im.byteLength,
              format: im.format,
              width: im.widthPx,
              height: im.heightPx,
              mode: im.mode,
            })),
          })),
        };
      } else if (plugin === "graphs") {
        const s = run.graphs[tag];
        byTag[tag] = {
          count: s.points.length,
          max_step: head.max_step,
          max_length: Math.max(0, ...points.map((p) => p.tensor.strings?.length ?? 0)),
          steps: s.points.map((p) => ({
            step: p.step,
            wall_time: p.wallTimeSecs,
            n_blobs: p.graphs.length,
            graph_defs: p.graphs.map((g) => ({
              nodes: g.nodeCount ?? 0,
              first_nodes: (g.nodeNames ?? []).slice(0, 5),
              bytes: g.byteLength,
            })),
          })),
        };
      } else if (plugin === "graph_keras_model") {
        // Not in the golden sets; scripts/tensorboard-report.py adds what the graph dashboard
        // parses from the Keras config: its class and layer names.
        byTag[tag] = {
          ...head,
          display_name: meta.displayName,
          steps: points.map((p) => {
            const blob = p.tensor.strings?.[0];
            const config = JSON.parse(blob ? new TextDecoder().decode(blob) : "{}") as {
              class_name?: string;
              config?: { layers?: Array<{ config?: { name?: string } }> };
            };
            return {
              step: p.step,
              shape: p.tensor.shape,
              keras_class_name: config.class_name ?? null,
              keras_layers: (config.config?.layers ?? []).map((l) => l.config?.name ?? null),
            };
          }),
        };
      } else {
        byTag[tag] = {
          ...head,
          display_name: meta.displayName,
          steps: points.map((p) => ({ step: p.step, shape: p.tensor.shape })),
        };
      }
    }
    out[plugin] = byTag;
  }
  return out;
}

/** `data` section: run name → start_time and per-plugin series. */
export function projectLogDirData(contents: LogDirContents): Record<string, Json> {
  return Object.fromEntries(contents.runs.map((run) => [run.name, projectRun(run)]));
}

/** One entry of the `files` section: raw per-file statistics (no migration). */
export function projectEventFile(contents: EventFileContents, goldenRoot: string): Record<string, Json> {
  const count = (m: Record<string, number>, k: string) => (m[k] = (m[k] ?? 0) + 1);
  const eventKinds: Record<string, number> = {};
  const valueKinds: Record<string, number> = {};
  const plugins: Record<string, number> = {};
  const tags: Record<
    string,
    {
      kinds: Record<string, number>;
      plugin: string | null;
      count: number;
      min_step: number;
      max_step: number;
      dtype: string | null;
      data_class: string | null;
    }
  > = {};
  let fileVersion: string | null = null;
  let sourceWriter: string | null = null;
  for (const e of contents.events) {
    count(eventKinds, e.kind);
    if (e.fileVersion !== undefined && fileVersion === null) fileVersion = e.fileVersion;
    if (e.sourceWriter !== undefined && sourceWriter === null) sourceWriter = e.sourceWriter;
    for (const v of e.summaryValues ?? []) {
      count(valueKinds, v.kind);
      if (v.metadata?.pluginName) count(plugins, v.metadata.pluginName);
      const t = (tags[v.tag] ??= {
        kinds: {},
        plugin: null,
        count: 0,
        min_step: e.step,
        max_step: e.step,
        dtype: null,
        data_class: null,
      });
      count(t.kinds, v.kind);
      t.count++;
      t.min_step = Math.min(t.min_step, e.step);
      t.max_step = Math.max(t.max_step, e.step);
      if (v.metadata && t.data_class === null) {
        t.plugin = v.metadata.pluginName || null;
        t.data_class = v.metadata.dataClass;
      }
      if (v.tensor && t.dtype === null) t.dtype = v.tensor.dtype;
    }
  }
  const problem = contents.problems.find((p) => p.kind !== "undecodable-event");
  return {
    path: path.relative(goldenRoot, contents.file).split(path.sep).join("/"),
    bytes: contents.byteLength,
    records: contents.recordCount,
    bytes_consumed: contents.bytesConsumed,
    event_kinds: eventKinds,
    value_kinds: valueKinds,
    plugins,
    tags,
    file_version: fileVersion,
    source_writer: sourceWriter,
    first_wall_time: contents.events[0]?.wallTimeSecs ?? null,
    last_wall_time: contents.events[contents.events.length - 1]?.wallTimeSecs ?? null,
    record_error: problem ? problem.reason : null,
  };
}

/** Every difference between two JSON values, as "path: expected X, got Y" lines. */
export function listJsonDifferences(expected: unknown, actual: unknown, where = "$", out: string[] = []): string[] {
  const show = (x: unknown) => {
    const s = JSON.stringify(x);
    return s && s.length > 120 ? s.slice(0, 120) + "…" : s;
  };
  if (Array.isArray(expected) && Array.isArray(actual)) {
    if (expected.length !== actual.length)
      out.push(`${where}: expected ${expected.length} items, got ${actual.length}`);
    for (let i = 0; i < Math.min(expected.length, actual.length); i++)
      listJsonDifferences(expected[i], actual[i], `${where}[${i}]`, out);
  } else if (
    expected &&
    actual &&
    typeof expected === "object" &&
    typeof actual === "object" &&
    !Array.isArray(expected) &&
    !Array.isArray(actual)
  ) {
    const e = expected as Record<string, unknown>;
    const a = actual as Record<string, unknown>;
    for (const k of Object.keys(e)) {
      if (!(k in a)) out.push(`${where}.${k}: missing (expected ${show(e[k])})`);
      else listJsonDifferences(e[k], a[k], `${where}.${k}`, out);
    }
    for (const k of Object.keys(a)) if (!(k in e)) out.push(`${where}.${k}: unexpected (got ${show(a[k])})`);
  } else if (!Object.is(expected, actual) && !(expected === actual)) {
    out.push(`${where}: expected ${show(expected)}, got ${show(actual)}`);
  }
  return out;
}
