/**
 * One ONNX lowering per {@linkcode PlanOp}, mirroring `UNet.forward` in `models/unet.ts`: each
 * takes the lowering context (op sink, config, weights), the op and its input values, adds the
 * nodes, and returns its output value. {@linkcode lowerPlan} runs the plan with them. The sink
 * is an {@linkcode OpSink}: the frozen extraction graph's `GraphBuilder` ({@linkcode
 * builderLowering}) or the training graph's `TrainGraph` (`_train_graph_unet.ts`), so both run
 * this one lowering. Inside, values are NCHW (signals `[N, C, 1, W]`) so that onnxruntime's CPU
 * provider can run its blocked-layout (NCHWc) convolutions.
 *
 * In extraction graphs ({@linkcode builderLowering}) weights enter as initializers named by their
 * diffusers key, in ONNX layout (a training graph gives its own weight values instead):
 * convolutions OIHW (signals `[O, I, 1, K]`), linears `[in, out]` (the TensorFlow.js layout:
 * `Gemm`/`MatMul` take them as they are), vectors `[C]`. With `fold: true` (frozen extraction)
 * some weights are folded into derived constants — q, k, v fused into one `[C, 3C]` matrix with
 * 1/√d folded into q, nearest ×2 + 3×3 convolution as four 2×2 phase kernels, norms' affine
 * parameters as `[C, 1, 1]` copies — which computes the same function faster. With `fold:
 * false` every weight is used once, as it is, by graph nodes (what a training graph needs).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { createBackbone } from "../models/backbone.ts";
 * import { GraphBuilder } from "./_graph_builder.ts";
 * import { builderLowering, lowerPlan, onnxWeights } from "./_lower_unet.ts";
 * import { asLowerable } from "./onnx_graph.ts";
 *
 * const unet = asLowerable(createBackbone({ _class_name: "UNet2DModel", block_out_channels: [32, 32],
 *   down_block_types: ["DownBlock2D", "DownBlock2D"], up_block_types: ["UpBlock2D", "UpBlock2D"],
 *   norm_num_groups: 8, sample_size: 16 }));
 * const g = new GraphBuilder();
 * const lowering = builderLowering(g, unet.resolved, onnxWeights(unet.weights), { fold: false });
 * const xt = g.input("xt", ["N", 16, 16, 3]);
 * const temb = g.input("temb", ["N", 32]);
 * const eps = lowerPlan(lowering, unet.plan.ops, { xt, temb, size: [16, 16] }, () => false);
 * assert.deepEqual([eps!.c, eps!.h, eps!.w], [3, 16, 16]);
 * assert.ok(g.has("up_blocks.0.upsamplers.0.conv.weight"));
 * unet.dispose();
 * ```
 *
 * @module
 */
import type * as tf from "@tensorflow/tfjs";
import type { ResolvedConfig } from "../models/config.ts";
import type { PlanOp } from "../models/unet_plan.ts";
import type { GraphBuilder, OpSink } from "./_graph_builder.ts";

/** How nearest ×2 upsampling + 3×3 convolution is lowered (both compute the same function). */
export type UpsampleLowering = "subpixel" | "resize";

/** A value of the graph: its name and its per-sample NCHW shape (signals: h = 1). */
export interface Activation {
  /** Value name. */
  readonly name: string;
  /** Channels. */
  readonly c: number;
  /** Height (1 for signals). */
  readonly h: number;
  /** Width. */
  readonly w: number;
}

/** A weight's values in ONNX layout. */
export interface WeightData {
  /** Shape. */
  dims: number[];
  /** Row-major float32 values. */
  data: Float32Array;
}

/** Where the lowering reads weights. */
export interface OnnxWeights {
  /** A convolution kernel as OIHW (signals: `[O, I, 1, K]`). */
  conv(key: string): WeightData;
  /** Any other weight as stored (linears `[in, out]`, vectors `[C]`). */
  raw(key: string): WeightData;
}

/**
 * What every lowering needs. The ops go to a sink (`GraphBuilder` for extraction, `TrainGraph`
 * for training); weights are values of that sink, named by their diffusers key.
 */
export interface Lowering<S extends OpSink = OpSink> {
  /** Where the nodes go. */
  readonly g: S;
  /** The backbone's resolved config. */
  readonly cfg: ResolvedConfig;
  /** Weight `key` as stored (linears `[in, out]`, vectors `[C]`). */
  param(key: string): string;
  /** Convolution kernel `key` as OIHW (signals: `[O, I, 1, K]`). */
  kernel(key: string): string;
  /** Folding weights into derived constants (frozen extraction only); absent: each weight once. */
  readonly fold?: Folding;
  /** Training: dropout applied to a resnet's hidden value (after `norm2` and SiLU). */
  dropout?(x: Activation): string;
}

/** What folding weights into constants needs: the builder and the weights' values. */
export interface Folding {
  /** The graph being built (the lowering's sink). */
  readonly g: GraphBuilder;
  /** The weights. */
  readonly weights: OnnxWeights;
  /** Upsampler lowering for images (default `"subpixel"`); signals always use `"resize"`. */
  readonly upsample?: UpsampleLowering;
}

/**
 * The lowering of a frozen extraction graph on `g`: weights become initializers named by their
 * key; with `fold` some are folded into derived constants (see the module doc).
 */
export function builderLowering(
  g: GraphBuilder,
  cfg: ResolvedConfig,
  weights: OnnxWeights,
  options: { fold: boolean; upsample?: UpsampleLowering },
): Lowering<GraphBuilder> {
  return {
    g,
    cfg,
    param(key) {
      if (g.has(key)) return key;
      const { dims, data } = weights.raw(key);
      return g.floats(key, dims, data);
    },
    kernel(key) {
      if (g.has(key)) return key;
      const { dims, data } = weights.conv(key);
      return g.floats(key, dims, data);
    },
    fold: options.fold ? { g, weights, upsample: options.upsample } : undefined,
  };
}

/**
 * Reads TensorFlow.js-layout weights (`[kh, kw, in, out]` convolutions, `[in, out]` linears) in
 * ONNX layout. The backbone's weight map is the one source of truth (training updates it in
 * place), so convolutions are transposed back to OIHW here, once per graph, rather than kept in
 * a second copy from the checkpoint.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import * as tf from "@tensorflow/tfjs";
 * import { onnxWeights } from "./_lower_unet.ts";
 *
 * // A 1×1 convolution from 2 to 3 channels, HWIO: [1, 1, 2, 3].
 * const w = tf.tensor([1, 2, 3, 4, 5, 6], [1, 1, 2, 3]);
 * const conv = onnxWeights(new Map([["c.weight", w]])).conv("c.weight");
 * assert.deepEqual(conv.dims, [3, 2, 1, 1]);
 * assert.deepEqual([...conv.data], [1, 4, 2, 5, 3, 6]);
 * w.dispose();
 * ```
 */
export function onnxWeights(weights: ReadonlyMap<string, tf.Tensor>): OnnxWeights {
  const get = (key: string): tf.Tensor => {
    const w = weights.get(key);
    if (!w) throw new RangeError(`Missing weight "${key}": the backbone is incomplete or disposed`);
    return w;
  };
  return {
    conv(key) {
      const w = get(key);
      const [kh, kw, ci, co] = w.shape;
      const src = w.dataSync() as Float32Array;
      const data = new Float32Array(src.length);
      // [kh, kw, ci, co] -> [co, ci, kh, kw]
      for (let y = 0; y < kh; y++) {
        for (let x = 0; x < kw; x++) {
          for (let i = 0; i < ci; i++) {
            const from = ((y * kw + x) * ci + i) * co;
            const to = (i * kh + y) * kw + x;
            for (let o = 0; o < co; o++) data[o * ci * kh * kw + to] = src[from + o];
          }
        }
      }
      return { dims: [co, ci, kh, kw], data };
    },
    raw(key) {
      const w = get(key);
      return { dims: [...w.shape], data: w.dataSync().slice() as Float32Array };
    },
  };
}

type Pads = [number, number, number, number];

const oneD = (L: Lowering): boolean => L.cfg.dims === 1;

/** Padding of a "same" convolution of kernel k (1 or 3). */
function same(L: Lowering, k: number): Pads {
  return k === 1 ? [0, 0, 0, 0] : oneD(L) ? [0, 1, 0, 1] : [1, 1, 1, 1];
}

/** `input · W + b` with the linear `prefix` (`[N, in]` → `[N, out]`). */
export function linear(L: Lowering, input: string, prefix: string): string {
  return L.g.gemm(input, L.param(`${prefix}.weight`), L.param(`${prefix}.bias`));
}

/** The convolution `prefix` (its kernel in OIHW under `${prefix}.weight`). */
export function conv(L: Lowering, input: string, prefix: string, pads: Pads, stride = 1): string {
  const kernel = L.kernel(`${prefix}.weight`);
  return L.g.conv(input, kernel, L.param(`${prefix}.bias`), pads, [oneD(L) ? 1 : stride, stride]);
}

/** A per-channel vector `key` as `[C, 1, 1]`, to broadcast over NCHW. */
function perChannel(L: Lowering, key: string, c: number): string {
  if (!L.fold) return L.g.reshape(L.param(key), [c, 1, 1]);
  return L.fold.g.floats(`${key}:c11`, [c, 1, 1], L.fold.weights.raw(key).data);
}

/**
 * GroupNorm as onnxruntime runs it fastest: each sample's groups normalised as the rows of
 * `[N, G, −1]` (`InstanceNormalization` for extraction), then the per-channel affine. An
 * `addend` (`[N, C]`, constant over positions: the projected time embedding) is added first.
 */
export function groupNorm(
  L: Lowering,
  x: Activation,
  prefix: string,
  groups: number,
  addend?: string,
): string {
  const { g } = L;
  let input = x.name;
  if (addend) input = g.add(input, g.reshape(addend, [0, x.c, 1, 1]));
  const grouped = g.reshape(input, [0, groups, -1]);
  const normed = g.normalizeRows(grouped, groups, L.cfg.eps);
  const back = g.reshape(normed, [0, x.c, x.h, x.w]);
  return g.add(
    g.mul(back, perChannel(L, `${prefix}.weight`, x.c)),
    perChannel(L, `${prefix}.bias`, x.c),
  );
}

const withName = (x: Activation, name: string, c = x.c): Activation => ({ ...x, name, c });

/**
 * Graph input `xt` (NHWC, or NWC for signals, of spatial `size`) as NCHW (`[N, C, 1, W]`),
 * centred to `2x − 1` when the config asks.
 */
export function lowerInput(L: Lowering, xt: string, size: readonly number[]): Activation {
  const x = toNCHW(L, xt, size);
  if (!L.cfg.centerInput) return x;
  return withName(x, L.g.sub(L.g.mul(x.name, L.g.scalar(2)), L.g.scalar(1)));
}

/** Data `v` (NHWC, or NWC for signals, of spatial `size`) as NCHW (`[N, C, 1, W]`). */
export function toNCHW(L: Lowering, v: string, size: readonly number[]): Activation {
  const { g } = L;
  const c = L.cfg.inChannels;
  const [h, w] = oneD(L) ? [1, size[0]] : [size[0], size[1]];
  const x = oneD(L)
    ? g.reshape(g.transpose(v, [0, 2, 1]), [0, c, 1, w])
    : g.transpose(v, [0, 3, 1, 2]);
  return { name: x, c, h, w };
}

/**
 * The time-embedding MLP on graph input `temb` (`[N, ch0]`, see `timeEmbeddingInput`), followed
 * by the SiLU every ResNet applies before its projection: `silu(linear_2(silu(linear_1(temb))))`.
 */
export function lowerTimeEmbedding(L: Lowering, temb: string): string {
  const hidden = L.g.silu(linear(L, temb, "time_embedding.linear_1"));
  return L.g.silu(linear(L, hidden, "time_embedding.linear_2"));
}

/** `conv_in`: a 3×3 convolution. */
export function lowerConvIn(
  L: Lowering,
  op: Extract<PlanOp, { op: "conv_in" }>,
  x: Activation,
): Activation {
  return withName(x, conv(L, x.name, "conv_in", same(L, 3)), op.cout);
}

/**
 * A ResNet block (diffusers' `ResnetBlock2D`): the skip is concatenated first when the op pops
 * one; `tembAct` is {@linkcode lowerTimeEmbedding}'s output.
 */
export function lowerResnet(
  L: Lowering,
  op: Extract<PlanOp, { op: "resnet" }>,
  x: Activation,
  tembAct: string,
  skip?: Activation,
): Activation {
  const { g, cfg } = L;
  if (op.popSkip) {
    if (!skip) throw new RangeError(`${op.prefix} needs a skip connection`);
    x = withName(x, g.concat([x.name, skip.name], 1), x.c + skip.c);
  }
  const p = op.prefix;
  let v = withName(x, g.silu(groupNorm(L, x, `${p}.norm1`, cfg.groups)));
  v = withName(v, conv(L, v.name, `${p}.conv1`, same(L, 3)), op.cout);
  const proj = linear(L, tembAct, `${p}.time_emb_proj`);
  v = withName(v, g.silu(groupNorm(L, v, `${p}.norm2`, cfg.groups, proj)));
  if (L.dropout) v = withName(v, L.dropout(v));
  v = withName(v, conv(L, v.name, `${p}.conv2`, same(L, 3)));
  const shortcut = op.cin !== op.cout ? conv(L, x.name, `${p}.conv_shortcut`, same(L, 1)) : x.name;
  let out = g.add(shortcut, v.name);
  if (op.scale !== 1) out = g.div(out, g.scalar(op.scale));
  return withName(x, out, op.cout);
}

/** q, k, v projections (`[N, L, C]` each), scaled by 1/√d in q. */
function projectQkv(L: Lowering, prefix: string, tokens: string, c: number, d: number): string[] {
  const { g } = L;
  // Fold 1/sqrt(d) into the query projection (as float32, as the unfolded Mul computes it).
  const scale = Math.fround(1 / Math.sqrt(d));
  if (!L.fold) {
    return ["to_q", "to_k", "to_v"].map((p, j) => {
      const v = g.add(
        g.matmul(tokens, L.param(`${prefix}.${p}.weight`)),
        L.param(`${prefix}.${p}.bias`),
      );
      return j === 0 ? g.mul(v, g.scalar(scale)) : v;
    });
  }
  // Fuse q, k, v into one [C, 3C] MatMul.
  const { g: b, weights } = L.fold;
  const wqkv = new Float32Array(c * 3 * c);
  const bqkv = new Float32Array(3 * c);
  ["to_q", "to_k", "to_v"].forEach((p, j) => {
    const weight = weights.raw(`${prefix}.${p}.weight`).data;
    const bias = weights.raw(`${prefix}.${p}.bias`).data;
    const s = j === 0 ? scale : 1;
    for (let i = 0; i < c; i++) {
      for (let o = 0; o < c; o++) wqkv[i * 3 * c + j * c + o] = weight[i * c + o] * s;
    }
    for (let o = 0; o < c; o++) bqkv[j * c + o] = bias[o] * s;
  });
  const qkv = b.add(
    b.matmul(tokens, b.floats(`${prefix}.to_qkv.weight`, [c, 3 * c], wqkv)),
    b.floats(`${prefix}.to_qkv.bias`, [3 * c], bqkv),
  );
  return b.node("Split", [qkv], { axis: 2 }, 3);
}

/** A spatial self-attention block (diffusers' `Attention` with a group norm and a residual). */
export function lowerAttention(
  L: Lowering,
  op: Extract<PlanOp, { op: "attention" }>,
  x: Activation,
): Activation {
  const { g } = L;
  const { prefix, channels: c, heads, groups, rescale } = op;
  const d = c / heads;
  const normed = groupNorm(L, x, `${prefix}.group_norm`, groups);
  const tokens = g.transpose(g.reshape(normed, [0, c, x.h * x.w]), [0, 2, 1]);
  const [q, k, v] = projectQkv(L, prefix, tokens, c, d);
  let attended: string;
  if (heads === 1) {
    const scores = g.matmul(q, g.transpose(k, [0, 2, 1]));
    attended = g.matmul(g.softmax(scores), v);
  } else {
    const split = (t: string, perm: number[]) => g.transpose(g.reshape(t, [0, 0, heads, d]), perm);
    const scores = g.matmul(split(q, [0, 2, 1, 3]), split(k, [0, 2, 3, 1]));
    const o = g.matmul(g.softmax(scores), split(v, [0, 2, 1, 3]));
    attended = g.reshape(g.transpose(o, [0, 2, 1, 3]), [0, 0, c]);
  }
  const projected = g.add(
    g.matmul(attended, L.param(`${prefix}.to_out.0.weight`)),
    L.param(`${prefix}.to_out.0.bias`),
  );
  const spatial = g.reshape(g.transpose(projected, [0, 2, 1]), [0, c, x.h, x.w]);
  const sum = g.add(spatial, x.name);
  return withName(x, rescale === 1 ? sum : g.div(sum, g.scalar(rescale)));
}

/** A stride-2 3×3 convolution (diffusers' `Downsample2D`; padding 0 pads bottom/right by 1). */
export function lowerDownsample(
  L: Lowering,
  op: Extract<PlanOp, { op: "downsample" }>,
  x: Activation,
): Activation {
  const padding = L.cfg.downsamplePadding;
  const pads: Pads = padding === 0
    ? [0, 0, oneD(L) ? 0 : 1, 1]
    : oneD(L)
    ? [0, 1, 0, 1]
    : [1, 1, 1, 1];
  const half = (n: number) => Math.floor((n + (padding === 0 ? 1 : 2) - 3) / 2) + 1;
  const out = conv(L, x.name, op.prefix, pads, 2);
  return { name: out, c: x.c, h: oneD(L) ? 1 : half(x.h), w: half(x.w) };
}

/** Nearest ×2 upsampling then a 3×3 convolution (diffusers' `Upsample2D`). */
export function lowerUpsample(
  L: Lowering,
  op: Extract<PlanOp, { op: "upsample" }>,
  x: Activation,
): Activation {
  const fold = oneD(L) ? undefined : L.fold;
  const out = fold && (fold.upsample ?? "subpixel") === "subpixel"
    ? subpixelUpsample(L, fold, x.name, op.prefix)
    : conv(L, L.g.upsampleNearest(x.name, [oneD(L) ? 1 : 2, 2], op.prefix), op.prefix, same(L, 3));
  return { name: out, c: x.c, h: oneD(L) ? 1 : x.h * 2, w: x.w * 2 };
}

/**
 * Nearest ×2 then a 3×3 convolution (padding 1): output pixel (2i + a, 2j + b) only sees input
 * rows {i − 1, i} (a = 0) or {i, i + 1} (a = 1), with the kernel rows that land on the same
 * input row summed; likewise for columns. So each of the 4 phases is a 2×2 convolution of the
 * input, and `DepthToSpace` (DCR) interleaves them: the same function with 2.25× fewer
 * multiply-adds.
 */
function subpixelUpsample(L: Lowering, F: Folding, input: string, prefix: string): string {
  const { g } = F;
  const { dims, data } = F.weights.conv(`${prefix}.weight`);
  const [o, i] = dims;
  const bias = L.param(`${prefix}.bias`);
  // Row (or column) taps of phase a: which kernel rows sum into each of the 2 input rows.
  const taps = [[[0], [1, 2]], [[0, 1], [2]]];
  const phases: string[] = [];
  for (const a of [0, 1]) {
    for (const b of [0, 1]) {
      const k = new Float32Array(o * i * 4);
      for (let oc = 0; oc < o; oc++) {
        for (let ic = 0; ic < i; ic++) {
          const base = (oc * i + ic) * 9;
          for (let r = 0; r < 2; r++) {
            for (let s = 0; s < 2; s++) {
              let sum = 0;
              for (const kr of taps[a][r]) {
                for (const ks of taps[b][s]) sum += data[base + kr * 3 + ks];
              }
              k[(oc * i + ic) * 4 + r * 2 + s] = sum;
            }
          }
        }
      }
      const kernel = g.floats(`${prefix}.weight:phase${a}${b}`, [o, i, 2, 2], k);
      const pads = [a === 0 ? 1 : 0, b === 0 ? 1 : 0, a === 0 ? 0 : 1, b === 0 ? 0 : 1];
      phases.push(g.conv(input, kernel, bias, pads, [1, 1]));
    }
  }
  return g.op("DepthToSpace", [g.concat(phases, 1)], { blocksize: 2, mode: "DCR" });
}

/** `conv_out` after `conv_norm_out` and SiLU: the noise prediction. */
export function lowerConvOut(
  L: Lowering,
  op: Extract<PlanOp, { op: "conv_out" }>,
  x: Activation,
): Activation {
  const v = L.g.silu(groupNorm(L, x, "conv_norm_out", L.cfg.groups));
  return withName(x, conv(L, v, "conv_out", same(L, 3)), op.cout);
}

/**
 * Writes `x` as graph output `name` in NHWC (signals NWC) and declares it; returns the
 * per-sample output shape (`[H, W, C]` or `[W, C]`).
 */
export function lowerOutput(L: Lowering<GraphBuilder>, x: Activation, name: string): number[] {
  const { g } = L;
  if (oneD(L)) {
    const flat = g.reshape(x.name, [0, x.c, x.w]);
    g.node("Transpose", [flat], { perm: [0, 2, 1] }, [name]);
  } else g.node("Transpose", [x.name], { perm: [0, 2, 3, 1] }, [name]);
  const shape = oneD(L) ? [x.w, x.c] : [x.h, x.w, x.c];
  g.output(name, ["N", ...shape]);
  return shape;
}

/**
 * Lowers `ops` (a plan's operations) on graph inputs `xt` (NHWC/NWC of spatial `size`) and
 * `temb`, in the order `UNet.forward` runs them. `onEmit(position, value)` is called at every
 * tappable block output (its position among the plan's blocks) and returns true to stop there.
 * Returns the noise prediction (NCHW) when `conv_out` is reached, else null.
 */
export function lowerPlan(
  L: Lowering,
  ops: readonly PlanOp[],
  inputs: { xt: string; temb: string; size: readonly number[] },
  onEmit: (position: number, value: Activation) => boolean,
): Activation | null {
  let x = lowerInput(L, inputs.xt, inputs.size);
  let tembAct: string | undefined;
  const skips: Activation[] = [];
  for (const op of ops) {
    switch (op.op) {
      case "conv_in":
        x = lowerConvIn(L, op, x);
        break;
      case "resnet":
        tembAct ??= lowerTimeEmbedding(L, inputs.temb);
        x = lowerResnet(L, op, x, tembAct, op.popSkip ? skips.pop() : undefined);
        break;
      case "attention":
        x = lowerAttention(L, op, x);
        break;
      case "downsample":
        x = lowerDownsample(L, op, x);
        break;
      case "upsample":
        x = lowerUpsample(L, op, x);
        break;
      case "emit":
        if (op.pushSkip) skips.push(x);
        if (onEmit(op.block, x)) return null;
        break;
      case "conv_out":
        return lowerConvOut(L, op, x);
    }
  }
  return null;
}
