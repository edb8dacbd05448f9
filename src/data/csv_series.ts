/**
 * A generic CSV time-series reader (built on `csv-parse`): one header row, one time column (ISO
 * 8601 or Unix epoch), and numeric value columns, of which you pick the ones you want. Rows are
 * returned sorted by time as a {@linkcode TimeSeries}; feed it to `resampleHourly` for a regular
 * grid. Empty cells and `NA`/`NaN`/`null` are missing values (`NaN`).
 *
 * Malformed rows (wrong field count, unparseable time, non-numeric value, broken quoting) are
 * never dropped silently: they are returned as {@linkcode ReadIssue}s naming file and line, or,
 * with `strict: true`, the first one throws a `RangeError`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseCsvSeries } from "@diffprobe/core";
 *
 * const text = "time,WVHT,DPD,note\n" +
 *   "2017-01-01T00:00Z,2.5,10,calm\n" +
 *   "2017-01-01T01:00Z,,11,\n";
 * const { series, issues } = parseCsvSeries(text, "buoy.csv", { columns: ["WVHT", "DPD"] });
 * assert.equal(series.times[1], Date.UTC(2017, 0, 1, 1));
 * assert.deepEqual(Array.from(series.columns.WVHT), [2.5, NaN]);
 * assert.deepEqual(Object.keys(series.columns), ["WVHT", "DPD"]);
 * assert.equal(issues.length, 0);
 * ```
 *
 * @module
 */

import { clip } from "./_files.ts";
import { parse } from "csv-parse/sync";
import { show } from "../base/validate.ts";
import { ownRecord, sortedSeries } from "./_series.ts";
import { issueCollector, numberField, readSeriesFiles } from "./_series_reader.ts";
import type { ReadResult } from "./timeseries.ts";

/**
 * How the time column is written:
 * - `"iso"`: ISO 8601 dates or date-times (`2017-01-01`, `2017-01-01T06:00`, `…:00Z`,
 *   `…+02:00`; a space may replace the `T`); without an offset the time is **UTC**.
 * - `"epoch-s"` / `"epoch-ms"`: seconds / milliseconds since 1970-01-01T00:00Z.
 * - `"auto"` (default): a plain number is epoch seconds when its magnitude is below 10¹¹ and
 *   milliseconds otherwise (10¹¹ s is the year 5138, 10¹¹ ms is March 1973); anything else is
 *   ISO.
 */
export type CsvTimeFormat = "auto" | "iso" | "epoch-s" | "epoch-ms";

/**
 * Options of {@linkcode parseCsvSeries} and {@linkcode readCsvSeries}.
 */
export interface CsvSeriesOptions {
  /** Name of the time column; default: the first column of the header. */
  timeColumn?: string;
  /** Value columns to keep, in this order; default: every column but the time column. */
  columns?: readonly string[];
  /** How times are written; default `"auto"`. */
  timeFormat?: CsvTimeFormat;
  /** Field delimiter; default `","`. */
  delimiter?: string;
  /** Cell texts (after trimming) that mean "missing"; default `"", NA, NaN, nan, null`. */
  missing?: readonly string[];
  /**
   * Throw a `RangeError` naming `file:line` at the first malformed row instead of collecting it
   * in `issues`. Default `false`.
   */
  strict?: boolean;
}

const DEFAULT_MISSING = ["", "NA", "NaN", "nan", "null"];
const NUMBER = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;
const ISO = new RegExp(
  "^(\\d{4})-(\\d{2})-(\\d{2})" + // date
    "(?:[T ](\\d{2}):(\\d{2})(?::(\\d{2})(?:\\.(\\d{1,9}))?)?)?" + // optional time
    "(Z|[+-]\\d{2}(?::?\\d{2})?)?$", // optional offset
  "i",
);

/**
 * Parses CSV text into a time series. The first non-empty record is the header. Each later
 * record must have one field per header column; its time must parse, and each selected value
 * must be a number or a missing marker. Line numbers in issues are 1-based and, for a record
 * with a quoted line break, point at its last line.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseCsvSeries } from "@diffprobe/core";
 *
 * const text = "t;hs\n1483228800;2.5\n1483232400;x\n";
 * const r = parseCsvSeries(text, "a.csv", { delimiter: ";", timeFormat: "epoch-s" });
 * assert.equal(r.rows, 1);
 * assert.deepEqual(r.issues, [{ file: "a.csv", line: 3, reason: 'non-numeric value "x" in column hs' }]);
 * ```
 *
 * @param text CSV text (a leading byte-order mark is ignored).
 * @param file A name for messages and issues; default `"<text>"`.
 * @param options Column selection, time format, delimiter, missing markers, strictness.
 * @returns The series (sorted by time), the malformed rows, the row count.
 * @throws {RangeError} If the text has no header, a column name appears twice in the header, a
 *   requested column is absent, or (`strict`) a row is malformed (values beyond the float32
 *   range included).
 * @throws {TypeError} If `delimiter` is not a usable delimiter.
 */
export function parseCsvSeries(
  text: string,
  file = "<text>",
  options: CsvSeriesOptions = {},
): ReadResult {
  const { issues, report } = issueCollector(file, "CSV row", options.strict);
  const records = readRecords(text, file, options, report);
  if (records.length === 0) {
    throw new RangeError(`Cannot read ${file}: it has no header row`);
  }
  const { header, timeIndex, names, indices } = resolveColumns(records[0].record, file, options);
  const missing = new Set(options.missing ?? DEFAULT_MISSING);
  const format = options.timeFormat ?? "auto";
  const times: number[] = [];
  const values: number[][] = names.map(() => []);
  const row = new Float64Array(names.length);
  for (let r = 1; r < records.length; r++) {
    const { record, info } = records[r];
    if (record.length !== header.length) {
      report(info.lines, `expected ${header.length} fields, found ${record.length}`);
      continue;
    }
    const t = parseTime(record[timeIndex].trim(), format);
    if (typeof t === "string") {
      report(info.lines, `${t} (column ${header[timeIndex]})`);
      continue;
    }
    const bad = parseValues(record, indices, names, missing, row);
    if (bad !== undefined) {
      report(info.lines, bad);
      continue;
    }
    times.push(t);
    for (let k = 0; k < names.length; k++) values[k].push(row[k]);
  }
  const columns = ownRecord(names.map((name, k) => [name, values[k]]));
  return { series: sortedSeries(times, columns), issues, rows: times.length, files: [file] };
}

/**
 * Reads CSV time series from files — a list, a single file, or a directory whose `*.csv` and
 * `*.csv.gz` files are read in name order — and merges them into one series sorted by time.
 * Every file must have the selected columns. Files ending in `.gz` are decompressed. Issues
 * name each file by its base name.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { readCsvSeries } from "@diffprobe/core";
 *
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/b.csv`, "time,hs\n2017-01-02,2.0\n");
 * await Deno.writeTextFile(`${dir}/a.csv`, "time,hs\n2017-01-01,1.0\n");
 * const { series, files } = await readCsvSeries(dir);
 * assert.deepEqual(files, ["a.csv", "b.csv"]);
 * assert.deepEqual(Array.from(series.columns.hs), [1, 2]);
 * await Deno.remove(dir, { recursive: true });
 * ```
 *
 * @param paths A directory, a file, or a list of files (paths or `file:` URLs).
 * @param options As for {@linkcode parseCsvSeries}.
 * @returns The merged series, all malformed rows, the row count and the files read.
 * @throws {RangeError} As {@linkcode parseCsvSeries}, or if a directory holds no CSV file, or a
 *   file (or its decompressed content) exceeds 256 MiB.
 * @throws {TypeError} If a path is not a regular file (a FIFO, a device: checked before reading)
 *   or a `.gz` file is corrupt or truncated; the message names the file.
 * @throws {Deno.errors.NotFound} If a file does not exist.
 * @throws {Deno.errors.FilesystemLoop} If a path is a symbolic link loop.
 */
export async function readCsvSeries(
  paths: string | URL | readonly (string | URL)[],
  options: CsvSeriesOptions = {},
): Promise<ReadResult> {
  return await readSeriesFiles(
    paths,
    { extension: "csv", list: "CSV series", file: "CSV file" },
    (text, name) => parseCsvSeries(text, name, options),
    (parts) => {
      const names = Object.keys(parts[0].series.columns);
      for (const p of parts) {
        const these = Object.keys(p.series.columns);
        if (these.join("\u0000") !== names.join("\u0000")) {
          throw new RangeError(
            `Cannot merge ${p.files[0]} with ${parts[0].files[0]}: columns ${these.join(", ")} ` +
              `differ from ${names.join(", ")} (select columns with the columns option)`,
          );
        }
      }
    },
  );
}

// ---------------------------------------------------------------------------------------------
// Internals

interface CsvRecord {
  record: string[];
  info: { lines: number };
}

/** The CSV records of `text`; unreadable ones (broken quoting) are reported and skipped. */
function readRecords(
  text: string,
  file: string,
  options: CsvSeriesOptions,
  report: (line: number, reason: string) => void,
): CsvRecord[] {
  try {
    return parse(text, {
      delimiter: options.delimiter ?? ",",
      bom: true,
      info: true,
      relax_column_count: true,
      skip_empty_lines: true,
      skip_records_with_error: true,
      on_skip: (err: Error | undefined) => {
        const lines = (err as { lines?: unknown } | undefined)?.lines;
        report(typeof lines === "number" ? lines : 0, `unreadable CSV (${err?.message ?? "?"})`);
        return undefined;
      },
    }) as unknown as CsvRecord[];
  } catch (error) {
    if (error instanceof RangeError && error.message.startsWith("Malformed CSV row")) throw error;
    const e = error as { code?: unknown; lines?: unknown; message?: unknown };
    if (typeof e.code === "string" && e.code.startsWith("CSV_INVALID_OPTION")) {
      throw new TypeError(`Cannot read ${file}: invalid CSV option (${String(e.message)})`, {
        cause: error,
      });
    }
    const line = typeof e.lines === "number" ? `:${e.lines}` : "";
    throw new RangeError(`Cannot read ${file}${line}: unreadable CSV (${String(e.message)})`, {
      cause: error,
    });
  }
}

/** The header, the time column's index and the selected value columns with their indices. */
function resolveColumns(
  record: string[],
  file: string,
  options: CsvSeriesOptions,
): { header: string[]; timeIndex: number; names: string[]; indices: number[] } {
  const header = record.map((h) => h.trim());
  const first = new Map<string, number>();
  header.forEach((name, i) => {
    if (name === "") return;
    if (first.has(name)) {
      throw new RangeError(
        `Cannot read ${file}: column "${clip(name)}" appears twice in the header (fields ${
          first.get(name)! + 1
        } and ${i + 1})`,
      );
    }
    first.set(name, i);
  });
  const has = (name: string): boolean => first.has(name);
  const timeName = options.timeColumn ?? header[0];
  if (!has(timeName)) {
    throw new RangeError(
      `Cannot read ${file}: the header has no time column "${timeName}" (it has ${
        clip(header.join(", "))
      })`,
    );
  }
  const timeIndex = first.get(timeName)!;
  const names = options.columns
    ? [...options.columns]
    : header.filter((name, i) => i !== timeIndex && name !== "");
  if (new Set(names).size !== names.length) {
    throw new RangeError(`Option columns must list each column once, got ${show(names)}`);
  }
  const indices = names.map((name) => {
    if (!has(name)) {
      throw new RangeError(
        `Cannot read ${file}: the header has no column "${name}" (it has ${
          clip(header.join(", "))
        })`,
      );
    }
    return first.get(name)!;
  });
  return { header, timeIndex, names, indices };
}

/**
 * Reads the selected values of `record` into `row` (`NaN` for missing markers); returns why one
 * is not a valid value, if one is not.
 */
function parseValues(
  record: string[],
  indices: number[],
  names: string[],
  missing: Set<string>,
  row: Float64Array,
): string | undefined {
  for (let k = 0; k < names.length; k++) {
    const s = record[indices[k]].trim();
    if (missing.has(s)) {
      row[k] = NaN;
      continue;
    }
    const v = numberField(s, names[k], NUMBER);
    if (typeof v === "string") return v;
    row[k] = v;
  }
  return undefined;
}

/** Milliseconds since the epoch, or why `s` is not a time. */
function parseTime(s: string, format: CsvTimeFormat): number | string {
  if (s === "") return "missing time";
  const numeric = NUMBER.test(s);
  if (format === "epoch-s" || format === "epoch-ms" || (format === "auto" && numeric)) {
    if (!numeric) return `"${clip(s)}" is not an epoch time`;
    const v = Number(s);
    const ms = format === "epoch-ms" || (format === "auto" && Math.abs(v) >= 1e11) ? v : v * 1000;
    return Number.isFinite(ms) && Math.abs(ms) <= 8.64e15 ? ms : `"${clip(s)}" is out of range`;
  }
  const m = ISO.exec(s);
  if (!m) return `"${clip(s)}" is not an ISO 8601 time`;
  const [, ys, mos, ds, hs, mis, ss, frac, zone] = m;
  const year = +ys;
  const month = +mos;
  const day = +ds;
  const hour = hs === undefined ? 0 : +hs;
  const minute = mis === undefined ? 0 : +mis;
  const second = ss === undefined ? 0 : +ss;
  if (
    month < 1 || month > 12 || day < 1 || day > daysInMonth(year, month) || hour > 23 ||
    minute > 59 || second > 59
  ) {
    return `impossible date "${clip(s)}"`;
  }
  let offsetMin = 0;
  if (zone !== undefined && zone !== "Z" && zone !== "z") {
    const sign = zone[0] === "-" ? -1 : 1;
    const digits = zone.slice(1).replace(":", "");
    const oh = Number(digits.slice(0, 2));
    const om = digits.length > 2 ? Number(digits.slice(2)) : 0;
    if (oh > 23 || om > 59) return `impossible offset in "${clip(s)}"`;
    offsetMin = sign * (oh * 60 + om);
  }
  const ms = frac === undefined ? 0 : Math.round(Number(`0.${frac}`) * 1000);
  // Date.UTC reads years 0–99 as 1900–1999; set the full year explicitly instead.
  const date = new Date(Date.UTC(2000, month - 1, day, hour, minute, second, ms));
  date.setUTCFullYear(year, month - 1, day);
  return date.getTime() - offsetMin * 60_000;
}

const DAYS = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

function daysInMonth(year: number, month: number): number {
  const leap = (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0;
  return month === 2 && leap ? 29 : DAYS[month - 1];
}
