/**
 * UNet configurations exactly as diffusers writes them in `config.json` (snake_case keys),
 * and their validation: a value we do not support fails with an error naming the field.
 *
 * @example
 * ```ts
 * import { resolveConfig } from "./config.ts";
 *
 * const c = resolveConfig({
 *   _class_name: "UNet2DModel",
 *   block_out_channels: [32, 64],
 *   down_block_types: ["DownBlock2D", "AttnDownBlock2D"],
 *   up_block_types: ["AttnUpBlock2D", "UpBlock2D"],
 *   layers_per_block: 1,
 *   norm_num_groups: 8,
 *   sample_size: 16,
 * });
 * console.log(c.dims, c.timeEmbedDim); // 2 128
 * ```
 *
 * @module
 */

/** A diffusers `UNet2DModel` config (the keys we read; others are kept and ignored). */
export interface UNet2DConfig {
  /** `"UNet2DModel"`. */
  _class_name?: "UNet2DModel";
  /** Spatial size of the training images (an int or `[h, w]`). */
  sample_size?: number | [number, number] | null;
  /** Input channels (default 3). */
  in_channels?: number;
  /** Output channels (default 3). */
  out_channels?: number;
  /** Scale inputs from [0, 1] to [-1, 1] first (default false). */
  center_input_sample?: boolean;
  /** Only `"positional"` is supported. */
  time_embedding_type?: string;
  /** Time embedding width (default 4 × block_out_channels[0]). */
  time_embedding_dim?: number | null;
  /** Shift of the timestep embedding's frequency denominator (default 0). */
  freq_shift?: number;
  /** Put cosines first (default true). */
  flip_sin_to_cos?: boolean;
  /** `DownBlock2D` or `AttnDownBlock2D` per level. */
  down_block_types?: string[];
  /** `UpBlock2D` or `AttnUpBlock2D` per level (deepest first). */
  up_block_types?: string[];
  /** Channels per level. */
  block_out_channels?: number[];
  /** ResNet layers per down level (up levels have one more). */
  layers_per_block?: number;
  /** Output divisor of the mid block's layers (default 1). */
  mid_block_scale_factor?: number;
  /** `0` (pad bottom/right by one) or `1`. */
  downsample_padding?: number;
  /** Only `"conv"` is supported. */
  downsample_type?: string;
  /** Only `"conv"` is supported. */
  upsample_type?: string;
  /** Dropout inside ResNet blocks during training (default 0). */
  dropout?: number;
  /** `"silu"` (or its alias `"swish"`). */
  act_fn?: string;
  /** Channels per attention head; null means one head per layer. */
  attention_head_dim?: number | null;
  /** GroupNorm groups (default 32). */
  norm_num_groups?: number;
  /** GroupNorm groups of the mid block's attention (default norm_num_groups). */
  attn_norm_num_groups?: number | null;
  /** GroupNorm epsilon (default 1e-5). */
  norm_eps?: number;
  /** Only `"default"` is supported. */
  resnet_time_scale_shift?: string;
  /** Attention in the mid block (default true). */
  add_attention?: boolean;
  /** Must be null. */
  class_embed_type?: string | null;
  /** Must be null. */
  num_class_embeds?: number | null;
  /** T of the noise schedule (default 1000). */
  num_train_timesteps?: number | null;
  /** `"UNetMidBlock2D"`. */
  mid_block_type?: string | null;
  /** diffprobe extension: `"linear"` (default) or `"squaredcos_cap_v2"`. */
  beta_schedule?: string;
  /** diffprobe extension: first linear beta (default 1e-4). */
  beta_start?: number;
  /** diffprobe extension: last linear beta (default 0.02). */
  beta_end?: number;
  /** Other keys diffusers writes (`_diffusers_version`, …). */
  [key: string]: unknown;
}

/**
 * The 1-D UNet's config: the same keys as {@linkcode UNet2DConfig} with
 * `_class_name: "DiffprobeUNet1DModel"`, block types `DownBlock1D`/`AttnDownBlock1D`/
 * `UpBlock1D`/`AttnUpBlock1D` and `sample_size` the signal length. Convolutions have width 3.
 */
export interface UNet1DConfig extends Omit<UNet2DConfig, "_class_name" | "sample_size"> {
  /** `"DiffprobeUNet1DModel"`. */
  _class_name: "DiffprobeUNet1DModel";
  /** Length of the training windows. */
  sample_size?: number | null;
}

/** A checked config with defaults filled in and camelCase names for the code. */
export interface ResolvedConfig {
  /** 2 for images, 1 for signals. */
  dims: 1 | 2;
  /** The config as given (what `saveBackbone` writes back). */
  raw: UNet2DConfig | UNet1DConfig;
  /** Input channels. */
  inChannels: number;
  /** Output channels. */
  outChannels: number;
  /** `[H, W]` for images, `[1, W]` for signals. */
  sampleSize: [number, number];
  /** Channels per level. */
  channels: number[];
  /** Whether each down level has attention. */
  downAttention: boolean[];
  /** Whether each up level (deepest first) has attention. */
  upAttention: boolean[];
  /** ResNet layers per down level. */
  layersPerBlock: number;
  /** Channels per attention head, or null for one head. */
  attentionHeadDim: number | null;
  /** GroupNorm groups. */
  groups: number;
  /** GroupNorm groups of the mid block's attention. */
  midAttentionGroups: number;
  /** GroupNorm epsilon. */
  eps: number;
  /** Downsample padding 0 or 1. */
  downsamplePadding: number;
  /** Dropout during training. */
  dropout: number;
  /** Mid block output divisor. */
  midScale: number;
  /** Mid-block attention. */
  midAttention: boolean;
  /** Timestep embedding options. */
  flipSinToCos: boolean;
  /** diffusers' freq_shift. */
  freqShift: number;
  /** Width of the time embedding MLP. */
  timeEmbedDim: number;
  /** Scale inputs from [0, 1] to [-1, 1]. */
  centerInput: boolean;
  /** Noise schedule. */
  schedule: { kind: "linear" | "cosine"; timesteps: number; betaStart: number; betaEnd: number };
}

function fail(field: string, value: unknown, expected: string): never {
  throw new RangeError(
    `Unsupported config value ${field} = ${JSON.stringify(value)}: expected ${expected}`,
  );
}

function positiveInt(raw: Record<string, unknown>, field: string, fallback?: number): number {
  const v = raw[field] ?? fallback;
  if (typeof v !== "number" || !Number.isInteger(v) || v < 1) fail(field, v, "a positive integer");
  return v;
}

function oneOf<T>(raw: Record<string, unknown>, field: string, allowed: T[], fallback: T): T {
  const v = (raw[field] ?? fallback) as T;
  if (!allowed.includes(v)) fail(field, v, allowed.map((a) => JSON.stringify(a)).join(" or "));
  return v;
}

/**
 * Validates a diffusers-style config and fills in diffusers' defaults.
 * Throws a `TypeError` for a config that is not an object, a `RangeError` naming the field
 * and value for anything unsupported.
 *
 * @example
 * ```ts
 * import { resolveConfig } from "./config.ts";
 *
 * try {
 *   resolveConfig({ _class_name: "UNet2DModel", resnet_time_scale_shift: "scale_shift" });
 * } catch (e) {
 *   console.log((e as Error).message); // names resnet_time_scale_shift and "scale_shift"
 * }
 * ```
 */
export function resolveConfig(config: UNet2DConfig | UNet1DConfig): ResolvedConfig {
  if (typeof config !== "object" || config === null || Array.isArray(config)) {
    throw new TypeError(`A UNet config must be an object, got ${JSON.stringify(config)}`);
  }
  const raw = config as Record<string, unknown>;
  const cls = oneOf(raw, "_class_name", ["UNet2DModel", "DiffprobeUNet1DModel"], "UNet2DModel");
  const dims = cls === "UNet2DModel" ? 2 : 1;
  const suffix = `${dims}D`;
  const channels = (raw.block_out_channels ?? [224, 448, 672, 896]) as number[];
  if (
    !Array.isArray(channels) || channels.length === 0 ||
    !channels.every((c) => Number.isInteger(c) && c > 0)
  ) fail("block_out_channels", channels, "a non-empty list of positive integers");
  const levels = channels.length;
  const types = (field: string, plain: string, attn: string, fallback: string[]): boolean[] => {
    const list = (raw[field] ?? fallback) as string[];
    if (!Array.isArray(list) || list.length !== levels) {
      fail(field, list, `a list of ${levels} block types (one per block_out_channels entry)`);
    }
    return list.map((t, i) => {
      if (t === attn) return true;
      if (t === plain) return false;
      return fail(`${field}[${i}]`, t, `"${plain}" or "${attn}"`);
    });
  };
  const downAttention = types(
    "down_block_types",
    `DownBlock${suffix}`,
    `AttnDownBlock${suffix}`,
    dims === 2 ? ["DownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D"] : [],
  );
  const upAttention = types(
    "up_block_types",
    `UpBlock${suffix}`,
    `AttnUpBlock${suffix}`,
    dims === 2 ? ["AttnUpBlock2D", "AttnUpBlock2D", "AttnUpBlock2D", "UpBlock2D"] : [],
  );
  const groups = positiveInt(raw, "norm_num_groups", 32);
  for (const c of channels) {
    if (c % groups !== 0) {
      fail("norm_num_groups", groups, `a divisor of every block_out_channels entry (${channels})`);
    }
  }
  const headDim = raw.attention_head_dim ?? null;
  if (headDim !== null) {
    positiveInt(raw, "attention_head_dim");
    channels.forEach((c, i) => {
      const attn = downAttention[i] || upAttention[levels - 1 - i] || i === levels - 1;
      if (attn && c % (headDim as number) !== 0) {
        fail("attention_head_dim", headDim, `a divisor of ${c} (block_out_channels[${i}])`);
      }
    });
  }
  oneOf(raw, "act_fn", ["silu", "swish"], "silu");
  oneOf(raw, "time_embedding_type", ["positional"], "positional");
  oneOf(raw, "resnet_time_scale_shift", ["default"], "default");
  oneOf(raw, "downsample_type", ["conv"], "conv");
  oneOf(raw, "upsample_type", ["conv"], "conv");
  oneOf(raw, "class_embed_type", [null], null);
  oneOf(raw, "num_class_embeds", [null], null);
  oneOf(raw, "mid_block_type", [`UNetMidBlock${suffix}`], `UNetMidBlock${suffix}`);
  const downsamplePadding = oneOf(raw, "downsample_padding", [0, 1], 1);
  const scheduleName = oneOf(
    raw,
    "beta_schedule",
    ["linear", "squaredcos_cap_v2"],
    "linear",
  );
  const dropout = (raw.dropout ?? 0) as number;
  if (typeof dropout !== "number" || !(dropout >= 0 && dropout < 1)) {
    fail("dropout", dropout, "a number in [0, 1)");
  }
  const eps = (raw.norm_eps ?? 1e-5) as number;
  if (typeof eps !== "number" || !(eps > 0)) fail("norm_eps", eps, "a positive number");
  const freqShift = (raw.freq_shift ?? 0) as number;
  if (typeof freqShift !== "number" || !Number.isFinite(freqShift)) {
    fail("freq_shift", freqShift, "a number");
  }
  const midScale = (raw.mid_block_scale_factor ?? 1) as number;
  if (typeof midScale !== "number" || !(midScale > 0)) {
    fail("mid_block_scale_factor", midScale, "a positive number");
  }
  let sampleSize: [number, number];
  const s = raw.sample_size ?? null;
  if (dims === 2) {
    if (Array.isArray(s) && s.length === 2) sampleSize = [s[0], s[1]];
    else if (s === null) sampleSize = [32, 32];
    else sampleSize = [s as number, s as number];
  } else sampleSize = [1, (s ?? 128) as number];
  if (!sampleSize.every((d) => Number.isInteger(d) && d > 0)) {
    fail("sample_size", s, "a positive integer or [height, width]");
  }
  const timeEmbedDim = raw.time_embedding_dim == null
    ? channels[0] * 4
    : positiveInt(raw, "time_embedding_dim");
  const attnGroups = raw.attn_norm_num_groups == null
    ? groups
    : positiveInt(raw, "attn_norm_num_groups");
  if (channels[levels - 1] % attnGroups !== 0) {
    fail("attn_norm_num_groups", attnGroups, `a divisor of ${channels[levels - 1]}`);
  }
  const betaStart = (raw.beta_start ?? 1e-4) as number;
  const betaEnd = (raw.beta_end ?? 0.02) as number;
  return {
    dims,
    raw: config,
    inChannels: positiveInt(raw, "in_channels", 3),
    outChannels: positiveInt(raw, "out_channels", 3),
    sampleSize,
    channels,
    downAttention,
    upAttention,
    layersPerBlock: positiveInt(raw, "layers_per_block", 2),
    attentionHeadDim: headDim as number | null,
    groups,
    midAttentionGroups: attnGroups,
    eps,
    downsamplePadding,
    dropout,
    midScale,
    midAttention: oneOf(raw, "add_attention", [true, false], true),
    flipSinToCos: oneOf(raw, "flip_sin_to_cos", [true, false], true),
    freqShift,
    timeEmbedDim,
    centerInput: oneOf(raw, "center_input_sample", [true, false], false),
    schedule: {
      kind: scheduleName === "linear" ? "linear" : "cosine",
      timesteps: positiveInt(raw, "num_train_timesteps", 1000),
      betaStart,
      betaEnd,
    },
  };
}
