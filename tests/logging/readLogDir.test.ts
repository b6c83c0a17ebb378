import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { frameTfRecord } from "../../lib/logging/tfrecord.js";
import { LogDirNotFoundError, readLogDir, readRunDir } from "../../lib/logging/readLogDir.js";
import { lookupProtoType } from "../../lib/logging/protoSchema.js";

const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), "melanoma-lab-readlogdir-"));
afterAll(() => fs.rmSync(tmpRoot, { recursive: true, force: true }));

let fileIndex = 0;
/** Writes events (protobufjs objects) as one TFRecord event file, without our writer. */
function writeEvents(dir: string, events: Record<string, unknown>[]): string {
  fs.mkdirSync(dir, { recursive: true });
  const Event = lookupProtoType("Event");
  const file = path.join(dir, `events.out.tfevents.1700000000.test.1.${fileIndex++}`);
  fs.writeFileSync(file, Buffer.concat(events.map((e) => frameTfRecord(Event.encode(Event.create(e)).finish()))));
  return file;
}

const scalarEvent = (tag: string, step: number, value: number) => ({
  wall_time: 1700000000 + step,
  step,
  summary: { value: [{ tag, simple_value: value }] },
});

describe("readLogDir follows TensorBoard's loading rules", () => {
  it("finds runs at every depth, names them relative to the logdir ('.' for the logdir itself), sorted", () => {
    const logdir = path.join(tmpRoot, "discovery");
    writeEvents(path.join(logdir, "b", "validation"), [scalarEvent("epoch_loss", 0, 1)]);
    writeEvents(path.join(logdir, "a"), [scalarEvent("epoch_loss", 0, 1)]);
    writeEvents(logdir, [scalarEvent("x", 0, 1)]);
    fs.mkdirSync(path.join(logdir, "empty"));
    fs.writeFileSync(path.join(logdir, "empty", "notes.txt"), "not an event file");
    expect(readLogDir(logdir).runs.map((r) => r.name)).toEqual([".", "a", "b/validation"]);
  });

  it("throws a named error for a missing logdir", () => {
    expect(() => readLogDir(path.join(tmpRoot, "nope"))).toThrow(LogDirNotFoundError);
  });

  it("after a SessionLog.START restart (file_version 2), drops every point at or after the restart step", () => {
    const dir = path.join(tmpRoot, "restart");
    writeEvents(dir, [
      { wall_time: 1700000000, file_version: "brain.Event:2" },
      { wall_time: 1700000000, step: 0, session_log: { status: 1 } },
      ...[0, 1, 2, 3, 4, 5].map((s) => scalarEvent("loss", s, 10 - s)),
      ...[0, 1, 2, 3, 4, 5].map((s) => scalarEvent("acc", s, s / 10)),
      { wall_time: 1700000100, step: 3, session_log: { status: 1 } },
      scalarEvent("loss", 3, 0.5),
    ]);
    const run = readRunDir(dir);
    expect(run.scalars.loss.points.map((p) => [p.step, p.value])).toEqual([
      [0, 10],
      [1, 9],
      [2, 8],
      [3, 0.5],
    ]);
    expect(run.scalars.acc.points.map((p) => p.step)).toEqual([0, 1, 2]);
    expect(run.purgedPointCount).toBe(6);
  });

  it("without a file_version, an out-of-order step drops later points of that event's tags only", () => {
    const dir = path.join(tmpRoot, "out-of-order");
    writeEvents(dir, [
      ...[0, 1, 2, 3].map((s) => scalarEvent("loss", s, s)),
      ...[0, 1, 2, 3].map((s) => scalarEvent("acc", s, s)),
      scalarEvent("loss", 2, 42),
    ]);
    const run = readRunDir(dir);
    expect(run.scalars.loss.points.map((p) => [p.step, p.value])).toEqual([
      [0, 0],
      [1, 1],
      [2, 42],
    ]);
    expect(run.scalars.acc.points.map((p) => p.step)).toEqual([0, 1, 2, 3]);
  });

  it("converts a legacy HistogramProto like TensorBoard: empty end buckets dropped, min/max as outer edges, float32", () => {
    const dir = path.join(tmpRoot, "legacy-histo");
    writeEvents(dir, [
      {
        wall_time: 1700000000,
        step: 4,
        summary: {
          value: [
            {
              tag: "w",
              histo: {
                min: -0.1,
                max: 2.5,
                num: 6,
                sum: 0,
                sum_squares: 0,
                bucket_limit: [-2, -1, 0, 1, 2, 3, 1e300],
                bucket: [0, 1, 0, 3, 2, 0, 0],
              },
            },
          ],
        },
      },
    ]);
    const run = readRunDir(dir);
    expect(run.tagsByPlugin.histograms).toEqual(["w"]);
    expect(run.histograms.w.displayName).toBe("w");
    expect(run.histograms.w.points[0].buckets.map((b) => [b.leftEdge, b.rightEdge, b.count])).toEqual([
      [Math.fround(-0.1), -1, 1],
      [-1, 0, 0],
      [0, 1, 3],
      [1, 2.5, 2],
    ]);
    expect(run.histograms.w.points[0].totalCount).toBe(6);
  });

  it("keeps the first metadata of a tag and, for images, the first entry per step", () => {
    const dir = path.join(tmpRoot, "first-wins");
    const png = Buffer.from("89504e470d0a1a0a0000000d49484452000000030000000208060000009d74e5a4", "hex");
    const imageEvent = (step: number, wall: number) => ({
      wall_time: wall,
      step,
      summary: { value: [{ tag: "img", image: { width: 3, height: 2, colorspace: 4, encoded_image_string: png } }] },
    });
    writeEvents(dir, [
      {
        wall_time: 1,
        step: 0,
        summary: {
          value: [
            { tag: "s", metadata: { display_name: "first", plugin_data: { plugin_name: "scalars" } }, simple_value: 1 },
          ],
        },
      },
      {
        wall_time: 2,
        step: 1,
        summary: {
          value: [
            {
              tag: "s",
              metadata: { display_name: "second", plugin_data: { plugin_name: "scalars" } },
              simple_value: 2,
            },
          ],
        },
      },
      imageEvent(0, 10),
      imageEvent(0, 11),
      imageEvent(1, 12),
    ]);
    const run = readRunDir(dir);
    expect(run.scalars.s.displayName).toBe("first");
    expect(run.scalars.s.points).toHaveLength(2);
    expect(run.images.img.points.map((p) => [p.step, p.wallTimeSecs])).toEqual([
      [0, 10],
      [1, 12],
    ]);
    expect(run.images.img.points[0].images[0]).toEqual({
      format: "PNG",
      widthPx: 3,
      heightPx: 2,
      mode: "RGBA",
      byteLength: png.length,
    });
  });
});
