/**
 * Seeded Gaussian noise that is a function of `(seed, sample index)` only: sample 17 gets the
 * same noise whether it is drawn in a batch of 1 or of 256, so features never depend on the
 * batch size. The one per-sample noise of the package: extraction draws stream `(seed, i)`
 * ({@linkcode Random.stream}), the samplers of `train/` draw numbered streams `k` of a seed
 * ({@linkcode Random.counter}).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { sampleNoise } from "@diffprobe/core";
 *
 * const all = sampleNoise(0, 0, 4, [2, 2, 3]);
 * const last = sampleNoise(0, 3, 1, [2, 2, 3]);
 * assert.deepEqual(all.slice(3).arraySync(), last.arraySync());
 * all.dispose();
 * last.dispose();
 * ```
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { Random } from "../base/random.ts";

/**
 * Fills `out` with standard normal values from the stream `(seed, index)`
 * (sfc32 generator, Box–Muller transform) and returns it.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { fillGaussian } from "./noise.ts";
 *
 * const a = fillGaussian(new Float32Array(3), 1, 5);
 * const b = fillGaussian(new Float32Array(3), 1, 5);
 * assert.deepEqual(a, b);
 * assert.notDeepEqual(a, fillGaussian(new Float32Array(3), 1, 6));
 * ```
 */
export function fillGaussian(out: Float32Array, seed: number, index: number): Float32Array {
  return Random.stream(seed, index).normals(out);
}

/**
 * Returns `[count, ...shape]` standard normal noise for samples `start .. start + count - 1`.
 * Without `stream`, sample `i` draws from `Random.stream(seed, i)` (as
 * {@linkcode fillGaussian}); with `stream` `k`, from `Random.counter(seed, k, i)`, the numbered
 * streams a sampler uses for its starting noise (`k` 0) and the noise of each step.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { sampleNoise } from "@diffprobe/core";
 *
 * const noise = sampleNoise(7, 100, 2, [32, 32, 3]);
 * assert.deepEqual(noise.shape, [2, 32, 32, 3]);
 * noise.dispose();
 * ```
 */
export function sampleNoise(
  seed: number,
  start: number,
  count: number,
  shape: readonly number[],
  stream?: number,
): tf.Tensor {
  const size = shape.reduce((p, d) => p * d, 1);
  const data = new Float32Array(count * size);
  for (let i = 0; i < count; i++) {
    const random = stream === undefined
      ? Random.stream(seed, start + i)
      : Random.counter(seed, stream, start + i);
    random.normals(data.subarray(i * size, (i + 1) * size));
  }
  return tf.tensor(data, [count, ...shape]);
}
