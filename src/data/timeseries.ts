/**
 * Time series for forecasting experiments: the {@linkcode TimeSeries} type that the NDBC and CSV
 * readers return, with the {@linkcode ReadIssue}s they report. The steps from readings to model
 * inputs live one per module beside this one:
 *
 * readings → `resampleHourly` (resample.ts) → optionally `interpolateGaps` (interpolate.ts) →
 * `makeWindows` (windows.ts) → `chronologicalSplit` (split.ts) → `MinMaxScaler.fit` on `train`
 * (min_max_scaler.ts) → `windowsToTensors` or `windowsToArrays` (window_arrays.ts) for each split.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import {
 *   chronologicalSplit,
 *   makeWindows,
 *   MinMaxScaler,
 *   resampleHourly,
 *   type TimeSeries,
 *   windowsToTensors,
 * } from "@diffprobe/core";
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
 * assert.deepEqual(x.shape, [test.size, 48, 1]);
 * assert.deepEqual(y.shape, [test.size]);
 * assert.ok(test.size > 0 && train.size > 0);
 * x.dispose();
 * y.dispose();
 * ```
 *
 * @module
 */

/**
 * A multichannel time series: `times[i]` (milliseconds since the Unix epoch, UTC) is when the
 * values `columns[name][i]` were observed. Missing values are `NaN`. Every column has the
 * length of `times`.
 *
 * Readers return `times` in non-decreasing order (duplicates possible, as in raw NDBC files);
 * `resampleHourly` returns a strictly regular grid.
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
