import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { selectBackend } from "../../lib/index.js";
import type { TriageModelMetadata } from "../../lib/export/triageModel.js";
import { decideAtExportedThreshold, type DecideTriage } from "../../lib/serve/decide.js";
import { createTriageService } from "../../lib/serve/triageService.js";
import { exportMeanColourModel, meanColourProbability, solidImage } from "./fixtures.js";

const metadata = { thresholdProb: 0.3 } as TriageModelMetadata;

describe("decideAtExportedThreshold (the default until the triage policy is wired)", () => {
  it("urgent at or above metadata.thresholdProb, routine below; no interval; never a diagnosis", () => {
    const at = decideAtExportedThreshold({ probability: 0.3 }, metadata);
    const below = decideAtExportedThreshold({ probability: 0.2999 }, metadata);
    expect(at).toMatchObject({ probability: 0.3, level: "urgent", interval: null });
    expect(below).toMatchObject({ probability: 0.2999, level: "routine", interval: null });
    expect(at.sentence).toBe(
      "The estimated probability (0.30) is at or above this model's referral threshold (0.30): please have a clinician look at this lesion soon. This is not a diagnosis.",
    );
    expect(below.sentence).toMatch(/below this model's referral threshold \(0\.30\).*This is not a diagnosis/);
  });
});

describe("an injected decide replaces the default in one place", () => {
  let tmp: string;
  beforeAll(async () => {
    await selectBackend();
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), "ml-serve-decide-"));
    await exportMeanColourModel(path.join(tmp, "model"), { thresholdProb: 0.6 });
  });
  afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it("its level, interval and sentence are what the response carries; it sees the model's metadata", async () => {
    const seen: number[] = [];
    const decide: DecideTriage = ({ probability }, meta) => {
      seen.push(meta.thresholdProb);
      return {
        probability,
        interval: [probability - 0.05, probability + 0.05],
        level: probability < 0.5 ? "reassure" : "routine",
        sentence: "A policy sentence. This is not a diagnosis.",
      };
    };
    const service = await createTriageService({ modelDir: path.join(tmp, "model"), decide, logLevel: "silent" });
    try {
      const res = await service.app.inject({
        method: "POST",
        url: "/v1/triage",
        headers: { "content-type": "image/png" },
        payload: await solidImage("png", 0, 255, 0),
      });
      const body = res.json() as Record<string, unknown>;
      const p = meanColourProbability(0, 255, 0);
      expect(p).toBeLessThan(0.5);
      expect(body.level).toBe("reassure");
      expect(body.interval as number[]).toHaveLength(2);
      expect((body.interval as number[])[0]).toBeCloseTo(p - 0.05, 6);
      expect((body.interval as number[])[1]).toBeCloseTo(p + 0.05, 6);
      expect(body.sentence).toBe("A policy sentence. This is not a diagnosis.");
      expect(seen).toEqual([0.6]);
    } finally {
      await service.close();
    }
  });
});
