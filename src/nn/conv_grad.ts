/**
 * Convolution gradients built from forward convolutions, so that training runs at full speed on
 * backends whose gradient kernels are missing or slow.
 *
 * The `wasm` backend of TensorFlow.js 4.22 has no `Conv2DBackpropFilter` kernel at all, and its
 * `Conv2DBackpropInput` is a plain loop about ten times slower than its (XNNPACK) forward
 * convolution. Both gradients are convolutions in disguise:
 *
 * - weights: `dW[i, j, ci, co] = Σ_{n, oh, ow} xpad[n, oh·s + i, ow·s + j, ci] · dy[n, oh, ow, co]`
 *   is a stride-1 convolution of `x` transposed to `[Ci, H, W, N]` (the batch becomes the
 *   channel axis) with `dy` transposed to `[OH, OW, N, Co]` as the filter, dilated by the stride;
 * - input: `dx` is a stride-1 convolution of `dy` (with `s − 1` zeros inserted between rows and
 *   columns when the stride `s` is 2) with the kernel flipped in space and its channel axes
 *   swapped, padded so that exactly the unpadded input positions come out.
 *
 * {@linkcode conv2dWithGrad} runs the ordinary `tf.conv2d` forward and, where
 * {@linkcode usesCustomConvGrad} says so, attaches these gradients with `tf.customGrad`. The
 * forward values are those of `tf.conv2d`, bit for bit.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import * as tf from "@tensorflow/tfjs";
 * import { conv2dWithGrad } from "./conv_grad.ts";
 *
 * const x = tf.randomNormal([2, 8, 8, 4]) as tf.Tensor4D;
 * const w = tf.randomNormal([3, 3, 4, 5]) as tf.Tensor4D;
 * const pad: [[number, number], [number, number], [number, number], [number, number]] =
 *   [[0, 0], [1, 1], [1, 1], [0, 0]];
 * const dw = tf.grad((w: tf.Tensor) => conv2dWithGrad(x, w as tf.Tensor4D, [1, 1], pad).sum())(w);
 * assert.deepEqual(dw.shape, [3, 3, 4, 5]);
 * ```
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { nonNegativeInteger, positiveInteger } from "../base/validate.ts";

/** Per-side zero padding in `tf.conv2d`'s explicit form (NHWC). */
export type ExplicitPadding = [
  [number, number],
  [number, number],
  [number, number],
  [number, number],
];

/**
 * Which convolution gradients to use: `"auto"` (the custom ones on `wasm`, which lacks a
 * `Conv2DBackpropFilter` kernel, on `cpu`, whose `Conv2DBackpropFilter` is about 20× slower than
 * its own forward convolution, and on any backend without the kernel; tfjs's own elsewhere),
 * `"builtin"` (always tfjs's own) or `"custom"` (always the forward-convolution ones).
 */
export type ConvGradMode = "auto" | "builtin" | "custom";

let mode: ConvGradMode = "auto";

/** Backends whose built-in convolution gradients are missing (wasm) or very slow (cpu). */
const CUSTOM_BY_DEFAULT = new Set(["wasm", "cpu"]);

/**
 * Sets the {@linkcode ConvGradMode} for every later convolution (default `"auto"`); returns the
 * previous mode so callers can restore it.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { setConvGradMode } from "@diffprobe/core";
 *
 * const previous = setConvGradMode("custom");
 * assert.equal(setConvGradMode(previous), "custom");
 * assert.throws(() => setConvGradMode("fast" as "auto"), /"fast"/);
 * ```
 */
export function setConvGradMode(next: ConvGradMode): ConvGradMode {
  if (next !== "auto" && next !== "builtin" && next !== "custom") {
    throw new RangeError(
      `Convolution gradient mode must be "auto", "builtin" or "custom", got ${
        JSON.stringify(next)
      }`,
    );
  }
  const previous = mode;
  mode = next;
  return previous;
}

/**
 * The current {@linkcode ConvGradMode}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { getConvGradMode } from "./conv_grad.ts";
 *
 * assert.equal(getConvGradMode(), "auto");
 * ```
 */
export function getConvGradMode(): ConvGradMode {
  return mode;
}

/**
 * Whether convolutions on `backend` (default: the active one) get the custom gradients under
 * the current mode.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import "@tensorflow/tfjs-backend-wasm";
 * import { usesCustomConvGrad } from "./conv_grad.ts";
 *
 * assert.equal(usesCustomConvGrad("wasm"), true); // wasm has no Conv2DBackpropFilter
 * ```
 */
export function usesCustomConvGrad(backend: string = tf.getBackend()): boolean {
  if (mode !== "auto") return mode === "custom";
  return CUSTOM_BY_DEFAULT.has(backend) ||
    tf.getKernel("Conv2DBackpropFilter", backend) === undefined;
}

function sides(pad: "valid" | ExplicitPadding): [number, number, number, number] {
  return pad === "valid" ? [0, 0, 0, 0] : [pad[1][0], pad[1][1], pad[2][0], pad[2][1]];
}

function checkArgs(strides: readonly number[], pad: "valid" | ExplicitPadding): void {
  for (const s of strides) positiveInteger(s, "Convolution stride");
  for (const p of sides(pad)) nonNegativeInteger(p, "Convolution padding");
}

/**
 * Crops or zero-pads `t` along `axis` to `[lead, lead + length)` of a virtual axis that starts
 * `lead` positions before index 0 (a negative `lead` drops leading entries). Returns the tensor
 * and the padding still to apply before and after.
 */
function window(t: tf.Tensor4D, axis: 1 | 2, lead: number, length: number): {
  t: tf.Tensor4D;
  before: number;
  after: number;
} {
  let before = lead;
  if (before < 0) {
    const begin = [0, 0, 0, 0];
    const size = t.shape.slice() as number[];
    begin[axis] = -before;
    size[axis] -= -before;
    t = tf.slice(t, begin, size);
    before = 0;
  }
  let after = length - before - t.shape[axis];
  if (after < 0) {
    const size = t.shape.slice() as number[];
    size[axis] += after;
    t = tf.slice(t, [0, 0, 0, 0], size);
    after = 0;
  }
  return { t, before, after };
}

/**
 * The gradient of `tf.conv2d(x, w, strides, pad)` with respect to the kernel `w` of shape
 * `filterShape`, computed as one forward convolution (see the module doc).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import * as tf from "@tensorflow/tfjs";
 * import { conv2dFilterGrad } from "./conv_grad.ts";
 *
 * const x = tf.ones([1, 4, 4, 1]) as tf.Tensor4D;
 * const dy = tf.ones([1, 4, 4, 1]) as tf.Tensor4D;
 * const dw = conv2dFilterGrad(x, dy, [3, 3, 1, 1], [1, 1], [[0, 0], [1, 1], [1, 1], [0, 0]]);
 * assert.equal(dw.dataSync()[4], 16); // the centre tap sees every position
 * ```
 */
export function conv2dFilterGrad(
  x: tf.Tensor4D,
  dy: tf.Tensor4D,
  filterShape: readonly [number, number, number, number],
  strides: readonly [number, number],
  pad: "valid" | ExplicitPadding,
): tf.Tensor4D {
  checkArgs(strides, pad);
  return tf.tidy(() => {
    const [kh, kw] = filterShape;
    const [top, , left] = sides(pad);
    const [, oh, ow] = dy.shape;
    // Only padded rows [0, (oh - 1)·s + k) reach an output; crop or pad to exactly that.
    const rows = window(x, 1, top, (oh - 1) * strides[0] + kh);
    const cols = window(rows.t, 2, left, (ow - 1) * strides[1] + kw);
    const xT = tf.transpose(cols.t, [3, 1, 2, 0]) as tf.Tensor4D; // [Ci, H, W, N]
    const filter = tf.transpose(dy, [1, 2, 0, 3]) as tf.Tensor4D; // [OH, OW, N, Co]
    const p: ExplicitPadding = [[0, 0], [rows.before, rows.after], [cols.before, cols.after], [
      0,
      0,
    ]];
    const anyPad = p.some(([a, b]) => a !== 0 || b !== 0);
    const r = tf.conv2d(xT, filter, 1, anyPad ? p : "valid", "NHWC", [strides[0], strides[1]]);
    return tf.transpose(r, [1, 2, 0, 3]) as tf.Tensor4D; // [kh, kw, Ci, Co]
  });
}

/**
 * `w` (`[kh, kw, in, out]`) reversed in space with its channel axes swapped (`[kh, kw, out, in]`).
 * On backends that keep tensors in CPU memory this is a plain loop (about 10× faster than the
 * wasm `Reverse` kernel); elsewhere it uses `tf.reverse` and `tf.transpose`.
 */
function flippedKernel(w: tf.Tensor4D): tf.Tensor4D {
  const [kh, kw, ci, co] = w.shape;
  const backend = tf.getBackend();
  if (backend !== "wasm" && backend !== "cpu") {
    return tf.transpose(tf.reverse(w, [0, 1]), [0, 1, 3, 2]) as tf.Tensor4D;
  }
  const src = w.dataSync() as Float32Array;
  const out = new Float32Array(src.length);
  const taps = kh * kw, size = ci * co;
  for (let t = 0; t < taps; t++) {
    const from = (taps - 1 - t) * size, to = t * size;
    for (let i = 0; i < ci; i++) {
      for (let o = 0; o < co; o++) out[to + o * ci + i] = src[from + i * co + o];
    }
  }
  return tf.tensor4d(out, [kh, kw, co, ci]);
}

/**
 * The gradient of `tf.conv2d(x, w, strides, pad)` with respect to its input of shape `xShape`,
 * computed as one stride-1 forward convolution of `dy` (zero-dilated for strides > 1) with the
 * flipped, channel-transposed kernel.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import * as tf from "@tensorflow/tfjs";
 * import { conv2dInputGrad } from "./conv_grad.ts";
 *
 * const w = tf.ones([3, 3, 1, 1]) as tf.Tensor4D;
 * const dy = tf.ones([1, 2, 2, 1]) as tf.Tensor4D;
 * const dx = conv2dInputGrad([1, 4, 4, 1], dy, w, [2, 2], [[0, 0], [0, 1], [0, 1], [0, 0]]);
 * assert.deepEqual(dx.shape, [1, 4, 4, 1]);
 * assert.equal(dx.dataSync()[0], 1);
 * ```
 */
export function conv2dInputGrad(
  xShape: readonly [number, number, number, number],
  dy: tf.Tensor4D,
  w: tf.Tensor4D,
  strides: readonly [number, number],
  pad: "valid" | ExplicitPadding,
): tf.Tensor4D {
  checkArgs(strides, pad);
  return tf.tidy(() => {
    const [, h, wd] = xShape;
    const [kh, kw, ci, co] = w.shape;
    const [top, , left] = sides(pad);
    const [n, oh, ow] = dy.shape;
    const [sh, sw] = strides;
    let d: tf.Tensor4D = dy;
    if (sh > 1 || sw > 1) {
      // Insert s − 1 zeros after every row and column: [N, OH·sh, OW·sw, Co].
      d = tf.pad(dy.reshape([n, oh, 1, ow, 1, co]), [
        [0, 0],
        [0, 0],
        [0, sh - 1],
        [0, 0],
        [0, sw - 1],
        [0, 0],
      ]).reshape([n, oh * sh, ow * sw, co]) as tf.Tensor4D;
    }
    // Output row r of the stride-1 correlation sees rows r .. r + k − 1 of d padded by k − 1 − top.
    const rows = window(d, 1, kh - 1 - top, h + kh - 1);
    const cols = window(rows.t, 2, kw - 1 - left, wd + kw - 1);
    const flipped = flippedKernel(w);
    const p: ExplicitPadding = [[0, 0], [rows.before, rows.after], [cols.before, cols.after], [
      0,
      0,
    ]];
    const anyPad = p.some(([a, b]) => a !== 0 || b !== 0);
    const dx = tf.conv2d(cols.t, flipped, 1, anyPad ? p : "valid");
    if (dx.shape[3] !== ci) throw new RangeError(`Input gradient has ${dx.shape[3]} channels`);
    return dx;
  });
}

/**
 * `tf.conv2d(x, w, strides, pad)` (NHWC, no dilation) whose gradients, where
 * {@linkcode usesCustomConvGrad} holds, are {@linkcode conv2dInputGrad} and
 * {@linkcode conv2dFilterGrad}. The forward values are exactly those of `tf.conv2d`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import * as tf from "@tensorflow/tfjs";
 * import { conv2dWithGrad } from "./conv_grad.ts";
 *
 * const y = conv2dWithGrad(tf.ones([1, 1, 8, 2]) as tf.Tensor4D, tf.ones([1, 3, 2, 4]) as tf.Tensor4D,
 *   [1, 2], [[0, 0], [0, 0], [0, 1], [0, 0]]);
 * assert.deepEqual(y.shape, [1, 1, 4, 4]);
 * ```
 */
export function conv2dWithGrad(
  x: tf.Tensor4D,
  w: tf.Tensor4D,
  strides: readonly [number, number],
  pad: "valid" | ExplicitPadding,
): tf.Tensor4D {
  const s: [number, number] = [strides[0], strides[1]];
  if (!usesCustomConvGrad()) return tf.conv2d(x, w, s, pad);
  checkArgs(strides, pad);
  const xShape = x.shape;
  const wShape = w.shape;
  const f = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [xi, wi, save] = args as [tf.Tensor4D, tf.Tensor4D, tf.GradSaveFunc];
    save([xi, wi]);
    return {
      value: tf.conv2d(xi, wi, s, pad),
      gradFunc: (dy: tf.Tensor4D, saved: tf.Tensor[]) => {
        const g = dy;
        const [xs, ws] = saved as [tf.Tensor4D, tf.Tensor4D];
        return [
          conv2dInputGrad(xShape, g, ws, s, pad),
          conv2dFilterGrad(xs, g, wShape, s, pad),
        ];
      },
    };
  });
  return f(x, w) as tf.Tensor4D;
}
