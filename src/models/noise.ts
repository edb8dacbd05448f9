/**
 * Seeded Gaussian noise that is a function of `(seed, sample index)` only: sample 17 gets the
 * same noise whether it is drawn in a batch of 1 or of 256, so features never depend on the
 * batch size.
 *
 * @example
 * ```ts
 * import { sampleNoise } from "./noise.ts";
 *
 * const all = sampleNoise(0, 0, 4, [2, 2, 3]);
 * const last = sampleNoise(0, 3, 1, [2, 2, 3]);
 * console.log(all.slice(3).arraySync().toString() === last.arraySync().toString()); // true
 * ```
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";

/** A 32-bit mix of two integers (a murmur3-style finaliser). */
function mix(a: number, b: number): number {
  let h = Math.imul(a ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(b + 0x632be5ab, 0xc2b2ae35);
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/**
 * Fills `out` with standard normal values from the stream `(seed, index)`
 * (sfc32 generator, Box–Muller transform).
 *
 * @example
 * ```ts
 * import { fillGaussian } from "./noise.ts";
 *
 * const a = fillGaussian(new Float32Array(3), 1, 5);
 * const b = fillGaussian(new Float32Array(3), 1, 5);
 * console.log(a.toString() === b.toString()); // true
 * ```
 */
export function fillGaussian(out: Float32Array, seed: number, index: number): Float32Array {
  let a = mix(seed, index), b = mix(index, seed ^ 0x5bd1e995), c = mix(seed + 1, index + 1);
  let d = 1;
  const next = () => {
    const t = (((a + b) >>> 0) + d) >>> 0;
    d = (d + 1) >>> 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) >>> 0;
    c = ((c << 21) | (c >>> 11)) + t >>> 0;
    return (t + 0.5) / 4294967296; // (0, 1)
  };
  for (let i = 0; i < 12; i++) next();
  for (let i = 0; i < out.length; i += 2) {
    const r = Math.sqrt(-2 * Math.log(next()));
    const theta = 2 * Math.PI * next();
    out[i] = r * Math.cos(theta);
    if (i + 1 < out.length) out[i + 1] = r * Math.sin(theta);
  }
  return out;
}

/**
 * Returns `[count, ...shape]` standard normal noise for samples `start .. start + count - 1`.
 *
 * @example
 * ```ts
 * import { sampleNoise } from "./noise.ts";
 *
 * console.log(sampleNoise(7, 100, 2, [32, 32, 3]).shape); // [2, 32, 32, 3]
 * ```
 */
export function sampleNoise(
  seed: number,
  start: number,
  count: number,
  shape: readonly number[],
): tf.Tensor {
  const size = shape.reduce((p, d) => p * d, 1);
  const data = new Float32Array(count * size);
  for (let i = 0; i < count; i++) {
    fillGaussian(data.subarray(i * size, (i + 1) * size), seed, start + i);
  }
  return tf.tensor(data, [count, ...shape]);
}
