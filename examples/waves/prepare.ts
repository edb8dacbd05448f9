/**
 * The wave experiment's data, shared by `main.ts` and `investigate.ts`: read NDBC files or CSVs
 * (default: the committed 46035 series), resample hourly, cut gap-free windows of `length` hours
 * with the WVHT `horizon` hours later as the target, split chronologically by whole years
 * (for the committed data train ≤ 2008, validation 2009–2011, test 2014–2017; for other data
 * years given by the caller or derived from the data's span) and scale by the training split's
 * min–max. {@linkcode pretrainInputs} gathers the extra series a DDPM may be pre-trained on,
 * cut off before the target's validation years.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import {
  chronologicalSplit,
  deriveYearSplit,
  interpolateGaps,
  makeWindows,
  MinMaxScaler,
  ndbcStationId,
  readCsvSeries,
  readNdbcStdmet,
  type ReadResult,
  resampleHourly,
  selectWindows,
  type TimeSeries,
  type Windows,
  windowsToArrays,
  type YearSplit,
  yearSplitBounds,
} from "../../mod.ts";

/** The committed series, and its split years (kept as the experiment has always used them). */
export const COMMITTED_DATA = new URL("./data/46035_hourly.csv.gz", import.meta.url).pathname;
/** Split years of the committed 46035 series (2012–2013 hold almost no data). */
export const COMMITTED_YEARS: Readonly<YearSplit> = Object.freeze({
  trainUntil: 2008,
  valUntil: 2011,
  testFrom: 2014,
  testUntil: 2017,
});

/** Bad input found while preparing the data (a CLI answers it with its usage and exit 2). */
export class WaveDataError extends Error {
  override name = "WaveDataError";
}

/** What {@linkcode prepareWaves} reads and how it cuts windows. */
export interface WaveDataOptions {
  /** NDBC files, folders or CSVs; default the committed 46035 series. */
  data?: string[];
  /** Input hours L. */
  length: number;
  /** Lead time h in hours. */
  horizon: number;
  /** Input channels; WVHT is always first (it is also the target). */
  channels: string[];
  /** Fill missing runs up to this many hours linearly (0: strict, no window spans a gap). */
  interpolateGaps?: number;
  /** Thin the splits (every 12th train, 4th validation, 8th test window). */
  quick?: boolean;
  /**
   * Split years to use; missing ones are derived from the data ({@linkcode deriveYearSplit}), or
   * for the committed series taken from {@linkcode COMMITTED_YEARS}. `testUntil` defaults to the
   * last year with a window.
   */
  years?: Partial<YearSplit>;
  /** The station id; default: the one the `data` paths name (`ndbcStationId`). */
  station?: string;
}

/** One split as flat arrays: inputs `[n, L, C]` and targets `[n]`, both min–max scaled. */
export interface WaveSplit {
  windows: Windows;
  inputs: Float32Array;
  targets: Float32Array;
  n: number;
}

/** The prepared experiment data. */
export interface WaveData {
  channels: string[];
  train: WaveSplit;
  val: WaveSplit;
  test: WaveSplit;
  scaler: MinMaxScaler;
  /** The training split's WVHT range in metres (normalised MSE × range² = m²). */
  wvhtRange: number;
  /** Windows straddling a split boundary (dropped). */
  straddling: number;
  /** The split years used. */
  years: YearSplit;
  /** Where each split year came from: given, derived from the data, or the committed default. */
  yearSources: Record<keyof YearSplit, "given" | "derived" | "committed">;
  /** The station id (given, or named by the data paths), or `undefined` if nothing names one. */
  station: string | undefined;
}

/** Reads NDBC files (or folders of them) or CSVs with a `time` column into one series. */
export async function readWaveSeries(
  sources: string[],
  channels: string[],
): Promise<ReadResult> {
  const isCsv = sources.every((p) => /\.csv(\.gz)?$/.test(p));
  const read = isCsv
    ? await readCsvSeries(sources, { timeColumn: "time", columns: channels })
    : await readNdbcStdmet(sources.length === 1 ? sources[0] : sources, { columns: channels });
  for (const issue of read.issues.slice(0, 10)) {
    console.error(`warning: ${issue.file}:${issue.line}: ${issue.reason}`);
  }
  if (read.issues.length > 10) {
    console.error(`warning: … ${read.issues.length - 10} more malformed lines`);
  }
  return read;
}

/** The one station id `paths` name, `undefined` if none does; throws if they name several. */
export function stationOf(paths: string[], flag = "--data"): string | undefined {
  const ids = [...new Set(paths.map((p) => ndbcStationId(p)).filter((s) => s !== undefined))];
  if (ids.length > 1) {
    throw new WaveDataError(
      `${flag} names several stations (${ids.join(", ")}); give one station's files, or --station`,
    );
  }
  return ids[0];
}

const yearOf = (ms: number): number => new Date(ms).getUTCFullYear();

/**
 * The split years: the given ones, the rest from the committed defaults (committed data) or
 * derived from the windows' target times; checked for order.
 */
function splitYears(
  all: Windows,
  given: Partial<YearSplit>,
  committed: boolean,
): { years: YearSplit; yearSources: WaveData["yearSources"] } {
  if (all.size === 0) {
    throw new WaveDataError(
      `the data hold no gap-free window of ${all.length} h plus ${all.horizon} h lead time`,
    );
  }
  const lastYear = yearOf(all.targetTimes[all.size - 1]);
  let fallback: YearSplit;
  if (committed) fallback = { ...COMMITTED_YEARS };
  else {
    try {
      fallback = { ...deriveYearSplit(all.targetTimes), testUntil: lastYear };
    } catch (e) {
      if (Object.values(given).filter((v) => v !== undefined).length < 3) {
        throw new WaveDataError(
          `${(e as Error).message}; give --train-until, --val-until and --test-from`,
        );
      }
      fallback = { trainUntil: 0, valUntil: 0, testFrom: 0, testUntil: lastYear };
    }
  }
  const years = { ...fallback };
  const yearSources = {} as WaveData["yearSources"];
  for (const key of Object.keys(fallback) as (keyof YearSplit)[]) {
    const v = given[key];
    if (v !== undefined) years[key] = v;
    yearSources[key] = v !== undefined ? "given" : committed ? "committed" : "derived";
  }
  if (years.testUntil < years.testFrom) years.testUntil = years.testFrom;
  if (!(years.trainUntil < years.valUntil && years.valUntil < years.testFrom)) {
    throw new WaveDataError(
      `split years out of order: train until ${years.trainUntil}, validation until ` +
        `${years.valUntil}, test from ${years.testFrom} (${describe(yearSources)}); need ` +
        `--train-until < --val-until < --test-from`,
    );
  }
  return { years, yearSources };
}

const describe = (s: WaveData["yearSources"]): string =>
  Object.entries(s).filter(([k]) => k !== "testUntil").map(([k, v]) => `${k} ${v}`).join(", ");

/** "2009–2011" or "2009". */
export function yearRange(from: number, until: number): string {
  return from === until ? `${from}` : `${from}–${until}`;
}

/** Reads, windows, splits and scales the wave data (see the module doc). */
export async function prepareWaves(options: WaveDataOptions): Promise<WaveData> {
  const channels = [...options.channels];
  if (channels[0] !== "WVHT") channels.unshift("WVHT");
  const sources = options.data ?? [COMMITTED_DATA];
  const station = options.station ?? stationOf(sources);
  const read = await readWaveSeries(sources, channels);
  let series: TimeSeries = resampleHourly(read.series);
  const maxGap = options.interpolateGaps ?? 0;
  if (maxGap > 0) series = interpolateGaps(series, { maxGap });
  const all = makeWindows(series, {
    input: channels,
    target: "WVHT",
    length: options.length,
    horizon: options.horizon,
  });
  const { years, yearSources } = splitYears(all, options.years ?? {}, options.data === undefined);
  const split = chronologicalSplit(all, yearSplitBounds(years));
  const named: [string, Windows, number, number][] = [
    ["training", split.train, -Infinity, years.trainUntil],
    ["validation", split.val, years.trainUntil + 1, years.valUntil],
    ["test", split.test, years.testFrom, years.testUntil],
  ];
  for (const [name, w, from, until] of named) {
    if (w.size > 0) continue;
    const span = `${yearOf(all.targetTimes[0])}–${yearOf(all.targetTimes[all.size - 1])}`;
    throw new WaveDataError(
      `the ${name} split (${from === -Infinity ? `until ${until}` : yearRange(from, until)}) ` +
        `holds no window: the data's ${all.size} windows have targets in ${span} (split years ` +
        `${describe(yearSources)}); choose --train-until, --val-until and --test-from inside it`,
    );
  }
  const thin = (w: Windows, k: number): Windows =>
    !options.quick || k <= 1
      ? w
      : selectWindows(w, Int32Array.from({ length: Math.ceil(w.size / k) }, (_, i) => i * k));
  const train = thin(split.train, 12), val = thin(split.val, 4), test = thin(split.test, 8);
  const scaler = MinMaxScaler.fit(train);
  const arrays = (windows: Windows): WaveSplit => {
    const { inputs, targets } = windowsToArrays(windows, { scaler });
    return { windows, inputs, targets, n: windows.size };
  };
  return {
    channels,
    train: arrays(train),
    val: arrays(val),
    test: arrays(test),
    scaler,
    wvhtRange: scaler.max.WVHT - scaler.min.WVHT,
    straddling: split.straddling,
    years,
    yearSources,
    station,
  };
}

/** One pre-training source of {@linkcode pretrainInputs}. */
export interface PretrainSource {
  /** The path given. */
  path: string;
  /** Its station id, if the path names one. */
  station: string | undefined;
  /** Windows taken (after `quick` thinning). */
  windows: number;
  /** Windows left out because an input lies outside the target's training range (a storm). */
  outOfRange: number;
  /** First and last input hour of those windows (ISO UTC), `null` when none. */
  from: string | null;
  until: string | null;
}

/** Options of {@linkcode pretrainInputs}. */
export interface PretrainOptions {
  /** Input hours L. */
  length: number;
  /** Input channels (WVHT first), as the target's. */
  channels: string[];
  /** The target's scaler: every station is scaled to the target's metres-to-[0, 1] map. */
  scaler: MinMaxScaler;
  /**
   * Only windows whose every input hour is before this time (ms UTC) are taken: the start of
   * the target's validation years, so no window of the target's validation or test years (of
   * any station) reaches pre-training.
   */
  before: number;
  /** Fill missing runs up to this many hours linearly (0: strict). */
  interpolateGaps?: number;
  /** Thin to every 12th window, as the target's training split is thinned. */
  quick?: boolean;
}

/**
 * The inputs `[n, L, C]` (scaled by the target's scaler) of every gap-free window of the
 * pre-training `sources` (each a station's files, a folder of them, or a CSV) that ends before
 * `options.before` and lies within the target's training range (scaled to [0, 1]; windows beyond
 * it are counted in `outOfRange`), concatenated in source order. The DDPM sees inputs only, so no target
 * is needed; windows are cut with a 1-hour lead so that their last input hour is before the
 * window's (unused) target hour, which must also be before `before`.
 */
export async function pretrainInputs(
  sources: string[],
  options: PretrainOptions,
): Promise<{ inputs: Float32Array; n: number; sources: PretrainSource[] }> {
  const channels = [...options.channels];
  const parts: Float32Array[] = [];
  const described: PretrainSource[] = [];
  const hour = 3_600_000;
  for (const path of sources) {
    const read = await readWaveSeries([path], channels);
    let series: TimeSeries = resampleHourly(read.series);
    if ((options.interpolateGaps ?? 0) > 0) {
      series = interpolateGaps(series, { maxGap: options.interpolateGaps! });
    }
    const all = makeWindows(series, {
      input: channels,
      target: "WVHT",
      length: options.length,
      horizon: 1,
    });
    const keep: number[] = [];
    for (let k = 0; k < all.size; k++) {
      if (all.targetTimes[k] < options.before) keep.push(k);
    }
    const thinned = options.quick ? keep.filter((_, i) => i % 12 === 0) : keep;
    // The DDPM trains on [-1, 1]: windows with a value beyond the target's training range (in
    // metres, e.g. a 17 m storm against 46035's 10.8 m) are left out, not clipped or rescaled.
    const scaled = windowsToArrays(selectWindows(all, thinned), { scaler: options.scaler }).inputs;
    const span = options.length * channels.length;
    const inRange: number[] = [];
    for (let k = 0; k < thinned.length; k++) {
      let ok = true;
      for (let j = k * span; j < (k + 1) * span && ok; j++) ok = scaled[j] >= 0 && scaled[j] <= 1;
      if (ok) inRange.push(k);
    }
    const windows = selectWindows(all, inRange.map((k) => thinned[k]));
    const inputs = new Float32Array(inRange.length * span);
    inRange.forEach((k, i) => inputs.set(scaled.subarray(k * span, (k + 1) * span), i * span));
    parts.push(inputs);
    const first = windows.size > 0 ? series.times[windows.starts[0]] : NaN;
    const last = windows.size > 0 ? windows.targetTimes[windows.size - 1] - hour : NaN;
    described.push({
      path,
      station: ndbcStationId(path),
      windows: windows.size,
      outOfRange: thinned.length - inRange.length,
      from: windows.size > 0 ? new Date(first).toISOString() : null,
      until: windows.size > 0 ? new Date(last).toISOString() : null,
    });
  }
  const n = described.reduce((a, s) => a + s.windows, 0);
  const inputs = new Float32Array(parts.reduce((a, p) => a + p.length, 0));
  let at = 0;
  for (const p of parts) {
    inputs.set(p, at);
    at += p.length;
  }
  return { inputs, n, sources: described };
}

/** Windows as diffusion inputs `[n, L, C]`: min–max scaled to [0, 1], then to [-1, 1]. */
export function toSignal(split: WaveSplit, length: number, channels: number): tf.Tensor3D {
  return tf.tidy(() =>
    tf.sub(tf.mul(tf.tensor3d(split.inputs, [split.n, length, channels]), 2), 1)
  );
}
