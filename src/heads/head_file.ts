/**
 * The saved-head folder: `head.json` (class, options, standardisation statistics) and
 * `head.safetensors` (float32 weights, with the input shape in its metadata). Reading checks
 * everything — sizes against the weights file's header before anything is allocated, finite
 * weights, positive normal deviations, an input shape that matches the weights — and names the
 * file, the field and the value of the first problem.
 *
 * @module
 */
import { join } from "node:path";
import { writeFileAtomic } from "../base/atomic_write.ts";
import { show } from "../base/validate.ts";
import { type ReadFailure, readRegularFile } from "../io/bounded_read.ts";
import {
  parseSafetensors,
  serializeSafetensors,
  type TensorToWrite,
  toFloat32,
} from "../io/safetensors.ts";
import type { HeadOptions } from "./head_options.ts";
import { formatShape, sameShape, sizeOf } from "./_shape.ts";

/** The contents of `head.json`. */
export interface HeadManifest {
  /** Always `"diffprobe-head"`. */
  format: "diffprobe-head";
  /** The format version, 1. */
  version: 1;
  /** The head class, e.g. `"AttentionHead"`. */
  className: string;
  /** The resolved constructor options. */
  options: HeadOptions & Record<string, unknown>;
  /** Per-feature statistics (flattened in row-major order), or null when not standardising. */
  standardization: { mean: number[]; std: number[] } | null;
  /** The weights file, relative to the folder. */
  weights: string;
}

/** A head read back and checked: its manifest, weights and statistics. */
export interface SavedHead {
  /** The parsed `head.json`. */
  manifest: HeadManifest;
  /** Every weight, with the shape the options give it. */
  weights: Map<string, Float32Array>;
  /** The statistics, or null when the head does not standardise. */
  standardization: { mean: Float32Array; std: Float32Array } | null;
}

/** The weights' names and shapes that a head class has for given options (allocates nothing). */
export type WeightShapes = (
  options: HeadOptions & Record<string, unknown>,
) => Map<string, number[]>;

const MANIFEST_FILE = "head.json";
const WEIGHTS_FILE = "head.safetensors";
/** Largest `head.json` read (the statistics of 2^22 features take about 100 MB of JSON). */
const MAX_MANIFEST_BYTES = 256 * 2 ** 20;
/** Room for a weights file's header, beyond 8 bytes per parameter. */
const MAX_WEIGHTS_HEADER_BYTES = 100_000_000;
/** The smallest positive normal float32: deviations below it are denormal, zero or negative. */
const MIN_NORMAL_FLOAT32 = 2 ** -126;

/**
 * Reads `file` as a regular file (not a folder, device or FIFO, which could hang or never end)
 * of at most `maxBytes`; errors name `what` and the path: `NotFound`, `TypeError` (not a
 * regular file, or a loop of links), `RangeError` (too large), `Error` (any other failure).
 */
function readHeadFile(file: string, maxBytes: number, what: string): Promise<Uint8Array> {
  const kinds: Record<ReadFailure, new (message: string, options?: ErrorOptions) => Error> = {
    "not-found": Deno.errors.NotFound,
    "not-regular": TypeError,
    "loop": TypeError,
    "too-large": RangeError,
    "io": Error,
  };
  return readRegularFile(
    file,
    maxBytes,
    (kind, problem, cause) =>
      new kinds[kind](`Cannot read ${what} "${file}": ${problem}`, { cause }),
  );
}

/** The same kind of error as `error`, with `prefix` (naming the path) before its message. */
export function rewrap(error: unknown, prefix: string): Error {
  const reason = error instanceof Error ? error.message : String(error);
  const Kind = error instanceof Error ? error.constructor as ErrorConstructor : Error;
  return new Kind(`${prefix}: ${reason}`, { cause: error });
}

/**
 * Reads and checks `<dir>/head.json`: a regular file holding a version-1 diffprobe head manifest
 * whose weights file lies in the folder (and, given `expectedClass`, of that class).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { readHeadManifest } from "./head_file.ts";
 *
 * const dir = await Deno.makeTempDir();
 * await assert.rejects(readHeadManifest(dir), /Cannot read head\.json .*head\.json/);
 * await Deno.remove(dir);
 * ```
 */
export async function readHeadManifest(
  dir: string,
  expectedClass?: string,
): Promise<HeadManifest> {
  const file = join(dir, MANIFEST_FILE);
  const bytes = await readHeadFile(file, MAX_MANIFEST_BYTES, "head.json");
  let manifest: HeadManifest;
  try {
    manifest = JSON.parse(new TextDecoder().decode(bytes));
  } catch (error) {
    throw new SyntaxError(`"${file}" is not valid JSON: ${(error as Error).message}`, {
      cause: error,
    });
  }
  const bad = (field: string, rule: string, value: unknown) =>
    new TypeError(`"${file}" field ${field} must be ${rule}, got ${show(value)}`);
  if (manifest === null || typeof manifest !== "object" || Array.isArray(manifest)) {
    throw bad("(top level)", "an object", manifest);
  }
  if (manifest.format !== "diffprobe-head") {
    throw bad("format", '"diffprobe-head"', manifest.format);
  }
  if (manifest.version !== 1) throw bad("version", "1", manifest.version);
  if (typeof manifest.className !== "string") {
    throw bad("className", "a string", manifest.className);
  }
  if (manifest.options === null || typeof manifest.options !== "object") {
    throw bad("options", "an object", manifest.options);
  }
  const weights = manifest.weights;
  if (typeof weights !== "string" || !/^[^/\\]+$/.test(weights) || weights === "..") {
    throw bad("weights", "a file name in the folder", weights);
  }
  if (expectedClass !== undefined && manifest.className !== expectedClass) {
    throw new TypeError(
      `"${dir}" holds a ${manifest.className}, not a ${expectedClass}; loadHead() loads any head`,
    );
  }
  return manifest;
}

/**
 * Reads a saved head of class `className` from `dir` and checks it against the weight shapes
 * its options give (`shapes`), before anything of the head's size is allocated.
 */
export async function readSavedHead(
  dir: string,
  className: string,
  shapes: WeightShapes,
): Promise<SavedHead> {
  const manifest = await readHeadManifest(dir, className);
  const manifestFile = join(dir, MANIFEST_FILE);
  let expected: Map<string, number[]>;
  try {
    expected = shapes(manifest.options);
  } catch (error) {
    throw rewrap(error, `"${manifestFile}" field options`);
  }
  const file = join(dir, manifest.weights);
  let parameters = 0;
  for (const shape of expected.values()) parameters += sizeOf(shape);
  const bytes = await readHeadFile(
    file,
    8 + MAX_WEIGHTS_HEADER_BYTES + 8 * parameters,
    "head weights",
  );
  const parsed = parseSafetensors(bytes, file);
  const saved = parsed.metadata.inputShape;
  const inputShape = manifest.options.inputShape;
  if (saved !== undefined && saved !== JSON.stringify(inputShape)) {
    throw new RangeError(
      `"${manifestFile}" field options.inputShape must be ${saved} (the shape "${file}" was ` +
        `trained on), got ${show(inputShape)}`,
    );
  }
  const weights = new Map<string, Float32Array>();
  for (const name of parsed.tensors.keys()) {
    if (!expected.has(name)) {
      throw new RangeError(`"${file}" holds tensor "${name}", which a ${className} does not have`);
    }
  }
  for (const [name, shape] of expected) {
    const entry = parsed.tensors.get(name);
    if (entry === undefined) throw new RangeError(`"${file}" lacks tensor "${name}"`);
    if (!sameShape(entry.shape, shape)) {
      throw new RangeError(
        `"${file}" tensor "${name}" must have shape ${formatShape(shape)}, got ${
          formatShape(entry.shape)
        }`,
      );
    }
    const values = toFloat32(entry);
    const i = values.findIndex((v) => !Number.isFinite(v));
    if (i >= 0) {
      throw new RangeError(
        `"${file}" tensor "${name}" must hold finite values, got ${values[i]} at index ${i}`,
      );
    }
    weights.set(name, values);
  }
  const featureSize = sizeOf(inputShape);
  const standardization = checkStatistics(manifest.standardization, featureSize, manifestFile);
  return { manifest, weights, standardization };
}

/** Checks `head.json`'s statistics: `featureSize` finite means, positive normal deviations. */
function checkStatistics(
  stats: unknown,
  featureSize: number,
  file: string,
): { mean: Float32Array; std: Float32Array } | null {
  if (stats === null || stats === undefined) return null;
  if (typeof stats !== "object") {
    throw new TypeError(
      `"${file}" field standardization must be null or { mean, std }, got ${show(stats)}`,
    );
  }
  const out: Record<string, Float32Array> = {};
  for (const key of ["mean", "std"] as const) {
    const list = (stats as Record<string, unknown>)[key];
    if (!Array.isArray(list) || list.length !== featureSize) {
      throw new RangeError(
        `"${file}" field standardization.${key} must be an array of ${featureSize} numbers, got ${
          Array.isArray(list) ? `${list.length} entries` : show(list)
        }`,
      );
    }
    const rule = key === "mean"
      ? "a finite float32 number"
      : `a finite float32 number >= ${MIN_NORMAL_FLOAT32} (positive, normal in float32)`;
    // Checked as the float32 values they become.
    const ok = key === "mean"
      ? (v: unknown) => typeof v === "number" && Number.isFinite(Math.fround(v))
      : (v: unknown) =>
        typeof v === "number" && Number.isFinite(Math.fround(v)) &&
        Math.fround(v) >= MIN_NORMAL_FLOAT32;
    const i = list.findIndex((v) => !ok(v));
    if (i >= 0) {
      throw new RangeError(
        `"${file}" field standardization.${key}[${i}] must be ${rule}, got ${show(list[i])}`,
      );
    }
    out[key] = Float32Array.from(list);
  }
  return { mean: out.mean, std: out.std };
}

/**
 * Writes `head.json` and `head.safetensors` into `dir` (created if needed), each atomically;
 * errors name the path.
 */
export async function writeHeadFolder(
  dir: string,
  manifest: Omit<HeadManifest, "weights">,
  weights: Map<string, TensorToWrite>,
): Promise<void> {
  try {
    await Deno.mkdir(dir, { recursive: true });
  } catch (error) {
    throw rewrap(error, `Cannot save a head to "${dir}"`);
  }
  const bytes = serializeSafetensors(weights, {
    format: "diffprobe-head",
    className: manifest.className,
    inputShape: JSON.stringify(manifest.options.inputShape),
  });
  const full: HeadManifest = { ...manifest, weights: WEIGHTS_FILE };
  await writeFileAtomic(join(dir, WEIGHTS_FILE), bytes);
  await writeFileAtomic(join(dir, MANIFEST_FILE), JSON.stringify(full, null, 2) + "\n");
}
