/**
 * What the two text series readers (`csv_series.ts`, `ndbc.ts`) share: collecting malformed
 * rows as issues (or throwing at the first, when strict), reading a numeric field as float32,
 * and reading a list or folder of files into one series sorted by time. Internal.
 *
 * @module
 */
import { basename } from "node:path";
import { clip, listDataFiles, readText } from "./_files.ts";
import { ownRecord, sortedSeries } from "./_series.ts";
import type { ReadIssue, ReadResult } from "./timeseries.ts";

/**
 * The issues of one file and the function that reports one: it records `{ file, line, reason }`,
 * or with `strict` throws a `RangeError` `"Malformed <row> at <file>:<line>: <reason>"`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { issueCollector } from "./_series_reader.ts";
 *
 * const { issues, report } = issueCollector("a.csv", "CSV row", false);
 * report(3, "bad");
 * assert.deepEqual(issues, [{ file: "a.csv", line: 3, reason: "bad" }]);
 * assert.throws(() => issueCollector("a.csv", "CSV row", true).report(3, "bad"), /a\.csv:3: bad/);
 * ```
 */
export function issueCollector(
  file: string,
  row: string,
  strict: boolean | undefined,
): { issues: ReadIssue[]; report: (line: number, reason: string) => void } {
  const issues: ReadIssue[] = [];
  const report = (line: number, reason: string): void => {
    if (strict) throw new RangeError(`Malformed ${row} at ${file}:${line}: ${reason}`);
    issues.push({ file, line, reason });
  };
  return { issues, report };
}

/**
 * The value of field `s` of column `column` when it matches `pattern` and its float32 rounding
 * is finite; else why it is not a valid value.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { numberField } from "./_series_reader.ts";
 *
 * assert.equal(numberField("2.5", "hs", /^\d+\.?\d*$/), 2.5);
 * assert.equal(numberField("x", "hs", /^\d+$/), 'non-numeric value "x" in column hs');
 * ```
 */
export function numberField(s: string, column: string, pattern: RegExp): number | string {
  if (!pattern.test(s)) return `non-numeric value "${clip(s)}" in column ${column}`;
  const v = Number(s);
  if (!Number.isFinite(Math.fround(v))) {
    return `value "${clip(s)}" in column ${column} is beyond the float32 range`;
  }
  return v;
}

/** How a series reader names its files: the extension, and `what` for the list and one file. */
export interface SeriesFiles {
  /** The extension of the files in a folder (`"csv"`), also read gzipped (`"csv.gz"`). */
  extension: string;
  /** The files in errors about the list ("CSV series"). */
  list: string;
  /** One file in errors about it ("CSV file"). */
  file: string;
}

/**
 * Reads `paths` (a list, a file, or a folder whose `*.<extension>` and `*.<extension>.gz` files
 * are read in name order), parses each file with `parse` (given its text and base name), checks
 * the results with `check` (if given), and merges them into one series sorted by time: columns
 * in first-seen order, `NaN` in the rows of a file that lacks a column, issues and file names in
 * file order.
 */
export async function readSeriesFiles(
  paths: string | URL | readonly (string | URL)[],
  files: SeriesFiles,
  parse: (text: string, name: string) => ReadResult,
  check?: (parts: readonly ReadResult[]) => void,
): Promise<ReadResult> {
  const parts: ReadResult[] = [];
  for (const path of await listDataFiles(paths, files.extension, files.list)) {
    parts.push(parse(await readText(path, files.file), basename(path)));
  }
  check?.(parts);
  const names: string[] = [];
  for (const p of parts) {
    for (const name of Object.keys(p.series.columns)) if (!names.includes(name)) names.push(name);
  }
  const total = parts.reduce((n, p) => n + p.rows, 0);
  const times: number[] = new Array(total);
  const columns = ownRecord(names.map((name) => [name, new Array<number>(total)]));
  let at = 0;
  for (const p of parts) {
    for (let r = 0; r < p.rows; r++) times[at + r] = p.series.times[r];
    for (const name of names) {
      const src = Object.hasOwn(p.series.columns, name) ? p.series.columns[name] : undefined;
      const dst = columns[name];
      for (let r = 0; r < p.rows; r++) dst[at + r] = src ? src[r] : NaN;
    }
    at += p.rows;
  }
  return {
    series: sortedSeries(times, columns),
    issues: parts.flatMap((p) => p.issues),
    rows: total,
    files: parts.map((p) => p.files[0]),
  };
}
