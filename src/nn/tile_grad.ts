/**
 * A rank-generic gradient for TensorFlow.js's `Tile` kernel.
 *
 * tfjs-core 4.22 differentiates `tile` (and `broadcastTo`, which runs the `Tile` kernel) only up
 * to rank 4 and throws "Gradient for tile operation is not implemented for rank-6 tensors yet"
 * beyond. The UNet's nearest-neighbour ×2 upsampling broadcasts a rank-6 view
 * (`[N, H, 1, W, 1, C] → [N, H, 2, W, 2, C]`), so no backbone could be trained without this.
 * {@linkcode registerTileGradient} installs a gradient that sums the tiled copies axis by axis
 * (reshape to `[before, reps, size, after]`, then add the `reps` slices); for rank ≤ 4 it defers
 * to tfjs's own gradient, so existing results do not change.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import * as tf from "@tensorflow/tfjs";
 * import { registerTileGradient } from "./tile_grad.ts";
 *
 * registerTileGradient();
 * const g = tf.grad((x: tf.Tensor) => tf.broadcastTo(x, [1, 2, 1, 3, 2, 1]).sum())(tf.ones([1, 2, 1, 3, 1, 1]));
 * assert.equal(g.dataSync()[0], 2); // each element was copied twice
 * ```
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";

let registered = false;

/** Sums the `reps` tiled copies of `x` in `dy`, one axis at a time. */
function untile(dy: tf.Tensor, xShape: readonly number[], reps: readonly number[]): tf.Tensor {
  let g = dy;
  for (let d = 0; d < reps.length; d++) {
    if (reps[d] === 1) continue;
    const before = xShape.slice(0, d).reduce((p, q) => p * q, 1);
    const after = g.shape.slice(d + 1).reduce((p, q) => p * q, 1);
    const size = xShape[d];
    const grouped = g.reshape([before, reps[d], size * after]);
    const parts: tf.Tensor[] = [];
    for (let r = 0; r < reps[d]; r++) {
      parts.push(tf.slice(grouped, [0, r, 0], [before, 1, size * after]));
    }
    const shape = g.shape.slice();
    shape[d] = size;
    g = (parts.length === 1 ? parts[0] : tf.addN(parts)).reshape(shape);
  }
  return g;
}

/**
 * Registers the rank-generic `Tile` gradient (once; later calls do nothing). Ranks 1–4 keep
 * tfjs's own gradient.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import * as tf from "@tensorflow/tfjs";
 * import { registerTileGradient } from "./tile_grad.ts";
 *
 * registerTileGradient();
 * const g = tf.grad((x: tf.Tensor) => tf.tile(x, [1, 1, 1, 1, 3]).sum())(tf.ones([1, 1, 1, 1, 2]));
 * assert.deepEqual(g.shape, [1, 1, 1, 1, 2]);
 * ```
 */
export function registerTileGradient(): void {
  if (registered) return;
  const builtin = tf.getGradient("Tile");
  tf.registerGradient({
    kernelName: "Tile",
    inputsToSave: ["x"],
    gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[], attrs: tf.NamedAttrMap) => {
      const [x] = saved;
      if (x.rank <= 4 && builtin) return builtin.gradFunc(dy, saved, attrs);
      const reps = attrs.reps as number[];
      return { x: () => untile(dy as tf.Tensor, x.shape, reps) };
    },
  });
  registered = true;
}
