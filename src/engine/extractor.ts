/**
 * What runs the frozen forward passes of feature extraction, as one interface with two
 * implementations: {@linkcode createTfjsExtractor} (the backbone's own TensorFlow.js forward) and
 * the onnxruntime engine (`createOnnxExtractor`). An extractor takes noised inputs as a
 * row-major `Float32Array` and gives the tapped block outputs back as `Float32Array`s: one
 * crossing into the engine and one out of it per batch, whatever the engine keeps inside.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { createBackbone } from "../models/backbone.ts";
 * import { createTfjsExtractor } from "./extractor.ts";
 *
 * const unet = createBackbone({ _class_name: "UNet2DModel", block_out_channels: [32, 32],
 *   down_block_types: ["DownBlock2D", "DownBlock2D"], up_block_types: ["UpBlock2D", "UpBlock2D"],
 *   norm_num_groups: 8, sample_size: 16 });
 * const extractor = createTfjsExtractor(unet, [2]);
 * const out = await extractor.extract(new Float32Array(2 * 16 * 16 * 3), [2, 16, 16, 3], 30);
 * assert.deepEqual(out.get("down_blocks.0.0")!.shape, [2, 16, 16, 32]);
 * extractor.dispose();
 * unet.dispose();
 * ```
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import type { Backbone, BlockRef } from "../models/unet.ts";
import type { BlockInfo } from "../models/unet_plan.ts";

/** A batch of block outputs as a JS array. */
export interface BlockArray {
  /** Row-major values. */
  data: Float32Array;
  /** Shape `[N, H, W, C]` (images) or `[N, W, C]` (signals). */
  shape: number[];
}

/** Runs a backbone's forward pass up to its deepest tapped block, on JS arrays. */
export interface Extractor {
  /** The tapped blocks, in execution order. */
  readonly blocks: readonly BlockInfo[];
  /**
   * Runs `xt` (`[N, H, W, C]` images or `[N, W, C]` signals, row-major, of the given `shape`)
   * at timesteps `t` (one for all samples or one per sample). Resolves to the tapped blocks'
   * outputs keyed by block name.
   */
  extract(
    xt: Float32Array,
    shape: readonly number[],
    t: number | ArrayLike<number>,
  ): Promise<Map<string, BlockArray>>;
  /** Releases what the extractor holds. */
  dispose(): void;
}

/** The tapped blocks of `refs`, deduplicated, in execution order. */
export function tappedBlocks(backbone: Backbone, refs: readonly BlockRef[]): BlockInfo[] {
  const byPosition = new Map(refs.map((r) => {
    const info = backbone.block(r);
    return [info.position, info] as const;
  }));
  return [...byPosition.values()].sort((a, b) => a.position - b.position);
}

/**
 * An extractor running `backbone.forward` on the current TensorFlow.js backend. It checks the
 * blocks now (a `RangeError` names an unknown one) and leaks no tensors.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { createBackbone } from "../models/backbone.ts";
 * import { createTfjsExtractor } from "./extractor.ts";
 *
 * const unet = createBackbone({ _class_name: "UNet2DModel", block_out_channels: [32, 32],
 *   down_block_types: ["DownBlock2D", "DownBlock2D"], up_block_types: ["UpBlock2D", "UpBlock2D"],
 *   norm_num_groups: 8 });
 * assert.throws(() => createTfjsExtractor(unet, [99]), RangeError);
 * unet.dispose();
 * ```
 */
export function createTfjsExtractor(backbone: Backbone, blocks: readonly BlockRef[]): Extractor {
  const infos = tappedBlocks(backbone, blocks);
  const capture = infos.map((b) => b.name);
  return {
    blocks: infos,
    async extract(xt, shape, t) {
      const input = tf.tensor(xt, [...shape]);
      let outputs: Map<string, tf.Tensor>;
      try {
        outputs = backbone.forward(input, t, { capture }).blocks;
      } finally {
        input.dispose();
      }
      try {
        const result = new Map<string, BlockArray>();
        for (const [name, out] of outputs) {
          result.set(name, { data: await out.data() as Float32Array, shape: out.shape });
        }
        return result;
      } finally {
        tf.dispose([...outputs.values()]);
      }
    },
    dispose() {},
  };
}
