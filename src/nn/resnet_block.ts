/**
 * diffusers' `ResnetBlock2D` with the `"default"` time-embedding mode: two GroupNorm → SiLU →
 * conv stages, the projected time embedding added between them, a 1×1 shortcut when the channel
 * count changes, and `(x + h) / outputScale`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import * as tf from "@tensorflow/tfjs";
 * import { resnetBlock } from "./resnet_block.ts";
 *
 * const c = 4, temb = 8;
 * const w = new Map<string, tf.Tensor>([
 *   ["norm1.weight", tf.ones([c])], ["norm1.bias", tf.zeros([c])],
 *   ["conv1.weight", tf.zeros([3, 3, c, c])], ["conv1.bias", tf.zeros([c])],
 *   ["time_emb_proj.weight", tf.zeros([temb, c])], ["time_emb_proj.bias", tf.zeros([c])],
 *   ["norm2.weight", tf.ones([c])], ["norm2.bias", tf.zeros([c])],
 *   ["conv2.weight", tf.zeros([3, 3, c, c])], ["conv2.bias", tf.zeros([c])],
 * ]);
 * const y = resnetBlock((k) => w.get(k)!, tf.ones([1, 2, 2, c]), tf.ones([1, temb]), {
 *   groups: 2, eps: 1e-6, shortcut: false,
 * });
 * assert.deepEqual(y.shape, [1, 2, 2, 4]);
 * ```
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { conv } from "./conv.ts";
import { groupNorm } from "./group_norm.ts";
import { linear } from "./linear.ts";
import { scopeWeights, type WeightGetter } from "./weights.ts";

/** Options of {@linkcode resnetBlock}. */
export interface ResnetBlockOptions {
  /** GroupNorm groups (both norms). */
  groups: number;
  /** GroupNorm epsilon. */
  eps: number;
  /** Whether a `conv_shortcut` (1×1) maps the input to the output channels. */
  shortcut: boolean;
  /** The sum is divided by this (diffusers' `output_scale_factor`, default 1). */
  outputScale?: number;
  /** Dropout rate applied before `conv2`; only used when `training` is set. */
  dropout?: number;
  /** Apply dropout (training); the default is inference. */
  training?: boolean;
  /** Seed of the dropout mask. */
  dropoutSeed?: number;
}

/**
 * Runs the block on `x` (`[N, H, W, Cin]`) with the time embedding `temb` (`[N, D]`, before
 * the block's own SiLU).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import * as tf from "@tensorflow/tfjs";
 * import { resnetBlock } from "./resnet_block.ts";
 *
 * const w = (key: string) => key.endsWith("weight") && key.startsWith("norm") ? tf.ones([2]) :
 *   key === "time_emb_proj.weight" ? tf.zeros([3, 2]) :
 *   key.startsWith("conv") && key.endsWith("weight") ? tf.zeros([3, 3, 2, 2]) : tf.zeros([2]);
 * // Zero convolutions: the block is the identity.
 * const y = resnetBlock(w, tf.ones([1, 1, 1, 2]), tf.zeros([1, 3]), { groups: 1, eps: 1e-6, shortcut: false });
 * assert.deepEqual(y.arraySync(), [[[[1, 1]]]]);
 * ```
 */
export function resnetBlock(
  get: WeightGetter,
  x: tf.Tensor,
  temb: tf.Tensor,
  options: ResnetBlockOptions,
): tf.Tensor4D {
  return tf.tidy(() => {
    let h: tf.Tensor = groupNorm(scopeWeights(get, "norm1"), x, options.groups, options.eps);
    h = conv(scopeWeights(get, "conv1"), tf.mul(h, tf.sigmoid(h)), { padding: 1 });
    const t = linear(scopeWeights(get, "time_emb_proj"), tf.mul(temb, tf.sigmoid(temb)));
    h = tf.add(h, t.reshape([t.shape[0], 1, 1, -1]));
    h = groupNorm(scopeWeights(get, "norm2"), h, options.groups, options.eps);
    h = tf.mul(h, tf.sigmoid(h));
    if (options.training && (options.dropout ?? 0) > 0) {
      h = tf.dropout(h, options.dropout!, undefined, options.dropoutSeed);
    }
    h = conv(scopeWeights(get, "conv2"), h, { padding: 1 });
    const skip = options.shortcut ? conv(scopeWeights(get, "conv_shortcut"), x) : x;
    const sum = tf.add(skip, h);
    const scale = options.outputScale ?? 1;
    return (scale === 1 ? sum : tf.div(sum, scale)) as tf.Tensor4D;
  });
}
