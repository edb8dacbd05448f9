/**
 * Internal helpers of the time-series modules: grid constants, column and grid checks, time
 * formatting for messages. Not part of the public API.
 *
 * @module
 */

import type { TimeSeries } from "./timeseries.ts";

/** One hour in milliseconds. */
export const HOUR_MS = 3_600_000;
/** Refuse to allocate grids longer than this (a sign of a bogus timestamp). */
export const MAX_GRID = 100_000_000;

export function emptySeries(names: string[]): TimeSeries {
  const columns: Record<string, Float32Array> = {};
  for (const name of names) columns[name] = new Float32Array(0);
  return { times: new Float64Array(0), columns };
}

export function floorHour(t: number): number {
  return Math.floor(t / HOUR_MS) * HOUR_MS;
}

export function checkColumnLengths(series: TimeSeries): void {
  for (const [name, col] of Object.entries(series.columns)) {
    if (col.length !== series.times.length) {
      throw new RangeError(
        `Column "${name}" has ${col.length} values but the series has ${series.times.length} times`,
      );
    }
  }
}

export function checkRegular(times: Float64Array, what = "Cannot make windows"): void {
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

export function iso(t: number): string {
  return Number.isFinite(t) ? new Date(t).toISOString() : String(t);
}

/**
 * Rows sorted by time (stably: equal times keep their order) and packed into typed arrays, one
 * column per entry of `columns` (each as long as `times`).
 */
export function sortedSeries(
  times: readonly number[],
  columns: Record<string, readonly number[]>,
): TimeSeries {
  const n = times.length;
  let sorted = true;
  for (let r = 1; r < n && sorted; r++) if (times[r] < times[r - 1]) sorted = false;
  const order = sorted
    ? undefined
    : Array.from({ length: n }, (_, r) => r).sort((a, b) => times[a] - times[b] || a - b);
  const outTimes = new Float64Array(n);
  for (let r = 0; r < n; r++) outTimes[r] = times[order ? order[r] : r];
  const out = ownRecord(
    Object.entries(columns).map(([name, src]) => {
      const col = new Float32Array(n);
      for (let r = 0; r < n; r++) col[r] = src[order ? order[r] : r];
      return [name, col];
    }),
  );
  return { times: outTimes, columns: out };
}

/**
 * A record with `entries` as own properties, also for keys such as `__proto__` (which a plain
 * assignment would treat as the prototype): column names come from files.
 */
export function ownRecord<T>(entries: Iterable<readonly [string, T]>): Record<string, T> {
  return Object.fromEntries(entries) as Record<string, T>;
}
