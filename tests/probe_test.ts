/**
 * The probing workflow end to end on the tiny diffusers checkpoint: extraction + head fitting +
 * sweep leave no tensors behind, and the sweep's rows are the metrics of heads trained on exactly
 * the features extractFeatures returns.
 */
import * as tf from "@tensorflow/tfjs";
import assert from "node:assert/strict";
import { loadBackbone } from "../src/models/backbone.ts";
import { freeze } from "../src/probe/freeze.ts";
import { extractFeatures } from "../src/probe/extract.ts";
import { tapBlock } from "../src/probe/tap.ts";
import { sweep } from "../src/probe/sweep.ts";
import { LinearHead } from "../mod.ts";
import { fixture } from "./_fixtures.ts";

const unet = freeze(await loadBackbone(fixture("tiny-unet2d")));

/** Two classes the backbone can tell apart: bright top half vs bright bottom half. */
function halves(n: number, seed: number): { x: tf.Tensor4D; y: number[] } {
  const y = Array.from({ length: n }, (_, i) => i % 2);
  const x = tf.tidy(() => {
    const noise = tf.randomUniform([n, 16, 16, 3], -0.3, 0.3, "float32", seed);
    const top = tf.concat([tf.ones([1, 8, 16, 3]), tf.zeros([1, 8, 16, 3])], 1);
    const masks = tf.concat(y.map((c) => (c === 0 ? top : tf.reverse(top, 1))));
    return tf.add(noise, tf.sub(tf.mul(masks, 1.2), 0.6)) as tf.Tensor4D;
  });
  return { x, y };
}

Deno.test("extraction + fitting + evaluation leave numTensors unchanged", async () => {
  const train = halves(64, 1), test = halves(32, 2);
  const before = tf.memory().numTensors;
  const tap = tapBlock(30, 4);
  const fTrain = await extractFeatures(unet, [tap], train.x, { batchSize: 16 });
  const fTest = await extractFeatures(unet, [tap], test.x, { batchSize: 16 });
  const head = new LinearHead({ inputShape: [64], outputs: 2, seed: 0 });
  await head.fit(fTrain.get(tap.key)!, train.y, { epochs: 30, batchSize: 16, learningRate: 1e-2 });
  const { accuracy } = head.evaluate(fTest.get(tap.key)!, test.y);
  assert.ok(accuracy >= 0.9, `the halves are separable from block 4 features: ${accuracy}`);
  head.dispose();
  tf.dispose([...fTrain.values(), ...fTest.values()]);
  assert.equal(tf.memory().numTensors, before);
  tf.dispose([train.x, test.x]);
});

Deno.test("sweep rows equal heads fitted on the extracted features; no leaks; heatmap written", async () => {
  const train = halves(48, 3), test = halves(24, 4);
  const before = tf.memory().numTensors;
  const dir = await Deno.makeTempDir({ prefix: "diffprobe-sweep-" });
  const fit = { epochs: 10, batchSize: 16, learningRate: 1e-2, seed: 5 };
  const result = await sweep(unet, {
    train: { data: train.x, labels: train.y },
    test: { data: test.x, labels: test.y },
  }, {
    ts: [30, 500],
    blocks: [1, 4, "up_blocks.0.1"],
    head: (inputShape) => new LinearHead({ inputShape, outputs: 2, seed: 0 }),
    fit,
    batchSize: 16,
    heatmap: `${dir}/sweep.svg`,
  });
  assert.deepEqual(result.rows.map((r) => `${r.t}/${r.block}/${r.name}`), [
    "30/1/conv_in",
    "30/4/down_blocks.1.0",
    "30/null/up_blocks.0.1",
    "500/1/conv_in",
    "500/4/down_blocks.1.0",
    "500/null/up_blocks.0.1",
  ]);
  assert.equal(tf.memory().numTensors, before, "the sweep disposes features and heads");
  // One point by hand.
  const tap = tapBlock(500, 4);
  const fTrain = await extractFeatures(unet, [tap], train.x),
    fTest = await extractFeatures(unet, [tap], test.x);
  const head = new LinearHead({ inputShape: [64], outputs: 2, seed: 0 });
  await head.fit(fTrain.get(tap.key)!, train.y, fit);
  const byHand = head.evaluate(fTest.get(tap.key)!, test.y).accuracy;
  assert.equal(result.rows[4].metric, byHand);
  const best = Math.max(...result.rows.map((r) => r.metric));
  assert.equal(result.best.metric, best);
  const svg = await Deno.readTextFile(`${dir}/sweep.svg`);
  assert.match(svg, /^<svg/);
  assert.match(svg, /down_blocks\.1\.0/);
  head.dispose();
  tf.dispose([...fTrain.values(), ...fTest.values(), train.x, test.x]);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("sweep reads generator data once per timestep through a factory; a bare generator is refused", async () => {
  const train = halves(32, 5), test = halves(16, 6);
  const batches = (x: tf.Tensor4D) =>
    function* () {
      for (let i = 0; i < x.shape[0]; i += 8) yield tf.slice(x, [i], [8]);
    };
  const splits = (data: (x: tf.Tensor4D) => unknown) => ({
    train: { data: data(train.x), labels: train.y, dataKey: "g-train", total: 32 },
    test: { data: data(test.x), labels: test.y, dataKey: "g-test", total: 16 },
  });
  const options = {
    ts: [30, 500],
    blocks: [4],
    head: (inputShape: number[]) => new LinearHead({ inputShape, outputs: 2, seed: 0 }),
    fit: { epochs: 5, batchSize: 16, learningRate: 1e-2, seed: 5 },
  };
  await assert.rejects(
    // deno-lint-ignore no-explicit-any
    () => sweep(unet, splits((x) => batches(x)()) as any, options),
    (e: Error) =>
      e instanceof TypeError && /train split's data is a one-shot iterator/.test(e.message),
  );
  const yielded: tf.Tensor[] = [];
  const tracked = (x: tf.Tensor4D) => () => {
    const gen = batches(x)();
    return (function* () {
      for (const b of gen) yield yielded[yielded.push(b) - 1];
    })();
  };
  // deno-lint-ignore no-explicit-any
  const factory = await sweep(unet, splits(tracked) as any, options);
  // deno-lint-ignore no-explicit-any
  const tensors = await sweep(unet, splits((x) => x) as any, options);
  assert.deepEqual(factory.rows.map((r) => r.metric), tensors.rows.map((r) => r.metric));
  assert.equal(yielded.length, 2 * (4 + 2), "each split read once per timestep");
  tf.dispose([...yielded, train.x, test.x]);
});

Deno.test('a sweep with fit { method: "ridge" } fits each head by fitRidge; heads without it are refused', async () => {
  const train = halves(24, 7), test = halves(12, 8);
  const yTrain = train.y.map((c, i) => c + 0.01 * i), yTest = test.y;
  const result = await sweep(unet, {
    train: { data: train.x, labels: yTrain },
    test: { data: test.x, labels: yTest },
  }, {
    ts: [30],
    blocks: [4],
    head: (inputShape) => new LinearHead({ inputShape, outputs: 1, task: "regression", seed: 0 }),
    fit: { method: "ridge", penalties: [1e-3] },
    engine: "tfjs",
  });
  // By hand: the closed-form ridge on the same features.
  const tap = tapBlock(30, 4);
  const fTrain = await extractFeatures(unet, [tap], train.x, { engine: "tfjs" });
  const fTest = await extractFeatures(unet, [tap], test.x, { engine: "tfjs" });
  const head = new LinearHead({ inputShape: [64], outputs: 1, task: "regression", seed: 0 });
  await head.fitRidge(fTrain.get(tap.key)!, yTrain, { penalties: [1e-3] });
  assert.equal(result.rows[0].metric, head.evaluate(fTest.get(tap.key)!, yTest).mse);
  head.dispose();
  await assert.rejects(
    sweep(
      unet,
      { train: { data: train.x, labels: yTrain }, test: { data: test.x, labels: yTest } },
      {
        ts: [30],
        blocks: [4],
        head: () => ({ fit: () => Promise.resolve(), evaluate: () => ({ mse: 0 }), dispose() {} }),
        fit: { method: "ridge" },
        engine: "tfjs",
      },
    ),
    { name: "TypeError", message: /fit\.method "ridge" needs heads with a fitRidge method/ },
  );
  tf.dispose([...fTrain.values(), ...fTest.values(), train.x, test.x]);
});
