/**
 * Behaviour of the probing heads: the schedule as `fit` uses it,
 * learning on synthetic problems with known answers, determinism, memory hygiene,
 * persistence and input checks.
 *
 * @module
 */

import * as tf from "@tensorflow/tfjs";
import assert from "node:assert/strict";
import { join } from "node:path";
import { AttentionHead, type Head, type HeadTask, LinearHead, loadHead, MLPHead } from "../mod.ts";
import { Random } from "../src/base/random.ts";
import { learningRateAt } from "../src/optim/lr_schedule.ts";
import { serializeSafetensors } from "../src/io/safetensors.ts";

function assertClose(actual: number, expected: number, tolerance: number, what = "value"): void {
  assert.ok(
    Math.abs(actual - expected) <= tolerance,
    `${what}: expected ${expected} ± ${tolerance}, got ${actual}`,
  );
}

function dataOf(t: tf.Tensor): Float32Array {
  return Float32Array.from(t.dataSync() as Float32Array);
}

/** Predictions as a plain array, disposing the tensor. */
function predictArray(head: Head<HeadTask>, x: tf.Tensor): Float32Array {
  const out = head.predict(x);
  const values = dataOf(out);
  out.dispose();
  return values;
}

/** `n` samples in `[n, d]`, standard normal, from a seeded generator. */
function normalMatrix(rng: Random, n: number, d: number): Float32Array {
  return Float32Array.from({ length: n * d }, () => rng.normal());
}

// ---------------------------------------------------------------------------------------------
// Schedule

Deno.test("fit follows the schedule: each epoch reports the rate of its last step", async () => {
  const x = tf.tensor2d(normalMatrix(Random.seeded(5), 40, 3), [40, 3]);
  const y = Array.from({ length: 40 }, (_, i) => i % 2);
  const head = new LinearHead({ inputShape: [3], outputs: 2 });
  const seen: number[] = [];
  const history = await head.fit(x, y, {
    epochs: 3,
    batchSize: 10, // 4 steps per epoch, 12 in all
    learningRate: 0.01,
    warmupSteps: 2,
    onEpoch: async ({ epoch }) => {
      await new Promise((resolve) => setTimeout(resolve, 1)); // async callbacks are awaited
      seen.push(epoch);
    },
  });
  assert.deepEqual(seen, [1, 2, 3]);
  assert.equal(history.steps, 12);
  const schedule = { peak: 0.01, totalSteps: 12, warmupSteps: 2 };
  assert.deepEqual(
    history.epochs.map((e) => e.lr),
    [3, 7, 11].map((s) => learningRateAt(s, schedule)),
  );
  head.dispose();
  x.dispose();
});

// ---------------------------------------------------------------------------------------------
// Learning problems with known answers

/** Three classes by the argmax of x · W*, keeping points with a clear margin. */
function separable(rng: Random, wTrue: Float32Array, n: number): { x: tf.Tensor2D; y: number[] } {
  const d = 8, k = 3;
  const rows: number[] = [];
  const y: number[] = [];
  while (y.length < n) {
    const x = Array.from({ length: d }, () => rng.normal());
    const scores = Array.from(
      { length: k },
      (_, j) => x.reduce((s, v, i) => s + v * wTrue[i * k + j], 0),
    );
    const sorted = [...scores].sort((a, b) => b - a);
    if (sorted[0] - sorted[1] < 0.5) continue;
    rows.push(...x);
    y.push(scores.indexOf(sorted[0]));
  }
  return { x: tf.tensor2d(rows, [n, d]), y };
}

Deno.test("LinearHead separates linearly separable classes", async () => {
  const rng = Random.seeded(11);
  const wTrue = normalMatrix(rng, 8, 3);
  const train = separable(rng, wTrue, 300);
  const test = separable(rng, wTrue, 200);
  const head = new LinearHead({ inputShape: [8], outputs: 3, seed: 1 });
  await head.fit(train.x, train.y, { epochs: 40, batchSize: 32, learningRate: 0.05 });
  const trainMetrics = head.evaluate(train.x, train.y);
  const testMetrics = head.evaluate(test.x, test.y);
  assert.ok(trainMetrics.accuracy >= 0.99, `train accuracy ${trainMetrics.accuracy}`);
  assert.ok(testMetrics.accuracy >= 0.95, `test accuracy ${testMetrics.accuracy}`);
  head.dispose();
  tf.dispose([train.x, test.x]);
});

Deno.test("LinearHead recovers the weights of a linear regression", async () => {
  const rng = Random.seeded(12);
  const n = 256, d = 5;
  const wTrue = [1.5, -2, 0.5, 0, 3, -1, 0.25, 2, -0.75, 1]; // [5, 2]
  const bTrue = [0.5, -1];
  const xs = normalMatrix(rng, n, d);
  const ys = new Float32Array(n * 2);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < 2; j++) {
      let s = bTrue[j];
      for (let f = 0; f < d; f++) s += xs[i * d + f] * wTrue[f * 2 + j];
      ys[i * 2 + j] = s;
    }
  }
  const x = tf.tensor2d(xs, [n, d]);
  const y = tf.tensor2d(ys, [n, 2]);
  const head = new LinearHead({ inputShape: [d], outputs: 2, task: "regression", seed: 2 });
  await head.fit(x, y, {
    epochs: 80,
    batchSize: 32,
    learningRate: 0.05,
    weightDecay: 0,
    standardize: false, // so the head's weights are directly the regression's
  });
  const w = dataOf(head.weights.get("linear.weight")!);
  const b = dataOf(head.weights.get("linear.bias")!);
  wTrue.forEach((v, i) => assertClose(w[i], v, 0.02, `W[${Math.floor(i / 2)}, ${i % 2}]`));
  bTrue.forEach((v, i) => assertClose(b[i], v, 0.02, `b[${i}]`));
  const { mse, mae, loss } = head.evaluate(x, y);
  assert.ok(mse < 1e-3 && mae < 0.03, `mse ${mse}, mae ${mae}`);
  assert.equal(loss, mse);
  head.dispose();
  tf.dispose([x, y]);
});

Deno.test("MLPHead solves XOR, which a LinearHead cannot", async () => {
  const rng = Random.seeded(13);
  const corners = [[0, 0], [0, 1], [1, 0], [1, 1]];
  const labels = [0, 1, 1, 0];
  const rows: number[] = [];
  const y: number[] = [];
  for (let i = 0; i < 128; i++) {
    rows.push(...corners[i % 4].map((v) => v + 0.05 * rng.normal()));
    y.push(labels[i % 4]);
  }
  const x = tf.tensor2d(rows, [128, 2]);
  const clean = tf.tensor2d(corners);
  const mlp = new MLPHead({ inputShape: [2], outputs: 2, hidden: [16], seed: 3 });
  await mlp.fit(x, y, { epochs: 60, batchSize: 16, learningRate: 0.03 });
  assert.equal(mlp.evaluate(clean, labels).accuracy, 1);
  const linear = new LinearHead({ inputShape: [2], outputs: 2, seed: 3 });
  await linear.fit(x, y, { epochs: 60, batchSize: 16, learningRate: 0.03 });
  assert.ok(linear.evaluate(clean, labels).accuracy <= 0.75);
  mlp.dispose();
  linear.dispose();
  tf.dispose([x, clean]);
});

/**
 * 4×4×4 maps, near-zero everywhere but one cell holding a bump (a fixed pattern across
 * channels, random amplitude); the class is the quadrant of that cell. Every cell has the
 * same chance of holding the bump, so position-free summaries carry no class information.
 */
function bumpMaps(n: number, seed: number): { x: tf.Tensor4D; y: number[] } {
  const rng = Random.seeded(seed);
  const data = new Float32Array(n * 64);
  const y: number[] = [];
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < 64; j++) data[i * 64 + j] = 0.05 * rng.normal();
    const r = rng.int(4), c = rng.int(4);
    const amplitude = rng.uniform(0.8, 1.2);
    for (let ch = 0; ch < 4; ch++) {
      data[i * 64 + (r * 4 + c) * 4 + ch] += ch % 2 === 0 ? amplitude : -amplitude;
    }
    y.push((r >= 2 ? 2 : 0) + (c >= 2 ? 1 : 0));
  }
  return { x: tf.tensor4d(data, [n, 4, 4, 4]), y };
}

Deno.test("AttentionHead learns which quadrant of a 4×4 map holds a bump", async () => {
  const train = bumpMaps(192, 21);
  const test = bumpMaps(200, 22);
  const head = new AttentionHead({
    inputShape: [4, 4, 4],
    outputs: 4,
    dim: 32,
    heads: 4,
    layers: 1,
  });
  await head.fit(train.x, train.y, { epochs: 8, batchSize: 16, learningRate: 1e-2 });
  const { accuracy } = head.evaluate(test.x, test.y);
  assert.ok(accuracy > 0.9, `held-out accuracy ${accuracy}`);
  head.dispose();

  // Control: the same maps averaged over positions leave a linear probe near chance.
  const pooledTrain = train.x.mean([1, 2]);
  const pooledTest = test.x.mean([1, 2]);
  const control = new LinearHead({ inputShape: [4], outputs: 4 });
  await control.fit(pooledTrain, train.y, { epochs: 10, batchSize: 16, learningRate: 1e-2 });
  const chance = control.evaluate(pooledTest, test.y).accuracy;
  assert.ok(chance < 0.45, `pooled control accuracy ${chance}`);
  control.dispose();
  tf.dispose([train.x, test.x, pooledTrain, pooledTest]);
});

// ---------------------------------------------------------------------------------------------
// Determinism, memory, persistence

function smallClassification(seed: number): { x: tf.Tensor2D; y: number[] } {
  const rng = Random.seeded(seed);
  const xs = normalMatrix(rng, 64, 6);
  const y = Array.from({ length: 64 }, (_, i) => (xs[i * 6] + xs[i * 6 + 1] > 0 ? 1 : 0));
  return { x: tf.tensor2d(xs, [64, 6]), y };
}

Deno.test("the same seed gives bit-identical weights and predictions", async () => {
  const { x, y } = smallClassification(31);
  const maps = tf.tensor4d(normalMatrix(Random.seeded(32), 32 * 8, 3), [32, 2, 4, 3]);
  const mapLabels = Array.from({ length: 32 }, (_, i) => i % 3);
  const run = async (seed: number) => {
    const mlp = new MLPHead({ inputShape: [6], outputs: 2, hidden: [8, 8], seed });
    await mlp.fit(x, y, { epochs: 4, batchSize: 8, validationSplit: 0.25, patience: 2 });
    const attention = new AttentionHead({
      inputShape: [2, 4, 3],
      outputs: 3,
      dim: 8,
      heads: 2,
      layers: 1,
      seed,
    });
    await attention.fit(maps, mapLabels, { epochs: 2, batchSize: 8 });
    const result = {
      mlp: predictArray(mlp, x),
      mlpWeights: [...mlp.weights.values()].map(dataOf),
      attention: predictArray(attention, maps),
    };
    mlp.dispose();
    attention.dispose();
    return result;
  };
  const a = await run(7), b = await run(7), c = await run(8);
  assert.deepEqual(a.mlp, b.mlp);
  assert.deepEqual(a.mlpWeights, b.mlpWeights);
  assert.deepEqual(a.attention, b.attention);
  assert.notDeepEqual(a.mlp, c.mlp);
  assert.notDeepEqual(a.attention, c.attention);
  tf.dispose([x, maps]);
});

Deno.test("fit, predict, evaluate, save, load and dispose leave numTensors unchanged", async () => {
  const dir = await Deno.makeTempDir({ prefix: "heads_memory_" });
  try {
    const { x, y } = smallClassification(41);
    const maps = x.reshape([64, 2, 3]);
    const yReg = tf.randomNormal([64, 2], 0, 1, "float32", 4);
    const before = tf.memory().numTensors;
    const heads: Head<HeadTask>[] = [
      new LinearHead({ inputShape: [6], outputs: 2 }),
      new MLPHead({ inputShape: [6], outputs: 2, hidden: [8], activation: "relu" }),
      new AttentionHead({ inputShape: [2, 3], outputs: 2, dim: 8, heads: 2, layers: 1 }),
      new MLPHead({ inputShape: [6], outputs: 2, hidden: [4], task: "regression" }),
    ];
    for (const head of heads) {
      const input = head instanceof AttentionHead ? maps : x;
      const target = head.task === "regression" ? yReg : y;
      const allocated = tf.memory().numTensors;
      await head.fit(input, target, {
        epochs: 3,
        batchSize: 16,
        validationSplit: 0.25,
        patience: 1,
        onEpoch: () => {},
      });
      assert.equal(tf.memory().numTensors, allocated, `${head.className} fit`);
      const out = head.predict(input, { batchSize: 20 });
      assert.equal(tf.memory().numTensors, allocated + 1, `${head.className} predict`);
      out.dispose();
      head.evaluate(input, target);
      assert.equal(tf.memory().numTensors, allocated, `${head.className} evaluate`);
      await assert.rejects(head.fit(input, y.slice(1)), RangeError); // wrong count or shape
      assert.equal(tf.memory().numTensors, allocated, `${head.className} failed fit`);
      await head.save(join(dir, head.className));
      const loaded = await loadHead(join(dir, head.className));
      loaded.dispose();
      assert.equal(tf.memory().numTensors, allocated, `${head.className} save and load`);
    }
    heads.forEach((h) => h.dispose());
    assert.equal(tf.memory().numTensors, before, "after dispose");
    tf.dispose([x, maps, yReg]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("save then load gives identical predictions, options and statistics", async () => {
  const dir = await Deno.makeTempDir({ prefix: "heads_save_" });
  try {
    const { x, y } = smallClassification(51);
    const maps = x.reshape([64, 2, 3]);
    const cases: [Head<HeadTask>, tf.Tensor][] = [
      [new LinearHead({ inputShape: [6], outputs: 2, seed: 5 }), x],
      [new MLPHead({ inputShape: [6], outputs: 2, hidden: [8, 4], activation: "gelu" }), x],
      [new AttentionHead({ inputShape: [2, 3], outputs: 2, dim: 8, heads: 2, layers: 2 }), maps],
    ];
    for (const [head, input] of cases) {
      await head.fit(input, y, { epochs: 2, batchSize: 16 });
      const folder = join(dir, head.className);
      await head.save(folder);
      const manifest = JSON.parse(await Deno.readTextFile(join(folder, "head.json")));
      assert.equal(manifest.className, head.className);
      assert.equal(manifest.standardization.mean.length, 6);
      const generic = await loadHead(folder);
      const specific = head instanceof LinearHead
        ? await LinearHead.load(folder)
        : head instanceof MLPHead
        ? await MLPHead.load(folder)
        : await AttentionHead.load(folder);
      const expected = predictArray(head, input);
      for (const loaded of [generic, specific]) {
        assert.equal(loaded.className, head.className);
        assert.deepEqual(loaded.options, head.options);
        assert.deepEqual(loaded.standardization, head.standardization);
        assert.deepEqual(predictArray(loaded, input), expected);
        loaded.dispose();
      }
      head.dispose();
    }
    await assert.rejects(
      LinearHead.load(join(dir, "MLPHead")),
      /holds a MLPHead, not a LinearHead/,
    );
    await assert.rejects(loadHead(join(dir, "missing")), {
      name: "NotFound",
      message: /Cannot read head\.json ".*missing\/head\.json"/,
    });
    // A weights file that does not fit the options is refused, and nothing leaks.
    const before = tf.memory().numTensors;
    await Deno.writeFile(
      join(dir, "LinearHead", "head.safetensors"),
      serializeSafetensors({
        "linear.weight": { dtype: "F32", shape: [2, 6], data: new Float32Array(12) },
        "linear.bias": { dtype: "F32", shape: [2], data: new Float32Array(2) },
      }),
    );
    await assert.rejects(
      loadHead(join(dir, "LinearHead")),
      /head\.safetensors" tensor "linear\.weight" must have shape \[6, 2\], got \[2, 6\]/,
    );
    assert.equal(tf.memory().numTensors, before);
    tf.dispose([x, maps]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

// ---------------------------------------------------------------------------------------------
// Validation, early stopping, standardisation

Deno.test("patience stops training and restores the weights of the best epoch", async () => {
  const rng = Random.seeded(61);
  // Random labels: the head can only memorise, so the validation loss soon rises.
  const x = tf.tensor2d(normalMatrix(rng, 64, 10), [64, 10]);
  const y = Array.from({ length: 64 }, () => rng.int(2));
  const vx = tf.tensor2d(normalMatrix(rng, 64, 10), [64, 10]);
  const vy = Array.from({ length: 64 }, () => rng.int(2));
  const head = new MLPHead({ inputShape: [10], outputs: 2, hidden: [64], seed: 6 });
  const history = await head.fit(x, y, {
    epochs: 60,
    batchSize: 16,
    learningRate: 0.01,
    validationData: { x: vx, y: vy },
    patience: 3,
  });
  assert.ok(history.stoppedEarly && history.restoredBest);
  assert.ok(history.epochs.length < 60);
  const valLosses = history.epochs.map((e) => e.valLoss!);
  const best = Math.min(...valLosses);
  assert.equal(history.bestEpoch, valLosses.indexOf(best) + 1);
  assert.equal(history.epochs.length, history.bestEpoch! + 3);
  assertClose(head.evaluate(vx, vy).loss, best, 1e-5, "validation loss after restoring");
  head.dispose();
  tf.dispose([x, vx]);
});

Deno.test("standardisation uses training features only and is applied at prediction", async () => {
  const x = tf.tensor2d([[1, 10], [3, 10], [5, 10], [7, 10]]);
  const vx = tf.tensor2d([[100, -5], [200, 50]]);
  const head = new LinearHead({ inputShape: [2], outputs: 2 });
  await head.fit(x, [0, 0, 1, 1], { epochs: 1, validationData: { x: vx, y: [0, 1] } });
  const stats = head.standardization!;
  assert.deepEqual(Array.from(stats.mean), [4, 10]);
  // Column 0: population std √5; column 1 is constant, so it is only centred (std 1).
  assert.deepEqual(Array.from(stats.std), [Math.fround(Math.sqrt(5)), 1]);
  // The head sees (x − mean) / std: its output equals a raw affine map of standardised inputs.
  const w = dataOf(head.weights.get("linear.weight")!),
    b = dataOf(head.weights.get("linear.bias")!);
  const probe = tf.tensor2d([[4 + Math.sqrt(5), 12]]);
  const out = predictArray(head, probe);
  probe.dispose();
  const z = [1, 2];
  assertClose(out[0], z[0] * w[0] + z[1] * w[2] + b[0], 1e-5, "logit 0");
  assertClose(out[1], z[0] * w[1] + z[1] * w[3] + b[1], 1e-5, "logit 1");
  await head.fit(x, [0, 0, 1, 1], { epochs: 1, standardize: false });
  assert.equal(head.standardization, undefined);
  head.dispose();
  tf.dispose([x, vx]);
});

Deno.test("predict batches internally without changing results", async () => {
  const { x, y } = smallClassification(71);
  const head = new AttentionHead({ inputShape: [6], outputs: 2, dim: 8, heads: 2, layers: 1 });
  await head.fit(x, y, { epochs: 1, batchSize: 32 });
  const whole = head.predict(x);
  const batched = head.predict(x, { batchSize: 5 });
  assert.deepEqual(whole.shape, [64, 2]);
  dataOf(whole).forEach((v, i) => assertClose(batched.dataSync()[i], v, 1e-6, `output ${i}`));
  const empty = head.predict(tf.zeros([0, 6]));
  assert.deepEqual(empty.shape, [0, 2]);
  tf.dispose([whole, batched, empty, x]);
  head.dispose();
});

// ---------------------------------------------------------------------------------------------
// Input checks

Deno.test("bad labels are RangeErrors naming the value and its index", async () => {
  const x = tf.zeros([4, 3]);
  const head = new LinearHead({ inputShape: [3], outputs: 3 });
  await assert.rejects(head.fit(x, [0, 1, 3, 2]), {
    name: "RangeError",
    message: /Label at index 2 must be a class index in \[0, 3\), got 3/,
  });
  await assert.rejects(head.fit(x, [0, -1, 1, 2]), {
    name: "RangeError",
    message: /Label at index 1 must be .* got -1/,
  });
  await assert.rejects(head.fit(x, [0, 1, 1.5, 2]), {
    name: "RangeError",
    message: /Label at index 2 must be an integer class index in \[0, 3\), got 1.5/,
  });
  const floatLabels = tf.tensor1d([0, 1, 2, NaN]);
  assert.throws(() => head.evaluate(x, floatLabels), {
    name: "RangeError",
    message: /Label at index 3 must be .* got NaN/,
  });
  await assert.rejects(head.fit(x, [0, 1, 2]), {
    name: "RangeError",
    message: /Labels must be one per sample \(4\), got 3/,
  });
  const column = tf.tensor2d([[0], [1], [2], [0]], [4, 1], "int32");
  await assert.rejects(head.fit(x, column), { name: "RangeError", message: /shape \[4, 1\]/ });
  const good = tf.tensor1d([0, 1, 2, 0], "int32");
  await head.fit(x, good, { epochs: 1 }); // an int32 Tensor1D is accepted
  tf.dispose([x, floatLabels, column, good]);
  head.dispose();
});

Deno.test("NaN or infinite features are RangeErrors naming the sample and position", async () => {
  const head = new MLPHead({ inputShape: [2, 3], outputs: 2, hidden: [4] });
  const values = new Float32Array(4 * 6);
  values[2 * 6 + 1 * 3 + 2] = NaN; // sample 2, position [1, 2]
  const x = tf.tensor3d(values, [4, 2, 3]);
  const message = /Features contain a non-finite value \(NaN\) at sample 2, position \[1, 2\]/;
  await assert.rejects(head.fit(x, [0, 1, 0, 1]), { name: "RangeError", message });
  assert.throws(() => head.predict(x), { name: "RangeError", message });
  assert.throws(() => head.evaluate(x, [0, 1, 0, 1]), { name: "RangeError", message });
  values[2 * 6 + 1 * 3 + 2] = 0;
  values[5] = -Infinity;
  const inf = tf.tensor3d(values, [4, 2, 3]);
  assert.throws(() => head.predict(inf), /\(-Infinity\) at sample 0, position \[1, 2\]/);

  const regression = new LinearHead({ inputShape: [2], outputs: 1, task: "regression" });
  const rx = tf.ones([3, 2]);
  await assert.rejects(regression.fit(rx, [1, NaN, 2]), {
    name: "RangeError",
    message: /Targets contain a non-finite value \(NaN\) at sample 1$/,
  });
  await regression.fit(rx, [1, 2, 3], { epochs: 1 }); // [N] targets with one output
  tf.dispose([x, inf, rx]);
  head.dispose();
  regression.dispose();
});

Deno.test("shape mismatches are RangeErrors naming both shapes", async () => {
  const head = new AttentionHead({ inputShape: [4, 4, 8], outputs: 2, dim: 8, heads: 2 });
  const wrong = tf.zeros([3, 4, 4]);
  assert.throws(() => head.predict(wrong), {
    name: "RangeError",
    message: /shape \[3, 4, 4\], expected \[N, 4, 4, 8\] \(inputShape \[4, 4, 8\]\)/,
  });
  await assert.rejects(head.fit(wrong, [0, 1, 0]), RangeError);
  const regression = new LinearHead({ inputShape: [2], outputs: 3, task: "regression" });
  const x = tf.zeros([5, 2]);
  const y = tf.zeros([5, 2]);
  await assert.rejects(regression.fit(x, y), {
    name: "RangeError",
    message: /Regression targets have shape \[5, 2\], expected \[5, 3\]/,
  });
  tf.dispose([wrong, x, y]);
  head.dispose();
  regression.dispose();
});

Deno.test("bad options are RangeErrors; a disposed head refuses work", async () => {
  assert.throws(
    () => new LinearHead({ inputShape: [3], outputs: 0 }),
    /Outputs must be a positive integer, got 0/,
  );
  assert.throws(() => new LinearHead({ inputShape: [3], outputs: 1 }), /at least 2 outputs/);
  assert.throws(() => new LinearHead({ inputShape: [3, 0], outputs: 2 }), /Input shape/);
  assert.throws(() => new MLPHead({ inputShape: [3], outputs: 2, hidden: [4, 0] }), RangeError);
  assert.throws(
    // @ts-expect-error: not an activation
    () => new MLPHead({ inputShape: [3], outputs: 2, activation: "tanh" }),
    /Activation must be "gelu" or "relu", got "tanh"/,
  );
  assert.throws(
    () => new AttentionHead({ inputShape: [3], outputs: 2, dim: 10, heads: 4 }),
    /dim \(10\) must be divisible by heads \(4\)/,
  );
  assert.throws(
    () => new AttentionHead({ inputShape: [2, 2, 2, 2], outputs: 2 }),
    /\[H, W, C\], \[W, C\] or \[C\]/,
  );
  const before = tf.memory().numTensors;
  const head = new LinearHead({ inputShape: [3], outputs: 2 });
  const x = tf.zeros([4, 3]);
  await assert.rejects(
    head.fit(x, [0, 1, 0, 1], { validationSplit: 1 }),
    /Validation split must be in \[0, 1\)/,
  );
  await assert.rejects(
    head.fit(x, [0, 1, 0, 1], { epochs: 0 }),
    /Epochs must be a positive integer/,
  );
  await assert.rejects(
    head.fit(x, [0, 1, 0, 1], { warmupEpochs: 1, warmupSteps: 1 }),
    /warmupEpochs or warmupSteps, not both/,
  );
  const running = head.fit(x, [0, 1, 0, 1], { epochs: 2 });
  await assert.rejects(head.fit(x, [0, 1, 0, 1]), /This LinearHead is already fitting/);
  await running;
  head.dispose();
  assert.throws(() => head.predict(x), /This LinearHead has been disposed/);
  x.dispose();
  assert.equal(tf.memory().numTensors, before);
});

Deno.test("LinearHead.fitRidge equals the hand-computed ridge solution", async () => {
  // x = [1, 2, 3, 4], y = [2, 4, 5, 4], unstandardised, λ = 0.25 (n = 4):
  // x̄ = 2.5, ȳ = 3.75, Σ(x−x̄)² = 5, Σ(x−x̄)(y−ȳ) = 3.5, w = 3.5 / (5 + 0.25·4) = 7/12,
  // b = 3.75 − 2.5·7/12 = 55/24.
  const before = tf.memory().numTensors;
  const head = new LinearHead({ inputShape: [1], outputs: 1, task: "regression" });
  const x = tf.tensor2d([[1], [2], [3], [4]]);
  const result = await head.fitRidge(x, [2, 4, 5, 4], { penalties: [0.25], standardize: false });
  assert.deepEqual(result, { penalty: 0.25, penalties: [{ penalty: 0.25, validationMse: null }] });
  const probe = tf.tensor2d([[0], [10]]);
  const p = head.predict(probe);
  const [at0, at10] = p.dataSync();
  assert.ok(Math.abs(at0 - 55 / 24) < 1e-5, `${at0}`);
  assert.ok(Math.abs(at10 - (55 / 24 + 70 / 12)) < 1e-5, `${at10}`);
  // Standardised features give the same predictions when λ = 0 (ordinary least squares).
  const std = new LinearHead({ inputShape: [1], outputs: 1, task: "regression" });
  await std.fitRidge(x, [2, 4, 5, 4], { penalties: [0] });
  const q = std.predict(probe);
  assert.ok(Math.abs(q.dataSync()[1] - (3.75 + 0.7 * 7.5)) < 1e-4, `${q.dataSync()}`);
  tf.dispose([p, q, x, probe]);
  head.dispose();
  std.dispose();
  assert.equal(tf.memory().numTensors, before);
});

Deno.test("LinearHead.fitRidge picks the penalty on validation data, for several outputs", async () => {
  const before = tf.memory().numTensors;
  // Two outputs, exactly linear in 3 features: the smallest penalty fits best.
  const rng = Random.seeded(3);
  const make = (n: number) => {
    const x = new Float32Array(n * 3), y = new Float32Array(n * 2);
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < 3; j++) x[3 * i + j] = rng.uniform(-1, 1);
      y[2 * i] = 1 + 2 * x[3 * i] - x[3 * i + 2];
      y[2 * i + 1] = -0.5 * x[3 * i + 1];
    }
    return { x: tf.tensor2d(x, [n, 3]), y: tf.tensor2d(y, [n, 2]) };
  };
  const train = make(64), val = make(16);
  const head = new LinearHead({ inputShape: [3], outputs: 2, task: "regression" });
  const result = await head.fitRidge(train.x, train.y, {
    penalties: [10, 1e-6, 0.1],
    validationData: val,
  });
  assert.equal(result.penalty, 1e-6);
  assert.deepEqual(result.penalties.map((p) => p.penalty), [10, 1e-6, 0.1]);
  const mses = result.penalties.map((p) => p.validationMse!);
  assert.ok(mses[1] < mses[2] && mses[2] < mses[0], `${mses}`);
  const { mse } = head.evaluate(val.x, val.y);
  assert.ok(mse < 1e-9, `${mse}`);
  // It persists like any fitted head.
  const dir = await Deno.makeTempDir();
  await head.save(dir);
  const loaded = await LinearHead.load(dir);
  const [a, b] = [head.predict(val.x), loaded.predict(val.x)];
  assert.deepEqual(a.dataSync(), b.dataSync());
  tf.dispose([a, b, train.x, train.y, val.x, val.y]);
  head.dispose();
  loaded.dispose();
  await Deno.remove(dir, { recursive: true });
  assert.equal(tf.memory().numTensors, before);
});

Deno.test("LinearHead.fitRidge refuses classification, bad penalties and unsolvable systems", async () => {
  const x = tf.tensor2d([[1, 1], [2, 2], [3, 3]]); // two identical columns
  const cls = new LinearHead({ inputShape: [2], outputs: 2 });
  await assert.rejects(cls.fitRidge(x, [0, 1, 0]), TypeError);
  const head = new LinearHead({ inputShape: [2], outputs: 1, task: "regression" });
  await assert.rejects(head.fitRidge(x, [1, 2, 3], { penalties: [] }), /finite numbers >= 0/);
  await assert.rejects(head.fitRidge(x, [1, 2, 3], { penalties: [-1] }), /finite numbers >= 0/);
  await assert.rejects(head.fitRidge(x, [1, 2, 3], { penalties: [0, 1] }), /needs validationData/);
  await assert.rejects(
    head.fitRidge(x, [1, 2, 3], { penalties: [0], standardize: false }),
    /no positive definite system/,
  );
  await assert.rejects(
    head.fitRidge(x, [1, 2], { penalties: [1] }),
    /Regression targets have shape \[2\]/,
  );
  // A penalty makes the collinear system solvable.
  await head.fitRidge(x, [1, 2, 3], { penalties: [1e-3], standardize: false });
  tf.dispose(x);
  cls.dispose();
  head.dispose();
});
