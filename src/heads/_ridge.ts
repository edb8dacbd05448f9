/**
 * Ridge regression's linear algebra in float64: Cholesky factorisation of the penalised Gram
 * matrix and solves for several right-hand sides. Internal to heads/.
 *
 * @module
 */

/**
 * Solves `(A + shift·I) W = B` for symmetric positive definite `A + shift·I`.
 *
 * @param a `[d, d]` row-major, symmetric.
 * @param b `[d, k]` row-major.
 * @param d The dimension.
 * @param k The right-hand sides.
 * @param shift Added to the diagonal.
 * @returns `W` `[d, k]`, or null when the matrix is not numerically positive definite (a pivot
 *   below 1e-12 of its diagonal entry).
 */
export function solveShiftedCholesky(
  a: Float64Array,
  b: Float64Array,
  d: number,
  k: number,
  shift: number,
): Float64Array | null {
  const l = new Float64Array(d * d);
  for (let i = 0; i < d; i++) {
    const li = i * d;
    for (let j = 0; j <= i; j++) {
      const lj = j * d;
      let s = a[li + j] + (i === j ? shift : 0);
      for (let m = 0; m < j; m++) s -= l[li + m] * l[lj + m];
      if (i === j) {
        // A pivot lost to rounding (relative to the diagonal) means a singular matrix.
        if (!(s > 1e-12 * (Math.abs(a[li + i]) + shift)) || !Number.isFinite(s)) return null;
        l[li + i] = Math.sqrt(s);
      } else {
        l[li + j] = s / l[lj + j];
      }
    }
  }
  const w = new Float64Array(d * k);
  const y = new Float64Array(d);
  for (let c = 0; c < k; c++) {
    for (let i = 0; i < d; i++) {
      let s = b[i * k + c];
      for (let m = 0; m < i; m++) s -= l[i * d + m] * y[m];
      y[i] = s / l[i * d + i];
    }
    for (let i = d - 1; i >= 0; i--) {
      let s = y[i];
      for (let m = i + 1; m < d; m++) s -= l[m * d + i] * w[m * k + c];
      w[i * k + c] = s / l[i * d + i];
    }
  }
  return w;
}
