/**
 * Time series for forecasting experiments: the {@linkcode TimeSeries} type that the NDBC and CSV
 * readers return, resampling onto a regular hourly grid, fixed-length windows that never span
 * missing data, chronological train / validation / test splits, a per-channel min–max scaler
 * fitted on the training split only, and the step from windows to TensorFlow.js tensors.
 *
 * Data flow: readings → {@linkcode resampleHourly} → (optionally
 * {@linkcode interpolateGaps}) → {@linkcode makeWindows} →
 * {@linkcode chronologicalSplit} → {@linkcode MinMaxScaler.fit} on `train` →
 * {@linkcode windowsToTensors} for each split.
 *
 * @example
 * ```ts
 * import {
 *   chronologicalSplit,
 *   makeWindows,
 *   MinMaxScaler,
 *   resampleHourly,
 *   type TimeSeries,
 *   windowsToTensors,
 * } from "./timeseries.ts";
 *
 * const H = 3_600_000;
 * const n = 24 * 30; // 30 days of hourly readings
 * const readings: TimeSeries = {
 *   times: Float64Array.from({ length: n }, (_, i) => Date.UTC(2020, 0, 1) + i * H),
 *   columns: { WVHT: Float32Array.from({ length: n }, (_, i) => 2 + Math.sin(i / 12)) },
 * };
 * const hourly = resampleHourly(readings);
 * const windows = makeWindows(hourly, { input: ["WVHT"], target: "WVHT", length: 48, horizon: 6 });
 * const { train, test } = chronologicalSplit(windows, {
 *   trainEnd: "2020-01-20",
 *   valEnd: "2020-01-25",
 *   testStart: "2020-01-25",
 *   testEnd: "2020-02-01",
 * });
 * const scaler = MinMaxScaler.fit(train);
 * const { x, y } = windowsToTensors(test, { scaler });
 * console.log(x.shape, y.shape); // [N, 48, 1] [N]
 * x.dispose();
 * y.dispose();
 * ```
 *
 * @module
 */

import * as tf from "@tensorflow/tfjs";

/** One hour in milliseconds. */
const HOUR_MS = 3_600_000;
/** Refuse to allocate grids longer than this (a sign of a bogus timestamp). */
const MAX_GRID = 100_000_000;

/**
 * A multichannel time series: `times[i]` (milliseconds since the Unix epoch, UTC) is when the
 * values `columns[name][i]` were observed. Missing values are `NaN`. Every column has the
 * length of `times`.
 *
 * Readers return `times` in non-decreasing order (duplicates possible, as in raw NDBC files);
 * {@linkcode resampleHourly} returns a strictly regular grid.
 *
 * @example
 * ```ts
 * import type { TimeSeries } from "./timeseries.ts";
 *
 * const series: TimeSeries = {
 *   times: new Float64Array([Date.UTC(2017, 0, 1, 0), Date.UTC(2017, 0, 1, 1)]),
 *   columns: { WVHT: new Float32Array([2.5, NaN]) },
 * };
 * ```
 */
export interface TimeSeries {
  /** Observation times in milliseconds since 1970-01-01T00:00Z. */
  times: Float64Array;
  /** One array per channel, each as long as `times`; `NaN` marks a missing value. */
  columns: Record<string, Float32Array>;
}

/**
 * A malformed line found by a reader (`parseNdbcStdmet`, `parseCsvSeries`): the file (as named
 * to the reader), the 1-based line number and why it was not read.
 *
 * @example
 * ```ts
 * import type { ReadIssue } from "./timeseries.ts";
 *
 * const issue: ReadIssue = { file: "46035h2000.txt", line: 17, reason: "expected 17 fields" };
 * console.log(`${issue.file}:${issue.line}: ${issue.reason}`);
 * ```
 */
export interface ReadIssue {
  /** The file name or label the text came from. */
  file: string;
  /** 1-based line number. */
  line: number;
  /** What is wrong, e.g. `non-numeric value "9.x" in column WSPD`. */
  reason: string;
}

/**
 * What the series readers return: the readings sorted by time, every malformed line, the number
 * of rows read and the files read.
 *
 * @example
 * ```ts
 * import type { ReadResult } from "./timeseries.ts";
 *
 * function summary(r: ReadResult): string {
 *   return `${r.rows} rows from ${r.files.length} files, ${r.issues.length} malformed lines`;
 * }
 * ```
 */
export interface ReadResult {
  /** The readings, sorted by time (stable; duplicate timestamps in the input are kept). */
  series: TimeSeries;
  /** Every malformed line, in file and line order (empty in strict mode, which throws instead). */
  issues: ReadIssue[];
  /** Number of data rows read into `series`. */
  rows: number;
  /** The files read, in order, by the names used in `issues`. */
  files: string[];
}

/**
 * Options of {@linkcode resampleHourly}.
 *
 * @example
 * ```ts
 * import type { ResampleOptions } from "./timeseries.ts";
 *
 * const year2000: ResampleOptions = {
 *   start: Date.UTC(2000, 0, 1),
 *   end: Date.UTC(2000, 11, 31, 23),
 * };
 * ```
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
 * import { resampleHourly } from "./timeseries.ts";
 *
 * const t0 = Date.UTC(2010, 0, 1);
 * const hourly = resampleHourly({
 *   times: new Float64Array([t0 + 50 * 60_000, t0 + 55 * 60_000, t0 + 3 * 3_600_000]),
 *   columns: { WVHT: new Float32Array([1, 2, 4]) },
 * });
 * console.log(hourly.times.length, Array.from(hourly.columns.WVHT)); // 4 [1.5, NaN, NaN, 4]
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
  const start = options.start !== undefined ? floorHour(options.start, "start") : floorHour(lo);
  const end = options.end !== undefined ? floorHour(options.end, "end") : floorHour(hi);
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

/**
 * Options of {@linkcode interpolateGaps}.
 *
 * @example
 * ```ts
 * import type { InterpolateOptions } from "./timeseries.ts";
 *
 * const options: InterpolateOptions = { maxGap: 2, columns: ["WVHT"] };
 * ```
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
 * import { interpolateGaps } from "./timeseries.ts";
 *
 * const times = Float64Array.from({ length: 7 }, (_, i) => i * 3_600_000);
 * const WVHT = new Float32Array([1, NaN, 3, NaN, NaN, NaN, 7]);
 * const filled = interpolateGaps({ times, columns: { WVHT } }, { maxGap: 2 });
 * console.log(Array.from(filled.columns.WVHT)); // [1, 2, 3, NaN, NaN, NaN, 7]
 * ```
 *
 * @param series A series on a regular grid (e.g. from {@linkcode resampleHourly}).
 * @param options The longest gap to fill and the columns to fill.
 * @returns A new series sharing `times`, with new arrays for the filled columns.
 * @throws {RangeError} If `maxGap` is not a non-negative integer, a column is unknown, or the grid
 *   is not regular.
 */
export function interpolateGaps(series: TimeSeries, options: InterpolateOptions): TimeSeries {
  const { maxGap } = options;
  if (!Number.isInteger(maxGap) || maxGap < 0) {
    throw new RangeError(`Option maxGap must be a non-negative integer, got ${maxGap}`);
  }
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

/**
 * Options of {@linkcode makeWindows}.
 *
 * @example
 * ```ts
 * import type { WindowOptions } from "./timeseries.ts";
 *
 * const options: WindowOptions = {
 *   input: ["WVHT", "DPD", "APD", "WSPD"],
 *   target: "WVHT",
 *   length: 128,
 *   horizon: 6,
 * };
 * ```
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
 *
 * @example
 * ```ts
 * import { makeWindows, type Windows } from "./timeseries.ts";
 *
 * const times = Float64Array.from({ length: 10 }, (_, i) => i * 3_600_000);
 * const w: Windows = makeWindows(
 *   { times, columns: { WVHT: new Float32Array(10).fill(1) } },
 *   { input: ["WVHT"], target: "WVHT", length: 4, horizon: 2 },
 * );
 * console.log(w.size, w.starts[0], w.targetTimes[0] / 3_600_000); // 5 0 5
 * ```
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
 * import { makeWindows } from "./timeseries.ts";
 *
 * const times = Float64Array.from({ length: 8 }, (_, i) => i * 3_600_000);
 * const WVHT = new Float32Array([1, 2, 3, NaN, 5, 6, 7, 8]);
 * const w = makeWindows({ times, columns: { WVHT } }, {
 *   input: ["WVHT"],
 *   target: "WVHT",
 *   length: 2,
 *   horizon: 1,
 * });
 * console.log(Array.from(w.starts)); // [0, 4, 5]
 * ```
 *
 * @param series A series on a regular grid (constant positive step).
 * @param options Channels, length, horizon and stride.
 * @returns The valid windows in time order.
 * @throws {RangeError} If a channel is unknown, a size is not a positive integer, or the grid is
 *   not regular.
 */
export function makeWindows(series: TimeSeries, options: WindowOptions): Windows {
  const length = positiveInt(options.length ?? 128, "length");
  const horizon = positiveInt(options.horizon ?? 6, "horizon");
  const stride = positiveInt(options.stride ?? 1, "stride");
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
 * import { makeWindows, selectWindows } from "./timeseries.ts";
 *
 * const times = Float64Array.from({ length: 10 }, (_, i) => i * 3_600_000);
 * const all = makeWindows({ times, columns: { WVHT: new Float32Array(10).fill(1) } }, {
 *   input: ["WVHT"],
 *   target: "WVHT",
 *   length: 4,
 *   horizon: 1,
 * });
 * console.log(selectWindows(all, [0, 2]).size); // 2
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
    const i = indices[k];
    if (!Number.isInteger(i) || i < 0 || i >= windows.size) {
      throw new RangeError(
        `Cannot select window ${i}: there are ${windows.size} windows (indices[${k}])`,
      );
    }
    starts[k] = windows.starts[i];
    targetTimes[k] = windows.targetTimes[i];
  }
  return { ...windows, starts, targetTimes, size: starts.length };
}

/**
 * A time boundary for {@linkcode chronologicalSplit}: milliseconds since the epoch, a `Date`, or
 * an ISO 8601 string read as UTC when it has no offset (`"2009"` is 2009-01-01T00:00Z,
 * `"2014-07-01"` and `"2014-07-01T12:00"` are UTC too).
 *
 * @example
 * ```ts
 * import type { TimeBoundary } from "./timeseries.ts";
 *
 * const a: TimeBoundary = "2009";
 * const b: TimeBoundary = Date.UTC(2009, 0, 1);
 * const c: TimeBoundary = new Date("2009-01-01T00:00:00Z");
 * ```
 */
export type TimeBoundary = number | Date | string;

/**
 * Boundaries of {@linkcode chronologicalSplit}. Ends are exclusive, starts inclusive:
 * train is `[trainStart, trainEnd)`, validation `[trainEnd, valEnd)`, test
 * `[testStart, testEnd)`.
 *
 * @example
 * ```ts
 * import type { SplitOptions } from "./timeseries.ts";
 *
 * // Train up to 2008, validate 2009–2011, test 2014–2017.
 * const split: SplitOptions = {
 *   trainEnd: "2009",
 *   valEnd: "2012",
 *   testStart: "2014",
 *   testEnd: "2018",
 * };
 * ```
 */
export interface SplitOptions {
  /** Start of the training period; default: the beginning of time. */
  trainStart?: TimeBoundary;
  /** End of the training period and start of the validation period (exclusive for train). */
  trainEnd: TimeBoundary;
  /** End of the validation period (exclusive). */
  valEnd: TimeBoundary;
  /** Start of the test period (inclusive); must not be before `valEnd`. */
  testStart: TimeBoundary;
  /** End of the test period (exclusive). */
  testEnd: TimeBoundary;
}

/**
 * The result of {@linkcode chronologicalSplit}.
 *
 * @example
 * ```ts
 * import type { Split } from "./timeseries.ts";
 *
 * function describe(split: Split): string {
 *   return `${split.train.size}/${split.val.size}/${split.test.size}`;
 * }
 * ```
 */
export interface Split {
  /** Windows entirely within the training period. */
  train: Windows;
  /** Windows entirely within the validation period. */
  val: Windows;
  /** Windows entirely within the test period. */
  test: Windows;
  /** Windows that cross a boundary between two periods (in none of the splits). */
  straddling: number;
  /** Windows entirely outside all periods, e.g. between `valEnd` and `testStart`. */
  outside: number;
}

/**
 * Splits windows chronologically. A window belongs to a period when its **first input time and
 * its target time** both fall in it, so no window straddles a boundary and no validation or test
 * window sees an input from an earlier period; windows that would are dropped and counted in
 * `straddling`.
 *
 * @example
 * ```ts
 * import { chronologicalSplit, makeWindows } from "./timeseries.ts";
 *
 * const H = 3_600_000;
 * const times = Float64Array.from({ length: 10 }, (_, i) => i * H);
 * const w = makeWindows({ times, columns: { WVHT: new Float32Array(10).fill(1) } }, {
 *   input: ["WVHT"],
 *   target: "WVHT",
 *   length: 2,
 *   horizon: 1,
 * }); // 8 windows, covering rows 0–2, 1–3, …, 7–9
 * const bounds = { trainEnd: 5 * H, valEnd: 8 * H, testStart: 8 * H, testEnd: 10 * H };
 * const s = chronologicalSplit(w, bounds);
 * console.log(s.train.size, s.val.size, s.test.size, s.straddling); // 3 1 0 4
 * ```
 *
 * @param windows Windows from {@linkcode makeWindows}.
 * @param options Period boundaries.
 * @returns The three splits and the counts of dropped windows.
 * @throws {RangeError} If a boundary is not a valid time or the periods are out of order.
 */
export function chronologicalSplit(windows: Windows, options: SplitOptions): Split {
  const trainStart = options.trainStart === undefined
    ? -Infinity
    : toTime(options.trainStart, "trainStart");
  const trainEnd = toTime(options.trainEnd, "trainEnd");
  const valEnd = toTime(options.valEnd, "valEnd");
  const testStart = toTime(options.testStart, "testStart");
  const testEnd = toTime(options.testEnd, "testEnd");
  const order: [string, number][] = [
    ["trainStart", trainStart],
    ["trainEnd", trainEnd],
    ["valEnd", valEnd],
    ["testStart", testStart],
    ["testEnd", testEnd],
  ];
  for (let i = 1; i < order.length; i++) {
    const [pa, a] = order[i - 1];
    const [pb, b] = order[i];
    const ok = pb === "testStart" ? b >= a : b > a;
    if (!ok) {
      throw new RangeError(
        `Cannot split: ${pb} (${iso(b)}) must be ${
          pb === "testStart" ? "at or after" : "after"
        } ${pa} (${iso(a)})`,
      );
    }
  }
  const periods: [number, number][] = [
    [trainStart, trainEnd],
    [trainEnd, valEnd],
    [testStart, testEnd],
  ];
  const members: number[][] = [[], [], []];
  let straddling = 0;
  let outside = 0;
  const { times } = windows.series;
  for (let k = 0; k < windows.size; k++) {
    const first = times[windows.starts[k]];
    const last = windows.targetTimes[k];
    let placed = false;
    let touches = false;
    for (let p = 0; p < 3; p++) {
      const [a, b] = periods[p];
      const firstIn = first >= a && first < b;
      const lastIn = last >= a && last < b;
      if (firstIn && lastIn) {
        members[p].push(k);
        placed = true;
        break;
      }
      if (firstIn || lastIn || (first < a && last >= b)) touches = true;
    }
    if (!placed) {
      if (touches) straddling++;
      else outside++;
    }
  }
  return {
    train: selectWindows(windows, members[0]),
    val: selectWindows(windows, members[1]),
    test: selectWindows(windows, members[2]),
    straddling,
    outside,
  };
}

/**
 * Per-channel min–max scaling to `[0, 1]`: `(v - min) / (max - min)`. Fit it on the training
 * windows only ({@linkcode MinMaxScaler.fit}) and apply it to every split, so validation and
 * test data never inform the normalisation. A channel with `max === min` maps to 0.
 *
 * @example
 * ```ts
 * import { MinMaxScaler } from "./timeseries.ts";
 *
 * const scaler = new MinMaxScaler({ WVHT: 0.5 }, { WVHT: 10.5 });
 * console.log(scaler.transform(3, "WVHT"), scaler.inverse(0.25, "WVHT")); // 0.25 3
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
   * import { makeWindows, MinMaxScaler } from "./timeseries.ts";
   *
   * const times = Float64Array.from({ length: 6 }, (_, i) => i * 3_600_000);
   * const w = makeWindows({ times, columns: { WVHT: new Float32Array([1, 4, 2, 8, 3, 9]) } }, {
   *   input: ["WVHT"],
   *   target: "WVHT",
   *   length: 2,
   *   horizon: 1,
   *   stride: 3,
   * }); // windows at rows 0–2 and 3–5
   * console.log(MinMaxScaler.fit(w).min.WVHT, MinMaxScaler.fit(w).max.WVHT); // 1 9
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
   * import { MinMaxScaler } from "./timeseries.ts";
   *
   * const s = new MinMaxScaler({ WVHT: 0 }, { WVHT: 10 });
   * console.log(s.transform(new Float32Array([0, 5]), "WVHT")); // Float32Array [0, 0.5]
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
   * import { MinMaxScaler } from "./timeseries.ts";
   *
   * const s = new MinMaxScaler({ WVHT: 0 }, { WVHT: 10 });
   * console.log(s.inverse(0.26, "WVHT")); // 2.6
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
   * import { MinMaxScaler } from "./timeseries.ts";
   *
   * const s = new MinMaxScaler({ WVHT: 0 }, { WVHT: 10 });
   * console.log(JSON.stringify(s)); // {"min":{"WVHT":0},"max":{"WVHT":10}}
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

/**
 * Options of {@linkcode windowsToArrays} and {@linkcode windowsToTensors}.
 *
 * @example
 * ```ts
 * import type { WindowArrayOptions } from "./timeseries.ts";
 *
 * const firstHundred: WindowArrayOptions = { indices: Array.from({ length: 100 }, (_, i) => i) };
 * ```
 */
export interface WindowArrayOptions {
  /** Scale every channel with this scaler (fitted on the training split). */
  scaler?: MinMaxScaler;
  /** Only these windows (positions in `windows`), in this order; default all. */
  indices?: ArrayLike<number>;
}

/**
 * Window inputs and targets as flat arrays.
 *
 * @example
 * ```ts
 * import type { WindowArrays } from "./timeseries.ts";
 *
 * function firstTarget(a: WindowArrays): number {
 *   return a.targets[0];
 * }
 * ```
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
 * import { makeWindows, windowsToArrays } from "./timeseries.ts";
 *
 * const times = Float64Array.from({ length: 5 }, (_, i) => i * 3_600_000);
 * const w = makeWindows({ times, columns: { WVHT: new Float32Array([1, 2, 3, 4, 5]) } }, {
 *   input: ["WVHT"],
 *   target: "WVHT",
 *   length: 2,
 *   horizon: 2,
 * });
 * const a = windowsToArrays(w);
 * console.log(a.shape, Array.from(a.inputs)); // [2, 2, 1] [1, 2, 2, 3]
 * console.log(Array.from(a.targets)); // [4, 5]
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
 * import { makeWindows, windowsToTensors } from "./timeseries.ts";
 *
 * const times = Float64Array.from({ length: 5 }, (_, i) => i * 3_600_000);
 * const w = makeWindows({ times, columns: { WVHT: new Float32Array([1, 2, 3, 4, 5]) } }, {
 *   input: ["WVHT"],
 *   target: "WVHT",
 *   length: 2,
 *   horizon: 2,
 * });
 * const { x, y } = windowsToTensors(w);
 * console.log(x.shape, y.shape); // [2, 2, 1] [2]
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

// ---------------------------------------------------------------------------------------------
// Internals

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

function emptySeries(names: string[]): TimeSeries {
  const columns: Record<string, Float32Array> = {};
  for (const name of names) columns[name] = new Float32Array(0);
  return { times: new Float64Array(0), columns };
}

function floorHour(t: number, what?: string): number {
  if (!Number.isFinite(t)) {
    throw new RangeError(`Cannot resample: option ${what ?? "time"} is ${t}, not a finite time`);
  }
  return Math.floor(t / HOUR_MS) * HOUR_MS;
}

function checkColumnLengths(series: TimeSeries): void {
  for (const [name, col] of Object.entries(series.columns)) {
    if (col.length !== series.times.length) {
      throw new RangeError(
        `Column "${name}" has ${col.length} values but the series has ${series.times.length} times`,
      );
    }
  }
}

function checkRegular(times: Float64Array, what = "Cannot make windows"): void {
  if (times.length < 2) return;
  const step = times[1] - times[0];
  if (!(step > 0)) {
    throw new RangeError(
      `${what}: the grid step times[1] - times[0] is ${step} ms, not positive`,
    );
  }
  for (let i = 2; i < times.length; i++) {
    if (times[i] - times[i - 1] !== step) {
      throw new RangeError(
        `${what} on an irregular grid: times[${i}] - times[${i - 1}] is ${
          times[i] - times[i - 1]
        } ms, expected ${step} ms (resample first, e.g. with resampleHourly)`,
      );
    }
  }
}

function positiveInt(v: number, name: string): number {
  if (!Number.isInteger(v) || v < 1) {
    throw new RangeError(`Option ${name} must be a positive integer, got ${v}`);
  }
  return v;
}

const ISO_NO_OFFSET = /^\d{4}(-\d{2}(-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?)?)?$/;

function toTime(b: TimeBoundary, name: string): number {
  let t: number;
  if (typeof b === "number") t = b;
  else if (b instanceof Date) t = b.getTime();
  else {
    const s = b.trim();
    // Date-times without an offset are local time in JavaScript; read them as UTC instead.
    t = Date.parse(ISO_NO_OFFSET.test(s) && s.length > 10 ? s.replace(" ", "T") + "Z" : s);
  }
  if (!Number.isFinite(t)) {
    throw new RangeError(`Cannot split: ${name} ${JSON.stringify(b)} is not a valid time`);
  }
  return t;
}

function iso(t: number): string {
  return Number.isFinite(t) ? new Date(t).toISOString() : String(t);
}
