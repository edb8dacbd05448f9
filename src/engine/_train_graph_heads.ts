/**
 * Training-step graphs of the probing heads (`LinearHead`, `MLPHead`, `AttentionHead`): the
 * forward pass exactly as `src/heads/` writes it (layer order, `[in, out]` weights, pre-LN
 * transformer blocks, class-token readout), the loss (mean softmax cross-entropy against a
 * one-hot input, or mean squared error), its backward pass, and optionally the AdamW update.
 * Internal to `src/engine/`; heads are described by a {@linkcode HeadGraphSpec}, not imported
 * (heads sit beside the engine, not below it).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { buildHeadTrainGraph } from "./_train_graph_heads.ts";
 *
 * const graph = buildHeadTrainGraph({
 *   kind: "LinearHead", inputShape: [4], outputs: 2, task: "classification",
 *   params: [{ name: "linear.weight", shape: [4, 2], decay: true },
 *     { name: "linear.bias", shape: [2], decay: false }],
 * }, 8, { gradients: true });
 * assert.deepEqual(graph.outputs, ["loss", "linear.weight:grad", "linear.bias:grad"]);
 * ```
 *
 * @module
 */
import { TrainGraph } from "./_autodiff.ts";
import {
  type AdamWHyper,
  appendAdamW,
  clipByGlobalNorm,
  flatGradient,
  flatParams,
} from "./_optim_graph.ts";
import { encodeTrainGraph } from "./_train_encode.ts";

/** The epsilon of every head LayerNorm (PyTorch's default, as `src/heads/_layers.ts`). */
const LAYER_NORM_EPSILON = 1e-5;

/** A head as the graph builder needs it. */
export interface HeadGraphSpec {
  /** The head class. */
  kind: "LinearHead" | "MLPHead" | "AttentionHead";
  /** One sample's feature shape. */
  inputShape: readonly number[];
  /** Classes or regressed values. */
  outputs: number;
  /** Classification (cross-entropy on a one-hot input) or regression (MSE). */
  task: "classification" | "regression";
  /** The trainable weights in the head's order, with AdamW's decay flag. */
  params: readonly { name: string; shape: readonly number[]; decay: boolean }[];
  /** MLP: hidden widths. */
  hidden?: readonly number[];
  /** MLP: activation (default `"gelu"`). */
  activation?: "gelu" | "relu";
  /** Attention: token width, heads, blocks. */
  dim?: number;
  /** Attention heads per block. */
  heads?: number;
  /** Transformer blocks. */
  layers?: number;
}

/** Options of {@linkcode buildHeadTrainGraph}. */
export interface HeadGraphOptions {
  /** Output every parameter's gradient as `<name>:grad`. */
  gradients?: boolean;
  /** Append the AdamW update with these hyper-parameters. */
  adamw?: AdamWHyper;
  /** Clip gradients to this global norm before the update (default: no clipping). */
  clipNorm?: number;
}

/** An encoded head training graph. */
export interface HeadTrainGraph {
  /** The serialised ONNX model. */
  model: Uint8Array;
  /** Input names: `x` (`[B, ...inputShape]`), `y` (`[B, outputs]`), `params` (flat), state. */
  inputs: string[];
  /** Output names: `loss`, then gradients and/or updated values and moments. */
  outputs: string[];
  /** The static shape of every input and output. */
  shapes: Map<string, number[]>;
}

/** Builds the training graph of `spec` for batches of `batch` samples. */
export function buildHeadTrainGraph(
  spec: HeadGraphSpec,
  batch: number,
  options: HeadGraphOptions = {},
): HeadTrainGraph {
  const g = new TrainGraph();
  const features = spec.inputShape.reduce((a, b) => a * b, 1);
  const x = g.input("x", [batch, ...spec.inputShape]);
  const y = g.input("y", [batch, spec.outputs]);
  const flat = flatParams(g, spec.params);
  const p = new Map<string, string>(spec.params.map((q, i) => [q.name, flat.values[i]]));
  const get = (name: string): string => {
    const v = p.get(name);
    if (!v) throw new RangeError(`The ${spec.kind} spec has no weight "${name}"`);
    return v;
  };
  const dense = (h: string, prefix: string): string =>
    g.add(g.matmul(h, get(`${prefix}.weight`)), get(`${prefix}.bias`));

  let out: string;
  if (spec.kind === "LinearHead") {
    out = dense(g.reshape(x, [batch, features]), "linear");
  } else if (spec.kind === "MLPHead") {
    const layers = (spec.hidden?.length ?? 0) + 1;
    let h = g.reshape(x, [batch, features]);
    for (let i = 0; i < layers; i++) {
      h = dense(h, `layers.${i}`);
      if (i < layers - 1) h = spec.activation === "relu" ? g.unary("Relu", h) : g.gelu(h);
    }
    out = h;
  } else {
    out = attentionForward(g, spec, x, batch, get);
  }

  let loss: string;
  if (spec.task === "classification") {
    const picked = g.reduceSum(g.mul(g.logSoftmax(out), y), [-1], false);
    loss = g.unary("Neg", g.reduceMean(picked, [0], false));
  } else {
    const d = g.sub(out, y);
    loss = g.reduceMean(g.mul(d, d), [0, 1], false);
  }
  const outputs = [g.output(loss, "loss")];
  const names = spec.params.map((q) => q.name);
  const gs = g.gradients(loss, names.map(get));
  if (options.gradients) names.forEach((n, i) => outputs.push(g.output(gs[i], `${n}:grad`)));
  if (options.adamw) {
    let grad = flatGradient(g, gs);
    if (options.clipNorm !== undefined) {
      const clipped = clipByGlobalNorm(g, [grad], options.clipNorm);
      grad = clipped.grads[0];
      outputs.push(g.output(clipped.norm, "grad_norm"));
    }
    const decay = new Float32Array(flat.size);
    let offset = 0;
    for (const q of spec.params) {
      const n = q.shape.reduce((a, b) => a * b, 1);
      if (q.decay) decay.fill(1, offset, offset + n);
      offset += n;
    }
    const slots = appendAdamW(g, flat.flat, grad, options.adamw, decay);
    outputs.push(slots.out.value, slots.out.m, slots.out.v);
  }
  return {
    model: encodeTrainGraph(g, outputs),
    inputs: [...g.inputs],
    outputs,
    shapes: g.shapes([...g.inputs, ...outputs]),
  };
}

/** The `AttentionHead` forward pass (see `src/heads/attention_head.ts`). */
function attentionForward(
  g: TrainGraph,
  spec: HeadGraphSpec,
  x: string,
  batch: number,
  get: (name: string) => string,
): string {
  const channels = spec.inputShape[spec.inputShape.length - 1];
  const tokens = spec.inputShape.reduce((a, b) => a * b, 1) / channels;
  const dim = spec.dim ?? 256, heads = spec.heads ?? 8, layers = spec.layers ?? 2;
  const headDim = dim / heads;
  const n = tokens + 1;
  const ln = (h: string, prefix: string) =>
    g.layerNorm(h, get(`${prefix}.weight`), get(`${prefix}.bias`), LAYER_NORM_EPSILON);
  const dense = (h: string, prefix: string): string =>
    g.add(g.matmul(h, get(`${prefix}.weight`)), get(`${prefix}.bias`));

  let t = ln(g.reshape(x, [batch, tokens, channels]), "embed.norm");
  t = g.add(dense(t, "embed.proj"), get("pos_embed"));
  const cls = g.expand(g.reshape(get("cls_token"), [1, 1, dim]), [batch, 1, dim]);
  let h = g.concat([cls, t], 1);
  const scale = g.scalar(1 / Math.sqrt(headDim));
  // Only the class token leaves the last block, so there it alone queries, is projected and
  // goes through the MLP (keys and values still come from every token): the same values as
  // running the block on all tokens and slicing after it, with a fraction of the work.
  for (let i = 0; i < layers; i++) {
    const b = `blocks.${i}`;
    const last = i === layers - 1;
    const rows = last ? 1 : n;
    const [q, k, v] = g.split(dense(ln(h, `${b}.norm1`), `${b}.attn.qkv`), 2, [dim, dim, dim]);
    const perHead = (z: string, length: number, perm: number[]) =>
      g.transpose(g.reshape(z, [batch, length, heads, headDim]), perm);
    const queries = last ? g.slice(q, [0], [1], [1]) : q;
    const scores = g.mul(
      g.matmul(perHead(queries, rows, [0, 2, 1, 3]), perHead(k, n, [0, 2, 3, 1])),
      scale,
    );
    const attended = g.matmul(g.softmax(scores), perHead(v, n, [0, 2, 1, 3]));
    const merged = g.reshape(g.transpose(attended, [0, 2, 1, 3]), [batch, rows, dim]);
    const residual = last ? g.slice(h, [0], [1], [1]) : h;
    h = g.add(residual, dense(merged, `${b}.attn.proj`));
    h = g.add(h, dense(g.gelu(dense(ln(h, `${b}.norm2`), `${b}.mlp.fc1`)), `${b}.mlp.fc2`));
  }
  const first = g.reshape(h, [batch, dim]);
  return dense(ln(first, "norm"), "head");
}
