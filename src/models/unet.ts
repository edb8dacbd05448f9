/**
 * The UNet backbone: runs a {@linkcode UNetPlan} on TensorFlow.js tensors, yields every block
 * output in execution order, and stops as soon as the deepest requested block is out (the
 * contract of timm's `forward_intermediates`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import * as tf from "@tensorflow/tfjs";
 * import { createBackbone } from "./backbone.ts";
 *
 * const unet = createBackbone({
 *   _class_name: "UNet2DModel", block_out_channels: [32, 64], layers_per_block: 1,
 *   down_block_types: ["DownBlock2D", "AttnDownBlock2D"], up_block_types: ["AttnUpBlock2D", "UpBlock2D"],
 *   norm_num_groups: 8, sample_size: 16,
 * }, { seed: 1 });
 * const { blocks, eps } = unet.forward(tf.zeros([1, 16, 16, 3]), 30, { capture: [3] });
 * assert.deepEqual(blocks.get("down_blocks.0.downsample")!.shape, [1, 8, 8, 32]);
 * assert.equal(eps, undefined);
 * unet.dispose();
 * ```
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import type { ResolvedConfig, UNet1DConfig, UNet2DConfig } from "./config.ts";
import type { BlockInfo, UNetPlan } from "./unet_plan.ts";
import { checkTimestep, type NoiseSchedule, noiseSchedule } from "./schedule.ts";
import { conv } from "../nn/conv.ts";
import { groupNorm } from "../nn/group_norm.ts";
import { linear } from "../nn/linear.ts";
import { resnetBlock } from "../nn/resnet_block.ts";
import { spatialAttention } from "../nn/attention.ts";
import { downsample, upsample } from "../nn/resample.ts";
import { timestepEmbedding } from "../nn/timestep_embedding.ts";
import { scopeWeights, type WeightGetter } from "../nn/weights.ts";

/** A block given by its 1-based number or its name. */
export type BlockRef = number | string;

/** Options of {@linkcode Backbone.forward}. */
export interface ForwardOptions {
  /** Blocks whose outputs to return; the pass stops after the deepest of them. */
  capture?: readonly BlockRef[];
  /**
   * Compute the noise prediction `eps` (runs the whole network). Default: true when `capture`
   * is empty or absent, false otherwise.
   */
  eps?: boolean;
  /** Training mode: dropout active. Default false. */
  training?: boolean;
  /** Seed of the dropout masks in training mode. */
  dropoutSeed?: number;
}

/** What {@linkcode Backbone.forward} returns. */
export interface ForwardResult {
  /** The noise prediction, when requested. */
  eps?: tf.Tensor;
  /** Captured block outputs keyed by block name. */
  blocks: Map<string, tf.Tensor>;
}

/** A diffusion UNet used as a feature extractor (and trained by `trainDiffusion`). */
export interface Backbone {
  /** `"unet2d"` (images, NHWC) or `"unet1d"` (signals, NWC). */
  readonly kind: "unet2d" | "unet1d";
  /** The diffusers-style config. */
  readonly config: UNet2DConfig | UNet1DConfig;
  /** Numbered blocks in execution order (1-based; see the module docs of `unet_plan.ts`). */
  readonly blocks: readonly BlockInfo[];
  /** Every tappable output, including the name-only ones such as `up_blocks.0.2`. */
  readonly allBlocks: readonly BlockInfo[];
  /** The noise schedule. */
  readonly schedule: NoiseSchedule;
  /** Weights in TensorFlow.js layout, keyed by diffusers names. */
  readonly weights: Map<string, tf.Tensor>;
  /** Whether the backbone is frozen (forward only). */
  readonly frozen: boolean;
  /** Looks up a block by number or name; a `RangeError` lists what exists. */
  block(ref: BlockRef): BlockInfo;
  /** Runs the network on `xt` at timestep(s) `t`. */
  forward(xt: tf.Tensor, t: number | ArrayLike<number>, options?: ForwardOptions): ForwardResult;
  /** Number of parameters. */
  parameterCount(): number;
  /** Releases the weights. */
  dispose(): void;
}

/** Transposes a PyTorch-layout weight to the layout the ops use. */
export function toTfLayout(name: string, t: tf.Tensor): tf.Tensor {
  return tf.tidy(() => {
    if (t.rank === 4) return t.transpose([2, 3, 1, 0]); // OIHW -> HWIO
    if (t.rank === 3) return t.transpose([2, 1, 0]).expandDims(0); // OIW -> 1,W,I,O
    if (t.rank === 2 && name.endsWith(".weight")) return t.transpose(); // [out,in] -> [in,out]
    return t.clone();
  });
}

/** The inverse of {@linkcode toTfLayout}, given the PyTorch shape. */
export function toTorchLayout(t: tf.Tensor, torchShape: readonly number[]): tf.Tensor {
  return tf.tidy(() => {
    if (torchShape.length === 4) return t.transpose([3, 2, 0, 1]);
    if (torchShape.length === 3) return t.squeeze([0]).transpose([2, 1, 0]);
    if (torchShape.length === 2) return t.transpose();
    return t.clone();
  });
}

/** The UNet of a resolved config over a weight map; built by `createBackbone`/`loadBackbone`. */
export class UNet implements Backbone {
  readonly kind: "unet2d" | "unet1d";
  readonly config: UNet2DConfig | UNet1DConfig;
  readonly blocks: readonly BlockInfo[];
  readonly allBlocks: readonly BlockInfo[];
  readonly schedule: NoiseSchedule;
  readonly weights: Map<string, tf.Tensor>;
  readonly frozen: boolean;
  /** The resolved config. */
  readonly resolved: ResolvedConfig;
  /** The plan. */
  readonly plan: UNetPlan;

  /** Wraps weights already in TensorFlow.js layout (takes ownership of them). */
  constructor(
    resolved: ResolvedConfig,
    plan: UNetPlan,
    weights: Map<string, tf.Tensor>,
    frozen = false,
  ) {
    this.resolved = resolved;
    this.plan = plan;
    this.kind = resolved.dims === 2 ? "unet2d" : "unet1d";
    this.config = resolved.raw;
    this.allBlocks = plan.blocks;
    this.blocks = plan.blocks.filter((b) => b.index !== null);
    this.schedule = noiseSchedule(resolved.schedule);
    this.weights = weights;
    this.frozen = frozen;
  }

  block(ref: BlockRef): BlockInfo {
    const found = typeof ref === "number"
      ? this.blocks.find((b) => b.index === ref)
      : this.allBlocks.find((b) => b.name === ref);
    if (!found) {
      const list = this.blocks.map((b) => `${b.index} ${b.name}`).join(", ");
      const extra = this.allBlocks.filter((b) => b.index === null).map((b) => b.name).join(", ");
      throw new RangeError(
        `No block ${JSON.stringify(ref)} in this ${this.kind}: blocks are ${list}` +
          (extra ? `; by name only: ${extra}` : ""),
      );
    }
    return found;
  }

  parameterCount(): number {
    let n = 0;
    for (const t of this.weights.values()) n += t.size;
    return n;
  }

  forward(
    xt: tf.Tensor,
    t: number | ArrayLike<number>,
    options: ForwardOptions = {},
  ): ForwardResult {
    const want = new Set((options.capture ?? []).map((r) => this.block(r).position));
    const withEps = options.eps ?? want.size === 0;
    const last = withEps ? Infinity : Math.max(-1, ...want);
    const expectRank = this.kind === "unet2d" ? 4 : 3;
    const inC = this.resolved.inChannels;
    if (xt.rank !== expectRank || xt.shape[xt.rank - 1] !== inC) {
      const layout = this.kind === "unet2d" ? "[N, H, W, C]" : "[N, W, C]";
      throw new RangeError(
        `Input shape must be ${layout} with C = ${inC} for this ${this.kind}, got [${xt.shape}]`,
      );
    }
    const n = xt.shape[0];
    const ts = typeof t === "number" ? new Array(n).fill(t) : Array.from(t);
    if (ts.length !== n) {
      throw new RangeError(
        `Timesteps must be one number or ${n} (one per sample), got ${ts.length} values`,
      );
    }
    ts.forEach((ti) => checkTimestep(ti, this.schedule.timesteps));
    const factor = 2 ** (this.resolved.channels.length - 1);
    const spatial = this.kind === "unet2d" ? xt.shape.slice(1, 3) : [xt.shape[1]];
    if (spatial.some((d) => (d ?? 0) % factor !== 0)) {
      throw new RangeError(
        `Input size must be a multiple of ${factor} on each side for ${this.resolved.channels.length} levels, got ${
          spatial.join("×")
        }`,
      );
    }
    const out = tf.tidy(() => {
      const captured: Record<string, tf.Tensor> = {};
      let eps: tf.Tensor | undefined;
      for (const [position, tensor] of this.#run(xt, ts, last, options)) {
        if (position === -1) eps = tensor;
        else if (want.has(position)) {
          captured[this.allBlocks[position].name] = this.kind === "unet1d"
            ? tensor.squeeze([1])
            : tensor;
        }
      }
      return eps ? { captured, eps } : { captured };
    });
    return { eps: out.eps, blocks: new Map(Object.entries(out.captured)) };
  }

  /** Yields `[block position, output]` in execution order, then `[-1, eps]` when it gets there. */
  *#run(
    xt: tf.Tensor,
    ts: number[],
    last: number,
    options: ForwardOptions,
  ): Generator<[number, tf.Tensor]> {
    const cfg = this.resolved;
    const get: WeightGetter = (key) => {
      const w = this.weights.get(key);
      if (!w) throw new RangeError(`Missing weight "${key}"`);
      return w;
    };
    let x: tf.Tensor = this.kind === "unet1d" ? xt.expandDims(1) : xt;
    if (cfg.centerInput) x = tf.sub(tf.mul(x, 2), 1);
    let temb: tf.Tensor = timestepEmbedding(ts, cfg.channels[0], {
      flipSinToCos: cfg.flipSinToCos,
      freqShift: cfg.freqShift,
    });
    temb = linear(scopeWeights(get, "time_embedding.linear_1"), temb);
    temb = linear(scopeWeights(get, "time_embedding.linear_2"), tf.mul(temb, tf.sigmoid(temb)));
    const skips: tf.Tensor[] = [];
    let dropoutSeed = options.dropoutSeed ?? 0;
    for (const op of this.plan.ops) {
      switch (op.op) {
        case "conv_in":
          x = conv(scopeWeights(get, "conv_in"), x, { padding: 1 });
          break;
        case "resnet":
          if (op.popSkip) x = tf.concat([x, skips.pop()!], 3);
          x = resnetBlock(scopeWeights(get, op.prefix), x, temb, {
            groups: cfg.groups,
            eps: cfg.eps,
            shortcut: op.cin !== op.cout,
            outputScale: op.scale,
            dropout: cfg.dropout,
            training: options.training,
            dropoutSeed: options.training ? dropoutSeed++ : undefined,
          });
          break;
        case "attention":
          x = spatialAttention(scopeWeights(get, op.prefix), x, {
            heads: op.heads,
            groups: op.groups,
            eps: cfg.eps,
            rescale: op.rescale,
          });
          break;
        case "downsample":
          x = downsample(scopeWeights(get, op.prefix), x, cfg.downsamplePadding);
          break;
        case "upsample":
          x = upsample(scopeWeights(get, op.prefix), x);
          break;
        case "emit":
          if (op.pushSkip) skips.push(x);
          yield [op.block, x];
          if (op.block >= last) return;
          break;
        case "conv_out": {
          let h: tf.Tensor = groupNorm(scopeWeights(get, "conv_norm_out"), x, cfg.groups, cfg.eps);
          h = conv(scopeWeights(get, "conv_out"), tf.mul(h, tf.sigmoid(h)), { padding: 1 });
          yield [-1, this.kind === "unet1d" ? h.squeeze([1]) : h];
          return;
        }
      }
    }
  }

  dispose(): void {
    for (const t of this.weights.values()) t.dispose();
    this.weights.clear();
  }
}
