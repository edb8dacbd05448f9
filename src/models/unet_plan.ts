/**
 * The UNet as data: the ordered list of operations a diffusers `UNet2DModel` (or our 1-D twin)
 * runs, with the weights each one owns and the block outputs it emits. The forward pass, the
 * weight shapes, the block registry and the parameter count are all read off this one plan.
 *
 * @example
 * ```ts
 * import { resolveConfig } from "./config.ts";
 * import { unetPlan } from "./unet_plan.ts";
 *
 * const plan = unetPlan(resolveConfig({
 *   _class_name: "UNet2DModel", block_out_channels: [32, 64], layers_per_block: 1,
 *   down_block_types: ["DownBlock2D", "AttnDownBlock2D"], up_block_types: ["AttnUpBlock2D", "UpBlock2D"],
 *   norm_num_groups: 8, sample_size: 16,
 * }));
 * console.log(plan.blocks.map((b) => b.name).slice(0, 3)); // ["conv_in", "down_blocks.0.0", "down_blocks.0.downsample"]
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
  /** 1-based number in execution order (API.md's convention), or null when reachable by name only. */
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
 * import { resolveConfig } from "./config.ts";
 * import { unetPlan } from "./unet_plan.ts";
 *
 * const plan = unetPlan(resolveConfig({ _class_name: "UNet2DModel", block_out_channels: [32, 64],
 *   down_block_types: ["DownBlock2D", "DownBlock2D"], up_block_types: ["UpBlock2D", "UpBlock2D"], norm_num_groups: 8 }));
 * console.log(plan.weights.get("conv_in.weight")); // [32, 3, 3, 3]
 * ```
 */
export function unetPlan(cfg: ResolvedConfig): UNetPlan {
  const ops: PlanOp[] = [];
  const blocks: BlockInfo[] = [];
  const weights = new Map<string, number[]>();
  const k = cfg.dims === 2 ? [3, 3] : [3];
  const one = cfg.dims === 2 ? [1, 1] : [1];
  const ch = cfg.channels;
  const levels = ch.length;
  const ted = cfg.timeEmbedDim;
  let [h, w] = cfg.sampleSize;
  let numbered = 0;

  const vec = (name: string, n: number) => {
    weights.set(`${name}.weight`, [n]);
    weights.set(`${name}.bias`, [n]);
  };
  const convW = (name: string, cout: number, cin: number, kernel = k) => {
    weights.set(`${name}.weight`, [cout, cin, ...kernel]);
    weights.set(`${name}.bias`, [cout]);
  };
  const dense = (name: string, cout: number, cin: number) => {
    weights.set(`${name}.weight`, [cout, cin]);
    weights.set(`${name}.bias`, [cout]);
  };
  const emit = (name: string, channels: number, counted: boolean, pushSkip: boolean) => {
    const index = counted ? ++numbered : null;
    const shape = cfg.dims === 2 ? [h, w, channels] : [w, channels];
    blocks.push({ index, name, channels, shape, position: blocks.length });
    ops.push({ op: "emit", block: blocks.length - 1, pushSkip });
  };
  const resnet = (prefix: string, cin: number, cout: number, scale: number, popSkip: boolean) => {
    vec(`${prefix}.norm1`, cin);
    convW(`${prefix}.conv1`, cout, cin);
    dense(`${prefix}.time_emb_proj`, cout, ted);
    vec(`${prefix}.norm2`, cout);
    convW(`${prefix}.conv2`, cout, cout);
    if (cin !== cout) convW(`${prefix}.conv_shortcut`, cout, cin, one);
    ops.push({ op: "resnet", prefix, cin, cout, scale, popSkip });
  };
  const attention = (prefix: string, c: number, groups: number, rescale: number) => {
    vec(`${prefix}.group_norm`, c);
    for (const p of ["to_q", "to_k", "to_v", "to_out.0"]) dense(`${prefix}.${p}`, c, c);
    const heads = cfg.attentionHeadDim === null ? 1 : c / cfg.attentionHeadDim;
    ops.push({ op: "attention", prefix, channels: c, heads, groups, rescale });
  };

  dense("time_embedding.linear_1", ted, ch[0]);
  dense("time_embedding.linear_2", ted, ted);
  convW("conv_in", ch[0], cfg.inChannels);
  ops.push({ op: "conv_in", cout: ch[0] });
  emit("conv_in", ch[0], true, true);

  const skipChannels: number[] = [ch[0]];
  for (let i = 0; i < levels; i++) {
    const cin = i === 0 ? ch[0] : ch[i - 1];
    for (let j = 0; j < cfg.layersPerBlock; j++) {
      resnet(`down_blocks.${i}.resnets.${j}`, j === 0 ? cin : ch[i], ch[i], 1, false);
      if (cfg.downAttention[i]) attention(`down_blocks.${i}.attentions.${j}`, ch[i], cfg.groups, 1);
      emit(`down_blocks.${i}.${j}`, ch[i], true, true);
      skipChannels.push(ch[i]);
    }
    if (i < levels - 1) {
      const prefix = `down_blocks.${i}.downsamplers.0.conv`;
      convW(prefix, ch[i], ch[i]);
      ops.push({ op: "downsample", prefix, channels: ch[i] });
      const half = (n: number) =>
        Math.floor((n + (cfg.downsamplePadding === 0 ? 1 : 2) - 3) / 2) + 1;
      if (cfg.dims === 2) h = half(h);
      w = half(w);
      emit(`down_blocks.${i}.downsample`, ch[i], true, true);
      skipChannels.push(ch[i]);
    }
  }

  const deepest = ch[levels - 1];
  resnet("mid_block.resnets.0", deepest, deepest, cfg.midScale, false);
  if (cfg.midAttention) {
    attention("mid_block.attentions.0", deepest, cfg.midAttentionGroups, cfg.midScale);
  }
  resnet("mid_block.resnets.1", deepest, deepest, cfg.midScale, false);
  emit("mid_block", deepest, true, false);

  const reversed = [...ch].reverse();
  for (let i = 0; i < levels; i++) {
    const prev = i === 0 ? reversed[0] : reversed[i - 1];
    const out = reversed[i];
    const last = cfg.layersPerBlock;
    const upsamples = i < levels - 1;
    for (let j = 0; j <= last; j++) {
      const skip = skipChannels.pop()!;
      const resIn = j === 0 ? prev : out;
      resnet(`up_blocks.${i}.resnets.${j}`, resIn + skip, out, 1, true);
      if (cfg.upAttention[i]) attention(`up_blocks.${i}.attentions.${j}`, out, cfg.groups, 1);
      emit(`up_blocks.${i}.${j}`, out, !(upsamples && j === last), false);
    }
    if (upsamples) {
      const prefix = `up_blocks.${i}.upsamplers.0.conv`;
      convW(prefix, out, out);
      ops.push({ op: "upsample", prefix, channels: out });
      if (cfg.dims === 2) h *= 2;
      w *= 2;
      emit(`up_blocks.${i}.upsample`, out, true, false);
    }
  }
  vec("conv_norm_out", ch[0]);
  convW("conv_out", cfg.outChannels, ch[0]);
  ops.push({ op: "conv_out", cin: ch[0], cout: cfg.outChannels });
  return { ops, blocks, weights };
}
