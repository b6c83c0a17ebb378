import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import {
  assertEventFileIntact,
  decodeEventFileBytes,
  EventFileCorruptError,
  readEventFile,
} from "../../lib/logging/eventFile.js";
import { computeMaskedCrc32c, frameTfRecord, splitTfRecords } from "../../lib/logging/tfrecord.js";
import { readRunDir } from "../../lib/logging/readLogDir.js";
import { lookupProtoType } from "../../lib/logging/protoSchema.js";
import { requireSharedPath } from "../helpers/shared.js";

const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), "melanoma-lab-corrupt-"));
afterAll(() => fs.rmSync(tmpRoot, { recursive: true, force: true }));

/** A tiny event file built without our writer: file_version + one scalar per step. */
function buildEventFileBytes(values: number[], firstStep = 0): { bytes: Buffer; recordOffsets: number[] } {
  const Event = lookupProtoType("Event");
  const events: Record<string, unknown>[] = [{ wall_time: 1700000000, file_version: "brain.Event:2" }];
  values.forEach((v, i) =>
    events.push({
      wall_time: 1700000001 + i,
      step: firstStep + i,
      summary: { value: [{ tag: "loss", simple_value: v }] },
    }),
  );
  const records = events.map((e) => frameTfRecord(Event.encode(Event.create(e)).finish()));
  const recordOffsets: number[] = [];
  let offset = 0;
  for (const r of records) {
    recordOffsets.push(offset);
    offset += r.length;
  }
  return { bytes: Buffer.concat(records), recordOffsets };
}

function recordIndexAt(recordOffsets: number[], byte: number): number {
  let index = 0;
  while (index + 1 < recordOffsets.length && recordOffsets[index + 1] <= byte) index++;
  return index;
}

describe("TFRecord framing", () => {
  it("CRC32C and its mask match the published check value and formula", () => {
    // CRC-32C check value of "123456789" (RFC 3720 / iSCSI): 0xE3069283.
    const crc = 0xe3069283n;
    const masked = (((crc >> 15n) | (crc << 17n)) + 0xa282ead8n) & 0xffffffffn;
    expect(computeMaskedCrc32c(new TextEncoder().encode("123456789"))).toBe(Number(masked));
  });

  it("re-framing every record of a real TensorFlow file reproduces its bytes exactly", (ctx) => {
    const golden = requireSharedPath(
      ctx,
      "tfevents-golden/tensorboard/log_tayo/train/events.out.tfevents.1515280092.tayo-glaptop",
    );
    const original = fs.readFileSync(golden);
    const { records, problem } = splitTfRecords(original, golden);
    expect(problem).toBeUndefined();
    expect(records.length).toBe(12);
    expect(Buffer.concat(records.map((r) => frameTfRecord(r.data))).equals(original)).toBe(true);
  });
});

describe("corrupt event files are reported with file and byte offset", () => {
  const values = [0.9, 0.7, 0.5];
  const { bytes, recordOffsets } = buildEventFileBytes(values);

  it("reads an intact file completely", () => {
    const contents = decodeEventFileBytes(bytes, "intact");
    expect(contents.problems).toEqual([]);
    expect(contents.recordCount).toBe(4);
    expect(contents.events.map((e) => e.summaryValues?.[0]?.simpleValue ?? null)).toEqual([
      null,
      ...values.map(Math.fround),
    ]);
  });

  it("flipping any single byte is detected at the record holding it; earlier records still read", () => {
    for (let byte = 0; byte < bytes.length; byte++) {
      const damaged = Buffer.from(bytes);
      damaged[byte] ^= 0x20;
      const contents = decodeEventFileBytes(damaged, "flipped.tfevents");
      const index = recordIndexAt(recordOffsets, byte);
      const inHeader = byte - recordOffsets[index] < 12;
      expect(contents.problems, `byte ${byte}`).toHaveLength(1);
      expect(contents.problems[0], `byte ${byte}`).toMatchObject({
        file: "flipped.tfevents",
        byteOffset: recordOffsets[index],
        kind: inHeader ? "length-crc-mismatch" : "data-crc-mismatch",
      });
      expect(contents.problems[0].reason).toContain(`flipped.tfevents at byte ${recordOffsets[index]}`);
      expect(contents.recordCount, `byte ${byte}`).toBe(index);
    }
  });

  it("truncation at every length keeps the complete records and reports the torn one", () => {
    for (let length = 0; length < bytes.length; length++) {
      const contents = decodeEventFileBytes(bytes.subarray(0, length), "cut.tfevents");
      const complete = recordOffsets.filter((o, i) => (recordOffsets[i + 1] ?? bytes.length) <= length).length;
      expect(contents.recordCount, `length ${length}`).toBe(complete);
      if (recordOffsets.includes(length)) {
        expect(contents.problems, `length ${length}`).toEqual([]);
      } else {
        const tornAt = recordOffsets[complete];
        expect(contents.problems[0], `length ${length}`).toMatchObject({
          byteOffset: tornAt,
          kind: length - tornAt < 12 ? "truncated-header" : "truncated-data",
        });
      }
    }
  });

  it("garbage appended after the last record is reported at the old end of file", () => {
    for (const garbage of [Buffer.from("x"), Buffer.from("not a tfrecord, just text appended by accident")]) {
      const contents = decodeEventFileBytes(Buffer.concat([bytes, garbage]), "garbage.tfevents");
      expect(contents.recordCount).toBe(4);
      expect(contents.problems).toHaveLength(1);
      expect(contents.problems[0].byteOffset).toBe(bytes.length);
      expect(contents.problems[0].kind).toBe(garbage.length < 12 ? "truncated-header" : "length-crc-mismatch");
    }
  });

  it("a well-framed record that is not an Event is reported and skipped, the next record still reads", () => {
    const junk = frameTfRecord(new Uint8Array([0xff, 0xff, 0xff, 0xff, 0xff]));
    const { bytes: tail } = buildEventFileBytes([0.25], 7);
    const contents = decodeEventFileBytes(Buffer.concat([bytes, junk, tail]), "junk.tfevents");
    expect(contents.problems).toHaveLength(1);
    expect(contents.problems[0]).toMatchObject({ kind: "undecodable-event", byteOffset: bytes.length });
    expect(contents.events.at(-1)?.summaryValues?.[0]?.simpleValue).toBe(0.25);
  });

  it("assertEventFileIntact throws a named error carrying file and offset", () => {
    const file = path.join(tmpRoot, "events.out.tfevents.1.host.1.0");
    const damaged = Buffer.from(bytes);
    damaged[recordOffsets[2] + 14] ^= 1;
    fs.writeFileSync(file, damaged);
    const contents = readEventFile(file);
    expect(() => assertEventFileIntact(contents)).toThrow(EventFileCorruptError);
    try {
      assertEventFileIntact(contents);
    } catch (error) {
      expect(error).toMatchObject({ file, byteOffset: recordOffsets[2], kind: "data-crc-mismatch" });
      expect((error as Error).message).toContain(`${file} at byte ${recordOffsets[2]}`);
    }
  });

  it("in a run, a corrupt file stops at its bad record while the run's next file still loads (as TensorBoard)", () => {
    const runDir = path.join(tmpRoot, "run");
    fs.mkdirSync(runDir);
    const damaged = Buffer.from(bytes);
    damaged[recordOffsets[2] + 20] ^= 0x80;
    fs.writeFileSync(path.join(runDir, "events.out.tfevents.1700000000.host.1.0"), damaged);
    fs.writeFileSync(
      path.join(runDir, "events.out.tfevents.1700000100.host.1.1"),
      buildEventFileBytes([0.3, 0.2], 10).bytes,
    );
    const run = readRunDir(runDir);
    expect(run.problems).toHaveLength(1);
    expect(run.problems[0]).toMatchObject({
      file: path.join(runDir, "events.out.tfevents.1700000000.host.1.0"),
      byteOffset: recordOffsets[2],
    });
    expect(run.scalars.loss.points.map((p) => p.step)).toEqual([0, 10, 11]);
  });

  it("flipping a byte inside a real TensorFlow file names the record's offset", (ctx) => {
    const golden = requireSharedPath(ctx, "tfevents-golden/lingvo/run/events.out.tfevents.test");
    const intact = readEventFile(golden);
    const target = intact.events[200];
    const damaged = Buffer.from(fs.readFileSync(golden));
    damaged[target.byteOffset + 30] ^= 0x01;
    const file = path.join(tmpRoot, "events.out.tfevents.lingvo-copy");
    fs.writeFileSync(file, damaged);
    const contents = readEventFile(file);
    expect(contents.events).toHaveLength(200);
    expect(contents.problems).toEqual([
      expect.objectContaining({ file, byteOffset: target.byteOffset, kind: "data-crc-mismatch" }),
    ]);
  });
});
