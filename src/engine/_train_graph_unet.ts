/**
 * The diffusion training step of a UNet as one ONNX graph, from the same plan
 * (`src/models/unet_plan.ts`) the extraction graph and `UNet.forward` follow: the forward pass
 * in training mode (dropout as a multiplication by mask inputs), the eps-prediction MSE loss,
 * the backward pass derived by `_autodiff.ts`, and optionally clipping to a global norm and the
 * AdamW update. Internal to `src/engine/`.
 *
 * Weights are one flat graph input `params` (in plan order), sliced to the TensorFlow.js layout the backbone holds (convolutions
 * `[kh, kw, in, out]`, linears `[in, out]`), so gradients come out in that layout too; inside,
 * the graph is NCHW (signals `[N, C, 1, W]`). Inputs: `xt` and `noise` (`[N, H, W, C]`, or
 * `[N, W, C]`), `temb` (`[N, ch0]`, the sinusoidal embedding, no gradient), and one dropout
 * multiplier `dropout.<k>` per resnet (`[N, C, H, W]`, values 0 or 1/(1 − p)) when the model
 * has dropout.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { createBackbone } from "../models/backbone.ts";
 * import { asLowerable } from "./onnx_graph.ts";
 * import { buildUNetTrainGraph } from "./_train_graph_unet.ts";
 *
 * const unet = createBackbone({ _class_name: "UNet2DModel", block_out_channels: [8, 8],
 *   down_block_types: ["DownBlock2D", "DownBlock2D"], up_block_types: ["UpBlock2D", "UpBlock2D"],
 *   norm_num_groups: 4, sample_size: 8 });
 * const graph = buildUNetTrainGraph(asLowerable(unet), 2, { gradients: true });
 * assert.equal(graph.outputs[0], "loss");
 * assert.equal(graph.dropout.length, 0);
 * unet.dispose();
 * ```
 *
 * @module
 */
import type { ResolvedConfig } from "../models/config.ts";
import type { PlanOp } from "../models/unet_plan.ts";
import type { LowerableBackbone } from "./onnx_graph.ts";
import { TrainGraph } from "./_autodiff.ts";
import {
  type AdamWHyper,
  appendAdamW,
  clipByGlobalNorm,
  flatGradient,
  flatParams,
} from "./_optim_graph.ts";
import { encodeTrainGraph } from "./_train_encode.ts";

/** Options of {@linkcode buildUNetTrainGraph}. */
export interface UNetGraphOptions {
  /** Output every weight's gradient as `<name>:grad`. */
  gradients?: boolean;
  /** Append the AdamW update (all weights decayed, as `trainDiffusion` does). */
  adamw?: AdamWHyper;
  /** Clip to this global norm before the update (0 or Infinity: measure only). */
  clipNorm?: number;
  /** Dropout rate (default: the config's); 0 builds no mask inputs. */
  dropout?: number;
  /**
   * With AdamW: also update an exponential moving average of the weights, `ema ← ema · d +
   * p · (1 − d)` with the new weights p, from the inputs `ema` (`[P]`) and `ema_decay`
   * (`[d, 1 − d]`, each rounded to float32 as TensorFlow.js rounds scalars); output `ema:new`.
   */
  ema?: boolean;
  /**
   * Instead of AdamW: accumulate this micro-batch's gradient, `grad_acc:new = grad_acc + g · w`
   * (inputs `grad_acc` `[P]` and `weight` `[1]`, the micro-batch's share of the batch), for
   * {@linkcode buildUpdateGraph} to apply once per batch.
   */
  accumulate?: boolean;
}

/** An encoded UNet training graph. */
export interface UNetTrainGraph {
  /** The serialised ONNX model. */
  model: Uint8Array;
  /** Input names (data inputs, weights, then optimizer state). */
  inputs: string[];
  /** Output names: `loss`, `grad_norm` (with AdamW), gradients and/or updated state. */
  outputs: string[];
  /** The static shape of every input and output. */
  shapes: Map<string, number[]>;
  /** The weight names in graph order. */
  weights: string[];
  /** The dropout mask inputs in resnet order, with their `[N, C, H, W]` shapes. */
  dropout: { name: string; shape: number[] }[];
}

/**
 * Builds the training step of `unet` for batches of `batch` samples at the config's sample
 * size, in numbered steps: 1. inputs and weights, 2. the forward pass along the plan, 3. the
 * loss, 4. the backward pass and the update, 5. the encoded graph.
 */
export function buildUNetTrainGraph(
  unet: LowerableBackbone,
  batch: number,
  options: UNetGraphOptions = {},
): UNetTrainGraph {
  // 1. Data inputs, then the flat weights sliced into the backbone's tensors.
  const g = new TrainGraph();
  const cfg = unet.resolved;
  const [h, wd] = [cfg.dims === 1 ? 1 : cfg.sampleSize[0], cfg.sampleSize[1]];
  const dataShape = cfg.dims === 1 ? [batch, wd, cfg.inChannels] : [batch, h, wd, cfg.inChannels];
  const xtIn = g.input("xt", dataShape);
  const noiseIn = g.input("noise", dataShape);
  const tembIn = g.input("temb", [batch, cfg.channels[0]]);
  const names = [...unet.plan.weights.keys()];
  const flat = flatParams(g, names.map((name) => ({ name, shape: unet.weights.get(name)!.shape })));
  const weight = new Map<string, string>(names.map((name, i) => [name, flat.values[i]]));
  const get = (key: string): string => {
    const v = weight.get(key);
    if (!v) throw new RangeError(`Missing weight "${key}": the backbone is incomplete`);
    return v;
  };
  const layers = unetLayers(g, cfg, batch, get);

  // 2. The forward pass in training mode.
  const dropout: { name: string; shape: number[] }[] = [];
  const out = unetForward(unet, layers, xtIn, tembIn, options.dropout ?? cfg.dropout, dropout);

  // 3. The eps-prediction MSE loss.
  const d = g.sub(out, layers.toNCHW(noiseIn));
  const loss = g.reduceMean(g.mul(d, d), [0, 1, 2, 3], false);

  // 4. The backward pass, then gradients out, accumulated, or applied by AdamW.
  const outputs = [g.output(loss, "loss")];
  const gs = g.gradients(loss, names.map(get));
  if (options.gradients) names.forEach((n, i) => outputs.push(g.output(gs[i], `${n}:grad`)));
  if (options.accumulate) {
    const acc = g.input("grad_acc", [flat.size]);
    const weighted = g.mul(flatGradient(g, gs), g.input("weight", [1]));
    outputs.push(g.output(g.add(acc, weighted), "grad_acc:new"));
  } else if (options.adamw) {
    appendUpdate(g, flat.flat, flatGradient(g, gs), options, outputs);
  }

  // 5. The encoded graph.
  return {
    model: encodeTrainGraph(g, outputs),
    inputs: [...g.inputs],
    outputs,
    shapes: g.shapes([...g.inputs, ...outputs]),
    weights: names,
    dropout,
  };
}

/** The layers of the forward pass, as graph nodes reading the weights through `get`. */
interface UNetLayers {
  g: TrainGraph;
  cfg: ResolvedConfig;
  batch: number;
  /** `[N, H, W, C]` (or `[N, W, C]`) data to the graph's NCHW (`[N, C, 1, W]`). */
  toNCHW(v: string): string;
  /** `x · W + b`. */
  linear(x: string, prefix: string): string;
  /** A convolution with the TensorFlow.js-layout kernel `<prefix>.weight`. */
  conv(x: string, prefix: string, pads: number[], stride?: number): string;
  /** "Same" padding of a `k`-wide kernel. */
  same(k: number): number[];
  /** GroupNorm with the affine `<prefix>.weight`, `<prefix>.bias`. */
  groupNorm(x: string, prefix: string, groups: number): string;
}

/** Builds the {@linkcode UNetLayers} of `cfg` on `g`. */
function unetLayers(
  g: TrainGraph,
  cfg: ResolvedConfig,
  batch: number,
  get: (key: string) => string,
): UNetLayers {
  const oneD = cfg.dims === 1;
  const cin = cfg.inChannels;
  const wd = cfg.sampleSize[1];
  const toNCHW = (v: string): string =>
    oneD ? g.reshape(g.transpose(v, [0, 2, 1]), [batch, cin, 1, wd]) : g.transpose(v, [0, 3, 1, 2]);
  const linear = (x: string, prefix: string): string =>
    g.add(g.matmul(x, get(`${prefix}.weight`)), get(`${prefix}.bias`));
  const conv = (x: string, prefix: string, pads: number[], stride = 1): string => {
    const [kh, kw, ci, co] = g.shape(get(`${prefix}.weight`));
    const kernel = g.transpose(get(`${prefix}.weight`), [3, 2, 0, 1]);
    const [n, , hi, wi] = g.shape(x);
    const strides = [kh === 1 ? 1 : stride, stride];
    const ho = Math.floor((hi + pads[0] + pads[2] - kh) / strides[0]) + 1;
    const wo = Math.floor((wi + pads[1] + pads[3] - kw) / strides[1]) + 1;
    if (g.shape(x)[1] !== ci) throw new RangeError(`${prefix}: ${g.shape(x)[1]} ≠ ${ci} channels`);
    return g.op("Conv", [x, kernel, get(`${prefix}.bias`)], [n, co, ho, wo], {
      kernel_shape: [kh, kw],
      pads,
      strides,
    });
  };
  const same = (
    k: number,
  ): number[] => (k === 1 ? [0, 0, 0, 0] : oneD ? [0, 1, 0, 1] : [1, 1, 1, 1]);
  /** GroupNorm: LayerNormalization over `[N, G, C/G · H · W]`, then the per-channel affine. */
  const groupNorm = (x: string, prefix: string, groups: number): string => {
    const [n, c, hh, ww] = g.shape(x);
    const m = (c / groups) * hh * ww;
    const ones = g.constant(`const:ones:${m}`, [m], new Float32Array(m).fill(1));
    const zeros = g.constant(`const:zeros:${m}`, [m], new Float32Array(m));
    const normed = g.reshape(
      g.layerNorm(g.reshape(x, [n, groups, m]), ones, zeros, cfg.eps),
      [n, c, hh, ww],
    );
    const gamma = g.reshape(get(`${prefix}.weight`), [c, 1, 1]);
    const beta = g.reshape(get(`${prefix}.bias`), [c, 1, 1]);
    return g.add(g.mul(normed, gamma), beta);
  };
  return { g, cfg, batch, toNCHW, linear, conv, same, groupNorm };
}

/**
 * The forward pass along `unet`'s plan, from the data input `xtIn` and the sinusoidal
 * embedding `tembIn` to the `conv_out` output (NCHW); dropout mask inputs (rate > 0) are
 * declared in resnet order and recorded in `dropout`.
 */
function unetForward(
  unet: LowerableBackbone,
  L: UNetLayers,
  xtIn: string,
  tembIn: string,
  rate: number,
  dropout: { name: string; shape: number[] }[],
): string {
  const { g, cfg, same } = L;
  const oneD = cfg.dims === 1;
  let x = L.toNCHW(xtIn);
  if (cfg.centerInput) x = g.sub(g.mul(x, g.scalar(2)), g.scalar(1));
  let temb = L.linear(tembIn, "time_embedding.linear_1");
  temb = L.linear(g.silu(temb), "time_embedding.linear_2");
  const tembAct = g.silu(temb);
  const skips: string[] = [];
  let out: string | undefined;
  for (const op of unet.plan.ops) {
    switch (op.op) {
      case "conv_in":
        x = L.conv(x, "conv_in", same(3));
        break;
      case "resnet":
        if (op.popSkip) x = g.concat([x, skips.pop()!], 1);
        x = resnet(L, x, op, tembAct, rate, dropout);
        break;
      case "attention":
        x = attention(L, x, op);
        break;
      case "downsample": {
        const pads = cfg.downsamplePadding === 0
          ? [0, 0, oneD ? 0 : 1, 1]
          : oneD
          ? [0, 1, 0, 1]
          : [1, 1, 1, 1];
        x = L.conv(x, op.prefix, pads, 2);
        break;
      }
      case "upsample": {
        const [n, c, h, wd] = g.shape(x);
        const hf = oneD ? 1 : 2;
        const wide = g.expand(g.reshape(x, [n, c, h, 1, wd, 1]), [n, c, h, hf, wd, 2]);
        x = L.conv(g.reshape(wide, [n, c, h * hf, wd * 2]), op.prefix, same(3));
        break;
      }
      case "emit":
        if (op.pushSkip) skips.push(x);
        break;
      case "conv_out":
        out = L.conv(g.silu(L.groupNorm(x, "conv_norm_out", cfg.groups)), "conv_out", same(3));
        break;
    }
  }
  if (!out) throw new Error("The UNet plan has no conv_out");
  return out;
}

/** A resnet block (the skip already concatenated), with its dropout mask when `rate` > 0. */
function resnet(
  L: UNetLayers,
  x: string,
  op: Extract<PlanOp, { op: "resnet" }>,
  tembAct: string,
  rate: number,
  dropout: { name: string; shape: number[] }[],
): string {
  const { g, cfg, same } = L;
  const p = op.prefix;
  let v = L.conv(g.silu(L.groupNorm(x, `${p}.norm1`, cfg.groups)), `${p}.conv1`, same(3));
  const proj = L.linear(tembAct, `${p}.time_emb_proj`);
  v = g.add(v, g.reshape(proj, [L.batch, op.cout, 1, 1]));
  v = g.silu(L.groupNorm(v, `${p}.norm2`, cfg.groups));
  if (rate > 0) {
    const mask = g.input(`dropout.${dropout.length}`, g.shape(v));
    dropout.push({ name: mask, shape: g.shape(v) });
    v = g.mul(v, mask);
  }
  v = L.conv(v, `${p}.conv2`, same(3));
  const skip = op.cin !== op.cout ? L.conv(x, `${p}.conv_shortcut`, same(1)) : x;
  const sum = g.add(skip, v);
  return op.scale !== 1 ? g.div(sum, g.scalar(op.scale)) : sum;
}

/** A spatial self-attention block over the `H · W` positions of `input`. */
function attention(
  L: UNetLayers,
  input: string,
  op: Extract<PlanOp, { op: "attention" }>,
): string {
  const { g, batch } = L;
  const { prefix, channels: c, heads, groups, rescale } = op;
  const [, , h, wd] = g.shape(input);
  const length = h * wd;
  const hd = c / heads;
  const tokens = g.transpose(
    g.reshape(L.groupNorm(input, `${prefix}.group_norm`, groups), [batch, c, length]),
    [0, 2, 1],
  );
  const split = (t: string, perm: number[]) =>
    g.transpose(g.reshape(t, [batch, length, heads, hd]), perm);
  const q = split(L.linear(tokens, `${prefix}.to_q`), [0, 2, 1, 3]);
  const k = split(L.linear(tokens, `${prefix}.to_k`), [0, 2, 3, 1]);
  const v = split(L.linear(tokens, `${prefix}.to_v`), [0, 2, 1, 3]);
  const scores = g.mul(g.matmul(q, k), g.scalar(1 / Math.sqrt(hd)));
  const attended = g.reshape(
    g.transpose(g.matmul(g.softmax(scores), v), [0, 2, 1, 3]),
    [batch, length, c],
  );
  const projected = L.linear(attended, `${prefix}.to_out.0`);
  const spatial = g.reshape(g.transpose(projected, [0, 2, 1]), [batch, c, h, wd]);
  const sum = g.add(spatial, input);
  return rescale === 1 ? sum : g.div(sum, g.scalar(rescale));
}

/** Clipping, AdamW and the optional EMA after the gradient `grad` of the flat `params`. */
function appendUpdate(
  g: TrainGraph,
  params: string,
  grad: string,
  options: UNetGraphOptions,
  outputs: string[],
): void {
  const clipped = clipByGlobalNorm(g, [grad], options.clipNorm ?? 0);
  outputs.push(g.output(clipped.norm, "grad_norm"));
  const slots = appendAdamW(g, params, clipped.grads[0], options.adamw!);
  outputs.push(slots.out.value, slots.out.m, slots.out.v);
  if (options.ema) {
    const ema = g.input("ema", g.shape(params));
    const [d, rest] = g.split(g.input("ema_decay", [2]), 0, [1, 1]);
    outputs.push(g.output(g.add(g.mul(ema, d), g.mul(slots.out.value, rest)), "ema:new"));
  }
}

/**
 * The update that follows accumulated micro-batch gradients: inputs `params` and `grad` (`[P]`)
 * plus the AdamW (and EMA) state; outputs as {@linkcode buildUNetTrainGraph}'s update.
 */
export function buildUpdateGraph(
  size: number,
  options: UNetGraphOptions,
): { model: Uint8Array; outputs: string[]; shapes: Map<string, number[]> } {
  const g = new TrainGraph();
  const params = g.input("params", [size]);
  const grad = g.input("grad", [size]);
  const outputs: string[] = [];
  appendUpdate(g, params, grad, options, outputs);
  return {
    model: encodeTrainGraph(g, outputs),
    outputs,
    shapes: g.shapes([...g.inputs, ...outputs]),
  };
}
