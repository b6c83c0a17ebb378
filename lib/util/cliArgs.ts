import { parseArgs } from "node:util";
import { findNearestName, MelanomaLabError } from "./errors.js";

/** Thrown for a command-line argument that is unknown, lacks its value or has an invalid one. */
export class CliArgumentError extends MelanomaLabError {}

/** The kinds of value a command-line option takes. */
export type CliOptionType = "string" | "boolean" | "integer" | "number";

/**
 * One option of a command, declared once: it drives parsing, validation and `--help`.
 * Numeric bounds are inclusive unless `minExclusive` / `maxExclusive` say otherwise.
 */
export interface CliOptionSpec {
  type: CliOptionType;
  /** One line for `--help`; say the unit where there is one. */
  description: string;
  /** Value when the flag is absent (booleans default to false). */
  default?: string | number | boolean;
  /** The flag must be given (an option with a default never needs this). */
  required?: boolean;
  /** Placeholder in `--help`, e.g. "<dir>" (default from the type: <n>, <x>, <text>). */
  valueName?: string;
  /** "string" options: the only valid values. */
  choices?: readonly string[];
  min?: number;
  max?: number;
  minExclusive?: boolean;
  maxExclusive?: boolean;
}

/** A command's declaration: its name, what it does, an example and its options. */
export interface CliSpec<O extends Record<string, CliOptionSpec> = Record<string, CliOptionSpec>> {
  /** Short name used in messages: "score" → "score: unknown option …". */
  name: string;
  /** How it is run, e.g. "npm run score --". */
  usage: string;
  /** One or two sentences for `--help`. */
  summary: string;
  /** Full command lines shown under "Examples" in `--help` (at least one). */
  examples: readonly string[];
  options: O;
  /** Notes appended to `--help` (environment variables, …). */
  notes?: readonly string[];
  /**
   * When set, arguments that are not options (and everything after `--`) are accepted and
   * returned as `positionals`; this names them in `--help`. Without it they are refused.
   */
  positionals?: { name: string; description: string };
}

type ValueOfType<T extends CliOptionType> = T extends "boolean" ? boolean : T extends "string" ? string : number;

/** The parsed values of a {@link CliSpec}: typed per option, `undefined` only when optional without default. */
export type CliValues<O extends Record<string, CliOptionSpec>> = {
  [K in keyof O]: O[K]["type"] extends "boolean"
    ? boolean
    : O[K] extends { default: string | number } | { required: true }
      ? ValueOfType<O[K]["type"]>
      : ValueOfType<O[K]["type"]> | undefined;
};

/** What {@link parseCommandLine} returns: `help` true when `--help`/`-h` was given (values are then the defaults). */
export interface CliParseResult<O extends Record<string, CliOptionSpec>> {
  help: boolean;
  values: CliValues<O>;
  /** Non-option arguments, in order (only for a spec with `positionals`). */
  positionals: string[];
}

/**
 * Declares a command's options once (typed values follow from the declaration).
 *
 * @example
 * const cli = defineCli({ name: "score", usage: "npm run score --", summary: "Scores images.",
 *   examples: ["npm run score -- --batch-size 8"],
 *   options: { "batch-size": { type: "integer", min: 1, default: 32, description: "images per forward pass" } } });
 * const { values } = parseCommandLineOrExit(cli, process.argv.slice(2)); // values["batch-size"]: number
 */
export function defineCli<const O extends Record<string, CliOptionSpec>>(spec: CliSpec<O>): CliSpec<O> {
  for (const [name, option] of Object.entries(spec.options)) {
    if (name === "help")
      throw new CliArgumentError(`${spec.name}: option --help is built in; received a declaration of it`);
    if (option.default !== undefined) {
      const problem = checkValue(option, String(option.default));
      if (problem) throw new CliArgumentError(`${spec.name}: default of --${name} is invalid: ${problem}`);
    }
  }
  if (spec.examples.length === 0)
    throw new CliArgumentError(`${spec.name}: expected at least one example; received none`);
  return spec;
}

/** "a whole number ≥ 1", "a number in (0, 1)", "one of lesion, source", … for an option. */
export function describeExpectedValue(option: CliOptionSpec): string {
  if (option.type === "boolean") return "no value (a switch)";
  if (option.type === "string") return option.choices ? `one of ${option.choices.join(", ")}` : "a value";
  const kind = option.type === "integer" ? "a whole number" : "a number";
  const { min, max } = option;
  if (min !== undefined && max !== undefined) {
    return `${kind} in ${option.minExclusive ? "(" : "["}${min}, ${max}${option.maxExclusive ? ")" : "]"}`;
  }
  if (min !== undefined) return `${kind} ${option.minExclusive ? ">" : "≥"} ${min}`;
  if (max !== undefined) return `${kind} ${option.maxExclusive ? "<" : "≤"} ${max}`;
  return kind;
}

/** Undefined when `raw` is valid for the option, else what was expected. */
function checkValue(option: CliOptionSpec, raw: string): string | undefined {
  if (option.type === "string") {
    if (option.choices && !option.choices.includes(raw)) {
      const nearest = findNearestName(raw, option.choices);
      return `must be ${describeExpectedValue(option)}; received ${JSON.stringify(raw)}${nearest ? ` (did you mean ${nearest}?)` : ""}`;
    }
    return undefined;
  }
  if (option.type === "boolean") return undefined;
  const value = toNumber(raw);
  const inRange =
    Number.isFinite(value) &&
    (option.type === "number" || Number.isInteger(value)) &&
    (option.min === undefined || (option.minExclusive ? value > option.min : value >= option.min)) &&
    (option.max === undefined || (option.maxExclusive ? value < option.max : value <= option.max));
  return inRange ? undefined : `must be ${describeExpectedValue(option)}; received ${JSON.stringify(raw)}`;
}

// Number("") is 0 and Number(" 1 ") is 1; a flag value is only a number when it reads as one.
function toNumber(raw: string): number {
  return /^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i.test(raw.trim()) && raw.trim() === raw ? Number(raw) : NaN;
}

/**
 * Parses `argv` (without node and the script) against `spec` with `node:util` parseArgs:
 * `--name value`, `--name=value`, switches, `--help`/`-h`. Throws {@link CliArgumentError}
 * (message starts with the command name) for an unknown option (naming the nearest valid
 * one), a missing or invalid value, a value given to a switch, a stray argument, or a
 * missing required option. Absent options take their defaults.
 *
 * @example parseCommandLine(cli, ["--batch-size", "0"]) // throws 'score: --batch-size must be a whole number ≥ 1; received "0"'
 */
export function parseCommandLine<O extends Record<string, CliOptionSpec>>(
  spec: CliSpec<O>,
  argv: readonly string[],
): CliParseResult<O> {
  const fail = (message: string): never => {
    throw new CliArgumentError(`${spec.name}: ${message}`);
  };
  const parseOptions: Record<string, { type: "string" | "boolean"; short?: string }> = {
    help: { type: "boolean", short: "h" },
  };
  for (const [name, option] of Object.entries(spec.options))
    parseOptions[name] = { type: option.type === "boolean" ? "boolean" : "string" };
  // strict: false so that every problem gets our one-line message rather than parseArgs' TypeError.
  const { tokens } = parseArgs({
    args: [...argv],
    options: parseOptions,
    strict: false,
    allowPositionals: true,
    tokens: true,
  });
  const raw = new Map<string, string | boolean>();
  const positionals: string[] = [];
  let help = false;
  const names = Object.keys(spec.options);
  for (let t = 0; t < tokens.length; t++) {
    const token = tokens[t];
    if (token.kind === "option-terminator") continue;
    if (token.kind === "positional") {
      if (spec.positionals) {
        positionals.push(token.value);
        continue;
      }
      fail(`unexpected argument ${JSON.stringify(token.value)}; options take the form --name value (see --help)`);
    }
    if (token.kind !== "option") continue;
    if (token.name === "help") {
      help = true;
      continue;
    }
    const option = spec.options[token.name];
    if (!option) {
      const nearest = findNearestName(token.name, names);
      fail(
        `unknown option ${token.rawName.split("=")[0]}; ` +
          (nearest ? `did you mean --${nearest}?` : `valid options: ${names.map((n) => `--${n}`).join(", ")}`) +
          " (see --help)",
      );
    }
    if (option.type === "boolean") {
      if (token.inlineValue)
        fail(`--${token.name} is a switch and takes no value; received ${JSON.stringify(token.value)}`);
      raw.set(token.name, true);
      continue;
    }
    const value = token.value;
    // parseArgs takes the next argument as the value even when it is another option.
    if (value === undefined || (!token.inlineValue && value.startsWith("--") && value.length > 2)) {
      fail(
        `--${token.name} needs a value (${describeExpectedValue(option)}${option.valueName ? `: ${option.valueName}` : ""}); received ${value === undefined ? "nothing" : `the option ${value}`}`,
      );
    }
    raw.set(token.name, value!);
  }
  const values: Record<string, string | number | boolean | undefined> = {};
  for (const [name, option] of Object.entries(spec.options)) {
    const given = raw.get(name);
    if (option.type === "boolean") {
      values[name] = given === true ? true : option.default === true;
      continue;
    }
    if (given === undefined) {
      if (option.required && !help)
        fail(`--${name} is required (${option.description}); e.g. ${spec.examples[0]} (see --help)`);
      values[name] = option.default;
      continue;
    }
    const problem = checkValue(option, given as string);
    if (problem) fail(`--${name} ${problem}`);
    values[name] = option.type === "string" ? given : Number(given);
  }
  return { help, values: values as CliValues<O>, positionals };
}

/**
 * The `--help` text of a command: usage, summary, each option with its value, description and
 * default (or "required"), notes and examples.
 *
 * @example console.log(formatCliHelp(cli))
 */
export function formatCliHelp(spec: CliSpec): string {
  const rows = Object.entries(spec.options).map(([name, option]) => {
    const placeholder =
      option.type === "boolean"
        ? ""
        : ` ${option.valueName ?? (option.choices ? option.choices.join("|") : option.type === "integer" ? "<n>" : option.type === "number" ? "<x>" : "<text>")}`;
    const facts: string[] = [];
    if (option.type === "integer" || option.type === "number") facts.push(describeExpectedValue(option));
    if (option.required) facts.push("required");
    else if (option.default !== undefined && option.default !== false)
      facts.push(`default ${option.default === "" ? '""' : String(option.default)}`);
    return {
      flag: `--${name}${placeholder}`,
      text: `${option.description}${facts.length > 0 ? ` (${facts.join("; ")})` : ""}`,
    };
  });
  rows.push({ flag: "-h, --help", text: "show this help and exit" });
  const width = Math.min(34, Math.max(...rows.map((r) => r.flag.length)) + 2);
  const lines = [
    `Usage: ${spec.usage} [options]${spec.positionals ? ` [${spec.positionals.name}…]` : ""}`,
    "",
    spec.summary,
    "",
  ];
  if (spec.positionals) lines.push(`${spec.positionals.name}: ${spec.positionals.description}`, "");
  lines.push("Options:");
  for (const r of rows)
    lines.push(
      r.flag.length + 2 > width ? `  ${r.flag}\n  ${" ".repeat(width)}${r.text}` : `  ${r.flag.padEnd(width)}${r.text}`,
    );
  if (spec.notes && spec.notes.length > 0) lines.push("", ...spec.notes);
  lines.push("", spec.examples.length > 1 ? "Examples:" : "Example:", ...spec.examples.map((e) => `  ${e}`));
  return lines.join("\n");
}

/**
 * For scripts: {@link parseCommandLine}, printing `--help` and exiting 0 when asked, and on a
 * bad argument printing the one-line {@link CliArgumentError} message to stderr and exiting 2
 * (no stack trace).
 *
 * @example const { values } = parseCommandLineOrExit(cli, process.argv.slice(2)); values["batch-size"] // number
 */
export function parseCommandLineOrExit<O extends Record<string, CliOptionSpec>>(
  spec: CliSpec<O>,
  argv: readonly string[],
): CliParseResult<O> {
  let parsed: CliParseResult<O>;
  try {
    parsed = parseCommandLine(spec, argv);
  } catch (err) {
    if (err instanceof CliArgumentError) {
      process.stderr.write(`${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  if (parsed.help) {
    process.stdout.write(`${formatCliHelp(spec)}\n`);
    process.exit(0);
  }
  return parsed;
}
