/**
 * Resampling readings onto a regular hourly grid: {@linkcode resampleHourly}.
 *
 * @module
 */

import { finiteNumber } from "../base/validate.ts";
import { checkColumnLengths, emptySeries, floorHour, HOUR_MS, iso, MAX_GRID } from "./_series.ts";
import type { TimeSeries } from "./timeseries.ts";

/**
 * Options of {@linkcode resampleHourly}.
 */
export interface ResampleOptions {
  /** First hour of the grid (ms UTC, floored to the hour); default: the first reading's hour. */
  start?: number;
  /** Last hour of the grid (ms UTC, floored, inclusive); default: the last reading's hour. */
  end?: number;
}

/**
 * Resamples `series` onto a regular hourly grid: the value at hour `h` is the **mean of the
 * valid (non-`NaN`) readings with time in `[h, h + 1 hour)`**, per column, and `NaN` when there
 * is none. Readings outside `[start, end + 1 hour)` are ignored.
 *
 * Why the mean of the hour rather than the reading nearest the top of the hour: NDBC stations
 * report once per hour, at `hh:00` until 2004 and mostly at `hh:50` from 2005, so each hour
 * normally holds exactly one reading and the value is that reading, unshifted; the hour's mean
 * also resolves the duplicated rows that raw NDBC files contain (59 timestamps at 46035) without
 * preferring one arbitrarily, and a column missing in one duplicate is taken from the other.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { resampleHourly } from "@diffprobe/core";
 *
 * const t0 = Date.UTC(2010, 0, 1);
 * const hourly = resampleHourly({
 *   times: new Float64Array([t0 + 50 * 60_000, t0 + 55 * 60_000, t0 + 3 * 3_600_000]),
 *   columns: { WVHT: new Float32Array([1, 2, 4]) },
 * });
 * assert.deepEqual(Array.from(hourly.times), [0, 1, 2, 3].map((h) => t0 + h * 3_600_000));
 * assert.deepEqual(Array.from(hourly.columns.WVHT), [1.5, NaN, NaN, 4]);
 * ```
 *
 * @param series Readings in any order.
 * @param options Optional explicit grid bounds.
 * @returns A series with `times[i] = start + i hours` and one value per hour and column.
 * @throws {RangeError} If a time is not finite or the grid would exceed 100 million hours.
 */
export function resampleHourly(series: TimeSeries, options: ResampleOptions = {}): TimeSeries {
  const { times } = series;
  const names = Object.keys(series.columns);
  checkColumnLengths(series);
  let lo = Infinity;
  let hi = -Infinity;
  for (let i = 0; i < times.length; i++) {
    const t = times[i];
    if (!Number.isFinite(t)) {
      throw new RangeError(`Cannot resample: times[${i}] is ${t}, not a finite time`);
    }
    if (t < lo) lo = t;
    if (t > hi) hi = t;
  }
  if (times.length === 0 && (options.start === undefined || options.end === undefined)) {
    return emptySeries(names);
  }
  const start = options.start !== undefined
    ? floorHour(finiteNumber(options.start, "Option start"))
    : floorHour(lo);
  const end = options.end !== undefined
    ? floorHour(finiteNumber(options.end, "Option end"))
    : floorHour(hi);
  if (end < start) return emptySeries(names);
  const n = (end - start) / HOUR_MS + 1;
  if (n > MAX_GRID) {
    throw new RangeError(
      `Cannot resample: the hourly grid from ${iso(start)} to ${iso(end)} has ${n} hours ` +
        `(more than ${MAX_GRID})`,
    );
  }
  const bin = new Int32Array(times.length);
  for (let i = 0; i < times.length; i++) {
    const b = Math.floor((times[i] - start) / HOUR_MS);
    bin[i] = b >= 0 && b < n ? b : -1;
  }
  const out: Record<string, Float32Array> = {};
  const sum = new Float64Array(n);
  const count = new Uint32Array(n);
  for (const name of names) {
    const values = series.columns[name];
    sum.fill(0);
    count.fill(0);
    for (let i = 0; i < values.length; i++) {
      const b = bin[i];
      const v = values[i];
      if (b >= 0 && !Number.isNaN(v)) {
        sum[b] += v;
        count[b]++;
      }
    }
    const col = new Float32Array(n);
    for (let b = 0; b < n; b++) col[b] = count[b] > 0 ? sum[b] / count[b] : NaN;
    out[name] = col;
  }
  const grid = new Float64Array(n);
  for (let b = 0; b < n; b++) grid[b] = start + b * HOUR_MS;
  return { times: grid, columns: out };
}
