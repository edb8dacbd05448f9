/** The wave experiment's baselines (examples/waves/baselines.ts) against hand-computed values. */
import assert from "node:assert/strict";
import { errors, fitRidge, persistence } from "../examples/waves/baselines.ts";
import { useBackend } from "../mod.ts";

await useBackend("cpu");

Deno.test("errors: MSE and MAE of hand-computed residuals", () => {
  // Residuals 1, -2, 0.5: MSE (1 + 4 + 0.25) / 3 = 1.75, MAE 3.5 / 3.
  const e = errors([2, 0, 3.5], [1, 2, 3]);
  assert.ok(Math.abs(e.mse - 1.75) < 1e-12);
  assert.ok(Math.abs(e.mae - 3.5 / 3) < 1e-12);
});

Deno.test("persistence predicts the last WVHT of each window (channel 0)", () => {
  // Two windows of L = 3 hours × C = 2 channels, [n, L, C] row-major.
  const inputs = Float32Array.from([1, 9, 2, 9, 3, 9, 4, 8, 5, 8, 6, 8]);
  assert.deepEqual(Array.from(persistence(inputs, 2, 3, 2)), [3, 6]);
});

Deno.test("fitRidge recovers a noiseless linear model and skips penalties that give NaN", () => {
  // y = 2·x0 − 3·x1 + 0.5 on a deterministic grid; the smallest penalty fits it almost exactly.
  const make = (n: number, offset: number) => {
    const x = new Float32Array(n * 2), y = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      x[2 * i] = Math.sin(i + offset);
      x[2 * i + 1] = Math.cos(3 * i + offset);
      y[i] = 2 * x[2 * i] - 3 * x[2 * i + 1] + 0.5;
    }
    return { x, y, n };
  };
  const train = make(200, 0), val = make(50, 1000);
  const ridge = fitRidge(train, val, [1e-6, 1]);
  assert.equal(ridge.lambda, 1e-6);
  const p = ridge.predict(Float32Array.from([1, 0, 0, 1]), 2);
  assert.ok(Math.abs(p[0] - 2.5) < 1e-3 && Math.abs(p[1] - -2.5) < 1e-3, `${p}`);
  // A duplicated column makes the Gram matrix singular: λ = 0 fails, the next penalty is used.
  const dup = (s: { x: Float32Array; y: Float32Array; n: number }) => {
    const x = new Float32Array(s.n * 3);
    for (let i = 0; i < s.n; i++) x.set([s.x[2 * i], s.x[2 * i], s.x[2 * i + 1]], 3 * i);
    return { x, y: s.y, n: s.n };
  };
  const robust = fitRidge(dup(train), dup(val), [0, 1e-3]);
  assert.ok(robust.lambda > 0 || Number.isFinite(robust.predict(dup(val).x, 50)[0]));
  assert.throws(
    () => fitRidge({ x: new Float32Array(2), y: new Float32Array([NaN]), n: 1 }, val, [1]),
    RangeError,
  );
});
