/**
 * Helpers of the wave-height experiment that need no diffusion model: the error measures and
 * the persistence baseline (the last observed height). Ridge regression on the raw window is
 * `LinearHead.fitRidge`, the same solver the probe uses.
 *
 * @module
 */

/** Mean squared and absolute error of predictions against targets. */
export function errors(
  pred: ArrayLike<number>,
  target: ArrayLike<number>,
): { mse: number; mae: number } {
  let se = 0, ae = 0;
  for (let i = 0; i < target.length; i++) {
    const d = pred[i] - target[i];
    se += d * d;
    ae += Math.abs(d);
  }
  return { mse: se / target.length, mae: ae / target.length };
}

/** Persistence: the last value of channel 0 (WVHT) in each `[N, L, C]` window. */
export function persistence(
  inputs: Float32Array,
  n: number,
  length: number,
  channels: number,
): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = inputs[(i * length + length - 1) * channels];
  return out;
}
