/**
 * Convolutions on NHWC tensors. A 1-D signal is carried as `[N, 1, W, C]` with `[1, k, in, out]`
 * kernels, so one code path serves the 2-D and the 1-D UNet.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import * as tf from "@tensorflow/tfjs";
 * import { conv } from "./conv.ts";
 *
 * const w = new Map<string, tf.Tensor>([["weight", tf.ones([3, 3, 1, 1])], ["bias", tf.zeros([1])]]);
 * const y = conv((k) => w.get(k)!, tf.ones([1, 4, 4, 1]), { padding: 1 });
 * assert.deepEqual(y.shape, [1, 4, 4, 1]);
 * ```
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { conv2dWithGrad } from "./conv_grad.ts";
import type { WeightGetter } from "./weights.ts";

/** Stride and zero padding of a convolution; `padding` may differ per side. */
export interface ConvOptions {
  /** Step between windows (default 1). */
  stride?: number;
  /**
   * Zero padding: a number for every side of every spatial axis that the kernel spans, or
   * `[top, bottom, left, right]` (default 0).
   */
  padding?: number | [number, number, number, number];
}

/**
 * Applies `weight` (`[kh, kw, in, out]`) and `bias` (`[out]`) to `x` (`[N, H, W, in]`).
 * Axes where the kernel has size 1 (the height of a 1-D signal) get no padding.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import * as tf from "@tensorflow/tfjs";
 * import { conv } from "./conv.ts";
 *
 * const w = new Map<string, tf.Tensor>([["weight", tf.ones([1, 3, 2, 4])], ["bias", tf.zeros([4])]]);
 * const y = conv((k) => w.get(k)!, tf.ones([2, 1, 8, 2]), { stride: 2, padding: [0, 0, 0, 1] });
 * assert.deepEqual(y.shape, [2, 1, 4, 4]);
 * ```
 */
export function conv(get: WeightGetter, x: tf.Tensor, options: ConvOptions = {}): tf.Tensor4D {
  return tf.tidy(() => {
    const w = get("weight") as tf.Tensor4D;
    const stride = options.stride ?? 1;
    const p = options.padding ?? 0;
    const [kh, kw] = w.shape;
    let [top, bottom, left, right] = typeof p === "number" ? [p, p, p, p] : p;
    if (kh === 1) top = bottom = 0;
    if (kw === 1 && typeof p === "number") left = right = 0;
    const pad = top === 0 && bottom === 0 && left === 0 && right === 0
      ? "valid"
      : [[0, 0], [top, bottom], [left, right], [0, 0]] as [
        [number, number],
        [number, number],
        [number, number],
        [number, number],
      ];
    const strides: [number, number] = [kh === 1 ? 1 : stride, stride];
    // Same forward as tf.conv2d; gradients go through conv_grad.ts where the backend needs it.
    const y = conv2dWithGrad(x as tf.Tensor4D, w, strides, pad);
    return tf.add(y, get("bias")) as tf.Tensor4D;
  });
}
