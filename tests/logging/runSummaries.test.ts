import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import sharp from "sharp";
import { afterAll, describe, expect, it } from "vitest";
import { createEventWriter } from "../../lib/logging/eventWriter.js";
import { readLogDir } from "../../lib/logging/readLogDir.js";
import {
  formatJsonAsMarkdown,
  formatModelCardMarkdown,
  SampleImagesError,
  writeSampleImageGrids,
  writeTextSummaries,
} from "../../lib/logging/runSummaries.js";
import { createTensorBoardCallback, TensorBoardCallbackError } from "../../lib/logging/tensorBoardCallback.js";

const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), "melanoma-lab-runsummaries-"));
afterAll(() => fs.rmSync(tmpRoot, { recursive: true, force: true }));

async function writePng(name: string, grey: number): Promise<string> {
  const file = path.join(tmpRoot, name);
  await sharp({ create: { width: 20, height: 20, channels: 3, background: { r: grey, g: grey, b: grey } } })
    .png()
    .toFile(file);
  return file;
}

describe("writeSampleImageGrids", () => {
  it("skips a file that does not decode, names it, and still writes the label's grid", async () => {
    const good = await writePng("good.png", 200);
    const broken = path.join(tmpRoot, "broken.jpg");
    fs.writeFileSync(broken, "not an image");
    const writer = createEventWriter(path.join(tmpRoot, "skip", "train"), { flushIntervalMs: 0 });
    const written = await writeSampleImageGrids(
      writer,
      [
        { imageId: "B1", label: "benign", imagePath: broken },
        { imageId: "B2", label: "benign", imagePath: good },
      ],
      { cellSizePx: 32 },
    );
    writer.close();
    expect(written.map((w) => [w.tag, w.imageIds])).toEqual([["train/samples/benign", ["B2"]]]);
    expect(written[0].skipped).toHaveLength(1);
    expect(written[0].skipped[0]).toContain("broken.jpg");
    const series = readLogDir(path.join(tmpRoot, "skip")).runs[0].images["train/samples/benign"];
    expect(series.description).toContain("`B2` (benign)");
    expect(series.description).not.toContain("B1");
    expect([series.points[0].declaredWidthPx, series.points[0].declaredHeightPx]).toEqual([32, 32 + 18]);
  });

  it("rejects no records, a label with no decodable image, and a bad perLabel, with the values named", async () => {
    const writer = createEventWriter(path.join(tmpRoot, "bad", "train"), { flushIntervalMs: 0 });
    await expect(writeSampleImageGrids(writer, [])).rejects.toThrow(SampleImagesError);
    await expect(
      writeSampleImageGrids(writer, [
        { imageId: "M1", label: "malignant", imagePath: path.join(tmpRoot, "missing.png") },
      ]),
    ).rejects.toThrow(/no "malignant" sample image decodes \(1 tried\).*missing\.png/);
    await expect(
      writeSampleImageGrids(writer, [{ imageId: "x", label: "benign", imagePath: "x" }], { perLabel: 0 }),
    ).rejects.toThrow(/perLabel 0/);
    writer.close();
  });
});

describe("text summaries", () => {
  it("formats a model card: plain fields, one table per object field, the whole JSON, pipes escaped", () => {
    const card = formatModelCardMarkdown(
      { thresholdProb: 0.3, labels: ["benign", "malignant"], notes: { reason: "a | b" } },
      "models/x",
    );
    expect(card).toBe(
      [
        "# Model card: models/x",
        '| field | value |\n|---|---|\n| thresholdProb | 0.3 |\n| labels | ["benign","malignant"] |',
        "## notes",
        "| field | value |\n|---|---|\n| reason | a \\| b |",
        formatJsonAsMarkdown(
          { thresholdProb: 0.3, labels: ["benign", "malignant"], notes: { reason: "a | b" } },
          "metadata.json",
        ),
      ].join("\n\n"),
    );
    expect(formatJsonAsMarkdown({ a: 1 })).toBe('```json\n{\n  "a": 1\n}\n```');
  });

  it("writeTextSummaries appends a new event file to an existing run, read back as one run", () => {
    const runDir = path.join(tmpRoot, "texts", "train");
    const first = createEventWriter(runDir, { flushIntervalMs: 0 });
    first.addScalar("epoch_loss", 0.5, 0);
    first.close();
    const file = writeTextSummaries(runDir, { model_card: "# card" }, 0, { flushIntervalMs: 0 });
    expect(file).not.toBe(first.filePath);
    const [run] = readLogDir(path.join(tmpRoot, "texts")).runs;
    expect(run.files).toHaveLength(2);
    expect(run.text.model_card.points[0].values).toEqual(["# card"]);
    expect(run.scalars.epoch_loss.points).toHaveLength(1);
  });
});

describe("createTensorBoardCallback validationPrCurve", () => {
  it("rejects features that do not split into one row per label", () => {
    expect(() =>
      createTensorBoardCallback(path.join(tmpRoot, "prbad"), {
        validationPrCurve: { features: new Float32Array(7), labels: [0, 1] },
      }),
    ).toThrow(TensorBoardCallbackError);
    expect(() =>
      createTensorBoardCallback(path.join(tmpRoot, "prbad2"), {
        validationPrCurve: { features: new Float32Array(7), labels: [0, 1] },
      }),
    ).toThrow(/7 feature values for 2 labels/);
  });
});
