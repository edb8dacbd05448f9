/**
 * The wave example beyond station 46035: `deno task waves --quick` end to end on a slice of
 * another NDBC station (tests/fixtures/ndbc/44005, three years of about 41 days each) with the
 * split years derived from the data and the station id read from the folder; an empty split
 * answered by the usage line and exit 2; and the pre-training windows of `--pretrain-data`,
 * which must never include an hour of the target's validation or test years.
 *
 * Needs `--allow-run=deno` (the example runs in its own process, with the task's permissions).
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { MinMaxScaler } from "../mod.ts";
import { pretrainInputs } from "../examples/waves/prepare.ts";
import { type DenoRun, runDeno } from "./_run_deno.ts";

const slice = "tests/fixtures/ndbc/44005";

/** `deno task waves` with the task's permissions, reading the fixture, reading and writing `out`. */
function waves(out: string, ...args: string[]): Promise<DenoRun> {
  return runDeno([
    "run",
    "-q",
    `--allow-read=examples/waves/data,data,node_modules,out,${slice},${out}`,
    `--allow-write=${out}`,
    "--allow-ffi=node_modules",
    "examples/waves/main.ts",
    "--out",
    out,
    ...args,
  ]);
}

Deno.test("deno task waves --quick on another station: derived split years, its id in the results", async () => {
  const out = await Deno.makeTempDir({ prefix: "diffprobe-waves-" });
  try {
    const r = await waves(out, "--quick", "--data", slice);
    assert.equal(r.code, 0, r.stderr);
    assert.match(
      r.stderr,
      /station 44005; split years \(trainUntil derived, valUntil derived, testFrom derived, testUntil derived\): train ≤2008, validation 2009, test 2010/,
    );
    assert.match(r.stdout, /Wave height 6 h ahead at station 44005 .*\(test 2010, \d+ windows\)/);
    const results = JSON.parse(await Deno.readTextFile(join(out, "results.json")));
    assert.equal(results.station, "44005");
    assert.deepEqual(
      [results.years.trainUntil, results.years.valUntil, results.years.testFrom],
      [2008, 2009, 2010],
    );
    assert.equal(results.years.sources.trainUntil, "derived");
    assert.deepEqual(
      results.methods.map((m: { name: string }) => m.name),
      ["persistence", "linear", "mlp", "probe"],
    );
    for (const m of results.methods) assert.ok(Number.isFinite(m.mse) && m.mse > 0, m.name);
    assert.ok(results.windows.train > 0 && results.windows.val > 0 && results.windows.test > 0);
    const svg = await Deno.readTextFile(join(out, "predictions.svg"));
    assert.ok(svg.includes("station 44005"));
  } finally {
    await Deno.remove(out, { recursive: true });
  }
});

Deno.test("an empty split: usage line, one error naming the split and the years, exit 2", async () => {
  const out = await Deno.makeTempDir({ prefix: "diffprobe-waves-" });
  try {
    const r = await waves(out, "--quick", "--data", slice, "--test-from", "2012");
    assert.equal(r.code, 2, r.stderr);
    const lines = r.stderr.trim().split("\n");
    assert.ok(lines.some((l) => l.startsWith("Usage: deno task waves")), r.stderr);
    const errors = lines.filter((l) => l.startsWith("error: "));
    assert.equal(errors.length, 1, r.stderr);
    assert.match(errors[0], /the test split \(2012\) holds no window/);
    assert.match(errors[0], /targets in 2008–2010/);
    assert.ok(!r.stderr.includes("Uncaught"), r.stderr);
    const order = await waves(out, "--quick", "--data", slice, "--train-until", "2009");
    assert.equal(order.code, 2, order.stderr);
    assert.match(
      order.stderr,
      /error: split years out of order: train until 2009, validation until 2009/,
    );
  } finally {
    await Deno.remove(out, { recursive: true });
  }
});

/** An NDBC file of hourly rows through `year`, WVHT = the year's last two digits + hour/10⁵. */
function ndbcYear(year: number): string {
  const lines = [
    "#YY  MM DD hh mm WDIR WSPD GST  WVHT   DPD   APD MWD   PRES  ATMP  WTMP  DEWP  VIS  TIDE",
  ];
  lines.push(
    "#yr  mo dy hr mn degT m/s  m/s     m   sec   sec degT   hPa  degC  degC  degC  nmi    ft",
  );
  const two = (n: number) => String(n).padStart(2, "0");
  for (let t = Date.UTC(year, 0, 1); t < Date.UTC(year + 1, 0, 1); t += 3_600_000) {
    const d = new Date(t);
    const wvht = (year - 2000 + d.getUTCHours() / 1e5).toFixed(5);
    lines.push(
      `${year} ${two(d.getUTCMonth() + 1)} ${two(d.getUTCDate())} ${two(d.getUTCHours())} 00 ` +
        `230 14.5 18.1 ${wvht} 13.79 9.74 125 985.7 2.7 3.9 999.0 99.0 99.00`,
    );
  }
  return lines.join("\n") + "\n";
}

Deno.test("pre-training windows end before the target's validation years, in every source", async () => {
  const dir = await Deno.makeTempDir({ prefix: "diffprobe-pretrain-" });
  try {
    // The target station's own files through its test years, and another station's.
    for (const [station, years] of [["46035", [2007, 2008, 2009, 2010]], ["44005", [2008, 2009]]]) {
      await Deno.mkdir(join(dir, station as string));
      for (const y of years as number[]) {
        await Deno.writeTextFile(join(dir, station as string, `${station}h${y}.txt`), ndbcYear(y));
      }
    }
    const scaler = new MinMaxScaler({ WVHT: 0 }, { WVHT: 20 });
    const before = Date.UTC(2009, 0, 1); // validation from 2009 (train until 2008)
    const L = 24;
    const got = await pretrainInputs([join(dir, "46035"), join(dir, "44005")], {
      length: L,
      channels: ["WVHT"],
      scaler,
      before,
    });
    // 46035: 2007–2008 hourly = 17,544 rows; a window needs L inputs and its 1-hour target
    // before 2009: 17,544 − 24 windows. 44005: 2008 only, 8,784 − 24.
    assert.deepEqual(got.sources.map((s) => [s.station, s.windows]), [
      ["46035", 17_544 - L],
      ["44005", 8_784 - L],
    ]);
    assert.equal(got.n, 17_544 - L + 8_784 - L);
    assert.equal(got.inputs.length, got.n * L);
    assert.deepEqual(got.sources.map((s) => s.until), [
      "2008-12-31T22:00:00.000Z",
      "2008-12-31T22:00:00.000Z",
    ]);
    // No input value from 2009 or 2010 (WVHT 9.x, 10.x → scaled ≥ 0.45).
    let max = 0;
    for (const v of got.inputs) max = Math.max(max, v);
    assert.ok(max < 9 / 20, `an input from the validation or test years: ${max * 20} m`);
    assert.ok(Math.abs(max - (8 + 23 / 1e5) / 20) < 1e-6); // the last hour of 2008 is there
    // --quick thins every source to every 12th window.
    const quick = await pretrainInputs([join(dir, "44005")], {
      length: L,
      channels: ["WVHT"],
      scaler,
      before,
      quick: true,
    });
    assert.equal(quick.n, Math.ceil((8_784 - L) / 12));
    // Windows beyond the target's training range (here 0–7.5 m) are left out, not clipped:
    // only the 8,737 windows with every input hour in 2007 (7.x m) remain.
    const narrow = await pretrainInputs([join(dir, "46035")], {
      length: L,
      channels: ["WVHT"],
      scaler: new MinMaxScaler({ WVHT: 0 }, { WVHT: 7.5 }),
      before,
    });
    assert.equal(narrow.n, 8_760 - L + 1);
    assert.equal(narrow.sources[0].outOfRange, 17_544 - L - (8_760 - L + 1));
    assert.equal(narrow.sources[0].until, "2007-12-31T23:00:00.000Z");
    assert.ok(narrow.inputs.every((v) => v >= 0 && v <= 1));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
