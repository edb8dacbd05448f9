/**
 * Tests for src/io/safetensors.ts, src/io/errors.ts and src/io/checkpoint_files.ts.
 *
 * The real-checkpoint tests read the committed `tiny-unet2d` fixture and, when present, the larger
 * sharded `ddpm-cifar10-small` checkpoint, which is not committed (skipped with a message).
 *
 * @module
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { SafetensorsError } from "../src/io/errors.ts";
import type { SafetensorsErrorCode } from "../src/io/errors.ts";
import {
  float32ToFloat16Bits,
  parseSafetensors,
  readSafetensorsFile,
  serializeSafetensors,
  toFloat32,
  toInt32,
  writeSafetensorsFile,
} from "../src/io/safetensors.ts";
import type { SafetensorsDtype, SafetensorsEntry, TensorToWrite } from "../src/io/safetensors.ts";
import { readCheckpointTensors } from "../src/io/checkpoint_files.ts";
import { fixture, shared, skipNote } from "./_fixtures.ts";

// ---------------------------------------------------------------------------------------------
// Helpers

const DDPM_SMALL = shared("fixtures/ddpm-cifar10-small");

/** A file made of a header length, a header text and `dataLength` zero bytes. */
function makeFile(header: string, dataLength = 0, headerLength?: bigint): Uint8Array {
  const json = new TextEncoder().encode(header);
  const out = new Uint8Array(8 + json.length + dataLength);
  new DataView(out.buffer).setBigUint64(0, headerLength ?? BigInt(json.length), true);
  out.set(json, 8);
  return out;
}

function assertSafetensorsError(
  error: unknown,
  code: SafetensorsErrorCode,
  file: string,
): SafetensorsError {
  assert.ok(
    error instanceof SafetensorsError,
    `expected a SafetensorsError, got ${error instanceof Error ? error.stack : String(error)}`,
  );
  assert.equal(error.code, code, `wrong code for: ${error.message}`);
  assert.equal(error.name, "SafetensorsError");
  assert.equal(error.file, file);
  assert.ok(
    error.message.startsWith(`Cannot read "${file}": `),
    `the message does not name the file: ${error.message}`,
  );
  const problem = error.message.slice(`Cannot read "${file}": `.length);
  assert.ok(problem.length > 5, `no problem described: ${error.message}`);
  return error;
}

function expectParseError(
  bytes: Uint8Array,
  code: SafetensorsErrorCode,
  file = "bad.safetensors",
): SafetensorsError {
  try {
    parseSafetensors(bytes, file);
  } catch (error) {
    return assertSafetensorsError(error, code, file);
  }
  throw new Error(`expected a ${code} error, but the file parsed`);
}

async function expectAsyncError(
  run: () => Promise<unknown>,
  code: SafetensorsErrorCode,
  file: string,
): Promise<SafetensorsError> {
  try {
    await run();
  } catch (error) {
    return assertSafetensorsError(error, code, file);
  }
  throw new Error(`expected a ${code} error, but nothing was thrown`);
}

async function collect(
  folder: string,
  base?: string,
): Promise<{ file: string; name: string; entry: SafetensorsEntry }[]> {
  const out = [];
  for await (const item of readCheckpointTensors(folder, base)) out.push(item);
  return out;
}

function bytesOf(view: ArrayBufferView): Uint8Array {
  return new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
}

function f16(bits: number[]): Float32Array {
  const data = new Uint16Array(bits);
  return toFloat32({ dtype: "F16", shape: [bits.length], bytes: bytesOf(data) });
}

function bf16(bits: number[]): Float32Array {
  const data = new Uint16Array(bits);
  return toFloat32({ dtype: "BF16", shape: [bits.length], bytes: bytesOf(data) });
}

async function withTempDir(run: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "safetensors_test_" });
  try {
    await run(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const ALL_DTYPES: SafetensorsDtype[] = [
  "F64",
  "F32",
  "F16",
  "BF16",
  "I64",
  "I32",
  "I16",
  "I8",
  "U8",
  "U16",
  "U32",
  "U64",
  "BOOL",
];

// ---------------------------------------------------------------------------------------------
// Round trips

Deno.test("serialize → parse round-trips every dtype, the order and the metadata", () => {
  const tensors = new Map<string, TensorToWrite>([
    ["f64", { dtype: "F64", shape: [2, 2], data: new Float64Array([1.5, -2, 1e300, 0.1]) }],
    ["f32", { dtype: "F32", shape: [3], data: new Float32Array([0.25, -1e-30, 3e38]) }],
    ["f16", { dtype: "F16", shape: [2], data: new Uint16Array([0x3c00, 0xc000]) }],
    ["bf16", { dtype: "BF16", shape: [1, 2], data: new Uint16Array([0x3f80, 0x4049]) }],
    ["i64", { dtype: "I64", shape: [2], data: new BigInt64Array([-5n, 2n ** 40n]) }],
    ["i32", { dtype: "I32", shape: [2], data: new Int32Array([-2147483648, 7]) }],
    ["i16", { dtype: "I16", shape: [2], data: new Int16Array([-300, 300]) }],
    ["i8", { dtype: "I8", shape: [3], data: new Int8Array([-128, 0, 127]) }],
    ["u8", { dtype: "U8", shape: [3], data: new Uint8Array([0, 128, 255]) }],
    ["u16", { dtype: "U16", shape: [1], data: new Uint16Array([65535]) }],
    ["u32", { dtype: "U32", shape: [1], data: new Uint32Array([4294967295]) }],
    ["u64", { dtype: "U64", shape: [1], data: new BigUint64Array([2n ** 64n - 1n]) }],
    ["bool", { dtype: "BOOL", shape: [2, 1], data: new Uint8Array([1, 0]) }],
    ["scalar", { dtype: "F32", shape: [], data: new Float32Array([42]) }],
    ["empty", { dtype: "F32", shape: [0, 5], data: new Float32Array(0) }],
    ["10", { dtype: "U8", shape: [1], data: new Uint8Array([10]) }],
    ["2", { dtype: "U8", shape: [1], data: new Uint8Array([2]) }],
    ["ünïcode ✓", { dtype: "U8", shape: [1], data: new Uint8Array([9]) }],
  ]);
  const metadata = { format: "pt", "ключ": "значение", empty: "" };
  const bytes = serializeSafetensors(tensors, metadata);

  const headerLength = Number(new DataView(bytes.buffer).getBigUint64(0, true));
  assert.equal(headerLength % 8, 0, "the header must be padded to a multiple of 8");
  const text = new TextDecoder().decode(bytes.subarray(8, 8 + headerLength));
  assert.match(text, /^\{.*\} *$/);

  const parsed = parseSafetensors(bytes, "round-trip.safetensors");
  assert.deepEqual([...parsed.tensors.keys()], [...tensors.keys()]);
  assert.deepEqual(parsed.metadata, metadata);
  let offset = 8 + headerLength;
  for (const [name, written] of tensors) {
    const entry = parsed.tensors.get(name)!;
    assert.equal(entry.dtype, written.dtype, name);
    assert.deepEqual(entry.shape, written.shape, name);
    assert.deepEqual(entry.bytes, bytesOf(written.data), name);
    assert.equal(entry.bytes.byteOffset, offset, `${name} must be contiguous, in order`);
    assert.equal(entry.bytes.buffer, bytes.buffer, `${name} must be a view, not a copy`);
    offset += entry.bytes.length;
  }
  assert.equal(offset, bytes.length);
  assert.deepEqual(ALL_DTYPES.filter((d) => ![...tensors.values()].some((t) => t.dtype === d)), []);

  const get = (name: string) => parsed.tensors.get(name)!;
  assert.deepEqual([...toFloat32(get("f64"))], [1.5, -2, Infinity, Math.fround(0.1)]);
  assert.deepEqual([...toFloat32(get("f32"))], [...new Float32Array([0.25, -1e-30, 3e38])]);
  assert.deepEqual([...toFloat32(get("f16"))], [1, -2]);
  assert.deepEqual([...toFloat32(get("bf16"))], [1, 3.140625]);
  assert.deepEqual([...toFloat32(get("i64"))], [-5, 2 ** 40]);
  assert.deepEqual([...toInt32(get("i32"))], [-2147483648, 7]);
  assert.deepEqual([...toInt32(get("i16"))], [-300, 300]);
  assert.deepEqual([...toInt32(get("i8"))], [-128, 0, 127]);
  assert.deepEqual([...toInt32(get("u8"))], [0, 128, 255]);
  assert.deepEqual([...toInt32(get("u16"))], [65535]);
  assert.deepEqual([...toFloat32(get("u32"))], [4294967296]);
  assert.deepEqual([...toFloat32(get("u64"))], [2 ** 64]);
  assert.deepEqual([...toInt32(get("bool"))], [1, 0]);
  assert.deepEqual([...toFloat32(get("scalar"))], [42]);
  assert.equal(toFloat32(get("empty")).length, 0);
  assert.throws(() => toInt32(get("i64")), RangeError); // 2^40 does not fit
});

Deno.test("serialize accepts a record, raw bytes and Float16Array, and no metadata", () => {
  const bytes = serializeSafetensors({
    raw: { dtype: "F32", shape: [1], data: new Uint8Array(new Float32Array([2.5]).buffer) },
  });
  const parsed = parseSafetensors(bytes);
  assert.deepEqual(parsed.metadata, {});
  assert.deepEqual([...toFloat32(parsed.tensors.get("raw")!)], [2.5]);
  assert.ok(!new TextDecoder().decode(bytes).includes("__metadata__"));

  const Float16 = (globalThis as Record<string, unknown>).Float16Array as
    | (new (values: number[]) => ArrayBufferView)
    | undefined;
  if (Float16 !== undefined) {
    const half = serializeSafetensors({
      h: { dtype: "F16", shape: [2], data: new Float16([0.5, -3]) },
    });
    assert.deepEqual([...toFloat32(parseSafetensors(half).tensors.get("h")!)], [0.5, -3]);
  }
});

Deno.test("serialize rejects bad input with TypeError or RangeError", () => {
  const ok = (): TensorToWrite => ({ dtype: "F32", shape: [2], data: new Float32Array(2) });
  const bad = (tensors: unknown, metadata?: unknown) => () =>
    serializeSafetensors(
      tensors as Record<string, TensorToWrite>,
      metadata as Record<string, string>,
    );
  assert.throws(bad(null), TypeError);
  assert.throws(bad([ok()]), TypeError);
  assert.throws(bad({ a: { ...ok(), dtype: "F8" } }), TypeError);
  assert.throws(bad({ a: { ...ok(), data: [1, 2] } }), TypeError);
  assert.throws(bad({ a: { ...ok(), data: new Float64Array(1) } }), TypeError); // wrong kind
  assert.throws(bad({ a: { ...ok(), data: new Float32Array(3) } }), RangeError); // wrong size
  assert.throws(bad({ a: { ...ok(), shape: [-2] } }), RangeError);
  assert.throws(bad({ a: { ...ok(), shape: [1.5] } }), RangeError);
  assert.throws(bad({ a: { ...ok(), shape: ["2"] } }), TypeError);
  assert.throws(bad({ a: { ...ok(), shape: "2" } }), TypeError);
  assert.throws(bad({ a: { ...ok(), shape: [2 ** 40, 2 ** 40] } }), RangeError);
  assert.throws(bad({ __metadata__: ok() }), TypeError);
  assert.throws(bad({ "\ud800": ok() }), TypeError);
  assert.throws(bad(new Map([[1, ok()]])), TypeError);
  assert.throws(bad({ a: { dtype: "BOOL", shape: [1], data: new Uint8Array([2]) } }), RangeError);
  assert.throws(bad({ a: ok() }, { n: 1 }), TypeError);
  assert.throws(bad({ a: ok() }, "format=pt"), TypeError);
});

Deno.test("F16 and BF16 decode exactly (hand-computed values)", () => {
  const half = f16([
    0x3c00,
    0xc000,
    0x7bff,
    0x0001,
    0x03ff,
    0x0400,
    0x3555,
    0x3e00,
    0x7c00,
    0xfc00,
    0x8000,
    0x0000,
  ]);
  assert.deepEqual([...half], [
    1,
    -2,
    65504,
    2 ** -24,
    1023 * 2 ** -24,
    2 ** -14,
    0.333251953125,
    1.5,
    Infinity,
    -Infinity,
    -0,
    0,
  ]);
  assert.ok(Object.is(half[10], -0));
  assert.ok(Number.isNaN(f16([0x7e00])[0]));
  assert.ok(Number.isNaN(f16([0xfc01])[0]));

  const brain = bf16([0x3f80, 0xc000, 0x4049, 0x7f80, 0xff80, 0x0001, 0x8000, 0x7f7f]);
  assert.deepEqual([...brain], [
    1,
    -2,
    3.140625,
    Infinity,
    -Infinity,
    2 ** -133,
    -0,
    (2 - 2 ** -7) * 2 ** 127,
  ]);
  assert.ok(Number.isNaN(bf16([0x7fc0])[0]));
});

Deno.test("float32ToFloat16Bits rounds to nearest even", () => {
  const cases: [number, number][] = [
    [1, 0x3c00],
    [-2, 0xc000],
    [65504, 0x7bff],
    [65519, 0x7bff], // below the midpoint to Infinity
    [65520, 0x7c00], // the midpoint: ties to even, which is Infinity
    [1e6, 0x7c00],
    [-Infinity, 0xfc00],
    [2 ** -24, 0x0001],
    [2 ** -25, 0x0000], // tie between 0 and the smallest subnormal: even is 0
    [1.5 * 2 ** -25, 0x0001],
    [3 * 2 ** -25, 0x0002], // tie between 1 and 2 ulps: even is 2
    [2 ** -14, 0x0400],
    [1 + 2 ** -11, 0x3c00], // tie: even
    [1 + 3 * 2 ** -11, 0x3c02], // tie: even
    [1 + 2 ** -11 + 2 ** -20, 0x3c01], // just above the tie
    [1e-10, 0x0000],
    [-0, 0x8000],
    [1 / 3, 0x3555],
  ];
  const bits = float32ToFloat16Bits(new Float32Array(cases.map(([x]) => x)));
  cases.forEach(([x, expected], i) => {
    assert.equal(
      bits[i],
      expected,
      `${x} → 0x${bits[i].toString(16)}, expected 0x${expected.toString(16)}`,
    );
  });
  const nan = float32ToFloat16Bits(new Float32Array([NaN]))[0];
  assert.equal(nan & 0x7c00, 0x7c00);
  assert.notEqual(nan & 0x3ff, 0);
  assert.throws(
    () => float32ToFloat16Bits(new Float64Array(1) as unknown as Float32Array),
    TypeError,
  );
});

Deno.test("every float16 survives float16 → float32 → float16", () => {
  const all = new Uint16Array(65536).map((_, i) => i);
  const back = float32ToFloat16Bits(f16([...all]));
  for (let h = 0; h < 65536; h++) {
    const isNaN = (h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0;
    if (isNaN) assert.ok((back[h] & 0x7c00) === 0x7c00 && (back[h] & 0x3ff) !== 0);
    else assert.equal(back[h], h, `0x${h.toString(16)}`);
  }
});

Deno.test("float32ToFloat16Bits agrees with Math.f16round on random floats", () => {
  const f16round = (Math as unknown as { f16round?: (x: number) => number }).f16round;
  if (f16round === undefined) {
    console.log("Math.f16round is not available; skipped");
    return;
  }
  let state = 12345;
  const words = new Uint32Array(200_000).map(() => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state;
  });
  const values = new Float32Array(words.buffer);
  const decoded = f16([...float32ToFloat16Bits(values)]);
  for (let i = 0; i < values.length; i++) {
    const expected: number = f16round(values[i]);
    if (Number.isNaN(expected)) assert.ok(Number.isNaN(decoded[i]));
    else assert.ok(Object.is(decoded[i], expected), `${values[i]}: ${decoded[i]} vs ${expected}`);
  }
});

Deno.test("toFloat32 and toInt32 check their arguments", () => {
  const entry: SafetensorsEntry = { dtype: "U32", shape: [2], bytes: new Uint8Array(8) };
  assert.deepEqual([...toInt32(entry)], [0, 0]);
  assert.throws(
    () => toInt32({ ...entry, bytes: bytesOf(new Uint32Array([1, 2 ** 31])) }),
    RangeError,
  );
  assert.deepEqual(
    [...toInt32({
      dtype: "I64",
      shape: [2],
      bytes: bytesOf(new BigInt64Array([-7n, 2n ** 31n - 1n])),
    })],
    [-7, 2 ** 31 - 1],
  );
  assert.throws(
    () => toInt32({ dtype: "I64", shape: [1], bytes: bytesOf(new BigInt64Array([2n ** 31n])) }),
    RangeError,
  );
  assert.throws(() => toInt32({ dtype: "F32", shape: [1], bytes: new Uint8Array(4) }), TypeError);
  assert.throws(() => toFloat32({ ...entry, shape: [3] }), RangeError);
  assert.throws(() => toFloat32({ ...entry, shape: [2 ** 52, 2 ** 52] }), RangeError);
  assert.throws(() => toFloat32({ ...entry, dtype: "X" as SafetensorsDtype }), TypeError);
  assert.throws(() => toFloat32({ ...entry, bytes: [0] as unknown as Uint8Array }), TypeError);
  // Unaligned views decode too.
  const unaligned = new Uint8Array(9).subarray(1);
  unaligned.set(bytesOf(new Float32Array([1.25, -8])));
  assert.deepEqual([...toFloat32({ dtype: "F32", shape: [2], bytes: unaligned })], [1.25, -8]);
});

Deno.test("parseSafetensors accepts zero-size tensors and ignores unknown entry fields", () => {
  const bytes = makeFile(
    '{"a":{"dtype":"F32","shape":[1000000000000000,0],"data_offsets":[0,0]},' +
      '"b":{"dtype":"U8","shape":[2],"data_offsets":[0,2],"extra":true},' +
      '"c":{"dtype":"I8","shape":[0],"data_offsets":[2,2]},"__metadata__":null}  ',
    2,
  );
  const parsed = parseSafetensors(bytes);
  assert.deepEqual([...parsed.tensors.keys()], ["a", "b", "c"]);
  assert.equal(parsed.tensors.get("a")!.bytes.length, 0);
  assert.equal(toFloat32(parsed.tensors.get("a")!).length, 0);
  assert.deepEqual(parsed.metadata, {});
  // A view with a byte offset parses the same.
  const shifted = new Uint8Array(bytes.length + 3);
  shifted.set(bytes, 3);
  assert.equal(parseSafetensors(shifted.subarray(3)).tensors.size, 3);
  assert.throws(() => parseSafetensors([1, 2, 3] as unknown as Uint8Array), TypeError);
});

// ---------------------------------------------------------------------------------------------
// One hand-built file per error code

Deno.test("error: file-too-small", () => {
  expectParseError(new Uint8Array(7), "file-too-small");
  expectParseError(new Uint8Array(0), "file-too-small", "empty.safetensors");
  const error = expectParseError(new Uint8Array(3), "file-too-small", "<bytes>");
  assert.equal(error.file, "<bytes>");
});

Deno.test("error: header-too-large (checked before anything is allocated)", () => {
  expectParseError(makeFile("{}", 0, 100_000_001n), "header-too-large");
  const error = expectParseError(makeFile("{}", 0, 2n ** 64n - 1n), "header-too-large");
  assert.match(error.message, /larger than the limit of 100000000 bytes/);
  assert.doesNotMatch(error.message, /18446744073709551615/); // the file's bytes are not echoed
  expectParseError(makeFile("{}", 0, 2n ** 53n + 1n), "header-too-large");
});

Deno.test("error: header-beyond-file", () => {
  const bytes = makeFile("{}", 110, 9999999n);
  assert.equal(bytes.length, 120);
  const error = expectParseError(bytes, "header-beyond-file", "x.safetensors");
  assert.equal(
    error.message,
    'Cannot read "x.safetensors": the header length 9999999 is beyond the end of the file (120 bytes)',
  );
  expectParseError(makeFile("{}", 0, 100_000_000n), "header-beyond-file");
  expectParseError(makeFile("{}", 0, 3n), "header-beyond-file");
});

Deno.test("error: invalid-json", () => {
  const badUtf8 = makeFile("{}  ");
  badUtf8.set([0x7b, 0xff, 0xfe, 0x7d], 8);
  assert.match(expectParseError(badUtf8, "invalid-json").message, /UTF-8/);
  expectParseError(makeFile('{"a":'), "invalid-json");
  expectParseError(makeFile(""), "invalid-json");
  expectParseError(makeFile("\ufeff{}"), "invalid-json");
  expectParseError(makeFile("{} {}"), "invalid-json");
});

Deno.test("error: invalid-header", () => {
  const entry = '{"dtype":"U8","shape":[1],"data_offsets":[0,1]}';
  expectParseError(makeFile("[]"), "invalid-header");
  expectParseError(makeFile("null"), "invalid-header");
  expectParseError(makeFile('"text"'), "invalid-header");
  expectParseError(makeFile('{"a":5}'), "invalid-header");
  expectParseError(makeFile('{"a":{"dtype":"U8","shape":[1]}}', 1), "invalid-header");
  expectParseError(makeFile('{"a":{"shape":[1],"data_offsets":[0,1]}}', 1), "invalid-header");
  expectParseError(
    makeFile('{"a":{"dtype":8,"shape":[1],"data_offsets":[0,1]}}', 1),
    "invalid-header",
  );
  expectParseError(
    makeFile('{"a":{"dtype":"U8","shape":1,"data_offsets":[0,1]}}', 1),
    "invalid-header",
  );
  expectParseError(
    makeFile('{"a":{"dtype":"U8","shape":[1],"data_offsets":[1]}}', 1),
    "invalid-header",
  );
  expectParseError(makeFile(`{"__metadata__":{"k":1},"a":${entry}}`, 1), "invalid-header");
  expectParseError(makeFile(`{"__metadata__":["k"],"a":${entry}}`, 1), "invalid-header");
  const dupField = '{"a":{"dtype":"U8","dtype":"U8","shape":[1],"data_offsets":[0,1]}}';
  assert.match(expectParseError(makeFile(dupField, 1), "invalid-header").message, /"dtype"/);
  expectParseError(makeFile(`{"__metadata__":{"k":"v","k":"w"}}`), "invalid-header");
});

Deno.test("error: unknown-dtype", () => {
  const error = expectParseError(
    makeFile('{"a":{"dtype":"F8_E4M3","shape":[1],"data_offsets":[0,1]}}', 1),
    "unknown-dtype",
  );
  assert.match(error.message, /F8_E4M3/);
  expectParseError(
    makeFile('{"a":{"dtype":"f32","shape":[1],"data_offsets":[0,4]}}', 4),
    "unknown-dtype",
  );
  expectParseError(
    makeFile('{"a":{"dtype":"","shape":[1],"data_offsets":[0,4]}}', 4),
    "unknown-dtype",
  );
});

Deno.test("error: invalid-shape", () => {
  for (
    const shape of ["[-1]", "[1.5]", '["2"]', "[null]", "[1e400]", "[9007199254740993]", "[-0]"]
  ) {
    const header = `{"a":{"dtype":"U8","shape":${shape},"data_offsets":[0,1]}}`;
    expectParseError(makeFile(header, 1), "invalid-shape");
  }
});

Deno.test("error: offsets-out-of-range", () => {
  for (const offsets of ["[4,0]", "[-1,3]", "[0,8]", "[0,1.5]", '[0,"4"]', "[0,1e300]"]) {
    const header = `{"a":{"dtype":"F32","shape":[1],"data_offsets":${offsets}}}`;
    expectParseError(makeFile(header, 4), "offsets-out-of-range");
  }
});

Deno.test("error: overlapping-data", () => {
  const header = '{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},' +
    '"b":{"dtype":"U8","shape":[4],"data_offsets":[2,6]}}';
  const error = expectParseError(makeFile(header, 6), "overlapping-data");
  assert.match(error.message, /"a".*"b"/);
  const same = '{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},' +
    '"b":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}';
  expectParseError(makeFile(same, 4), "overlapping-data");
  const inside = '{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},' +
    '"b":{"dtype":"F32","shape":[0],"data_offsets":[2,2]}}';
  expectParseError(makeFile(inside, 4), "overlapping-data");
});

Deno.test("error: data-hole (gaps and trailing bytes)", () => {
  const gap = '{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},' +
    '"b":{"dtype":"U8","shape":[2],"data_offsets":[3,5]}}';
  expectParseError(makeFile(gap, 5), "data-hole");
  const start = '{"a":{"dtype":"U8","shape":[2],"data_offsets":[1,3]}}';
  expectParseError(makeFile(start, 3), "data-hole");
  const trailing = '{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}}';
  assert.match(expectParseError(makeFile(trailing, 3), "data-hole").message, /last 1 bytes/);
  expectParseError(makeFile("{}", 1), "data-hole");
});

Deno.test("error: size-mismatch (also for huge shapes, without allocating)", () => {
  expectParseError(
    makeFile('{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}', 4),
    "size-mismatch",
  );
  expectParseError(
    makeFile(
      '{"a":{"dtype":"F32","shape":[1000000000000000,1000000000000000],"data_offsets":[0,4]}}',
      4,
    ),
    "size-mismatch",
  );
  expectParseError(
    makeFile('{"a":{"dtype":"F64","shape":[9007199254740991],"data_offsets":[0,8]}}', 8),
    "size-mismatch",
  );
  expectParseError(
    makeFile('{"a":{"dtype":"BF16","shape":[],"data_offsets":[0,0]}}'),
    "size-mismatch",
  );
});

Deno.test("error: duplicate-name (JSON.parse would keep only the last one)", () => {
  const entry = '{"dtype":"U8","shape":[1],"data_offsets":[0,1]}';
  const error = expectParseError(makeFile(`{"a":${entry},"a":${entry}}`, 1), "duplicate-name");
  assert.match(error.message, /"a"/);
  expectParseError(makeFile(`{"a":${entry},"\\u0061":${entry}}`, 1), "duplicate-name");
  expectParseError(
    makeFile(`{"__metadata__":{},"x":${entry},"__metadata__":{}}`, 1),
    "duplicate-name",
  );
  // Keys that only look alike are not duplicates.
  const distinct = `{"a\\"":${entry.replace("[0,1]", "[0,1]")},"a":${
    entry.replace("[0,1]", "[1,2]")
  }}`;
  assert.equal(parseSafetensors(makeFile(distinct, 2)).tensors.size, 2);
});

Deno.test("error: read-failed (readSafetensorsFile and readCheckpointTensors)", async () => {
  await withTempDir(async (dir) => {
    const missing = join(dir, "missing.safetensors");
    const error = await expectAsyncError(
      () => readSafetensorsFile(missing),
      "read-failed",
      missing,
    );
    assert.match(error.message, /does not exist/);
    const neither = await expectAsyncError(() => collect(dir), "read-failed", dir);
    assert.match(neither.message, /diffusion_pytorch_model\.safetensors".*index\.json/);
    // An index pointing at a shard that does not exist.
    await Deno.writeTextFile(
      join(dir, "diffusion_pytorch_model.safetensors.index.json"),
      JSON.stringify({ weight_map: { a: "shard.safetensors" } }),
    );
    await expectAsyncError(() => collect(dir), "read-failed", join(dir, "shard.safetensors"));
  });
});

Deno.test("error: bad files read from disk name their path", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "short.safetensors");
    await Deno.writeFile(path, new Uint8Array(4));
    await expectAsyncError(() => readSafetensorsFile(path), "file-too-small", path);
    await Deno.writeFile(join(dir, "m.safetensors"), new Uint8Array(4));
    await expectAsyncError(() => collect(dir, "m"), "file-too-small", join(dir, "m.safetensors"));
  });
  await assert.rejects(() => readSafetensorsFile(""), TypeError);
  await assert.rejects(() => collect("", "x"), RangeError);
  await assert.rejects(() => collect("/tmp", "a/b"), RangeError);
});

// ---------------------------------------------------------------------------------------------
// Sharded folders built by hand

async function writeShards(
  dir: string,
  shards: Record<string, Record<string, TensorToWrite>>,
  weightMap: unknown,
  base = "diffusion_pytorch_model",
): Promise<string> {
  for (const [file, tensors] of Object.entries(shards)) {
    await writeSafetensorsFile(join(dir, file), tensors);
  }
  const indexPath = join(dir, `${base}.safetensors.index.json`);
  await Deno.writeTextFile(
    indexPath,
    JSON.stringify({ metadata: { total_size: 0 }, weight_map: weightMap }),
  );
  return indexPath;
}

const one = (v: number): TensorToWrite => ({
  dtype: "F32",
  shape: [1],
  data: new Float32Array([v]),
});

Deno.test("readCheckpointTensors reads valid shards in file order", async () => {
  await withTempDir(async (dir) => {
    await Deno.mkdir(join(dir, "sub"));
    await writeShards(
      dir,
      {
        "s-2.safetensors": { c: one(3) },
        "s-1.safetensors": { b: one(2), a: one(1) },
        "sub/s-3.safetensors": { d: one(4) },
      },
      {
        a: "s-1.safetensors",
        b: "./s-1.safetensors",
        c: "s-2.safetensors",
        d: "sub/s-3.safetensors",
      },
    );
    const items = await collect(dir);
    assert.deepEqual(items.map((i) => i.name), ["b", "a", "c", "d"]);
    assert.deepEqual(items.map((i) => toFloat32(i.entry)[0]), [2, 1, 3, 4]);
    assert.equal(items[0].file, join(dir, "s-1.safetensors"));
    assert.equal(items[3].file, join(dir, "sub/s-3.safetensors"));
  });
});

Deno.test("error: invalid-index", async () => {
  await withTempDir(async (dir) => {
    const indexPath = join(dir, "diffusion_pytorch_model.safetensors.index.json");
    for (
      const text of [
        "{",
        "[]",
        "{}",
        '{"weight_map":[]}',
        '{"weight_map":{}}',
        '{"weight_map":{"a":3}}',
        '{"metadata":5,"weight_map":{"a":"s.safetensors"}}',
      ]
    ) {
      await Deno.writeTextFile(indexPath, text);
      await expectAsyncError(() => collect(dir), "invalid-index", indexPath);
    }
    await Deno.writeFile(indexPath, new Uint8Array([0x7b, 0xff, 0x7d]));
    await expectAsyncError(() => collect(dir), "invalid-index", indexPath);

    // A shard holding a tensor the index does not list.
    await writeShards(dir, { "s.safetensors": { a: one(1), extra: one(2) } }, {
      a: "s.safetensors",
    });
    const error = await expectAsyncError(() => collect(dir), "invalid-index", indexPath);
    assert.match(error.message, /"s\.safetensors".*"extra"/);
    // A tensor the index assigns to another shard.
    await writeShards(
      dir,
      { "s.safetensors": { a: one(1), b: one(2) }, "t.safetensors": { c: one(3) } },
      { a: "s.safetensors", b: "t.safetensors", c: "t.safetensors" },
    );
    assert.match(
      (await expectAsyncError(() => collect(dir), "invalid-index", indexPath)).message,
      /"b"/,
    );
  });
});

Deno.test("error: missing-tensor", async () => {
  await withTempDir(async (dir) => {
    await writeShards(dir, { "s.safetensors": { a: one(1) } }, {
      a: "s.safetensors",
      gone: "s.safetensors",
    });
    const error = await expectAsyncError(
      () => collect(dir),
      "missing-tensor",
      join(dir, "s.safetensors"),
    );
    assert.match(error.message, /"gone"/);
  });
});

Deno.test("error: path-escape, detected before any shard is read", async () => {
  await withTempDir(async (root) => {
    const dir = join(root, "model");
    await Deno.mkdir(dir);
    // A valid file just outside the folder, and a corrupt shard inside: if either were read
    // before the index is checked, the error would not be path-escape.
    await writeSafetensorsFile(join(root, "x.safetensors"), { evil: one(6) });
    await Deno.writeFile(join(dir, "a-good.safetensors"), new Uint8Array(3));
    const indexPath = join(dir, "diffusion_pytorch_model.safetensors.index.json");
    for (
      const shard of [
        "../x.safetensors",
        "/etc/passwd",
        "a/../../b",
        "..\\x.safetensors",
        "",
        "C:/x",
        ".",
      ]
    ) {
      await Deno.writeTextFile(
        indexPath,
        JSON.stringify({ weight_map: { aa: "a-good.safetensors", evil: shard } }),
      );
      const error = await expectAsyncError(() => collect(dir), "path-escape", indexPath);
      assert.ok(error.message.includes(JSON.stringify(shard)), error.message);
      assert.match(error.message, /"evil"/);
    }
  });
});

Deno.test("writeSafetensorsFile writes atomically and leaves no temporary file", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "w.safetensors");
    await writeSafetensorsFile(path, { a: one(1) });
    await writeSafetensorsFile(path, { b: one(2) }, { v: "2" });
    const file = await readSafetensorsFile(path);
    assert.deepEqual([...file.tensors.keys()], ["b"]);
    assert.deepEqual(file.metadata, { v: "2" });
    const names = [];
    for await (const e of Deno.readDir(dir)) names.push(e.name);
    assert.deepEqual(names, ["w.safetensors"]);
    // Invalid tensors throw before anything is written.
    await assert.rejects(
      () => writeSafetensorsFile(join(dir, "bad.safetensors"), { a: { ...one(1), shape: [2] } }),
      RangeError,
    );
    await assert.rejects(() =>
      writeSafetensorsFile(join(dir, "no/such/dir.safetensors"), { a: one(1) })
    );
    names.length = 0;
    for await (const e of Deno.readDir(dir)) names.push(e.name);
    assert.deepEqual(names, ["w.safetensors"]);
  });
});

// ---------------------------------------------------------------------------------------------
// Real checkpoints (values read with python3's struct + json from the same files)

const TINY = fixture("tiny-unet2d");

Deno.test({
  name: "real fixture: tiny-unet2d parses with the shapes Python reads",
  async fn() {
    const path = join(TINY, "diffusion_pytorch_model.safetensors");
    const original = await Deno.readFile(path);
    const file = parseSafetensors(original, path);
    assert.equal(file.tensors.size, 144);
    assert.deepEqual(file.metadata, { format: "pt" });
    const names = [...file.tensors.keys()];
    assert.equal(names[0], "conv_in.bias");
    assert.equal(names[143], "up_blocks.1.resnets.1.time_emb_proj.weight");
    const expected: [string, number[]][] = [
      ["conv_in.bias", [32]],
      ["conv_in.weight", [32, 3, 3, 3]],
      ["conv_out.weight", [3, 32, 3, 3]],
      ["mid_block.attentions.0.to_q.weight", [64, 64]],
      ["time_embedding.linear_1.weight", [128, 32]],
      ["down_blocks.1.attentions.0.group_norm.weight", [64]],
      ["up_blocks.0.resnets.0.conv_shortcut.weight", [64, 128, 1, 1]],
      ["up_blocks.1.resnets.1.time_emb_proj.weight", [32, 128]],
    ];
    for (const [name, shape] of expected) {
      const entry = file.tensors.get(name)!;
      assert.equal(entry.dtype, "F32", name);
      assert.deepEqual(entry.shape, shape, name);
      assert.equal(entry.bytes.length, shape.reduce((a, b) => a * b, 4), name);
    }
    // Header length 14512: conv_in.weight is at data_offsets [128, 3584].
    assert.equal(file.tensors.get("conv_in.weight")!.bytes.byteOffset, 8 + 14512 + 128);
    const bias = toFloat32(file.tensors.get("conv_in.bias")!);
    assert.deepEqual(
      [...bias.subarray(0, 4)],
      [0.13506923615932465, 0.16337977349758148, -0.013330791145563126, -0.09519548714160919],
    );
    let parameters = 0;
    for (const entry of file.tensors.values()) parameters += entry.bytes.length / 4;
    assert.equal(parameters, 702_499);

    // Rewriting the tensors in header order reproduces the file byte for byte.
    const rewritten = serializeSafetensors(
      new Map(
        [...file.tensors].map((
          [name, e],
        ) => [name, { dtype: e.dtype, shape: e.shape, data: e.bytes }]),
      ),
      file.metadata,
    );
    assert.deepEqual(rewritten, original);

    const items = await collect(TINY);
    assert.equal(items.length, 144);
    assert.ok(items.every((i) => i.file === path));
  },
});

Deno.test({
  name: "real fixture: ddpm-cifar10-small shards match their index",
  ignore: skipNote("fixtures/ddpm-cifar10-small"),
  async fn() {
    const folder = DDPM_SMALL!;
    const index = JSON.parse(
      await Deno.readTextFile(join(folder, "diffusion_pytorch_model.safetensors.index.json")),
    ) as { weight_map: Record<string, string> };
    const items = await collect(folder);
    assert.equal(items.length, Object.keys(index.weight_map).length);
    assert.equal(items.length, 328);
    const perFile = new Map<string, number>();
    let parameters = 0;
    for (const { file, name, entry } of items) {
      assert.equal(file, join(folder, index.weight_map[name]), name);
      perFile.set(file, (perFile.get(file) ?? 0) + 1);
      assert.equal(entry.dtype, "F32");
      parameters += entry.shape.reduce((a, b) => a * b, 1);
    }
    assert.deepEqual([...perFile.values()], [140, 106, 82]);
    assert.equal(parameters, 8_952_067); // the index's metadata total_size is 4 × this
    const convIn = items.find((i) => i.name === "conv_in.weight")!;
    assert.deepEqual(convIn.entry.shape, [64, 3, 3, 3]);
    assert.equal(new Set(items.map((i) => i.name)).size, 328);
  },
});
