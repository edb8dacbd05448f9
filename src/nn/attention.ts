/**
 * The spatial self-attention block of diffusers' `Attention` as DDPM UNets use it: GroupNorm,
 * per-position q/k/v projections, multi-head scaled dot-product attention, an output projection,
 * a residual connection and a rescale.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import * as tf from "@tensorflow/tfjs";
 * import { spatialAttention } from "./attention.ts";
 *
 * const c = 4;
 * const w = new Map<string, tf.Tensor>([["group_norm.weight", tf.ones([c])], ["group_norm.bias", tf.zeros([c])]]);
 * for (const p of ["to_q", "to_k", "to_v", "to_out.0"]) {
 *   w.set(`${p}.weight`, tf.eye(c));
 *   w.set(`${p}.bias`, tf.zeros([c]));
 * }
 * const y = spatialAttention((k) => w.get(k)!, tf.randomNormal([1, 2, 2, c]), { heads: 2, groups: 2, eps: 1e-6 });
 * assert.deepEqual(y.shape, [1, 2, 2, 4]);
 * ```
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { groupNorm } from "./group_norm.ts";
import { linear } from "./linear.ts";
import { scopeWeights, type WeightGetter } from "./weights.ts";

/** Options of {@linkcode spatialAttention}. */
export interface SpatialAttentionOptions {
  /** Number of heads; the channel count must be a multiple of it. */
  heads: number;
  /** GroupNorm groups. */
  groups: number;
  /** GroupNorm epsilon. */
  eps: number;
  /** The output is divided by this after the residual (diffusers' `rescale_output_factor`). */
  rescale?: number;
}

/**
 * Self-attention over all positions of `x` (`[N, H, W, C]`); returns the same shape.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import * as tf from "@tensorflow/tfjs";
 * import { spatialAttention } from "./attention.ts";
 *
 * const w = new Map<string, tf.Tensor>([["group_norm.weight", tf.ones([2])], ["group_norm.bias", tf.zeros([2])]]);
 * for (const p of ["to_q", "to_k", "to_v", "to_out.0"]) {
 *   w.set(`${p}.weight`, tf.zeros([2, 2]));
 *   w.set(`${p}.bias`, tf.zeros([2]));
 * }
 * // Zero projections leave only the residual.
 * const y = spatialAttention((k) => w.get(k)!, tf.ones([1, 1, 3, 2]), { heads: 1, groups: 1, eps: 1e-6 });
 * assert.deepEqual(Array.from(y.dataSync()), [1, 1, 1, 1, 1, 1]);
 * ```
 */
export function spatialAttention(
  get: WeightGetter,
  x: tf.Tensor,
  options: SpatialAttentionOptions,
): tf.Tensor4D {
  return tf.tidy(() => {
    const [n, h, w, c] = x.shape;
    const heads = options.heads;
    const d = c / heads;
    const normed = groupNorm(scopeWeights(get, "group_norm"), x, options.groups, options.eps);
    const tokens = normed.reshape([n, h * w, c]);
    const split = (t: tf.Tensor) => t.reshape([n, h * w, heads, d]).transpose([0, 2, 1, 3]);
    const q = split(linear(scopeWeights(get, "to_q"), tokens));
    const k = split(linear(scopeWeights(get, "to_k"), tokens));
    const v = split(linear(scopeWeights(get, "to_v"), tokens));
    const scores = tf.mul(tf.matMul(q, k, false, true), 1 / Math.sqrt(d));
    const attended = tf.matMul(tf.softmax(scores), v).transpose([0, 2, 1, 3]).reshape([
      n,
      h * w,
      c,
    ]);
    const out = linear(scopeWeights(get, "to_out.0"), attended).reshape([n, h, w, c]);
    const sum = tf.add(out, x);
    const rescale = options.rescale ?? 1;
    return (rescale === 1 ? sum : tf.div(sum, rescale)) as tf.Tensor4D;
  });
}
