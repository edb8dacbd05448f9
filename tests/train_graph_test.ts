/**
 * Training graphs on onnxruntime against the TensorFlow.js path (cpu backend): the gradient of
 * every parameter of each head and of the tiny UNets, as `tf.variableGrads` computes it, to a
 * relative error of 1e-4 (max |onnx − tfjs| / max |tfjs| per parameter). Skips with a message
 * when onnxruntime-node cannot load (it needs --allow-ffi).
 */
import * as tf from "@tensorflow/tfjs";
import assert from "node:assert/strict";
import { LinearHead } from "../src/heads/linear_head.ts";
import { MLPHead } from "../src/heads/mlp_head.ts";
import { AttentionHead } from "../src/heads/attention_head.ts";
import type { Head } from "../src/heads/head.ts";
import { buildHeadTrainGraph, type HeadGraphSpec } from "../src/engine/_train_graph_heads.ts";
import { TrainSession } from "../src/engine/_train_session.ts";
import { onnxRuntimeAvailable } from "../src/engine/onnx_engine.ts";
import { TrainGraph } from "../src/engine/_autodiff.ts";
import { adamwScalars, appendAdamW } from "../src/engine/_optim_graph.ts";
import { encodeTrainGraph } from "../src/engine/_train_encode.ts";
import { AdamW } from "../src/optim/adamw.ts";
import { createBackbone, loadBackbone } from "../src/models/backbone.ts";
import type { UNet1DConfig } from "../src/models/config.ts";
import type { Backbone } from "../src/models/unet.ts";
import { registerTileGradient } from "../src/nn/tile_grad.ts";
import { asLowerable, timeEmbeddingInput } from "../src/engine/onnx_graph.ts";
import { buildUNetTrainGraph } from "../src/engine/_train_graph_unet.ts";
import { fixture } from "./_fixtures.ts";
import { createOnnxUNetTrainer, tfjsDropoutMasks } from "../src/engine/train_engine.ts";
import { learningRateAt } from "../src/optim/lr_schedule.ts";
import { trainDiffusion } from "../src/train/train_diffusion.ts";

await tf.setBackend("cpu");
const TOLERANCE = 1e-4;
const ORT = await onnxRuntimeAvailable();
if (!ORT) console.log("skipped: onnxruntime-node cannot be loaded here (run with --allow-ffi)");

/** max |a − b| / max |b|. */
function relativeError(a: Float32Array, b: Float32Array): number {
  let diff = 0, scale = 0;
  for (let i = 0; i < b.length; i++) {
    diff = Math.max(diff, Math.abs(a[i] - b[i]));
    scale = Math.max(scale, Math.abs(b[i]));
  }
  return scale === 0 ? diff : diff / scale;
}

/** Tensors' values one after the other (the training graphs' flat `params` input). */
function flatten(tensors: tf.Tensor[]): Float32Array {
  const out = new Float32Array(tensors.reduce((n, t) => n + t.size, 0));
  let offset = 0;
  for (const t of tensors) {
    out.set(t.dataSync(), offset);
    offset += t.size;
  }
  return out;
}

/** The graph spec of a head (decay: weight matrices, as the heads declare them). */
function specOf(head: Head, extra: Partial<HeadGraphSpec>): HeadGraphSpec {
  return {
    kind: head.className as HeadGraphSpec["kind"],
    inputShape: head.inputShape,
    outputs: head.outputs,
    task: head.task,
    params: [...head.weights].map(([name, v]) => ({
      name,
      shape: v.shape,
      decay: v.rank === 2 && name !== "pos_embed",
    })),
    ...extra,
  };
}

/** The loss `fit` minimises, and its gradients, on the tfjs cpu backend. */
function tfjsGradients(head: Head, x: tf.Tensor, y: tf.Tensor2D): Map<string, Float32Array> {
  const forward = (head as unknown as { forward(x: tf.Tensor): tf.Tensor }).forward.bind(head);
  const variables = [...head.weights.values()];
  const out = new Map<string, Float32Array>();
  tf.tidy(() => {
    const { value, grads } = tf.variableGrads(() => {
      const out = forward(x);
      const loss = head.task === "classification"
        ? tf.logSoftmax(out).mul(y).sum(-1).neg().mean()
        : out.sub(y).square().mean(-1).mean();
      return loss as tf.Scalar;
    }, variables);
    out.set("loss", value.dataSync() as Float32Array);
    for (const [name, v] of head.weights) out.set(name, grads[v.name].dataSync() as Float32Array);
  });
  return out;
}

async function assertHeadParity(head: Head, extra: Partial<HeadGraphSpec>, batch: number) {
  const x = tf.randomNormal([batch, ...head.inputShape], 0, 1, "float32", 7);
  const y = head.task === "classification"
    ? tf.oneHot(
      tf.tensor1d(Array.from({ length: batch }, (_, i) => i % head.outputs), "int32"),
      head.outputs,
    ).cast("float32") as tf.Tensor2D
    : tf.randomNormal([batch, head.outputs], 0, 1, "float32", 8) as tf.Tensor2D;
  const before = tf.memory().numTensors;
  const expected = tfjsGradients(head, x, y);
  assert.equal(tf.memory().numTensors, before);
  const spec = specOf(head, extra);
  const graph = buildHeadTrainGraph(spec, batch, { gradients: true });
  const session = await TrainSession.create(graph.model, graph.shapes, { threads: 1 });
  const feeds: Record<string, Float32Array> = {
    x: x.dataSync() as Float32Array,
    y: Float32Array.from(y.dataSync()),
  };
  feeds.params = flatten([...head.weights.values()]);
  const out = await session.run(feeds, graph.outputs);
  session.release();
  const errors: Record<string, number> = {
    loss: relativeError(out.loss, expected.get("loss")!),
  };
  for (const name of head.weights.keys()) {
    errors[name] = relativeError(out[`${name}:grad`], expected.get(name)!);
  }
  const bad = Object.entries(errors).filter(([, e]) => !(e <= TOLERANCE));
  assert.deepEqual(bad, [], `relative errors above ${TOLERANCE}: ${JSON.stringify(bad)}`);
  tf.dispose([x, y]);
  return errors;
}

Deno.test({
  name: "LinearHead: onnx gradients match tfjs (classification and regression)",
  ignore: !ORT,
  async fn() {
    const c = new LinearHead({ inputShape: [4, 3], outputs: 5, seed: 1 });
    await assertHeadParity(c, {}, 16);
    c.dispose();
    const r = new LinearHead({ inputShape: [6], outputs: 2, task: "regression", seed: 2 });
    await assertHeadParity(r, {}, 16);
    r.dispose();
  },
});

Deno.test({
  name: "MLPHead: onnx gradients match tfjs (gelu and relu)",
  ignore: !ORT,
  async fn() {
    const gelu = new MLPHead({ inputShape: [12], outputs: 3, hidden: [16, 8], seed: 3 });
    await assertHeadParity(gelu, { hidden: [16, 8], activation: "gelu" }, 16);
    gelu.dispose();
    const relu = new MLPHead({
      inputShape: [2, 5],
      outputs: 2,
      hidden: [9],
      activation: "relu",
      task: "regression",
      seed: 4,
    });
    await assertHeadParity(relu, { hidden: [9], activation: "relu" }, 16);
    relu.dispose();
  },
});

Deno.test({
  name: "AttentionHead: onnx gradients match tfjs for every parameter",
  ignore: !ORT,
  async fn() {
    const options = { inputShape: [3, 2, 6], outputs: 4, dim: 16, heads: 4, layers: 2, seed: 5 };
    const head = new AttentionHead(options);
    await assertHeadParity(head, { dim: 16, heads: 4, layers: 2 }, 8);
    head.dispose();
    const oneD = new AttentionHead({
      inputShape: [5, 3],
      outputs: 1,
      task: "regression",
      dim: 8,
      heads: 1,
      layers: 1,
      seed: 6,
    });
    await assertHeadParity(oneD, { dim: 8, heads: 1, layers: 1 }, 8);
    oneD.dispose();
  },
});

Deno.test({
  name: "AdamW graph: three steps bit-identical to the tfjs AdamW (PyTorch order), decay mask",
  ignore: !ORT,
  async fn() {
    const hyper = { beta1: 0.9, beta2: 0.999, epsilon: 1e-8, weightDecay: 0.05 };
    const g = new TrainGraph();
    const p = g.input("p", [5]);
    const grad = g.input("g", [5]);
    const slots = appendAdamW(g, p, grad, hyper, new Float32Array([1, 1, 1, 0, 1]));
    const outputs = [slots.out.value, slots.out.m, slots.out.v];
    const shapes = new Map(g.inputs.map((n) => [n, g.shape(n)]));
    const session = await TrainSession.create(encodeTrainGraph(g, outputs), shapes, { threads: 1 });
    const start = new Float32Array([0.5, -1.25, 3, 1e-3, -7]);
    const variable = tf.variable(tf.tensor1d(start));
    const fixed = tf.variable(tf.tensor1d([start[3]]));
    const opt = new AdamW([variable, fixed], { ...hyper, decay: (v) => v !== fixed });
    let state: Record<"p" | "m" | "v", Float32Array> = {
      p: start,
      m: new Float32Array(5),
      v: new Float32Array(5),
    };
    for (let t = 1; t <= 3; t++) {
      const gradient = new Float32Array([0.1 * t, -2, 0.003, 5, -0.5 / t]);
      const lr = 0.01 * t;
      const grads = [tf.tensor1d(gradient), tf.tensor1d([gradient[3]])];
      opt.step(grads, lr);
      tf.dispose(grads);
      const out = await session.run({
        p: state.p,
        g: gradient,
        m: state.m,
        v: state.v,
        adamw: adamwScalars(t, lr, hyper),
      }, outputs);
      state = { p: out[slots.out.value], m: out[slots.out.m], v: out[slots.out.v] };
      const want = Array.from(variable.dataSync());
      want[3] = fixed.dataSync()[0]; // entry 3 is marked as not decayed
      assert.deepEqual(Array.from(state.p), want);
    }
    session.release();
    opt.dispose();
    tf.dispose([variable, fixed]);
  },
});

/** The tiny 1-D UNet of tests/train_test.ts (dropout 0.1, attention, 2 levels). */
const TINY_1D: UNet1DConfig = {
  _class_name: "DiffprobeUNet1DModel",
  in_channels: 1,
  out_channels: 1,
  sample_size: 32,
  block_out_channels: [16, 32],
  layers_per_block: 1,
  down_block_types: ["DownBlock1D", "AttnDownBlock1D"],
  up_block_types: ["AttnUpBlock1D", "UpBlock1D"],
  norm_num_groups: 8,
  dropout: 0.1,
};

/** UNet gradients of the eps-prediction MSE in training mode: tfjs (cpu) against onnx. */
async function assertUNetParity(unet: Backbone, batch: number): Promise<Record<string, number>> {
  registerTileGradient();
  const lowerable = asLowerable(unet);
  const cfg = lowerable.resolved;
  const names = [...lowerable.plan.weights.keys()];
  const variables = names.map((name) => {
    const w = unet.weights.get(name)!;
    const v = tf.variable(w, true);
    w.dispose();
    unet.weights.set(name, v);
    return v;
  });
  const sample = cfg.dims === 1 ? [cfg.sampleSize[1], cfg.inChannels] : [
    ...cfg.sampleSize,
    cfg.inChannels,
  ];
  const xt = tf.randomNormal([batch, ...sample], 0, 1, "float32", 11);
  const noise = tf.randomNormal([batch, ...sample], 0, 1, "float32", 12);
  const ts = Array.from({ length: batch }, (_, i) => (i * 397 + 13) % 1000);
  const dropoutSeed = 1234;
  const expected = new Map<string, Float32Array>();
  const before = tf.memory().numTensors;
  tf.tidy(() => {
    const { value, grads } = tf.variableGrads(() => {
      const out = unet.forward(xt, ts, { eps: true, training: true, dropoutSeed });
      return tf.mean(tf.squaredDifference(out.eps!, noise)) as tf.Scalar;
    }, variables);
    expected.set("loss", Float32Array.from(value.dataSync()));
    names.forEach((n, i) =>
      expected.set(n, Float32Array.from(grads[variables[i].name].dataSync()))
    );
  });
  assert.equal(tf.memory().numTensors, before);
  const graph = buildUNetTrainGraph(lowerable, batch, { gradients: true });
  const feeds: Record<string, Float32Array> = {
    xt: xt.dataSync() as Float32Array,
    noise: noise.dataSync() as Float32Array,
    temb: timeEmbeddingInput(unet, ts),
  };
  tfjsDropoutMasks(graph.dropout, cfg.dropout, dropoutSeed).forEach((m, k) =>
    feeds[graph.dropout[k].name] = m
  );
  feeds.params = flatten(names.map((n) => unet.weights.get(n)!));
  const session = await TrainSession.create(graph.model, graph.shapes, { threads: 2 });
  const out = await session.run(feeds, graph.outputs);
  session.release();
  tf.dispose([xt, noise]);
  const errors: Record<string, number> = { loss: relativeError(out.loss, expected.get("loss")!) };
  for (const n of names) {
    const got = out[`${n}:grad`], want = expected.get(n)!;
    if (n.endsWith("to_k.bias")) {
      // Exactly zero in exact arithmetic (softmax ignores a constant added to every score of a
      // row), so both engines give float noise: compare that noise with the key weight's scale.
      const scale = Math.max(...expected.get(n.replace(/bias$/, "weight"))!.map(Math.abs));
      const noise = Math.max(...got.map(Math.abs), ...want.map(Math.abs));
      errors[n] = noise / scale;
    } else errors[n] = relativeError(got, want);
  }
  const bad = Object.entries(errors).filter(([, e]) => !(e <= TOLERANCE));
  assert.deepEqual(bad, [], `relative errors above ${TOLERANCE}: ${JSON.stringify(bad)}`);
  return errors;
}

Deno.test({
  name: "tiny 2-D UNet fixture: onnx gradients of every weight match tfjs",
  ignore: !ORT,
  async fn() {
    const unet = await loadBackbone(fixture("tiny-unet2d"));
    const errors = await assertUNetParity(unet, 2);
    assert.equal(Object.keys(errors).length, asLowerable(unet).plan.weights.size + 1);
    unet.dispose();
  },
});

Deno.test({
  name: "tiny 1-D UNet (dropout, attention, strided 1-D convs): onnx gradients match tfjs",
  ignore: !ORT,
  async fn() {
    const unet = createBackbone(TINY_1D);
    await assertUNetParity(unet, 3);
    unet.dispose();
  },
});

/**
 * `steps` training steps of the tfjs path (variableGrads, clipping to norm 1 as trainDiffusion
 * does, the AdamW) and of the onnx trainer from the same weights, batches, timesteps,
 * noise and dropout seeds; returns both loss curves.
 */
async function trainBoth(unet: Backbone, batch: number, steps: number) {
  registerTileGradient();
  const lowerable = asLowerable(unet);
  const cfg = lowerable.resolved;
  const sample = cfg.dims === 1 ? [cfg.sampleSize[1], cfg.inChannels] : [
    ...cfg.sampleSize,
    cfg.inChannels,
  ];
  const per = sample.reduce((a, b) => a * b, 1);
  const trainer = await createOnnxUNetTrainer(unet, { batch, threads: 2, weightDecay: 0.01 });
  const names = [...lowerable.plan.weights.keys()];
  const variables = names.map((name) => {
    const v = tf.variable(unet.weights.get(name)!, true);
    unet.weights.get(name)!.dispose();
    unet.weights.set(name, v);
    return v;
  });
  const optimizer = new AdamW(variables, { weightDecay: 0.01 });
  const data = tf.tidy(() => tf.tanh(tf.randomNormal([4 * batch, ...sample], 0, 1, "float32", 3)));
  const tfjs: number[] = [], onnx: number[] = [];
  const before = tf.memory().numTensors;
  for (let step = 0; step < steps; step++) {
    const lr = learningRateAt(step, { peak: 2e-3, warmupSteps: 3, totalSteps: steps });
    const ts = Array.from({ length: batch }, (_, i) => (step * 131 + i * 389) % 1000);
    const dropoutSeed = 1000 + 97 * step;
    const x0 = tf.tidy(() => data.slice([(step % 4) * batch], [batch]));
    const noise = tf.randomNormal([batch, ...sample], 0, 1, "float32", 100 + step);
    const loss = tf.tidy(() => {
      const xt = unet.schedule.addNoise(x0, ts, noise);
      const { value, grads } = tf.variableGrads(() => {
        const out = unet.forward(xt, ts, { eps: true, training: true, dropoutSeed });
        return tf.mean(tf.squaredDifference(out.eps!, noise)) as tf.Scalar;
      }, variables);
      const g = variables.map((v) => grads[v.name]);
      const norm = tf.sqrt(tf.addN(g.map((t) => tf.sum(tf.square(t)))));
      const scale = tf.minimum(1, tf.div(1, tf.add(norm, 1e-6)));
      optimizer.step(g.map((t) => tf.mul(t, scale)), lr);
      return value.dataSync()[0];
    });
    tfjs.push(loss);
    const r = await trainer.step({
      x0: x0.dataSync() as Float32Array,
      noise: noise.dataSync() as Float32Array,
      t: ts,
      dropout: tfjsDropoutMasks(trainer.dropoutShapes, cfg.dropout, dropoutSeed),
    }, lr);
    onnx.push(r.loss);
    tf.dispose([x0, noise]);
  }
  assert.equal(tf.memory().numTensors, before);
  assert.equal(per * batch, data.size / 4);
  data.dispose();
  optimizer.dispose();
  trainer.dispose();
  return { tfjs, onnx };
}

Deno.test({
  name: "20 steps on the tiny 1-D UNet: onnx losses match the tfjs engine within 1e-3 relative",
  ignore: !ORT,
  async fn() {
    const unet = createBackbone(TINY_1D);
    const { tfjs, onnx } = await trainBoth(unet, 4, 20);
    const worst = Math.max(...tfjs.map((l, i) => Math.abs(onnx[i] - l) / Math.abs(l)));
    assert.ok(worst <= 1e-3, `worst relative loss difference ${worst}: ${tfjs} vs ${onnx}`);
    assert.ok(tfjs[19] < tfjs[0], "the loss goes down");
    unet.dispose();
  },
});

Deno.test({
  name: "5 steps on the tiny 2-D fixture: onnx losses match the tfjs engine within 1e-3 relative",
  ignore: !ORT,
  async fn() {
    const unet = await loadBackbone(fixture("tiny-unet2d"));
    const { tfjs, onnx } = await trainBoth(unet, 2, 5);
    const worst = Math.max(...tfjs.map((l, i) => Math.abs(onnx[i] - l) / Math.abs(l)));
    assert.ok(worst <= 1e-3, `worst relative loss difference ${worst}: ${tfjs} vs ${onnx}`);
    unet.dispose();
  },
});

Deno.test({
  name: "onnx engine: resuming from saved weights, EMA and AdamW state is bit-exact",
  ignore: !ORT,
  async fn() {
    const unet = createBackbone(TINY_1D);
    const batch = 2, per = 32;
    const stepInput = (k: number) => {
      const x0 = new Float32Array(batch * per), noise = new Float32Array(batch * per);
      for (let i = 0; i < x0.length; i++) {
        x0[i] = Math.sin(0.37 * i + k);
        noise[i] = Math.cos(1.3 * i * (k + 1));
      }
      return { x0, noise, t: [(k * 71) % 1000, (k * 313 + 5) % 1000], dropout: k, emaDecay: 0.9 };
    };
    const lr = (k: number) => learningRateAt(k, { peak: 1e-3, warmupSteps: 2, totalSteps: 6 });
    const options = { batch, threads: 1, ema: true, weightDecay: 0.01 };
    const straight = await createOnnxUNetTrainer(unet, options);
    for (let k = 0; k < 6; k++) await straight.step(stepInput(k), lr(k));

    const first = await createOnnxUNetTrainer(unet, options);
    for (let k = 0; k < 3; k++) await first.step(stepInput(k), lr(k));
    // What a checkpoint holds: copies of the weights, the EMA and the optimizer state.
    const copy = (m: ReadonlyMap<string, Float32Array>) =>
      new Map([...m].map(([n, a]) => [n, a.slice()]));
    const saved = {
      weights: copy(first.weights()),
      ema: copy(first.emaWeights()),
      state: { ...first.state(), m: copy(first.state().m), v: copy(first.state().v) },
    };
    first.dispose(); // the crash
    const resumed = await createOnnxUNetTrainer(unet, options);
    resumed.setWeights(saved.weights);
    resumed.setEmaWeights(saved.ema);
    resumed.loadState(saved.state);
    for (let k = 3; k < 6; k++) await resumed.step(stepInput(k), lr(k));

    assert.equal(resumed.iterations, 6);
    for (const [name, w] of straight.weights()) {
      assert.deepEqual(resumed.weights().get(name), w, name);
      assert.deepEqual(resumed.emaWeights().get(name), straight.emaWeights().get(name), name);
      assert.deepEqual(resumed.state().m.get(name), straight.state().m.get(name), name);
    }
    straight.dispose();
    resumed.dispose();
    unet.dispose();
  },
});

Deno.test({
  name: "onnx engine: no tfjs tensors and no resident-memory growth from step 200 to 800",
  ignore: !ORT,
  async fn() {
    const unet = createBackbone(TINY_1D);
    const trainer = await createOnnxUNetTrainer(unet, { batch: 4, threads: 1, ema: true });
    const x0 = new Float32Array(4 * 32).map((_, i) => Math.sin(i));
    const noise = new Float32Array(4 * 32).map((_, i) => Math.cos(3 * i));
    const tensors = tf.memory().numTensors;
    let rss200 = 0;
    for (let k = 1; k <= 800; k++) {
      await trainer.step({ x0, noise, t: [1, 200, 500, 999], dropout: k, emaDecay: 0.99 }, 1e-4);
      if (k === 200) rss200 = Deno.memoryUsage().rss;
    }
    // Garbage-collected typed arrays come and go (tens of MiB); leaking one copy of the weights
    // (or a step's dropout masks) per step would add well over 32 MiB in 600 steps.
    const growth = (Deno.memoryUsage().rss - rss200) / 2 ** 20;
    assert.equal(tf.memory().numTensors, tensors);
    assert.ok(growth < 32, `RSS grew by ${growth.toFixed(1)} MiB between steps 200 and 800`);
    trainer.dispose();
    unet.dispose();
  },
});

Deno.test({
  name: "onnx engine: micro-batches of 3 + 3 + 2 give the full batch's step (float rounding only)",
  ignore: !ORT,
  async fn() {
    const unet = createBackbone(TINY_1D);
    const batch = 8;
    const x0 = new Float32Array(batch * 32).map((_, i) => Math.sin(0.3 * i));
    const noise = new Float32Array(batch * 32).map((_, i) => Math.cos(0.7 * i));
    const t = [0, 100, 200, 300, 400, 500, 600, 999];
    const run = async (microBatch?: number) => {
      const trainer = await createOnnxUNetTrainer(unet, {
        batch,
        threads: 1,
        microBatch,
        ema: true,
      });
      const r = await trainer.step({ x0, noise, t, dropout: 5, emaDecay: 0.5 }, 1e-3);
      // After one step the first moment is (1 − β1) · the clipped gradient.
      const moments = new Map([...trainer.state().m].map(([n, w]) => [n, w.slice()]));
      trainer.dispose();
      return { ...r, moments };
    };
    const whole = await run(), parts = await run(3);
    assert.ok(
      Math.abs(parts.loss - whole.loss) <= 1e-6 * whole.loss,
      `${parts.loss} vs ${whole.loss}`,
    );
    assert.ok(Math.abs(parts.gradNorm - whole.gradNorm) <= 1e-5 * whole.gradNorm);
    for (const [name, m] of whole.moments) {
      if (name.endsWith("to_k.bias")) continue; // a zero gradient up to float noise
      const err = relativeError(parts.moments.get(name)!, m);
      assert.ok(err <= 1e-4, `${name}: ${err}`);
    }
    unet.dispose();
  },
});

/** Sine waves `[n, 32, 1]` in [-0.9, 0.9]. */
function waves(n: number): tf.Tensor {
  const data = new Float32Array(n * 32);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < 32; j++) data[i * 32 + j] = 0.9 * Math.sin(0.2 * (i + 1) * j + i);
  }
  return tf.tensor3d(data, [n, 32, 1]);
}

Deno.test({
  name: "trainDiffusion: 20 steps on the onnx engine match the tfjs engine's losses within 1e-3",
  ignore: !ORT,
  async fn() {
    const config = { ...TINY_1D, dropout: 0 }; // the engines draw different dropout masks
    const data = waves(16);
    const options = { steps: 20, batchSize: 4, learningRate: 2e-3, warmupSteps: 3, seed: 3 };
    const a = createBackbone(config, { seed: 1 }), b = createBackbone(config, { seed: 1 });
    const tfjs = await trainDiffusion(a, data, { ...options, engine: "tfjs" });
    const onnx = await trainDiffusion(b, data, { ...options, engine: "onnx" });
    const worst = Math.max(...tfjs.losses.map((l, i) => Math.abs(onnx.losses[i] - l) / l));
    assert.ok(worst <= 1e-3, `worst relative difference ${worst}`);
    // The run's weights came back from the engine into the backbone.
    const w = "conv_out.bias";
    assert.ok(
      relativeError(
        b.weights.get(w)!.dataSync() as Float32Array,
        a.weights.get(w)!.dataSync() as Float32Array,
      ) < 1e-2,
    );
    tf.dispose([data]);
    for (const m of [a, b, tfjs.ema, onnx.ema]) m.dispose();
  },
});

Deno.test({
  name: "trainDiffusion on the onnx engine: a run resumed after a crash is bit-exact",
  ignore: !ORT,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "traingraph-resume-" });
    const data = waves(12);
    const options = {
      steps: 6,
      batchSize: 4,
      learningRate: 1e-3,
      seed: 9,
      horizontalFlip: true,
      engine: "onnx" as const,
    };
    const straightNet = createBackbone(TINY_1D, { seed: 2 });
    const straight = await trainDiffusion(straightNet, data, options);
    const crashed = createBackbone(TINY_1D, { seed: 2 });
    await assert.rejects(
      trainDiffusion(crashed, data, {
        ...options,
        checkpointDir: dir,
        checkpointEvery: 3,
        onStep: ({ step }) => {
          if (step === 4) throw new Error("crash");
        },
      }),
      /crash/,
    );
    const resumedNet = createBackbone(TINY_1D, { seed: 7 }); // other weights: the checkpoint wins
    const resumed = await trainDiffusion(resumedNet, data, { ...options, resume: dir });
    assert.deepEqual(resumed.losses, straight.losses);
    for (const [name, w] of straightNet.weights) {
      assert.deepEqual(resumedNet.weights.get(name)!.dataSync(), w.dataSync(), name);
      assert.deepEqual(
        resumed.ema.weights.get(name)!.dataSync(),
        straight.ema.weights.get(name)!.dataSync(),
        name,
      );
    }
    for (const m of [straightNet, crashed, resumedNet, straight.ema, resumed.ema]) m.dispose();
    data.dispose();
    await Deno.remove(dir, { recursive: true });
  },
});

Deno.test({
  name: "Head.fit: the onnx engine follows the tfjs engine's epoch losses (each head kind)",
  ignore: !ORT,
  async fn() {
    const x = tf.randomNormal([96, 2, 2, 6], 0, 1, "float32", 21);
    const labels = Array.from(x.dataSync().filter((_, i) => i % 24 === 0), (v) => (v > 0 ? 1 : 0));
    const makers = [
      () => new LinearHead({ inputShape: [2, 2, 6], outputs: 2, seed: 1 }),
      () => new MLPHead({ inputShape: [2, 2, 6], outputs: 2, hidden: [16], seed: 1 }),
      () =>
        new AttentionHead({
          inputShape: [2, 2, 6],
          outputs: 2,
          dim: 16,
          heads: 2,
          layers: 1,
          seed: 1,
        }),
    ];
    for (const make of makers) {
      const fits: number[][] = [];
      let name = "";
      for (const engine of ["tfjs", "onnx"] as const) {
        const head = make();
        const before = tf.memory().numTensors;
        const history = await head.fit(x, labels, {
          epochs: 4,
          batchSize: 32,
          learningRate: 3e-3,
          validationSplit: 0.25,
          patience: 2,
          engine,
        });
        assert.equal(tf.memory().numTensors, before);
        fits.push(history.epochs.map((e) => e.valLoss!));
        name = head.className;
        head.dispose();
      }
      const worst = Math.max(...fits[0].map((l, i) => Math.abs(fits[1][i] - l) / l));
      assert.ok(worst <= 1e-3, `${name}: ${fits[0]} vs ${fits[1]}`);
    }
    x.dispose();
  },
});
