/**
 * The few layers heads are built from, as pure functions of weights and inputs, plus the
 * seeded initialisers for their weights. Internal to `src/heads/`.
 *
 * Weight layouts are TensorFlow's: a dense weight is `[in, out]` and is applied as
 * `x · W + b`.
 *
 * @module
 */

import * as tf from "@tensorflow/tfjs";
import type { Random } from "../base/random.ts";

/** The epsilon of every LayerNorm (PyTorch's default). */
export const LAYER_NORM_EPSILON = 1e-5;

/** `x · W + b` over the last axis of `x`, for any rank ≥ 2. */
export function dense(x: tf.Tensor, weight: tf.Tensor, bias?: tf.Tensor): tf.Tensor {
  const inFeatures = weight.shape[0] as number;
  const outFeatures = weight.shape[1] as number;
  const lead = x.shape.slice(0, -1) as number[];
  const flat = x.rank === 2 ? (x as tf.Tensor2D) : x.reshape([-1, inFeatures]) as tf.Tensor2D;
  let y: tf.Tensor = tf.matMul(flat, weight as tf.Tensor2D);
  if (bias !== undefined) y = y.add(bias);
  return x.rank === 2 ? y : y.reshape([...lead, outFeatures]);
}

/**
 * The sum over the last axis of `x: [M, D]`, as `[M, 1]`, and its broadcast back to `[M, D]`.
 *
 * Both are written as matrix products with a vector of ones. tfjs's CPU backend broadcasts
 * an `[M, 1]` operand element by element through index arithmetic (several times slower than
 * a plain element-wise op, and the same again for the gradient of `sum`/`mean`), while skinny
 * matrix products are fast on every backend and compute the same values.
 */
function rowSum(x: tf.Tensor): tf.Tensor2D {
  return tf.matMul(x as tf.Tensor2D, tf.ones([x.shape[1] as number, 1]));
}

function expandRows(column: tf.Tensor2D, width: number): tf.Tensor2D {
  return tf.matMul(column, tf.ones([1, width]));
}

/**
 * LayerNorm over the last axis, with gain `gamma` and shift `beta`:
 * `(x − mean) / sqrt(var + 1e-5) · gamma + beta`, mean and (biased) variance per row.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import * as tf from "@tensorflow/tfjs";
 * import { layerNorm } from "./_layers.ts";
 *
 * const y = layerNorm(tf.tensor2d([[1, 2, 3]]), tf.ones([3]), tf.zeros([3])).dataSync();
 * [-1.2247, 0, 1.2247].forEach((v, i) => assert.ok(Math.abs(y[i] - v) < 1e-4));
 * ```
 */
export function layerNorm(x: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor): tf.Tensor {
  const width = x.shape[x.rank - 1] as number;
  const rows = x.reshape([-1, width]) as tf.Tensor2D;
  const centred = rows.sub(expandRows(rowSum(rows).div(width), width));
  const variance = rowSum(centred.square()).div(width);
  const normalised = centred.mul(expandRows(tf.rsqrt(variance.add(LAYER_NORM_EPSILON)), width));
  return normalised.mul(gamma).add(beta).reshape(x.shape);
}

/**
 * Softmax over the last axis (rows shifted by their maximum), with its gradient written out:
 * `dx = y · (dy − Σ dy · y)` per row. Recording the forward's own ops instead would also
 * differentiate the shift (a `Max` whose gradient builds a broadcast equality mask, slow on
 * wasm) and the normalisation.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import * as tf from "@tensorflow/tfjs";
 * import { softmax } from "./_layers.ts";
 * const p = softmax(tf.tensor2d([[0, Math.log(3)]])).dataSync();
 * assert.ok(Math.abs(p[0] - 0.25) < 1e-6 && Math.abs(p[1] - 0.75) < 1e-6);
 * ```
 */
export function softmax(x: tf.Tensor): tf.Tensor {
  const width = x.shape[x.rank - 1] as number;
  return tf.tidy(() => softmaxRows(x.reshape([-1, width])).reshape(x.shape));
}

const softmaxRows: (rows: tf.Tensor) => tf.Tensor = tf.customGrad(
  (...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const rows = args[0] as tf.Tensor2D;
    const save = args[1] as tf.GradSaveFunc;
    const width = rows.shape[1];
    const y = tf.tidy(() => {
      const e = rows.sub(expandRows(rows.max(-1, true), width)).exp() as tf.Tensor2D;
      return e.div(expandRows(rowSum(e), width));
    });
    save([y]);
    return {
      value: y,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) =>
        saved[0].mul(dy.sub(expandRows(rowSum(dy.mul(saved[0])), width))),
    };
  },
) as (rows: tf.Tensor) => tf.Tensor;

/**
 * The exact GELU, `x · Φ(x) = x · (1 + erf(x / √2)) / 2`, with its gradient written out,
 * `Φ(x) + x · φ(x)`, so that the backward pass keeps only `x` (not four intermediates).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import * as tf from "@tensorflow/tfjs";
 * import { gelu } from "./_layers.ts";
 * const y = gelu(tf.tensor1d([-1, 0, 1])).dataSync();
 * [-0.1587, 0, 0.8413].forEach((v, i) => assert.ok(Math.abs(y[i] - v) < 1e-4));
 * ```
 */
export function gelu(x: tf.Tensor): tf.Tensor {
  return geluGrad(x);
}

const geluGrad: (x: tf.Tensor) => tf.Tensor = tf.customGrad(
  (...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const x = args[0] as tf.Tensor;
    (args[1] as tf.GradSaveFunc)([x]);
    return {
      value: tf.tidy(() => x.mul(tf.erf(x.mul(Math.SQRT1_2)).add(1)).mul(0.5)),
      gradFunc: (dy: tf.Tensor, [v]: tf.Tensor[]) =>
        tf.tidy(() => {
          const cdf = tf.erf(v.mul(Math.SQRT1_2)).add(1).mul(0.5);
          const pdf = v.square().mul(-0.5).exp().mul(1 / Math.sqrt(2 * Math.PI));
          return dy.mul(cdf.add(v.mul(pdf)));
        }),
    };
  },
) as (x: tf.Tensor) => tf.Tensor;

/** The weights of one multi-head self-attention layer. */
export interface AttentionWeights {
  /** Fused query, key and value projection, `[dim, 3 · dim]`. */
  qkvWeight: tf.Tensor;
  /** Its bias, `[3 · dim]`. */
  qkvBias: tf.Tensor;
  /** Output projection, `[dim, dim]`. */
  outWeight: tf.Tensor;
  /** Its bias, `[dim]`. */
  outBias: tf.Tensor;
}

/**
 * Multi-head scaled dot-product self-attention over `x: [B, N, dim]` with `heads` heads.
 * Queries, keys and values come from one fused projection (in that order along the last
 * axis), each head seeing a contiguous `dim / heads` slice.
 */
export function selfAttention(x: tf.Tensor, w: AttentionWeights, heads: number): tf.Tensor {
  const [batch, tokens, dim] = x.shape as [number, number, number];
  const headDim = dim / heads;
  // [B, N, 3·dim] → [3, B, heads, N, headDim]; unstacking the leading axis reads contiguous
  // memory, unlike slicing the last axis.
  const [q, k, v] = tf.unstack(
    dense(x, w.qkvWeight, w.qkvBias)
      .reshape([batch, tokens, 3, heads, headDim])
      .transpose([2, 0, 3, 1, 4]),
  );
  const scores = tf.matMul(q, k, false, true).mul(1 / Math.sqrt(headDim));
  const attended = tf.matMul(softmax(scores), v); // [B, heads, N, headDim]
  const merged = attended.transpose([0, 2, 1, 3]).reshape([batch, tokens, dim]);
  return dense(merged, w.outWeight, w.outBias);
}

/**
 * PyTorch's default `nn.Linear` initialisation: weight and bias uniform in
 * ±1/√fanIn. Returns the `[fanIn, fanOut]` weight and the `[fanOut]` bias.
 */
export function initLinearUniform(
  rng: Random,
  fanIn: number,
  fanOut: number,
): { weight: Float32Array; bias: Float32Array } {
  const bound = 1 / Math.sqrt(fanIn);
  const weight = new Float32Array(fanIn * fanOut);
  for (let i = 0; i < weight.length; i++) weight[i] = rng.uniform(-bound, bound);
  const bias = new Float32Array(fanOut);
  for (let i = 0; i < bias.length; i++) bias[i] = rng.uniform(-bound, bound);
  return { weight, bias };
}

/** `size` values from a normal truncated at ±2 std (the ViT initialisation, std 0.02). */
export function initTruncatedNormal(rng: Random, size: number, std = 0.02): Float32Array {
  const out = new Float32Array(size);
  for (let i = 0; i < size; i++) out[i] = rng.truncatedNormal(std);
  return out;
}

/**
 * Sine–cosine positional embeddings for a grid of `spatial` positions (any number of axes),
 * `[product(spatial), dim]` row-major: each axis gets an equal share of `2 · floor(dim / (2 ·
 * axes))` channels, half sines and half cosines of the integer coordinate at frequencies
 * `10000^(−k / f)`, as in MAE's fixed 2-D embedding; leftover channels (and every channel when
 * there is no spatial axis) are 0.
 *
 * @example A 2×2 grid in 4 channels: [sin(row), cos(row), sin(col), cos(col)]
 * ```ts
 * import assert from "node:assert/strict";
 * import { sinCosPositions } from "./_layers.ts";
 * const p = sinCosPositions([2, 2], 4); // position (1, 0) is row 2
 * [0.8415, 0.5403, 0, 1].forEach((v, i) => assert.ok(Math.abs(p[8 + i] - v) < 1e-4));
 * ```
 */
export function sinCosPositions(spatial: readonly number[], dim: number): Float32Array {
  const tokens = spatial.reduce((a, b) => a * b, 1);
  const out = new Float32Array(tokens * dim);
  const axes = spatial.length;
  if (axes === 0) return out;
  const frequencies = Math.floor(dim / (2 * axes));
  for (let t = 0; t < tokens; t++) {
    let rest = t;
    for (let a = axes - 1; a >= 0; a--) {
      const coordinate = rest % spatial[a];
      rest = Math.floor(rest / spatial[a]);
      const base = t * dim + a * 2 * frequencies;
      for (let k = 0; k < frequencies; k++) {
        const angle = coordinate * 10000 ** (-k / frequencies);
        out[base + k] = Math.sin(angle);
        out[base + frequencies + k] = Math.cos(angle);
      }
    }
  }
  return out;
}

/**
 * Glorot/Xavier uniform values for a `[fanIn, fanOut]` matrix: uniform in
 * ±√(6 / (fanIn + fanOut)).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Random } from "../base/random.ts";
 * import { initXavierUniform } from "./_layers.ts";
 * const w = initXavierUniform(Random.seeded(0), 32, 96); // |w| ≤ √(6 / 128) ≈ 0.2165
 * assert.equal(w.length, 3072);
 * assert.ok(w.every((v) => Math.abs(v) <= Math.sqrt(6 / 128)));
 * ```
 */
export function initXavierUniform(rng: Random, fanIn: number, fanOut: number): Float32Array {
  const bound = Math.sqrt(6 / (fanIn + fanOut));
  const out = new Float32Array(fanIn * fanOut);
  for (let i = 0; i < out.length; i++) out[i] = rng.uniform(-bound, bound);
  return out;
}
