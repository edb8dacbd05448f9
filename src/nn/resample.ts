/**
 * The UNet's resolution changes: a stride-2 convolution down (diffusers' `Downsample2D`) and
 * nearest-neighbour ×2 followed by a 3×3 convolution up (`Upsample2D`). Signals carried as
 * `[N, 1, W, C]` are resampled along the width only.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import * as tf from "@tensorflow/tfjs";
 * import { downsample, upsample } from "./resample.ts";
 *
 * const w = new Map<string, tf.Tensor>([["weight", tf.ones([3, 3, 1, 1])], ["bias", tf.zeros([1])]]);
 * const down = downsample((k) => w.get(k)!, tf.ones([1, 8, 8, 1]), 1);
 * assert.deepEqual(down.shape, [1, 4, 4, 1]);
 * assert.deepEqual(upsample((k) => w.get(k)!, down).shape, [1, 8, 8, 1]);
 * ```
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { conv } from "./conv.ts";
import type { WeightGetter } from "./weights.ts";

/**
 * Halves the resolution with a stride-2 3×3 convolution. `padding` 0 pads one zero row and
 * column at the end (bottom, right) as diffusers does; `padding` 1 pads every side.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import * as tf from "@tensorflow/tfjs";
 * import { downsample } from "./resample.ts";
 *
 * const w = new Map<string, tf.Tensor>([["weight", tf.ones([1, 3, 1, 1])], ["bias", tf.zeros([1])]]);
 * assert.deepEqual(downsample((k) => w.get(k)!, tf.ones([1, 1, 16, 1]), 0).shape, [1, 1, 8, 1]);
 * ```
 */
export function downsample(get: WeightGetter, x: tf.Tensor, padding: number): tf.Tensor4D {
  const oneD = x.shape[1] === 1 && get("weight").shape[0] === 1;
  const pad: [number, number, number, number] = padding === 0
    ? [0, oneD ? 0 : 1, 0, 1]
    : [oneD ? 0 : padding, oneD ? 0 : padding, padding, padding];
  return conv(get, x, { stride: 2, padding: pad });
}

/**
 * Doubles the resolution (nearest neighbour) and applies a 3×3 convolution with padding 1.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import * as tf from "@tensorflow/tfjs";
 * import { upsample } from "./resample.ts";
 *
 * const w = new Map<string, tf.Tensor>([["weight", tf.ones([3, 3, 2, 2])], ["bias", tf.zeros([2])]]);
 * assert.deepEqual(upsample((k) => w.get(k)!, tf.ones([1, 4, 4, 2])).shape, [1, 8, 8, 2]);
 * ```
 */
export function upsample(get: WeightGetter, x: tf.Tensor): tf.Tensor4D {
  return tf.tidy(() => {
    const [n, h, w, c] = x.shape;
    const oneD = h === 1 && get("weight").shape[0] === 1;
    const outH = oneD ? 1 : 2 * h;
    // Nearest ×2 as a broadcasted tile: exact and differentiable on every backend.
    const wide = tf.broadcastTo(x.reshape([n, h, 1, w, 1, c]), [n, h, oneD ? 1 : 2, w, 2, c])
      .reshape([n, outH, 2 * w, c]);
    return conv(get, wide, { padding: 1 });
  });
}
