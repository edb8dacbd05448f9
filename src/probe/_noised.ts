/**
 * The noised inputs of one batch on JS arrays: sample `start + i` gets the noise of stream
 * `(seed, start + i)` from `fillGaussian` (so features never depend on the batch size), mixed
 * by the forward process `sqrt(ᾱ_t)·x0 + sqrt(1−ᾱ_t)·ε` in the same float32 operations as
 * `NoiseSchedule.addNoise` (bit-identical to it).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { noiseSchedule } from "../models/schedule.ts";
 * import { noisedBatch } from "./_noised.ts";
 *
 * const schedule = noiseSchedule();
 * const xt = noisedBatch(schedule, new Float32Array(6), 2, 0, 7, 10);
 * assert.equal(xt.length, 6);
 * assert.deepEqual(noisedBatch(schedule, new Float32Array(3), 1, 0, 7, 11), xt.slice(3));
 * ```
 *
 * @module
 */
import { fillGaussian } from "../models/noise.ts";
import type { NoiseSchedule } from "../models/schedule.ts";

/**
 * `x0` (`n` samples, row-major) noised to timestep `t` with the noise streams
 * `(seed, start) … (seed, start + n − 1)`.
 */
export function noisedBatch(
  schedule: NoiseSchedule,
  x0: Float32Array,
  n: number,
  t: number,
  seed: number,
  start: number,
): Float32Array {
  const size = x0.length / n;
  const ab = schedule.alphasCumprod[t];
  const a = Math.fround(Math.sqrt(ab));
  const b = Math.fround(Math.sqrt(Math.fround(1 - ab)));
  const out = new Float32Array(x0.length);
  for (let i = 0; i < n; i++) fillGaussian(out.subarray(i * size, (i + 1) * size), seed, start + i);
  for (let j = 0; j < out.length; j++) {
    out[j] = Math.fround(x0[j] * a) + Math.fround(out[j] * b);
  }
  return out;
}
