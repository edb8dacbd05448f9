/**
 * A seeded fuzz of the NDBC and CSV parsers: 3,000 files mutated from valid samples (characters
 * replaced, inserted, deleted; tokens swapped for hostile ones such as `MM`, `1e400`, `05`,
 * `__proto__`; lines duplicated, dropped, swapped; text truncated). Each parse must end with a
 * well-formed result (only `ReadIssue`s for what it could not read, no `Infinity`, times sorted and
 * finite, every column as long as the times) or a typed error (`RangeError` or `TypeError`) —
 * never another exception, and never a hang.
 *
 * The parsers are synchronous, so a hang cannot be interrupted on the same thread: the cases run
 * in a worker (this same file, loaded as one), and the test terminates it and fails when, once
 * started, it stops reporting progress for 10 s. Each case must also finish within 1 s.
 *
 * @module
 */

import assert from "node:assert/strict";
import { Random } from "../src/base/random.ts";
import { type CsvSeriesOptions, parseCsvSeries } from "../src/data/csv_series.ts";
import { type NdbcOptions, parseNdbcStdmet } from "../src/data/ndbc.ts";
import type { ReadResult } from "../src/data/timeseries.ts";

const CASES_PER_PARSER = 1_500;
const SEED = 20_261_130;
const CASE_LIMIT_MS = 1_000;
const SILENCE_LIMIT_MS = 10_000;
/** The worker loads (and type-checks) this file before its first report. */
const STARTUP_LIMIT_MS = 120_000;

// ---------------------------------------------------------------------------------------------
// Valid samples

const NDBC_SAMPLES = [
  // From 2007: #YY header, units line.
  "#YY  MM DD hh mm WDIR WSPD GST  WVHT   DPD   APD MWD   PRES  ATMP  WTMP  DEWP  VIS  TIDE\n" +
  "#yr  mo dy hr mn degT m/s  m/s     m   sec   sec degT   hPa  degC  degC  degC  nmi    ft\n" +
  "2017 01 01 00 50 230 14.5 18.1  7.39 13.79  9.74 125  985.7   2.7   3.9 999.0 99.0 99.00\n" +
  "2017 01 01 01 50 240 13.1 16.0  7.02 13.79  9.60 130  986.1   2.9   3.9 999.0 99.0 99.00\n" +
  "2017 01 01 02 50 250 12.2 15.3 99.00 99.00 99.00 999  986.9   3.0   3.8 999.0 99.0 99.00\n",
  // Until 1998: 2-digit years, WD and BAR.
  "YY MM DD hh WD   WSPD GST  WVHT  DPD   APD  MWD  BAR    ATMP  WTMP  DEWP  VIS\n" +
  "85 09 13 20 169 09.9 12.1 03.40 11.10 07.80 999 0983.2  09.3 999.0 999.0 99.0\n" +
  "85 09 13 21 179 08.2 10.1 03.30 12.50 07.70 999 0982.9  09.4 999.0 999.0 99.0\n",
  // 2000–2004: TIDE last, rows may lack it.
  "YYYY MM DD hh WD  WSPD GST  WVHT  DPD   APD  MWD  BAR    ATMP  WTMP  DEWP  VIS  TIDE\n" +
  "2000 06 01 00 270  5.1  6.2  1.20  8.33  5.60 999 1015.1  12.0  12.5 999.0 99.0\n" +
  "2000 06 01 01 275  5.4  6.6  1.30  8.33  5.70 999 1015.3  12.1  12.5 999.0 99.0 99.00\n",
  // 2005–2006: minute column.
  "YYYY MM DD hh mm  WD  WSPD GST  WVHT  DPD   APD  MWD  BAR    ATMP  WTMP  DEWP  VIS  TIDE\n" +
  "2005 01 01 00 50 200  7.0  8.5  2.10 10.00  7.10 999 1012.0  10.0  10.5 999.0 99.0 99.00\n",
  // Realtime (realtime2 .txt): newest first, MM for missing values, PTDY.
  "#YY  MM DD hh mm WDIR WSPD GST  WVHT   DPD   APD MWD   PRES  ATMP  WTMP  DEWP  VIS PTDY  TIDE\n" +
  "#yr  mo dy hr mn degT m/s  m/s     m   sec   sec degT   hPa  degC  degC  degC  nmi  hPa    ft\n" +
  "2024 05 01 02 50 290  7.0  9.0   1.9     9   6.2 300 1016.1  10.1  11.0   7.2   MM +0.4    MM\n" +
  "2024 05 01 01 50  MM   MM   MM    MM    MM    MM  MM 1015.7  10.0  11.0   7.1   MM   MM    MM\n",
];

const CSV_SAMPLES = [
  "time,WVHT,DPD,note\n2017-01-01T00:00Z,2.5,10,calm\n2017-01-01T01:00Z,,11,\n" +
  '2017-01-01T02:00+01:00,2.7,12,"quoted, with comma"\n',
  "t;hs;tp\n1483228800;2.5;10\n1483232400;NA;11\n1483236000;2.6e0;12\n",
  "date,hs\n2017-01-01,1.0\n2017-01-02 06:30:15.25,2\n1999-12-31T23:59:59Z,3\n",
];

const TOKENS = [
  "MM",
  "99",
  "99.00",
  "999.0",
  "9999",
  "1e400",
  "-1e39",
  "3.4e38",
  "9".repeat(60),
  "-",
  ".",
  "+",
  "#",
  "\n",
  "\r\n",
  "\r",
  " ",
  "  ",
  "\t",
  ",",
  ";",
  '"',
  '""',
  "NaN",
  "nan",
  "NA",
  "null",
  "Infinity",
  "-0",
  "0005",
  "05",
  "00",
  "70",
  "99",
  "24",
  "60",
  "13",
  "32",
  "2017",
  "1e",
  "e5",
  "__proto__",
  "constructor",
  "toString",
  "WVHT",
  "TIDE",
  "YY",
  "#YY",
  "mm",
  "\u0000",
  "é",
  "\uFEFF",
  "\u2028",
  "0x1F",
  "1_000",
  "１",
  "Z",
  "T",
  "+25:00",
  "2017-02-30",
  "2017-01-01T24:00",
];

// ---------------------------------------------------------------------------------------------
// Mutations

function pick<T>(random: Random, items: readonly T[]): T {
  return items[random.int(items.length)];
}

/** One random edit of `text`. */
function mutateOnce(text: string, random: Random): string {
  const at = random.int(text.length + 1);
  const lines = text.split("\n");
  const line = random.int(lines.length);
  switch (random.int(9)) {
    case 0: // replace a character
      return text.slice(0, at) + pick(random, TOKENS)[0] + text.slice(at + 1);
    case 1: // insert a token
      return text.slice(0, at) + pick(random, TOKENS) + text.slice(at);
    case 2: // delete a span
      return text.slice(0, at) + text.slice(at + 1 + random.int(20));
    case 3: // duplicate a line
      lines.splice(line, 0, lines[line]);
      return lines.join("\n");
    case 4: { // swap two lines
      const other = random.int(lines.length);
      [lines[line], lines[other]] = [lines[other], lines[line]];
      return lines.join("\n");
    }
    case 5: // drop a line
      lines.splice(line, 1);
      return lines.join("\n");
    case 6: // truncate
      return text.slice(0, at);
    case 7: { // replace a field of a line with a token
      const fields = lines[line].split(/([\s,;]+)/);
      const f = random.int(fields.length);
      fields[f] = pick(random, TOKENS);
      lines[line] = fields.join("");
      return lines.join("\n");
    }
    default: { // repeat a field of the header (duplicate column names)
      const fields = lines[0].split(/([\s,;]+)/);
      const f = random.int(fields.length);
      fields.splice(f, 0, fields[f], fields[Math.min(f + 1, fields.length - 1)] ?? " ");
      lines[0] = fields.join("");
      return lines.join("\n");
    }
  }
}

function mutate(text: string, random: Random): string {
  const edits = 1 + random.int(4);
  for (let e = 0; e < edits; e++) text = mutateOnce(text, random);
  return text;
}

const NDBC_COLUMNS = ["WVHT", "DPD", "APD", "WSPD", "PRES", "TIDE", "PTDY", "WD", "NOPE"];
const CSV_COLUMNS = ["WVHT", "DPD", "hs", "tp", "note", "x"];

function ndbcOptions(random: Random): NdbcOptions {
  const options: NdbcOptions = { strict: random.int(4) === 0 };
  if (random.int(2)) {
    options.columns = NDBC_COLUMNS.filter(() => random.int(3) === 0);
  }
  return options;
}

function csvOptions(random: Random, sample: number): CsvSeriesOptions {
  const options: CsvSeriesOptions = {
    strict: random.int(4) === 0,
    delimiter: sample === 1 ? ";" : ",",
    timeFormat: pick(random, ["auto", "iso", "epoch-s", "epoch-ms"] as const),
  };
  if (random.int(3) === 0) options.columns = CSV_COLUMNS.filter(() => random.int(3) === 0);
  return options;
}

// ---------------------------------------------------------------------------------------------
// One case

/** Why `r` is not a well-formed result, or undefined when it is. */
function malformed(r: ReadResult): string | undefined {
  const { times, columns } = r.series;
  if (r.rows !== times.length) return `rows ${r.rows} but ${times.length} times`;
  for (let i = 0; i < times.length; i++) {
    if (!Number.isFinite(times[i])) return `times[${i}] is ${times[i]}`;
    if (i > 0 && times[i] < times[i - 1]) return `times decrease at ${i}`;
  }
  for (const [name, col] of Object.entries(columns)) {
    if (col.length !== times.length) return `column ${name} has ${col.length} values`;
    for (let i = 0; i < col.length; i++) {
      if (col[i] === Infinity || col[i] === -Infinity) return `column ${name}[${i}] is ${col[i]}`;
    }
  }
  for (const issue of r.issues) {
    if (typeof issue.reason !== "string" || !Number.isInteger(issue.line) || issue.line < 0) {
      return `bad issue ${JSON.stringify(issue)}`;
    }
  }
  return undefined;
}

type Outcome = "clean" | "issues" | "RangeError" | "TypeError" | "failure";

interface CaseResult {
  outcome: Outcome;
  ms: number;
  detail?: string;
}

function runCase(parser: "ndbc" | "csv", index: number): CaseResult {
  const random = Random.seeded(SEED, (parser === "ndbc" ? 0 : 1_000_000) + index);
  const samples = parser === "ndbc" ? NDBC_SAMPLES : CSV_SAMPLES;
  const sample = random.int(samples.length);
  const text = mutate(samples[sample], random);
  const start = performance.now();
  let outcome: Outcome;
  let detail: string | undefined;
  try {
    const r = parser === "ndbc"
      ? parseNdbcStdmet(text, "fuzz.txt", ndbcOptions(random))
      : parseCsvSeries(text, "fuzz.csv", csvOptions(random, sample));
    detail = malformed(r);
    outcome = detail !== undefined ? "failure" : r.issues.length === 0 ? "clean" : "issues";
  } catch (error) {
    if (error instanceof RangeError || error instanceof TypeError) {
      outcome = error.constructor.name as Outcome;
      if (!/fuzz\.(txt|csv)|Option /.test(error.message)) {
        outcome = "failure";
        detail = `${error.name} names neither the file nor the option: ${error.message}`;
      }
    } else {
      outcome = "failure";
      detail = `${(error as Error)?.name}: ${(error as Error)?.message}`;
    }
  }
  const ms = performance.now() - start;
  if (ms > CASE_LIMIT_MS) {
    outcome = "failure";
    detail = `took ${ms.toFixed(0)} ms`;
  }
  if (detail !== undefined) detail = `${parser} case ${index}: ${detail}\n${JSON.stringify(text)}`;
  return { outcome, ms, detail };
}

// ---------------------------------------------------------------------------------------------
// Worker side and test side

interface Progress {
  parser: "ndbc" | "csv";
  done: number;
  counts?: Record<Outcome, number>;
  slowest?: number;
  failures?: string[];
}

const inWorker = typeof (globalThis as { WorkerGlobalScope?: unknown }).WorkerGlobalScope !==
  "undefined";

if (inWorker) {
  const post = (message: Progress): void =>
    (globalThis as unknown as { postMessage(m: Progress): void }).postMessage(message);
  post({ parser: "ndbc", done: -1 }); // started
  for (const parser of ["ndbc", "csv"] as const) {
    const counts: Record<Outcome, number> = {
      clean: 0,
      issues: 0,
      RangeError: 0,
      TypeError: 0,
      failure: 0,
    };
    const failures: string[] = [];
    let slowest = 0;
    for (let i = 0; i < CASES_PER_PARSER; i++) {
      const r = runCase(parser, i);
      counts[r.outcome]++;
      slowest = Math.max(slowest, r.ms);
      if (r.detail !== undefined && failures.length < 5) failures.push(r.detail);
      if (i % 50 === 0) post({ parser, done: i });
    }
    post({ parser, done: CASES_PER_PARSER, counts, slowest, failures });
  }
} else {
  Deno.test("fuzz: 3,000 mutated NDBC and CSV files give ReadIssues or typed errors, never hang", async () => {
    const worker = new Worker(import.meta.url, { type: "module", name: "fuzz_ndbc_csv" });
    const finals: Progress[] = [];
    try {
      await new Promise<void>((resolve, reject) => {
        let last: Progress = { parser: "ndbc", done: -1 };
        let timer: ReturnType<typeof setTimeout> | undefined;
        const arm = (ms: number): void => {
          clearTimeout(timer);
          timer = setTimeout(() => {
            reject(
              new Error(
                last.done < 0
                  ? `the fuzz worker did not start within ${ms} ms`
                  : `the fuzz worker reported nothing for ${ms} ms after ${last.parser} case ` +
                    `${last.done} (a hang in one of the next 50 cases)`,
              ),
            );
          }, ms);
        };
        arm(STARTUP_LIMIT_MS);
        worker.onmessage = (event: MessageEvent<Progress>) => {
          last = event.data;
          arm(SILENCE_LIMIT_MS);
          if (event.data.counts) finals.push(event.data);
          if (finals.length === 2) {
            clearTimeout(timer);
            resolve();
          }
        };
        worker.onerror = (event: ErrorEvent) => {
          event.preventDefault();
          clearTimeout(timer);
          reject(new Error(`the fuzz worker failed: ${event.message}`));
        };
      });
    } finally {
      worker.terminate();
    }
    for (const f of finals) {
      console.log(
        `${f.parser}: ${CASES_PER_PARSER} cases: ${JSON.stringify(f.counts)}, slowest ${
          f.slowest!.toFixed(1)
        } ms`,
      );
    }
    for (const f of finals) {
      assert.deepEqual(f.failures, [], `${f.parser} failures`);
      assert.equal(f.counts!.failure, 0);
      const total = Object.values(f.counts!).reduce((a, b) => a + b, 0);
      assert.equal(total, CASES_PER_PARSER);
      // The mutations reach past the header: some files still read, some give issues.
      assert.ok(f.counts!.clean > 0 && f.counts!.issues > 0, JSON.stringify(f.counts));
    }
  });
}
