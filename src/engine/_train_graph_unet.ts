/**
 * The diffusion training step of a UNet as one ONNX graph: the forward pass is the extraction
 * graph's lowering of the plan (`lowerPlan` of `_lower_unet.ts`, unfolded, into a `TrainGraph`)
 * in training mode (dropout as a multiplication by mask inputs), then the eps-prediction MSE loss,
 * the backward pass derived by `_autodiff.ts`, and optionally clipping to a global norm and the
 * AdamW update. Internal to `src/engine/`.
 *
 * Weights are one flat graph input `params` (in plan order), sliced to the TensorFlow.js layout
 * the backbone holds (convolutions `[kh, kw, in, out]`, transposed to OIHW in the graph; linears
 * `[in, out]`), so gradients come out in that layout too; inside, the graph is NCHW (signals
 * `[N, C, 1, W]`). Inputs: `xt` and `noise` (`[N, H, W, C]`, or `[N, W, C]`), `temb`
 * (`[N, ch0]`, the sinusoidal embedding, no gradient), and one dropout multiplier
 * `dropout.<k>` per resnet (`[N, C, H, W]`, values 0 or 1/(1 − p)) when the model has dropout.
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
import type { LowerableBackbone } from "./onnx_graph.ts";
import { TrainGraph } from "./_autodiff.ts";
import type { ResolvedConfig } from "../models/config.ts";
import { type Activation, type Lowering, lowerPlan, toNCHW } from "./_lower_unet.ts";
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

  // 2. The forward pass along the plan (the extraction graph's lowering, unfolded).
  const dropout: { name: string; shape: number[] }[] = [];
  const L = trainLowering(g, cfg, get, options.dropout ?? cfg.dropout, dropout);
  const size = cfg.dims === 1 ? [wd] : [h, wd];
  const out = lowerPlan(L, unet.plan.ops, { xt: xtIn, temb: tembIn, size }, () => false);
  if (!out) throw new Error("The UNet plan has no conv_out");

  // 3. The eps-prediction MSE loss.
  const d = g.sub(out.name, toNCHW(L, noiseIn, size).name);
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

/**
 * The lowering of the training forward pass on `g`: weights are the slices `get` returns
 * (kernels transposed to OIHW), and with `rate` > 0 each resnet's hidden value is multiplied by
 * a mask input `dropout.<k>`, recorded in `dropout`.
 */
function trainLowering(
  g: TrainGraph,
  cfg: ResolvedConfig,
  get: (key: string) => string,
  rate: number,
  dropout: { name: string; shape: number[] }[],
): Lowering {
  const mask = (v: Activation): string => {
    const name = g.input(`dropout.${dropout.length}`, g.shape(v.name));
    dropout.push({ name, shape: g.shape(name) });
    return g.mul(v.name, name);
  };
  return {
    g,
    cfg,
    param: get,
    kernel: (key) => g.transpose(get(key), [3, 2, 0, 1]),
    dropout: rate > 0 ? mask : undefined,
  };
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
