/** The wave experiment's baselines (examples/waves/baselines.ts) against hand-computed values. */
import assert from "node:assert/strict";
import { errors, persistence } from "../examples/waves/baselines.ts";

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
