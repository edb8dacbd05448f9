/**
 * Fixed-length forecasting windows over a regular series, kept as start rows: {@linkcode makeWindows}
 * and {@linkcode selectWindows}.
 *
 * @module
 */

import { integerInRange, positiveInteger } from "../base/validate.ts";
import { checkColumnLengths, checkRegular } from "./_series.ts";
import type { TimeSeries } from "./timeseries.ts";

/**
 * Options of {@linkcode makeWindows}.
 */
export interface WindowOptions {
  /** Input channels, in the order of the last tensor axis, e.g. `["WVHT", "DPD"]`. */
  input: readonly string[];
  /** The channel to predict. */
  target: string;
  /** Input length `L` in grid steps (hours after {@linkcode resampleHourly}); default 128. */
  length?: number;
  /** Lead time `h`: the target is `h` steps after the last input step; default 6. */
  horizon?: number;
  /** Steps between the starts of consecutive windows; default 1. */
  stride?: number;
}

/**
 * Fixed-length forecasting windows over a regular series, stored as start rows (no copies).
 * Window `k` has inputs at rows `starts[k] … starts[k] + length - 1` (channels `input`) and its
 * target at row `starts[k] + length - 1 + horizon` (channel `target`), observed at
 * `targetTimes[k]`. Materialise with {@linkcode windowsToArrays} or {@linkcode windowsToTensors}.
 */
export interface Windows {
  /** The regular series the windows index into (shared, not copied). */
  readonly series: TimeSeries;
  /** Input channel names, in tensor order. */
  readonly input: readonly string[];
  /** Target channel name. */
  readonly target: string;
  /** Input length `L` in steps. */
  readonly length: number;
  /** Lead time `h` in steps. */
  readonly horizon: number;
  /** Row of each window's first input step. */
  readonly starts: Int32Array;
  /** Time (ms UTC) of each window's target. */
  readonly targetTimes: Float64Array;
  /** Number of windows. */
  readonly size: number;
}

/**
 * Cuts `series` (a regular grid, e.g. from {@linkcode resampleHourly}) into forecasting windows
 * of `length` input steps and a target `horizon` steps after the last input, keeping **only
 * windows with no missing value**: every `input` channel must be valid over the input rows, and
 * the `target` channel must be valid over the whole span from the first input row to the target
 * row, lead-time rows included — so no window spans a gap in the target series.
 *
 * Starts are chosen greedily: after a window starting at row `s`, the next candidate is
 * `s + stride`; after a rejected candidate, the next row. So with `stride` 1 every complete
 * window is returned, and after a gap windows resume at the first row where one fits.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { makeWindows } from "@diffprobe/core";
 *
 * const times = Float64Array.from({ length: 8 }, (_, i) => i * 3_600_000);
 * const WVHT = new Float32Array([1, 2, 3, NaN, 5, 6, 7, 8]);
 * const w = makeWindows({ times, columns: { WVHT } }, {
 *   input: ["WVHT"],
 *   target: "WVHT",
 *   length: 2,
 *   horizon: 1,
 * });
 * assert.deepEqual(Array.from(w.starts), [0, 4, 5]); // no window holds row 3
 * ```
 *
 * @param series A series on a regular grid (constant positive step).
 * @param options Channels, length, horizon and stride.
 * @returns The valid windows in time order.
 * @throws {RangeError} If a channel is unknown, a size is not a positive integer, or the grid is
 *   not regular.
 */
export function makeWindows(series: TimeSeries, options: WindowOptions): Windows {
  const length = positiveInteger(options.length ?? 128, "Option length");
  const horizon = positiveInteger(options.horizon ?? 6, "Option horizon");
  const stride = positiveInteger(options.stride ?? 1, "Option stride");
  const input = [...options.input];
  const target = options.target;
  if (input.length === 0) throw new RangeError("Cannot make windows: `input` lists no channel");
  for (const name of [...input, target]) {
    if (!(name in series.columns)) {
      throw new RangeError(
        `Cannot make windows: the series has no channel "${name}" (it has ${
          Object.keys(series.columns).join(", ") || "none"
        })`,
      );
    }
  }
  checkColumnLengths(series);
  checkRegular(series.times);
  const n = series.times.length;
  // Prefix counts of rows where some input channel is missing, and where the target is.
  const inputBad = new Uint32Array(n + 1);
  const targetBad = new Uint32Array(n + 1);
  const inputCols = input.map((name) => series.columns[name]);
  const targetCol = series.columns[target];
  for (let i = 0; i < n; i++) {
    let bad = 0;
    for (const col of inputCols) {
      if (Number.isNaN(col[i])) {
        bad = 1;
        break;
      }
    }
    inputBad[i + 1] = inputBad[i] + bad;
    targetBad[i + 1] = targetBad[i] + (Number.isNaN(targetCol[i]) ? 1 : 0);
  }
  const span = length + horizon; // rows from the first input to the target, inclusive
  const starts: number[] = [];
  let s = 0;
  while (s + span <= n) {
    if (inputBad[s + length] === inputBad[s] && targetBad[s + span] === targetBad[s]) {
      starts.push(s);
      s += stride;
    } else {
      s += 1;
    }
  }
  const startArr = Int32Array.from(starts);
  const targetTimes = new Float64Array(startArr.length);
  for (let k = 0; k < startArr.length; k++) targetTimes[k] = series.times[startArr[k] + span - 1];
  return {
    series,
    input,
    target,
    length,
    horizon,
    starts: startArr,
    targetTimes,
    size: startArr.length,
  };
}

/**
 * The windows at positions `indices` of `windows`, in the given order.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { makeWindows, selectWindows } from "@diffprobe/core";
 *
 * const times = Float64Array.from({ length: 10 }, (_, i) => i * 3_600_000);
 * const all = makeWindows({ times, columns: { WVHT: new Float32Array(10).fill(1) } }, {
 *   input: ["WVHT"],
 *   target: "WVHT",
 *   length: 4,
 *   horizon: 1,
 * });
 * const some = selectWindows(all, [0, 2]);
 * assert.equal(some.size, 2);
 * assert.deepEqual(Array.from(some.starts), [0, 2]);
 * ```
 *
 * @param windows Windows from {@linkcode makeWindows}.
 * @param indices Positions in `windows` (0 ≤ index < `windows.size`).
 * @returns A view sharing the same series.
 * @throws {RangeError} If an index is out of range.
 */
export function selectWindows(windows: Windows, indices: ArrayLike<number>): Windows {
  const starts = new Int32Array(indices.length);
  const targetTimes = new Float64Array(indices.length);
  for (let k = 0; k < indices.length; k++) {
    const i = integerInRange(indices[k], `Window index indices[${k}]`, 0, windows.size - 1);
    starts[k] = windows.starts[i];
    targetTimes[k] = windows.targetTimes[i];
  }
  return { ...windows, starts, targetTimes, size: starts.length };
}
