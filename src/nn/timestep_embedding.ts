/**
 * Sinusoidal timestep embeddings, computed the way diffusers' `get_timestep_embedding` does in
 * float32 (`flip_sin_to_cos`, `downscale_freq_shift`), so that large `t` rounds the same way.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { timestepEmbedding } from "./timestep_embedding.ts";
 *
 * const emb = timestepEmbedding([0, 500], 8, { flipSinToCos: false, freqShift: 1 });
 * assert.deepEqual(emb.shape, [2, 8]);
 * ```
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";

/** Options of {@linkcode timestepEmbedding}. */
export interface TimestepEmbeddingOptions {
  /** Put the cosines first (diffusers' `flip_sin_to_cos`). */
  flipSinToCos: boolean;
  /** diffusers' `freq_shift` (`downscale_freq_shift`). */
  freqShift: number;
  /** Longest period (default 10,000). */
  maxPeriod?: number;
}

/**
 * Returns `[t.length, dim]` float32 embeddings of the timesteps `t`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { timestepEmbedding } from "./timestep_embedding.ts";
 *
 * // t = 0: sin(0) = 0 and cos(0) = 1.
 * assert.deepEqual(timestepEmbedding([0], 4, { flipSinToCos: false, freqShift: 1 }).arraySync(), [[0, 0, 1, 1]]);
 * ```
 */
export function timestepEmbedding(
  t: ArrayLike<number>,
  dim: number,
  options: TimestepEmbeddingOptions,
): tf.Tensor2D {
  const half = Math.floor(dim / 2);
  const maxPeriod = options.maxPeriod ?? 10000;
  const f = Math.fround;
  const freqs = new Float32Array(half);
  for (let i = 0; i < half; i++) {
    const exponent = f(f(f(-Math.log(maxPeriod)) * i) / f(half - options.freqShift));
    freqs[i] = f(Math.exp(exponent));
  }
  const out = new Float32Array(t.length * dim);
  for (let n = 0; n < t.length; n++) {
    const tn = f(t[n]);
    for (let i = 0; i < half; i++) {
      const arg = f(tn * freqs[i]);
      const s = Math.sin(arg);
      const c = Math.cos(arg);
      const row = n * dim;
      out[row + i] = options.flipSinToCos ? c : s;
      out[row + half + i] = options.flipSinToCos ? s : c;
    }
  }
  return tf.tensor2d(out, [t.length, dim]);
}
