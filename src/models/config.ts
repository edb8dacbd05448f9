/**
 * UNet configurations exactly as diffusers writes them in `config.json` (snake_case keys),
 * and their validation: a value we do not support fails with an error naming the file (or
 * "the config" when there is none), the field and the value, before anything is allocated.
 *
 * Every size is bounded, so that a hostile or mistyped config cannot make the library allocate
 * or loop without end (all published diffusers DDPM configs, e.g. google/ddpm-cifar10-32 and
 * the 256×256 church, bedroom and CelebA-HQ models, are well inside):
 *
 * | field                                                   | accepted                        |
 * | ------------------------------------------------------- | ------------------------------- |
 * | `block_out_channels`                                    | 1 to 8 levels, each 1 to 8,192  |
 * | `in_channels`, `out_channels`, `attention_head_dim`     | 1 to 8,192                      |
 * | `norm_num_groups`, `attn_norm_num_groups`               | 1 to 8,192, dividing the channels |
 * | `time_embedding_dim`                                    | 1 to 32,768                     |
 * | `layers_per_block`                                      | 1 to 64                         |
 * | `sample_size` (each side)                               | 1 to 16,384                     |
 * | `num_train_timesteps`                                   | 1 to 100,000                    |
 * | `norm_eps`                                              | (0, 1]                          |
 * | `dropout`                                               | [0, 1)                          |
 * | `mid_block_scale_factor`                                | (0, 1000]                       |
 * | `freq_shift`                                            | [0, block_out_channels[0] / 2)  |
 * | `beta_start`, `beta_end`                                | 0 < beta_start ≤ beta_end < 1   |
 *
 * The parameter memory a config implies is bounded separately, by `createBackbone` and
 * `loadBackbone` (2 GiB of float32 parameters by default).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
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
 * assert.equal(c.dims, 2);
 * assert.equal(c.timeEmbedDim, 128);
 * ```
 *
 * @module
 */
import { integerInRange, oneOf, show } from "../base/validate.ts";

/**
 * A diffusers `UNet2DModel` config (the keys we read; others are kept and ignored).
 *
 * Sizes are bounded so that a hostile config cannot exhaust memory: 1 to 8 levels of at most
 * 8,192 channels (also `in_channels`, `out_channels`, `attention_head_dim`), at most 64
 * `layers_per_block`, 32,768 `time_embedding_dim`, 16,384 `sample_size` and 100,000
 * `num_train_timesteps`; `norm_eps` in (0, 1], `dropout` in [0, 1), `mid_block_scale_factor`
 * in (0, 1000], `freq_shift` in [0, block_out_channels[0] / 2), 0 < `beta_start` ≤ `beta_end`
 * < 1. `createBackbone` and `loadBackbone` also bound the parameter memory (2 GiB by default).
 */
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

/** The bounds on a config's sizes (see the module documentation). */
export const CONFIG_LIMITS: Readonly<{
  levels: number;
  channels: number;
  timeEmbedDim: number;
  layersPerBlock: number;
  sampleSize: number;
  timesteps: number;
}> = Object.freeze({
  levels: 8,
  channels: 8192,
  timeEmbedDim: 32768,
  layersPerBlock: 64,
  sampleSize: 16384,
  timesteps: 100_000,
});

/** Reads the fields of one raw config, each error naming the source, the field and the value. */
class ConfigReader {
  readonly #raw: Record<string, unknown>;
  readonly #where: string;

  constructor(raw: Record<string, unknown>, where: string) {
    this.#raw = raw;
    this.#where = where;
  }

  /** `"<field> in <where>"`, the subject of every message. */
  name(field: string): string {
    return `${field} in ${this.#where}`;
  }

  /** The field's value, `fallback` when absent or null. */
  value(field: string, fallback: unknown): unknown {
    return this.#raw[field] ?? fallback;
  }

  /** An integer in [1, max]. */
  int(field: string, fallback: number | undefined, max: number): number {
    return integerInRange(this.value(field, fallback), this.name(field), 1, max);
  }

  /** One of a few strings. */
  choice<const T extends string>(field: string, choices: readonly T[], fallback: T): T {
    return oneOf(this.value(field, fallback), this.name(field), choices);
  }

  /** true or false. */
  bool(field: string, fallback: boolean): boolean {
    const v = this.value(field, fallback);
    if (typeof v !== "boolean") {
      throw new TypeError(`${this.name(field)} must be true or false, got ${show(v)}`);
    }
    return v;
  }

  /** Must be absent or null (a diffusers feature this library does not implement). */
  absent(field: string, feature: string): void {
    const v = this.#raw[field];
    if (v !== undefined && v !== null) {
      throw new TypeError(
        `${this.name(field)} must be null (${feature} is not supported), got ${show(v)}`,
      );
    }
  }

  /** A finite number in an interval; `open` marks which ends are excluded. */
  number(
    field: string,
    fallback: number,
    min: number,
    max: number,
    open: { min?: boolean; max?: boolean } = {},
  ): number {
    const v = this.value(field, fallback);
    const ok = typeof v === "number" && Number.isFinite(v) &&
      (open.min ? v > min : v >= min) && (open.max ? v < max : v <= max);
    if (!ok) {
      const range = `${open.min ? "(" : "["}${min}, ${max}${open.max ? ")" : "]"}`;
      throw new RangeError(`${this.name(field)} must be a number in ${range}, got ${show(v)}`);
    }
    return v as number;
  }

  /** A RangeError in the one message style. */
  error(field: string, rule: string, value: unknown): RangeError {
    return new RangeError(`${this.name(field)} must be ${rule}, got ${show(value)}`);
  }
}

/** Reads `block_out_channels`: 1 to 8 levels of 1 to 8,192 channels. */
function readChannels(r: ConfigReader): number[] {
  const channels = r.value("block_out_channels", [224, 448, 672, 896]);
  const ok = Array.isArray(channels) && channels.length >= 1 &&
    channels.length <= CONFIG_LIMITS.levels &&
    channels.every((c) => Number.isInteger(c) && c >= 1 && c <= CONFIG_LIMITS.channels);
  if (!ok) {
    throw r.error(
      "block_out_channels",
      `a list of 1 to ${CONFIG_LIMITS.levels} integers in [1, ${CONFIG_LIMITS.channels}]`,
      channels,
    );
  }
  return channels as number[];
}

/** Reads a list of block types: whether each level has attention. */
function readBlockTypes(
  r: ConfigReader,
  field: string,
  levels: number,
  [plain, attn]: [string, string],
  fallback: string[],
): boolean[] {
  const list = r.value(field, fallback);
  if (!Array.isArray(list) || list.length !== levels) {
    throw r.error(
      field,
      `a list of ${levels} block types (one per block_out_channels entry)`,
      list,
    );
  }
  return list.map((t, i) => oneOf(t, r.name(`${field}[${i}]`), [plain, attn]) === attn);
}

/** Reads `sample_size`: an int or `[h, w]` for images, an int for signals. */
function readSampleSize(r: ConfigReader, dims: 1 | 2): [number, number] {
  const s = r.value("sample_size", null);
  let size: unknown[];
  if (dims === 2) size = Array.isArray(s) && s.length === 2 ? s : s === null ? [32, 32] : [s, s];
  else size = [1, s ?? 128];
  const max = CONFIG_LIMITS.sampleSize;
  if (!size.every((d) => Number.isInteger(d) && (d as number) >= 1 && (d as number) <= max)) {
    throw r.error(
      "sample_size",
      dims === 2 ? `an integer or [height, width] in [1, ${max}]` : `an integer in [1, ${max}]`,
      s,
    );
  }
  return size as [number, number];
}

/** Reads `norm_num_groups` / `attn_norm_num_groups`: must divide every channel count given. */
function readGroups(r: ConfigReader, field: string, fallback: number, channels: number[]): number {
  const groups = r.int(field, fallback, CONFIG_LIMITS.channels);
  if (channels.some((c) => c % groups !== 0)) {
    throw r.error(field, `a divisor of every channel count it normalises (${channels})`, groups);
  }
  return groups;
}

/** Reads `attention_head_dim` (null: one head), a divisor of every attention's channels. */
function readHeadDim(
  r: ConfigReader,
  channels: number[],
  downAttention: boolean[],
  upAttention: boolean[],
): number | null {
  if (r.value("attention_head_dim", null) === null) return null;
  const headDim = r.int("attention_head_dim", undefined, CONFIG_LIMITS.channels);
  const levels = channels.length;
  channels.forEach((c, i) => {
    const attn = downAttention[i] || upAttention[levels - 1 - i] || i === levels - 1;
    if (attn && c % headDim !== 0) {
      throw r.error("attention_head_dim", `a divisor of ${c} (block_out_channels[${i}])`, headDim);
    }
  });
  return headDim;
}

/** Reads the noise schedule (diffprobe extension keys; diffusers keeps them in the scheduler). */
function readSchedule(r: ConfigReader): ResolvedConfig["schedule"] {
  const kind = r.choice("beta_schedule", ["linear", "squaredcos_cap_v2"], "linear");
  const timesteps = r.int("num_train_timesteps", 1000, CONFIG_LIMITS.timesteps);
  const betaStart = r.number("beta_start", 1e-4, 0, 1, { min: true, max: true });
  const betaEnd = r.number("beta_end", 0.02, 0, 1, { min: true, max: true });
  if (betaEnd < betaStart) {
    throw r.error("beta_end", `at least beta_start (${betaStart})`, betaEnd);
  }
  return { kind: kind === "linear" ? "linear" : "cosine", timesteps, betaStart, betaEnd };
}

/**
 * Validates a diffusers-style config and fills in diffusers' defaults. Every size is bounded
 * (see the module documentation); errors name `source`, the field and the value.
 *
 * @param config The config, as parsed from `config.json`.
 * @param source The file it came from, named in errors (default: "the config").
 * @returns The checked config.
 * @throws {TypeError} For a config that is not an object, or a field of the wrong kind or an
 * unsupported choice.
 * @throws {RangeError} For a number out of its range.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { resolveConfig } from "./config.ts";
 *
 * assert.throws(
 *   () => resolveConfig({ _class_name: "UNet2DModel", layers_per_block: 1e8 }, "m/config.json"),
 *   {
 *     name: "RangeError",
 *     message: 'layers_per_block in "m/config.json" must be an integer in [1, 64], got 100000000',
 *   },
 * );
 * ```
 */
export function resolveConfig(
  config: UNet2DConfig | UNet1DConfig,
  source?: string,
): ResolvedConfig {
  const where = source === undefined ? "the config" : JSON.stringify(source);
  if (typeof config !== "object" || config === null || Array.isArray(config)) {
    throw new TypeError(
      `The config ${source === undefined ? "" : `${where} `}must be a JSON object, got ${
        show(config)
      }`,
    );
  }
  const r = new ConfigReader(config as Record<string, unknown>, where);
  const cls = r.choice("_class_name", ["UNet2DModel", "DiffprobeUNet1DModel"], "UNet2DModel");
  const dims = cls === "UNet2DModel" ? 2 : 1;
  const suffix = `${dims}D`;
  const channels = readChannels(r);
  const levels = channels.length;
  const downAttention = readBlockTypes(
    r,
    "down_block_types",
    levels,
    [`DownBlock${suffix}`, `AttnDownBlock${suffix}`],
    dims === 2 ? ["DownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D"] : [],
  );
  const upAttention = readBlockTypes(
    r,
    "up_block_types",
    levels,
    [`UpBlock${suffix}`, `AttnUpBlock${suffix}`],
    dims === 2 ? ["AttnUpBlock2D", "AttnUpBlock2D", "AttnUpBlock2D", "UpBlock2D"] : [],
  );
  const groups = readGroups(r, "norm_num_groups", 32, channels);
  r.choice("act_fn", ["silu", "swish"], "silu");
  r.choice("time_embedding_type", ["positional"], "positional");
  r.choice("resnet_time_scale_shift", ["default"], "default");
  r.choice("downsample_type", ["conv"], "conv");
  r.choice("upsample_type", ["conv"], "conv");
  r.absent("class_embed_type", "class conditioning");
  r.absent("num_class_embeds", "class conditioning");
  r.choice("mid_block_type", [`UNetMidBlock${suffix}`], `UNetMidBlock${suffix}`);
  const padding = r.value("downsample_padding", 1);
  if (padding !== 0 && padding !== 1) throw r.error("downsample_padding", "0 or 1", padding);
  const half = Math.floor(channels[0] / 2);
  return {
    dims,
    raw: config,
    inChannels: r.int("in_channels", 3, CONFIG_LIMITS.channels),
    outChannels: r.int("out_channels", 3, CONFIG_LIMITS.channels),
    sampleSize: readSampleSize(r, dims),
    channels,
    downAttention,
    upAttention,
    layersPerBlock: r.int("layers_per_block", 2, CONFIG_LIMITS.layersPerBlock),
    attentionHeadDim: readHeadDim(r, channels, downAttention, upAttention),
    groups,
    midAttentionGroups: readGroups(r, "attn_norm_num_groups", groups, [channels[levels - 1]]),
    eps: r.number("norm_eps", 1e-5, 0, 1, { min: true }),
    downsamplePadding: padding,
    dropout: r.number("dropout", 0, 0, 1, { max: true }),
    midScale: r.number("mid_block_scale_factor", 1, 0, 1000, { min: true }),
    midAttention: r.bool("add_attention", true),
    flipSinToCos: r.bool("flip_sin_to_cos", true),
    // The embedding divides by (half − freq_shift): it must stay positive.
    freqShift: r.number("freq_shift", 0, 0, Math.max(half, 1), { max: true }),
    timeEmbedDim: r.int("time_embedding_dim", channels[0] * 4, CONFIG_LIMITS.timeEmbedDim),
    centerInput: r.bool("center_input_sample", false),
    schedule: readSchedule(r),
  };
}
