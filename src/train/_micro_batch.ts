/**
 * Micro-batches: how many samples one forward/backward pass takes, and the near-equal parts of
 * a batch. Internal to `src/train/`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { splitBatch } from "./_micro_batch.ts";
 *
 * assert.deepEqual(splitBatch(10, 4), [[0, 4], [4, 3], [7, 3]]);
 * ```
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import type { UNet } from "../models/unet.ts";

/** Activation budget of one micro-batch on wasm (its heap is 4 GiB; backward needs headroom). */
const WASM_ACTIVATION_BUDGET = 1.9e9;

/** Activation memory a training forward keeps for backward, per sample (bytes). */
function activationBytesPerSample(
  unet: UNet,
  sampleShape: readonly number[],
  variables: readonly tf.Variable[],
): number {
  const x = tf.zeros([1, ...sampleShape]);
  const before = tf.memory().numBytes;
  let bytes = 0;
  const { value, grads } = tf.variableGrads(() => {
    const out = unet.forward(x, [0], { eps: true, training: true, dropoutSeed: 0 });
    bytes = tf.memory().numBytes - before;
    return tf.mean(tf.square(out.eps!)) as tf.Scalar;
  }, [...variables]);
  tf.dispose([x, value]);
  tf.dispose(grads);
  return bytes;
}

/** The micro-batch size `"auto"` picks: the whole batch, except on wasm when it would not fit. */
export function chooseMicroBatch(
  unet: UNet,
  sampleShape: readonly number[],
  variables: readonly tf.Variable[],
  batchSize: number,
): number {
  if (tf.getBackend() !== "wasm") return batchSize;
  const perSample = activationBytesPerSample(unet, sampleShape, variables);
  const fits = Math.max(1, Math.floor(WASM_ACTIVATION_BUDGET / Math.max(perSample, 1)));
  return Math.min(batchSize, fits);
}

/** `[start, size]` of near-equal parts of a batch, none larger than `micro`. */
export function splitBatch(batchSize: number, micro: number): [number, number][] {
  const parts = Math.ceil(batchSize / micro);
  const base = Math.floor(batchSize / parts), extra = batchSize % parts;
  const out: [number, number][] = [];
  let start = 0;
  for (let i = 0; i < parts; i++) {
    const size = base + (i < extra ? 1 : 0);
    out.push([start, size]);
    start += size;
  }
  return out;
}
