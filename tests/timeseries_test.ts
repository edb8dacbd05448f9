/**
 * Tests of the time-series data path in `src/data/`: the NDBC standard meteorological reader in
 * every header variant, the CSV reader, hourly resampling, gap-free windows, chronological splits,
 * the min–max scaler and the tensor helper. Fixtures are written in code; the committed default
 * dataset of the wave example is checked, and the real station 46035 files are read from
 * `../shared/data/ndbc-46035` when that folder exists.
 *
 * @module
 */

import { skipNote } from "./_fixtures.ts";
import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseNdbcStdmet, readNdbcStdmet } from "../src/data/ndbc.ts";
import { parseCsvSeries, readCsvSeries } from "../src/data/csv_series.ts";
import type { TimeSeries } from "../src/data/timeseries.ts";
import { resampleHourly } from "../src/data/resample.ts";
import { interpolateGaps } from "../src/data/interpolate.ts";
import { makeWindows } from "../src/data/windows.ts";
import { chronologicalSplit } from "../src/data/split.ts";
import { MinMaxScaler } from "../src/data/min_max_scaler.ts";
import { windowsToArrays, windowsToTensors } from "../src/data/window_arrays.ts";
import { deriveWaveCsv } from "../examples/waves/make_data.ts";

// ---------------------------------------------------------------------------------------------
// Helpers

const H = 3_600_000;
const f32 = Math.fround;

/** Asserts `actual` equals the float32 rounding of each expected value (NaN matches NaN). */
function assertF32(actual: ArrayLike<number>, expected: number[], what = "values"): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i];
    const e = expected[i];
    if (Number.isNaN(e)) assert.ok(Number.isNaN(a), `${what}[${i}]: expected NaN, got ${a}`);
    else assert.equal(a, f32(e), `${what}[${i}]: expected ${e}, got ${a}`);
  }
}

/** Row `r` of every column of `series`, as a record. */
function rowOf(series: TimeSeries, r: number): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(series.columns)) out[k] = v[r];
  return out;
}

/** Asserts a row equals the float32 rounding of `expected` (NaN matches NaN), same keys. */
function assertRow(series: TimeSeries, r: number, expected: Record<string, number>): void {
  const row = rowOf(series, r);
  assert.deepEqual(Object.keys(row), Object.keys(expected), `row ${r}: columns`);
  for (const [k, e] of Object.entries(expected)) {
    if (Number.isNaN(e)) assert.ok(Number.isNaN(row[k]), `row ${r} ${k}: expected NaN`);
    else assert.equal(row[k], f32(e), `row ${r} ${k}: expected ${e}, got ${row[k]}`);
  }
}

/** An hourly series from `start` with the given columns. */
function hourly(start: number, columns: Record<string, number[]>): TimeSeries {
  const n = Object.values(columns)[0].length;
  const out: Record<string, Float32Array> = {};
  for (const [k, v] of Object.entries(columns)) out[k] = Float32Array.from(v);
  return { times: Float64Array.from({ length: n }, (_, i) => start + i * H), columns: out };
}

async function gzipBytes(text: string): Promise<Uint8Array> {
  const stream = new Blob([text]).stream().pipeThrough(new CompressionStream("gzip"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

// ---------------------------------------------------------------------------------------------
// NDBC: header variants

const OLD_COLUMNS = [
  "WDIR",
  "WSPD",
  "GST",
  "WVHT",
  "DPD",
  "APD",
  "MWD",
  "PRES",
  "ATMP",
  "WTMP",
  "DEWP",
  "VIS",
];

Deno.test("parseNdbcStdmet reads the 2-digit-year header (until 1998), CRLF line ends", () => {
  const text = [
    "YY MM DD hh WD   WSPD GST  WVHT  DPD   APD  MWD  BAR    ATMP  WTMP  DEWP  VIS",
    "85 09 13 20 169 09.9 12.1 03.40 11.10 07.80 999 0983.2  09.3 999.0 999.0 99.0",
    "97 01 01 01  30   .7  1.7   .77 11.11  6.32 999 1009.8   -.1   3.2 999.0 99.0",
    "",
  ].join("\r\n");
  const r = parseNdbcStdmet(text, "46035h1985.txt");
  assert.deepEqual(r.issues, []);
  assert.equal(r.rows, 2);
  assert.deepEqual(r.files, ["46035h1985.txt"]);
  assert.deepEqual(Object.keys(r.series.columns), OLD_COLUMNS); // WD → WDIR, BAR → PRES
  assert.deepEqual(Array.from(r.series.times), [
    Date.UTC(1985, 8, 13, 20),
    Date.UTC(1997, 0, 1, 1),
  ]);
  assertRow(r.series, 0, {
    WDIR: 169,
    WSPD: 9.9,
    GST: 12.1,
    WVHT: 3.4,
    DPD: 11.1,
    APD: 7.8,
    MWD: NaN,
    PRES: 983.2,
    ATMP: 9.3,
    WTMP: NaN,
    DEWP: NaN,
    VIS: NaN,
  });
  assertRow(r.series, 1, {
    WDIR: 30,
    WSPD: 0.7,
    GST: 1.7,
    WVHT: 0.77,
    DPD: 11.11,
    APD: 6.32,
    MWD: NaN,
    PRES: 1009.8,
    ATMP: -0.1,
    WTMP: 3.2,
    DEWP: NaN,
    VIS: NaN,
  });
});

Deno.test("parseNdbcStdmet reads the 4-digit-year header (1999) and its all-missing rows", () => {
  const text = "YYYY MM DD hh WD   WSPD GST  WVHT  DPD   APD  MWD  BAR    ATMP  WTMP  DEWP  VIS\n" +
    "1999 01 01 00 999 99.0 99.0 99.00 99.00 99.00 999 9999.0 999.0 999.0 999.0 99.0\n" +
    "1999 01 01 01 999 99.0 99.0  1.98  7.69  6.31 999 1015.0  -2.2   2.5 999.0 99.0\n";
  const r = parseNdbcStdmet(text, "46035h1999.txt");
  assert.deepEqual(r.issues, []);
  assert.deepEqual(Array.from(r.series.times), [Date.UTC(1999, 0, 1, 0), Date.UTC(1999, 0, 1, 1)]);
  for (const name of OLD_COLUMNS) {
    assert.ok(Number.isNaN(r.series.columns[name][0]), `${name} of the all-sentinel row is NaN`);
  }
  assertRow(r.series, 1, {
    WDIR: NaN,
    WSPD: NaN,
    GST: NaN,
    WVHT: 1.98,
    DPD: 7.69,
    APD: 6.31,
    MWD: NaN,
    PRES: 1015,
    ATMP: -2.2,
    WTMP: 2.5,
    DEWP: NaN,
    VIS: NaN,
  });
});

Deno.test("parseNdbcStdmet reads the TIDE header (2000–2004), rows lacking TIDE included", () => {
  const text =
    "YYYY MM DD hh WD   WSPD GST  WVHT  DPD   APD  MWD  BAR    ATMP  WTMP  DEWP  VIS  TIDE\n" +
    "2000 07 31 23  96  9.6 11.4  1.15  6.67  4.68 999 1003.1   7.9   9.5 999.0 99.0\n" +
    "2000 08 01 00  86  9.4 99.0 99.00 99.00 99.00 999 1002.8   7.8   9.5 999.0 99.0 99.00\n" +
    "2003 01 01 00  65 15.6 18.4  4.40  9.09  7.35 999  988.0   0.0   3.0  -2.6 99.0  1.25\n";
  const r = parseNdbcStdmet(text, "46035h2000.txt");
  assert.deepEqual(r.issues, []);
  assert.deepEqual(Object.keys(r.series.columns), [...OLD_COLUMNS, "TIDE"]);
  assert.deepEqual(Array.from(r.series.times), [
    Date.UTC(2000, 6, 31, 23),
    Date.UTC(2000, 7, 1, 0),
    Date.UTC(2003, 0, 1, 0),
  ]);
  assertF32(r.series.columns.TIDE, [NaN, NaN, 1.25], "TIDE");
  assertF32(r.series.columns.WVHT, [1.15, NaN, 4.4], "WVHT");
  assertF32(r.series.columns.GST, [11.4, NaN, 18.4], "GST");
  assertF32(r.series.columns.DEWP, [NaN, NaN, -2.6], "DEWP");
  assertF32(r.series.columns.ATMP, [7.9, 7.8, 0], "ATMP");
});

Deno.test("parseNdbcStdmet reads the minute column (2005–2006)", () => {
  const text =
    "YYYY MM DD hh mm  WD  WSPD GST  WVHT  DPD   APD  MWD  BAR    ATMP  WTMP  DEWP  VIS  TIDE\n" +
    "2005 01 01 00 00 174 15.0 20.3  4.57 17.39  8.32 999  983.9   2.3   3.1  -0.1 99.0 99.00\n" +
    "2005 01 01 00 50 165 11.5 13.6  4.76 17.39  8.48 310  983.9   2.8   3.1   0.1 99.0 99.00\n";
  const r = parseNdbcStdmet(text, "46035h2005.txt");
  assert.deepEqual(r.issues, []);
  assert.deepEqual(Array.from(r.series.times), [
    Date.UTC(2005, 0, 1, 0, 0),
    Date.UTC(2005, 0, 1, 0, 50),
  ]);
  assertRow(r.series, 1, {
    WDIR: 165,
    WSPD: 11.5,
    GST: 13.6,
    WVHT: 4.76,
    DPD: 17.39,
    APD: 8.48,
    MWD: 310,
    PRES: 983.9,
    ATMP: 2.8,
    WTMP: 3.1,
    DEWP: 0.1,
    VIS: NaN,
    TIDE: NaN,
  });
});

const MODERN_HEADER =
  "#YY  MM DD hh mm WDIR WSPD GST  WVHT   DPD   APD MWD   PRES  ATMP  WTMP  DEWP  VIS  TIDE\n" +
  "#yr  mo dy hr mn degT m/s  m/s     m   sec   sec degT   hPa  degC  degC  degC   mi    ft\n";

Deno.test("parseNdbcStdmet reads the #YY header with its units line (from 2007)", () => {
  const text = MODERN_HEADER +
    "2016 12 31 23 50 230 14.5 18.1  7.39 13.79  9.74 125  985.7   2.7   3.9 999.0 99.0 99.00\n" +
    "2017 02 28 12 50 999 99.0 99.0 15.40 99.00 99.00 999 9999.0 999.0 999.0 999.0 99.0 99.00\n";
  const r = parseNdbcStdmet(text, "46035h2017.txt");
  assert.deepEqual(r.issues, []);
  assert.equal(r.rows, 2);
  assert.deepEqual(Array.from(r.series.times), [
    Date.UTC(2016, 11, 31, 23, 50),
    Date.UTC(2017, 1, 28, 12, 50),
  ]);
  assertRow(r.series, 0, {
    WDIR: 230,
    WSPD: 14.5,
    GST: 18.1,
    WVHT: 7.39,
    DPD: 13.79,
    APD: 9.74,
    MWD: 125,
    PRES: 985.7,
    ATMP: 2.7,
    WTMP: 3.9,
    DEWP: NaN,
    VIS: NaN,
    TIDE: NaN,
  });
  assertRow(r.series, 1, {
    WDIR: NaN,
    WSPD: NaN,
    GST: NaN,
    WVHT: 15.4,
    DPD: NaN,
    APD: NaN,
    MWD: NaN,
    PRES: NaN,
    ATMP: NaN,
    WTMP: NaN,
    DEWP: NaN,
    VIS: NaN,
    TIDE: NaN,
  });
});

Deno.test("parseNdbcStdmet applies each column's own sentinel, in any spelling", () => {
  // 99 is missing for WVHT/DPD/APD/WSPD/GST/VIS/TIDE but a real value for WDIR, ATMP and PRES;
  // 999 is missing for WDIR/MWD/ATMP/WTMP/DEWP but a real value for PRES.
  const text = MODERN_HEADER +
    "2010 06 01 00 50  99   99 99.00    99  99.0 99.00  99  999.0  99.0   999 999.00 99 99.0\n" +
    "2010 06 01 01 50 999 12.0 13.0  1.00   8.0   6.0 999 9999.0 999.0 999.0 999.0 10.0  0.5\n";
  const r = parseNdbcStdmet(text, "sentinels.txt");
  assert.deepEqual(r.issues, []);
  assertRow(r.series, 0, {
    WDIR: 99,
    WSPD: NaN,
    GST: NaN,
    WVHT: NaN,
    DPD: NaN,
    APD: NaN,
    MWD: 99,
    PRES: 999,
    ATMP: 99,
    WTMP: NaN,
    DEWP: NaN,
    VIS: NaN,
    TIDE: NaN,
  });
  assertRow(r.series, 1, {
    WDIR: NaN,
    WSPD: 12,
    GST: 13,
    WVHT: 1,
    DPD: 8,
    APD: 6,
    MWD: NaN,
    PRES: NaN,
    ATMP: NaN,
    WTMP: NaN,
    DEWP: NaN,
    VIS: 10,
    TIDE: 0.5,
  });
});

Deno.test("parseNdbcStdmet selects columns, giving NaN for a known column the file lacks", () => {
  const text = "YY MM DD hh WD   WSPD GST  WVHT  DPD   APD  MWD  BAR    ATMP  WTMP  DEWP  VIS\n" +
    "85 09 13 20 169 09.9 12.1 03.40 11.10 07.80 999 0983.2  09.3 999.0 999.0 99.0\n";
  const r = parseNdbcStdmet(text, "a.txt", { columns: ["WSPD", "WVHT", "BAR", "TIDE"] });
  assert.deepEqual(Object.keys(r.series.columns), ["WSPD", "WVHT", "PRES", "TIDE"]);
  assertRow(r.series, 0, { WSPD: 9.9, WVHT: 3.4, PRES: 983.2, TIDE: NaN });
  assert.throws(() => parseNdbcStdmet(text, "a.txt", { columns: ["WHVT"] }), {
    name: "RangeError",
    message: /Cannot read column "WHVT" from a\.txt/,
  });
});

Deno.test("parseNdbcStdmet sorts rows by time, stably, keeping duplicates", () => {
  const text = MODERN_HEADER +
    "2008 06 11 22 50 114  5.7  7.6  1.19  5.88  5.26 999 1027.0  -0.6   2.7 999.0 99.0 99.00\n" +
    "2008 06 11 21 50 114  5.7  7.6  1.10  5.88  5.26 999 1027.0  -0.6   2.7 999.0 99.0 99.00\n" +
    "2008 06 11 22 50 114  5.7  7.6  1.20  5.88  5.26 999 1027.0  -0.6   2.7 999.0 99.0 99.00\n";
  const r = parseNdbcStdmet(text, "dup.txt", { columns: ["WVHT"] });
  assert.deepEqual(Array.from(r.series.times), [
    Date.UTC(2008, 5, 11, 21, 50),
    Date.UTC(2008, 5, 11, 22, 50),
    Date.UTC(2008, 5, 11, 22, 50),
  ]);
  assertF32(r.series.columns.WVHT, [1.1, 1.19, 1.2]);
});

// ---------------------------------------------------------------------------------------------
// NDBC: malformed input

const GOOD_2017 =
  "2017 01 01 00 50 230 14.5 18.1  7.39 13.79  9.74 125  985.7   2.7   3.9 999.0 99.0 99.00";
const BAD_TEXT = MODERN_HEADER + [
  GOOD_2017, // 3
  "2017 01 01 01 50 230 14.5 18.1  7.39 13.79  9.74 125  985.7   2.7   3.9 999.0 99.0", // 4
  "2017 01 01 02 50 230  9.x 18.1  7.39 13.79  9.74 125  985.7   2.7   3.9 999.0 99.0 99.00",
  "2017 02 30 00 50 230 14.5 18.1  7.39 13.79  9.74 125  985.7   2.7   3.9 999.0 99.0 99.00",
  "2017 13 01 00 50 230 14.5 18.1  7.39 13.79  9.74 125  985.7   2.7   3.9 999.0 99.0 99.00",
  "2017 01 01 24 50 230 14.5 18.1  7.39 13.79  9.74 125  985.7   2.7   3.9 999.0 99.0 99.00",
  " 123 01 01 00 50 230 14.5 18.1  7.39 13.79  9.74 125  985.7   2.7   3.9 999.0 99.0 99.00",
  "   ", // 10: blank, skipped
  "# stray comment", // 11
  "2016 02 29 12 50 230 14.5 18.1  2.00 13.79  9.74 125  985.7   2.7   3.9 999.0 99.0 99.00",
  "2017 01 01 00 6O 230 14.5 18.1  7.39 13.79  9.74 125  985.7   2.7   3.9 999.0 99.0 99.00",
].join("\n");

Deno.test("parseNdbcStdmet reports malformed lines with file and line, keeping the rest", () => {
  const r = parseNdbcStdmet(BAD_TEXT, "bad.txt", { columns: ["WVHT"] });
  assert.deepEqual(r.issues, [
    { file: "bad.txt", line: 4, reason: "expected 18 fields, found 17" },
    { file: "bad.txt", line: 5, reason: 'non-numeric value "9.x" in column WSPD' },
    { file: "bad.txt", line: 6, reason: "impossible date 2017-02-30 00:50" },
    { file: "bad.txt", line: 7, reason: "impossible date 2017-13-01 00:50" },
    { file: "bad.txt", line: 8, reason: "impossible date 2017-01-01 24:50" },
    { file: "bad.txt", line: 9, reason: 'year "123" has neither 2 nor 4 digits' },
    {
      file: "bad.txt",
      line: 11,
      reason: 'unexpected line starting with "#" after the header: "# stray comment"',
    },
    { file: "bad.txt", line: 13, reason: 'non-numeric minute "6O"' },
  ]);
  assert.equal(r.rows, 2);
  assert.deepEqual(Array.from(r.series.times), [
    Date.UTC(2016, 1, 29, 12, 50),
    Date.UTC(2017, 0, 1, 0, 50),
  ]);
  assertF32(r.series.columns.WVHT, [2, 7.39]);

  // A 2-digit year is 19YY, so 85-02-29 is 1985-02-29: not a leap day.
  const old = "YY MM DD hh WD   WSPD GST  WVHT  DPD   APD  MWD  BAR    ATMP  WTMP  DEWP  VIS\n" +
    "85 02 29 00 169 09.9 12.1 03.40 11.10 07.80 999 0983.2  09.3 999.0 999.0 99.0\n";
  assert.deepEqual(parseNdbcStdmet(old, "h1985.txt").issues, [
    { file: "h1985.txt", line: 2, reason: "impossible date 85-02-29 00:00" },
  ]);
});

Deno.test("parseNdbcStdmet in strict mode throws a RangeError naming file:line", () => {
  assert.throws(() => parseNdbcStdmet(BAD_TEXT, "bad.txt", { strict: true }), {
    name: "RangeError",
    message: "Malformed NDBC line at bad.txt:4: expected 18 fields, found 17",
  });
  const fine = MODERN_HEADER + GOOD_2017 + "\n";
  assert.equal(parseNdbcStdmet(fine, "ok.txt", { strict: true }).rows, 1);
});

Deno.test("parseNdbcStdmet rejects files without an NDBC header", () => {
  assert.throws(() => parseNdbcStdmet("", "empty.txt"), {
    name: "RangeError",
    message: /Cannot read empty\.txt: it is empty/,
  });
  assert.throws(() => parseNdbcStdmet("time,WVHT\n2017-01-01,1\n", "x.csv"), {
    name: "RangeError",
    message: /Cannot read x\.csv:1: not an NDBC standard meteorological header/,
  });
  // A header with no rows is a valid, empty file.
  const r = parseNdbcStdmet(MODERN_HEADER, "none.txt");
  assert.equal(r.rows, 0);
  assert.equal(r.series.times.length, 0);
  assert.equal(r.series.columns.WVHT.length, 0);
});

Deno.test("readNdbcStdmet merges a directory of mixed variants and .gz files by time", async () => {
  const dir = await Deno.makeTempDir({ prefix: "diffprobe_ndbc_" });
  try {
    await Deno.writeTextFile(
      join(dir, "46035h2017.txt"),
      MODERN_HEADER + GOOD_2017 + "\n" + "2017 01 01 01 50 230 14.5 18.1  bad\n",
    );
    await Deno.writeTextFile(
      join(dir, "46035h1985.txt"),
      "YY MM DD hh WD   WSPD GST  WVHT  DPD   APD  MWD  BAR    ATMP  WTMP  DEWP  VIS\r\n" +
        "85 09 13 20 169 09.9 12.1 03.40 11.10 07.80 999 0983.2  09.3 999.0 999.0 99.0\r\n",
    );
    await Deno.writeFile(
      join(dir, "46035h2005.txt.gz"),
      await gzipBytes(
        "YYYY MM DD hh mm  WD  WSPD GST  WVHT  DPD   APD  MWD  BAR    ATMP  WTMP  DEWP  VIS  TIDE\n" +
          "2005 01 01 00 50 165 11.5 13.6  4.76 17.39  8.48 310  983.9   2.8   3.1   0.1 99.0 1.5\n",
      ),
    );
    await Deno.writeTextFile(join(dir, "notes.md"), "not data");
    const r = await readNdbcStdmet(dir);
    assert.deepEqual(r.files, ["46035h1985.txt", "46035h2005.txt.gz", "46035h2017.txt"]);
    assert.equal(r.rows, 3);
    assert.deepEqual(r.issues, [
      { file: "46035h2017.txt", line: 4, reason: "expected 18 fields, found 9" },
    ]);
    assert.deepEqual(Array.from(r.series.times), [
      Date.UTC(1985, 8, 13, 20),
      Date.UTC(2005, 0, 1, 0, 50),
      Date.UTC(2017, 0, 1, 0, 50),
    ]);
    assert.deepEqual(Object.keys(r.series.columns), [...OLD_COLUMNS, "TIDE"]);
    assertF32(r.series.columns.WVHT, [3.4, 4.76, 7.39], "WVHT");
    assertF32(r.series.columns.TIDE, [NaN, 1.5, NaN], "TIDE");
    assertF32(r.series.columns.PRES, [983.2, 983.9, 985.7], "PRES");

    // A list of files (paths or URLs), and strict mode across files.
    const two = await readNdbcStdmet([
      join(dir, "46035h1985.txt"),
      new URL(`file://${join(dir, "46035h2005.txt.gz")}`),
    ], { columns: ["WVHT"] });
    assertF32(two.series.columns.WVHT, [3.4, 4.76]);
    await assert.rejects(readNdbcStdmet(dir, { strict: true }), {
      name: "RangeError",
      message: "Malformed NDBC line at 46035h2017.txt:4: expected 18 fields, found 9",
    });
    await assert.rejects(readNdbcStdmet([]), RangeError);
    const emptyDir = await Deno.makeTempDir({ prefix: "diffprobe_ndbc_empty_" });
    await assert.rejects(readNdbcStdmet(emptyDir), {
      name: "RangeError",
      message: /holds no \*\.txt or \*\.txt\.gz file/,
    });
    await Deno.remove(emptyDir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

// ---------------------------------------------------------------------------------------------
// CSV

const CSV_TEXT = [
  "station,time,WVHT,DPD,note", // 1
  "A,2017-01-01T00:00Z,2.5,10,x", // 2
  "A,2017-01-01T01:00,NA,11,", // 3: no offset → UTC
  "A,2017-01-01 02:30:15.5+01:00,3,,y", // 4: 01:30:15.500Z
  "", // 5
  "A,2017-01-01T03:00Z,abc,12,z", // 6: non-numeric WVHT
  "A,2017-01-01T04:00Z,4,13", // 7: 4 fields
  "A,2017-02-30T00:00Z,1,1,q", // 8: impossible date
  "A,yesterday,1,1,q", // 9: not a time
  'A,2017-01-01T05:00Z,5,14,"multi', // 10
  'line"', // 11
  'A,2017-01-01,6,15,"ok"', // 12: date only → midnight UTC
  'A,2017-01-01T06:00Z,7,"16",w', // 13
].join("\n");

Deno.test("parseCsvSeries selects columns and reads ISO times as UTC", () => {
  const r = parseCsvSeries(CSV_TEXT, "buoy.csv", { timeColumn: "time", columns: ["DPD", "WVHT"] });
  assert.deepEqual(Object.keys(r.series.columns), ["DPD", "WVHT"]);
  assert.equal(r.rows, 6);
  assert.deepEqual(Array.from(r.series.times), [
    Date.UTC(2017, 0, 1, 0),
    Date.UTC(2017, 0, 1, 0), // line 12, after line 2 (stable sort)
    Date.UTC(2017, 0, 1, 1),
    Date.UTC(2017, 0, 1, 1, 30, 15, 500),
    Date.UTC(2017, 0, 1, 5),
    Date.UTC(2017, 0, 1, 6),
  ]);
  assertF32(r.series.columns.DPD, [10, 15, 11, NaN, 14, 16], "DPD");
  assertF32(r.series.columns.WVHT, [2.5, 6, NaN, 3, 5, 7], "WVHT");
});

Deno.test("parseCsvSeries reports malformed rows with file and line; strict throws", () => {
  const r = parseCsvSeries(CSV_TEXT, "buoy.csv", { timeColumn: "time", columns: ["DPD", "WVHT"] });
  assert.deepEqual(r.issues, [
    { file: "buoy.csv", line: 6, reason: 'non-numeric value "abc" in column WVHT' },
    { file: "buoy.csv", line: 7, reason: "expected 5 fields, found 4" },
    { file: "buoy.csv", line: 8, reason: 'impossible date "2017-02-30T00:00Z" (column time)' },
    { file: "buoy.csv", line: 9, reason: '"yesterday" is not an ISO 8601 time (column time)' },
  ]);
  // Not selecting WVHT makes line 6 fine.
  const dpd = parseCsvSeries(CSV_TEXT, "buoy.csv", { timeColumn: "time", columns: ["DPD"] });
  assert.equal(dpd.rows, 7);
  assert.deepEqual(dpd.issues.map((i) => i.line), [7, 8, 9]);
  assert.throws(
    () => parseCsvSeries(CSV_TEXT, "buoy.csv", { timeColumn: "time", strict: true }),
    {
      name: "RangeError",
      message: 'Malformed CSV row at buoy.csv:2: non-numeric value "A" in column station',
    },
  );
  assert.throws(
    () => parseCsvSeries(CSV_TEXT, "buoy.csv", { timeColumn: "time", columns: ["HS"] }),
    { name: "RangeError", message: /Cannot read buoy\.csv: the header has no column "HS"/ },
  );
  // The default time column is the first one, "station", whose "A" is no time: all reported.
  const wrong = parseCsvSeries(CSV_TEXT, "buoy.csv", { columns: ["DPD"] });
  assert.equal(wrong.rows, 0);
  assert.deepEqual(wrong.issues[0], {
    file: "buoy.csv",
    line: 2,
    reason: '"A" is not an ISO 8601 time (column station)',
  });
});

Deno.test("parseCsvSeries reports broken quoting with its line", () => {
  const text = 'time,v\n2017-01-01T00:00Z,1\n2017-01-01T01:00Z,"2\n';
  const r = parseCsvSeries(text, "q.csv");
  assert.equal(r.rows, 1);
  assert.equal(r.issues.length, 1);
  assert.equal(r.issues[0].file, "q.csv");
  assert.equal(r.issues[0].line, 3);
  assert.match(r.issues[0].reason, /^unreadable CSV \(Quote Not Closed/);
  assert.throws(() => parseCsvSeries(text, "q.csv", { strict: true }), {
    name: "RangeError",
    message: /^Malformed CSV row at q\.csv:3: unreadable CSV/,
  });
});

Deno.test("parseCsvSeries reads epoch seconds and milliseconds", () => {
  const t0 = Date.UTC(2017, 0, 1);
  const auto = parseCsvSeries("t;v\n1483228800;1\n1483228800000;2\n1483228801.5;3\n", "e.csv", {
    delimiter: ";",
  });
  assert.deepEqual(auto.issues, []);
  assert.deepEqual(Array.from(auto.series.times), [t0, t0, t0 + 1500]);
  const ms = parseCsvSeries("t,v\n1000,1\n", "ms.csv", { timeFormat: "epoch-ms" });
  assert.deepEqual(Array.from(ms.series.times), [1000]);
  const s = parseCsvSeries("t,v\n1000,1\n2017-01-01,2\n", "s.csv", { timeFormat: "epoch-s" });
  assert.deepEqual(Array.from(s.series.times), [1_000_000]);
  assert.deepEqual(s.issues, [
    { file: "s.csv", line: 3, reason: '"2017-01-01" is not an epoch time (column t)' },
  ]);
  const iso = parseCsvSeries("t,v\n1000,1\n", "i.csv", { timeFormat: "iso" });
  assert.deepEqual(iso.issues.map((i) => i.reason), [
    '"1000" is not an ISO 8601 time (column t)',
  ]);
});

Deno.test("readCsvSeries merges .csv and .csv.gz files in name order", async () => {
  const dir = await Deno.makeTempDir({ prefix: "diffprobe_csv_" });
  try {
    await Deno.writeTextFile(join(dir, "b.csv"), "time,WVHT\n2017-01-01T02:00Z,3\n");
    await Deno.writeFile(
      join(dir, "a.csv.gz"),
      await gzipBytes("time,WVHT\n2017-01-01T05:00Z,5\n2017-01-01T01:00Z,x\n"),
    );
    const r = await readCsvSeries(dir);
    assert.deepEqual(r.files, ["a.csv.gz", "b.csv"]);
    assert.deepEqual(Array.from(r.series.times), [
      Date.UTC(2017, 0, 1, 2),
      Date.UTC(2017, 0, 1, 5),
    ]);
    assertF32(r.series.columns.WVHT, [3, 5]);
    assert.deepEqual(r.issues, [
      { file: "a.csv.gz", line: 3, reason: 'non-numeric value "x" in column WVHT' },
    ]);
    await Deno.writeTextFile(join(dir, "c.csv"), "time,HS\n2017-01-01T02:00Z,3\n");
    await assert.rejects(readCsvSeries(dir), {
      name: "RangeError",
      message: /Cannot merge c\.csv/,
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

// ---------------------------------------------------------------------------------------------
// Resampling

Deno.test("resampleHourly averages each hour's valid readings and leaves gaps NaN", () => {
  const t0 = Date.UTC(2020, 0, 1);
  const series: TimeSeries = {
    // Deliberately out of order.
    times: new Float64Array([
      t0 + 4 * H + H - 1, // 04:59:59.999
      t0, // 00:00
      t0 + 50 * 60_000, // 00:50
      t0 + 50 * 60_000, // 00:50 duplicate
      t0 + H + 10 * 60_000, // 01:10
    ]),
    columns: {
      WVHT: new Float32Array([7, 1, 3, NaN, 5]),
      DPD: new Float32Array([NaN, 10, NaN, 12, NaN]),
    },
  };
  const r = resampleHourly(series);
  assert.deepEqual(Array.from(r.times), [0, 1, 2, 3, 4].map((h) => t0 + h * H));
  assertF32(r.columns.WVHT, [2, 5, NaN, NaN, 7], "WVHT");
  assertF32(r.columns.DPD, [11, NaN, NaN, NaN, NaN], "DPD");

  const wide = resampleHourly(series, { start: t0 - H, end: t0 + 5 * H + 59 * 60_000 });
  assert.equal(wide.times[0], t0 - H);
  assertF32(wide.columns.WVHT, [NaN, 2, 5, NaN, NaN, 7, NaN], "WVHT (wide)");
  const late = resampleHourly(series, { start: t0 + H + 1 });
  assertF32(late.columns.WVHT, [5, NaN, NaN, 7], "WVHT (from 01:00)");

  const empty = resampleHourly({ times: new Float64Array(0), columns: { a: new Float32Array(0) } });
  assert.equal(empty.times.length, 0);
  assert.deepEqual(Object.keys(empty.columns), ["a"]);
  assert.throws(
    () => resampleHourly({ times: new Float64Array([NaN]), columns: {} }),
    { name: "RangeError", message: /times\[0\] is NaN/ },
  );
});

Deno.test("interpolateGaps fills only short gaps between valid values", () => {
  const s = hourly(0, {
    a: [NaN, 1, NaN, 3, NaN, NaN, 9, NaN, NaN, NaN, 1, NaN],
    b: [NaN, 5, NaN, 5, NaN, NaN, 5, NaN, NaN, NaN, 5, NaN],
  });
  const f = interpolateGaps(s, { maxGap: 2, columns: ["a"] });
  assertF32(f.columns.a, [NaN, 1, 2, 3, 5, 7, 9, NaN, NaN, NaN, 1, NaN], "a");
  assert.equal(f.columns.b, s.columns.b); // not selected: the same array
  assert.equal(f.times, s.times);
  assertF32(s.columns.a, [NaN, 1, NaN, 3, NaN, NaN, 9, NaN, NaN, NaN, 1, NaN], "a unchanged");
  const all = interpolateGaps(s, { maxGap: 3 });
  assertF32(all.columns.a, [NaN, 1, 2, 3, 5, 7, 9, 7, 5, 3, 1, NaN], "a, maxGap 3");
  assertF32(all.columns.b, [NaN, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, NaN], "b, maxGap 3");
  assertF32(interpolateGaps(s, { maxGap: 0 }).columns.a, Array.from(s.columns.a), "maxGap 0");
  assert.throws(() => interpolateGaps(s, { maxGap: -1 }), RangeError);
  assert.throws(() => interpolateGaps(s, { maxGap: 1, columns: ["c"] }), RangeError);
  // With the 1-hour gap filled, a window may cover it (L = 2, h = 1: rows 1–3).
  const w0 = makeWindows(s, { input: ["a"], target: "a", length: 2, horizon: 1 });
  const w1 = makeWindows(interpolateGaps(s, { maxGap: 1 }), {
    input: ["a"],
    target: "a",
    length: 2,
    horizon: 1,
  });
  assert.deepEqual([Array.from(w0.starts), Array.from(w1.starts)], [[], [1]]);
});

// ---------------------------------------------------------------------------------------------
// Windows

Deno.test("makeWindows keeps only windows without a missing value (hand-counted)", () => {
  //           rows: 0  1  2  3  4   5  6  7  8  9   10 11
  const WVHT = [1, 2, 3, 4, 5, NaN, 7, 8, 9, 10, 11, 12];
  const DPD = [1, 1, 1, NaN, 1, 1, 1, 1, 1, NaN, 1, 1];
  const s = hourly(0, { WVHT, DPD });
  // L = 3, h = 2: a window spans rows s … s+4; WVHT must be valid on all of them.
  const w = makeWindows(s, { input: ["WVHT"], target: "WVHT", length: 3, horizon: 2 });
  assert.deepEqual(Array.from(w.starts), [0, 6, 7]);
  assert.deepEqual(Array.from(w.targetTimes), [4 * H, 10 * H, 11 * H]);
  assert.equal(w.size, 3);
  // DPD as an extra input must be valid on the input rows s … s+2 only: its NaN at row 3 is in
  // window 0's lead time (allowed), its NaN at row 9 is in window 7's input (rejected).
  const w2 = makeWindows(s, { input: ["WVHT", "DPD"], target: "WVHT", length: 3, horizon: 2 });
  assert.deepEqual(Array.from(w2.starts), [0, 6]);
  // Stride 2, greedy: 0 is taken, 2…5 are rejected, 6 is taken, 8 does not fit.
  const w3 = makeWindows(s, { input: ["WVHT"], target: "WVHT", length: 3, horizon: 2, stride: 2 });
  assert.deepEqual(Array.from(w3.starts), [0, 6]);
  // Defaults L = 128, h = 6: too short a series gives no window.
  assert.equal(makeWindows(s, { input: ["WVHT"], target: "WVHT" }).size, 0);

  const a = windowsToArrays(w2);
  assert.deepEqual(a.shape, [2, 3, 2]);
  assert.deepEqual(Array.from(a.inputs), [1, 1, 2, 1, 3, 1, 7, 1, 8, 1, 9, 1]);
  assert.deepEqual(Array.from(a.targets), [5, 11]);
});

Deno.test("makeWindows never spans a gap (random gaps against brute force)", () => {
  let seed = 12345;
  const rand = (): number => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  for (let trial = 0; trial < 30; trial++) {
    const n = 50 + Math.floor(rand() * 200);
    const L = 1 + Math.floor(rand() * 12);
    const h = 1 + Math.floor(rand() * 6);
    const a = Array.from({ length: n }, () => (rand() < 0.04 ? NaN : rand()));
    const b = Array.from({ length: n }, () => (rand() < 0.02 ? NaN : rand()));
    const s = hourly(Date.UTC(2000, 0, 1), { a, b });
    const w = makeWindows(s, { input: ["a", "b"], target: "a", length: L, horizon: h });
    const expected: number[] = [];
    for (let st = 0; st + L + h <= n; st++) {
      let ok = true;
      for (let r = st; r < st + L + h; r++) if (Number.isNaN(a[r])) ok = false;
      for (let r = st; r < st + L; r++) if (Number.isNaN(b[r])) ok = false;
      if (ok) expected.push(st);
    }
    assert.deepEqual(Array.from(w.starts), expected, `trial ${trial}`);
    const arr = windowsToArrays(w);
    assert.ok(arr.inputs.every((v) => !Number.isNaN(v)) && arr.targets.every((v) => !isNaN(v)));
  }
});

Deno.test("makeWindows rejects irregular grids, unknown channels and bad sizes", () => {
  const s = hourly(0, { WVHT: [1, 2, 3, 4] });
  const irregular: TimeSeries = {
    times: new Float64Array([0, H, 3 * H, 4 * H]),
    columns: { WVHT: new Float32Array(4) },
  };
  assert.throws(() => makeWindows(irregular, { input: ["WVHT"], target: "WVHT", length: 1 }), {
    name: "RangeError",
    message: /irregular grid: times\[2\] - times\[1\] is 7200000 ms, expected 3600000 ms/,
  });
  assert.throws(() => makeWindows(s, { input: ["WVHT", "DPD"], target: "WVHT" }), {
    name: "RangeError",
    message: 'Cannot make windows: the series has no channel "DPD" (it has WVHT)',
  });
  assert.throws(() => makeWindows(s, { input: ["WVHT"], target: "WVHT", length: 0 }), {
    name: "RangeError",
    message: "Option length must be a positive integer, got 0",
  });
  assert.throws(
    () => makeWindows(s, { input: ["WVHT"], target: "WVHT", horizon: 1.5 }),
    RangeError,
  );
  assert.throws(() => makeWindows(s, { input: [], target: "WVHT" }), RangeError);
});

// ---------------------------------------------------------------------------------------------
// Splits, scaler, tensors

/** 96 hours from 2008-12-31T00:00Z: WVHT = row, DPD = 100 - row. */
function splitFixture(): TimeSeries {
  const rows = Array.from({ length: 96 }, (_, r) => r);
  return hourly(Date.UTC(2008, 11, 31), { WVHT: rows, DPD: rows.map((r) => 100 - r) });
}

const SPLIT = {
  trainEnd: "2009", // row 24
  valEnd: "2009-01-02T12:00", // row 60 (no offset: UTC)
  testStart: "2009-01-03", // row 72
  testEnd: new Date("2009-01-04T00:00:00Z"), // row 96
};

Deno.test("chronologicalSplit keeps every window inside one period (hand-counted)", () => {
  const w = makeWindows(splitFixture(), {
    input: ["WVHT", "DPD"],
    target: "WVHT",
    length: 4,
    horizon: 2,
  });
  assert.equal(w.size, 91); // rows s … s+5, s = 0 … 90
  const s = chronologicalSplit(w, SPLIT);
  const starts = (x: { starts: Int32Array }): number[] => Array.from(x.starts);
  const range = (a: number, b: number): number[] =>
    Array.from({ length: b - a + 1 }, (_, i) => a + i);
  assert.deepEqual(starts(s.train), range(0, 18)); // target row ≤ 23
  assert.deepEqual(starts(s.val), range(24, 54)); // rows 24 … 59
  assert.deepEqual(starts(s.test), range(72, 90)); // rows 72 … 95
  assert.equal(s.straddling, 15); // 19–23, 55–59, 67–71
  assert.equal(s.outside, 7); // 60–66: wholly between valEnd and testStart
  const t = w.series.times;
  const bound = (x: string | Date): number =>
    x instanceof Date ? x.getTime() : Date.parse(x.length > 10 ? x + "Z" : x);
  for (const k of s.train.starts) assert.ok(t[k + 5] < bound(SPLIT.trainEnd));
  for (const k of s.val.starts) {
    assert.ok(t[k] >= bound(SPLIT.trainEnd) && t[k + 5] < bound(SPLIT.valEnd));
  }
  for (const k of s.test.starts) {
    assert.ok(t[k] >= bound(SPLIT.testStart) && t[k + 5] < bound(SPLIT.testEnd));
  }
  assert.equal(s.val.targetTimes[0], t[29]);

  assert.throws(() => chronologicalSplit(w, { ...SPLIT, valEnd: "2008-06-01" }), {
    name: "RangeError",
    message: /Cannot split: valEnd \(2008-06-01T00:00:00\.000Z\) must be after trainEnd/,
  });
  assert.throws(() => chronologicalSplit(w, { ...SPLIT, testStart: "not a date" }), {
    name: "RangeError",
    message: 'Cannot split: testStart "not a date" is not a valid time',
  });
});

Deno.test("MinMaxScaler is fitted on the training split only (hand-computed)", () => {
  const w = makeWindows(splitFixture(), {
    input: ["WVHT", "DPD"],
    target: "WVHT",
    length: 4,
    horizon: 2,
  });
  const { train, val } = chronologicalSplit(w, SPLIT);
  const scaler = MinMaxScaler.fit(train);
  // Train windows start at rows 0 … 18: inputs use rows 0 … 21, targets rows 5 … 23.
  // WVHT = row → [0, 23] (max from a target); DPD = 100 - row, inputs only → [79, 100].
  assert.deepEqual(scaler.toJSON(), { min: { WVHT: 0, DPD: 79 }, max: { WVHT: 23, DPD: 100 } });
  assert.deepEqual(scaler.channels, ["WVHT", "DPD"]);
  assert.equal(scaler.transform(11.5, "WVHT"), 0.5);
  assert.equal(scaler.inverse(0.5, "WVHT"), 11.5);
  assert.equal(scaler.transform(89.5, "DPD"), 0.5);
  assertF32(scaler.transform(new Float32Array([0, 23, 46]), "WVHT"), [0, 1, 2]);
  assertF32(scaler.inverse(new Float32Array([0, 1]), "DPD"), [79, 100]);
  assert.throws(() => scaler.transform(1, "APD"), {
    name: "RangeError",
    message: 'The scaler has no channel "APD" (it has WVHT, DPD)',
  });
  const restored = new MinMaxScaler(scaler.toJSON().min, scaler.toJSON().max);
  assert.equal(restored.inverse(1, "WVHT"), 23);
  assert.equal(new MinMaxScaler({ c: 2 }, { c: 2 }).transform(2, "c"), 0); // constant channel
  assert.throws(() => new MinMaxScaler({ c: 3 }, { c: 2 }), RangeError);
  assert.throws(() => MinMaxScaler.fit({ ...val, starts: new Int32Array(0), size: 0 }), {
    name: "RangeError",
    message: "Cannot fit a scaler on zero windows",
  });

  // Tensors: val windows scaled with the training bounds (values above 1 are expected).
  const { x, y } = windowsToTensors(val, { scaler, indices: [0, 30] });
  try {
    assert.deepEqual(x.shape, [2, 4, 2]);
    assert.deepEqual(y.shape, [2]);
    const xs = x.arraySync();
    assertF32(xs[0].map((r) => r[0]), [24 / 23, 25 / 23, 26 / 23, 27 / 23], "x[0, :, WVHT]");
    assertF32(xs[0].map((r) => r[1]), [-3 / 21, -4 / 21, -5 / 21, -6 / 21], "x[0, :, DPD]");
    assertF32(xs[1].map((r) => r[0]), [54 / 23, 55 / 23, 56 / 23, 57 / 23], "x[1, :, WVHT]");
    assertF32(y.dataSync(), [29 / 23, 59 / 23], "y");
    const back = scaler.inverse(y, "WVHT");
    const b = back.dataSync();
    assert.ok(Math.abs(b[0] - 29) < 1e-5 && Math.abs(b[1] - 59) < 1e-5, `inverse(y): ${b}`);
    back.dispose();
  } finally {
    x.dispose();
    y.dispose();
  }
  const raw = windowsToTensors(val);
  assertF32(raw.y.dataSync().slice(0, 2), [29, 30]);
  raw.x.dispose();
  raw.y.dispose();
});

// ---------------------------------------------------------------------------------------------
// The committed default dataset of the wave example

const DEFAULT_DATA = fileURLToPath(
  new URL("../examples/waves/data/46035_hourly.csv.gz", import.meta.url),
);

function median(values: Float32Array): number {
  const v = Array.from(values).filter((x) => !Number.isNaN(x)).sort((a, b) => a - b);
  const m = v.length >> 1;
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}

function maxOf(values: Float32Array): number {
  let m = -Infinity;
  for (const v of values) if (v > m) m = v;
  return m;
}

function validCount(values: Float32Array): number {
  let n = 0;
  for (const v of values) if (!Number.isNaN(v)) n++;
  return n;
}

Deno.test("the committed 46035 hourly dataset reads cleanly and matches its README", async () => {
  const t0 = performance.now();
  const r = await readCsvSeries(DEFAULT_DATA);
  const ms = performance.now() - t0;
  assert.deepEqual(r.issues, []);
  assert.equal(r.rows, 234_595);
  assert.deepEqual(Object.keys(r.series.columns), ["WVHT", "DPD", "APD", "WSPD"]);
  const wvht = r.series.columns.WVHT;
  assert.equal(validCount(wvht), 218_943);
  assert.equal(validCount(r.series.columns.DPD), 218_831);
  assert.equal(validCount(r.series.columns.APD), 219_120);
  assert.equal(validCount(r.series.columns.WSPD), 218_914);
  assert.equal(median(wvht), f32(2.26));
  assert.equal(maxOf(wvht), f32(15.4));
  assert.equal(r.series.times[0], Date.UTC(1985, 8, 13, 20));
  assert.equal(r.series.times.at(-1), Date.UTC(2017, 11, 31, 22));
  const grid = resampleHourly(r.series);
  assert.equal(grid.times.length, 283_131);
  assert.equal(validCount(grid.columns.WVHT), 218_943);
  console.log(`default dataset: ${r.rows} rows read in ${ms.toFixed(0)} ms`);
});

// ---------------------------------------------------------------------------------------------
// Real data from ../shared (absent in fresh clones)

const SHARED_NDBC = fileURLToPath(new URL("../../shared/data/ndbc-46035/", import.meta.url));
const hasShared = !skipNote("data/ndbc-46035");

Deno.test({
  name: "readNdbcStdmet reads all 32 files of station 46035 with the documented totals",
  ignore: !hasShared,
  fn: async () => {
    const t0 = performance.now();
    const r = await readNdbcStdmet(SHARED_NDBC, { strict: true });
    const readMs = performance.now() - t0;
    assert.equal(r.files.length, 32);
    assert.equal(r.files[0], "46035h1985.txt");
    assert.equal(r.files.at(-1), "46035h2017.txt");
    assert.ok(!r.files.includes("46035h2013.txt"));
    assert.deepEqual(r.issues, []);
    assert.equal(r.rows, 246_771);
    assert.deepEqual(Object.keys(r.series.columns), [...OLD_COLUMNS, "TIDE"]);
    assert.equal(validCount(r.series.columns.WVHT), 219_013); // readings, before resampling
    for (let i = 1; i < r.series.times.length; i++) {
      assert.ok(r.series.times[i] >= r.series.times[i - 1], `sorted at ${i}`);
    }
    const h = resampleHourly(r.series);
    const wvht = h.columns.WVHT;
    const valid = validCount(wvht);
    // The data provenance notes: about 219k valid hourly wave heights, median 2.26 m, max 15.4 m.
    assert.equal(valid, 218_943);
    assert.ok(Math.abs(valid - 219_000) < 1_000);
    assert.ok(Math.abs(median(wvht) - 2.26) < 0.005);
    assert.equal(maxOf(wvht), f32(15.4));

    // The experiment's windows and splits on the real grid.
    const w = makeWindows(h, { input: ["WVHT"], target: "WVHT", length: 128, horizon: 6 });
    const s = chronologicalSplit(w, {
      trainEnd: "2009",
      valEnd: "2012",
      testStart: "2014",
      testEnd: "2018",
    });
    for (const k of s.val.starts) assert.ok(h.times[k] >= Date.UTC(2009, 0, 1));
    for (const t of s.train.targetTimes) assert.ok(t < Date.UTC(2009, 0, 1));
    for (const k of s.test.starts) assert.ok(h.times[k] >= Date.UTC(2014, 0, 1));
    const scaler = MinMaxScaler.fit(s.train);
    console.log(
      `46035: ${r.rows} rows from ${r.files.length} files read in ${readMs.toFixed(0)} ms; ` +
        `${valid} valid hourly WVHT, median ${median(wvht).toFixed(2)} m; windows (L 128, h 6) ` +
        `${w.size}: train ${s.train.size}, val ${s.val.size}, test ${s.test.size}, ` +
        `straddling ${s.straddling}, outside ${s.outside}; train WVHT range ` +
        `[${scaler.min.WVHT}, ${scaler.max.WVHT.toFixed(2)}] m`,
    );
  },
});

Deno.test({
  name: "the committed dataset equals a fresh derivation from the raw 46035 files",
  ignore: !hasShared,
  fn: async () => {
    const { csv } = await deriveWaveCsv(SHARED_NDBC);
    const bytes = await Deno.readFile(DEFAULT_DATA);
    const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"));
    const committed = await new Response(stream).text();
    assert.equal(committed.length, csv.length);
    assert.ok(committed === csv, "examples/waves/data/46035_hourly.csv.gz is out of date");
  },
});
