/**
 * Freezing a backbone: the same weights and interface, no trainable variables, forward only.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { createBackbone, freeze } from "@diffprobe/core";
 *
 * const frozen = freeze(createBackbone({ _class_name: "UNet2DModel", block_out_channels: [32, 32],
 *   down_block_types: ["DownBlock2D", "DownBlock2D"], up_block_types: ["UpBlock2D", "UpBlock2D"], norm_num_groups: 8 }));
 * assert.equal(frozen.frozen, true);
 * frozen.dispose();
 * ```
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import type { Backbone, ForwardOptions, ForwardResult } from "../models/unet.ts";

/** A backbone that only runs forward, never in training mode. */
export interface FrozenBackbone extends Backbone {
  /** Always true. */
  readonly frozen: true;
}

/**
 * Returns a frozen view of `backbone` that shares its weights (disposing either disposes both).
 * Variables among the weights are marked non-trainable; `forward` refuses `training: true`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import * as tf from "@tensorflow/tfjs";
 * import { createBackbone, freeze } from "@diffprobe/core";
 *
 * const unet = freeze(createBackbone({ _class_name: "UNet2DModel", block_out_channels: [32, 32],
 *   down_block_types: ["DownBlock2D", "DownBlock2D"], up_block_types: ["UpBlock2D", "UpBlock2D"], norm_num_groups: 8 }));
 * const { blocks } = unet.forward(tf.zeros([1, 32, 32, 3]), 30, { capture: [1] });
 * assert.deepEqual(blocks.get("conv_in")!.shape, [1, 32, 32, 32]);
 * assert.throws(() => unet.forward(tf.zeros([1, 32, 32, 3]), 30, { training: true }), TypeError);
 * unet.dispose();
 * ```
 */
export function freeze(backbone: Backbone): FrozenBackbone {
  if (backbone.frozen) return backbone as FrozenBackbone;
  for (const w of backbone.weights.values()) {
    if (w instanceof tf.Variable) w.trainable = false;
  }
  const frozen: FrozenBackbone = Object.create(backbone, {
    frozen: { value: true, enumerable: true },
    forward: {
      value(xt: tf.Tensor, t: number | ArrayLike<number>, options?: ForwardOptions): ForwardResult {
        if (options?.training) {
          throw new TypeError("A frozen backbone runs forward only: training mode is not allowed");
        }
        return backbone.forward(xt, t, options);
      },
    },
  });
  return frozen;
}
