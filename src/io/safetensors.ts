/**
 * Read, validate, decode and write safetensors files.
 *
 * The format is an 8-byte little-endian unsigned header length `N`, then `N` bytes of UTF-8
 * JSON, then a data buffer. The JSON object maps each tensor name to
 * `{ "dtype", "shape", "data_offsets": [begin, end] }` (offsets relative to the data buffer)
 * and may hold string metadata under `"__metadata__"`.
 *
 * {@linkcode parseSafetensors} checks everything the format requires (and throws a
 * {@linkcode SafetensorsError} with a specific code otherwise): the header length, UTF-8 and
 * JSON, the structure of every entry, known dtypes, non-negative integer shapes and offsets,
 * byte sizes matching shape × dtype size, no duplicate names, no overlapping ranges and no
 * unused bytes. It never allocates memory from a size written in the file: only in proportion
 * to the real byte length. Tensor bytes are views into the input, not copies.
 * {@linkcode readSafetensorsFile} reads a file header first: it refuses anything but a regular
 * file, and checks the header against the file's size before it reads the data.
 *
 * @example Round trip through bytes
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseSafetensors, serializeSafetensors, toFloat32 } from "@diffprobe/core";
 *
 * const bytes = serializeSafetensors({
 *   "conv.weight": { dtype: "F32", shape: [2, 2], data: new Float32Array([1, 2, 3, 4]) },
 * }, { format: "pt" });
 * const file = parseSafetensors(bytes, "model.safetensors");
 * const entry = file.tensors.get("conv.weight")!;
 * assert.deepEqual(entry.shape, [2, 2]);
 * assert.equal(toFloat32(entry)[3], 4);
 * assert.equal(file.metadata.format, "pt");
 * ```
 *
 * @module
 */

import { writeFileAtomic } from "../base/atomic_write.ts";
import { nonNegativeInteger, show } from "../base/validate.ts";
import { openRegularFile, readAt, type ReadFail } from "./bounded_read.ts";
import { parseJsonBytes } from "./parse_json.ts";
import { SafetensorsError } from "./errors.ts";
import type { SafetensorsErrorCode } from "./errors.ts";

/**
 * The element types this module reads and writes (the safetensors dtype names).
 */
export type SafetensorsDtype =
  | "F64"
  | "F32"
  | "F16"
  | "BF16"
  | "I64"
  | "I32"
  | "I16"
  | "I8"
  | "U8"
  | "U16"
  | "U32"
  | "U64"
  | "BOOL";

/**
 * One tensor inside a parsed file: raw little-endian bytes, a view into the file buffer.
 */
export interface SafetensorsEntry {
  /** The element type. */
  dtype: SafetensorsDtype;
  /** The dimensions; `[]` for a scalar. */
  shape: number[];
  /** The tensor's raw little-endian bytes (shape product × dtype size of them). */
  bytes: Uint8Array;
}

/**
 * A parsed and validated safetensors file.
 */
export interface SafetensorsFile {
  /** The tensors, in header order. */
  tensors: Map<string, SafetensorsEntry>;
  /** The `"__metadata__"` strings, `{}` when absent. */
  metadata: Record<string, string>;
}

/**
 * A tensor to write with {@linkcode serializeSafetensors}.
 *
 * `data` is a typed array matching the dtype: `Float64Array` for F64, `Float32Array` for F32,
 * `Uint16Array` of raw bits for F16 and BF16 (or a `Float16Array` for F16), `BigInt64Array`
 * for I64, `Int32Array`, `Int16Array`, `Int8Array`, `Uint8Array` (U8 and BOOL), `Uint16Array`,
 * `Uint32Array`, `BigUint64Array` for U64. A `Uint8Array` or `DataView` of raw little-endian
 * bytes is accepted for every dtype (so entries read with {@linkcode parseSafetensors} can be
 * written back as they are).
 */
export interface TensorToWrite {
  /** The element type. */
  dtype: SafetensorsDtype;
  /** The dimensions; their product times the dtype size must equal `data.byteLength`. */
  shape: number[];
  /** The values (see above for which typed array each dtype takes). */
  data: ArrayBufferView;
}

/** A typed-array class, for `instanceof` checks. */
type ViewClass = abstract new (...args: never[]) => ArrayBufferView;

/** `Float16Array` where the runtime has it. */
const FLOAT16: readonly ViewClass[] =
  typeof (globalThis as Record<string, unknown>).Float16Array === "function"
    ? [(globalThis as unknown as Record<string, ViewClass>).Float16Array]
    : [];

/**
 * What each dtype is: its element size in bytes, the typed arrays that hold its values for
 * {@linkcode serializeSafetensors} (beside a `Uint8Array` or `DataView` of raw little-endian
 * bytes, accepted for every dtype), and how messages name them.
 */
const DTYPES: Readonly<
  Record<SafetensorsDtype, { size: number; views: readonly ViewClass[]; viewName: string }>
> = Object.freeze({
  F64: { size: 8, views: [Float64Array], viewName: "Float64Array" },
  F32: { size: 4, views: [Float32Array], viewName: "Float32Array" },
  F16: {
    size: 2,
    views: [Uint16Array, ...FLOAT16],
    viewName: "Uint16Array (raw bits) or Float16Array",
  },
  BF16: { size: 2, views: [Uint16Array], viewName: "Uint16Array (raw bits)" },
  I64: { size: 8, views: [BigInt64Array], viewName: "BigInt64Array" },
  I32: { size: 4, views: [Int32Array], viewName: "Int32Array" },
  I16: { size: 2, views: [Int16Array], viewName: "Int16Array" },
  I8: { size: 1, views: [Int8Array], viewName: "Int8Array" },
  U8: { size: 1, views: [Uint8ClampedArray], viewName: "Uint8Array" },
  U16: { size: 2, views: [Uint16Array], viewName: "Uint16Array" },
  U32: { size: 4, views: [Uint32Array], viewName: "Uint32Array" },
  U64: { size: 8, views: [BigUint64Array], viewName: "BigUint64Array" },
  BOOL: { size: 1, views: [], viewName: "Uint8Array of 0 and 1" },
});

const DTYPE_LIST = Object.keys(DTYPES).join(", ");

/** Largest header accepted, as in the reference implementation. */
const MAX_HEADER_BYTES = 100_000_000;

/** The label used in error messages when `parseSafetensors` is not told the file name. */
const DEFAULT_LABEL = "<bytes>";

const IS_LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

const UTF8_ENCODER = new TextEncoder();

function isDtype(value: unknown): value is SafetensorsDtype {
  return typeof value === "string" && Object.hasOwn(DTYPES, value);
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** JSON-quotes a string for a message, shortened so that messages stay readable. */
function quote(text: string): string {
  const shown = text.length > 80 ? `${text.slice(0, 77)}...` : text;
  return JSON.stringify(shown);
}

/** Shows a shape in a message, shortened. */
function showShape(shape: readonly unknown[]): string {
  const shown = shape.slice(0, 8).map((d) => show(d));
  if (shape.length > 8) shown.push(`... (${shape.length} dimensions)`);
  return `[${shown.join(", ")}]`;
}

function describeValue(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  if (ArrayBuffer.isView(value)) return `a ${value.constructor.name}`;
  return `a value of type ${typeof value}`;
}

/**
 * The number of elements of `shape`, or `Infinity` when it exceeds `limit` (all dimensions
 * must already be checked to be non-negative safe integers). Never overflows.
 */
function elementCount(shape: readonly number[], limit: number): number {
  for (const d of shape) if (d === 0) return 0;
  let count = 1;
  for (const d of shape) {
    count *= d;
    if (count > limit) return Infinity;
  }
  return count;
}

function isDimension(value: unknown): value is number {
  return typeof value === "number" && Number.isSafeInteger(value) && value >= 0 &&
    !Object.is(value, -0);
}

interface DuplicateKey {
  key: string;
  /** The key of the object the duplicate is in; undefined for the top level. */
  parent: string | undefined;
}

interface HeaderScan {
  /** The top-level keys in text order (JSON.parse reorders integer-like keys). */
  keys: string[];
  /** The first key that appears twice in the top-level object or in one of its objects. */
  duplicate: DuplicateKey | undefined;
}

interface ScanFrame {
  isObject: boolean;
  expectKey: boolean;
  keys: Set<string> | undefined;
  lastKey: string | undefined;
  name: string | undefined;
}

/**
 * Scans a header text that JSON.parse has accepted and that is a JSON object: returns the
 * top-level keys in order and finds duplicate keys at depths 1 and 2.
 */
function scanHeader(text: string): HeaderScan {
  const keys: string[] = [];
  const stack: ScanFrame[] = [];
  const n = text.length;
  let i = 0;
  while (i < n) {
    const c = text.charCodeAt(i);
    if (c === 0x22) { // a string
      const start = i;
      let escaped = false;
      i++;
      while (i < n) {
        const d = text.charCodeAt(i);
        if (d === 0x5c) {
          escaped = true;
          i += 2;
        } else if (d === 0x22) {
          i++;
          break;
        } else {
          i++;
        }
      }
      const top = stack[stack.length - 1];
      if (top !== undefined && top.isObject && top.expectKey) {
        top.expectKey = false;
        const raw = text.slice(start, i);
        const key = escaped ? JSON.parse(raw) as string : raw.slice(1, -1);
        top.lastKey = key;
        if (stack.length === 1) keys.push(key);
        if (top.keys !== undefined) {
          if (top.keys.has(key)) return { keys, duplicate: { key, parent: top.name } };
          top.keys.add(key);
        }
      }
      continue;
    }
    if (c === 0x7b || c === 0x5b) { // { or [
      const parent = stack[stack.length - 1];
      const isObject = c === 0x7b;
      stack.push({
        isObject,
        expectKey: isObject,
        keys: isObject && stack.length < 2 ? new Set() : undefined,
        lastKey: undefined,
        name: parent?.isObject ? parent.lastKey : undefined,
      });
    } else if (c === 0x7d || c === 0x5d) { // } or ]
      stack.pop();
    } else if (c === 0x2c) { // ,
      const top = stack[stack.length - 1];
      if (top?.isObject) top.expectKey = true;
    }
    i++;
  }
  return { keys, duplicate: undefined };
}

interface RawEntry {
  name: string;
  dtype: SafetensorsDtype;
  shape: number[];
  begin: number;
  end: number;
}

/** The layout a header describes: tensors' byte ranges within the data buffer, and metadata. */
interface HeaderLayout {
  entries: RawEntry[];
  metadata: Record<string, string>;
}

type Fail = (code: SafetensorsErrorCode, problem: string, cause?: unknown) => SafetensorsError;

function failFor(file: string): Fail {
  return (code, problem, cause) =>
    new SafetensorsError(code, file, problem, cause === undefined ? undefined : { cause });
}

/**
 * Checks the 8-byte header length against the limit and the file size; returns it. Nothing is
 * allocated from it before this check.
 */
function checkHeaderLength(prefix: Uint8Array, size: number, fail: Fail): number {
  if (size < 8) {
    throw fail(
      "file-too-small",
      `the file is ${size} bytes long, shorter than the 8-byte header length`,
    );
  }
  const rawLength = new DataView(prefix.buffer, prefix.byteOffset, 8).getBigUint64(0, true);
  if (rawLength > BigInt(MAX_HEADER_BYTES)) {
    // The value is not shown: past the limit it is more likely the text of some other file.
    throw fail(
      "header-too-large",
      `the header length (the first 8 bytes) is larger than the limit of ${MAX_HEADER_BYTES} ` +
        `bytes; this is not a safetensors file`,
    );
  }
  const headerLength = Number(rawLength);
  if (8 + headerLength > size) {
    throw fail(
      "header-beyond-file",
      `the header length ${headerLength} is beyond the end of the file (${size} bytes)`,
    );
  }
  return headerLength;
}

/** Decodes and parses the header text; checks it is an object without duplicate keys. */
function parseHeaderJson(
  headerBytes: Uint8Array,
  fail: Fail,
): { header: Record<string, unknown>; keys: string[] } {
  const { value: header, text } = parseJsonBytes(
    headerBytes,
    (problem, cause) => fail("invalid-json", `the header ${problem}`, cause),
  );
  if (!isPlainObject(header)) {
    throw fail("invalid-header", `the header is ${describeValue(header)}, not a JSON object`);
  }
  const scan = scanHeader(text);
  if (scan.duplicate !== undefined) {
    const { key, parent } = scan.duplicate;
    if (parent === undefined) {
      throw fail(
        "duplicate-name",
        key === "__metadata__"
          ? `"__metadata__" appears more than once in the header`
          : `the tensor name ${quote(key)} appears more than once in the header`,
      );
    }
    throw fail(
      "invalid-header",
      parent === "__metadata__"
        ? `the metadata key ${quote(key)} appears more than once`
        : `the field ${quote(key)} appears more than once in the entry for tensor ${quote(parent)}`,
    );
  }
  return { header, keys: scan.keys };
}

/** Copies the `"__metadata__"` strings into `metadata` (null means none). */
function readMetadata(value: unknown, metadata: Record<string, string>, fail: Fail): void {
  if (value === null) return;
  if (!isPlainObject(value)) {
    throw fail(
      "invalid-header",
      `"__metadata__" is ${describeValue(value)}, not an object of strings`,
    );
  }
  for (const [key, item] of Object.entries(value)) {
    if (typeof item !== "string") {
      throw fail(
        "invalid-header",
        `the metadata value for ${quote(key)} is ${describeValue(item)}, not a string`,
      );
    }
    Object.defineProperty(metadata, key, {
      value: item,
      enumerable: true,
      writable: true,
      configurable: true,
    });
  }
}

/** Checks one tensor entry of the header against the data buffer's length. */
function parseEntry(name: string, value: unknown, bufferLength: number, fail: Fail): RawEntry {
  const tensor = quote(name);
  if (!isPlainObject(value)) {
    throw fail(
      "invalid-header",
      `the entry for tensor ${tensor} is ${describeValue(value)}, not a JSON object`,
    );
  }
  for (const field of ["dtype", "shape", "data_offsets"]) {
    if (!Object.hasOwn(value, field)) {
      throw fail("invalid-header", `the entry for tensor ${tensor} has no "${field}" field`);
    }
  }
  const dtype = value.dtype;
  if (typeof dtype !== "string") {
    throw fail(
      "invalid-header",
      `the dtype of tensor ${tensor} is ${describeValue(dtype)}, not a string`,
    );
  }
  if (!isDtype(dtype)) {
    throw fail(
      "unknown-dtype",
      `tensor ${tensor} has the unknown dtype ${quote(dtype)} (known: ${DTYPE_LIST})`,
    );
  }
  const shape = value.shape;
  if (!Array.isArray(shape)) {
    throw fail(
      "invalid-header",
      `the shape of tensor ${tensor} is ${describeValue(shape)}, not an array`,
    );
  }
  for (let d = 0; d < shape.length; d++) {
    if (!isDimension(shape[d])) {
      throw fail(
        "invalid-shape",
        `dimension ${d} of tensor ${tensor} is ${show(shape[d])}, not a non-negative integer`,
      );
    }
  }
  const [begin, end] = checkOffsets(tensor, value.data_offsets, bufferLength, fail);
  const count = elementCount(shape, bufferLength);
  const needed = count * DTYPES[dtype].size;
  if (needed !== end - begin) {
    const need = Number.isFinite(needed)
      ? `need ${needed} bytes`
      : `need more bytes than the whole data buffer (${bufferLength} bytes)`;
    throw fail(
      "size-mismatch",
      `tensor ${tensor} has shape ${showShape(shape)} and dtype ${dtype}, which ${need}, ` +
        `but its data_offsets [${begin}, ${end}] span ${end - begin} bytes`,
    );
  }
  return { name, dtype, shape: shape.slice(), begin, end };
}

/** Checks `data_offsets` (a pair of integers within the data buffer, begin ≤ end). */
function checkOffsets(
  tensor: string,
  offsets: unknown,
  bufferLength: number,
  fail: Fail,
): [number, number] {
  if (!Array.isArray(offsets) || offsets.length !== 2) {
    throw fail(
      "invalid-header",
      `the data_offsets of tensor ${tensor} are ${show(offsets)}, not a pair [begin, end]`,
    );
  }
  const [begin, end] = offsets;
  if (!isDimension(begin) || !isDimension(end)) {
    throw fail(
      "offsets-out-of-range",
      `the data_offsets of tensor ${tensor} are ${show(offsets)}, not non-negative integers`,
    );
  }
  if (begin > end) {
    throw fail(
      "offsets-out-of-range",
      `the data_offsets of tensor ${tensor} are [${begin}, ${end}]: the begin is after the end`,
    );
  }
  if (end > bufferLength) {
    throw fail(
      "offsets-out-of-range",
      `the data_offsets of tensor ${tensor} are [${begin}, ${end}], beyond the end of the ` +
        `data buffer (${bufferLength} bytes)`,
    );
  }
  return [begin, end];
}

/** Checks that the entries cover the data buffer exactly: no overlaps, holes or trailing bytes. */
function checkCoverage(entries: RawEntry[], bufferLength: number, fail: Fail): void {
  const sorted = entries.slice().sort((a, b) => a.begin - b.begin || a.end - b.end);
  let position = 0;
  let previous: RawEntry | undefined;
  for (const entry of sorted) {
    if (entry.begin < position && previous !== undefined) {
      throw fail(
        "overlapping-data",
        `tensors ${quote(previous.name)} [${previous.begin}, ${previous.end}] and ` +
          `${quote(entry.name)} [${entry.begin}, ${entry.end}] share bytes of the data buffer`,
      );
    }
    if (entry.begin > position) {
      throw fail(
        "data-hole",
        `bytes ${position} to ${entry.begin} of the data buffer belong to no tensor ` +
          `(before tensor ${quote(entry.name)})`,
      );
    }
    if (entry.end > position) {
      position = entry.end;
      previous = entry;
    }
  }
  if (position !== bufferLength) {
    throw fail(
      "data-hole",
      `the last ${bufferLength - position} bytes of the data buffer (from byte ${position} of ` +
        `${bufferLength}) belong to no tensor`,
    );
  }
}

/**
 * Validates a header against the length of the data buffer that follows it. Every size the
 * header declares is checked against `bufferLength` here, so the data need not be read yet.
 */
function parseHeader(headerBytes: Uint8Array, bufferLength: number, fail: Fail): HeaderLayout {
  const { header, keys } = parseHeaderJson(headerBytes, fail);
  const metadata: Record<string, string> = {};
  const entries: RawEntry[] = [];
  for (const name of keys) {
    if (name === "__metadata__") readMetadata(header[name], metadata, fail);
    else entries.push(parseEntry(name, header[name], bufferLength, fail));
  }
  checkCoverage(entries, bufferLength, fail);
  return { entries, metadata };
}

/** The parsed file, its entries' bytes being views into `data` (the data buffer). */
function toFile(layout: HeaderLayout, data: Uint8Array): SafetensorsFile {
  const tensors = new Map<string, SafetensorsEntry>();
  for (const entry of layout.entries) {
    tensors.set(entry.name, {
      dtype: entry.dtype,
      shape: entry.shape,
      bytes: data.subarray(entry.begin, entry.end),
    });
  }
  return { tensors, metadata: layout.metadata };
}

/**
 * Parses and fully validates a safetensors file held in memory.
 *
 * The returned entries' `bytes` are views into `bytes` (no copy). `file` is used in error
 * messages only.
 *
 * @param bytes The whole file.
 * @param file A path or label naming the file in error messages (default `"<bytes>"`).
 * @returns The tensors in header order and the metadata.
 * @throws {SafetensorsError} When the bytes are not a valid safetensors file; `code` says why.
 * @throws {TypeError} When `bytes` is not a `Uint8Array` or `file` is not a string.
 *
 * @example Parsing, and catching a bad file
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseSafetensors, SafetensorsError, serializeSafetensors } from "@diffprobe/core";
 *
 * const bytes = serializeSafetensors({
 *   bias: { dtype: "F32", shape: [2], data: new Float32Array([0.5, -1]) },
 * });
 * const { tensors } = parseSafetensors(bytes, "bias.safetensors");
 * assert.equal(tensors.get("bias")!.bytes.length, 8);
 *
 * assert.throws(
 *   () => parseSafetensors(bytes.subarray(0, bytes.length - 1), "cut.safetensors"),
 *   (error) => error instanceof SafetensorsError && error.code === "offsets-out-of-range",
 * );
 * ```
 */
export function parseSafetensors(bytes: Uint8Array, file: string = DEFAULT_LABEL): SafetensorsFile {
  if (!(bytes instanceof Uint8Array)) {
    throw new TypeError(`Safetensors bytes must be a Uint8Array, got ${describeValue(bytes)}`);
  }
  if (typeof file !== "string") {
    throw new TypeError(`Safetensors file name must be a string, got ${describeValue(file)}`);
  }
  const fail = failFor(file);
  const headerLength = checkHeaderLength(bytes, bytes.byteLength, fail);
  const dataStart = 8 + headerLength;
  const layout = parseHeader(
    bytes.subarray(8, dataStart),
    bytes.byteLength - dataStart,
    fail,
  );
  return toFile(layout, bytes.subarray(dataStart));
}

/** Checks an entry passed to a decoder and returns its element count. */
function checkEntry(entry: SafetensorsEntry, caller: string): number {
  if (!isPlainObject(entry)) {
    throw new TypeError(
      `${caller} entry must be { dtype, shape, bytes }, got ${describeValue(entry)}`,
    );
  }
  const { dtype, shape, bytes } = entry;
  if (!isDtype(dtype)) {
    throw new TypeError(`${caller} entry.dtype must be one of ${DTYPE_LIST}, got ${show(dtype)}`);
  }
  if (!(bytes instanceof Uint8Array)) {
    throw new TypeError(`${caller} entry.bytes must be a Uint8Array, got ${describeValue(bytes)}`);
  }
  if (!Array.isArray(shape)) {
    throw new TypeError(`${caller} entry.shape must be an array, got ${describeValue(shape)}`);
  }
  for (const d of shape) {
    if (!isDimension(d)) {
      throw new RangeError(
        `${caller} entry.shape must hold non-negative integers, got ${showShape(shape)}`,
      );
    }
  }
  const count = elementCount(shape, bytes.length);
  if (count * DTYPES[dtype].size !== bytes.length) {
    throw new RangeError(
      `${caller} entry.bytes must hold shape ${showShape(shape)} × ${dtype} ` +
        `(${
          Number.isFinite(count) ? count * DTYPES[dtype].size : "too many"
        } bytes), got ${bytes.length} bytes`,
    );
  }
  return count;
}

function viewOf(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** Float16 bits to float32 bits, exact (subnormals, infinities, NaN payloads). */
function float16BitsToFloat32Bits(h: number): number {
  const sign = (h & 0x8000) << 16;
  const exponent = (h >> 10) & 0x1f;
  let mantissa = h & 0x3ff;
  if (exponent === 0x1f) return (sign | 0x7f800000 | (mantissa << 13)) >>> 0;
  if (exponent !== 0) return (sign | ((exponent + 112) << 23) | (mantissa << 13)) >>> 0;
  if (mantissa === 0) return sign >>> 0;
  // Subnormal: value = mantissa * 2^-24; normalize it.
  let e = 113; // biased float32 exponent of 2^-14
  while ((mantissa & 0x400) === 0) {
    mantissa <<= 1;
    e--;
  }
  return (sign | (e << 23) | ((mantissa & 0x3ff) << 13)) >>> 0;
}

let float16Table: Uint32Array | undefined;

function getFloat16Table(): Uint32Array {
  if (float16Table === undefined) {
    float16Table = new Uint32Array(65536);
    for (let h = 0; h < 65536; h++) float16Table[h] = float16BitsToFloat32Bits(h);
  }
  return float16Table;
}

/**
 * Decodes a tensor to float32.
 *
 * F16 and BF16 are converted exactly (including subnormals, infinities and NaN), F32 is
 * copied, F64 is rounded to the nearest float32, integers become their (rounded) values and
 * BOOL becomes 0 or 1. The result is a new array, never a view into the file.
 *
 * @param entry A tensor, usually from {@linkcode parseSafetensors}.
 * @returns The values in row-major order.
 * @throws {TypeError} When `entry` is not a valid entry.
 * @throws {RangeError} When the byte length does not match shape × dtype size.
 *
 * @example Half-precision bits to floats
 * ```ts
 * import assert from "node:assert/strict";
 * import { toFloat32 } from "@diffprobe/core";
 *
 * // 0x3C00 = 1, 0xC000 = -2, 0x7C00 = Infinity (little-endian bytes)
 * const bytes = new Uint8Array([0x00, 0x3c, 0x00, 0xc0, 0x00, 0x7c]);
 * const values = toFloat32({ dtype: "F16", shape: [3], bytes });
 * assert.deepEqual([...values], [1, -2, Infinity]);
 * ```
 */
export function toFloat32(entry: SafetensorsEntry): Float32Array {
  const count = checkEntry(entry, "toFloat32");
  const { dtype, bytes } = entry;
  const out = new Float32Array(count);
  const view = viewOf(bytes);
  if (decodeNarrowInts(dtype, bytes, view, out)) return out;
  switch (dtype) {
    case "F32":
      if (IS_LITTLE_ENDIAN) new Uint8Array(out.buffer).set(bytes);
      else for (let i = 0; i < count; i++) out[i] = view.getFloat32(4 * i, true);
      break;
    case "F16": {
      const table = getFloat16Table();
      const bits = new Uint32Array(out.buffer);
      for (let i = 0; i < count; i++) bits[i] = table[view.getUint16(2 * i, true)];
      break;
    }
    case "BF16": {
      const bits = new Uint32Array(out.buffer);
      for (let i = 0; i < count; i++) bits[i] = view.getUint16(2 * i, true) << 16;
      break;
    }
    case "F64":
      for (let i = 0; i < count; i++) out[i] = view.getFloat64(8 * i, true);
      break;
    case "I64":
      for (let i = 0; i < count; i++) out[i] = Number(view.getBigInt64(8 * i, true));
      break;
    case "U64":
      for (let i = 0; i < count; i++) out[i] = Number(view.getBigUint64(8 * i, true));
      break;
    case "I32":
      for (let i = 0; i < count; i++) out[i] = view.getInt32(4 * i, true);
      break;
    case "U32":
      for (let i = 0; i < count; i++) out[i] = view.getUint32(4 * i, true);
      break;
  }
  return out;
}

/**
 * Decodes the dtypes whose values fit every output array exactly (I16, U16, I8, U8, BOOL) into
 * `out`; returns false, decoding nothing, for any other dtype.
 */
function decodeNarrowInts(
  dtype: SafetensorsDtype,
  bytes: Uint8Array,
  view: DataView,
  out: Float32Array | Int32Array,
): boolean {
  const count = out.length;
  switch (dtype) {
    case "I16":
      for (let i = 0; i < count; i++) out[i] = view.getInt16(2 * i, true);
      return true;
    case "U16":
      for (let i = 0; i < count; i++) out[i] = view.getUint16(2 * i, true);
      return true;
    case "I8":
      for (let i = 0; i < count; i++) out[i] = view.getInt8(i);
      return true;
    case "U8":
      out.set(bytes);
      return true;
    case "BOOL":
      for (let i = 0; i < count; i++) out[i] = bytes[i] === 0 ? 0 : 1;
      return true;
    default:
      return false;
  }
}

/**
 * Decodes an integer or boolean tensor to int32.
 *
 * I32, I16, I8, U8, U16 and BOOL (as 0 or 1) always fit; I64, U32 and U64 are accepted when
 * every value is in the int32 range.
 *
 * @param entry A tensor, usually from {@linkcode parseSafetensors}.
 * @returns The values in row-major order, in a new array.
 * @throws {TypeError} When `entry` is not a valid entry or has a floating-point dtype.
 * @throws {RangeError} When the byte length does not match shape × dtype size, or a value
 * does not fit in int32.
 *
 * @example Reading int64 labels
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseSafetensors, serializeSafetensors, toInt32 } from "./safetensors.ts";
 *
 * const bytes = serializeSafetensors({
 *   labels: { dtype: "I64", shape: [3], data: new BigInt64Array([3n, -1n, 7n]) },
 * });
 * const labels = toInt32(parseSafetensors(bytes).tensors.get("labels")!);
 * assert(labels.join() === "3,-1,7");
 * ```
 */
export function toInt32(entry: SafetensorsEntry): Int32Array {
  const count = checkEntry(entry, "toInt32");
  const { dtype, bytes } = entry;
  const out = new Int32Array(count);
  const view = viewOf(bytes);
  const outOfRange = (value: bigint | number, index: number) =>
    new RangeError(`toInt32 values must fit in int32, got the ${dtype} ${value} at index ${index}`);
  if (decodeNarrowInts(dtype, bytes, view, out)) return out;
  switch (dtype) {
    case "F64":
    case "F32":
    case "F16":
    case "BF16":
      throw new TypeError(
        `toInt32 entry.dtype must be an integer or BOOL dtype (toFloat32 decodes floats), got ` +
          `"${dtype}"`,
      );
    case "I64":
    case "U64":
      for (let i = 0; i < count; i++) {
        const value = dtype === "I64"
          ? view.getBigInt64(8 * i, true)
          : view.getBigUint64(8 * i, true);
        if (value < -2147483648n || value > 2147483647n) throw outOfRange(value, i);
        out[i] = Number(value);
      }
      break;
    case "U32":
      for (let i = 0; i < count; i++) {
        const value = view.getUint32(4 * i, true);
        if (value > 2147483647) throw outOfRange(value, i);
        out[i] = value;
      }
      break;
    case "I32":
      if (IS_LITTLE_ENDIAN) new Uint8Array(out.buffer).set(bytes);
      else for (let i = 0; i < count; i++) out[i] = view.getInt32(4 * i, true);
      break;
  }
  return out;
}

/**
 * Converts float32 values to IEEE half-precision bits, rounding to nearest, ties to even.
 *
 * Values too large for float16 become ±Infinity, tiny values become subnormals or ±0, and NaN
 * stays NaN (sign and top payload bits kept, always quiet).
 *
 * @param x The values.
 * @returns The float16 bit patterns, ready to write as an F16 tensor.
 * @throws {TypeError} When `x` is not a `Float32Array`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { float32ToFloat16Bits } from "./safetensors.ts";
 *
 * const bits = float32ToFloat16Bits(new Float32Array([1, -2, 65504, 1e6, 2 ** -24]));
 * assert(Array.from(bits).join() === [0x3c00, 0xc000, 0x7bff, 0x7c00, 0x0001].join());
 * ```
 */
export function float32ToFloat16Bits(x: Float32Array): Uint16Array {
  if (!(x instanceof Float32Array)) {
    throw new TypeError(
      `float32ToFloat16Bits input must be a Float32Array, got ${describeValue(x)}`,
    );
  }
  const input = new Uint32Array(x.buffer, x.byteOffset, x.length);
  const out = new Uint16Array(x.length);
  for (let i = 0; i < input.length; i++) {
    const f = input[i];
    const sign = (f >>> 16) & 0x8000;
    const exponent = (f >>> 23) & 0xff;
    const mantissa = f & 0x7fffff;
    if (exponent === 0xff) { // Infinity or NaN
      out[i] = sign | 0x7c00 | (mantissa === 0 ? 0 : 0x200 | (mantissa >>> 13));
    } else if (exponent > 142) { // >= 2^16: overflows even before rounding
      out[i] = sign | 0x7c00;
    } else if (exponent >= 113) { // normal float16 range (2^-14 and up)
      let h = ((exponent - 112) << 10) | (mantissa >>> 13);
      const rest = mantissa & 0x1fff;
      if (rest > 0x1000 || (rest === 0x1000 && (h & 1) === 1)) h++; // may carry into Infinity
      out[i] = sign | h;
    } else if (exponent >= 102) { // float16 subnormal (or rounds up to one)
      const m = mantissa | 0x800000;
      const shift = 126 - exponent; // 14..24
      let h = m >>> shift;
      const rest = m & ((1 << shift) - 1);
      const half = 1 << (shift - 1);
      if (rest > half || (rest === half && (h & 1) === 1)) h++;
      out[i] = sign | h;
    } else {
      out[i] = sign;
    }
  }
  return out;
}

/** Whether `data` can hold a tensor of `dtype`: raw bytes, or one of the dtype's own arrays. */
function matchesDtype(data: ArrayBufferView, dtype: SafetensorsDtype): boolean {
  return data instanceof Uint8Array || data instanceof DataView ||
    DTYPES[dtype].views.some((View) => data instanceof View);
}

interface PreparedTensor {
  name: string;
  dtype: SafetensorsDtype;
  shape: number[];
  bytes: Uint8Array;
  /** Whether `bytes` are native-endian elements (not raw little-endian bytes). */
  native: boolean;
}

function prepareTensor(name: string, tensor: TensorToWrite): PreparedTensor {
  if (typeof name !== "string") {
    throw new TypeError(
      `Tensor names must be strings, got ${describeValue(name)}`,
    );
  }
  const label = `Tensor ${quote(name)}`;
  if (name === "__metadata__") {
    throw new TypeError(`Tensor names must not be "__metadata__" (reserved), got "__metadata__"`);
  }
  if (!name.isWellFormed()) {
    throw new TypeError(`Tensor names must be well-formed Unicode, got ${quote(name)}`);
  }
  if (!isPlainObject(tensor)) {
    throw new TypeError(`${label} must be { dtype, shape, data }, got ${describeValue(tensor)}`);
  }
  const { dtype, shape, data } = tensor;
  if (!isDtype(dtype)) {
    throw new TypeError(`${label} dtype must be one of ${DTYPE_LIST}, got ${show(dtype)}`);
  }
  if (!Array.isArray(shape)) {
    throw new TypeError(`${label} shape must be an array, got ${describeValue(shape)}`);
  }
  for (const d of shape) {
    if (typeof d !== "number") {
      throw new TypeError(`${label} shape must hold numbers, got ${showShape(shape)}`);
    }
    if (!isDimension(d)) {
      throw new RangeError(
        `${label} shape must hold non-negative integers, got ${showShape(shape)}`,
      );
    }
  }
  if (!ArrayBuffer.isView(data)) {
    throw new TypeError(`${label} data must be a typed array, got ${describeValue(data)}`);
  }
  if (!matchesDtype(data, dtype)) {
    throw new TypeError(
      `${label} data must be a ${DTYPES[dtype].viewName} for dtype ${dtype} ` +
        `(or a Uint8Array of raw little-endian bytes), got a ${data.constructor.name}`,
    );
  }
  const count = elementCount(shape, Number.MAX_SAFE_INTEGER);
  const needed = count * DTYPES[dtype].size;
  if (needed !== data.byteLength) {
    throw new RangeError(
      `${label} data must hold shape ${showShape(shape)} × ${dtype} ` +
        `(${Number.isFinite(needed) ? needed : "too many"} bytes), got ${data.byteLength} bytes`,
    );
  }
  const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  if (dtype === "BOOL") {
    for (let i = 0; i < bytes.length; i++) {
      if (bytes[i] > 1) {
        throw new RangeError(`${label} BOOL data must be 0 or 1, got ${bytes[i]} at index ${i}`);
      }
    }
  }
  const native = !(data instanceof Uint8Array || data instanceof DataView);
  return { name, dtype, shape: shape.slice(), bytes, native };
}

/**
 * Serializes tensors (and optional string metadata) to safetensors bytes.
 *
 * Tensors are written in the given order (insertion order for a `Map`, property order for a
 * record), contiguously; the header JSON is padded with spaces to a multiple of 8 bytes so the
 * data buffer is 8-byte aligned. The input is validated first.
 *
 * @param tensors The tensors by name (see {@linkcode TensorToWrite} for the data types).
 * @param metadata Strings stored under `"__metadata__"`; omitted from the file when undefined.
 * @returns The complete file.
 * @throws {TypeError} When a tensor, its dtype, its data type, a name or the metadata is invalid.
 * @throws {RangeError} When a shape is invalid or does not match the data's byte length.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { serializeSafetensors } from "@diffprobe/core";
 *
 * const tensors = new Map([
 *   ["b", { dtype: "I32" as const, shape: [2], data: new Int32Array([1, 2]) }],
 *   ["a", { dtype: "U8" as const, shape: [1, 3], data: new Uint8Array([7, 8, 9]) }],
 * ]);
 * const bytes = serializeSafetensors(tensors, { note: "demo" });
 * const headerLength = Number(new DataView(bytes.buffer).getBigUint64(0, true));
 * assert.equal(headerLength % 8, 0);
 * assert.equal(bytes.length, 8 + headerLength + 8 + 3);
 * ```
 */
export function serializeSafetensors(
  tensors: Record<string, TensorToWrite> | Map<string, TensorToWrite>,
  metadata?: Record<string, string>,
): Uint8Array {
  if (typeof tensors !== "object" || tensors === null || Array.isArray(tensors)) {
    throw new TypeError(
      `Tensors must be a Map or a record of tensors, got ${describeValue(tensors)}`,
    );
  }
  const pairs: Iterable<[string, TensorToWrite]> = tensors instanceof Map
    ? tensors.entries()
    : Object.entries(tensors);
  const prepared: PreparedTensor[] = [];
  for (const [name, tensor] of pairs) prepared.push(prepareTensor(name, tensor));

  const parts: string[] = [];
  if (metadata !== undefined) {
    if (!isPlainObject(metadata)) {
      throw new TypeError(
        `Metadata must be a record of strings, got ${describeValue(metadata)}`,
      );
    }
    for (const [key, value] of Object.entries(metadata)) {
      if (typeof value !== "string") {
        throw new TypeError(
          `Metadata value ${quote(key)} must be a string, got ${describeValue(value)}`,
        );
      }
      if (!key.isWellFormed() || !value.isWellFormed()) {
        throw new TypeError(
          `Metadata entries must be well-formed Unicode, got the key ${quote(key)}`,
        );
      }
    }
    parts.push(`"__metadata__":${JSON.stringify(metadata)}`);
  }
  let offset = 0;
  for (const t of prepared) {
    const end = offset + t.bytes.length;
    parts.push(
      `${JSON.stringify(t.name)}:{"dtype":"${t.dtype}","shape":[${t.shape.join(",")}],` +
        `"data_offsets":[${offset},${end}]}`,
    );
    offset = end;
  }
  const json = UTF8_ENCODER.encode(`{${parts.join(",")}}`);
  const headerLength = Math.ceil(json.length / 8) * 8;
  if (headerLength > MAX_HEADER_BYTES) {
    throw new RangeError(
      `The safetensors header must be at most ${MAX_HEADER_BYTES} bytes, got ${headerLength}`,
    );
  }
  const out = new Uint8Array(8 + headerLength + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerLength), true);
  out.set(json, 8);
  out.fill(0x20, 8 + json.length, 8 + headerLength);
  let position = 8 + headerLength;
  for (const t of prepared) {
    out.set(t.bytes, position);
    const itemSize = DTYPES[t.dtype].size;
    if (!IS_LITTLE_ENDIAN && t.native && itemSize > 1) { // typed arrays are big-endian here
      for (let i = position; i < position + t.bytes.length; i += itemSize) {
        out.subarray(i, i + itemSize).reverse();
      }
    }
    position += t.bytes.length;
  }
  return out;
}

/**
 * Options of {@linkcode readSafetensorsFile}.
 */
export interface ReadSafetensorsOptions {
  /**
   * The largest data buffer (bytes after the header) to read; a file declaring more fails with
   * code `"data-too-large"` before its data is read. Default: no limit beyond the file's size.
   */
  maxDataBytes?: number;
  /**
   * Called with every tensor's dtype and shape once the header is validated, before the data
   * is read; throw from it to refuse the file (for example a shape a model does not expect).
   */
  checkHeader?: (tensors: ReadonlyMap<string, Omit<SafetensorsEntry, "bytes">>) => void;
}

/**
 * Reads and validates a safetensors file, header first.
 *
 * The path is stat'ed first: a directory, FIFO, device or socket is refused (code
 * `"not-regular-file"`) without being opened. Then only the 8-byte header length and the
 * header are read and checked, every declared size against the file's size (and against
 * `maxDataBytes` and `checkHeader`), before the data buffer is read, so a truncated, sparse or mislabelled file
 * fails in proportion to its header, not its length. Error messages never quote the file's bytes.
 *
 * @param path The file's path.
 * @param options A bound on the data read, and a check of the header before the data is read.
 * @returns The validated file; entries' bytes are views into one buffer holding the data.
 * @throws {SafetensorsError} With code `"read-failed"` when the file cannot be read (missing,
 * permission, a loop of symbolic links), `"not-regular-file"`, `"data-too-large"`, or the code
 * of the problem when it is not a valid safetensors file. Needs `--allow-read`.
 * @throws {TypeError} When `path` is not a non-empty string.
 * @throws {RangeError} When `maxDataBytes` is not a non-negative integer.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { readSafetensorsFile, SafetensorsError, writeSafetensorsFile } from "@diffprobe/core";
 *
 * const dir = await Deno.makeTempDir();
 * const path = `${dir}/w.safetensors`;
 * await writeSafetensorsFile(path, { w: { dtype: "F32", shape: [2], data: new Float32Array([2, 3]) } });
 * const file = await readSafetensorsFile(path);
 * assert.deepEqual(file.tensors.get("w")!.shape, [2]);
 * await assert.rejects(
 *   readSafetensorsFile(path, { maxDataBytes: 4 }),
 *   (e) => e instanceof SafetensorsError && e.code === "data-too-large",
 * );
 * await assert.rejects(
 *   readSafetensorsFile(dir),
 *   (e) => e instanceof SafetensorsError && e.code === "not-regular-file",
 * );
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function readSafetensorsFile(
  path: string,
  options: ReadSafetensorsOptions = {},
): Promise<SafetensorsFile> {
  if (typeof path !== "string" || path === "") {
    throw new TypeError(`Safetensors path must be a non-empty string, got ${show(path)}`);
  }
  const maxDataBytes = options.maxDataBytes === undefined
    ? Infinity
    : nonNegativeInteger(options.maxDataBytes, "maxDataBytes");
  const fail = failFor(path);
  const { file, size } = await openRegularFile(path, readFail(fail));
  try {
    const prefix = size < 8 ? new Uint8Array(0) : await readAt(file, 0, 8, readFail(fail));
    const headerLength = checkHeaderLength(prefix, size, fail);
    const header = await readAt(file, 8, headerLength, readFail(fail));
    const dataStart = 8 + headerLength;
    const layout = parseHeader(header, size - dataStart, fail);
    options.checkHeader?.(
      new Map(layout.entries.map((e) => [e.name, { dtype: e.dtype, shape: e.shape.slice() }])),
    );
    if (size - dataStart > maxDataBytes) {
      throw fail(
        "data-too-large",
        `the header declares ${size - dataStart} bytes of tensor data, above the limit of ` +
          `${maxDataBytes} bytes`,
      );
    }
    return toFile(layout, await readAt(file, dataStart, size - dataStart, readFail(fail)));
  } finally {
    file.close();
  }
}

/** Maps a refused read to a SafetensorsError code. */
function readFail(fail: Fail): ReadFail {
  return (kind, problem, cause) =>
    fail(kind === "not-regular" ? "not-regular-file" : "read-failed", problem, cause);
}

/**
 * Serializes tensors and writes them to `path` atomically: the bytes go to a temporary file
 * beside it, which is then renamed over `path` (and removed if anything fails).
 *
 * @param path The destination file.
 * @param tensors The tensors by name, as for {@linkcode serializeSafetensors}.
 * @param metadata Optional string metadata.
 * @returns A promise that resolves once the file is in place.
 * @throws {TypeError} When `path` is not a non-empty string or the tensors are invalid.
 * @throws {RangeError} When a shape does not match its data.
 * @throws {Deno.errors.PermissionDenied} Or other file-system errors, their message naming `path`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { readSafetensorsFile, writeSafetensorsFile } from "@diffprobe/core";
 *
 * const dir = await Deno.makeTempDir();
 * const path = `${dir}/labels.safetensors`;
 * await writeSafetensorsFile(
 *   path,
 *   { labels: { dtype: "U8", shape: [3], data: new Uint8Array([0, 9, 4]) } },
 *   { classes: "10" },
 * );
 * const file = await readSafetensorsFile(path);
 * assert.equal(file.metadata.classes, "10");
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function writeSafetensorsFile(
  path: string,
  tensors: Record<string, TensorToWrite> | Map<string, TensorToWrite>,
  metadata?: Record<string, string>,
): Promise<void> {
  if (typeof path !== "string" || path === "") {
    throw new TypeError(`Safetensors path must be a non-empty string, got ${show(path)}`);
  }
  await writeFileAtomic(path, serializeSafetensors(tensors, metadata));
}
