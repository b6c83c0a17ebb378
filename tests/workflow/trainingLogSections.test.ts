import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { buildTrainingLogSections, createEventWriter } from "../../lib/index.js";

describe("buildTrainingLogSections", () => {
  it("turns a run's event files into training-curve and histogram sections", () => {
    const logDir = fs.mkdtempSync(path.join(os.tmpdir(), "ml-logsections-"));
    for (const run of ["train", "validation"]) {
      const writer = createEventWriter(path.join(logDir, run));
      for (let epoch = 0; epoch < 3; epoch++) {
        writer.addScalar("epoch_loss", 1 / (epoch + 1), epoch);
        writer.addScalar("epoch_auc", 0.6 + 0.1 * epoch, epoch);
        if (run === "train") writer.addHistogram("head_hidden/kernel", [0.1 * epoch, -0.2, 0.3, 0.05], epoch);
      }
      writer.close();
    }
    const sections = buildTrainingLogSections(logDir);
    expect(sections.map((s) => s.heading)).toEqual([
      "Training curves (read back from the TensorBoard logs)",
      "Weight histograms over epochs",
    ]);
    const curves = sections[0].figures![0];
    const traceNames = curves.data.map((t) => String((t as { name?: string }).name));
    expect(traceNames.some((n) => n.includes("train"))).toBe(true);
    expect(traceNames.some((n) => n.includes("validation"))).toBe(true);
    const heatmap = sections[1].figures![0].data[0] as { x: number[] };
    expect(heatmap.x).toEqual([0, 1, 2]);
  });

  it("gives no sections for a folder without scalars", () => {
    const empty = fs.mkdtempSync(path.join(os.tmpdir(), "ml-logsections-empty-"));
    fs.mkdirSync(path.join(empty, "train"));
    expect(buildTrainingLogSections(empty)).toEqual([]);
  });
});
