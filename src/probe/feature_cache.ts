/**
 * The feature cache: one safetensors file per (backbone weights, tap, data), written atomically
 * (temporary file + rename). Each entry is signed with a SHA-256 over its own name, dtype, shape
 * and values, so an entry is only ever accepted under the name it was written for: a copied or
 * linked entry of another tap, a re-shaped one, a truncated or corrupted one is reported and
 * treated as absent — never used silently. Reads refuse symbolic links and anything that is
 * not a regular file before reading a byte, check the shape the caller expects, and refuse
 * values that are not finite. Partial extractions are kept as per-batch chunks so an
 * interrupted run resumes.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { FeatureCache } from "@diffprobe/core";
 *
 * const cache = new FeatureCache(await Deno.makeTempDir());
 * await cache.write("entry", new Float32Array([1, 2, 3]), [3]);
 * assert.deepEqual((await cache.read("entry"))?.data, new Float32Array([1, 2, 3]));
 * await Deno.remove(cache.dir, { recursive: true });
 * ```
 *
 * @module
 */
import { join } from "node:path";
import { sha256Hex } from "../io/checksum.ts";
import {
  float32ToFloat16Bits,
  parseSafetensors,
  toFloat32,
  writeSafetensorsFile,
} from "../io/safetensors.ts";
import { show } from "../base/validate.ts";
import { openRegularFile, readAt, type ReadFail } from "../io/bounded_read.ts";

/** Features read back from the cache. */
export interface CachedFeatures {
  /** Values, float32. */
  data: Float32Array;
  /** Shape `[N, ...]`. */
  shape: number[];
}

/** Largest magnitude a float16 holds (beyond it, values would become infinite). */
const FLOAT16_MAX = 65504;
/** The format tag, inside the signed part of every entry. */
const FORMAT = "diffprobe-features-v2";

/** The signed part of an entry besides its values: format, name, dtype and shape. */
function signedHeader(name: string, dtype: string, shape: readonly number[]): string {
  return `${FORMAT}\n${name}\n${dtype}\n${JSON.stringify(shape)}\n`;
}

/** Whether `shape` fits `expected` (null: any positive size in that place). */
function shapeFits(shape: readonly number[], expected: readonly (number | null)[]): boolean {
  return shape.length === expected.length && shape.every((d, i) => (expected[i] ?? d) === d);
}

/** Largest header a cache entry may have (they are a few hundred bytes). */
const MAX_HEADER = 64 * 1024;

/**
 * Reads an entry file after checking, from its header alone, that its size agrees with the
 * header and that the features have the expected shape: a huge or sparse file is refused
 * without reading it.
 */
async function readChecked(
  path: string,
  expected: readonly (number | null)[] | undefined,
): Promise<Uint8Array> {
  const fail: ReadFail = (kind, problem, cause) =>
    kind === "not-found" ? new Deno.errors.NotFound(problem) : new Error(problem, { cause });
  const { file, size } = await openRegularFile(path, fail);
  try {
    if (size < 8) throw new Error(`it has ${size} bytes, fewer than a header length`);
    const length = new DataView((await readAt(file, 0, 8, fail)).buffer).getBigUint64(0, true);
    if (length > BigInt(Math.min(MAX_HEADER, size - 8))) {
      throw new Error(`its header length ${length} exceeds ${Math.min(MAX_HEADER, size - 8)}`);
    }
    const headerLength = Number(length);
    const header = JSON.parse(new TextDecoder().decode(await readAt(file, 8, headerLength, fail)));
    const end = header?.features?.data_offsets?.[1];
    const shape = header?.features?.shape;
    if (typeof end !== "number" || !Array.isArray(shape)) {
      throw new Error('it has no "features" tensor');
    }
    if (size !== 8 + headerLength + end) {
      throw new Error(`it has ${size} bytes, its header describes ${8 + headerLength + end}`);
    }
    if (expected && !shapeFits(shape, expected)) {
      const want = expected.map((d) => d ?? "*").join(", ");
      throw new Error(`its shape ${show(shape)} is not the expected [${want}]`);
    }
    return await readAt(file, 0, size, fail);
  } finally {
    file.close();
  }
}

/** A folder of cached features. */
export class FeatureCache {
  /** The folder. */
  readonly dir: string;
  /**
   * Store features as float16 (half the disk; values rounded to 11 significant bits). An entry
   * with values beyond float16's range (|v| > 65504) is stored as float32 instead, and that is
   * said once on stderr.
   */
  readonly float16: boolean;
  /** Called with a message when an entry is found corrupted (default: `console.warn`). */
  onCorrupt: (message: string) => void = (m) => console.warn(m);
  #warnedRange = false;

  /**
   * Uses `dir` (created on the first write).
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { FeatureCache } from "@diffprobe/core";
   *
   * const cache = new FeatureCache("/tmp/diffprobe-cache", { float16: true });
   * assert.equal(cache.float16, true);
   * ```
   */
  constructor(dir: string, options: { float16?: boolean } = {}) {
    this.dir = dir;
    this.float16 = options.float16 ?? false;
  }

  /** The file of an entry. */
  path(name: string): string {
    return join(this.dir, `${name}.safetensors`);
  }

  /**
   * Reads an entry; null when absent, or when it is corrupted, signed for another name, of
   * another shape than `expected` (null in a place: any size), or holds non-finite values
   * (after reporting it through {@linkcode FeatureCache.onCorrupt}). Throws a `TypeError`
   * naming the file when the entry is a symbolic link or not a regular file (a FIFO, a device),
   * before reading it.
   */
  async read(
    name: string,
    expected?: readonly (number | null)[],
  ): Promise<CachedFeatures | null> {
    const path = this.path(name);
    if (!(await this.#isRegular(path))) return null;
    try {
      const bytes = await readChecked(path, expected);
      return await this.#verify(name, path, bytes);
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return null;
      this.onCorrupt(
        `Feature cache entry "${path}" is corrupted (${(e as Error).message}); recomputing it`,
      );
      await Deno.remove(path).catch(() => {});
      return null;
    }
  }

  /** False when absent; a `TypeError` for links and special files (FIFOs, devices, folders). */
  async #isRegular(path: string): Promise<boolean> {
    let info: Deno.FileInfo;
    try {
      info = await Deno.lstat(path);
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return false;
      throw e;
    }
    const kind = info.isSymlink ? "a symbolic link" : info.isFile ? null : "not a regular file";
    if (kind) {
      throw new TypeError(
        `Feature cache entry "${path}" is ${kind}: refusing to read it (remove it to recompute)`,
      );
    }
    return true;
  }

  async #verify(
    name: string,
    path: string,
    bytes: Uint8Array,
  ): Promise<CachedFeatures> {
    const file = parseSafetensors(bytes, path);
    const entry = file.tensors.get("features");
    if (!entry) throw new Error('it has no "features" tensor');
    const sum = await sha256Hex(signedHeader(name, entry.dtype, entry.shape), entry.bytes);
    if (sum !== file.metadata.sha256) {
      throw new Error(
        `its checksum ${sum.slice(0, 12)}… over its name "${name}", dtype, shape and values ` +
          "does not match the recorded one",
      );
    }
    const data = toFloat32(entry);
    const bad = data.findIndex((v) => !Number.isFinite(v));
    if (bad >= 0) throw new Error(`value ${bad} is ${show(data[bad])}, not finite`);
    return { data, shape: entry.shape };
  }

  /**
   * Writes an entry atomically, signed for `name`. Throws a `RangeError` naming the entry when
   * `data` does not have `shape`'s size or holds non-finite values.
   */
  async write(name: string, data: Float32Array, shape: number[]): Promise<void> {
    const count = shape.reduce((a, b) => a * b, 1);
    if (count !== data.length) {
      throw new RangeError(
        `Feature cache entry "${name}" shape [${shape}] needs ${count} values, got ${data.length}`,
      );
    }
    let peak = 0;
    for (let i = 0; i < data.length; i++) {
      const v = Math.abs(data[i]);
      if (!Number.isFinite(v)) {
        throw new RangeError(
          `Feature cache entry "${name}" value ${i} must be finite, got ${data[i]}`,
        );
      }
      if (v > peak) peak = v;
    }
    const half = this.float16 && peak <= FLOAT16_MAX;
    if (this.float16 && !half && !this.#warnedRange) {
      this.#warnedRange = true;
      console.warn(
        `Feature cache "${this.dir}": features up to ${peak} exceed float16's range (65504); ` +
          "such entries are stored as float32",
      );
    }
    const dtype = half ? "F16" : "F32";
    const stored = half ? float32ToFloat16Bits(data) : data;
    await Deno.mkdir(join(this.path(name), ".."), { recursive: true });
    await writeSafetensorsFile(
      this.path(name),
      { features: { dtype, shape, data: stored } },
      { sha256: await sha256Hex(signedHeader(name, dtype, shape), stored), format: FORMAT },
    );
  }

  /** Removes an entry or a folder of chunks (no error when absent). */
  async remove(name: string): Promise<void> {
    await Deno.remove(this.path(name)).catch(() => {});
    await Deno.remove(join(this.dir, name), { recursive: true }).catch(() => {});
  }
}
