/**
 * Seeded fuzz test for parseSafetensors: mutated valid files must either parse into a
 * self-consistent result or throw a SafetensorsError, never anything else.
 *
 * Set FUZZ_SEED / FUZZ_CASES (with --allow-env) to explore other seeds.
 *
 * @module
 */

import assert from "node:assert/strict";
import { SafetensorsError } from "../src/io/errors.ts";
import type { SafetensorsErrorCode } from "../src/io/errors.ts";
import {
  parseSafetensors,
  readSafetensorsFile,
  serializeSafetensors,
  toFloat32,
  toInt32,
} from "../src/io/safetensors.ts";
import type { SafetensorsDtype, TensorToWrite } from "../src/io/safetensors.ts";
import { fixture } from "./_fixtures.ts";

function envNumber(name: string, fallback: number): number {
  try {
    const value = Deno.env.get(name);
    return value === undefined ? fallback : Number(value);
  } catch {
    return fallback; // no --allow-env
  }
}

const SEED = envNumber("FUZZ_SEED", 0x5afe7e45);
const CASES = envNumber("FUZZ_CASES", 5000);
const LABEL = "fuzz.safetensors";

const SIZES: Record<SafetensorsDtype, number> = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U8: 1,
  U16: 2,
  U32: 4,
  U64: 8,
  BOOL: 1,
};

/** mulberry32: a small seeded PRNG returning floats in [0, 1). */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const random = mulberry32(SEED);
const int = (n: number): number => Math.floor(random() * n);
const pick = <T>(items: readonly T[]): T => items[int(items.length)];

// ---------------------------------------------------------------------------------------------
// Valid base files

function randomTensor(dtype: SafetensorsDtype, shape: number[]): TensorToWrite {
  const count = shape.reduce((a, b) => a * b, 1);
  const bytes = new Uint8Array(count * SIZES[dtype]);
  for (let i = 0; i < bytes.length; i++) bytes[i] = dtype === "BOOL" ? int(2) : int(256);
  return { dtype, shape, data: bytes };
}

function makeBases(): { name: string; bytes: Uint8Array }[] {
  const bases = [
    {
      name: "mixed",
      bytes: serializeSafetensors(
        new Map<string, TensorToWrite>([
          ["w.f32", { dtype: "F32", shape: [2, 3], data: new Float32Array([1, 2, 3, 4, 5, 6]) }],
          ["w.f16", { dtype: "F16", shape: [3], data: new Uint16Array([0x3c00, 0x7c00, 0x0001]) }],
          ["w.bf16", { dtype: "BF16", shape: [2, 1], data: new Uint16Array([0x3f80, 0xc000]) }],
          ["ids", { dtype: "I64", shape: [2], data: new BigInt64Array([1n, -2n]) }],
          ["pixels", { dtype: "U8", shape: [2, 2], data: new Uint8Array([0, 1, 254, 255]) }],
          ["mask", { dtype: "BOOL", shape: [3], data: new Uint8Array([1, 0, 1]) }],
          ["f64", { dtype: "F64", shape: [1], data: new Float64Array([Math.PI]) }],
          ["scalar", { dtype: "I8", shape: [], data: new Int8Array([-3]) }],
          ["empty", { dtype: "F32", shape: [0, 4], data: new Float32Array(0) }],
        ]),
        { format: "pt", note: "fuzz" },
      ),
    },
    {
      name: "single",
      bytes: serializeSafetensors({
        weight: { dtype: "F32", shape: [4, 4], data: new Float32Array(16).fill(0.5) },
      }),
    },
    { name: "empty", bytes: serializeSafetensors({}) },
  ];
  const many = new Map<string, TensorToWrite>();
  const dtypes = Object.keys(SIZES) as SafetensorsDtype[];
  for (let i = 0; i < 20; i++) {
    const shape = Array.from({ length: int(4) }, () => 1 + int(4));
    many.set(`layers.${i}.${pick(["weight", "bias", "scale"])}`, randomTensor(pick(dtypes), shape));
  }
  bases.push({ name: "many", bytes: serializeSafetensors(many, { format: "np" }) });

  bases.push({
    name: "tiny-unet2d",
    bytes: Deno.readFileSync(fixture("tiny-unet2d/diffusion_pytorch_model.safetensors")),
  });
  return bases;
}

// ---------------------------------------------------------------------------------------------
// Editable header: ordered pairs whose values are JSON texts, so edits can produce anything

type Pair = [key: string, value: string | Pair[]];

interface Base {
  name: string;
  bytes: Uint8Array;
  headerLength: number;
  pairs: Pair[];
  data: Uint8Array;
}

function toPairs(value: Record<string, unknown>): Pair[] {
  return Object.entries(value).map(([key, v]) => [
    key,
    v !== null && typeof v === "object" && !Array.isArray(v)
      ? toPairs(v as Record<string, unknown>)
      : JSON.stringify(v),
  ]);
}

function pairsText(pairs: Pair[]): string {
  return `{${
    pairs.map(([k, v]) => `${JSON.stringify(k)}:${typeof v === "string" ? v : pairsText(v)}`)
      .join(",")
  }}`;
}

function prepare(base: { name: string; bytes: Uint8Array }): Base {
  const headerLength = Number(new DataView(base.bytes.buffer).getBigUint64(0, true));
  const text = new TextDecoder().decode(base.bytes.subarray(8, 8 + headerLength));
  return {
    ...base,
    headerLength,
    pairs: toPairs(JSON.parse(text)),
    data: base.bytes.subarray(8 + headerLength),
  };
}

function clonePairs(pairs: Pair[]): Pair[] {
  return pairs.map(([k, v]) => [k, typeof v === "string" ? v : clonePairs(v)]);
}

function assemble(headerText: string, data: Uint8Array, pad = true): Uint8Array {
  const json = new TextEncoder().encode(headerText);
  const padded = pad ? Math.ceil(json.length / 8) * 8 : json.length;
  const out = new Uint8Array(8 + padded + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(padded), true);
  out.set(json, 8);
  out.fill(0x20, 8 + json.length, 8 + padded);
  out.set(data, 8 + padded);
  return out;
}

const NUMBER_POOL = [
  "-1",
  "0",
  "1",
  "2",
  "3",
  "4",
  "7",
  "8",
  "1.5",
  "-0",
  "1e400",
  "1000000000000000",
  "9007199254740991",
  "9007199254740993",
  "18446744073709551616",
  '"4"',
  "null",
  "true",
  "[]",
];

const BAD_DTYPES = ['"F8_E4M3"', '"f32"', '""', "5", "null", '"I128"', '"BOOL "', '"C64"'];
const ALL_DTYPES = Object.keys(SIZES).map((d) => JSON.stringify(d));

function tensorPairs(pairs: Pair[]): Pair[] {
  return pairs.filter(([k, v]) => k !== "__metadata__" && typeof v !== "string");
}

function numberText(base: Base): string {
  const r = random();
  if (r < 0.4) return pick(NUMBER_POOL);
  if (r < 0.7) return String(int(base.data.length + 2));
  if (r < 0.85) return String(base.data.length + int(9) - 4);
  return String(Math.floor(random() * 2 ** 53) * (random() < 0.1 ? -1 : 1));
}

/** One structural edit of the header; returns the new header text. */
function jsonEdit(base: Base): { text: string; kind: string } {
  const pairs = clonePairs(base.pairs);
  const tensors = tensorPairs(pairs);
  const entry = tensors.length > 0 ? (pick(tensors)[1] as Pair[]) : undefined;
  const field = (name: string) => entry?.find(([k]) => k === name);
  const op = int(15);
  switch (op) {
    case 13: { // give a tensor another tensor's dtype, shape and byte range
      if (entry !== undefined && tensors.length >= 2) {
        const other = pick(tensors)[1] as Pair[];
        for (const name of ["dtype", "shape", "data_offsets"]) {
          const to = entry.find(([k]) => k === name);
          const from = other.find(([k]) => k === name);
          if (to !== undefined && from !== undefined) to[1] = from[1];
        }
      }
      return { text: pairsText(pairs), kind: "json-copy-range" };
    }
    case 0: { // replace one number in shape or data_offsets
      const f = field(pick(["shape", "data_offsets"]));
      if (f !== undefined && typeof f[1] === "string") {
        const items = JSON.parse(f[1]) as unknown[];
        const texts = items.map((x) => JSON.stringify(x));
        if (texts.length === 0) texts.push(numberText(base));
        else texts[int(texts.length)] = numberText(base);
        f[1] = `[${texts.join(",")}]`;
      }
      return { text: pairsText(pairs), kind: "json-number" };
    }
    case 1: { // duplicate a key (tensor or metadata)
      if (pairs.length > 0) {
        const copy = clonePairs([pick(pairs)])[0];
        pairs.splice(int(pairs.length + 1), 0, copy);
      }
      return { text: pairsText(pairs), kind: "json-duplicate" };
    }
    case 2: { // drop a field
      if (entry !== undefined && entry.length > 0) entry.splice(int(entry.length), 1);
      return { text: pairsText(pairs), kind: "json-drop-field" };
    }
    case 3: { // unknown or different dtype
      const f = field("dtype");
      if (f !== undefined) f[1] = random() < 0.6 ? pick(BAD_DTYPES) : pick(ALL_DTYPES);
      return { text: pairsText(pairs), kind: "json-dtype" };
    }
    case 4: { // shape edits
      const f = field("shape");
      if (f !== undefined) {
        f[1] = pick([
          "[]",
          "[0]",
          "[1000000000000000,0]",
          "[1000000000000000,1000000000000000]",
          "[4294967296,4294967296,4294967296]",
          "3",
          "null",
          "{}",
          `[${numberText(base)}]`,
          typeof f[1] === "string" ? f[1].replace("[", "[1,") : "[1]",
          typeof f[1] === "string" ? f[1].replace("[", "[2,") : "[2]",
        ]);
      }
      return { text: pairsText(pairs), kind: "json-shape" };
    }
    case 5: { // data_offsets edits
      const f = field("data_offsets");
      if (f !== undefined && typeof f[1] === "string") {
        const [b, e] = JSON.parse(f[1]) as number[];
        const k = 1 + int(8);
        f[1] = pick([
          `[${e},${b}]`,
          `[${b + k},${e + k}]`,
          `[${b - k},${e - k}]`,
          `[${b},${e + k}]`,
          `[${b}]`,
          `[${b},${e},${e}]`,
          "{}",
          `"${b},${e}"`,
          `[${b},${e}.5]`,
        ]);
      }
      return { text: pairsText(pairs), kind: "json-offsets" };
    }
    case 6: { // metadata edits
      const meta = pairs.find(([k]) => k === "__metadata__");
      const value = pick([
        '{"format":1}',
        '["pt"]',
        "null",
        '"pt"',
        '{"a":"b","a":"c"}',
        '{"a":null}',
      ]);
      if (meta !== undefined) meta[1] = value;
      else pairs.unshift(["__metadata__", value]);
      return { text: pairsText(pairs), kind: "json-metadata" };
    }
    case 7: // not an object, or broken JSON
      return {
        text: pick(["[]", "null", "1", '"x"', "{", "", "{}}", '{"a":}', "\u00ff", "{}\u0000"]),
        kind: "json-top-level",
      };
    case 8: { // swap the data_offsets of two tensors
      if (tensors.length >= 2) {
        const a = pick(tensors)[1] as Pair[];
        const b = pick(tensors)[1] as Pair[];
        const fa = a.find(([k]) => k === "data_offsets");
        const fb = b.find(([k]) => k === "data_offsets");
        if (fa !== undefined && fb !== undefined) [fa[1], fb[1]] = [fb[1], fa[1]];
      }
      return { text: pairsText(pairs), kind: "json-swap-offsets" };
    }
    case 9: { // rename a tensor to another's name, possibly spelled with escapes
      if (tensors.length >= 2) {
        const target = pick(tensors);
        const other = pick(tensors)[0];
        target[0] = other;
      }
      let text = pairsText(pairs);
      if (random() < 0.5) {
        text = text.replace(/"([a-z])/, (_, c: string) => `"\\u00${c.charCodeAt(0).toString(16)}`);
      }
      return { text, kind: "json-rename" };
    }
    case 10: { // drop a whole tensor
      const index = pairs.findIndex(([k]) => k !== "__metadata__");
      if (index >= 0) pairs.splice(index + int(pairs.length - index), 1);
      return { text: pairsText(pairs), kind: "json-drop-tensor" };
    }
    case 11: { // make an entry not an object
      if (tensors.length > 0) {
        const t = pick(tensors);
        (t as unknown as [string, string])[1] = pick(["5", "null", "[]", '"F32"']);
      }
      return { text: pairsText(pairs), kind: "json-entry-type" };
    }
    case 12: { // an extra field, a nested duplicate field
      if (entry !== undefined) {
        if (random() < 0.5) entry.push(["extra", pick(["1", "{}", '"x"'])]);
        else entry.push([entry[0][0], entry[0][1]]);
      }
      return { text: pairsText(pairs), kind: "json-extra-field" };
    }
    default: { // character-level edits of the JSON text
      const chars = '{}[],:"0123456789-.eE \\uxF';
      let text = pairsText(pairs);
      const edits = 1 + int(3);
      for (let i = 0; i < edits; i++) {
        const at = int(text.length + 1);
        const r = random();
        if (r < 0.33) text = text.slice(0, at) + pick([...chars]) + text.slice(at);
        else if (r < 0.66) text = text.slice(0, at) + text.slice(at + 1);
        else text = text.slice(0, at) + pick([...chars]) + text.slice(at + 1);
      }
      return { text, kind: "json-chars" };
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Byte-level mutations

const HUGE_LENGTHS = [
  0n,
  1n,
  100_000_000n,
  100_000_001n,
  2n ** 32n - 1n,
  2n ** 53n,
  2n ** 53n + 1n,
  2n ** 63n,
  2n ** 64n - 1n,
];

function mutate(base: Base, input: Uint8Array): { bytes: Uint8Array; kind: string } {
  const op = int(12); // 0..5 byte-level, 6..11 structural JSON edits
  switch (op) {
    case 0: { // flip bytes in the header
      const bytes = input.slice();
      const end = Math.min(bytes.length, 8 + base.headerLength);
      const flips = 1 + int(4);
      for (let i = 0; i < flips && end > 8; i++) {
        const at = 8 + int(end - 8);
        bytes[at] = random() < 0.5 ? bytes[at] ^ (1 << int(8)) : int(256);
      }
      return { bytes, kind: "flip-header" };
    }
    case 1: { // flip bytes of the length
      const bytes = input.slice();
      if (bytes.length >= 8) {
        const flips = 1 + int(2);
        for (let i = 0; i < flips; i++) bytes[int(8)] ^= 1 << int(8);
      }
      return { bytes, kind: "flip-length" };
    }
    case 2: { // flip bytes anywhere
      const bytes = input.slice();
      if (bytes.length > 0) bytes[int(bytes.length)] = int(256);
      return { bytes, kind: "flip-anywhere" };
    }
    case 3: // truncate
      return { bytes: input.slice(0, int(input.length)), kind: "truncate" };
    case 4: { // append bytes
      const extra = 1 + int(64);
      const bytes = new Uint8Array(input.length + extra);
      bytes.set(input);
      if (random() < 0.5) { for (let i = input.length; i < bytes.length; i++) bytes[i] = int(256); }
      return { bytes, kind: "append" };
    }
    case 5: { // rewrite the header length
      const bytes = input.slice();
      if (bytes.length >= 8) {
        const n = BigInt(base.headerLength);
        const length = pick([
          ...HUGE_LENGTHS,
          n - 1n,
          n + 1n,
          n - 8n,
          n + 8n,
          BigInt(bytes.length),
          BigInt(bytes.length - 8),
          BigInt(int(bytes.length)),
          BigInt(int(2 ** 32)),
        ]);
        new DataView(bytes.buffer).setBigUint64(0, BigInt.asUintN(64, length), true);
      }
      return { bytes, kind: "length-rewrite" };
    }
    default: { // a structural JSON edit, keeping the data buffer
      const { text, kind } = jsonEdit(base);
      let data = base.data;
      if (random() < 0.1) data = data.subarray(0, int(data.length + 1));
      return { bytes: assemble(text, data, random() < 0.8), kind };
    }
  }
}

// ---------------------------------------------------------------------------------------------

function checkConsistent(bytes: Uint8Array, context: string): void {
  const file = parseSafetensors(bytes, LABEL);
  const headerLength = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
  const start = 8 + headerLength;
  let total = 0;
  for (const [name, entry] of file.tensors) {
    const where = `${context}, tensor ${JSON.stringify(name)}`;
    assert.ok(Object.hasOwn(SIZES, entry.dtype), where);
    assert.ok(entry.shape.every((d) => Number.isSafeInteger(d) && d >= 0), where);
    const count = entry.shape.reduce((a, b) => a * b, 1);
    assert.equal(entry.bytes.length, count * SIZES[entry.dtype], where);
    assert.equal(entry.bytes.buffer, bytes.buffer, where);
    assert.ok(entry.bytes.byteOffset >= bytes.byteOffset + start, where);
    assert.ok(
      entry.bytes.byteOffset + entry.bytes.length <= bytes.byteOffset + bytes.length,
      where,
    );
    total += entry.bytes.length;
    assert.equal(toFloat32(entry).length, count, where);
    if (!["F64", "F32", "F16", "BF16", "I64", "U64", "U32"].includes(entry.dtype)) {
      assert.equal(toInt32(entry).length, count, where);
    }
  }
  assert.equal(total, bytes.length - start, `${context}: the data buffer must be covered exactly`);
  for (const value of Object.values(file.metadata)) assert.equal(typeof value, "string", context);
}

Deno.test(`fuzz: ${CASES} mutated files parse consistently or throw SafetensorsError`, () => {
  const started = performance.now();
  const bases = makeBases().map(prepare);
  for (const base of bases) checkConsistent(base.bytes, `base ${base.name}`);

  const codes = new Map<SafetensorsErrorCode | "ok", number>();
  const kinds = new Map<string, number>();
  for (let i = 0; i < CASES; i++) {
    const base = pick(bases);
    let { bytes, kind } = mutate(base, base.bytes);
    if (random() < 0.15) { // a second mutation on top
      const second = mutate(base, bytes);
      bytes = second.bytes;
      kind = `${kind}+${second.kind}`;
    }
    const context = `case ${i} (seed ${SEED}, base ${base.name}, ${kind})`;
    kinds.set(kind.split("+")[0], (kinds.get(kind.split("+")[0]) ?? 0) + 1);
    try {
      checkConsistent(bytes, context);
      codes.set("ok", (codes.get("ok") ?? 0) + 1);
    } catch (error) {
      if (!(error instanceof SafetensorsError)) {
        const detail = error instanceof Error ? error.stack : String(error);
        throw new Error(`${context}: expected success or a SafetensorsError, got ${detail}`);
      }
      assert.equal(error.file, LABEL, context);
      assert.ok(
        error.message.startsWith(`Cannot read "${LABEL}": `),
        `${context}: ${error.message}`,
      );
      codes.set(error.code, (codes.get(error.code) ?? 0) + 1);
    }
  }

  const seconds = (performance.now() - started) / 1000;
  const rows = [...codes].sort((a, b) => b[1] - a[1]);
  console.log(`\nsafetensors fuzz: ${CASES} cases, seed ${SEED}, ${seconds.toFixed(1)} s`);
  for (const [code, count] of rows) {
    console.log(`  ${code.padEnd(22)} ${String(count).padStart(5)}`);
  }
  console.log(`  mutation kinds: ${[...kinds].map(([k, n]) => `${k} ${n}`).join(", ")}`);

  const errorCodes = rows.filter(([code]) => code !== "ok").length;
  assert.ok(errorCodes >= 8, `only ${errorCodes} different error codes were hit`);
  assert.ok((codes.get("ok") ?? 0) > 0, "no mutated file parsed; the mutations are too coarse");
});

Deno.test("fuzz: readSafetensorsFile (header first, from disk) agrees with parseSafetensors", async () => {
  const bases = makeBases().map(prepare);
  const dir = await Deno.makeTempDir({ prefix: "diffprobe-fuzz-" });
  const path = `${dir}/f.safetensors`;
  try {
    for (let i = 0; i < 150; i++) {
      const base = pick(bases);
      const { bytes, kind } = mutate(base, base.bytes);
      const context = `disk case ${i} (seed ${SEED}, base ${base.name}, ${kind})`;
      await Deno.writeFile(path, bytes);
      let expected: string;
      try {
        const file = parseSafetensors(bytes, path);
        expected = [...file.tensors].map(([n, e]) => `${n}:${e.dtype}:${e.shape}:${e.bytes}`)
          .join("|");
      } catch (error) {
        expected = error instanceof SafetensorsError ? `${error.code}: ${error.message}` : "?";
      }
      let actual: string;
      try {
        const file = await readSafetensorsFile(path);
        actual = [...file.tensors].map(([n, e]) => `${n}:${e.dtype}:${e.shape}:${e.bytes}`)
          .join("|");
      } catch (error) {
        actual = error instanceof SafetensorsError ? `${error.code}: ${error.message}` : "?";
      }
      assert.equal(actual, expected, context);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
