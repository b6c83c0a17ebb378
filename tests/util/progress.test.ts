import { describe, expect, it } from "vitest";
import { createProgressBar } from "../../lib/index.js";

describe("createProgressBar in plain-line mode", () => {
  function recordLines() {
    const lines: string[] = [];
    return { lines, stream: { isTTY: false, write: (t: string) => void lines.push(t) } };
  }

  it("prints a line after maxSilentSeconds even between steps, and not for a count that did not move", () => {
    let now = 0;
    const { lines, stream } = recordLines();
    const bar = createProgressBar("inception_v3 features", {
      stream,
      nowMs: () => now,
      stepPercent: 25,
      maxSilentSeconds: 30,
    });
    bar(0, 100); // 0%: printed (first step)
    for (const [t, done] of [
      [10, 1],
      [29, 2],
      [31, 3],
      [61, 3],
      [62, 4],
      [70, 5],
    ] as const) {
      now = t * 1000;
      bar(done, 100);
    }
    // 3/100 at 31 s (31 s after the 0% line), 4/100 at 62 s (31 s after that); 3/100 again at 61 s did not move.
    expect(lines.map((l) => l.split(/\s+/)[3])).toEqual(["0/100", "3/100", "4/100"]);
    // ETA: 97 left at 3 per 31 s = 1002.3 s.
    expect(lines[1]).toBe("inception_v3 features:   3% 3/100 0.1/s ETA 16m42s\n");
  });

  it("keeps to the steps when lines come often enough", () => {
    let now = 0;
    const { lines, stream } = recordLines();
    const bar = createProgressBar("scored", { stream, nowMs: () => now, stepPercent: 50 });
    for (let done = 0; done <= 4; done++) {
      now = done * 1000;
      bar(done, 4);
    }
    expect(lines.map((l) => l.split(/\s+/)[2])).toEqual(["0/4", "2/4", "4/4"]);
  });

  it("names the running pass beside the label and prints a line when the pass changes", () => {
    let now = 0;
    const { lines, stream } = recordLines();
    const bar = createProgressBar("a+b features", { stream, nowMs: () => now, stepPercent: 50 });
    // Two members of 4 images each; member b starts at 4/8 and is slow.
    for (const [t, done, member] of [
      [0, 0, "a"],
      [1, 2, "a"],
      [2, 4, "a"],
      [2, 4, "b"],
      [20, 5, "b"],
      [40, 8, "b"],
    ] as const) {
      now = t * 1000;
      bar(done, 8, member);
    }
    expect(lines).toEqual([
      "a+b features (a):   0% 0/8 0.0/s ETA ?\n",
      "a+b features (a):  50% 4/8 2.0/s ETA 2s\n",
      "a+b features (b):  50% 4/8 2.0/s ETA 2s\n",
      "a+b features (b): 100% 8/8 0.2/s in 40s\n",
    ]);
  });
});
