import { createRequire } from "node:module";
import path from "node:path";
import { findProjectRoot } from "../util/paths.js";

interface Crc32cModule {
  buf(data: Uint8Array, seed?: number): number;
}

let crc32c: Crc32cModule | undefined;

function loadCrc32c(): Crc32cModule {
  // crc-32 has no "exports" map, so its subpath is loaded the same way under ESM, tsx and tslab.
  if (!crc32c) crc32c = createRequire(path.join(findProjectRoot(), "package.json"))("crc-32/crc32c") as Crc32cModule;
  return crc32c;
}

/** Bytes of TFRecord framing around each record: 8 (length) + 4 (length crc) + 4 (data crc). */
export const TFRECORD_OVERHEAD_BYTES = 16;

const MASK_DELTA = 0xa282ead8;

/**
 * The masked CRC32C TFRecord stores: ((crc >>> 15) | (crc << 17)) + 0xa282ead8, as uint32.
 * Masking keeps a CRC of data that itself contains CRCs from being trivially zero.
 *
 * @example computeMaskedCrc32c(new Uint8Array([0, 0, 0, 0, 0, 0, 0, 0]))
 */
export function computeMaskedCrc32c(data: Uint8Array): number {
  const crc = loadCrc32c().buf(data) >>> 0;
  return ((((crc >>> 15) | (crc << 17)) >>> 0) + MASK_DELTA) >>> 0;
}

/**
 * One record framed as TFRecord: uint64 LE length, masked crc32c of those 8 bytes, the data,
 * masked crc32c of the data. The result is one buffer so it can be written with a single call.
 *
 * @example fs.appendFileSync(file, frameTfRecord(eventBytes))
 */
export function frameTfRecord(data: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(data.length + TFRECORD_OVERHEAD_BYTES);
  out.writeBigUInt64LE(BigInt(data.length), 0);
  out.writeUInt32LE(computeMaskedCrc32c(out.subarray(0, 8)), 8);
  out.set(data, 12);
  out.writeUInt32LE(computeMaskedCrc32c(data), 12 + data.length);
  return out;
}

/** Why a record could not be read; see {@link TfRecordProblem}. */
export type TfRecordProblemKind = "truncated-header" | "length-crc-mismatch" | "truncated-data" | "data-crc-mismatch";

/** A record that failed framing checks, at `byteOffset` (start of its header) in `file`. */
export interface TfRecordProblem {
  file: string;
  byteOffset: number;
  kind: TfRecordProblemKind;
  reason: string;
}

/** One record that passed both CRC checks. `byteOffset` is where its header starts. */
export interface TfRecord {
  byteOffset: number;
  data: Uint8Array;
}

/** Result of {@link splitTfRecords}: good records, then at most one problem where reading stopped. */
export interface TfRecordSplit {
  records: TfRecord[];
  /** Bytes consumed by good records (where a resumed read would start). */
  bytesConsumed: number;
  problem?: TfRecordProblem;
}

/**
 * Splits a TFRecord file's bytes into records, verifying both CRCs. Reading stops at the first
 * bad or incomplete record, as TensorFlow's record reader (and so TensorBoard) does: a length
 * that fails its CRC leaves no trustworthy way to find the next record. A file that ends
 * mid-record (a writer still writing or killed) reports "truncated-*".
 *
 * @example const { records, problem } = splitTfRecords(fs.readFileSync(f), f)
 */
export function splitTfRecords(bytes: Uint8Array, file: string): TfRecordSplit {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const records: TfRecord[] = [];
  let offset = 0;
  const fail = (kind: TfRecordProblemKind, reason: string): TfRecordSplit => ({
    records,
    bytesConsumed: offset,
    problem: { file, byteOffset: offset, kind, reason: `${file} at byte ${offset}: ${reason}` },
  });
  while (offset < buf.length) {
    if (buf.length - offset < 12) {
      return fail("truncated-header", `record header needs 12 bytes, only ${buf.length - offset} left in the file`);
    }
    const header = buf.subarray(offset, offset + 8);
    const lengthCrcStored = buf.readUInt32LE(offset + 8);
    const lengthCrcComputed = computeMaskedCrc32c(header);
    if (lengthCrcStored !== lengthCrcComputed) {
      return fail(
        "length-crc-mismatch",
        `length CRC is 0x${lengthCrcStored.toString(16)}, expected 0x${lengthCrcComputed.toString(16)} (corrupt record header)`,
      );
    }
    const length = buf.readBigUInt64LE(offset);
    const left = BigInt(buf.length - offset - 12);
    if (length + 4n > left) {
      return fail(
        "truncated-data",
        `record declares ${length} data bytes + 4 CRC bytes, only ${left} left in the file`,
      );
    }
    const n = Number(length);
    const data = buf.subarray(offset + 12, offset + 12 + n);
    const dataCrcStored = buf.readUInt32LE(offset + 12 + n);
    const dataCrcComputed = computeMaskedCrc32c(data);
    if (dataCrcStored !== dataCrcComputed) {
      return fail(
        "data-crc-mismatch",
        `data CRC is 0x${dataCrcStored.toString(16)}, expected 0x${dataCrcComputed.toString(16)} (corrupt record of ${n} bytes)`,
      );
    }
    records.push({ byteOffset: offset, data });
    offset += n + TFRECORD_OVERHEAD_BYTES;
  }
  return { records, bytesConsumed: offset };
}
