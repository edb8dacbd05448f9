/**
 * Regenerates the wave experiment's default dataset, `examples/waves/data/<station>_hourly.csv.gz`,
 * from raw NDBC standard meteorological files (`<station>hYYYY.txt`).
 *
 * ```sh
 * deno run --allow-read --allow-write=examples/waves/data \
 *   examples/waves/make_data.ts ../shared/data/ndbc-46035
 * ```
 *
 * Derivation: read every file (`readNdbcStdmet`, sentinels → missing), keep WVHT, DPD, APD and
 * WSPD, average the readings of each UTC hour (`resampleHourly`), drop the hours where all four
 * are missing, round to 2 decimals, write `time,WVHT,DPD,APD,WSPD` with ISO times
 * (`1985-09-13T20:00Z`) and empty cells for missing values, and gzip it. The script prints the
 * row count, the SHA-256 of the uncompressed CSV and summary statistics, and refuses to write if
 * any line of the input is malformed.
 *
 * @module
 */

import { basename } from "node:path";
import { readNdbcStdmet, resampleHourly, type TimeSeries } from "../../mod.ts";

/** The channels the default dataset keeps, in file order. */
export const WAVE_CHANNELS: readonly string[] = ["WVHT", "DPD", "APD", "WSPD"];

/**
 * Formats an hourly series as the default dataset's CSV: a `time,<channels>` header, one row per
 * hour with at least one valid value, ISO times to the minute with `Z`, values rounded to 2
 * decimals without trailing zeros, empty cells for `NaN`.
 *
 * @example
 * ```ts
 * import { hourlyCsv } from "./make_data.ts";
 *
 * const csv = hourlyCsv({
 *   times: new Float64Array([Date.UTC(2017, 0, 1, 0), Date.UTC(2017, 0, 1, 1)]),
 *   columns: { WVHT: new Float32Array([2.74, NaN]), DPD: new Float32Array([9.09, NaN]) },
 * }, ["WVHT", "DPD"]);
 * console.log(csv); // "time,WVHT,DPD\n2017-01-01T00:00Z,2.74,9.09\n"
 * ```
 *
 * @param series An hourly series holding `channels`.
 * @param channels Columns to write, in order.
 * @returns The CSV text (LF line ends, final newline).
 */
export function hourlyCsv(series: TimeSeries, channels: readonly string[]): string {
  const cols = channels.map((c) => {
    const col = series.columns[c];
    if (!col) throw new RangeError(`The series has no channel "${c}"`);
    return col;
  });
  const out: string[] = [`time,${channels.join(",")}\n`];
  for (let i = 0; i < series.times.length; i++) {
    let any = false;
    const cells = cols.map((col) => {
      const v = col[i];
      if (Number.isNaN(v)) return "";
      any = true;
      return String(Math.round(v * 100) / 100);
    });
    if (!any) continue;
    const iso = new Date(series.times[i]).toISOString().slice(0, 16) + "Z";
    out.push(`${iso},${cells.join(",")}\n`);
  }
  return out.join("");
}

/**
 * Reads raw NDBC files and returns the default dataset's CSV text and the hourly series it was
 * made from.
 *
 * @example
 * ```ts ignore
 * import { deriveWaveCsv } from "./make_data.ts";
 *
 * const { csv } = await deriveWaveCsv("../shared/data/ndbc-46035");
 * ```
 *
 * @param source A directory of NDBC files or a list of them.
 * @returns The CSV, the hourly series, the station id (from the first file name) and the files.
 * @throws {RangeError} If any input line is malformed (strict reading).
 */
export async function deriveWaveCsv(
  source: string | readonly string[],
): Promise<{ csv: string; hourly: TimeSeries; station: string; files: string[] }> {
  const read = await readNdbcStdmet(source, { columns: WAVE_CHANNELS, strict: true });
  const hourly = resampleHourly(read.series);
  const station = /^([0-9a-z]+)h\d{4}\.txt/i.exec(read.files[0])?.[1] ?? "ndbc";
  return { csv: hourlyCsv(hourly, WAVE_CHANNELS), hourly, station, files: read.files };
}

async function gzip(text: string): Promise<Uint8Array> {
  const stream = new Blob([text]).stream().pipeThrough(new CompressionStream("gzip"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

async function sha256(text: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

if (import.meta.main) {
  const source = Deno.args[0];
  if (!source) {
    console.error(
      "Usage: deno run --allow-read --allow-write=examples/waves/data " +
        "examples/waves/make_data.ts <dir of NDBC <station>hYYYY.txt files>",
    );
    Deno.exit(2);
  }
  const { csv, hourly, station, files } = await deriveWaveCsv(source);
  const bytes = await gzip(csv);
  const out = new URL(`./data/${station}_hourly.csv.gz`, import.meta.url);
  await Deno.writeFile(out, bytes);
  const rows = csv.split("\n").length - 2;
  const wvht = Array.from(hourly.columns.WVHT).filter((v) => !Number.isNaN(v)).sort((a, b) =>
    a - b
  );
  const mid = wvht.length >> 1;
  const median = wvht.length % 2 ? wvht[mid] : (wvht[mid - 1] + wvht[mid]) / 2;
  console.log(`files: ${files.length} (${files[0]} … ${files.at(-1)})`);
  console.log(
    `wrote ${basename(out.pathname)}: ${bytes.length} bytes gzipped, ${csv.length} bytes CSV`,
  );
  console.log(`rows: ${rows} hours with at least one value`);
  for (const c of WAVE_CHANNELS) {
    const n = hourly.columns[c].filter((v) => !Number.isNaN(v)).length;
    console.log(`valid ${c}: ${n}`);
  }
  console.log(
    `WVHT: median ${median.toFixed(2)} m, min ${wvht[0].toFixed(2)} m, max ${
      wvht.at(-1)!.toFixed(2)
    } m`,
  );
  console.log(
    `span: ${new Date(hourly.times[0]).toISOString()} … ${
      new Date(hourly.times.at(-1)!).toISOString()
    }`,
  );
  console.log(`sha256 of the CSV: ${await sha256(csv)}`);
}
