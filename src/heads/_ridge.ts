/**
 * Ridge regression's linear algebra in float64: the centred normal equations from raw sums, the
 * Cholesky factorisation of the penalised Gram matrix, and solves for several right-hand sides.
 * Internal to heads/.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { solveShiftedCholesky } from "./_ridge.ts";
 *
 * // (diag(3, 8) + 1·I) w = [8, 18]  →  w = [2, 2]
 * const w = solveShiftedCholesky(new Float64Array([3, 0, 0, 8]), new Float64Array([8, 18]), 2, 1, 1);
 * assert.deepEqual([...w!], [2, 2]);
 * ```
 *
 * @module
 */

/** The raw sums over `n` rows: `Σzzᵀ` `[d, d]`, `Σzyᵀ` `[d, k]`, `Σz` `[d]`, `Σy` `[k]`. */
export interface RidgeSums {
  zz: Float64Array;
  zy: Float64Array;
  z: Float64Array;
  y: Float64Array;
}

/** The centred normal equations and the means they were centred by. */
export interface RidgeSystem {
  /** `Σzzᵀ − n·μμᵀ`, `[d, d]`. */
  a: Float64Array;
  /** `Σzyᵀ − n·μȳᵀ`, `[d, k]`. */
  b: Float64Array;
  /** Feature means μ. */
  mu: Float64Array;
  /** Target means ȳ. */
  yBar: Float64Array;
}

/**
 * Centres raw sums over `n` rows: `A = Σzzᵀ − n·μμᵀ`, `B = Σzyᵀ − n·μ·ȳᵀ`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { centredSystem } from "./_ridge.ts";
 *
 * // Rows z = 1, 3 and y = 2, 6: μ = 2, ȳ = 4, A = 10 − 8, B = 20 − 16.
 * const s = centredSystem({ zz: new Float64Array([10]), zy: new Float64Array([20]),
 *   z: new Float64Array([4]), y: new Float64Array([8]) }, 2);
 * assert.deepEqual([...s.a, ...s.b, ...s.mu, ...s.yBar], [2, 4, 2, 4]);
 * ```
 */
export function centredSystem(sums: RidgeSums, n: number): RidgeSystem {
  const d = sums.z.length, k = sums.y.length;
  const mu = sums.z.map((v) => v / n), yBar = sums.y.map((v) => v / n);
  const a = new Float64Array(d * d), b = new Float64Array(d * k);
  for (let i = 0; i < d; i++) {
    const nmi = n * mu[i];
    for (let j = 0; j < d; j++) a[i * d + j] = sums.zz[i * d + j] - nmi * mu[j];
    for (let c = 0; c < k; c++) b[i * k + c] = sums.zy[i * k + c] - nmi * yBar[c];
  }
  return { a, b, mu, yBar };
}

/**
 * The lower Cholesky factor `L` (row-major `[d, d]`) of `A + shift·I`, or null when that is
 * not numerically positive definite (a pivot below 1e-12 of its diagonal entry). Row-oriented
 * (Cholesky–Banachiewicz), four rows at a time so that each earlier row is read once per four:
 * the same operations in the same order as one row at a time.
 */
function choleskyRows(a: Float64Array, d: number, shift: number): Float64Array | null {
  const l = new Float64Array(d * d);
  for (let i0 = 0; i0 < d; i0 += 4) {
    const rows = Math.min(4, d - i0);
    if (rows === 4) offDiagonalFour(a, l, d, i0);
    else {
      for (let r = 0; r < rows; r++) offDiagonalOne(a, l, d, i0 + r, i0);
    }
    // The diagonal block, one row at a time.
    for (let i = i0; i < i0 + rows; i++) {
      const li = i * d;
      for (let j = i0; j <= i; j++) {
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
  }
  return l;
}

/** Entries `L[i, 0:end]` of one row `i`. */
function offDiagonalOne(a: Float64Array, l: Float64Array, d: number, i: number, end: number) {
  const li = i * d;
  for (let j = 0; j < end; j++) {
    const lj = j * d;
    let s = a[li + j];
    for (let m = 0; m < j; m++) s -= l[li + m] * l[lj + m];
    l[li + j] = s / l[lj + j];
  }
}

/**
 * Entries `L[i0 + r, 0:i0]` of four rows, two columns at a time: each read of an earlier row
 * serves four rows, each read of these rows two columns.
 */
function offDiagonalFour(a: Float64Array, l: Float64Array, d: number, i0: number) {
  const [r0, r1, r2, r3] = [i0 * d, (i0 + 1) * d, (i0 + 2) * d, (i0 + 3) * d];
  let j = 0;
  for (; j + 1 < i0; j += 2) {
    const lj = j * d, lk = lj + d;
    let s0 = a[r0 + j], s1 = a[r1 + j], s2 = a[r2 + j], s3 = a[r3 + j];
    let t0 = a[r0 + j + 1], t1 = a[r1 + j + 1], t2 = a[r2 + j + 1], t3 = a[r3 + j + 1];
    for (let m = 0; m < j; m++) {
      const v = l[lj + m], w = l[lk + m];
      const x0 = l[r0 + m], x1 = l[r1 + m], x2 = l[r2 + m], x3 = l[r3 + m];
      s0 -= x0 * v;
      s1 -= x1 * v;
      s2 -= x2 * v;
      s3 -= x3 * v;
      t0 -= x0 * w;
      t1 -= x1 * w;
      t2 -= x2 * w;
      t3 -= x3 * w;
    }
    const p = l[lj + j], w = l[lk + j], q = l[lk + j + 1];
    l[r0 + j] = s0 /= p;
    l[r1 + j] = s1 /= p;
    l[r2 + j] = s2 /= p;
    l[r3 + j] = s3 /= p;
    l[r0 + j + 1] = (t0 - s0 * w) / q;
    l[r1 + j + 1] = (t1 - s1 * w) / q;
    l[r2 + j + 1] = (t2 - s2 * w) / q;
    l[r3 + j + 1] = (t3 - s3 * w) / q;
  }
  for (; j < i0; j++) {
    const lj = j * d;
    let s0 = a[r0 + j], s1 = a[r1 + j], s2 = a[r2 + j], s3 = a[r3 + j];
    for (let m = 0; m < j; m++) {
      const v = l[lj + m];
      s0 -= l[r0 + m] * v;
      s1 -= l[r1 + m] * v;
      s2 -= l[r2 + m] * v;
      s3 -= l[r3 + m] * v;
    }
    const p = l[lj + j];
    l[r0 + j] = s0 / p;
    l[r1 + j] = s1 / p;
    l[r2 + j] = s2 / p;
    l[r3 + j] = s3 / p;
  }
}

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
  const l = choleskyRows(a, d, shift);
  if (!l) return null;
  const w = new Float64Array(d * k);
  const y = new Float64Array(d);
  const x = new Float64Array(d);
  for (let c = 0; c < k; c++) {
    for (let i = 0; i < d; i++) {
      let s = b[i * k + c];
      const li = i * d;
      for (let m = 0; m < i; m++) s -= l[li + m] * y[m];
      y[i] = s / l[li + i];
    }
    // Lᵀx = y by columns of Lᵀ (rows of L): each solved x[i] is subtracted from the rest.
    x.set(y);
    for (let i = d - 1; i >= 0; i--) {
      const li = i * d;
      const xi = x[i] / l[li + i];
      x[i] = xi;
      for (let m = 0; m < i; m++) x[m] -= l[li + m] * xi;
    }
    for (let i = 0; i < d; i++) w[i * k + c] = x[i];
  }
  return w;
}
