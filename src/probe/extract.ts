/**
 * Extracting features from a frozen backbone: taps at the same noise level and noise share one
 * forward pass, which stops after the deepest tapped block; the noise of sample `i` depends only
 * on `(seed, i)`, so features do not depend on the batch size; results can be cached on disk and
 * an interrupted extraction resumes. Inputs of any size the UNet accepts (each side a multiple of
 * 2^(levels − 1)) give the block outputs at that size.
 *
 * This module is the cache and batching logic only: each batch leaves TensorFlow.js once, is
 * noised and pooled on JS arrays, and runs through an {@linkcode Extractor} (TensorFlow.js or
 * onnxruntime) that takes and gives JS arrays.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import * as tf from "@tensorflow/tfjs";
 * import { createBackbone, extractFeatures, freeze, tapBlock } from "@diffprobe/core";
 *
 * const unet = freeze(createBackbone({ _class_name: "UNet2DModel", sample_size: 16, block_out_channels: [32, 32],
 *   down_block_types: ["DownBlock2D", "DownBlock2D"], up_block_types: ["UpBlock2D", "UpBlock2D"], norm_num_groups: 8 }));
 * const images = tf.randomUniform([4, 16, 16, 3], -1, 1);
 * const tap = tapBlock(30, 3);
 * const features = await extractFeatures(unet, [tap], images, { batchSize: 2, engine: "tfjs" });
 * assert.deepEqual(features.get(tap.key)!.shape, [4, 32]);
 * tf.dispose([images, ...features.values()]);
 * unet.dispose();
 * ```
 *
 * @module
 */
import { notice } from "../base/notice.ts";
import * as tf from "@tensorflow/tfjs";
import type { Backbone } from "../models/unet.ts";
import type { BlockInfo } from "../models/unet_plan.ts";
import { sha256Hex } from "../io/checksum.ts";
import { integerInRange, nonNegativeInteger, oneOf, positiveInteger } from "../base/validate.ts";
import { createTfjsExtractor, type Extractor } from "../engine/extractor.ts";
import { createOnnxExtractor, type OnnxExtractor } from "../engine/onnx_engine.ts";
import { onnxRuntimeAvailable, ortFfiGranted } from "../engine/ort.ts";
import { chooseDevice } from "../engine/device.ts";
import { checkDevice, type Device, type TfjsDevice, tfjsDevice } from "../base/device.ts";
import { FeatureCache } from "./feature_cache.ts";
import { type Tap, tapKey } from "./tap.ts";
import { addPooled, pooledShape } from "./_pool.ts";
import { noisedBatch } from "./_noised.ts";
import { checksumOfWeights, entryName } from "./_cache_key.ts";

/** Options of {@linkcode extractFeatures}. */
export interface ExtractOptions {
  /** Samples per forward pass when `data` is a tensor (default 64; 256 on CUDA). */
  batchSize?: number;
  /** Called after every batch with the samples done and the total (when known). */
  onProgress?: (done: number, total: number | undefined) => void;
  /** A folder for the feature cache (or a {@linkcode FeatureCache}). */
  cache?: string | FeatureCache;
  /** Store cached features as float16 (default false). */
  float16?: boolean;
  /**
   * Identifies `data` in cache keys when it is an iterable (a tensor is identified by its
   * checksum). Required to cache iterable data.
   */
  dataKey?: string;
  /**
   * Number of samples an iterable yields: used for progress reports, and checked — extraction
   * rejects data that gives another count (nothing is cached then), and a cached entry of
   * another count is recomputed.
   */
  total?: number;
  /**
   * What runs the frozen forward passes: `"onnx"` (onnxruntime-node, the fastest on CPUs;
   * needs `--allow-ffi`), `"tfjs"` (the current TensorFlow.js backend), or `"auto"` (default):
   * tfjs when the backend is a GPU one (`tensorflow`, `webgpu`), else onnx when `--allow-ffi` is
   * granted and onnxruntime-node loads, else tfjs. Both compute the same features to float32
   * rounding (parity-tested).
   */
  engine?: ExtractionEngine;
  /** Threads of the onnx engine (default: all cores). */
  threads?: number;
  /**
   * Where the forward passes run (default `"auto"`; see `createOnnxExtractor`): `"cuda"` selects
   * the onnx engine on CUDA and is an error naming what is missing when CUDA cannot run here;
   * with engine `"tfjs"` the device is the TensorFlow.js backend's, checked against this.
   */
  device?: Device;
  /** Allow TF32 maths on CUDA (default `false`: fp32). */
  tf32?: boolean;
  /** Called once, before the first batch, with the engine and device that run the passes. */
  onDevice?: (info: ExtractionDevice) => void;
}

/** The engine and device that ran an extraction, as `onDevice` reports them. */
export interface ExtractionDevice {
  /** The engine. */
  engine: "onnx" | "tfjs";
  /** The device it computes on. */
  device: TfjsDevice;
  /** Why that device (for the onnx engine: GPU and versions, or what CUDA lacks). */
  reason: string;
  /** Whether TF32 maths was allowed. */
  tf32: boolean;
  /** Samples per forward pass. */
  batchSize: number;
}

/** Which engine runs extraction. */
export type ExtractionEngine = "auto" | "onnx" | "tfjs";

/**
 * Resolves `"auto"` to the engine extraction will use here.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { resolveEngine } from "@diffprobe/core";
 *
 * assert.equal(await resolveEngine("tfjs"), "tfjs");
 * ```
 */
export async function resolveEngine(engine: ExtractionEngine = "auto"): Promise<"onnx" | "tfjs"> {
  oneOf(engine, "Extraction engine", ["auto", "onnx", "tfjs"] as const);
  if (engine === "tfjs") return "tfjs";
  if (engine === "onnx") {
    if (!(await onnxRuntimeAvailable())) {
      throw new Error(
        'The onnx engine needs onnxruntime-node and --allow-ffi; use engine "tfjs" otherwise',
      );
    }
    return "onnx";
  }
  if (["tensorflow", "webgpu"].includes(tf.getBackend())) return "tfjs";
  // Without --allow-ffi, "auto" uses tfjs instead of prompting for the permission, and says so
  // once on stderr.
  if (!(await ortFfiGranted())) {
    notice(
      "engine",
      "diffprobe: extraction uses the tfjs engine; run with --allow-ffi for the onnx engine " +
        "(onnxruntime-node, about 5–8× faster on a CPU)",
    );
    return "tfjs";
  }
  if (await onnxRuntimeAvailable()) return "onnx";
  notice(
    "engine",
    "diffprobe: extraction uses the tfjs engine: onnxruntime-node did not load " +
      "(install it with `deno install`; it is a dependency in deno.json)",
  );
  return "tfjs";
}

/** What a batch source yields: `[b, ...sample]` tensors in [-1, 1]. */
export type FeatureData = tf.Tensor | Iterable<tf.Tensor> | AsyncIterable<tf.Tensor>;

/**
 * SHA-256 over a backbone's weights (names, shapes and values). Memoised per weight tensor's
 * data, so weights replaced or assigned in place (as `trainDiffusion` does) are hashed anew.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { createBackbone, weightChecksum } from "@diffprobe/core";
 *
 * const unet = createBackbone({ _class_name: "UNet2DModel", block_out_channels: [32, 32],
 *   down_block_types: ["DownBlock2D", "DownBlock2D"], up_block_types: ["UpBlock2D", "UpBlock2D"], norm_num_groups: 8 });
 * assert.match(await weightChecksum(unet), /^[0-9a-f]{64}$/);
 * unet.dispose();
 * ```
 */
export function weightChecksum(backbone: Backbone): Promise<string> {
  return checksumOfWeights(backbone.weights);
}

/** A tap on its way: its block, feature shape (known once the sample size is) and chunks. */
interface PendingTap {
  tap: Tap;
  info: BlockInfo;
  /** Per-sample feature shape, once the input size is known. */
  featureShape?: number[];
  /** Cache entry name, when caching. */
  entry?: string;
  chunks: Float32Array[];
}

/** One forward pass per batch: a timestep and a noise stream, for the taps that use them. */
interface Pass {
  t: number;
  seed: number;
  members: PendingTap[];
  extractor?: Extractor;
}

/** Noise stream of draw `d` of an ensemble: draw 0 uses the tap's seed itself. */
function drawSeed(seed: number, draw: number): number {
  return draw === 0 ? seed : (Math.imul(seed ^ 0x27d4eb2f, 0x165667b1) + draw * 0x9e3779b9) | 0;
}

/**
 * The per-sample shape `shape` (`[H, W, C]` or `[W, C]`) checked against the backbone: rank,
 * channels, and each side a multiple of 2^(levels − 1). Errors name `what`.
 */
function checkSampleShape(backbone: Backbone, shape: readonly number[], what: string): number[] {
  const ref = backbone.allBlocks[0].shape; // conv_in, at the config's sample size
  const channels = backbone.config.in_channels ?? 3; // diffusers' default, as the config reads it
  const layout = backbone.kind === "unet2d" ? "[H, W, C]" : "[W, C]";
  if (shape.length !== ref.length || shape.at(-1) !== channels) {
    throw new RangeError(
      `Sample shape of ${what} must be ${layout} with C = ${channels} for this ${backbone.kind}, ` +
        `got [${shape}]`,
    );
  }
  const factor = Math.max(...backbone.allBlocks.map((b) => downscale(ref, b)));
  const spatial = shape.slice(0, -1);
  if (spatial.some((d) => d % factor !== 0)) {
    throw new RangeError(
      `Sample size of ${what} must be a multiple of ${factor} on each side for this ` +
        `${backbone.kind}, got ${spatial.join("×")}`,
    );
  }
  return [...shape];
}

/** By how much a block's map is smaller than the input (a power of two). */
function downscale(ref: readonly number[], block: BlockInfo): number {
  return 2 ** Math.round(Math.log2(ref.at(-2)! / block.shape.at(-2)!));
}

/** A block's per-sample output shape for inputs of per-sample shape `sample`. */
function blockShapeAt(backbone: Backbone, block: BlockInfo, sample: readonly number[]): number[] {
  const ref = backbone.allBlocks[0].shape;
  const spatial = sample.slice(0, -1).map((d, i) =>
    d / 2 ** Math.round(Math.log2(ref[i] / block.shape[i]))
  );
  return [...spatial, block.channels];
}

async function* batchesOf(
  data: FeatureData,
  batchSize: number,
): AsyncGenerator<{ start: number; x: tf.Tensor; owned: boolean }> {
  if (data instanceof tf.Tensor) {
    for (let start = 0; start < data.shape[0]; start += batchSize) {
      const size = Math.min(batchSize, data.shape[0] - start);
      yield { start, x: tf.slice(data, [start], [size]), owned: true };
    }
    return;
  }
  let start = 0;
  for await (const x of data as AsyncIterable<tf.Tensor>) {
    if (!(x instanceof tf.Tensor)) {
      throw new TypeError(`Batch at sample ${start} must be a tensor, got ${typeof x}`);
    }
    yield { start, x, owned: false };
    start += x.shape[0];
  }
}

/**
 * Extracts the features of `taps` from every sample of `data` (a `[N, ...]` tensor or an
 * iterable of batches, images `[b, H, W, C]` / signals `[b, W, C]` in [-1, 1], of any size the
 * UNet accepts). Resolves to a map from `tap.key` to `[N, ...features]` tensors in the order of
 * `data`; the caller owns them.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import * as tf from "@tensorflow/tfjs";
 * import { createBackbone, extractFeatures, tapBlock } from "@diffprobe/core";
 *
 * const unet = createBackbone({ _class_name: "DiffprobeUNet1DModel", in_channels: 1, out_channels: 1,
 *   sample_size: 32, block_out_channels: [8, 16], norm_num_groups: 4, layers_per_block: 1,
 *   down_block_types: ["DownBlock1D", "DownBlock1D"], up_block_types: ["UpBlock1D", "UpBlock1D"] });
 * const signals = tf.randomNormal([3, 64, 1]); // twice the config's sample size
 * const taps = [tapBlock(10, 2, { pool: "none" }), tapBlock(10, 4, { pool: { size: 4 } })];
 * const out = await extractFeatures(unet, taps, signals, { engine: "tfjs" });
 * assert.deepEqual(out.get(taps[0].key)!.shape, [3, 64, 8]);
 * assert.deepEqual(out.get(taps[1].key)!.shape, [3, 4, 16]);
 * tf.dispose([signals, ...out.values()]);
 * unet.dispose();
 * ```
 */
export async function extractFeatures(
  backbone: Backbone,
  taps: readonly Tap[],
  data: FeatureData,
  options: ExtractOptions = {},
): Promise<Map<string, tf.Tensor>> {
  const device = checkDevice(options.device, "Extraction device");
  const batchOption = options.batchSize === undefined
    ? undefined
    : positiveInteger(options.batchSize, "Batch size");
  const total = data instanceof tf.Tensor
    ? data.shape[0]
    : options.total === undefined
    ? undefined
    : nonNegativeInteger(options.total, "Total sample count (options.total)");
  const pending = pendingTaps(backbone, taps);
  if (data instanceof tf.Tensor) {
    setFeatureShapes(backbone, pending, checkSampleShape(backbone, data.shape.slice(1), "data"));
  }
  const cache = typeof options.cache === "string"
    ? new FeatureCache(options.cache, { float16: options.float16 })
    : options.cache;
  const result = new Map<string, tf.Tensor>();
  if (cache) await readCached(backbone, pending, data, cache, total, options.dataKey, result);
  const todo = pending.filter((p) => !result.has(p.tap.key));
  if (todo.length === 0) {
    options.onProgress?.(total ?? 0, total);
    return new Map(taps.map((t) => [t.key, result.get(t.key)!]));
  }
  const passes = groupPasses(todo);
  // "cuda" means the onnx engine (unless tfjs is asked for); its CUDA check comes first.
  const asked = options.engine ?? "auto";
  const engine = await resolveEngine(asked === "auto" && device === "cuda" ? "onnx" : asked);
  if (engine === "tfjs") tfjsDevice(device, "Extraction with the tfjs engine");
  else if (device === "cuda") await chooseDevice("cuda", { tf32: options.tf32 });
  let done: number;
  try {
    const onnx = { threads: options.threads, device, tf32: options.tf32 };
    for (const pass of passes) {
      const names = [...new Set(pass.members.map((m) => m.info.name))];
      pass.extractor = engine === "onnx"
        ? await createOnnxExtractor(backbone, names, onnx)
        : createTfjsExtractor(backbone, names);
    }
    const first = passes[0].extractor as Partial<OnnxExtractor>;
    const ran = first.device ?? tfjsDevice("auto", "Extraction");
    const batchSize = batchOption ?? (ran === "cuda" ? 256 : 64);
    options.onDevice?.({
      engine,
      device: ran,
      reason: first.deviceReason ?? "the TensorFlow.js backend",
      tf32: first.tf32 ?? false,
      batchSize,
    });
    done = await runBatches(backbone, data, batchSize, todo, passes, cache, (n) => {
      options.onProgress?.(n, total);
    });
  } finally {
    for (const pass of passes) pass.extractor?.dispose();
  }
  if (done === 0 || (total !== undefined && done !== total)) {
    throw new RangeError(
      `The data gave ${done} samples${total === undefined ? "" : `, expected ${total}`}` +
        (done === 0 ? ": was a one-shot iterator (a generator) read twice?" : ""),
    );
  }
  for (const p of todo) result.set(p.tap.key, await assemble(p, done, cache));
  // Keys in the order of `taps`.
  return new Map(taps.map((t) => [t.key, result.get(t.key)!]));
}

/** The taps to extract, deduplicated by key, their blocks checked. */
function pendingTaps(backbone: Backbone, taps: readonly Tap[]): PendingTap[] {
  const pending: PendingTap[] = [];
  for (const tap of taps) {
    const info = backbone.block(tap.block);
    integerInRange(tap.t, `Timestep of tap ${tap.key}`, 0, backbone.schedule.timesteps - 1);
    if (!pending.some((p) => p.tap.key === tap.key)) pending.push({ tap, info, chunks: [] });
  }
  return pending;
}

/** Sets every tap's feature shape for inputs of per-sample shape `sample`. */
function setFeatureShapes(backbone: Backbone, pending: PendingTap[], sample: number[]): void {
  for (const p of pending) {
    p.featureShape = pooledShape(blockShapeAt(backbone, p.info, sample), p.tap.pool, p.info.name);
  }
}

/**
 * The shape a cached entry of `p` must have: exact when the input size is known, else with the
 * input-dependent sizes left open.
 */
function expectedShape(p: PendingTap, total: number | undefined): (number | null)[] {
  const n = total ?? null;
  if (p.featureShape) return [n, ...p.featureShape];
  const pool = p.tap.pool;
  const spatial = p.info.shape.length - 1;
  if (pool === "mean") return [n, p.info.channels];
  const side = pool === "none" ? null : pool.size;
  return [n, ...new Array<number | null>(spatial).fill(side), p.info.channels];
}

/** Reads whole entries of the cache into `result` (and sets each tap's entry name). */
async function readCached(
  backbone: Backbone,
  pending: PendingTap[],
  data: FeatureData,
  cache: FeatureCache,
  total: number | undefined,
  dataKey: string | undefined,
  result: Map<string, tf.Tensor>,
): Promise<void> {
  if (!(data instanceof tf.Tensor) && dataKey === undefined) {
    throw new TypeError(
      "Caching features of an iterable needs options.dataKey to identify the data",
    );
  }
  const dataSum = data instanceof tf.Tensor
    ? await sha256Hex(`${data.shape}`, await data.data() as Float32Array)
    : `key:${dataKey}`;
  const weights = await weightChecksum(backbone);
  for (const p of pending) {
    const { t, pool, seed, ensemble } = p.tap;
    p.entry = await entryName(weights, tapKey(t, p.info.name, pool, seed, ensemble), dataSum);
    // An entry of another shape (another `total`, another input size) is stale: recomputed.
    const hit = await cache.read(p.entry, expectedShape(p, total));
    if (hit && hit.shape[0] > 0) result.set(p.tap.key, tf.tensor(hit.data, hit.shape));
  }
}

/** One forward pass per (t, noise stream); each tap contributes 1/ensemble of each draw. */
function groupPasses(todo: PendingTap[]): Pass[] {
  const passes = new Map<string, Pass>();
  for (const p of todo) {
    for (let d = 0; d < p.tap.ensemble; d++) {
      const seed = drawSeed(p.tap.seed, d);
      const key = `${p.tap.t}|${seed}`;
      if (!passes.has(key)) passes.set(key, { t: p.tap.t, seed, members: [] });
      passes.get(key)!.members.push(p);
    }
  }
  return [...passes.values()];
}

/** The cache name of the chunk of `p` starting at sample `start`. */
function chunkName(p: PendingTap, batchSize: number, start: number): string {
  return `${p.entry}/b${batchSize}-${String(start).padStart(9, "0")}`;
}

/** Runs every batch (reading cached chunks, computing the rest); returns the sample count. */
async function runBatches(
  backbone: Backbone,
  data: FeatureData,
  batchSize: number,
  todo: PendingTap[],
  passes: Pass[],
  cache: FeatureCache | undefined,
  onProgress: (done: number) => void,
): Promise<number> {
  let done = 0;
  let sample: number[] | undefined = data instanceof tf.Tensor ? data.shape.slice(1) : undefined;
  for await (const { start, x, owned } of batchesOf(data, batchSize)) {
    try {
      const shape = x.shape.slice(1);
      if (!sample) {
        sample = checkSampleShape(backbone, shape, "data");
        setFeatureShapes(backbone, todo, sample);
      } else if (shape.join() !== sample.join()) {
        throw new RangeError(
          `Sample shape of the batch at sample ${start} must be [${sample}] like the earlier ` +
            `ones, got [${shape}]`,
        );
      }
      const n = x.shape[0];
      const missing: PendingTap[] = [];
      for (const p of todo) {
        const expected = [n, ...p.featureShape!];
        const chunk = cache && p.entry
          ? await cache.read(chunkName(p, batchSize, start), expected)
          : null;
        if (chunk) p.chunks.push(chunk.data);
        else missing.push(p);
      }
      if (missing.length > 0) {
        const x0 = await x.data() as Float32Array; // the batch's one crossing out of tfjs
        const sums = await computeBatch(backbone, x0, x.shape, start, missing, passes);
        for (const [p, values] of sums) {
          p.chunks.push(values);
          if (cache && p.entry) {
            await cache.write(chunkName(p, batchSize, start), values, [n, ...p.featureShape!]);
          }
        }
      }
      done += n;
    } finally {
      if (owned) x.dispose();
    }
    onProgress(done);
  }
  return done;
}

/** The features of `missing` taps for one batch `x0` (row-major, `shape`) starting at `start`. */
async function computeBatch(
  backbone: Backbone,
  x0: Float32Array,
  shape: readonly number[],
  start: number,
  missing: PendingTap[],
  passes: Pass[],
): Promise<Map<PendingTap, Float32Array>> {
  const n = shape[0];
  const sums = new Map<PendingTap, Float32Array>();
  for (const pass of passes) {
    const members = pass.members.filter((m) => missing.includes(m));
    if (members.length === 0) continue;
    const xt = noisedBatch(backbone.schedule, x0, n, pass.t, pass.seed, start);
    const blocks = await pass.extractor!.extract(xt, shape, pass.t);
    for (const m of members) {
      const block = blocks.get(m.info.name)!;
      let sum = sums.get(m);
      // One draw of an unpooled tap is the block output itself (a fresh array per batch).
      if (!sum && m.tap.pool === "none" && m.tap.ensemble === 1) {
        sums.set(m, block.data);
        continue;
      }
      if (!sum) sums.set(m, sum = new Float32Array(n * sizeOf(m.featureShape!)));
      addPooled(sum, block, m.tap.pool, 1 / m.tap.ensemble);
    }
  }
  for (const [p, values] of sums) {
    const bad = firstNonFinite(values);
    if (bad >= 0) throw notFinite(p.tap, x0, n, start, Math.floor(bad / (values.length / n)));
  }
  return sums;
}

/** The number of values of a shape. */
function sizeOf(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** The index of the first NaN or ±Infinity of `values`, or −1 (a plain loop: no callback). */
function firstNonFinite(values: Float32Array): number {
  for (let i = 0; i < values.length; i++) {
    // v − v is 0 for finite v and NaN for NaN and ±Infinity.
    if (values[i] - values[i] !== 0) return i;
  }
  return -1;
}

/** The error for non-finite features of batch sample `i`: blames the input or the weights. */
function notFinite(tap: Tap, x0: Float32Array, n: number, start: number, i: number): RangeError {
  const size = x0.length / n;
  const bad = x0.findIndex((v) => !Number.isFinite(v));
  const at = start + i;
  const cause = bad >= 0
    ? `input sample ${start + Math.floor(bad / size)} holds ${x0[bad]} at value ${bad % size}`
    : "the input is finite, so the backbone's weights hold NaN or ±Infinity, or overflow on it";
  return new RangeError(
    `Features of tap ${tap.key} must be finite, got NaN or ±Infinity for sample ${at}: ${cause}`,
  );
}

/** Joins a tap's chunks into one tensor, stored whole in the cache (chunks removed). */
async function assemble(p: PendingTap, done: number, cache?: FeatureCache): Promise<tf.Tensor> {
  const size = p.featureShape!.reduce((a, b) => a * b, 1);
  const all = new Float32Array(done * size);
  let offset = 0;
  for (const c of p.chunks) {
    all.set(c, offset);
    offset += c.length;
  }
  p.chunks = [];
  if (cache && p.entry) {
    await cache.write(p.entry, all, [done, ...p.featureShape!]);
    await Deno.remove(`${cache.dir}/${p.entry}`, { recursive: true }).catch(() => {});
  }
  return tf.tensor(all, [done, ...p.featureShape!]);
}
