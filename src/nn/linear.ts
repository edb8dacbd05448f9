/**
 * A dense layer: `x · W + b` with `W` stored as `[in, out]` (PyTorch's `[out, in]` is
 * transposed once, at load).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import * as tf from "@tensorflow/tfjs";
 * import { linear } from "./linear.ts";
 *
 * const w = new Map<string, tf.Tensor>([["weight", tf.tensor2d([[1], [2]])], ["bias", tf.tensor1d([0.5])]]);
 * assert.deepEqual(linear((k) => w.get(k)!, tf.tensor2d([[1, 1]])).arraySync(), [[3.5]]);
 * ```
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import type { WeightGetter } from "./weights.ts";

/**
 * Applies `weight` (`[in, out]`) and `bias` (`[out]`) to the last axis of `x`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import * as tf from "@tensorflow/tfjs";
 * import { linear } from "./linear.ts";
 *
 * const w = new Map<string, tf.Tensor>([["weight", tf.eye(2)], ["bias", tf.zeros([2])]]);
 * assert.deepEqual(linear((k) => w.get(k)!, tf.ones([3, 2])).shape, [3, 2]);
 * ```
 */
export function linear(get: WeightGetter, x: tf.Tensor): tf.Tensor {
  return tf.tidy(() => {
    const w = get("weight") as tf.Tensor2D;
    const shape = x.shape;
    const flat = x.reshape([-1, shape[shape.length - 1]]) as tf.Tensor2D;
    const y = tf.add(tf.matMul(flat, w), get("bias"));
    return y.reshape([...shape.slice(0, -1), w.shape[1]]);
  });
}
