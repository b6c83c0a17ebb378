import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { createEventWriter } from "../../lib/logging/eventWriter.js";
import { lookupProtoType } from "../../lib/logging/protoSchema.js";
import { splitTfRecords } from "../../lib/logging/tfrecord.js";
import { requireSharedPath } from "../helpers/shared.js";

const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), "melanoma-lab-prgolden-"));
afterAll(() => fs.rmSync(tmpRoot, { recursive: true, force: true }));

/** Raw bytes (hex) of the one Event record holding `tag`. */
function recordHex(file: string, tag: string): string {
  const { records } = splitTfRecords(fs.readFileSync(file), file);
  const matches = records.filter((record) => {
    const event = lookupProtoType("Event").decode(record.data) as unknown as {
      summary?: { value?: { tag?: string }[] };
    };
    return event.summary?.value?.some((v) => v.tag === tag);
  });
  expect(matches.length, `${file} has one ${tag} record`).toBe(1);
  return Buffer.from(matches[0].data).toString("hex");
}

describe("PR-curve writer against TensorBoard's own pr_curves writer (tfevents-golden/tb-reference)", () => {
  it("writes the same Event record, byte for byte, for the reference's curve", (ctx) => {
    const referenceDir = requireSharedPath(ctx, "tfevents-golden/tb-reference");
    // The reference curve (step 19, 11 thresholds): 100 predictions i/100, each tenth 40% positive,
    // so every bucket holds 4 positives and 6 negatives (TP 40, 36, …, 0; FP 60, 54, …, 0).
    const probabilities = Array.from({ length: 100 }, (_, i) => i / 100);
    const labels = probabilities.map((_, i) => (i % 10 < 4 ? 1 : 0));
    const writer = createEventWriter(path.join(tmpRoot, "pr"), { flushIntervalMs: 0 });
    writer.addPrCurve("pr", labels, probabilities, 19, 11, 1_700_000_019);
    writer.close();
    const run = path.join(referenceDir, "lr_0.01");
    const referenceFile = path.join(
      run,
      fs.readdirSync(run).find((f) => f.includes("tfevents"))!,
    );
    expect(recordHex(writer.filePath, "pr")).toBe(recordHex(referenceFile, "pr"));
  });
});
