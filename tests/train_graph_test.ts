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
import { AdamWOptimizer } from "../src/train/optimizer.ts";

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
  for (const [name, v] of head.weights) feeds[name] = v.dataSync() as Float32Array;
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
  name: "AdamW graph: three steps bit-identical to the tfjs AdamWOptimizer (PyTorch order)",
  ignore: !ORT,
  async fn() {
    const hyper = { beta1: 0.9, beta2: 0.999, epsilon: 1e-8, weightDecay: 0.05 };
    const g = new TrainGraph();
    const p = g.input("p", [5]);
    const grad = g.input("g", [5]);
    const [slots] = appendAdamW(g, [{ value: p, grad, decay: true, name: "p" }], hyper);
    const outputs = [slots.out.value, slots.out.m, slots.out.v];
    const shapes = new Map(g.inputs.map((n) => [n, g.shape(n)]));
    const session = await TrainSession.create(encodeTrainGraph(g, outputs), shapes, { threads: 1 });
    const start = new Float32Array([0.5, -1.25, 3, 1e-3, -7]);
    const variable = tf.variable(tf.tensor1d(start));
    const opt = new AdamWOptimizer([variable], hyper);
    let state: Record<"p" | "m" | "v", Float32Array> = {
      p: start,
      m: new Float32Array(5),
      v: new Float32Array(5),
    };
    for (let t = 1; t <= 3; t++) {
      const gradient = new Float32Array([0.1 * t, -2, 0.003, 5, -0.5 / t]);
      const lr = 0.01 * t;
      const grads = [tf.tensor1d(gradient)];
      opt.step(grads, lr);
      tf.dispose(grads);
      const out = await session.run({
        p: state.p,
        g: gradient,
        "p.m": state.m,
        "p.v": state.v,
        adamw: adamwScalars(t, lr, hyper),
      }, outputs);
      state = { p: out[slots.out.value], m: out[slots.out.m], v: out[slots.out.v] };
      assert.deepEqual(Array.from(state.p), Array.from(variable.dataSync()));
    }
    session.release();
    opt.dispose();
    variable.dispose();
  },
});
