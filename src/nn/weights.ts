/**
 * How layers find their weights: a function from a key relative to the layer
 * (`"conv1.weight"`) to a tensor already in TensorFlow.js layout.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import * as tf from "@tensorflow/tfjs";
 * import { scopeWeights } from "./weights.ts";
 *
 * const all = new Map([["mid_block.resnets.0.conv1.bias", tf.zeros([4])]]);
 * const resnet = scopeWeights((key) => all.get(key)!, "mid_block.resnets.0");
 * assert.deepEqual(resnet("conv1.bias").shape, [4]);
 * ```
 *
 * @module
 */
import type * as tf from "@tensorflow/tfjs";

/** Returns the weight stored under `key` (relative to the layer); throws when it is missing. */
export type WeightGetter = (key: string) => tf.Tensor;

/**
 * Narrows a getter to the weights under `prefix`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import * as tf from "@tensorflow/tfjs";
 * import { scopeWeights } from "./weights.ts";
 *
 * const get = scopeWeights((key) => tf.scalar(key.length), "a.b");
 * assert.equal(get("c").dataSync()[0], 5); // "a.b.c".length
 * ```
 */
export function scopeWeights(get: WeightGetter, prefix: string): WeightGetter {
  return (key) => get(`${prefix}.${key}`);
}
