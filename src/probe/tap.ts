/**
 * Taps: which block to read, at which noise level, with which noise and pooling. A tap is plain
 * data with a stable `key` (`"t30/b17/mean/s0"`) used for results and for the feature cache.
 *
 * @example
 * ```ts
 * import { tapBlock } from "./tap.ts";
 *
 * console.log(tapBlock(30, 17).key); // "t30/b17/mean/s0"
 * console.log(tapBlock(30, "up_blocks.1.0", { pool: { size: 4 } }).key); // "t30/up_blocks.1.0/p4/s0"
 * ```
 *
 * @module
 */
import type { BlockRef } from "../models/unet.ts";

/** How a tapped map is reduced: kept (`"none"`), global mean, or average-pooled to k×k (or k). */
export type Pooling = "none" | "mean" | { size: number };

/** Options of {@linkcode tapBlock}. */
export interface TapOptions {
  /** Noise seed (default 0): the same sample always gets the same noise. */
  seed?: number;
  /** Pooling (default `"mean"`). */
  pool?: Pooling;
  /** Average the features of this many noise draws (default 1). */
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

/** The key fragment of a pooling. */
export function poolKey(pool: Pooling): string {
  return typeof pool === "string" ? pool : `p${pool.size}`;
}

/**
 * Describes a tap on `block` at timestep `t`. Throws a `RangeError` for a `t` outside [0, T), a
 * bad block reference, pool size or ensemble count (blocks are checked against a backbone when
 * features are extracted).
 *
 * @example
 * ```ts
 * import { tapBlock } from "./tap.ts";
 *
 * const tap = tapBlock(10, 16, { pool: "none", seed: 3, ensemble: 4 });
 * console.log(tap.key); // "t10/b16/none/s3/e4"
 * ```
 */
export function tapBlock(t: number, block: BlockRef, options: TapOptions = {}): Tap {
  const timesteps = options.timesteps ?? 1000;
  if (!Number.isInteger(t) || t < 0 || t >= timesteps) {
    throw new RangeError(`Timestep ${t} is out of range: expected an integer in [0, ${timesteps})`);
  }
  if (typeof block === "number" ? !(Number.isInteger(block) && block >= 1) : block.length === 0) {
    throw new RangeError(
      `Block ${JSON.stringify(block)} is not valid: expected a 1-based number or a name`,
    );
  }
  const seed = options.seed ?? 0;
  if (!Number.isInteger(seed)) throw new RangeError(`Noise seed must be an integer, got ${seed}`);
  const pool = options.pool ?? "mean";
  if (
    typeof pool === "object"
      ? !(Number.isInteger(pool.size) && pool.size >= 1)
      : !["none", "mean"].includes(pool)
  ) {
    throw new RangeError(
      `Pooling ${JSON.stringify(pool)} is not valid: expected "none", "mean" or { size: k }`,
    );
  }
  const ensemble = options.ensemble ?? 1;
  if (!Number.isInteger(ensemble) || ensemble < 1) {
    throw new RangeError(`Ensemble size must be a positive integer, got ${ensemble}`);
  }
  const b = typeof block === "number" ? `b${block}` : block;
  const key = `t${t}/${b}/${poolKey(pool)}/s${seed}${ensemble > 1 ? `/e${ensemble}` : ""}`;
  return Object.freeze({ t, block, seed, pool, ensemble, key });
}
