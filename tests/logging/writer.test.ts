import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import sharp from "sharp";
import { afterAll, describe, expect, it } from "vitest";
import { readEventFile, type DecodedEvent, type DecodedSummaryValue } from "../../lib/logging/eventFile.js";
import {
  createEventWriter,
  EventWriterError,
  EVENT_FILE_VERSION,
  formatEventFileName,
  writeHparamsExperiment,
} from "../../lib/logging/eventWriter.js";
import { lookupProtoType } from "../../lib/logging/protoSchema.js";
import {
  computeHistogramBuckets,
  computePrCurve,
  createHparamsSessionEndValue,
  createTextValue,
  SummaryInputError,
} from "../../lib/logging/summaryValues.js";
import { frameTfRecord, splitTfRecords } from "../../lib/logging/tfrecord.js";
import { UnknownNameError } from "../../lib/util/errors.js";
import { describeRequiring, findSharedPath, missingSharedPath } from "../helpers/shared.js";

const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), "melanoma-lab-writer-"));
afterAll(() => fs.rmSync(tmpRoot, { recursive: true, force: true }));
let dirCounter = 0;
const freshDir = (): string => path.join(tmpRoot, `run-${dirCounter++}`);

/** A clock that returns 1700000000, 1700000001, … so wall times are checkable. */
function steppingClock(start = 1_700_000_000): () => number {
  let t = start;
  return () => t++;
}

function summaryValuesOf(events: DecodedEvent[], tag: string): { event: DecodedEvent; value: DecodedSummaryValue }[] {
  const out: { event: DecodedEvent; value: DecodedSummaryValue }[] = [];
  for (const event of events)
    for (const value of event.summaryValues ?? []) if (value.tag === tag) out.push({ event, value });
  return out;
}

function onlyValue(events: DecodedEvent[], tag: string): DecodedSummaryValue {
  const found = summaryValuesOf(events, tag);
  expect(found, `values tagged ${tag}`).toHaveLength(1);
  return found[0].value;
}

const text = (bytes: Uint8Array): string => new TextDecoder().decode(bytes);

function decodeHparams(content: Uint8Array): Record<string, unknown> {
  const T = lookupProtoType("HParamsPluginData");
  return T.toObject(T.decode(content), { longs: Number, enums: String, oneofs: true }) as Record<string, unknown>;
}

describe("EventWriter: file layout and framing", () => {
  it("names the file like TensorFlow and writes brain.Event:2 first", () => {
    const dir = freshDir();
    const writer = createEventWriter(dir, {
      nowSecs: () => 1_700_000_000.25,
      hostname: "testhost",
      flushIntervalMs: 0,
    });
    writer.close();
    const name = path.basename(writer.filePath);
    expect(name).toMatch(new RegExp(`^events\\.out\\.tfevents\\.1700000000\\.testhost\\.${process.pid}\\.\\d+$`));
    expect(formatEventFileName(1_700_000_000.9, "h", 7, 3, ".v2")).toBe("events.out.tfevents.1700000000.h.7.3.v2");
    const contents = readEventFile(writer.filePath);
    expect(contents.problems).toEqual([]);
    expect(contents.events).toHaveLength(1);
    expect(contents.events[0].kind).toBe("file_version");
    expect(contents.events[0].fileVersion).toBe(EVENT_FILE_VERSION);
    expect(contents.events[0].wallTimeSecs).toBe(1_700_000_000.25);
    expect(contents.bytesConsumed).toBe(fs.statSync(writer.filePath).size);
  });

  it("two writers on one run folder get two files; closed writers refuse more data", () => {
    const dir = freshDir();
    const a = createEventWriter(dir, { flushIntervalMs: 0 });
    const b = createEventWriter(dir, { flushIntervalMs: 0 });
    expect(a.filePath).not.toBe(b.filePath);
    a.close();
    a.close(); // idempotent
    b.close();
    expect(a.isClosed).toBe(true);
    expect(() => a.addScalar("loss", 1, 0)).toThrow(EventWriterError);
    expect(() => a.addScalar("loss", 1, 0)).toThrow(/closed/);
    expect(fs.readdirSync(dir).sort()).toEqual([path.basename(a.filePath), path.basename(b.filePath)].sort());
  });

  it("rejects unusable steps and tags with named errors", () => {
    const writer = createEventWriter(freshDir(), { flushIntervalMs: 0 });
    expect(() => writer.addScalar("loss", 1, -1)).toThrow(/step -1 .*non-negative integer/);
    expect(() => writer.addScalar("loss", 1, 1.5)).toThrow(EventWriterError);
    expect(() => writer.addScalar("", 1, 0)).toThrow(SummaryInputError);
    writer.close();
  });

  it("queues records until flush, and the timer flushes without being asked", async () => {
    const dir = freshDir();
    const manual = createEventWriter(dir, { flushIntervalMs: 0 });
    manual.addScalar("loss", 0.5, 0);
    expect(readEventFile(manual.filePath).events).toHaveLength(1); // file_version only
    manual.flush();
    expect(readEventFile(manual.filePath).events).toHaveLength(2);
    manual.close();

    const timed = createEventWriter(freshDir(), { flushIntervalMs: 30 });
    timed.addScalar("loss", 0.25, 1);
    const deadline = Date.now() + 5000;
    while (readEventFile(timed.filePath).events.length < 2 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    expect(readEventFile(timed.filePath).events).toHaveLength(2);
    timed.close();
  });
});

describe("EventWriter: every summary kind round-trips", () => {
  it("scalars: DT_FLOAT scalar tensor, scalars plugin, step and wall time kept", () => {
    const writer = createEventWriter(freshDir(), { nowSecs: steppingClock(), flushIntervalMs: 0 });
    const losses = [0.9, 0.5, 0.123456789];
    losses.forEach((loss, step) => writer.addScalar("epoch_loss", loss, step));
    writer.addScalar("epoch_auc", 0.75, 2, 1_800_000_000.5);
    writer.close();
    const { events, problems } = readEventFile(writer.filePath);
    expect(problems).toEqual([]);
    const found = summaryValuesOf(events, "epoch_loss");
    expect(found.map((f) => f.event.step)).toEqual([0, 1, 2]);
    expect(found.map((f) => f.value.tensor?.numbers?.[0])).toEqual(losses.map(Math.fround));
    for (const { event, value } of found) {
      expect(value.kind).toBe("tensor");
      expect(value.tensor?.dtype).toBe("DT_FLOAT");
      expect(value.tensor?.shape).toEqual([]);
      expect(value.metadata?.pluginName).toBe("scalars");
      expect(value.metadata?.pluginContent).toHaveLength(0);
      expect(Number.isInteger(event.wallTimeSecs)).toBe(true);
    }
    const auc = summaryValuesOf(events, "epoch_auc")[0];
    expect(auc.event.wallTimeSecs).toBe(1_800_000_000.5);
  });

  it("histograms: hand-computed buckets, equal values, empty input, non-finite values left out", () => {
    // min 0, max 2, 2 buckets of width 1: [0,1) gets 0; [1,2] gets 1, 1, 2 (last bucket is closed).
    expect(Array.from(computeHistogramBuckets(Float32Array.of(0, 1, 1, 2), 2))).toEqual([0, 1, 1, 1, 2, 3]);
    // 4 buckets over [-1, 3]: width 1; -1→0, 0.5→1, 0.99→1, 2→3, 3→3 (clamped), NaN/Infinity skipped.
    expect(Array.from(computeHistogramBuckets([-1, 0.5, 0.99, 2, 3, NaN, Infinity], 4))).toEqual([
      -1, 0, 1, 0, 1, 2, 1, 2, 0, 2, 3, 2,
    ]);
    // All equal: TensorBoard puts every value in the last bucket, edges all at the value.
    expect(Array.from(computeHistogramBuckets([5, 5, 5], 3))).toEqual([5, 5, 0, 5, 5, 0, 5, 5, 3]);
    expect(Array.from(computeHistogramBuckets([], 2))).toEqual([0, 0, 0, 0, 0, 0]);

    const writer = createEventWriter(freshDir(), { flushIntervalMs: 0 });
    const values = new Float32Array(1000).map((_, i) => Math.sin(i) * 3);
    writer.addHistogram("dense/kernel", values, 4);
    writer.addHistogram("few", [0, 1, 1, 2], 5, 2);
    writer.close();
    const { events } = readEventFile(writer.filePath);
    const kernel = onlyValue(events, "dense/kernel");
    expect(kernel.metadata?.pluginName).toBe("histograms");
    expect(kernel.tensor?.dtype).toBe("DT_DOUBLE");
    expect(kernel.tensor?.shape).toEqual([30, 3]);
    const numbers = Array.from(kernel.tensor?.numbers ?? []);
    const counts = numbers.filter((_, i) => i % 3 === 2);
    expect(counts.reduce((a, b) => a + b, 0)).toBe(1000);
    expect(numbers[0]).toBe(Math.min(...values));
    expect(numbers[numbers.length - 2]).toBe(Math.max(...values));
    expect(Array.from(onlyValue(events, "few").tensor?.numbers ?? [])).toEqual([0, 1, 1, 1, 2, 3]);
  });

  it("images: PNGs that decode back to the written pixels, width and height first", async () => {
    const widthPx = 5;
    const heightPx = 3;
    const rgb = new Uint8Array(widthPx * heightPx * 3).map((_, i) => (i * 37) % 256);
    const rgba = new Uint8Array(widthPx * heightPx * 4).map((_, i) => (i * 11) % 256);
    const writer = createEventWriter(freshDir(), { flushIntervalMs: 0 });
    await writer.addImages(
      "samples",
      [
        { pixels: rgb, widthPx, heightPx, channels: 3 },
        { pixels: rgba, widthPx, heightPx, channels: 4 },
      ],
      7,
    );
    await expect(writer.addImages("bad", [{ pixels: rgb, widthPx: 4, heightPx: 3, channels: 3 }], 0)).rejects.toThrow(
      /45 bytes: expected 4x3x3 = 36/,
    );
    writer.close();
    const value = onlyValue(readEventFile(writer.filePath).events, "samples");
    expect(value.metadata?.pluginName).toBe("images");
    expect(value.metadata?.dataClass).toBe("DATA_CLASS_BLOB_SEQUENCE");
    expect(value.tensor?.dtype).toBe("DT_STRING");
    expect(value.tensor?.shape).toEqual([4]);
    const blobs = value.tensor?.strings ?? [];
    expect(text(blobs[0])).toBe("5");
    expect(text(blobs[1])).toBe("3");
    const first = await sharp(blobs[2]).raw().toBuffer({ resolveWithObject: true });
    expect(first.info.format).toBe("raw");
    expect([first.info.width, first.info.height, first.info.channels]).toEqual([5, 3, 3]);
    expect(Array.from(first.data)).toEqual(Array.from(rgb));
    const second = await sharp(blobs[3]).raw().toBuffer({ resolveWithObject: true });
    expect(second.info.channels).toBe(4);
    expect(Array.from(second.data)).toEqual(Array.from(rgba));
  });

  it("text: UTF-8 markdown in a DT_STRING scalar, text plugin", () => {
    const writer = createEventWriter(freshDir(), { flushIntervalMs: 0 });
    const markdown = "| backbone | lr |\n|---|---|\n| `mobilenet_v2` | 1e-3 | — naïve ✓";
    writer.addText("config", markdown, 0);
    writer.close();
    const value = onlyValue(readEventFile(writer.filePath).events, "config");
    expect(value.metadata?.pluginName).toBe("text");
    expect(value.tensor?.dtype).toBe("DT_STRING");
    expect(value.tensor?.shape).toEqual([]);
    expect(text(value.tensor!.strings![0])).toBe(markdown);
  });

  it("PR curves: counts and rates match a hand-computed example", () => {
    // 3 thresholds (0, 0.5, 1): bucket = floor(p * 2). p: 0.1→0, 0.4→0, 0.6→1, 0.9→1, 1.0→2.
    const labels = [0, 1, 0, 1, 1];
    const probabilities = [0.1, 0.4, 0.6, 0.9, 1.0];
    const curve = computePrCurve(labels, probabilities, 3);
    // Threshold 0: all predicted positive: TP 3, FP 2. Threshold 0.5: {0.6(neg), 0.9, 1.0}: TP 2, FP 1.
    // Threshold 1: {1.0}: TP 1, FP 0.
    expect(Array.from(curve.truePositives)).toEqual([3, 2, 1]);
    expect(Array.from(curve.falsePositives)).toEqual([2, 1, 0]);
    expect(Array.from(curve.trueNegatives)).toEqual([0, 1, 2]);
    expect(Array.from(curve.falseNegatives)).toEqual([0, 1, 2]);
    expect(Array.from(curve.precision)).toEqual([3 / 5, 2 / 3, 1]);
    expect(Array.from(curve.recall)).toEqual([1, 2 / 3, 1 / 3]);
    expect(() => computePrCurve([0, 2], [0.1, 0.2], 3)).toThrow(/label at index 1 is 2/);
    expect(() => computePrCurve([0, 1], [0.1, 1.2], 3)).toThrow(/probability at index 1 is 1.2/);
    expect(() => computePrCurve([0], [0.1, 0.2], 3)).toThrow(SummaryInputError);

    const writer = createEventWriter(freshDir(), { flushIntervalMs: 0 });
    writer.addPrCurve("pr/malignant", labels.map(Boolean), probabilities, 9, 3);
    writer.close();
    const value = onlyValue(readEventFile(writer.filePath).events, "pr/malignant");
    expect(value.metadata?.pluginName).toBe("pr_curves");
    expect(value.metadata?.displayName).toBe("pr/malignant");
    const plugin = lookupProtoType("PrCurvePluginData");
    expect(plugin.toObject(plugin.decode(value.metadata!.pluginContent))).toEqual({ num_thresholds: 3 });
    expect(value.tensor?.dtype).toBe("DT_FLOAT");
    expect(value.tensor?.shape).toEqual([6, 3]);
    expect(Array.from(value.tensor?.numbers ?? [])).toEqual(
      [3, 2, 1, 2, 1, 0, 0, 1, 2, 0, 1, 2, 3 / 5, 2 / 3, 1, 1, 2 / 3, 1 / 3].map(Math.fround),
    );
  });

  it("Keras graph: tag keras, graph_keras_model plugin with content '1', model JSON intact", () => {
    const modelJson = {
      class_name: "Sequential",
      config: { name: "m", layers: [{ class_name: "Dense", config: { units: 2 } }] },
    };
    const writer = createEventWriter(freshDir(), { flushIntervalMs: 0 });
    writer.addKerasModel(modelJson);
    expect(() => writer.addKerasModel("{not json")).toThrow(/not valid JSON/);
    writer.close();
    const value = onlyValue(readEventFile(writer.filePath).events, "keras");
    expect(value.metadata?.pluginName).toBe("graph_keras_model");
    expect(text(value.metadata!.pluginContent)).toBe("1");
    expect(value.tensor?.dtype).toBe("DT_STRING");
    expect(value.tensor?.shape).toEqual([]);
    expect(JSON.parse(text(value.tensor!.strings![0]))).toEqual(modelJson);
  });

  it("hparams: experiment in the parent folder, session start/end in the run", () => {
    const logdir = freshDir();
    const experimentFile = writeHparamsExperiment(
      logdir,
      [
        { name: "lr", values: [0.01, 0.1] },
        { name: "backbone", values: ["mobilenet_v2", "inception_v3"] },
        { name: "augment", values: [false, true] },
        { name: "dropout", interval: { min: 0, max: 0.5 } },
      ],
      [{ tag: "epoch_auc", group: "validation", displayName: "AUC", datasetType: "validation" }],
      { timeCreatedSecs: 1_700_000_000 },
    );
    expect(path.dirname(experimentFile)).toBe(path.resolve(logdir));
    const experiment = onlyValue(readEventFile(experimentFile).events, "_hparams_/experiment");
    expect(experiment.metadata?.pluginName).toBe("hparams");
    expect(experiment.tensor?.dtype).toBe("DT_FLOAT");
    expect(experiment.tensor?.shape).toEqual([0]);
    expect(decodeHparams(experiment.metadata!.pluginContent)).toEqual({
      data: "experiment",
      experiment: {
        time_created_secs: 1_700_000_000,
        hparam_infos: [
          {
            name: "lr",
            type: "DATA_TYPE_FLOAT64",
            domain: "domain_discrete",
            domain_discrete: {
              values: [
                { number_value: 0.01, kind: "number_value" },
                { number_value: 0.1, kind: "number_value" },
              ],
            },
          },
          {
            name: "backbone",
            type: "DATA_TYPE_STRING",
            domain: "domain_discrete",
            domain_discrete: {
              values: [
                { string_value: "mobilenet_v2", kind: "string_value" },
                { string_value: "inception_v3", kind: "string_value" },
              ],
            },
          },
          {
            name: "augment",
            type: "DATA_TYPE_BOOL",
            domain: "domain_discrete",
            domain_discrete: {
              values: [
                { bool_value: false, kind: "bool_value" },
                { bool_value: true, kind: "bool_value" },
              ],
            },
          },
          {
            name: "dropout",
            type: "DATA_TYPE_FLOAT64",
            domain: "domain_interval",
            domain_interval: { max_value: 0.5 },
          },
        ],
        metric_infos: [
          { name: { group: "validation", tag: "epoch_auc" }, display_name: "AUC", dataset_type: "DATASET_VALIDATION" },
        ],
      },
    });

    const run = createEventWriter(path.join(logdir, "run-1"), { flushIntervalMs: 0 });
    run.addHparamsSessionStart(
      { lr: 0.01, backbone: "mobilenet_v2", augment: true },
      { groupName: "run-1", startTimeSecs: 1_700_000_001 },
    );
    run.addHparamsSessionEnd("success", 4, 1_700_000_099);
    expect(() => run.addHparamsSessionEnd("succes" as never)).toThrow(UnknownNameError);
    expect(() => run.addHparamsSessionEnd("succes" as never)).toThrow(/did you mean "success"/);
    run.close();
    const { events } = readEventFile(run.filePath);
    const start = onlyValue(events, "_hparams_/session_start_info");
    expect(decodeHparams(start.metadata!.pluginContent)).toEqual({
      data: "session_start_info",
      session_start_info: {
        hparams: {
          lr: { number_value: 0.01, kind: "number_value" },
          backbone: { string_value: "mobilenet_v2", kind: "string_value" },
          augment: { bool_value: true, kind: "bool_value" },
        },
        group_name: "run-1",
        start_time_secs: 1_700_000_001,
      },
    });
    const end = summaryValuesOf(events, "_hparams_/session_end_info")[0];
    expect(end.event.step).toBe(4);
    expect(decodeHparams(end.value.metadata!.pluginContent)).toEqual({
      data: "session_end_info",
      session_end_info: { status: "STATUS_SUCCESS", end_time_secs: 1_700_000_099 },
    });
  });
});

const referenceDir = findSharedPath("tfevents-golden/tb-reference");

describeRequiring(
  missingSharedPath("tfevents-golden/tb-reference"),
  "encodings equal TensorBoard's own writer (tfevents-golden/tb-reference)",
  () => {
    function referenceValues(): Map<string, DecodedSummaryValue> {
      const byTag = new Map<string, DecodedSummaryValue>();
      const files = [
        ...fs
          .readdirSync(referenceDir!)
          .filter((f) => f.includes("tfevents"))
          .map((f) => path.join(referenceDir!, f)),
        ...fs.readdirSync(path.join(referenceDir!, "lr_0.01")).map((f) => path.join(referenceDir!, "lr_0.01", f)),
      ];
      for (const file of files) {
        const contents = readEventFile(file);
        expect(contents.problems).toEqual([]);
        for (const event of contents.events)
          for (const v of event.summaryValues ?? []) if (!byTag.has(v.tag)) byTag.set(v.tag, v);
      }
      return byTag;
    }

    /** The encoding facts TensorBoard dispatches on; values differ, these must not. */
    function encodingOf(value: DecodedSummaryValue): Record<string, unknown> {
      return {
        kind: value.kind,
        dtype: value.tensor?.dtype,
        rank: value.tensor?.shape.length,
        pluginName: value.metadata?.pluginName,
        dataClass: value.metadata?.dataClass,
        displayNameIsTag: value.metadata?.displayName === value.tag,
        displayNameEmpty: value.metadata?.displayName === "",
      };
    }

    it("scalars, histograms, images, text, PR curves and hparams use the reference encodings", async () => {
      const reference = referenceValues();
      const logdir = freshDir();
      const experimentFile = writeHparamsExperiment(
        logdir,
        [
          { name: "lr", values: [0.01, 0.1] },
          { name: "optimizer", values: ["adam", "sgd"] },
          { name: "use_bn", values: [false, true] },
        ],
        [{ tag: "final_loss", displayName: "Final loss" }],
        { timeCreatedSecs: 1_700_000_000 },
      );
      const writer = createEventWriter(path.join(logdir, "lr_0.01"), { flushIntervalMs: 0 });
      writer.addHparamsSessionStart(
        { optimizer: "adam", use_bn: true, lr: 0.01 },
        { groupName: "lr_0.01", startTimeSecs: 1_700_000_000 },
      );
      writer.addScalar("loss", 1.0054881572723389, 0);
      writer.addHistogram(
        "weights",
        new Float32Array(1000).map((_, i) => Math.cos(i)),
        0,
      );
      await writer.addImages(
        "samples",
        [0, 1].map(() => ({
          pixels: new Uint8Array(12 * 8 * 3).fill(90),
          widthPx: 12,
          heightPx: 8,
          channels: 3 as const,
        })),
        0,
      );
      writer.addText("notes", "step **0** of run `lr_0.01`", 0);
      writer.addPrCurve("pr", [0, 1, 1, 0], [0.2, 0.7, 0.9, 0.4], 19, 11);
      writer.addHparamsSessionEnd("success", 19, 1_700_000_020);
      writer.close();
      const ours = new Map<string, DecodedSummaryValue>();
      for (const file of [experimentFile, writer.filePath]) {
        for (const event of readEventFile(file).events) for (const v of event.summaryValues ?? []) ours.set(v.tag, v);
      }

      const tags = [
        "loss",
        "weights",
        "samples",
        "notes",
        "pr",
        "_hparams_/experiment",
        "_hparams_/session_start_info",
        "_hparams_/session_end_info",
      ];
      for (const tag of tags) {
        const ref = reference.get(tag);
        const mine = ours.get(tag);
        expect(ref, `reference has ${tag}`).toBeDefined();
        expect(mine, `we wrote ${tag}`).toBeDefined();
        expect({ tag, ...encodingOf(mine!) }).toEqual({ tag, ...encodingOf(ref!) });
        // Same layout for shapes that do not depend on the data (all but image count).
        if (tag !== "samples") expect({ tag, shape: mine!.tensor?.shape }).toEqual({ tag, shape: ref!.tensor?.shape });
      }
      // Plugin contents byte for byte where the inputs are the same: empty for scalars/histograms/
      // images/text, PrCurvePluginData{num_thresholds: 11}, the hparams experiment and session end.
      for (const tag of [
        "loss",
        "weights",
        "samples",
        "notes",
        "pr",
        "_hparams_/experiment",
        "_hparams_/session_end_info",
      ]) {
        expect({ tag, content: Buffer.from(ours.get(tag)!.metadata!.pluginContent).toString("hex") }).toEqual({
          tag,
          content: Buffer.from(reference.get(tag)!.metadata!.pluginContent).toString("hex"),
        });
      }
      // Session start holds a map whose wire order is Python's dict order: compare decoded.
      expect(decodeHparams(ours.get("_hparams_/session_start_info")!.metadata!.pluginContent)).toEqual(
        decodeHparams(reference.get("_hparams_/session_start_info")!.metadata!.pluginContent),
      );
      // Image blobs: declared width and height as decimal text, then PNGs.
      const refBlobs = reference.get("samples")!.tensor!.strings!;
      const ourBlobs = ours.get("samples")!.tensor!.strings!;
      expect([text(ourBlobs[0]), text(ourBlobs[1])]).toEqual([text(refBlobs[0]), text(refBlobs[1])]);
      expect(Buffer.from(ourBlobs[2].subarray(0, 8)).toString("hex")).toBe(
        Buffer.from(refBlobs[2].subarray(0, 8)).toString("hex"),
      );
    });

    it("TFRecord framing reproduces TensorBoard's files byte for byte", () => {
      const run = path.join(referenceDir!, "lr_0.01");
      for (const name of fs.readdirSync(run)) {
        const file = path.join(run, name);
        const original = fs.readFileSync(file);
        const { records, problem } = splitTfRecords(original, file);
        expect(problem).toBeUndefined();
        expect(Buffer.concat(records.map((r) => frameTfRecord(r.data))).equals(original)).toBe(true);
      }
    });

    it("whole Event records are byte-identical to TensorBoard's for the same inputs", () => {
      /** Raw record bytes (hex) of the event holding `tag` at `step`. */
      function recordHex(file: string, tag: string, step: number): string {
        const { records } = splitTfRecords(fs.readFileSync(file), file);
        for (const record of records) {
          const decoded = lookupProtoType("Event").decode(record.data);
          const event = decoded as unknown as {
            step?: number | { toNumber(): number };
            summary?: { value?: { tag?: string }[] };
          };
          const eventStep = typeof event.step === "object" ? event.step.toNumber() : (event.step ?? 0);
          if (eventStep === step && event.summary?.value?.some((v) => v.tag === tag))
            return Buffer.from(record.data).toString("hex");
        }
        throw new Error(`${file} has no ${tag} at step ${step}`);
      }
      const refRun = path.join(referenceDir!, "lr_0.01");
      const refFile = path.join(
        refRun,
        fs.readdirSync(refRun).find((f) => f.includes("tfevents"))!,
      );
      const refRoot = path.join(
        referenceDir!,
        fs.readdirSync(referenceDir!).find((f) => f.includes("tfevents"))!,
      );

      const logdir = freshDir();
      const experimentFile = writeHparamsExperiment(
        logdir,
        [
          { name: "lr", values: [0.01, 0.1] },
          { name: "optimizer", values: ["adam", "sgd"] },
          { name: "use_bn", values: [false, true] },
        ],
        [{ tag: "final_loss", displayName: "Final loss" }],
        { timeCreatedSecs: 1_700_000_000 },
      );
      const writer = createEventWriter(path.join(logdir, "lr_0.01"), { flushIntervalMs: 0 });
      writer.addScalar("loss", 1.0054881572723389, 0, 1_700_000_000);
      writer.addScalar("loss", 0.1512991338968277, 19, 1_700_000_019);
      writer.addSummaryValues([createTextValue("notes", "step **5** of run `lr_0.01`")], 5, 1_700_000_005);
      writer.addSummaryValues([createHparamsSessionEndValue("success", 1_700_000_020)], 19, 1_700_000_019);
      writer.close();

      expect(recordHex(writer.filePath, "loss", 0)).toBe(recordHex(refFile, "loss", 0));
      expect(recordHex(writer.filePath, "loss", 19)).toBe(recordHex(refFile, "loss", 19));
      expect(recordHex(writer.filePath, "notes", 5)).toBe(recordHex(refFile, "notes", 5));
      expect(recordHex(writer.filePath, "_hparams_/session_end_info", 19)).toBe(
        recordHex(refFile, "_hparams_/session_end_info", 19),
      );
      expect(recordHex(experimentFile, "_hparams_/experiment", 0)).toBe(recordHex(refRoot, "_hparams_/experiment", 0));
    });

    it("histogram bucket edges follow TensorBoard's layout: contiguous, equal width, numpy.linspace values", () => {
      const weights = referenceValues().get("weights")!;
      const numbers = Array.from(weights.tensor!.numbers!);
      const k = weights.tensor!.shape[0];
      const min = numbers[0];
      const max = numbers[(k - 1) * 3 + 1];
      const width = (max - min) / k;
      for (let b = 0; b < k; b++) {
        expect(numbers[b * 3]).toBe(b * width + min);
        expect(numbers[b * 3 + 1]).toBe(b + 1 === k ? max : (b + 1) * width + min);
      }
      // Our own buckets for data spanning the same range land on the very same edges.
      const mine = computeHistogramBuckets([min, max, (min + max) / 2], k);
      for (let b = 0; b < k; b++) {
        expect(mine[b * 3]).toBe(numbers[b * 3]);
        expect(mine[b * 3 + 1]).toBe(numbers[b * 3 + 1]);
      }
    });

    it("PR curve tensors have TensorBoard's invariants: TP+FN and FP+TN constant, float32 precision/recall", () => {
      const pr = referenceValues().get("pr")!;
      const k = pr.tensor!.shape[1];
      const rows = [0, 1, 2, 3, 4, 5].map((r) => Array.from(pr.tensor!.numbers!.slice(r * k, (r + 1) * k)));
      const [tp, fp, tn, fn, precision, recall] = rows;
      for (let t = 0; t < k; t++) {
        expect(tp[t] + fn[t]).toBe(tp[0] + fn[0]);
        expect(fp[t] + tn[t]).toBe(fp[0] + tn[0]);
        expect(precision[t]).toBe(Math.fround(tp[t] / Math.max(1e-7, tp[t] + fp[t])));
        expect(recall[t]).toBe(Math.fround(tp[t] / Math.max(1e-7, tp[t] + fn[t])));
      }
    });
  },
);
