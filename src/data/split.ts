/**
 * Chronological train / validation / test splits of windows: {@linkcode chronologicalSplit}.
 *
 * @module
 */

import { iso } from "./_series.ts";
import { selectWindows, type Windows } from "./windows.ts";

/**
 * A time boundary for {@linkcode chronologicalSplit}: milliseconds since the epoch, a `Date`, or
 * an ISO 8601 string read as UTC when it has no offset (`"2009"` is 2009-01-01T00:00Z,
 * `"2014-07-01"` and `"2014-07-01T12:00"` are UTC too).
 */
export type TimeBoundary = number | Date | string;

/**
 * Boundaries of {@linkcode chronologicalSplit}. Ends are exclusive, starts inclusive:
 * train is `[trainStart, trainEnd)`, validation `[trainEnd, valEnd)`, test
 * `[testStart, testEnd)`.
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
 * import assert from "node:assert/strict";
 * import { chronologicalSplit, makeWindows } from "@diffprobe/core";
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
 * assert.deepEqual([s.train.size, s.val.size, s.test.size, s.straddling], [3, 1, 0, 4]);
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
