/**
 * Chronological splits by whole calendar years: {@linkcode deriveYearSplit} picks train,
 * validation and test years from the span of a series (for data whose years are not known in
 * advance), and {@linkcode yearSplitBounds} turns years into {@linkcode chronologicalSplit}
 * boundaries.
 *
 * @module
 */

import { numberInRange, safeInteger } from "../base/validate.ts";
import type { SplitOptions } from "./split.ts";

/**
 * Split years, all inclusive and UTC: train `… trainUntil`, validation `trainUntil + 1 …
 * valUntil`, test `testFrom … testUntil` (years between `valUntil` and `testFrom` are unused).
 */
export interface YearSplit {
  /** Last training year. */
  trainUntil: number;
  /** Last validation year (validation starts the year after `trainUntil`). */
  valUntil: number;
  /** First test year (at or after `valUntil + 1`). */
  testFrom: number;
  /** Last test year. */
  testUntil: number;
}

/** Options of {@linkcode deriveYearSplit}. */
export interface DeriveYearSplitOptions {
  /** Share of the counted years given to validation (at least one year); default 0.15. */
  valFraction?: number;
  /** Share of the counted years given to test (at least one year); default 0.2. */
  testFraction?: number;
  /**
   * A year counts when it holds at least this share of the busiest year's times; default 0.25.
   * Stray readings (NDBC files from 2008 on start with 23:50 of 31 December of the year before)
   * and nearly empty years therefore neither start a split nor take a split's place.
   */
  minShare?: number;
}

/**
 * Picks split years from `times` (ms UTC, e.g. the target times of forecasting windows): the
 * years holding at least `minShare` of the busiest year's times are counted, the last
 * `testFraction` of them (at least one) are test, the `valFraction` before them (at least one)
 * validation, and the rest (at least one) training. Years without enough data between the
 * counted ones belong to the split whose range they fall in.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { deriveYearSplit } from "@diffprobe/core";
 *
 * // hourly times over 2001–2010, plus one stray reading on 31 December 2000
 * const times = [Date.UTC(2000, 11, 31, 23, 50)];
 * for (let t = Date.UTC(2001, 0, 1); t < Date.UTC(2011, 0, 1); t += 3_600_000) times.push(t);
 * assert.deepEqual(deriveYearSplit(times), {
 *   trainUntil: 2006, // 2001–2006: the 6 remaining years (the stray 2000 reading does not count)
 *   valUntil: 2008, // 2007–2008: round(0.15 × 10) = 2 years
 *   testFrom: 2009, // 2009–2010: round(0.2 × 10) = 2 years
 *   testUntil: 2010,
 * });
 * assert.throws(() => deriveYearSplit([Date.UTC(2001, 0, 1), Date.UTC(2002, 0, 1)]), /2 years/);
 * ```
 *
 * @param times Times in ms UTC, in any order.
 * @param options Fractions and the share that makes a year count.
 * @returns The split years.
 * @throws {RangeError} If fewer than three years hold enough data, or an option is out of range.
 */
export function deriveYearSplit(
  times: ArrayLike<number>,
  options: DeriveYearSplitOptions = {},
): YearSplit {
  const valFraction = numberInRange(options.valFraction ?? 0.15, "Option valFraction", 0, 1);
  const testFraction = numberInRange(options.testFraction ?? 0.2, "Option testFraction", 0, 1);
  const minShare = numberInRange(options.minShare ?? 0.25, "Option minShare", 0, 1);
  const counts = new Map<number, number>();
  for (let i = 0; i < times.length; i++) {
    const t = times[i];
    if (!Number.isFinite(t)) continue;
    const y = new Date(t).getUTCFullYear();
    counts.set(y, (counts.get(y) ?? 0) + 1);
  }
  const busiest = Math.max(0, ...counts.values());
  const years = [...counts].filter(([, c]) => c > 0 && c >= minShare * busiest).map(([y]) => y)
    .sort((a, b) => a - b);
  const n = years.length;
  const nTest = Math.max(1, Math.round(testFraction * n));
  const nVal = Math.max(1, Math.round(valFraction * n));
  if (n < 3 || n - nTest - nVal < 1) {
    throw new RangeError(
      `Cannot derive split years: ${n} year${n === 1 ? "" : "s"} hold enough data (${
        years.join(", ") || "none"
      }; a year counts with at least ${minShare} of the busiest year's ${busiest} times), ` +
        `but train, validation and test need one year each at least`,
    );
  }
  return {
    trainUntil: years[n - nTest - nVal - 1],
    valUntil: years[n - nTest - 1],
    testFrom: years[n - nTest],
    testUntil: years[n - 1],
  };
}

/**
 * The {@linkcode chronologicalSplit} boundaries of whole split years: train ends at the start of
 * `trainUntil + 1`, validation at the start of `valUntil + 1`, test runs from the start of
 * `testFrom` to the start of `testUntil + 1` (all UTC).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { yearSplitBounds } from "@diffprobe/core";
 *
 * const b = yearSplitBounds({ trainUntil: 2008, valUntil: 2011, testFrom: 2014, testUntil: 2017 });
 * assert.deepEqual(b, {
 *   trainEnd: Date.UTC(2009, 0, 1),
 *   valEnd: Date.UTC(2012, 0, 1),
 *   testStart: Date.UTC(2014, 0, 1),
 *   testEnd: Date.UTC(2018, 0, 1),
 * });
 * ```
 *
 * @param years Split years.
 * @returns Boundaries in ms UTC.
 * @throws {RangeError} If a year is not a whole number or the years are out of order.
 */
export function yearSplitBounds(years: YearSplit): SplitOptions {
  const { trainUntil, valUntil, testFrom, testUntil } = years;
  for (const [name, y] of Object.entries(years)) safeInteger(y, `Year ${name}`);
  if (!(trainUntil < valUntil && valUntil < testFrom && testFrom <= testUntil)) {
    throw new RangeError(
      `Split years must satisfy trainUntil < valUntil < testFrom ≤ testUntil, got ${trainUntil}, ` +
        `${valUntil}, ${testFrom}, ${testUntil}`,
    );
  }
  const start = (y: number) => Date.UTC(y, 0, 1);
  return {
    trainEnd: start(trainUntil + 1),
    valEnd: start(valUntil + 1),
    testStart: start(testFrom),
    testEnd: start(testUntil + 1),
  };
}
