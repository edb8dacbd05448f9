/**
 * Baselines of the wave-height experiment that need no diffusion model: persistence (the last
 * observed height) and ridge regression on the raw window, with its penalty chosen on the
 * validation split.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";

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

/** Solves (A + λI) w = b for symmetric positive definite A (Cholesky, float64). */
function solveRidge(a: Float64Array, b: Float64Array, d: number, lambda: number): Float64Array {
  const l = new Float64Array(d * d);
  for (let i = 0; i < d; i++) {
    for (let j = 0; j <= i; j++) {
      let s = a[i * d + j] + (i === j ? lambda : 0);
      for (let k = 0; k < j; k++) s -= l[i * d + k] * l[j * d + k];
      l[i * d + j] = i === j ? Math.sqrt(Math.max(s, 1e-12)) : s / l[j * d + j];
    }
  }
  const y = new Float64Array(d);
  for (let i = 0; i < d; i++) {
    let s = b[i];
    for (let k = 0; k < i; k++) s -= l[i * d + k] * y[k];
    y[i] = s / l[i * d + i];
  }
  const w = new Float64Array(d);
  for (let i = d - 1; i >= 0; i--) {
    let s = y[i];
    for (let k = i + 1; k < d; k++) s -= l[k * d + i] * w[k];
    w[i] = s / l[i * d + i];
  }
  return w;
}

/** A fitted ridge regression on flattened windows (with an intercept, not penalised). */
export interface Ridge {
  /** The chosen penalty. */
  lambda: number;
  /** Predicts `[n]` values from `[n, d]` rows. */
  predict(x: Float32Array, n: number): Float32Array;
}

/**
 * Fits ridge regression on `[n, d]` rows, trying each penalty and keeping the one with the
 * lowest validation MSE.
 */
export function fitRidge(
  train: { x: Float32Array; y: Float32Array; n: number },
  val: { x: Float32Array; y: Float32Array; n: number },
  lambdas: readonly number[] = [1e-4, 1e-3, 1e-2, 1e-1, 1, 10],
): Ridge {
  const d = train.x.length / train.n;
  // Centre features and target so the intercept drops out of the penalised system.
  const mean = new Float64Array(d);
  for (let i = 0; i < train.n; i++) for (let j = 0; j < d; j++) mean[j] += train.x[i * d + j];
  mean.forEach((v, j) => (mean[j] = v / train.n));
  let yMean = 0;
  for (let i = 0; i < train.n; i++) yMean += train.y[i];
  yMean /= train.n;
  const [gram, xty] = tf.tidy(() => {
    const x = tf.sub(tf.tensor2d(train.x, [train.n, d]), tf.tensor1d(Float32Array.from(mean)));
    const y = tf.sub(tf.tensor2d(train.y, [train.n, 1]), yMean);
    return [tf.matMul(x, x, true, false).dataSync(), tf.matMul(x, y, true, false).dataSync()];
  });
  const a = Float64Array.from(gram), b = Float64Array.from(xty);
  const model = (lambda: number): Ridge => {
    const w = solveRidge(a, b, d, lambda * train.n);
    let bias = yMean;
    for (let j = 0; j < d; j++) bias -= w[j] * mean[j];
    return {
      lambda,
      predict(x, n) {
        const out = new Float32Array(n);
        for (let i = 0; i < n; i++) {
          let s = bias;
          for (let j = 0; j < d; j++) s += w[j] * x[i * d + j];
          out[i] = s;
        }
        return out;
      },
    };
  };
  let best: { ridge: Ridge; mse: number } | null = null;
  for (const lambda of lambdas) {
    const ridge = model(lambda);
    const { mse } = errors(ridge.predict(val.x, val.n), val.y);
    // A penalty too small for the conditioning of the (float32) Gram matrix gives NaN: skip it.
    if (Number.isFinite(mse) && (!best || mse < best.mse)) best = { ridge, mse };
  }
  if (!best) {
    throw new RangeError(`Ridge regression failed for every penalty in [${lambdas}]`);
  }
  return best.ridge;
}
