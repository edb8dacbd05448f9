/**
 * From windows to flat arrays and TensorFlow.js tensors: {@linkcode windowsToArrays} and
 * {@linkcode windowsToTensors}.
 *
 * @module
 */

import * as tf from "@tensorflow/tfjs";
import type { MinMaxScaler } from "./min_max_scaler.ts";
import { selectWindows, type Windows } from "./windows.ts";

/**
 * Options of {@linkcode windowsToArrays} and {@linkcode windowsToTensors}.
 */
export interface WindowArrayOptions {
  /** Scale every channel with this scaler (fitted on the training split). */
  scaler?: MinMaxScaler;
  /** Only these windows (positions in `windows`), in this order; default all. */
  indices?: ArrayLike<number>;
}

/**
 * Window inputs and targets as flat arrays.
 */
export interface WindowArrays {
  /** Inputs, row-major `[N, L, C]`. */
  inputs: Float32Array;
  /** Targets, `[N]`. */
  targets: Float32Array;
  /** `[N, L, C]`. */
  shape: [number, number, number];
}

/**
 * Copies windows into flat `[N, L, C]` inputs and `[N]` targets, optionally scaled — the form
 * closed-form baselines (ridge regression, persistence) want.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { makeWindows, windowsToArrays } from "@diffprobe/core";
 *
 * const times = Float64Array.from({ length: 5 }, (_, i) => i * 3_600_000);
 * const w = makeWindows({ times, columns: { WVHT: new Float32Array([1, 2, 3, 4, 5]) } }, {
 *   input: ["WVHT"],
 *   target: "WVHT",
 *   length: 2,
 *   horizon: 2,
 * });
 * const a = windowsToArrays(w);
 * assert.deepEqual(a.shape, [2, 2, 1]);
 * assert.deepEqual(Array.from(a.inputs), [1, 2, 2, 3]);
 * assert.deepEqual(Array.from(a.targets), [4, 5]);
 * ```
 *
 * @param windows Windows from {@linkcode makeWindows} or a split.
 * @param options Optional scaler and subset.
 * @returns Fresh arrays.
 * @throws {RangeError} If an index is out of range or the scaler lacks a channel.
 */
export function windowsToArrays(windows: Windows, options: WindowArrayOptions = {}): WindowArrays {
  const w = options.indices ? selectWindows(windows, options.indices) : windows;
  const { length: L, input } = w;
  const C = input.length;
  const N = w.size;
  const inputs = new Float32Array(N * L * C);
  const targets = new Float32Array(N);
  const scaler = options.scaler;
  for (let c = 0; c < C; c++) {
    const col = w.series.columns[input[c]];
    const src = scaler ? scaler.transform(col, input[c]) : col;
    for (let k = 0; k < N; k++) {
      const s = w.starts[k];
      const base = k * L * C + c;
      for (let j = 0; j < L; j++) inputs[base + j * C] = src[s + j];
    }
  }
  const targetCol = w.series.columns[w.target];
  const offset = L - 1 + w.horizon;
  for (let k = 0; k < N; k++) targets[k] = targetCol[w.starts[k] + offset];
  return {
    inputs,
    targets: scaler ? scaler.transform(targets, w.target) : targets,
    shape: [N, L, C],
  };
}

/**
 * Windows as TensorFlow.js tensors: inputs `x` of shape `[N, L, C]` and targets `y` of shape
 * `[N]`, optionally scaled. The caller owns (and disposes) both tensors.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { makeWindows, windowsToTensors } from "@diffprobe/core";
 *
 * const times = Float64Array.from({ length: 5 }, (_, i) => i * 3_600_000);
 * const w = makeWindows({ times, columns: { WVHT: new Float32Array([1, 2, 3, 4, 5]) } }, {
 *   input: ["WVHT"],
 *   target: "WVHT",
 *   length: 2,
 *   horizon: 2,
 * });
 * const { x, y } = windowsToTensors(w);
 * assert.deepEqual(x.shape, [2, 2, 1]);
 * assert.deepEqual(Array.from(y.dataSync()), [4, 5]);
 * x.dispose();
 * y.dispose();
 * ```
 *
 * @param windows Windows from {@linkcode makeWindows} or a split.
 * @param options Optional scaler and subset.
 * @returns `x` `[N, L, C]` and `y` `[N]`, float32.
 * @throws {RangeError} If an index is out of range or the scaler lacks a channel.
 */
export function windowsToTensors(
  windows: Windows,
  options: WindowArrayOptions = {},
): { x: tf.Tensor3D; y: tf.Tensor1D } {
  const { inputs, targets, shape } = windowsToArrays(windows, options);
  return { x: tf.tensor3d(inputs, shape, "float32"), y: tf.tensor1d(targets, "float32") };
}
