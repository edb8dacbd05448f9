/**
 * Per-channel min–max scaling fitted on the training windows only: {@linkcode MinMaxScaler}.
 *
 * @module
 */

import * as tf from "@tensorflow/tfjs";
import type { Windows } from "./windows.ts";

/**
 * Per-channel min–max scaling to `[0, 1]`: `(v - min) / (max - min)`. Fit it on the training
 * windows only ({@linkcode MinMaxScaler.fit}) and apply it to every split, so validation and
 * test data never inform the normalisation. A channel with `max === min` maps to 0.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { MinMaxScaler } from "@diffprobe/core";
 *
 * const scaler = new MinMaxScaler({ WVHT: 0.5 }, { WVHT: 10.5 });
 * assert.equal(scaler.transform(3, "WVHT"), 0.25);
 * assert.equal(scaler.inverse(0.25, "WVHT"), 3);
 * ```
 */
export class MinMaxScaler {
  /** Minimum of each channel over the data it was fitted on. */
  readonly min: Readonly<Record<string, number>>;
  /** Maximum of each channel over the data it was fitted on. */
  readonly max: Readonly<Record<string, number>>;

  /**
   * Creates a scaler from known minima and maxima (e.g. from {@linkcode MinMaxScaler.toJSON}).
   *
   * @param min Minimum per channel.
   * @param max Maximum per channel (same keys as `min`).
   * @throws {RangeError} If the keys differ or a bound is not finite or `max < min`.
   */
  constructor(min: Record<string, number>, max: Record<string, number>) {
    const keys = Object.keys(min);
    for (const k of keys) {
      if (!(k in max)) throw new RangeError(`Scaler channel "${k}" has a min but no max`);
      if (!Number.isFinite(min[k]) || !Number.isFinite(max[k]) || max[k] < min[k]) {
        throw new RangeError(
          `Scaler channel "${k}" needs finite bounds with min <= max, got min ${min[k]}, max ${
            max[k]
          }`,
        );
      }
    }
    for (const k of Object.keys(max)) {
      if (!(k in min)) throw new RangeError(`Scaler channel "${k}" has a max but no min`);
    }
    this.min = Object.freeze({ ...min });
    this.max = Object.freeze({ ...max });
  }

  /**
   * Fits minima and maxima on the values the given (training) windows use: each input channel
   * over the windows' input rows, and the target channel over those plus the target rows.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { makeWindows, MinMaxScaler } from "@diffprobe/core";
   *
   * const times = Float64Array.from({ length: 6 }, (_, i) => i * 3_600_000);
   * const w = makeWindows({ times, columns: { WVHT: new Float32Array([1, 4, 2, 8, 3, 9]) } }, {
   *   input: ["WVHT"],
   *   target: "WVHT",
   *   length: 2,
   *   horizon: 1,
   *   stride: 3,
   * }); // windows at rows 0–2 and 3–5
   * const scaler = MinMaxScaler.fit(w);
   * assert.deepEqual([scaler.min.WVHT, scaler.max.WVHT], [1, 9]);
   * ```
   *
   * @param windows The training split.
   * @returns A fitted scaler covering the input and target channels.
   * @throws {RangeError} If `windows` is empty.
   */
  static fit(windows: Windows): MinMaxScaler {
    if (windows.size === 0) throw new RangeError("Cannot fit a scaler on zero windows");
    const n = windows.series.times.length;
    // Difference array marking the input rows used by at least one window.
    const diff = new Int32Array(n + 1);
    for (const s of windows.starts) {
      diff[s]++;
      diff[s + windows.length]--;
    }
    const used = new Uint8Array(n);
    let run = 0;
    for (let i = 0; i < n; i++) {
      run += diff[i];
      used[i] = run > 0 ? 1 : 0;
    }
    const min: Record<string, number> = {};
    const max: Record<string, number> = {};
    const update = (name: string, v: number): void => {
      if (Number.isNaN(v)) return;
      if (!(name in min) || v < min[name]) min[name] = v;
      if (!(name in max) || v > max[name]) max[name] = v;
    };
    for (const name of windows.input) {
      const col = windows.series.columns[name];
      for (let i = 0; i < n; i++) if (used[i]) update(name, col[i]);
    }
    const targetCol = windows.series.columns[windows.target];
    const offset = windows.length - 1 + windows.horizon;
    for (const s of windows.starts) update(windows.target, targetCol[s + offset]);
    return new MinMaxScaler(min, max);
  }

  /** The channels this scaler knows. */
  get channels(): string[] {
    return Object.keys(this.min);
  }

  /**
   * Maps raw values of `channel` to the `[0, 1]` scale of the fitted data.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { MinMaxScaler } from "@diffprobe/core";
   *
   * const s = new MinMaxScaler({ WVHT: 0 }, { WVHT: 10 });
   * assert.deepEqual(s.transform(new Float32Array([0, 5]), "WVHT"), new Float32Array([0, 0.5]));
   * ```
   *
   * @param values A number, a `Float32Array` (a new array is returned) or a tensor.
   * @param channel The channel whose bounds to use.
   * @returns The scaled values, of the same kind as `values`.
   * @throws {RangeError} If the channel is unknown.
   */
  transform<T extends number | Float32Array | tf.Tensor>(values: T, channel: string): T {
    const [lo, range] = this.#bounds(channel);
    return mapValues(values, (v) => (v - lo) / range, (t) => tf.div(tf.sub(t, lo), range)) as T;
  }

  /**
   * Maps `[0, 1]`-scaled values of `channel` back to raw units (the inverse of
   * {@linkcode MinMaxScaler.transform}).
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { MinMaxScaler } from "@diffprobe/core";
   *
   * const s = new MinMaxScaler({ WVHT: 0 }, { WVHT: 10 });
   * assert.equal(s.inverse(0.25, "WVHT"), 2.5);
   * ```
   *
   * @param values A number, a `Float32Array` (a new array is returned) or a tensor.
   * @param channel The channel whose bounds to use.
   * @returns The values in raw units, of the same kind as `values`.
   * @throws {RangeError} If the channel is unknown.
   */
  inverse<T extends number | Float32Array | tf.Tensor>(values: T, channel: string): T {
    const [lo, range] = this.#bounds(channel);
    return mapValues(values, (v) => v * range + lo, (t) => tf.add(tf.mul(t, range), lo)) as T;
  }

  /**
   * The bounds as plain JSON (`{ min, max }`), for results files; rebuild with
   * `new MinMaxScaler(json.min, json.max)`.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { MinMaxScaler } from "@diffprobe/core";
   *
   * const s = new MinMaxScaler({ WVHT: 0 }, { WVHT: 10 });
   * assert.equal(JSON.stringify(s), '{"min":{"WVHT":0},"max":{"WVHT":10}}');
   * const again = new MinMaxScaler(s.toJSON().min, s.toJSON().max);
   * assert.equal(again.transform(5, "WVHT"), 0.5);
   * ```
   *
   * @returns The per-channel minima and maxima.
   */
  toJSON(): { min: Record<string, number>; max: Record<string, number> } {
    return { min: { ...this.min }, max: { ...this.max } };
  }

  #bounds(channel: string): [number, number] {
    if (!(channel in this.min)) {
      throw new RangeError(
        `The scaler has no channel "${channel}" (it has ${this.channels.join(", ") || "none"})`,
      );
    }
    const range = this.max[channel] - this.min[channel];
    return [this.min[channel], range > 0 ? range : 1];
  }
}

function mapValues(
  values: number | Float32Array | tf.Tensor,
  f: (v: number) => number,
  g: (t: tf.Tensor) => tf.Tensor,
): number | Float32Array | tf.Tensor {
  if (typeof values === "number") return f(values);
  if (values instanceof Float32Array) {
    const out = new Float32Array(values.length);
    for (let i = 0; i < values.length; i++) out[i] = f(values[i]);
    return out;
  }
  return tf.tidy(() => g(values));
}
