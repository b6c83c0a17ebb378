import { MelanomaLabError } from "./errors.js";

/** Thrown for a command-line flag that is unknown or lacks its value. */
export class CliArgumentError extends MelanomaLabError {}

/**
 * Parses `--name value` and `--flag` arguments against the known names; an unknown flag throws
 * {@link CliArgumentError} naming the nearest valid one.
 *
 * @example parseCliArgs(["--data", "x", "--small"], { values: ["data"], flags: ["small"] }) // { data: "x", small: true }
 */
export function parseCliArgs(
  argv: readonly string[],
  spec: { values: readonly string[]; flags?: readonly string[] },
): Record<string, string | boolean> {
  const out: Record<string, string | boolean> = {};
  const flags = spec.flags ?? [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (!arg.startsWith("--")) throw new CliArgumentError(`unexpected argument ${JSON.stringify(arg)}: expected --name value`);
    const [rawName, inlineValue] = arg.slice(2).split(/=(.*)/s, 2);
    if (spec.values.includes(rawName)) {
      const value = inlineValue ?? argv[++i];
      if (value === undefined || value.startsWith("--")) throw new CliArgumentError(`--${rawName} needs a value`);
      out[rawName] = value;
    } else if (flags.includes(rawName)) {
      out[rawName] = true;
    } else {
      const valid = [...spec.values, ...flags].map((n) => `--${n}`);
      throw new CliArgumentError(`unknown option --${rawName}; valid options: ${valid.join(", ")}`);
    }
  }
  return out;
}
