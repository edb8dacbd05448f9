/**
 * The optimiser and the learning-rate schedule shared by heads and diffusion training: AdamW
 * against updates computed by hand (in float64, as `torch.optim.AdamW` defines them) and step by
 * step in float32 in PyTorch's order, its decay selection, missing gradients and exact resume
 * from a saved state; the warm-up + cosine schedule against hand-computed rates.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import assert from "node:assert/strict";
import { AdamW } from "../src/optim/adamw.ts";
import { learningRateAt } from "../src/optim/lr_schedule.ts";

function assertClose(actual: number, expected: number, tolerance: number, what = "value"): void {
  assert.ok(
    Math.abs(actual - expected) <= tolerance,
    `${what}: expected ${expected} ± ${tolerance}, got ${actual}`,
  );
}

Deno.test("AdamW: two steps match a hand-computed update (decoupled weight decay)", () => {
  const before = tf.memory().numTensors;
  const p = tf.tidy(() => tf.variable(tf.tensor1d([0.5, -1.5, 2])));
  const opt = new AdamW([p], { beta1: 0.9, beta2: 0.99, epsilon: 1e-8, weightDecay: 0.1 });
  const grads = [[0.2, -0.4, 0], [-0.1, 0.3, 1]];
  const lrs = [0.01, 0.02];
  // By hand, in float64, as torch.optim.AdamW.
  const want = [0.5, -1.5, 2];
  const m = [0, 0, 0], v = [0, 0, 0];
  grads.forEach((g, step) => {
    const t = step + 1, lr = lrs[step];
    for (let i = 0; i < 3; i++) {
      want[i] *= 1 - lr * 0.1;
      m[i] = 0.9 * m[i] + 0.1 * g[i];
      v[i] = 0.99 * v[i] + 0.01 * g[i] * g[i];
      const denom = Math.sqrt(v[i]) / Math.sqrt(1 - 0.99 ** t) + 1e-8;
      want[i] -= (lr / (1 - 0.9 ** t)) * (m[i] / denom);
    }
    const g1 = tf.tensor1d(g);
    opt.step([g1], lr);
    g1.dispose();
  });
  const got = p.dataSync();
  want.forEach((w, i) => assert.ok(Math.abs(got[i] - w) < 1e-6, `p[${i}] = ${got[i]}, want ${w}`));
  assert.equal(opt.iterations, 2);
  opt.dispose();
  p.dispose();
  assert.equal(tf.memory().numTensors, before);
});

Deno.test("AdamW is bit-exact with PyTorch's order of float32 operations", () => {
  const f = Math.fround;
  const b1 = 0.9, b2 = 0.999, eps = 1e-8, wd = 0.05;
  const start = [0.3, -1.7, 2.5, 1e-3];
  const grads = [[0.25, -0.5, 3, 1e-4], [-0.125, 0.3, -1, 2e-4], [0.7, 0.01, 0.2, -3e-4]];
  const lrs = [1e-3, 3e-3, 2e-3];
  const p = tf.variable(tf.tensor1d(start));
  const opt = new AdamW([p], { beta1: b1, beta2: b2, epsilon: eps, weightDecay: wd });
  // Each operation rounded to float32, scalars computed in float64 as PyTorch's Python does:
  // p·(1 − lr·wd); m = β1·m + (1 − β1)·g; v = β2·v + (1 − β2)·g²;
  // denom = sqrt(v) / sqrt(1 − β2ᵗ) + ε; p − (m / denom) · lr / (1 − β1ᵗ).
  const want = start.map(f), m = [0, 0, 0, 0], v = [0, 0, 0, 0];
  grads.forEach((g, s) => {
    const t = s + 1, lr = lrs[s];
    const decay = f(1 - lr * wd), step = f(lr / (1 - b1 ** t)), c2 = f(Math.sqrt(1 - b2 ** t));
    for (let i = 0; i < want.length; i++) {
      const gi = f(g[i]);
      m[i] = f(f(m[i] * f(b1)) + f(gi * f(1 - b1)));
      v[i] = f(f(v[i] * f(b2)) + f(f(gi * gi) * f(1 - b2)));
      const denom = f(f(f(Math.sqrt(v[i])) / c2) + f(eps));
      want[i] = f(f(want[i] * decay) - f(f(m[i] / denom) * step));
    }
    const gt = tf.tensor1d(g);
    opt.step([gt], lr);
    gt.dispose();
  });
  assert.deepEqual(Array.from(p.dataSync()), want);
  opt.dispose();
  p.dispose();
});

Deno.test("AdamW matches the closed-form update on a scalar over two steps", () => {
  const before = tf.memory().numTensors;
  const p = tf.tidy(() => tf.variable(tf.scalar(1)));
  const opt = new AdamW([p], { weightDecay: 0.01 }); // β1 0.9, β2 0.999, ε 1e-8
  const lr = 0.1;
  let g = tf.scalar(0.5);
  opt.step([g], lr);
  g.dispose();
  // Decay: 1 · (1 − 0.1 · 0.01) = 0.999. m = 0.05, v = 0.00025; m̂ = 0.5, v̂ = 0.25.
  // p = 0.999 − 0.1 · 0.5 / (0.5 + 1e-8) = 0.899000002.
  assertClose(p.dataSync()[0], 0.899000002, 1e-6, "after step 1");
  g = tf.scalar(-0.2);
  opt.step([g], lr);
  g.dispose();
  // Decay: 0.899000002 · 0.999. m = 0.9 · 0.05 − 0.1 · 0.2 = 0.025,
  // v = 0.999 · 0.00025 + 0.001 · 0.04 = 0.00028975; m̂ = 0.025 / 0.19, v̂ = 0.00028975 / 0.001999.
  const expected = 0.899000002 * 0.999 -
    0.1 * (0.025 / 0.19) / (Math.sqrt(0.00028975 / 0.001999) + 1e-8);
  assertClose(p.dataSync()[0], expected, 1e-6, "after step 2");
  assertClose(expected, 0.86354042, 1e-8, "hand value");
  assert.equal(opt.iterations, 2);
  opt.dispose();
  p.dispose();
  assert.equal(tf.memory().numTensors, before);
});

Deno.test("AdamW decays only the selected variables, and skips missing gradients", () => {
  const before = tf.memory().numTensors;
  const [w, b, c] = tf.tidy(() => [
    tf.variable(tf.tensor1d([2, -4])),
    tf.variable(tf.tensor1d([2, -4])),
    tf.variable(tf.tensor1d([2, -4])),
  ]);
  const opt = new AdamW([w, b, c], { weightDecay: 0.5, decay: (v) => v !== b });
  const grads = [tf.zeros([2]), tf.zeros([2]), undefined];
  opt.step(grads, 0.1); // zero gradient: only the decay moves w, by a factor 1 − 0.05
  tf.dispose(grads.filter((g) => g !== undefined));
  assert.deepEqual(Array.from(w.dataSync()), [1.9, -3.8].map(Math.fround));
  assert.deepEqual(Array.from(b.dataSync()), [2, -4]);
  assert.deepEqual(Array.from(c.dataSync()), [2, -4]); // no gradient: not even decayed
  opt.dispose();
  tf.dispose([w, b, c]);
  assert.equal(tf.memory().numTensors, before);
});

Deno.test("AdamW resumed from its saved state continues bit for bit", () => {
  const gradsAt = (s: number) => tf.tensor1d([Math.sin(s + 1), Math.cos(3 * s), 0.1 * s - 0.2]);
  const run = (split: number | undefined): Float32Array => {
    const p = tf.variable(tf.tensor1d([0.4, -0.2, 1.3]));
    let opt = new AdamW([p], { weightDecay: 0.02 });
    for (let s = 0; s < 6; s++) {
      if (s === split) {
        const saved = {
          iterations: opt.iterations,
          m: opt.state().m.map((t) => t.clone()),
          v: opt.state().v.map((t) => t.clone()),
        };
        opt.dispose();
        opt = new AdamW([p], { weightDecay: 0.02 });
        opt.loadState(saved);
        tf.dispose([...saved.m, ...saved.v]);
      }
      const g = gradsAt(s);
      opt.step([g], 1e-2 * (s + 1));
      g.dispose();
    }
    const out = p.dataSync() as Float32Array;
    opt.dispose();
    p.dispose();
    return out;
  };
  assert.deepEqual(run(3), run(undefined));
});

Deno.test("AdamW refuses bad options, gradients and states with the value named", () => {
  const p = tf.variable(tf.zeros([2]));
  assert.throws(() => new AdamW([p], { beta1: 1 }), {
    name: "RangeError",
    message: "AdamW beta1 must be a number in [0, 1), got 1",
  });
  assert.throws(() => new AdamW([p], { weightDecay: -1 }), /Weight decay .* got -1/);
  assert.throws(() => new AdamW([p], { epsilon: NaN }), /epsilon .* got NaN/);
  const opt = new AdamW([p]);
  assert.throws(() => opt.step([], 0.1), /one per variable \(1\), got 0/);
  const g = tf.zeros([2]);
  assert.throws(() => opt.step([g], Infinity), /Learning rate .* got Infinity/);
  const wrong = tf.zeros([3]);
  assert.throws(
    () => opt.loadState({ iterations: 1, m: [wrong], v: [wrong] }),
    /m\[0\] must have the variable's shape \[2\], got \[3\]/,
  );
  opt.dispose();
  assert.throws(() => opt.step([g], 0.1), /disposed/);
  tf.dispose([p, g, wrong]);
});

Deno.test("learning rate: linear warm-up then half a cosine to zero", () => {
  const options = { peak: 1e-3, totalSteps: 10, warmupSteps: 2 };
  const expected = [
    0.5e-3, // (0 + 1) / 2 of the peak
    1e-3, // end of warm-up
    1e-3, // cosine at progress 0
    1e-3 * (1 + Math.cos(Math.PI / 8)) / 2, // progress 1/8: 0.00096194
    1e-3 * (1 + Math.SQRT1_2) / 2, // progress 2/8: 0.00085355
    1e-3 * (1 + Math.cos(3 * Math.PI / 8)) / 2, // 0.00069134
    0.5e-3, // progress 1/2
    1e-3 * (1 - Math.cos(3 * Math.PI / 8)) / 2, // 0.00030866
    1e-3 * (1 - Math.SQRT1_2) / 2, // 0.00014645
    1e-3 * (1 - Math.cos(Math.PI / 8)) / 2, // 0.0000380602
  ];
  expected.forEach((lr, step) =>
    assertClose(learningRateAt(step, options), lr, 1e-15, `step ${step}`)
  );
  assertClose(learningRateAt(3, options), 0.00096193977, 1e-11, "step 3 by hand");
  assert.equal(learningRateAt(10, options), 0);
  assert.equal(learningRateAt(0, { peak: 0.1, totalSteps: 4 }), 0.1);
  assertClose(learningRateAt(2, { peak: 0.1, totalSteps: 4 }), 0.05, 1e-15);
});

Deno.test("learning rate: constant after warm-up, a cosine floor, and checked options", () => {
  const o = { peak: 1e-3, warmupSteps: 4, totalSteps: 14 };
  assert.equal(learningRateAt(0, o), 2.5e-4);
  assert.equal(learningRateAt(3, o), 1e-3);
  assertClose(learningRateAt(9, o), 5e-4, 1e-12);
  assert.equal(learningRateAt(9, { ...o, schedule: "constant" }), 1e-3);
  assertClose(learningRateAt(9, { ...o, minRatio: 0.2 }), 2e-4 + 8e-4 / 2, 1e-15);
  assert.equal(learningRateAt(20, { ...o, minRatio: 0.2 }), 2e-4);
  assert.throws(() => learningRateAt(-1, o), {
    name: "RangeError",
    message: "Step must be a non-negative integer, got -1",
  });
  assert.throws(() => learningRateAt(0, { ...o, peak: NaN }), /Learning rate .* got NaN/);
  assert.throws(() => learningRateAt(0, { ...o, minRatio: 2 }), /ratio .* got 2/);
  assert.throws(
    // @ts-expect-error: a schedule that does not exist
    () => learningRateAt(0, { ...o, schedule: "linear" }),
    { name: "TypeError", message: /schedule must be one of .* got "linear"/ },
  );
});
