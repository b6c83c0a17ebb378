import { describe, expect, it } from "vitest";
import {
  CliArgumentError,
  defineCli,
  describeExpectedValue,
  findNearestName,
  formatCliHelp,
  parseCommandLine,
  UnknownNameError,
} from "../../lib/index.js";

const cli = defineCli({
  name: "score",
  usage: "npm run score --",
  summary: "Scores images.",
  examples: ["npm run score -- --model models/demo --batch-size 8"],
  options: {
    model: { type: "string", required: true, valueName: "<dir>", description: "exported model folder" },
    "batch-size": { type: "integer", min: 1, default: 32, description: "images per forward pass" },
    fraction: {
      type: "number",
      min: 0,
      max: 1,
      minExclusive: true,
      maxExclusive: true,
      description: "held-out fraction",
    },
    split: { type: "string", choices: ["lesion", "source"], default: "lesion", description: "how folds are made" },
    small: { type: "boolean", description: "fewer images" },
  },
});

describe("parseCommandLine", () => {
  it("reads values, inline values, switches and defaults, typed", () => {
    const { help, values } = parseCommandLine(cli, ["--model", "m", "--batch-size=8", "--small", "--fraction", "0.25"]);
    expect(help).toBe(false);
    expect(values).toEqual({ model: "m", "batch-size": 8, fraction: 0.25, split: "lesion", small: true });
    expect(parseCommandLine(cli, ["--model", "m"]).values).toEqual({
      model: "m",
      "batch-size": 32,
      fraction: undefined,
      split: "lesion",
      small: false,
    });
  });
  it("reports --help and -h without requiring the required options", () => {
    expect(parseCommandLine(cli, ["--help"]).help).toBe(true);
    expect(parseCommandLine(cli, ["-h"]).help).toBe(true);
  });
  it("names the nearest valid option for an unknown one, in one line", () => {
    expect(() => parseCommandLine(cli, ["--model", "m", "--bach-size", "3"])).toThrow(CliArgumentError);
    expect(() => parseCommandLine(cli, ["--model", "m", "--bach-size", "3"])).toThrow(
      /^score: unknown option --bach-size; did you mean --batch-size\? \(see --help\)$/,
    );
    expect(() => parseCommandLine(cli, ["--zzzzzzzzzzzz"])).toThrow(
      "score: unknown option --zzzzzzzzzzzz; valid options: --model, --batch-size, --fraction, --split, --small (see --help)",
    );
  });
  it("rejects whole numbers out of range or not numbers, repeating the value", () => {
    for (const bad of ["0", "abc", "1.5", "", " 2", "-3", "Infinity", "0x10"]) {
      expect(() => parseCommandLine(cli, ["--model", "m", "--batch-size", bad])).toThrow(
        `score: --batch-size must be a whole number ≥ 1; received ${JSON.stringify(bad)}`,
      );
    }
    expect(parseCommandLine(cli, ["--model", "m", "--batch-size", "1e2"]).values["batch-size"]).toBe(100);
  });
  it("checks open intervals and choices", () => {
    expect(() => parseCommandLine(cli, ["--model", "m", "--fraction", "1"])).toThrow(
      'score: --fraction must be a number in (0, 1); received "1"',
    );
    expect(() => parseCommandLine(cli, ["--model", "m", "--fraction", "0"])).toThrow(/in \(0, 1\); received "0"/);
    expect(parseCommandLine(cli, ["--model", "m", "--fraction", ".5"]).values.fraction).toBe(0.5);
    expect(() => parseCommandLine(cli, ["--model", "m", "--split", "lesions"])).toThrow(
      'score: --split must be one of lesion, source; received "lesions" (did you mean lesion?)',
    );
  });
  it("requires values, required options, and no stray arguments", () => {
    expect(() => parseCommandLine(cli, ["--model"])).toThrow(
      "score: --model needs a value (a value: <dir>); received nothing",
    );
    expect(() => parseCommandLine(cli, ["--model", "--small"])).toThrow(
      /--model needs a value .*received the option --small/,
    );
    expect(() => parseCommandLine(cli, [])).toThrow(
      "score: --model is required (exported model folder); e.g. npm run score -- --model models/demo --batch-size 8 (see --help)",
    );
    expect(() => parseCommandLine(cli, ["--model", "m", "extra"])).toThrow('score: unexpected argument "extra"');
    expect(() => parseCommandLine(cli, ["--model", "m", "--small=yes"])).toThrow(
      'score: --small is a switch and takes no value; received "yes"',
    );
  });
  it("returns positionals (and what follows --) only when the spec accepts them", () => {
    const withRest = defineCli({ ...cli, positionals: { name: "jupyter-args", description: "passed on" } });
    expect(parseCommandLine(withRest, ["a", "--model", "m", "--", "--port=1"]).positionals).toEqual(["a", "--port=1"]);
    expect(() => parseCommandLine(cli, ["--model", "m", "--", "--port=1"])).toThrow(
      'score: unexpected argument "--port=1"',
    );
    expect(formatCliHelp(withRest)).toContain("Usage: npm run score -- [options] [jupyter-args…]\n");
  });
  it("refuses an invalid default at declaration", () => {
    expect(() =>
      defineCli({
        name: "x",
        usage: "x",
        summary: "",
        examples: ["x"],
        options: { n: { type: "integer", min: 1, default: 0, description: "" } },
      }),
    ).toThrow('x: default of --n is invalid: must be a whole number ≥ 1; received "0"');
  });
});

describe("formatCliHelp", () => {
  it("lists every flag with its value, range and default, and an example", () => {
    const help = formatCliHelp(cli);
    expect(help).toContain("Usage: npm run score -- [options]");
    expect(help).toMatch(/--model <dir> +exported model folder \(required\)/);
    expect(help).toMatch(/--batch-size <n> +images per forward pass \(a whole number ≥ 1; default 32\)/);
    expect(help).toMatch(/--split lesion\|source +how folds are made \(default lesion\)/);
    expect(help).toMatch(/--small +fewer images\n/);
    expect(help).toMatch(/-h, --help +show this help/);
    expect(help).toContain("Example:\n  npm run score -- --model models/demo --batch-size 8");
    expect(describeExpectedValue({ type: "number", max: 5, description: "" })).toBe("a number ≤ 5");
  });
});

describe("UnknownNameError", () => {
  it("repeats the value and suggests the nearest name", () => {
    const err = new UnknownNameError("backbone", "mobilenetv2", ["mobilenet_v2", "inception_v3"]);
    expect(err.message).toBe(
      'unknown backbone "mobilenetv2": expected one of "mobilenet_v2", "inception_v3" (did you mean "mobilenet_v2"?)',
    );
    expect(err.name).toBe("UnknownNameError");
  });
  it("suggests nothing when nothing is close", () => {
    expect(findNearestName("zzzzzzzz", ["wasm", "cpu"])).toBeUndefined();
    expect(findNearestName("CPU", ["wasm", "cpu"])).toBe("cpu");
  });
});
