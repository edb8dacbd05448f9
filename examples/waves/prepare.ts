/**
 * The wave experiment's data, shared by `main.ts` and `investigate.ts`: read NDBC files or CSVs
 * (default: the committed 46035 series), resample hourly, cut gap-free windows of `length` hours
 * with the WVHT `horizon` hours later as the target, split chronologically (train ≤ 2008,
 * validation 2009–2011, test 2014–2017) and scale by the training split's min–max.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import {
  chronologicalSplit,
  interpolateGaps,
  makeWindows,
  MinMaxScaler,
  readCsvSeries,
  readNdbcStdmet,
  resampleHourly,
  selectWindows,
  type TimeSeries,
  type Windows,
  windowsToArrays,
} from "../../mod.ts";

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
}

/** Reads, windows, splits and scales the wave data (see the module doc). */
export async function prepareWaves(options: WaveDataOptions): Promise<WaveData> {
  const channels = [...options.channels];
  if (channels[0] !== "WVHT") channels.unshift("WVHT");
  const sources = options.data ??
    [new URL("./data/46035_hourly.csv.gz", import.meta.url).pathname];
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
  let series: TimeSeries = resampleHourly(read.series);
  const maxGap = options.interpolateGaps ?? 0;
  if (maxGap > 0) series = interpolateGaps(series, { maxGap });
  const all = makeWindows(series, {
    input: channels,
    target: "WVHT",
    length: options.length,
    horizon: options.horizon,
  });
  const split = chronologicalSplit(all, {
    trainEnd: "2009",
    valEnd: "2012",
    testStart: "2014",
    testEnd: "2018",
  });
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
  };
}

/** Windows as diffusion inputs `[n, L, C]`: min–max scaled to [0, 1], then to [-1, 1]. */
export function toSignal(split: WaveSplit, length: number, channels: number): tf.Tensor3D {
  return tf.tidy(() =>
    tf.sub(tf.mul(tf.tensor3d(split.inputs, [split.n, length, channels]), 2), 1)
  );
}
