import { lookupProtoType } from "./protoSchema.js";

/** A JSON value as google.protobuf.Value holds it. */
export type JsonValue = null | number | string | boolean | JsonValue[] | { [key: string]: JsonValue };

function snakeToCamel(key: string): string {
  return key.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

/** google.protobuf.Value (as protobufjs `toObject` gives it) → plain JSON. */
function structValueToJson(value: any): JsonValue {
  if (value === undefined || value === null) return null;
  if ("number_value" in value) return value.number_value;
  if ("string_value" in value) return value.string_value;
  if ("bool_value" in value) return value.bool_value;
  if ("list_value" in value) return (value.list_value.values ?? []).map(structValueToJson);
  if ("struct_value" in value) {
    return Object.fromEntries(
      Object.entries(value.struct_value.fields ?? {}).map(([k, v]) => [k, structValueToJson(v)]),
    );
  }
  return null;
}

/**
 * protobufjs object → the JSON protobuf's `MessageToJson` prints: lowerCamelCase keys, enum
 * names, defaults omitted, Struct values as plain JSON, map keys (hyperparameter names) untouched.
 */
function messageObjectToJson(obj: any, structFields: ReadonlySet<string>, mapFields: ReadonlySet<string>): any {
  if (Array.isArray(obj)) return obj.map((x) => messageObjectToJson(x, structFields, mapFields));
  if (obj === null || typeof obj !== "object" || obj instanceof Uint8Array) return obj;
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(obj)) {
    if (mapFields.has(key)) {
      out[snakeToCamel(key)] = Object.fromEntries(
        Object.entries(value as object).map(([k, v]) => [k, structValueToJson(v)]),
      );
    } else if (structFields.has(key)) {
      out[snakeToCamel(key)] =
        key === "domain_discrete" ? structValueToJson({ list_value: value }) : structValueToJson(value);
    } else {
      out[snakeToCamel(key)] = messageObjectToJson(value, structFields, mapFields);
    }
  }
  return out;
}

/** Which message an hparams summary carries, and its JSON form. */
export interface DecodedHparamsPluginData {
  kind: "experiment" | "session_start_info" | "session_end_info" | "none";
  version: number;
  /** MessageToJson form of the inner message, e.g. `{ hparams: { lr: 0.01 }, groupName: "lr_0.01" }`. */
  json: Record<string, JsonValue>;
}

/**
 * Decodes the plugin content of an hparams summary (HParamsPluginData) to the JSON TensorBoard's
 * HParams plugin works with.
 *
 * @example decodeHparamsPluginContent(metadata.pluginContent).json.groupName
 */
export function decodeHparamsPluginContent(content: Uint8Array): DecodedHparamsPluginData {
  const type = lookupProtoType("HParamsPluginData");
  const message = type.decode(content);
  const obj: any = type.toObject(message, { enums: String, longs: Number, defaults: false, oneofs: false });
  const kinds = ["experiment", "session_start_info", "session_end_info"] as const;
  const kind: DecodedHparamsPluginData["kind"] = kinds.find((k) => obj[k] !== undefined) ?? "none";
  const inner = kind === "none" ? {} : obj[kind];
  return {
    kind,
    version: obj.version ?? 0,
    json: messageObjectToJson(inner, new Set(["domain_discrete"]), new Set(["hparams"])),
  };
}
