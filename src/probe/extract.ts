/**
 * Extracting features from a frozen backbone: taps at the same noise level and noise share one
 * forward pass, which stops after the deepest tapped block; each batch runs inside `tf.tidy`;
 * the noise of sample `i` depends only on `(seed, i)`, so features do not depend on the batch
 * size; results can be cached on disk and an interrupted extraction resumes.
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import { createBackbone } from "../models/backbone.ts";
 * import { extractFeatures } from "./extract.ts";
 * import { freeze } from "./freeze.ts";
 * import { tapBlock } from "./tap.ts";
 *
 * const unet = freeze(createBackbone({ _class_name: "UNet2DModel", sample_size: 16, block_out_channels: [32, 32],
 *   down_block_types: ["DownBlock2D", "DownBlock2D"], up_block_types: ["UpBlock2D", "UpBlock2D"], norm_num_groups: 8 }));
 * const images = tf.randomUniform([4, 16, 16, 3], -1, 1);
 * const tap = tapBlock(30, 3);
 * const features = await extractFeatures(unet, [tap], images, { batchSize: 2 });
 * console.log(features.get(tap.key)!.shape); // [4, 32]
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
import { checkTimestep } from "../models/schedule.ts";
import { fillGaussian } from "../models/noise.ts";
import { sha256Hex } from "../io/checksum.ts";
import { FeatureCache } from "./feature_cache.ts";
import {
  createOnnxExtractor,
  type OnnxExtractor,
  onnxRuntimeAvailable,
} from "../engine/onnx_engine.ts";
import { type Pooling, poolKey, type Tap } from "./tap.ts";

/** Options of {@linkcode extractFeatures}. */
export interface ExtractOptions {
  /** Samples per forward pass when `data` is a tensor (default 64). */
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
   * granted and onnxruntime-node loads, else tfjs. Both compute the same features to float32 rounding (parity-tested).
   */
  engine?: ExtractionEngine;
  /** Threads of the onnx engine (default: all cores). */
  threads?: number;
}

/** Which engine runs extraction. */
export type ExtractionEngine = "auto" | "onnx" | "tfjs";

/** The ffi permission onnxruntime-node needs: for its installed folder when that is known. */
function ffiDescriptor(): Deno.PermissionDescriptor {
  try {
    const url = new URL("..", import.meta.resolve("onnxruntime-node"));
    if (url.protocol === "file:") return { name: "ffi", path: decodeURIComponent(url.pathname) };
  } catch {
    // not resolvable to a file: ask for ffi in general
  }
  return { name: "ffi" };
}

/**
 * Resolves `"auto"` to the engine extraction will use here.
 *
 * @example
 * ```ts
 * import { resolveEngine } from "./extract.ts";
 *
 * console.log(await resolveEngine("tfjs")); // "tfjs"
 * ```
 */
export async function resolveEngine(engine: ExtractionEngine = "auto"): Promise<"onnx" | "tfjs"> {
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
  if ((await Deno.permissions.query(ffiDescriptor())).state !== "granted") {
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

const checksums = new WeakMap<Map<string, tf.Tensor>, Promise<string>>();

/**
 * SHA-256 over a backbone's weights (names, shapes and values), memoised per backbone.
 *
 * @example
 * ```ts
 * import { createBackbone } from "../models/backbone.ts";
 * import { weightChecksum } from "./extract.ts";
 *
 * const unet = createBackbone({ _class_name: "UNet2DModel", block_out_channels: [32, 32],
 *   down_block_types: ["DownBlock2D", "DownBlock2D"], up_block_types: ["UpBlock2D", "UpBlock2D"], norm_num_groups: 8 });
 * console.log((await weightChecksum(unet)).length); // 64
 * unet.dispose();
 * ```
 */
export function weightChecksum(backbone: Backbone): Promise<string> {
  let sum = checksums.get(backbone.weights);
  if (!sum) {
    sum = (async () => {
      const parts: string[] = [];
      for (const name of [...backbone.weights.keys()].sort()) {
        const w = backbone.weights.get(name)!;
        parts.push(`${name}:${w.shape}:${await sha256Hex(await w.data() as Float32Array)}`);
      }
      return await sha256Hex(parts.join("\n"));
    })();
    checksums.set(backbone.weights, sum);
  }
  return sum;
}

function pooledShape(shape: readonly number[], pool: Pooling, block: BlockInfo): number[] {
  const spatial = shape.slice(0, -1);
  const c = shape[shape.length - 1];
  if (pool === "none") return [...shape];
  if (pool === "mean") return [c];
  for (const d of spatial) {
    if (d % pool.size !== 0) {
      throw new RangeError(
        `Cannot pool block ${block.name} (${spatial.join("×")}) to ${pool.size}: ` +
          `its size is not a multiple of ${pool.size}`,
      );
    }
  }
  return [...spatial.map(() => pool.size), c];
}

function applyPool(x: tf.Tensor, pool: Pooling): tf.Tensor {
  if (pool === "none") return tf.clone(x); // shares x's data; x itself is disposed by the caller
  const spatialAxes = x.rank === 4 ? [1, 2] : [1];
  if (pool === "mean") return tf.mean(x, spatialAxes);
  const k = pool.size;
  if (x.rank === 4) {
    const [, h, w] = x.shape;
    return tf.avgPool(x as tf.Tensor4D, [h / k, w / k], [h / k, w / k], "valid");
  }
  const [n, w, c] = x.shape;
  return tf.mean(x.reshape([n, k, w / k, c]), 2);
}

/** Noise stream of draw `d` of an ensemble: draw 0 uses the tap's seed itself. */
function drawSeed(seed: number, draw: number): number {
  return draw === 0 ? seed : (Math.imul(seed ^ 0x27d4eb2f, 0x165667b1) + draw * 0x9e3779b9) | 0;
}

interface PendingTap {
  tap: Tap;
  info: BlockInfo;
  featureShape: number[];
  featureSize: number;
  entry?: string;
  chunks: Float32Array[];
}

async function* batchesOf(
  data: FeatureData,
  batchSize: number,
): AsyncGenerator<{ start: number; x: tf.Tensor; owned: boolean }> {
  if (data instanceof tf.Tensor) {
    for (let start = 0; start < data.shape[0]; start += batchSize) {
      const size = Math.min(batchSize, data.shape[0] - start);
      const x = tf.slice(data, [start], [size]);
      yield { start, x, owned: true };
    }
    return;
  }
  let start = 0;
  for await (const x of data as AsyncIterable<tf.Tensor>) {
    if (!(x instanceof tf.Tensor)) {
      throw new TypeError(`Batch at sample ${start} is not a tensor`);
    }
    yield { start, x, owned: false };
    start += x.shape[0];
  }
}

/**
 * Extracts the features of `taps` from every sample of `data` (a `[N, ...]` tensor or an
 * iterable of batches, images `[b, H, W, C]` / signals `[b, W, C]` in [-1, 1]). Resolves to a
 * map from `tap.key` to `[N, ...features]` tensors in the order of `data`; the caller owns them.
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import { createBackbone } from "../models/backbone.ts";
 * import { extractFeatures } from "./extract.ts";
 * import { tapBlock } from "./tap.ts";
 *
 * const unet = createBackbone({ _class_name: "DiffprobeUNet1DModel", in_channels: 1, out_channels: 1,
 *   sample_size: 32, block_out_channels: [8, 16], norm_num_groups: 4, layers_per_block: 1,
 *   down_block_types: ["DownBlock1D", "DownBlock1D"], up_block_types: ["UpBlock1D", "UpBlock1D"] });
 * const signals = tf.randomNormal([3, 32, 1]);
 * const taps = [tapBlock(10, 2, { pool: "none" }), tapBlock(10, 4, { pool: { size: 4 } })];
 * const out = await extractFeatures(unet, taps, signals);
 * console.log(out.get(taps[0].key)!.shape, out.get(taps[1].key)!.shape); // [3, 32, 8] [3, 4, 16]
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
  const batchSize = options.batchSize ?? 64;
  if (!Number.isInteger(batchSize) || batchSize < 1) {
    throw new RangeError(`Batch size must be a positive integer, got ${batchSize}`);
  }
  const total = data instanceof tf.Tensor ? data.shape[0] : options.total;
  const pending: PendingTap[] = [];
  const result = new Map<string, tf.Tensor>();
  for (const tap of taps) {
    checkTimestep(tap.t, backbone.schedule.timesteps);
    const info = backbone.block(tap.block);
    if (pending.some((p) => p.tap.key === tap.key)) continue;
    const featureShape = pooledShape(info.shape, tap.pool, info);
    pending.push({
      tap,
      info,
      featureShape,
      featureSize: featureShape.reduce((p, d) => p * d, 1),
      chunks: [],
    });
  }

  const cache = typeof options.cache === "string"
    ? new FeatureCache(options.cache, { float16: options.float16 })
    : options.cache;
  if (cache) {
    if (!(data instanceof tf.Tensor) && options.dataKey === undefined) {
      throw new TypeError(
        "Caching features of an iterable needs options.dataKey to identify the data",
      );
    }
    const dataSum = data instanceof tf.Tensor
      ? await sha256Hex(`${data.shape}`, await data.data() as Float32Array)
      : `key:${options.dataKey}`;
    const weights = await weightChecksum(backbone);
    for (const p of pending) {
      const id = `${p.tap.t}/${p.info.name}/${
        poolKey(p.tap.pool)
      }/s${p.tap.seed}/e${p.tap.ensemble}`;
      p.entry = (await sha256Hex(`diffprobe-features-v1\n${weights}\n${id}\n${dataSum}`)).slice(
        0,
        40,
      );
      const hit = await cache.read(p.entry);
      // An entry of another length is stale (a different `total` under the same key): recompute.
      if (hit && hit.shape[0] > 0 && (total === undefined || hit.shape[0] === total)) {
        result.set(p.tap.key, tf.tensor(hit.data, hit.shape));
      }
    }
  }
  const todo = pending.filter((p) => !result.has(p.tap.key));
  if (todo.length === 0) {
    options.onProgress?.(total ?? 0, total);
    return result;
  }

  // One forward pass per (t, noise stream); each tap contributes 1/ensemble of each draw.
  const passes = new Map<string, { t: number; seed: number; members: PendingTap[] }>();
  for (const p of todo) {
    for (let d = 0; d < p.tap.ensemble; d++) {
      const seed = drawSeed(p.tap.seed, d);
      const key = `${p.tap.t}|${seed}`;
      if (!passes.has(key)) passes.set(key, { t: p.tap.t, seed, members: [] });
      passes.get(key)!.members.push(p);
    }
  }

  let done = 0;
  const engine = await resolveEngine(options.engine);
  const extractors = new Map<string, OnnxExtractor>();
  if (engine === "onnx") {
    for (const [key, pass] of passes) {
      const names = [...new Set(pass.members.map((m) => m.info.name))];
      extractors.set(key, await createOnnxExtractor(backbone, names, { threads: options.threads }));
    }
  }
  try {
    await runBatches();
  } finally {
    for (const e of extractors.values()) e.dispose();
  }

  async function runBatches(): Promise<void> {
    for await (const { start, x, owned } of batchesOf(data, batchSize)) {
      const n = x.shape[0];
      const chunkName = (p: PendingTap) =>
        `${p.entry}/b${batchSize}-${String(start).padStart(9, "0")}`;
      const missing: PendingTap[] = [];
      for (const p of todo) {
        const chunk = cache && p.entry ? await cache.read(chunkName(p)) : null;
        if (chunk && chunk.shape[0] === n) p.chunks.push(chunk.data);
        else missing.push(p);
      }
      if (missing.length > 0) {
        const sampleShape = x.shape.slice(1);
        const sampleSize = sampleShape.reduce((a, b) => a * b, 1);
        const sums = new Map(missing.map((p) => [p, new Float32Array(n * p.featureSize)]));
        for (const [passKey, pass] of passes) {
          const members = pass.members.filter((m) => sums.has(m));
          if (members.length === 0) continue;
          const noiseData = new Float32Array(n * sampleSize);
          for (let i = 0; i < n; i++) {
            fillGaussian(
              noiseData.subarray(i * sampleSize, (i + 1) * sampleSize),
              pass.seed,
              start + i,
            );
          }
          const xt = tf.tidy(() =>
            backbone.schedule.addNoise(x, pass.t, tf.tensor(noiseData, x.shape))
          );
          const capture = [...new Set(members.map((m) => m.info.name))];
          const extractor = extractors.get(passKey);
          let blocks: Map<string, tf.Tensor>;
          try {
            blocks = extractor
              ? await extractor.run(xt, xt.shape, pass.t)
              : backbone.forward(xt, pass.t, { capture }).blocks;
          } finally {
            xt.dispose();
          }
          const pooled = tf.tidy(() =>
            members.map((m) => applyPool(blocks.get(m.info.name)!, m.tap.pool))
          );
          tf.dispose([...blocks.values()]);
          for (let i = 0; i < members.length; i++) {
            const values = await pooled[i].data() as Float32Array;
            const sum = sums.get(members[i])!;
            const scale = 1 / members[i].tap.ensemble;
            for (let j = 0; j < values.length; j++) sum[j] += values[j] * scale;
          }
          tf.dispose(pooled);
        }
        for (const [p, values] of sums) {
          for (const v of values) {
            if (!Number.isFinite(v)) {
              throw new RangeError(
                `Features of ${p.tap.key} are not finite for samples ${start}..${start + n - 1}: ` +
                  "check the input for NaN or infinite values",
              );
            }
          }
          p.chunks.push(values);
          if (cache && p.entry) await cache.write(chunkName(p), values, [n, ...p.featureShape]);
        }
      }
      if (owned) x.dispose();
      done += n;
      options.onProgress?.(done, total);
    }
  }

  if (done === 0 || (total !== undefined && done !== total)) {
    throw new RangeError(
      `The data gave ${done} samples${total === undefined ? "" : `, expected ${total}`}` +
        (done === 0 ? ": was a one-shot iterator (a generator) read twice?" : ""),
    );
  }
  for (const p of todo) {
    const all = new Float32Array(done * p.featureSize);
    let offset = 0;
    for (const c of p.chunks) {
      all.set(c, offset);
      offset += c.length;
    }
    p.chunks = [];
    if (cache && p.entry) {
      await cache.write(p.entry, all, [done, ...p.featureShape]);
      await Deno.remove(`${cache.dir}/${p.entry}`, { recursive: true }).catch(() => {});
    }
    result.set(p.tap.key, tf.tensor(all, [done, ...p.featureShape]));
  }
  // Keys in the order of `taps`.
  return new Map(taps.map((t) => [t.key, result.get(t.key)!]));
}
