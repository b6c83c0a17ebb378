import { describe, expect, it } from "vitest";
import { CliArgumentError, findNearestName, parseCliArgs, UnknownNameError } from "../../lib/index.js";

describe("parseCliArgs", () => {
  it("reads values, inline values and flags", () => {
    expect(parseCliArgs(["--data", "d", "--run=r1", "--small"], { values: ["data", "run"], flags: ["small"] })).toEqual({ data: "d", run: "r1", small: true });
  });
  it("names the nearest valid option for an unknown one", () => {
    expect(() => parseCliArgs(["--dta", "x"], { values: ["data"] })).toThrow(CliArgumentError);
    expect(() => parseCliArgs(["--dta", "x"], { values: ["data"] })).toThrow(/unknown option --dta; valid options: --data/);
  });
  it("requires a value", () => {
    expect(() => parseCliArgs(["--data"], { values: ["data"] })).toThrow(/--data needs a value/);
    expect(() => parseCliArgs(["--data", "--small"], { values: ["data"], flags: ["small"] })).toThrow(/--data needs a value/);
  });
});

describe("UnknownNameError", () => {
  it("repeats the value and suggests the nearest name", () => {
    const err = new UnknownNameError("backbone", "mobilenetv2", ["mobilenet_v2", "inception_v3"]);
    expect(err.message).toBe('unknown backbone "mobilenetv2": expected one of "mobilenet_v2", "inception_v3" (did you mean "mobilenet_v2"?)');
    expect(err.name).toBe("UnknownNameError");
  });
  it("suggests nothing when nothing is close", () => {
    expect(findNearestName("zzzzzzzz", ["wasm", "cpu"])).toBeUndefined();
    expect(findNearestName("CPU", ["wasm", "cpu"])).toBe("cpu");
  });
});
