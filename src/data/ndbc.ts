/**
 * Readers for NOAA National Data Buoy Center (NDBC) standard meteorological files: the historical
 * archive (`<station>hYYYY.txt`, e.g. `46035h2017.txt`, or the `.txt.gz` NDBC serves) in every
 * header variant it uses, and the realtime files (`<station>.txt`, the last 45 days):
 *
 * | years      | header starts        | notes                                              |
 * | ---------- | -------------------- | -------------------------------------------------- |
 * | until 1998 | `YY MM DD hh`        | 2-digit years (70–99 read as 19YY), `WD` and `BAR` |
 * | 1999       | `YYYY MM DD hh`      | 4-digit years                                      |
 * | 2000–2004  | `YYYY MM DD hh`      | `TIDE` added (rows before mid-2000 may lack it)    |
 * | 2005–2006  | `YYYY MM DD hh mm`   | minute column                                      |
 * | from 2007  | `#YY  MM DD hh mm`   | `WDIR` and `PRES`, plus a `#yr mo dy hr mn` units line |
 * | realtime   | `#YY  MM DD hh mm`   | newest first, `PTDY` added, `MM` for missing values |
 *
 * Two-digit years below 70 are refused (a line issue): NDBC wrote two-digit years only before
 * 1999 and its records start in 1970, so `05` cannot be read as 2005 or 1905 safely.
 * Column names are normalised to the modern ones (`WD` → `WDIR`, `BAR` → `PRES`). Missing-value
 * sentinels become `NaN`: 99 (in any spelling: `99`, `99.0`, `99.00`) for WVHT, DPD, APD, WSPD,
 * GST, VIS and TIDE; 999 for WDIR, MWD, ATMP, WTMP and DEWP; 9999 for PRES; and `MM` in any
 * column (realtime files), each cell on its own, so a row keeps its other values. Values beyond
 * the float32 range are malformed, never `Infinity`. Times are UTC.
 *
 * Malformed lines (wrong field count, non-numeric values, impossible dates) are never dropped
 * silently: they are returned as {@linkcode ReadIssue}s with file and line number, or, with
 * `strict: true`, the first one throws a `RangeError`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseNdbcStdmet } from "@diffprobe/core";
 *
 * const text = [
 *   "#YY  MM DD hh mm WDIR WSPD GST  WVHT   DPD   APD MWD   PRES  ATMP  WTMP  DEWP  VIS  TIDE",
 *   "#yr  mo dy hr mn degT m/s  m/s     m   sec   sec degT   hPa  degC  degC  degC  nmi    ft",
 *   "2017 01 01 00 50 230 14.5 18.1  7.39 13.79  9.74 125  985.7   2.7   3.9 999.0 99.0 99.00",
 * ].join("\n");
 * const { series, issues } = parseNdbcStdmet(text, "46035h2017.txt");
 * assert.equal(series.times[0], Date.UTC(2017, 0, 1, 0, 50));
 * const { WVHT, DEWP } = series.columns;
 * assert.equal(WVHT[0], Math.fround(7.39));
 * assert.ok(Number.isNaN(DEWP[0])); // 999.0 is DEWP's missing-value sentinel
 * assert.equal(issues.length, 0);
 * ```
 *
 * @module
 */

import { clip } from "./_files.ts";
import { ownRecord, sortedSeries } from "./_series.ts";
import { issueCollector, numberField, readSeriesFiles } from "./_series_reader.ts";
import type { ReadResult } from "./timeseries.ts";

/**
 * Options of {@linkcode parseNdbcStdmet} and {@linkcode readNdbcStdmet}.
 */
export interface NdbcOptions {
  /**
   * Throw a `RangeError` naming `file:line` at the first malformed line instead of collecting
   * it in `issues`. Default `false`.
   */
  strict?: boolean;
  /**
   * Keep only these columns (modern names, e.g. `["WVHT", "DPD"]`); a known column the file lacks
   * (such as `TIDE` before 2000) is all `NaN`. Default: every column of the header(s).
   */
  columns?: readonly string[];
}

/**
 * Missing-value sentinel of each standard meteorological column (by modern name).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { NDBC_SENTINELS } from "@diffprobe/core";
 *
 * assert.deepEqual([NDBC_SENTINELS.WVHT, NDBC_SENTINELS.PRES], [99, 9999]);
 * ```
 */
export const NDBC_SENTINELS: Readonly<Record<string, number>> = Object.freeze({
  WDIR: 999,
  WSPD: 99,
  GST: 99,
  WVHT: 99,
  DPD: 99,
  APD: 99,
  MWD: 999,
  PRES: 9999,
  ATMP: 999,
  WTMP: 999,
  DEWP: 999,
  VIS: 99,
  TIDE: 99,
});

/** Old header names → modern names. */
const ALIASES: Readonly<Record<string, string>> = { WD: "WDIR", BAR: "PRES" };

const NUMBER = /^[+-]?(?:\d+\.?\d*|\.\d+)$/;
/** Two-digit years from this one to 99 are 19YY; lower ones are refused (NDBC data start 1970). */
const FIRST_TWO_DIGIT_YEAR = 70;
/** Header column names: letters, digits and `_`, starting with a letter. */
const COLUMN_NAME = /^[A-Za-z][A-Za-z0-9_]*$/;
const INT = /^\d+$/;

/**
 * Parses the text of one NDBC standard meteorological file.
 *
 * The first non-blank line must be the header (`YY …`, `YYYY …` or `#YY …`); a line starting
 * with `#` right after a `#YY` header is the units line and is skipped. Blank lines are skipped.
 * Every other line must have one field per header column — except that, in the 2000–2004 layout
 * (`YYYY MM DD hh` with `TIDE` last), rows lacking only the final `TIDE` field are read with TIDE
 * `NaN`: NDBC added the column in mid-2000 and its 2000 files mix both widths (46035h2000.txt has
 * 3,673 short rows). Two-digit years are 19YY; four-digit years are taken as they are.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseNdbcStdmet } from "@diffprobe/core";
 *
 * const text = "YY MM DD hh WD   WSPD GST  WVHT  DPD   APD  MWD  BAR    ATMP  WTMP  DEWP  VIS\n" +
 *   "85 09 13 20 169 09.9 12.1 03.40 11.10 07.80 999 0983.2  09.3 999.0 999.0 99.0\n" +
 *   "85 09 13 21 179 08.2 10.1 03.30 12.50 07.70 999 0982.9\n";
 * const r = parseNdbcStdmet(text, "46035h1985.txt", { columns: ["WVHT", "PRES"] });
 * assert.equal(r.series.times[0], Date.UTC(1985, 8, 13, 20));
 * assert.equal(r.series.columns.PRES[0], Math.fround(983.2));
 * assert.deepEqual(r.issues, [
 *   { file: "46035h1985.txt", line: 3, reason: "expected 16 fields, found 12" },
 * ]);
 * ```
 *
 * @param text The file's contents (LF or CRLF line ends).
 * @param file A name for messages and issues; default `"<text>"`.
 * @param options `strict` and `columns`.
 * @returns The series (sorted by time), the malformed lines and the row count.
 * @throws {RangeError} If the header is not an NDBC standard meteorological header, a requested
 *   column is unknown, or (`strict`) a line is malformed.
 */
export function parseNdbcStdmet(
  text: string,
  file = "<text>",
  options: NdbcOptions = {},
): ReadResult {
  const lines = text.split("\n");
  let i = 0;
  while (i < lines.length && lines[i].trim() === "") i++;
  if (i === lines.length) {
    throw new RangeError(`Cannot read ${file}: it is empty (expected an NDBC header line)`);
  }
  const header = parseHeader(lines[i], file, i + 1);
  i++;
  if (header.hashed && i < lines.length && lines[i].trimStart().startsWith("#")) i++;

  const keep = selectColumns(header.names, options.columns, file);
  // The 2000–2004 layout (no minute column, TIDE last): NDBC added TIDE in mid-2000, and its 2000
  // files hold rows of both widths.
  const tideOptional = header.timeFields === 4 && header.names[header.names.length - 1] === "TIDE";
  const { issues, report } = issueCollector(file, "NDBC line", options.strict);

  const times: number[] = [];
  const values: number[][] = keep.map(() => []);
  const row = new Float64Array(header.names.length);
  for (; i < lines.length; i++) {
    const trimmed = lines[i].trim();
    if (trimmed === "") continue;
    const problem = parseRow(trimmed, header, tideOptional, row);
    if (typeof problem === "string") {
      report(i + 1, problem);
      continue;
    }
    times.push(problem);
    for (let k = 0; k < keep.length; k++) {
      const c = keep[k].index;
      values[k].push(c < 0 ? NaN : row[c]);
    }
  }
  const columns = ownRecord(keep.map((k, j) => [k.name, values[j]]));
  return { series: sortedSeries(times, columns), issues, rows: times.length, files: [file] };
}

/**
 * Reads NDBC standard meteorological files — a list of paths, or a directory, whose `*.txt` and
 * `*.txt.gz` files are read in name order — and merges them into one series sorted by time.
 * A column some files lack (e.g. `TIDE` before 2000) is `NaN` in their rows. Files ending in
 * `.gz` are decompressed. Issues name each file by its base name.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { readNdbcStdmet } from "@diffprobe/core";
 *
 * const dir = await Deno.makeTempDir();
 * const header = "#YY  MM DD hh mm WDIR WSPD GST  WVHT   DPD   APD MWD   PRES  ATMP  WTMP  DEWP  VIS  TIDE\n";
 * const row = (day: string, wvht: string) =>
 *   `2017 01 ${day} 00 50 230 14.5 18.1 ${wvht} 13.79 9.74 125 985.7 2.7 3.9 999.0 99.0 99.00\n`;
 * await Deno.writeTextFile(`${dir}/46035h2017.txt`, header + row("02", "1.50") + row("01", "99.00"));
 * const { series, issues, files } = await readNdbcStdmet(dir, { columns: ["WVHT"] });
 * assert.deepEqual(files, ["46035h2017.txt"]);
 * assert.deepEqual(Array.from(series.times), [Date.UTC(2017, 0, 1, 0, 50), Date.UTC(2017, 0, 2, 0, 50)]);
 * assert.deepEqual(Array.from(series.columns.WVHT), [NaN, 1.5]); // sorted by time; 99.00 is missing
 * assert.equal(issues.length, 0);
 * await Deno.remove(dir, { recursive: true });
 * ```
 *
 * @param paths A directory, a file, or a list of files (paths or `file:` URLs).
 * @param options `strict` and `columns`.
 * @returns The merged series, all malformed lines, the row count and the files read.
 * @throws {RangeError} If no file is given, a directory holds no NDBC file, a header is not an
 *   NDBC header, a file (or its decompressed content) exceeds 256 MiB, or (`strict`) a line is
 *   malformed.
 * @throws {TypeError} If a path is not a regular file (a FIFO, a device: checked before reading)
 *   or a `.gz` file is corrupt or truncated; the message names the file.
 * @throws {Deno.errors.NotFound} If a file does not exist.
 * @throws {Deno.errors.FilesystemLoop} If a path is a symbolic link loop.
 */
export async function readNdbcStdmet(
  paths: string | URL | readonly (string | URL)[],
  options: NdbcOptions = {},
): Promise<ReadResult> {
  return await readSeriesFiles(
    paths,
    { extension: "txt", list: "NDBC files", file: "NDBC file" },
    (text, name) => parseNdbcStdmet(text, name, options),
  );
}

// ---------------------------------------------------------------------------------------------
// Internals

interface Header {
  /** Whether the header started with `#` (2007 and later: a units line may follow). */
  hashed: boolean;
  /** 4 (YY MM DD hh) or 5 (… mm). */
  timeFields: number;
  /** Modern names of the data columns after the time fields. */
  names: string[];
}

function parseHeader(line: string, file: string, lineNo: number): Header {
  const tokens = line.trim().split(/\s+/);
  const hashed = tokens[0].startsWith("#");
  const first = hashed ? tokens[0].slice(1) : tokens[0];
  if (
    (first !== "YY" && first !== "YYYY") || tokens[1] !== "MM" || tokens[2] !== "DD" ||
    tokens[3] !== "hh"
  ) {
    throw new RangeError(
      `Cannot read ${file}:${lineNo}: not an NDBC standard meteorological header (expected ` +
        `"YY MM DD hh", "YYYY MM DD hh" or "#YY MM DD hh …"), got "${clip(line.trim())}"`,
    );
  }
  const timeFields = tokens[4] === "mm" ? 5 : 4;
  const names = tokens.slice(timeFields).map((t) => Object.hasOwn(ALIASES, t) ? ALIASES[t] : t);
  const seen = new Set<string>();
  for (const name of names) {
    if (!COLUMN_NAME.test(name)) {
      throw new RangeError(
        `Cannot read ${file}:${lineNo}: column name "${clip(name)}" must be letters and digits`,
      );
    }
    if (seen.has(name)) {
      throw new RangeError(`Cannot read ${file}:${lineNo}: column ${name} appears twice`);
    }
    seen.add(name);
  }
  return { hashed, timeFields, names };
}

function selectColumns(
  names: string[],
  wanted: readonly string[] | undefined,
  file: string,
): { name: string; index: number }[] {
  if (!wanted) return names.map((name, index) => ({ name, index }));
  return wanted.map((w) => {
    const name = Object.hasOwn(ALIASES, w) ? ALIASES[w] : w;
    const index = names.indexOf(name);
    if (index < 0 && !Object.hasOwn(NDBC_SENTINELS, name)) {
      throw new RangeError(
        `Cannot read column "${w}" from ${file}: it is neither in the header (${
          names.join(", ")
        }) nor a standard meteorological column`,
      );
    }
    return { name, index };
  });
}

/**
 * Reads one data line into `row` (one value per header column, `NaN` where missing) and returns
 * its time, or the reason the line is malformed.
 */
function parseRow(
  line: string,
  header: Header,
  tideOptional: boolean,
  row: Float64Array,
): number | string {
  if (line.startsWith("#")) {
    return `unexpected line starting with "#" after the header: "${clip(line)}"`;
  }
  const f = line.split(/\s+/);
  const nFields = header.timeFields + header.names.length;
  const missingTide = tideOptional && f.length === nFields - 1;
  if (f.length !== nFields && !missingTide) return `expected ${nFields} fields, found ${f.length}`;
  const t = parseTime(f, header.timeFields);
  if (typeof t === "string") return t;
  for (let c = 0; c < header.names.length; c++) {
    const v = parseValue(f[header.timeFields + c], header.names[c]);
    if (typeof v === "string") return v;
    row[c] = v;
  }
  return t;
}

/**
 * One value: `NaN` for a missing one (the column's sentinel, the realtime files' `MM`, or the
 * absent TIDE field of a short row), else the number, or why the field is not a valid value.
 */
function parseValue(s: string | undefined, name: string): number | string {
  if (s === undefined || s === "MM") return NaN;
  const v = numberField(s, name, NUMBER);
  if (typeof v === "string") return v;
  return Object.hasOwn(NDBC_SENTINELS, name) && v === NDBC_SENTINELS[name] ? NaN : v;
}

/** The UTC time of a row, or the reason it is not a valid time. */
function parseTime(f: string[], timeFields: number): number | string {
  const [ys, ms, ds, hs] = f;
  const mins = timeFields === 5 ? f[4] : "0";
  const parts: [string, string][] = [
    ["year", ys],
    ["month", ms],
    ["day", ds],
    ["hour", hs],
    ["minute", mins],
  ];
  for (const [label, s] of parts) {
    if (!INT.test(s)) return `non-numeric ${label} "${clip(s)}"`;
  }
  if (ys.length !== 2 && ys.length !== 4) return `year "${ys}" has neither 2 nor 4 digits`;
  if (ys.length === 2 && Number(ys) < FIRST_TWO_DIGIT_YEAR) {
    return `two-digit year "${ys}": NDBC wrote two-digit years only before 1999 (${FIRST_TWO_DIGIT_YEAR}` +
      `–99 are read as 19YY); write the year with four digits`;
  }
  const year = ys.length === 2 ? 1900 + Number(ys) : Number(ys);
  if (year < 1900) return `year "${ys}" is before 1900`;
  const month = Number(ms);
  const day = Number(ds);
  const hour = Number(hs);
  const minute = Number(mins);
  const days = month >= 1 && month <= 12 ? new Date(Date.UTC(year, month, 0)).getUTCDate() : 0;
  if (days === 0 || day < 1 || day > days || hour > 23 || minute > 59) {
    return `impossible date ${ys}-${ms}-${ds} ${hs}:${timeFields === 5 ? mins : "00"}`;
  }
  return Date.UTC(year, month - 1, day, hour, minute);
}

/** An NDBC station id: five letters or digits ending in a digit (`46035`, `SGNW3`). */
const STATION = /^[A-Za-z0-9]{4}[0-9]$/;

/**
 * The NDBC station id a path names, or `undefined`: NDBC's own file names (`46035h2017.txt`,
 * `46035h2017.txt.gz`, `46035.txt`), a file name starting with the id and `_` or `-`
 * (`46035_hourly.csv.gz`), or else the nearest enclosing folder named like a station
 * (`data/44014/buoy_data_2010.txt`, `data/44014`). Ids are five letters or digits ending in a
 * digit, upper-cased. The standard meteorological files themselves do not name their station.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ndbcStationId } from "@diffprobe/core";
 *
 * assert.equal(ndbcStationId("data/46035h2017.txt.gz"), "46035");
 * assert.equal(ndbcStationId("examples/waves/data/46035_hourly.csv.gz"), "46035");
 * assert.equal(ndbcStationId("data/ndbc/44014/buoy_data_2010.txt"), "44014");
 * assert.equal(ndbcStationId("data/ndbc/sgnw3/"), "SGNW3");
 * assert.equal(ndbcStationId("data/waves.csv"), undefined);
 * ```
 *
 * @param path A file or folder path (or `file:` URL).
 * @returns The upper-cased station id, or `undefined` when the path names none.
 */
export function ndbcStationId(path: string | URL): string | undefined {
  const text = path instanceof URL ? decodeURIComponent(path.pathname) : path;
  const parts = text.split(/[\\/]+/).filter((p) => p !== "" && p !== "." && p !== "..");
  const file = parts.at(-1) ?? "";
  const stem = file.replace(/\.gz$/i, "").replace(/\.(txt|csv)$/i, "");
  const own = stem.match(/^([A-Za-z0-9]{4}[0-9])(?:h\d{4}|[_-].*)?$/);
  if (own) return own[1].toUpperCase();
  for (let i = parts.length - 1; i >= 0; i--) {
    if (STATION.test(parts[i])) return parts[i].toUpperCase();
  }
  return undefined;
}
