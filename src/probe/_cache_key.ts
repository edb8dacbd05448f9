/**
 * What identifies cached features: a checksum of the weights actually in use (memoised per
 * tensor data, so a weight swapped or assigned in place — as training does — is hashed again),
 * and the entry name of a (weights, tap, data) triple.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import * as tf from "@tensorflow/tfjs";
 * import { checksumOfWeights } from "./_cache_key.ts";
 *
 * const w = tf.variable(tf.zeros([2]));
 * const weights = new Map<string, tf.Tensor>([["w", w]]);
 * const before = await checksumOfWeights(weights);
 * w.assign(tf.ones([2]));
 * assert.notEqual(await checksumOfWeights(weights), before);
 * w.dispose();
 * ```
 *
 * @module
 */
import type * as tf from "@tensorflow/tfjs";
import { sha256Hex } from "../io/checksum.ts";

/** Per-tensor checksums keyed by the tensor's data (`dataId`), which `assign` replaces. */
const tensorSums = new WeakMap<object, Promise<string>>();

function tensorChecksum(t: tf.Tensor): Promise<string> {
  const id = t.dataId as object;
  let sum = tensorSums.get(id);
  if (!sum) {
    sum = (async () => sha256Hex(await t.data() as Float32Array))();
    tensorSums.set(id, sum);
    sum.catch(() => tensorSums.delete(id));
  }
  return sum;
}

/** SHA-256 over the weights' names, shapes and values, in name order. */
export async function checksumOfWeights(weights: ReadonlyMap<string, tf.Tensor>): Promise<string> {
  const parts: string[] = [];
  for (const name of [...weights.keys()].sort()) {
    const w = weights.get(name)!;
    parts.push(`${name}:${w.shape}:${await tensorChecksum(w)}`);
  }
  return await sha256Hex(parts.join("\n"));
}

/** The cache entry name (40 hex digits) of features `id` of `data` under `weights`. */
export async function entryName(weights: string, id: string, data: string): Promise<string> {
  return (await sha256Hex(`diffprobe-features-v2\n${weights}\n${id}\n${data}`)).slice(0, 40);
}
