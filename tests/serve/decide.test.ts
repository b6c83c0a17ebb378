import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { selectBackend } from "../../lib/index.js";
import type { TriageModelMetadata } from "../../lib/export/triageModel.js";
import { decideWithModelPolicy, type DecideTriage } from "../../lib/serve/decide.js";
import { decideTriage, fitTriagePolicy, TRIAGE_SENTENCES } from "../../lib/triage/triagePolicy.js";
import { createTriageService } from "../../lib/serve/triageService.js";
import { exportMeanColourModel, meanColourProbability, solidImage } from "./fixtures.js";

const metadata = { thresholdProb: 0.3 } as TriageModelMetadata;

describe("decideWithModelPolicy (the service's default: the model's policy, else its threshold)", () => {
  it("without a policy: urgent at or above metadata.thresholdProb, routine below; interval from views; never a diagnosis", () => {
    const at = decideWithModelPolicy({ probability: 0.3 }, metadata);
    const below = decideWithModelPolicy({ probability: 0.2999 }, metadata);
    expect(at).toMatchObject({ probability: 0.3, level: "urgent", interval: null, escalated: false });
    expect(below).toMatchObject({ probability: 0.2999, level: "routine", interval: null });
    expect(at.sentence).toBe(TRIAGE_SENTENCES.urgent);
    expect(below.sentence).toMatch(/not a diagnosis/);
    // views 0.2, 0.4: sample sd √0.02 = 0.1414; interval 0.3 ± 1.96·0.1414, clipped at 0.
    const withViews = decideWithModelPolicy({ probability: 0.3, viewProbabilities: [0.2, 0.4] }, metadata);
    expect(withViews.interval![0]).toBeCloseTo(0.3 - 1.96 * Math.sqrt(0.02), 9);
    expect(withViews.interval![1]).toBeCloseTo(0.3 + 1.96 * Math.sqrt(0.02), 9);
  });

  it("with a policy: exactly decideTriage's decision (calibrated probability, levels, escalation)", () => {
    const labels = Array.from({ length: 300 }, (_, i) => (i < 60 ? 1 : 0));
    const probs = labels.map((y, i) => Math.min(0.99, Math.max(0.01, (y ? 0.65 : 0.2) + (((i * 53) % 61) - 30) / 80)));
    const policy = fitTriagePolicy({ labels, probabilities: probs, targetNpv: 0.97 });
    const withPolicy = { ...metadata, policy } as TriageModelMetadata;
    for (const [p, views] of [
      [0.05, undefined],
      [0.3, [0.3, 0.1, 0.5]],
      [0.9, [0.9, 0.85]],
    ] as const) {
      const expected = decideTriage(policy, { probability: p, views });
      const got = decideWithModelPolicy({ probability: p, viewProbabilities: views && [...views] }, withPolicy);
      expect(got).toMatchObject({
        probability: expected.probability,
        interval: expected.interval,
        level: expected.level,
        escalated: expected.escalated,
        sentence: expected.sentence,
      });
    }
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
