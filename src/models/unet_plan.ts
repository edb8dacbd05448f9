/**
 * The UNet as data: the ordered list of operations a diffusers `UNet2DModel` (or our 1-D twin)
 * runs, with the weights each one owns and the block outputs it emits. The forward pass, the
 * weight shapes, the block registry and the parameter count are all read off this one plan.
 *
 * Blocks are named by diffusers module paths and numbered 1, 2, … in execution order, as in
 * guided-diffusion and the probing literature: `conv_in`, each down level's layers
 * (`down_blocks.i.j`) and downsampler (`down_blocks.i.downsample`), `mid_block`, each up level's
 * layers (`up_blocks.i.j`) and upsampler (`up_blocks.i.upsample`). The last layer of an up level
 * that upsamples counts as its upsample output: it is tappable by name only (`up_blocks.0.2`).
 * For the DDPM CIFAR-10 UNet (4 levels, 2 layers each) that gives 25 blocks: 1 `conv_in`,
 * 13 `mid_block`, 17 `up_blocks.1.0`, 24 `up_blocks.3.1`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { resolveConfig } from "./config.ts";
 * import { unetPlan } from "./unet_plan.ts";
 *
 * const plan = unetPlan(resolveConfig({
 *   _class_name: "UNet2DModel", block_out_channels: [32, 64], layers_per_block: 1,
 *   down_block_types: ["DownBlock2D", "AttnDownBlock2D"], up_block_types: ["AttnUpBlock2D", "UpBlock2D"],
 *   norm_num_groups: 8, sample_size: 16,
 * }));
 * assert.deepEqual(plan.blocks.map((b) => b.name).slice(0, 3), ["conv_in", "down_blocks.0.0", "down_blocks.0.downsample"]);
 * ```
 *
 * @module
 */
import type { ResolvedConfig } from "./config.ts";

/** One step of the forward pass. */
export type PlanOp =
  | { op: "conv_in"; cout: number }
  | { op: "resnet"; prefix: string; cin: number; cout: number; scale: number; popSkip: boolean }
  | {
    op: "attention";
    prefix: string;
    channels: number;
    heads: number;
    groups: number;
    rescale: number;
  }
  | { op: "downsample"; prefix: string; channels: number }
  | { op: "upsample"; prefix: string; channels: number }
  | { op: "emit"; block: number; pushSkip: boolean }
  | { op: "conv_out"; cin: number; cout: number };

/** A block whose output can be tapped. */
export interface BlockInfo {
  /** 1-based number in execution order, or null when reachable by name only. */
  readonly index: number | null;
  /** diffusers-style module path, e.g. `"up_blocks.1.0"`. */
  readonly name: string;
  /** Output channels. */
  readonly channels: number;
  /** Per-sample output shape at the config's sample size: `[H, W, C]` (images) or `[W, C]` (signals). */
  readonly shape: readonly number[];
  /** Position in execution order among all tappable outputs (0-based, including unnumbered ones). */
  readonly position: number;
}

/** The plan of a UNet. */
export interface UNetPlan {
  /** Operations in execution order. */
  ops: PlanOp[];
  /** Every tappable output in execution order (numbered and name-only). */
  blocks: BlockInfo[];
  /** PyTorch-layout shapes of every weight, in a stable order. */
  weights: Map<string, number[]>;
}

/**
 * Builds the plan of the UNet described by `cfg`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { resolveConfig } from "./config.ts";
 * import { unetPlan } from "./unet_plan.ts";
 *
 * const plan = unetPlan(resolveConfig({ _class_name: "UNet2DModel", block_out_channels: [32, 64],
 *   down_block_types: ["DownBlock2D", "DownBlock2D"], up_block_types: ["UpBlock2D", "UpBlock2D"], norm_num_groups: 8 }));
 * assert.deepEqual(plan.weights.get("conv_in.weight"), [32, 3, 3, 3]);
 * ```
 */
export function unetPlan(cfg: ResolvedConfig): UNetPlan {
  const b = new PlanBuilder(cfg);
  const ch = cfg.channels;
  b.dense("time_embedding.linear_1", cfg.timeEmbedDim, ch[0]);
  b.dense("time_embedding.linear_2", cfg.timeEmbedDim, cfg.timeEmbedDim);
  b.conv("conv_in", ch[0], cfg.inChannels);
  b.ops.push({ op: "conv_in", cout: ch[0] });
  b.emit("conv_in", ch[0], true, true);
  const skips = downPath(b);
  midBlock(b);
  upPath(b, skips);
  b.vec("conv_norm_out", ch[0]);
  b.conv("conv_out", cfg.outChannels, ch[0]);
  b.ops.push({ op: "conv_out", cin: ch[0], cout: cfg.outChannels });
  return { ops: b.ops, blocks: b.blocks, weights: b.weights };
}

/** The down levels (diffusers' `down_blocks`); returns the channels of every skip pushed. */
function downPath(b: PlanBuilder): number[] {
  const { channels: ch, layersPerBlock, downAttention, groups } = b.cfg;
  const skips: number[] = [ch[0]];
  for (let i = 0; i < ch.length; i++) {
    const cin = i === 0 ? ch[0] : ch[i - 1];
    for (let j = 0; j < layersPerBlock; j++) {
      b.resnet(`down_blocks.${i}.resnets.${j}`, j === 0 ? cin : ch[i], ch[i], 1, false);
      if (downAttention[i]) b.attention(`down_blocks.${i}.attentions.${j}`, ch[i], groups, 1);
      b.emit(`down_blocks.${i}.${j}`, ch[i], true, true);
      skips.push(ch[i]);
    }
    if (i < ch.length - 1) {
      const prefix = `down_blocks.${i}.downsamplers.0.conv`;
      b.conv(prefix, ch[i], ch[i]);
      b.ops.push({ op: "downsample", prefix, channels: ch[i] });
      b.resize((n) => Math.floor((n + (b.cfg.downsamplePadding === 0 ? 1 : 2) - 3) / 2) + 1);
      b.emit(`down_blocks.${i}.downsample`, ch[i], true, true);
      skips.push(ch[i]);
    }
  }
  return skips;
}

/** `mid_block`: ResNet, optional attention, ResNet. */
function midBlock(b: PlanBuilder): void {
  const { channels, midScale, midAttention, midAttentionGroups } = b.cfg;
  const deepest = channels[channels.length - 1];
  b.resnet("mid_block.resnets.0", deepest, deepest, midScale, false);
  if (midAttention) b.attention("mid_block.attentions.0", deepest, midAttentionGroups, midScale);
  b.resnet("mid_block.resnets.1", deepest, deepest, midScale, false);
  b.emit("mid_block", deepest, true, false);
}

/** The up levels (diffusers' `up_blocks`), each layer popping one skip. */
function upPath(b: PlanBuilder, skips: number[]): void {
  const { channels, layersPerBlock: last, upAttention, groups } = b.cfg;
  const reversed = [...channels].reverse();
  for (let i = 0; i < reversed.length; i++) {
    const prev = i === 0 ? reversed[0] : reversed[i - 1];
    const out = reversed[i];
    const upsamples = i < reversed.length - 1;
    for (let j = 0; j <= last; j++) {
      const resIn = (j === 0 ? prev : out) + skips.pop()!;
      b.resnet(`up_blocks.${i}.resnets.${j}`, resIn, out, 1, true);
      if (upAttention[i]) b.attention(`up_blocks.${i}.attentions.${j}`, out, groups, 1);
      b.emit(`up_blocks.${i}.${j}`, out, !(upsamples && j === last), false);
    }
    if (upsamples) {
      const prefix = `up_blocks.${i}.upsamplers.0.conv`;
      b.conv(prefix, out, out);
      b.ops.push({ op: "upsample", prefix, channels: out });
      b.resize((n) => n * 2);
      b.emit(`up_blocks.${i}.upsample`, out, true, false);
    }
  }
}

/** Accumulates a plan: its ops, tappable blocks, weight shapes and the current map size. */
class PlanBuilder {
  readonly ops: PlanOp[] = [];
  readonly blocks: BlockInfo[] = [];
  readonly weights = new Map<string, number[]>();
  #h: number;
  #w: number;
  #numbered = 0;

  constructor(readonly cfg: ResolvedConfig) {
    [this.#h, this.#w] = cfg.sampleSize;
  }

  /** A norm's `weight` and `bias`. */
  vec(name: string, n: number): void {
    this.weights.set(`${name}.weight`, [n]);
    this.weights.set(`${name}.bias`, [n]);
  }

  /** A convolution (3×3, or 3 for signals, unless `kernel` says). */
  conv(name: string, cout: number, cin: number, kernel = this.cfg.dims === 2 ? [3, 3] : [3]): void {
    this.weights.set(`${name}.weight`, [cout, cin, ...kernel]);
    this.weights.set(`${name}.bias`, [cout]);
  }

  /** A linear layer, PyTorch layout `[out, in]`. */
  dense(name: string, cout: number, cin: number): void {
    this.weights.set(`${name}.weight`, [cout, cin]);
    this.weights.set(`${name}.bias`, [cout]);
  }

  /** Applies a resampling to the map size (height too for images). */
  resize(f: (n: number) => number): void {
    if (this.cfg.dims === 2) this.#h = f(this.#h);
    this.#w = f(this.#w);
  }

  /** A tappable output (numbered when `counted`); `pushSkip` keeps it for the up path. */
  emit(name: string, channels: number, counted: boolean, pushSkip: boolean): void {
    const index = counted ? ++this.#numbered : null;
    const shape = this.cfg.dims === 2 ? [this.#h, this.#w, channels] : [this.#w, channels];
    this.blocks.push({ index, name, channels, shape, position: this.blocks.length });
    this.ops.push({ op: "emit", block: this.blocks.length - 1, pushSkip });
  }

  /** A ResNet block (diffusers' `ResnetBlock2D`). */
  resnet(prefix: string, cin: number, cout: number, scale: number, popSkip: boolean): void {
    this.vec(`${prefix}.norm1`, cin);
    this.conv(`${prefix}.conv1`, cout, cin);
    this.dense(`${prefix}.time_emb_proj`, cout, this.cfg.timeEmbedDim);
    this.vec(`${prefix}.norm2`, cout);
    this.conv(`${prefix}.conv2`, cout, cout);
    if (cin !== cout) {
      this.conv(`${prefix}.conv_shortcut`, cout, cin, this.cfg.dims === 2 ? [1, 1] : [1]);
    }
    this.ops.push({ op: "resnet", prefix, cin, cout, scale, popSkip });
  }

  /** A spatial self-attention block. */
  attention(prefix: string, c: number, groups: number, rescale: number): void {
    this.vec(`${prefix}.group_norm`, c);
    for (const p of ["to_q", "to_k", "to_v", "to_out.0"]) this.dense(`${prefix}.${p}`, c, c);
    const heads = this.cfg.attentionHeadDim === null ? 1 : c / this.cfg.attentionHeadDim;
    this.ops.push({ op: "attention", prefix, channels: c, heads, groups, rescale });
  }
}
