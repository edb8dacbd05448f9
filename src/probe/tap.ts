/**
 * Taps: which block to read, at which noise level, with which noise and pooling. A tap is plain
 * data with a stable `key` (`"t30/b17/mean/s0"`) used for results and for the feature cache.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { tapBlock } from "@diffprobe/core";
 *
 * assert.equal(tapBlock(30, 17).key, "t30/b17/mean/s0");
 * assert.equal(tapBlock(30, "up_blocks.1.0", { pool: { size: 4 } }).key, "t30/up_blocks.1.0/p4/s0");
 * ```
 *
 * @module
 */
import type { BlockRef } from "../models/unet.ts";
import { integerInRange, oneOf, positiveInteger, show } from "../base/validate.ts";

/** How a tapped map is reduced: kept (`"none"`), global mean, or average-pooled to k×k (or k). */
export type Pooling = "none" | "mean" | { size: number };

/** Options of {@linkcode tapBlock}. */
export interface TapOptions {
  /** Noise seed in [0, 2^32) (default 0): the same sample always gets the same noise. */
  seed?: number;
  /** Pooling (default `"mean"`). */
  pool?: Pooling;
  /** Average the features of this many noise draws (default 1, at most 256). */
  ensemble?: number;
  /** T of the schedule the tap is meant for, to check `t` early (default 1000). */
  timesteps?: number;
}

/** A block output at a noise level. */
export interface Tap {
  /** Timestep. */
  readonly t: number;
  /** Block number (1-based) or name. */
  readonly block: BlockRef;
  /** Noise seed. */
  readonly seed: number;
  /** Pooling. */
  readonly pool: Pooling;
  /** Number of noise draws averaged. */
  readonly ensemble: number;
  /** Stable identifier, e.g. `"t30/b17/mean/s0"` (ensembles add `"/e4"`). */
  readonly key: string;
}

/** Largest ensemble a tap may average (each draw is one more forward pass per batch). */
export const MAX_ENSEMBLE = 256;

/** Noise seeds are 32-bit: seeds in [0, 2^32) give distinct noise streams. */
export const MAX_SEED = 2 ** 32 - 1;

/** The key fragment of a pooling. */
export function poolKey(pool: Pooling): string {
  return typeof pool === "string" ? pool : `p${pool.size}`;
}

/**
 * The one key format of a tap: `t<t>/<block>/<pool>/s<seed>`, plus `/e<k>` for an ensemble of
 * k > 1 draws. {@linkcode tapBlock} writes the block as given (`b17` or a name); the feature
 * cache writes its name.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { tapKey } from "./tap.ts";
 *
 * assert.equal(tapKey(30, "up_blocks.1.0", "mean", 0, 1), "t30/up_blocks.1.0/mean/s0");
 * assert.equal(tapKey(30, "b17", { size: 2 }, 3, 4), "t30/b17/p2/s3/e4");
 * ```
 */
export function tapKey(
  t: number,
  block: string,
  pool: Pooling,
  seed: number,
  ensemble: number,
): string {
  return `t${t}/${block}/${poolKey(pool)}/s${seed}${ensemble > 1 ? `/e${ensemble}` : ""}`;
}

function checkPool(pool: unknown): Pooling {
  if (typeof pool === "object" && pool !== null && "size" in pool) {
    return { size: positiveInteger((pool as { size: unknown }).size, "Pooling size") };
  }
  if (typeof pool === "string") return oneOf(pool, "Pooling", ["none", "mean"] as const);
  throw new TypeError(`Pooling must be "none", "mean" or { size: k }, got ${show(pool)}`);
}

/**
 * Describes a tap on `block` at timestep `t`. Throws a `RangeError` for a `t` outside [0, T), a
 * bad block number, a seed outside [0, 2^32), an ensemble outside [1, {@linkcode MAX_ENSEMBLE}]
 * or a bad pool size, and a `TypeError` for a pooling or block of the wrong kind (blocks are
 * checked against a backbone when features are extracted).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { tapBlock } from "@diffprobe/core";
 *
 * const tap = tapBlock(10, 16, { pool: "none", seed: 3, ensemble: 4 });
 * assert.equal(tap.key, "t10/b16/none/s3/e4");
 * assert.throws(() => tapBlock(10, 16, { seed: 2 ** 32 }), RangeError);
 * ```
 */
export function tapBlock(t: number, block: BlockRef, options: TapOptions = {}): Tap {
  const timesteps = positiveInteger(options.timesteps ?? 1000, "Number of timesteps");
  integerInRange(t, "Timestep", 0, timesteps - 1);
  if (typeof block === "number") positiveInteger(block, "Block number");
  else if (typeof block !== "string" || block.length === 0) {
    throw new TypeError(`Block must be a 1-based number or a non-empty name, got ${show(block)}`);
  }
  const seed = integerInRange(options.seed ?? 0, "Noise seed", 0, MAX_SEED);
  const pool = checkPool(options.pool ?? "mean");
  const ensemble = integerInRange(options.ensemble ?? 1, "Ensemble size", 1, MAX_ENSEMBLE);
  const b = typeof block === "number" ? `b${block}` : block;
  const key = tapKey(t, b, pool, seed, ensemble);
  return Object.freeze({ t, block, seed, pool, ensemble, key });
}
