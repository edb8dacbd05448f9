/**
 * Closed-form ridge regression against an independent float64 reference: the normal equations
 * summed in float64 and solved by Gaussian elimination with partial pivoting, written here. Both
 * engines of `LinearHead.fitRidge` (the onnx one needs onnxruntime-node and --allow-ffi; its
 * cases are skipped otherwise), and the onnx Gram sums on their own, with more features than one
 * 512-column strip so that the lower-triangle strips and their mirroring are exercised.
 */
import * as tf from "@tensorflow/tfjs";
import assert from "node:assert/strict";
import { LinearHead } from "../src/heads/linear_head.ts";
import { createOnnxGram } from "../src/engine/onnx_gram.ts";
import { onnxRuntimeAvailable } from "../src/engine/ort.ts";
import { Random } from "../src/base/random.ts";

const ORT = await onnxRuntimeAvailable();

/** Random features with per-column offsets and scales (centring and standardising matter). */
function problem(n: number, d: number, k: number, seed: number) {
  const rng = Random.seeded(seed);
  const offset = Float64Array.from({ length: d }, () => rng.uniform(-3, 3));
  const scale = Float64Array.from({ length: d }, () => rng.uniform(0.2, 2));
  const truth = Float64Array.from({ length: d * k }, () => rng.normal() / Math.sqrt(d));
  const x = new Float32Array(n * d), y = new Float32Array(n * k);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < d; j++) x[i * d + j] = offset[j] + scale[j] * rng.normal();
    for (let c = 0; c < k; c++) {
      let s = 0.5 * c + 0.1 * rng.normal();
      for (let j = 0; j < d; j++) s += (x[i * d + j] - offset[j]) / scale[j] * truth[j * k + c];
      y[i * k + c] = s;
    }
  }
  return { x, y };
}

/** Solves `A w = b` (A `[d, d]`, b `[d, k]`) by Gaussian elimination with partial pivoting. */
function gaussSolve(a: Float64Array, b: Float64Array, d: number, k: number): Float64Array {
  const m = Float64Array.from(a), r = Float64Array.from(b);
  for (let col = 0; col < d; col++) {
    let p = col;
    for (let i = col + 1; i < d; i++) {
      if (Math.abs(m[i * d + col]) > Math.abs(m[p * d + col])) p = i;
    }
    for (let j = 0; j < d; j++) [m[col * d + j], m[p * d + j]] = [m[p * d + j], m[col * d + j]];
    for (let c = 0; c < k; c++) [r[col * k + c], r[p * k + c]] = [r[p * k + c], r[col * k + c]];
    for (let i = col + 1; i < d; i++) {
      const f = m[i * d + col] / m[col * d + col];
      if (f === 0) continue;
      for (let j = col; j < d; j++) m[i * d + j] -= f * m[col * d + j];
      for (let c = 0; c < k; c++) r[i * k + c] -= f * r[col * k + c];
    }
  }
  const w = new Float64Array(d * k);
  for (let i = d - 1; i >= 0; i--) {
    for (let c = 0; c < k; c++) {
      let s = r[i * k + c];
      for (let j = i + 1; j < d; j++) s -= m[i * d + j] * w[j * k + c];
      w[i * k + c] = s / m[i * d + i];
    }
  }
  return w;
}

/**
 * The float64 ridge solution on standardised features, mapped back to raw features: the
 * predictions `x·W + b` of the minimiser of `mean((y − z·V − c)²) + λ‖V‖²`, z = (x − μ)/σ.
 */
function reference(
  x: Float32Array,
  y: Float32Array,
  n: number,
  d: number,
  k: number,
  lambda: number,
) {
  const mu = new Float64Array(d), sigma = new Float64Array(d), yBar = new Float64Array(k);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < d; j++) mu[j] += x[i * d + j] / n;
    for (let c = 0; c < k; c++) yBar[c] += y[i * k + c] / n;
  }
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < d; j++) sigma[j] += (x[i * d + j] - mu[j]) ** 2 / n;
  }
  sigma.forEach((v, j) => sigma[j] = Math.sqrt(v));
  const a = new Float64Array(d * d), b = new Float64Array(d * k), z = new Float64Array(d);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < d; j++) z[j] = (x[i * d + j] - mu[j]) / sigma[j];
    for (let p = 0; p < d; p++) {
      for (let q = 0; q < d; q++) a[p * d + q] += z[p] * z[q];
      for (let c = 0; c < k; c++) b[p * k + c] += z[p] * (y[i * k + c] - yBar[c]);
    }
  }
  for (let p = 0; p < d; p++) a[p * d + p] += lambda * n;
  const v = gaussSolve(a, b, d, k);
  return (q: Float32Array, m: number): Float64Array => {
    const out = new Float64Array(m * k);
    for (let i = 0; i < m; i++) {
      for (let c = 0; c < k; c++) {
        let s = yBar[c];
        for (let j = 0; j < d; j++) s += (q[i * d + j] - mu[j]) / sigma[j] * v[j * k + c];
        out[i * k + c] = s;
      }
    }
    return out;
  };
}

for (const engine of ["tfjs", "onnx"] as const) {
  Deno.test({
    name:
      `fitRidge (${engine} engine) equals a float64 normal-equations solve, penalty chosen on validation`,
    ignore: engine === "onnx" && !ORT,
    async fn() {
      const before = tf.memory().numTensors;
      const [n, d, k] = [700, 530, 2];
      const train = problem(n, d, k, 1), val = problem(200, d, k, 2);
      const [x, y] = [tf.tensor2d(train.x, [n, d]), tf.tensor2d(train.y, [n, k])];
      const [vx, vy] = [tf.tensor2d(val.x, [200, d]), tf.tensor2d(val.y, [200, k])];
      const head = new LinearHead({ inputShape: [d], outputs: k, task: "regression" });
      const result = await head.fitRidge(x, y, {
        penalties: [3, 0.05],
        validationData: { x: vx, y: vy },
        engine,
      });
      // The penalty of the lower reference validation MSE is chosen, and its solution matches.
      const mseOf = (pred: Float64Array) =>
        pred.reduce((acc, v, i) => acc + (v - val.y[i]) ** 2, 0) / pred.length;
      const wants = [3, 0.05].map((l) => reference(train.x, train.y, n, d, k, l)(val.x, 200));
      const best = mseOf(wants[0]) < mseOf(wants[1]) ? 0 : 1;
      assert.equal(result.penalty, [3, 0.05][best]);
      const want = wants[best];
      const p = head.predict(vx);
      const got = p.dataSync();
      let err = 0, size = 0;
      want.forEach((v, i) => {
        err = Math.max(err, Math.abs(got[i] - v));
        size = Math.max(size, Math.abs(v));
      });
      const mse = mseOf(want);
      assert.ok(err < 1e-4 * size, `max |Δ| ${err} of predictions up to ${size}`);
      const chosen = result.penalties[best].validationMse!;
      assert.ok(Math.abs(chosen - mse) < 1e-4 * mse, `${chosen} vs ${mse}`);
      tf.dispose([x, y, vx, vy, p]);
      head.dispose();
      assert.equal(tf.memory().numTensors, before);
    },
  });
}

Deno.test({
  name: "the onnx Gram sums equal float64 sums, standardised and over several chunks and strips",
  ignore: !ORT,
  async fn() {
    const [n, d, k] = [60, 1100, 1]; // strips of 512, 512 and 76 columns
    const { x, y } = problem(n, d, k, 5);
    const rng = Random.seeded(6);
    const mean = Float32Array.from({ length: d }, () => rng.uniform(-1, 1));
    const std = Float32Array.from({ length: d }, () => rng.uniform(0.5, 2));
    const gram = await createOnnxGram(d, k, { standardization: { mean, std }, threads: 2 });
    await gram.add(x.subarray(0, 25 * d), y.subarray(0, 25 * k), 25);
    await gram.add(x.subarray(25 * d), y.subarray(25 * k), n - 25);
    const sums = gram.sums();
    gram.dispose();
    const zz = new Float64Array(d * d), z = new Float64Array(d), zy = new Float64Array(d);
    const row = new Float64Array(d);
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < d; j++) row[j] = (x[i * d + j] - mean[j]) / std[j];
      for (let p = 0; p < d; p++) {
        z[p] += row[p];
        zy[p] += row[p] * y[i];
        for (let q = 0; q < d; q++) zz[p * d + q] += row[p] * row[q];
      }
    }
    const close = (got: Float64Array, want: Float64Array, what: string) => {
      // float32 products: errors relative to the largest sum.
      let err = 0, size = 0;
      want.forEach((v, i) => {
        err = Math.max(err, Math.abs(got[i] - v));
        size = Math.max(size, Math.abs(v));
      });
      assert.ok(err < 1e-6 * size, `${what}: max |Δ| ${err} of sums up to ${size}`);
    };
    close(sums.zz, zz, "Σzzᵀ");
    close(sums.zy, zy, "Σzy");
    close(sums.z, z, "Σz");
    close(sums.y, Float64Array.from([y.reduce((a, b) => a + b, 0)]), "Σy");
    // Both triangles, exactly symmetric.
    for (let p = 0; p < d; p += 37) {
      for (let q = 0; q < p; q += 41) assert.equal(sums.zz[p * d + q], sums.zz[q * d + p]);
    }
  },
});
