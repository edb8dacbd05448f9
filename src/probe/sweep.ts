/**
 * Sweeps: a probe at every point of a t × block grid, each point a fresh head, with the forward
 * passes shared (all blocks at one `t` come out of one pass) and the feature cache used. The rows
 * can be rendered as an SVG heatmap.
 *
 * @example
 * ```ts ignore
 * import { LinearHead, loadBackbone, freeze, sweep } from "@diffprobe/core";
 *
 * const unet = freeze(await loadBackbone("ddpm-cifar10-32"));
 * const { rows } = await sweep(unet, { train, test }, {
 *   ts: [10, 30, 100], blocks: [13, 17, 24],
 *   head: (inputShape) => new LinearHead({ inputShape, outputs: 10 }),
 *   fit: { epochs: 15 }, heatmap: "out/sweep.svg",
 * });
 * ```
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import type { Backbone, BlockRef } from "../models/unet.ts";
import {
  extractFeatures,
  type ExtractionDevice,
  type ExtractionEngine,
  type FeatureData,
} from "./extract.ts";
import { checkDevice, type Device } from "../base/device.ts";
import type { FeatureCache } from "./feature_cache.ts";
import { type Pooling, tapBlock } from "./tap.ts";
import { heatmapSvg } from "../report/heatmap.ts";
import { writeFileAtomic } from "../base/atomic_write.ts";
import type { TrainEngine } from "../engine/train_engine.ts";

/**
 * What `sweep` needs of a head (LinearHead, MLPHead and AttentionHead all fit); `F` is the
 * options type of its `fit` (a head's `FitOptions`).
 */
export interface SweepHead<F = Record<string, unknown>> {
  /** Trains on features and targets. */
  fit(x: tf.Tensor, y: tf.Tensor | number[], options?: F): Promise<unknown>;
  /** Closed-form ridge regression (LinearHead's), used when the sweep's fit is `"ridge"`. */
  fitRidge?(x: tf.Tensor, y: tf.Tensor | number[], options?: SweepRidgeOptions): Promise<unknown>;
  /** Metrics on held-out features: `{ accuracy, loss }` or `{ mse, mae, loss }`. */
  evaluate(x: tf.Tensor, y: tf.Tensor | number[]): object;
  /** Releases the head's tensors. */
  dispose(): void;
}

/** The options a sweep passes to `fitRidge`. */
export interface SweepRidgeOptions {
  /** Penalties λ to try (one, as a sweep has no validation split). */
  penalties?: readonly number[];
  /** Standardise the features first (default true). */
  standardize?: boolean;
  /** What computes the Gram matrix (see `RidgeOptions.engine`; default `"auto"`). */
  engine?: TrainEngine;
}

/** Fit every head in closed form with `fitRidge` (regression `LinearHead`s). */
export interface SweepRidgeFit extends SweepRidgeOptions {
  /** Closed-form ridge regression. */
  method: "ridge";
}

/** A split: the inputs and their labels or targets. */
export interface SweepSplit {
  /**
   * Images `[N, H, W, C]` or signals `[N, W, C]` in [-1, 1], an iterable of batches that can be
   * iterated again (an array), or a function returning a fresh iterable (for generators such as
   * `() => imageBatches(ds, 64)`): the data is read once per timestep.
   */
  data: FeatureData | (() => FeatureData);
  /** Class indices or regression targets, in the order of `data`. */
  labels: tf.Tensor | number[];
  /** Identifies iterable data in the cache (see `extractFeatures`). */
  dataKey?: string;
  /** Number of samples of an iterable, for progress. */
  total?: number;
}

/** Options of {@linkcode sweep}; `F` is the options type of the heads' `fit`. */
export interface SweepOptions<F = Record<string, unknown>> {
  /** Timesteps (rows). */
  ts: readonly number[];
  /** Blocks (columns), by number or name. */
  blocks: readonly BlockRef[];
  /** Makes a fresh head for a feature shape. */
  head: (inputShape: number[]) => SweepHead<F>;
  /**
   * How every head is fitted: the options of its `fit` (epochs, batch size, learning rate,
   * seed, …: AdamW training), or `{ method: "ridge", penalties: [λ] }` for the closed-form ridge
   * of `fitRidge`.
   */
  fit?: F | SweepRidgeFit;
  /** Pooling of the features (default `"mean"`). */
  pool?: Pooling;
  /** Noise seed (default 0). */
  seed?: number;
  /** Metric reported per point (default `"accuracy"` when evaluate returns it, else `"mse"`). */
  metric?: string;
  /** Forward-pass batch size. */
  batchSize?: number;
  /** Feature cache folder or instance. */
  cache?: string | FeatureCache;
  /** Extraction engine (see `extractFeatures`). */
  engine?: ExtractionEngine;
  /** Where extraction runs (see `extractFeatures`; default `"auto"`). Heads fit as `fit` says. */
  device?: Device;
  /** Allow TF32 maths on CUDA during extraction (default `false`). */
  tf32?: boolean;
  /** Write the heatmap SVG to this path. */
  heatmap?: string;
  /** Title of the heatmap. */
  title?: string;
  /** Called after each extraction batch: `(phase, done, total)`. */
  onProgress?: (phase: string, done: number, total: number | undefined) => void;
  /** Called after each grid point. */
  onPoint?: (row: SweepRow) => void;
}

/** One grid point. */
export interface SweepRow {
  /** Timestep. */
  t: number;
  /** Block number (null for name-only blocks). */
  block: number | null;
  /** Block name. */
  name: string;
  /** The metric's value on the test split. */
  metric: number;
  /** Which metric. */
  metricName: string;
  /** All metrics `evaluate` returned. */
  metrics: Record<string, number>;
  /** Seconds spent fitting and evaluating this head. */
  seconds: number;
}

/** What {@linkcode sweep} returns. */
export interface SweepResult {
  /** Rows in grid order (t-major). */
  rows: SweepRow[];
  /** The best row (highest accuracy or lowest error). */
  best: SweepRow;
  /** The heatmap as SVG text. */
  svg: string;
  /** The engine and device extraction ran on (absent when every feature came from the cache). */
  device?: ExtractionDevice;
}

/** An iterator that is its own iterable (a generator): it can be read only once. */
function oneShot(data: SweepSplit["data"]): boolean {
  if (data instanceof tf.Tensor || typeof data === "function") return false;
  const it = data as Partial<Iterable<unknown> & AsyncIterable<unknown>>;
  const self = it[Symbol.iterator]?.() ?? it[Symbol.asyncIterator]?.();
  return (self as unknown) === data;
}

const LOWER_IS_BETTER = new Set(["mse", "mae", "loss"]);

function isRidge(fit: unknown): fit is SweepRidgeFit {
  return typeof fit === "object" && fit !== null &&
    (fit as { method?: unknown }).method === "ridge";
}

/** Fits one head as the sweep's `fit` says. */
async function fitHead<F>(
  head: SweepHead<F>,
  x: tf.Tensor,
  y: tf.Tensor | number[],
  fit: F | SweepRidgeFit | undefined,
): Promise<void> {
  if (!isRidge(fit)) {
    await head.fit(x, y, fit as F | undefined);
    return;
  }
  if (!head.fitRidge) {
    throw new TypeError(
      'Sweep option fit.method "ridge" needs heads with a fitRidge method (regression LinearHeads)',
    );
  }
  await head.fitRidge(x, y, {
    penalties: fit.penalties,
    standardize: fit.standardize,
    engine: fit.engine,
  });
}

/**
 * Runs a probe at every (t, block) point and returns the rows, the best point and a heatmap.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import * as tf from "@tensorflow/tfjs";
 * import { createBackbone, sweep, type SweepHead } from "@diffprobe/core";
 *
 * // A stand-in head that predicts the mean: enough to show the grid.
 * const meanHead = (): SweepHead => ({
 *   fit: () => Promise.resolve(),
 *   evaluate: () => ({ mse: 1 }),
 *   dispose: () => {},
 * });
 * const unet = createBackbone({ _class_name: "DiffprobeUNet1DModel", in_channels: 1, out_channels: 1,
 *   sample_size: 16, block_out_channels: [8, 8], norm_num_groups: 4, layers_per_block: 1,
 *   down_block_types: ["DownBlock1D", "DownBlock1D"], up_block_types: ["UpBlock1D", "UpBlock1D"] });
 * const x = tf.randomNormal([4, 16, 1]);
 * const { rows } = await sweep(unet, { train: { data: x, labels: [0, 1, 2, 3] }, test: { data: x, labels: [0, 1, 2, 3] } },
 *   { ts: [10, 100], blocks: [1, 2], head: meanHead });
 * assert.deepEqual(rows.map((r) => `${r.t}/${r.block}`), ["10/1", "10/2", "100/1", "100/2"]);
 * x.dispose();
 * unet.dispose();
 * ```
 */
export async function sweep<F = Record<string, unknown>>(
  backbone: Backbone,
  splits: { train: SweepSplit; test: SweepSplit },
  options: SweepOptions<F>,
): Promise<SweepResult> {
  checkSweep(splits, options);
  checkDevice(options.device, "Sweep device");
  const infos = options.blocks.map((b) => backbone.block(b));
  const rows: SweepRow[] = [];
  let ranOn: ExtractionDevice | undefined;
  for (const t of options.ts) {
    const taps = infos.map((info) =>
      tapBlock(t, info.index ?? info.name, {
        pool: options.pool ?? "mean",
        seed: options.seed ?? 0,
        timesteps: backbone.schedule.timesteps,
      })
    );
    const extract = (split: SweepSplit, phase: "train" | "test") =>
      extractFeatures(
        backbone,
        taps,
        typeof split.data === "function" ? split.data() : split.data,
        {
          batchSize: options.batchSize,
          cache: options.cache,
          engine: options.engine,
          device: options.device,
          tf32: options.tf32,
          onDevice: (d) => ranOn = d,
          dataKey: split.dataKey,
          total: split.total,
          onProgress: (d, n) => options.onProgress?.(`t=${t} ${phase}`, d, n),
        },
      );
    const train = await extract(splits.train, "train");
    const test = await extract(splits.test, "test");
    try {
      checkLabelCounts(splits, { train, test }, t);
      for (let i = 0; i < taps.length; i++) {
        const row = await probePoint(
          options,
          [train.get(taps[i].key)!, test.get(taps[i].key)!],
          splits,
        );
        rows.push({ t, block: infos[i].index, name: infos[i].name, ...row });
        options.onPoint?.(rows.at(-1)!);
      }
    } finally {
      tf.dispose([...train.values(), ...test.values()]);
    }
  }
  return { ...(await summarise(rows, options)), device: ranOn };
}

/** Refuses an empty grid, and one-shot iterators that would be read more than once. */
function checkSweep<F>(
  splits: { train: SweepSplit; test: SweepSplit },
  options: SweepOptions<F>,
): void {
  if (options.ts.length === 0 || options.blocks.length === 0) {
    throw new RangeError("A sweep needs at least one timestep and one block");
  }
  for (const [name, split] of Object.entries(splits)) {
    if (oneShot(split.data) && options.ts.length > 1) {
      throw new TypeError(
        `The ${name} split's data is a one-shot iterator (a generator), but a sweep reads it ` +
          `once per timestep (${options.ts.length} times): pass a tensor, an array of batches, ` +
          "or a function returning a fresh iterable",
      );
    }
  }
}

/** Each split's features must have one row per label. */
function checkLabelCounts(
  splits: { train: SweepSplit; test: SweepSplit },
  features: { train: Map<string, tf.Tensor>; test: Map<string, tf.Tensor> },
  t: number,
): void {
  for (const name of ["train", "test"] as const) {
    const n = features[name].values().next().value!.shape[0];
    const labels = splits[name].labels;
    const expected = labels instanceof tf.Tensor ? labels.shape[0] : labels.length;
    if (n !== expected) {
      throw new RangeError(
        `The ${name} split gave ${n} samples at t=${t} but has ${expected} labels`,
      );
    }
  }
}

/** Fits a fresh head on one point's training features and evaluates it on the test ones. */
async function probePoint<F>(
  options: SweepOptions<F>,
  [xTrain, xTest]: [tf.Tensor, tf.Tensor],
  splits: { train: SweepSplit; test: SweepSplit },
): Promise<Omit<SweepRow, "t" | "block" | "name">> {
  const start = performance.now();
  const head = options.head(xTrain.shape.slice(1));
  try {
    await fitHead(head, xTrain, splits.train.labels, options.fit);
    const metrics = head.evaluate(xTest, splits.test.labels) as Record<string, number>;
    const metricName = options.metric ?? ("accuracy" in metrics ? "accuracy" : "mse");
    if (!(metricName in metrics)) {
      throw new RangeError(
        `Metric "${metricName}" is not among the head's metrics: ${Object.keys(metrics)}`,
      );
    }
    const seconds = (performance.now() - start) / 1000;
    return { metric: metrics[metricName], metricName, metrics, seconds };
  } finally {
    head.dispose();
  }
}

/** The best row and the heatmap (written atomically when asked). */
async function summarise<F>(rows: SweepRow[], options: SweepOptions<F>): Promise<SweepResult> {
  const lower = LOWER_IS_BETTER.has(rows[0].metricName);
  const best = rows.reduce((a, b) => (lower ? b.metric < a.metric : b.metric > a.metric) ? b : a);
  const svg = await heatmapSvg(
    rows.map((r) => ({
      t: r.t,
      block: r.block === null ? r.name : `${r.block} ${r.name}`,
      value: r.metric,
    })),
    {
      title: options.title ?? `Probe ${rows[0].metricName} by t and block`,
      valueLabel: rows[0].metricName,
      higherIsBetter: !lower,
      digits: lower ? 4 : 3,
    },
  );
  if (options.heatmap) await writeFileAtomic(options.heatmap, svg);
  return { rows, best, svg };
}
