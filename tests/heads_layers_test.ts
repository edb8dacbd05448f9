import * as tf from "@tensorflow/tfjs";
import assert from "node:assert/strict";
import { gelu, layerNorm, softmax } from "../src/heads/_layers.ts";
import { useBackend } from "../mod.ts";

const maxDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
};

for (const backend of ["cpu", "wasm"] as const) {
  Deno.test(`softmax and its written-out gradient equal tf.softmax's on ${backend}`, async () => {
    await useBackend(backend);
    const before = tf.memory().numTensors;
    // Large logits too: the shift by the row maximum keeps exp finite.
    const x = tf.tidy(() => tf.randomNormal([3, 4, 17], 0, 1, "float32", 7).mul(tf.scalar(30)));
    const w = tf.randomNormal([3, 4, 17], 0, 1, "float32", 8);
    const ours = tf.grads((v: tf.Tensor) => softmax(v).mul(w).sum())([x]);
    const theirs = tf.grads((v: tf.Tensor) => tf.softmax(v).mul(w).sum())([x]);
    const y = softmax(x), ref = tf.softmax(x);
    assert.ok(maxDiff(y.dataSync(), ref.dataSync()) < 1e-6);
    assert.ok(maxDiff(ours[0].dataSync(), theirs[0].dataSync()) < 1e-5);
    assert.ok(ours[0].dataSync().every(Number.isFinite));
    tf.dispose([x, w, ...ours, ...theirs, y, ref]);
    assert.equal(tf.memory().numTensors, before);
  });
}

Deno.test("layerNorm matches the hand-computed normalisation", async () => {
  await useBackend("cpu");
  // Row [1, 2, 3, 6]: mean 3, biased variance (4 + 1 + 0 + 9) / 4 = 3.5.
  const y = layerNorm(
    tf.tensor2d([[1, 2, 3, 6]]),
    tf.tensor1d([1, 2, 1, 1]),
    tf.tensor1d([0, 0, 1, 0]),
  );
  const s = Math.sqrt(3.5 + 1e-5);
  const expected = [-2 / s, 2 * (-1 / s), 0 / s + 1, 3 / s];
  assert.ok(maxDiff(y.dataSync(), expected) < 1e-6);
});

Deno.test("gelu's written-out gradient equals the gradient of its formula", async () => {
  await useBackend("cpu");
  const x = tf.linspace(-6, 6, 97);
  const formula = (v: tf.Tensor) => v.mul(tf.erf(v.mul(Math.SQRT1_2)).add(1)).mul(0.5);
  const ours = tf.grad((v: tf.Tensor) => gelu(v).sum())(x);
  const theirs = tf.grad((v: tf.Tensor) => formula(v).sum())(x);
  assert.ok(maxDiff(ours.dataSync(), theirs.dataSync()) < 1e-5);
  // Hand-computed: Φ(1) + φ(1) = 0.841345 + 0.241971.
  const at1 = tf.grad((v: tf.Tensor) => gelu(v).sum())(tf.tensor1d([1]));
  assert.ok(Math.abs(at1.dataSync()[0] - 1.083316) < 1e-5);
});
