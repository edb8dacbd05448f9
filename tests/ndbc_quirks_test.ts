/**
 * The NDBC reader, hourly resampling and the year splits on real files of the stations beyond
 * 46035 (slices in `tests/fixtures/ndbc-quirks/` and `tests/fixtures/ndbc/44005/`, provenance in
 * `tests/fixtures/ndbc/README.md`): CRLF line ends switching mid-file, 16 → 17 columns mid-year,
 * the first row on 31 December of the previous year, 10-minute rows. Expected values are read off
 * the files by eye.
 *
 * @module
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { ndbcStationId, parseNdbcStdmet, readNdbcStdmet } from "../src/data/ndbc.ts";
import { resampleHourly } from "../src/data/resample.ts";
import { makeWindows } from "../src/data/windows.ts";
import { deriveYearSplit, yearSplitBounds } from "../src/data/split_years.ts";

const dir = (p: string) => fileURLToPath(new URL(`./fixtures/${p}`, import.meta.url));
const read = (name: string) => Deno.readTextFile(dir(`ndbc-quirks/${name}`));
const f32 = Math.fround;

Deno.test("44014 in 1996: two-digit years, '.80' values, LF then CRLF line ends", async () => {
  const r = parseNdbcStdmet(await read("44014h1996.txt"), "44014h1996.txt", {
    columns: ["WVHT", "DPD"],
  });
  assert.deepEqual(r.issues, []);
  assert.equal(r.rows, 8);
  assert.equal(r.series.times[2], Date.UTC(1996, 7, 2, 21));
  assert.equal(r.series.times[5], Date.UTC(1996, 7, 3, 0)); // the first CRLF line
  assert.ok(Number.isNaN(r.series.columns.WVHT[0])); // 99.00: missing
  assert.deepEqual(
    Array.from(r.series.columns.WVHT.slice(2)),
    [0.8, 0.73, 0.74, 0.8, 0.75, 0.72].map(f32),
  );
  assert.equal(r.series.columns.DPD[7], f32(6.25)); // the last field before "\r" is a number
});

Deno.test("44014 in 2000: rows of 16 then 17 fields (TIDE added on 1 August)", async () => {
  const r = parseNdbcStdmet(await read("44014h2000.txt"), "44014h2000.txt");
  assert.deepEqual(r.issues, []);
  assert.equal(r.rows, 8);
  assert.equal(r.series.times[4], Date.UTC(2000, 7, 1, 0));
  assert.ok(Number.isNaN(r.series.columns.TIDE[3])); // short row: TIDE absent
  assert.ok(Number.isNaN(r.series.columns.TIDE[4])); // 99.00: missing
  assert.deepEqual(
    Array.from(r.series.columns.WVHT.slice(2, 6)),
    [1.19, 1.06, 1.12, 1.14].map(f32),
  );
});

Deno.test("from 2008 the first row is 23:50 on 31 December of the year before", async () => {
  const r = parseNdbcStdmet(await read("44014h2010.txt"), "44014h2010.txt", { columns: ["WVHT"] });
  assert.deepEqual(r.issues, []);
  assert.deepEqual(Array.from(r.series.times), [Date.UTC(2009, 11, 31, 23, 50)]);
  assert.equal(r.series.columns.WVHT[0], f32(1.48));
});

Deno.test("42040 in 2016: 10-minute rows resample to one value an hour", async () => {
  const r = parseNdbcStdmet(await read("42040h2016.txt"), "42040h2016.txt", {
    columns: ["WVHT", "ATMP"],
  });
  assert.deepEqual(r.issues, []);
  assert.equal(r.rows, 15);
  const hourly = resampleHourly(r.series, {
    start: Date.UTC(2016, 3, 5, 17),
    end: Date.UTC(2016, 3, 5, 19),
  });
  // 17:00–17:50: WVHT only at 17:40 (0.51); 18:00–18:50: only at 18:40 (0.46); 19:00: none
  assert.deepEqual(Array.from(hourly.columns.WVHT), [f32(0.51), f32(0.46), NaN]);
  // ATMP: the mean of the hour's six readings (20.3 ×4, 20.4 ×2), then (20.4, 20.5 ×2, 20.6 ×2, 20.7)
  assert.ok(Math.abs(hourly.columns.ATMP[0] - (4 * 20.3 + 2 * 20.4) / 6) < 1e-5);
  assert.ok(Math.abs(hourly.columns.ATMP[1] - (20.4 + 2 * 20.5 + 2 * 20.6 + 20.7) / 6) < 1e-5);
});

Deno.test("a folder of one station's files: id from the folder, years derived from the windows", async () => {
  const folder = dir("ndbc/44005");
  assert.equal(ndbcStationId(folder), "44005");
  const r = await readNdbcStdmet(folder, { columns: ["WVHT"] });
  assert.deepEqual(r.issues, []);
  assert.deepEqual(r.files, [
    "buoy_data_2008.txt.gz",
    "buoy_data_2009.txt.gz",
    "buoy_data_2010.txt.gz",
  ]);
  assert.equal(r.rows, 3 * 998); // 1,000 lines less the header and units lines
  assert.equal(r.series.times[0], Date.UTC(2008, 0, 1));
  // the 2009 file's first row: 23:50 on 31 December 2008
  assert.ok(r.series.times.includes(Date.UTC(2008, 11, 31, 23, 50)));
  const hourly = resampleHourly(r.series);
  const w = makeWindows(hourly, { input: ["WVHT"], target: "WVHT", length: 128, horizon: 6 });
  const years = deriveYearSplit(w.targetTimes);
  assert.deepEqual(years, { trainUntil: 2008, valUntil: 2009, testFrom: 2010, testUntil: 2010 });
  assert.deepEqual(yearSplitBounds(years).testStart, Date.UTC(2010, 0, 1));
});

Deno.test("deriveYearSplit: sparse years between counted ones, and too few years", () => {
  const times: number[] = [];
  const year = (y: number, hours: number) => {
    for (let h = 0; h < hours; h++) times.push(Date.UTC(y, 0, 1) + h * 3_600_000);
  };
  for (let y = 1990; y <= 2009; y++) if (y !== 2003) year(y, 1000);
  year(2003, 100); // under a quarter of the busiest year: not counted
  // 19 counted years: test round(3.8) = 4 (2006–2009), validation round(2.85) = 3 (2002, 2004, 2005)
  assert.deepEqual(deriveYearSplit(times), {
    trainUntil: 2001,
    valUntil: 2005,
    testFrom: 2006,
    testUntil: 2009,
  });
  assert.deepEqual(deriveYearSplit(times, { valFraction: 0, testFraction: 0 }), {
    trainUntil: 2007,
    valUntil: 2008,
    testFrom: 2009,
    testUntil: 2009,
  });
  assert.throws(() => deriveYearSplit([]), /0 years hold enough data \(none/);
  assert.throws(() => deriveYearSplit(times, { testFraction: 2 }), /testFraction must be/);
  assert.throws(
    () => yearSplitBounds({ trainUntil: 2008, valUntil: 2008, testFrom: 2009, testUntil: 2009 }),
    /trainUntil < valUntil/,
  );
});

Deno.test("ndbcStationId: NDBC names, CSV names, folders, and paths that name none", () => {
  assert.equal(ndbcStationId("46035h1985.txt"), "46035");
  assert.equal(ndbcStationId("/x/41001.txt"), "41001"); // a realtime file
  assert.equal(ndbcStationId("data/44014/"), "44014");
  assert.equal(ndbcStationId(new URL("file:///data/42040/buoy_data_2016.txt")), "42040");
  assert.equal(ndbcStationId("data/ndbc-more/buoy_data_2016.txt"), undefined);
  assert.equal(ndbcStationId("data/waves/x.csv"), undefined); // "waves" ends in no digit
});
