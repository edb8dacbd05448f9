/**
 * Filling short gaps of a regular series by linear interpolation: {@linkcode interpolateGaps}.
 *
 * @module
 */

import { nonNegativeInteger } from "../base/validate.ts";
import { checkColumnLengths, checkRegular } from "./_series.ts";
import type { TimeSeries } from "./timeseries.ts";

/**
 * Options of {@linkcode interpolateGaps}.
 */
export interface InterpolateOptions {
  /** Longest run of consecutive missing rows to fill (0 fills nothing). */
  maxGap: number;
  /** Columns to fill; default all. Other columns are copied unchanged. */
  columns?: readonly string[];
}

/**
 * Fills short gaps by linear interpolation in time: every run of at most `maxGap` consecutive
 * missing (`NaN`) rows with a valid value on both sides is replaced by the straight line between
 * those two values. Longer runs, and missing rows at either end, stay `NaN`. Opt-in: use it before
 * {@linkcode makeWindows} when isolated missing hours would otherwise discard many windows (at
 * NDBC 46035, 6,436 of the WVHT gaps are a single hour), and say so when reporting results.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { interpolateGaps } from "@diffprobe/core";
 *
 * const times = Float64Array.from({ length: 7 }, (_, i) => i * 3_600_000);
 * const WVHT = new Float32Array([1, NaN, 3, NaN, NaN, NaN, 7]);
 * const filled = interpolateGaps({ times, columns: { WVHT } }, { maxGap: 2 });
 * assert.deepEqual(Array.from(filled.columns.WVHT), [1, 2, 3, NaN, NaN, NaN, 7]);
 * ```
 *
 * @param series A series on a regular grid (e.g. from {@linkcode resampleHourly}).
 * @param options The longest gap to fill and the columns to fill.
 * @returns A new series sharing `times`, with new arrays for the filled columns.
 * @throws {RangeError} If `maxGap` is not a non-negative integer, a column is unknown, or the grid
 *   is not regular.
 */
export function interpolateGaps(series: TimeSeries, options: InterpolateOptions): TimeSeries {
  const maxGap = nonNegativeInteger(options.maxGap, "Option maxGap");
  checkColumnLengths(series);
  checkRegular(series.times, "Cannot interpolate gaps");
  const names = options.columns ? [...options.columns] : Object.keys(series.columns);
  for (const name of names) {
    if (!(name in series.columns)) {
      throw new RangeError(
        `Cannot interpolate gaps: the series has no channel "${name}" (it has ${
          Object.keys(series.columns).join(", ") || "none"
        })`,
      );
    }
  }
  const { times } = series;
  const columns: Record<string, Float32Array> = { ...series.columns };
  for (const name of names) {
    const col = Float32Array.from(series.columns[name]);
    let i = 0;
    while (i < col.length) {
      if (!Number.isNaN(col[i])) {
        i++;
        continue;
      }
      let j = i;
      while (j < col.length && Number.isNaN(col[j])) j++;
      if (i > 0 && j < col.length && j - i <= maxGap) {
        const t0 = times[i - 1];
        const v0 = col[i - 1];
        const slope = (col[j] - v0) / (times[j] - t0);
        for (let k = i; k < j; k++) col[k] = v0 + slope * (times[k] - t0);
      }
      i = j;
    }
    columns[name] = col;
  }
  return { times, columns };
}
