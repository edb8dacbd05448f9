/**
 * Group normalisation over NHWC tensors, as `torch.nn.GroupNorm`: statistics per sample and
 * group over all positions and the group's channels, biased variance, then a per-channel affine.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import * as tf from "@tensorflow/tfjs";
 * import { groupNorm } from "./group_norm.ts";
 *
 * const w = new Map<string, tf.Tensor>([["weight", tf.ones([2])], ["bias", tf.zeros([2])]]);
 * const y = groupNorm((k) => w.get(k)!, tf.tensor4d([1, 3], [1, 1, 1, 2]), 1, 0);
 * assert.deepEqual(y.arraySync(), [[[[-1, 1]]]]);
 * ```
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import type { WeightGetter } from "./weights.ts";

/**
 * Normalises `x` (`[N, H, W, C]`) in `groups` groups with `eps`, then applies `weight` and `bias`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import * as tf from "@tensorflow/tfjs";
 * import { groupNorm } from "./group_norm.ts";
 *
 * const w = new Map<string, tf.Tensor>([["weight", tf.ones([4])], ["bias", tf.zeros([4])]]);
 * const y = groupNorm((k) => w.get(k)!, tf.randomNormal([2, 3, 3, 4]), 2, 1e-6);
 * assert.deepEqual(y.shape, [2, 3, 3, 4]);
 * ```
 */
export function groupNorm(
  get: WeightGetter,
  x: tf.Tensor,
  groups: number,
  eps: number,
): tf.Tensor4D {
  return tf.tidy(() => {
    const [n, h, w, c] = x.shape;
    const g = x.reshape([n, h * w, groups, c / groups]);
    const { mean, variance } = tf.moments(g, [1, 3], true);
    const normed = tf.mul(tf.sub(g, mean), tf.rsqrt(tf.add(variance, eps)));
    return tf.add(tf.mul(normed.reshape([n, h, w, c]), get("weight")), get("bias")) as tf.Tensor4D;
  });
}
