/**
 * The feature cache: one safetensors file per (backbone weights, tap, data), written atomically
 * (temporary file + rename) with a SHA-256 of its features in the metadata. An entry that is
 * truncated or corrupted is reported and treated as absent — never used silently. Partial
 * extractions are kept as per-batch chunks so an interrupted run resumes.
 *
 * @example
 * ```ts
 * import { FeatureCache } from "./feature_cache.ts";
 *
 * const cache = new FeatureCache(await Deno.makeTempDir());
 * await cache.write("entry", new Float32Array([1, 2, 3]), [3]);
 * console.log((await cache.read("entry"))?.data); // Float32Array(3) [ 1, 2, 3 ]
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

/** Features read back from the cache. */
export interface CachedFeatures {
  /** Values, float32. */
  data: Float32Array;
  /** Shape `[N, ...]`. */
  shape: number[];
}

/** A folder of cached features. */
export class FeatureCache {
  /** The folder. */
  readonly dir: string;
  /** Store features as float16 (half the disk; values rounded to 11 significant bits). */
  readonly float16: boolean;
  /** Called with a message when an entry is found corrupted (default: `console.warn`). */
  onCorrupt: (message: string) => void = (m) => console.warn(m);

  /**
   * Uses `dir` (created on the first write).
   *
   * @example
   * ```ts
   * import { FeatureCache } from "./feature_cache.ts";
   *
   * const cache = new FeatureCache("/tmp/diffprobe-cache", { float16: true });
   * console.log(cache.float16); // true
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

  /** Reads an entry; null when absent, or when corrupted (after reporting it). */
  async read(name: string): Promise<CachedFeatures | null> {
    const path = this.path(name);
    let bytes: Uint8Array;
    try {
      bytes = await Deno.readFile(path);
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return null;
      throw e;
    }
    try {
      const file = parseSafetensors(bytes, path);
      const entry = file.tensors.get("features");
      if (!entry) throw new Error('it has no "features" tensor');
      const sum = await sha256Hex(entry.bytes);
      if (sum !== file.metadata.sha256) {
        throw new Error(`its checksum ${sum.slice(0, 12)}… does not match the recorded one`);
      }
      return { data: toFloat32(entry), shape: entry.shape };
    } catch (e) {
      this.onCorrupt(
        `Feature cache entry "${path}" is corrupted (${(e as Error).message}); recomputing it`,
      );
      await Deno.remove(path).catch(() => {});
      return null;
    }
  }

  /** Writes an entry atomically. */
  async write(name: string, data: Float32Array, shape: number[]): Promise<void> {
    await Deno.mkdir(join(this.path(name), ".."), { recursive: true });
    const stored = this.float16 ? float32ToFloat16Bits(data) : data;
    const sum = await sha256Hex(stored);
    await writeSafetensorsFile(
      this.path(name),
      { features: { dtype: this.float16 ? "F16" : "F32", shape, data: stored } },
      { sha256: sum, writer: "diffprobe" },
    );
  }

  /** Removes an entry or a folder of chunks (no error when absent). */
  async remove(name: string): Promise<void> {
    await Deno.remove(this.path(name)).catch(() => {});
    await Deno.remove(join(this.dir, name), { recursive: true }).catch(() => {});
  }
}
