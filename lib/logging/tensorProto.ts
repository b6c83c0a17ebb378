import { MelanomaLabError } from "../util/errors.js";
import { lookupProtoEnum } from "./protoSchema.js";

/** TensorFlow dtype names as they appear in TensorProto (`DT_FLOAT`, `DT_STRING`, …). */
export type TensorDtypeName = string;

/**
 * A TensorProto decoded to plain values. Numeric dtypes fill `numbers` (int64/uint64 as the
 * nearest double, bool as 0/1); DT_STRING fills `strings` (raw bytes: images are PNG blobs).
 * Values are expanded to the full element count as TensorFlow's `make_ndarray` does (a proto
 * that lists fewer values than elements repeats the last one).
 *
 * @example { dtype: "DT_FLOAT", shape: [], numbers: Float64Array.of(0.5) }
 */
export interface DecodedTensor {
  dtype: TensorDtypeName;
  /** Dimension sizes, outermost first; [] for a scalar. */
  shape: number[];
  numbers?: Float64Array;
  strings?: Uint8Array[];
}

/** A TensorProto field or byte layout that cannot be turned into values. */
export class TensorDecodeError extends MelanomaLabError {}

/** Raw TensorProto as protobufjs decodes it (snake_case field names, as in the .proto). */
export interface RawTensorProto {
  dtype?: number;
  tensor_shape?: { dim?: { size?: number | { toNumber(): number } }[] };
  tensor_content?: Uint8Array;
  half_val?: number[];
  float_val?: number[];
  double_val?: number[];
  int_val?: number[];
  string_val?: Uint8Array[];
  int64_val?: (number | { toNumber(): number })[];
  bool_val?: boolean[];
  uint32_val?: number[];
  uint64_val?: (number | { toNumber(): number })[];
}

/** int64 fields arrive as numbers or Long objects depending on protobufjs' `long` support. */
export function toPlainNumber(value: number | { toNumber(): number } | undefined | null): number {
  if (value === undefined || value === null) return 0;
  return typeof value === "number" ? value : value.toNumber();
}

/**
 * The TensorFlow name of a numeric dtype code (`1` → `"DT_FLOAT"`), or `"DT_<code>"` for codes
 * the schema does not list.
 *
 * @example dtypeNameOf(7) // "DT_STRING"
 */
function dtypeNameOf(code: number): TensorDtypeName {
  return lookupProtoEnum("DataType").valuesById[code] ?? `DT_${code}`;
}

/** The numeric dtype code of a name (`"DT_DOUBLE"` → 2). */
function dtypeCodeOf(name: TensorDtypeName): number {
  const code = lookupProtoEnum("DataType").values[name];
  if (code === undefined)
    throw new TensorDecodeError(
      `unknown tensor dtype ${JSON.stringify(name)}: expected a TensorFlow name such as "DT_FLOAT"`,
    );
  return code;
}

function float16ToNumber(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >> 10) & 0x1f;
  const fraction = bits & 0x3ff;
  if (exponent === 0) return sign * 2 ** -14 * (fraction / 1024);
  if (exponent === 0x1f) return fraction ? NaN : sign * Infinity;
  return sign * 2 ** (exponent - 15) * (1 + fraction / 1024);
}

function decodeTensorContent(dtype: TensorDtypeName, content: Uint8Array): Float64Array {
  const view = new DataView(content.buffer, content.byteOffset, content.byteLength);
  const read = (bytesPer: number, get: (offset: number) => number): Float64Array => {
    if (content.byteLength % bytesPer !== 0) {
      throw new TensorDecodeError(
        `tensor_content of ${dtype} has ${content.byteLength} bytes, expected a multiple of ${bytesPer}`,
      );
    }
    const out = new Float64Array(content.byteLength / bytesPer);
    for (let i = 0; i < out.length; i++) out[i] = get(i * bytesPer);
    return out;
  };
  switch (dtype) {
    case "DT_FLOAT":
      return read(4, (o) => view.getFloat32(o, true));
    case "DT_DOUBLE":
      return read(8, (o) => view.getFloat64(o, true));
    case "DT_INT32":
      return read(4, (o) => view.getInt32(o, true));
    case "DT_UINT32":
      return read(4, (o) => view.getUint32(o, true));
    case "DT_INT16":
      return read(2, (o) => view.getInt16(o, true));
    case "DT_UINT16":
      return read(2, (o) => view.getUint16(o, true));
    case "DT_HALF":
      return read(2, (o) => float16ToNumber(view.getUint16(o, true)));
    case "DT_BFLOAT16":
      return read(2, (o) => {
        const scratch = new DataView(new ArrayBuffer(4));
        scratch.setUint32(0, view.getUint16(o, true) << 16);
        return scratch.getFloat32(0);
      });
    case "DT_INT8":
      return read(1, (o) => view.getInt8(o));
    case "DT_UINT8":
    case "DT_BOOL":
      return read(1, (o) => view.getUint8(o));
    case "DT_INT64":
      return read(8, (o) => Number(view.getBigInt64(o, true)));
    case "DT_UINT64":
      return read(8, (o) => Number(view.getBigUint64(o, true)));
    default:
      throw new TensorDecodeError(`tensor_content of dtype ${dtype} is not supported: expected a numeric dtype`);
  }
}

function expandToCount<T>(values: T[], count: number, zero: T): T[] {
  if (values.length >= count) return values;
  const fill = values.length > 0 ? values[values.length - 1] : zero;
  return values.concat(new Array<T>(count - values.length).fill(fill));
}

/**
 * Decodes a TensorProto (as protobufjs returns it) into {@link DecodedTensor}.
 * Throws {@link TensorDecodeError} for byte layouts that do not match the dtype.
 *
 * @example decodeTensorProto(value.tensor).numbers?.[0]
 */
export function decodeTensorProto(proto: RawTensorProto): DecodedTensor {
  const dtype = dtypeNameOf(proto.dtype ?? 0);
  const shape = (proto.tensor_shape?.dim ?? []).map((d) => toPlainNumber(d.size));
  const count = shape.reduce((a, b) => a * b, 1);
  if (dtype === "DT_STRING") {
    return { dtype, shape, strings: expandToCount(proto.string_val ?? [], count, new Uint8Array(0)) };
  }
  let values: number[];
  if (proto.tensor_content && proto.tensor_content.length > 0) {
    values = Array.from(decodeTensorContent(dtype, proto.tensor_content));
  } else if (dtype === "DT_FLOAT" || dtype === "DT_COMPLEX64") {
    values = (proto.float_val ?? []).map((v) => Math.fround(v));
  } else if (dtype === "DT_DOUBLE" || dtype === "DT_COMPLEX128") {
    values = proto.double_val ?? [];
  } else if (dtype === "DT_INT64") {
    values = (proto.int64_val ?? []).map(toPlainNumber);
  } else if (dtype === "DT_UINT64") {
    values = (proto.uint64_val ?? []).map(toPlainNumber);
  } else if (dtype === "DT_UINT32") {
    values = proto.uint32_val ?? [];
  } else if (dtype === "DT_BOOL") {
    values = (proto.bool_val ?? []).map((b) => (b ? 1 : 0));
  } else if (dtype === "DT_HALF" || dtype === "DT_BFLOAT16") {
    values = (proto.half_val ?? []).map((bits) =>
      dtype === "DT_HALF" ? float16ToNumber(bits) : new Float32Array(new Uint32Array([bits << 16]).buffer)[0],
    );
  } else {
    values = proto.int_val ?? [];
  }
  return { dtype, shape, numbers: Float64Array.from(expandToCount(values, count, 0)) };
}

/**
 * A TensorProto object (snake_case, ready for protobufjs `create`) holding `values` in
 * `tensor_content` little-endian, as TensorFlow's `make_tensor_proto` does for non-scalar
 * numeric tensors; scalars use `float_val`/`double_val` like TensorFlow's summary ops.
 *
 * @example encodeNumericTensor("DT_DOUBLE", [2, 3], buckets)
 */
export function encodeNumericTensor(
  dtype: "DT_FLOAT" | "DT_DOUBLE",
  shape: readonly number[],
  values: ArrayLike<number>,
): Record<string, unknown> {
  const count = shape.reduce((a, b) => a * b, 1);
  if (values.length !== count) {
    throw new TensorDecodeError(
      `tensor of shape [${shape.join(", ")}] needs ${count} values, received ${values.length}`,
    );
  }
  const tensor: Record<string, unknown> = {
    dtype: dtypeCodeOf(dtype),
    tensor_shape: { dim: shape.map((size) => ({ size })) },
  };
  if (shape.length === 0) {
    tensor[dtype === "DT_FLOAT" ? "float_val" : "double_val"] = [values[0]];
  } else if (count > 0) {
    const bytesPer = dtype === "DT_FLOAT" ? 4 : 8;
    const content = new Uint8Array(count * bytesPer);
    const view = new DataView(content.buffer);
    for (let i = 0; i < count; i++) {
      if (bytesPer === 4) view.setFloat32(i * 4, values[i], true);
      else view.setFloat64(i * 8, values[i], true);
    }
    tensor.tensor_content = content;
  }
  return tensor;
}

/** A DT_STRING TensorProto object of the given shape (scalar when `shape` is []). */
export function encodeStringTensor(shape: readonly number[], values: readonly Uint8Array[]): Record<string, unknown> {
  const count = shape.reduce((a, b) => a * b, 1);
  if (values.length !== count) {
    throw new TensorDecodeError(
      `string tensor of shape [${shape.join(", ")}] needs ${count} values, received ${values.length}`,
    );
  }
  return {
    dtype: dtypeCodeOf("DT_STRING"),
    tensor_shape: { dim: shape.map((size) => ({ size })) },
    string_val: values.slice(),
  };
}
