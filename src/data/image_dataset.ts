/**
 * The in-memory image dataset shared by every image reader, and the helpers that
 * turn it into model inputs.
 *
 * An {@linkcode ImageDataset} keeps its pixels as one `Uint8Array` in NHWC order
 * (image, row, column, RGB channel), so 50,000 CIFAR-10 images take 150 MiB instead
 * of 600 MiB as float32. {@linkcode imageBatches} converts one batch at a time to
 * float32 tensors scaled to [-1, 1], the range DDPM models are trained on.
 *
 * @example Batches from a tiny dataset
 * ```ts
 * import assert from "node:assert/strict";
 * import { type ImageDataset, imageBatches } from "@diffprobe/core";
 *
 * const ds: ImageDataset = {
 *   pixels: new Uint8Array(4 * 2 * 2 * 3).fill(255),
 *   labels: new Int32Array([0, 1, 0, 1]),
 *   classes: ["a", "b"],
 *   size: 4,
 *   height: 2,
 *   width: 2,
 * };
 * const shapes: number[][] = [];
 * for (const x of imageBatches(ds, 3)) {
 *   shapes.push(x.shape);
 *   x.dispose();
 * }
 * assert.deepEqual(shapes, [[3, 2, 2, 3], [1, 2, 2, 3]]);
 * ```
 *
 * @module
 */

import * as tf from "@tensorflow/tfjs";
import { createHash } from "node:crypto";
import { integerInRange, positiveInteger } from "../base/validate.ts";

/**
 * A labelled set of equally sized RGB images held in memory.
 *
 * `pixels` has `size × height × width × 3` bytes in NHWC order: the value of
 * channel `c` (0 = R, 1 = G, 2 = B) at row `y`, column `x` of image `i` is
 * `pixels[((i * height + y) * width + x) * 3 + c]`. `labels[i]` indexes `classes`.
 */
export interface ImageDataset {
  /** `size × height × width × 3` bytes, RGB, row-major NHWC. */
  pixels: Uint8Array;
  /** One label per image, an index into `classes`. */
  labels: Int32Array;
  /** Class names; label `k` is `classes[k]`. */
  classes: string[];
  /** Number of images. */
  size: number;
  /** Image height in pixels. */
  height: number;
  /** Image width in pixels. */
  width: number;
  /** Source file of each image, when the images came from files. */
  files?: string[];
}

/**
 * The index range {@linkcode imageBatches} iterates over.
 */
export interface ImageBatchOptions {
  /** First image index (inclusive). Defaults to 0. */
  start?: number;
  /** Last image index (exclusive). Defaults to `ds.size`. */
  end?: number;
  /**
   * Dispose each batch when the next one is requested or the iteration ends, for consumers that
   * read a batch completely before asking for the next (as `extractFeatures` does). Default false:
   * the caller owns the batches.
   */
  autoDispose?: boolean;
}

/** `LUT[v]` is the float32 nearest to `v / 127.5 − 1`. */
const SCALE_LUT: Float32Array = (() => {
  const lut = new Float32Array(256);
  for (let v = 0; v < 256; v++) lut[v] = v / 127.5 - 1;
  return lut;
})();

/**
 * Yields the images from `start` to `end` as float32 tensors of shape
 * `[b, height, width, 3]` with values `x / 127.5 − 1` (so 0 → −1 and 255 → 1).
 *
 * Every batch has `batchSize` images except possibly the last. Each tensor is
 * built directly from its slice of the `Uint8Array`, so only one batch is ever
 * held as float32. The caller owns the yielded tensors and must dispose them, unless
 * `options.autoDispose` is set.
 * The matching labels are `ds.labels.subarray(start, end)`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { type ImageDataset, imageBatches } from "@diffprobe/core";
 *
 * const ds: ImageDataset = {
 *   pixels: new Uint8Array([0, 255, 51]),
 *   labels: new Int32Array([0]),
 *   classes: ["only"],
 *   size: 1,
 *   height: 1,
 *   width: 1,
 * };
 * for (const x of imageBatches(ds, 8)) {
 *   assert.deepEqual(x.dataSync(), new Float32Array([-1, 1, 51 / 127.5 - 1]));
 *   x.dispose();
 * }
 * ```
 *
 * @param ds The dataset to read.
 * @param batchSize Images per batch, a positive integer.
 * @param options The index range to cover (default: the whole dataset).
 * @returns A generator of `[b, height, width, 3]` float32 tensors.
 * @throws {RangeError} If `batchSize`, `start` or `end` is out of range.
 */
export function* imageBatches(
  ds: ImageDataset,
  batchSize: number,
  options: ImageBatchOptions = {},
): Generator<tf.Tensor4D, void, undefined> {
  checkDataset(ds);
  positiveInteger(batchSize, "Batch size");
  const end = integerInRange(options.end ?? ds.size, "Batch range end", 0, ds.size);
  const start = integerInRange(options.start ?? 0, "Batch range start", 0, end);
  const imageBytes = ds.height * ds.width * 3;
  for (let first = start; first < end; first += batchSize) {
    const count = Math.min(batchSize, end - first);
    const bytes = ds.pixels.subarray(first * imageBytes, (first + count) * imageBytes);
    const values = new Float32Array(bytes.length);
    for (let i = 0; i < bytes.length; i++) values[i] = SCALE_LUT[bytes[i]];
    const batch = tf.tensor4d(values, [count, ds.height, ds.width, 3], "float32");
    try {
      yield batch;
    } finally {
      if (options.autoDispose) batch.dispose();
    }
  }
}

/**
 * A SHA-256 hash (lowercase hex) of the dataset's content: its shape, pixels and
 * labels (as little-endian int32). Class names and file names are not included,
 * so two datasets with the same images and labels hash alike wherever they came
 * from. Hashes 150 MiB in about 0.1 s; used to key feature caches.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { datasetChecksum, type ImageDataset } from "@diffprobe/core";
 *
 * const ds: ImageDataset = {
 *   pixels: new Uint8Array(3),
 *   labels: new Int32Array(1),
 *   classes: ["a"],
 *   size: 1,
 *   height: 1,
 *   width: 1,
 * };
 * const hex = await datasetChecksum(ds);
 * assert.match(hex, /^[0-9a-f]{64}$/);
 * assert.notEqual(await datasetChecksum({ ...ds, labels: new Int32Array([1]) }), hex);
 * ```
 *
 * @param ds The dataset to hash.
 * @returns The hash as 64 lowercase hex digits.
 */
export function datasetChecksum(ds: ImageDataset): Promise<string> {
  checkDataset(ds);
  const hash = createHash("sha256");
  hash.update(`diffprobe.ImageDataset.v1 ${ds.size}x${ds.height}x${ds.width}x3\n`);
  hash.update(ds.pixels);
  hash.update(littleEndianBytes(ds.labels));
  return Promise.resolve(hash.digest("hex"));
}

/**
 * A new dataset holding copies of the images at `indices`, in that order
 * (repeats allowed). Classes are kept whole, so labels keep their meaning.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { type ImageDataset, subset } from "@diffprobe/core";
 *
 * const ds: ImageDataset = {
 *   pixels: new Uint8Array([1, 1, 1, 2, 2, 2, 3, 3, 3]),
 *   labels: new Int32Array([0, 1, 0]),
 *   classes: ["a", "b"],
 *   size: 3,
 *   height: 1,
 *   width: 1,
 * };
 * const picked = subset(ds, [2, 0]);
 * assert.deepEqual(picked.pixels, new Uint8Array([3, 3, 3, 1, 1, 1]));
 * assert.deepEqual(picked.labels, new Int32Array([0, 0]));
 * ```
 *
 * @param ds The dataset to pick from.
 * @param indices Image indices, integers in `[0, ds.size)`.
 * @returns A dataset of `indices.length` images.
 * @throws {RangeError} If an index is not an integer in range.
 */
export function subset(ds: ImageDataset, indices: ArrayLike<number>): ImageDataset {
  checkDataset(ds);
  const imageBytes = ds.height * ds.width * 3;
  const n = indices.length;
  const pixels = new Uint8Array(n * imageBytes);
  const labels = new Int32Array(n);
  const files = ds.files ? new Array<string>(n) : undefined;
  for (let k = 0; k < n; k++) {
    const i = integerInRange(indices[k], `Subset index at position ${k}`, 0, ds.size - 1);
    pixels.set(ds.pixels.subarray(i * imageBytes, (i + 1) * imageBytes), k * imageBytes);
    labels[k] = ds.labels[i];
    if (files) files[k] = ds.files![i];
  }
  const out: ImageDataset = {
    pixels,
    labels,
    classes: [...ds.classes],
    size: n,
    height: ds.height,
    width: ds.width,
  };
  if (files) out.files = files;
  return out;
}

/** Throws a TypeError if the fields of `ds` disagree with each other. */
function checkDataset(ds: ImageDataset): void {
  const { size, height, width } = ds;
  for (const [name, v] of [["size", size], ["height", height], ["width", width]] as const) {
    if (!Number.isInteger(v) || v < 0) {
      throw new TypeError(`Image dataset ${name} must be a non-negative integer, got ${v}`);
    }
  }
  if (ds.pixels.length !== size * height * width * 3) {
    throw new TypeError(
      `Image dataset has ${ds.pixels.length} pixel bytes, expected ${size}×${height}×${width}×3 = ${
        size * height * width * 3
      }`,
    );
  }
  if (ds.labels.length !== size) {
    throw new TypeError(`Image dataset has ${ds.labels.length} labels for ${size} images`);
  }
  if (ds.files && ds.files.length !== size) {
    throw new TypeError(`Image dataset has ${ds.files.length} file names for ${size} images`);
  }
}

const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/** The bytes of `a` in little-endian order (a view when the platform is little-endian). */
function littleEndianBytes(a: Int32Array): Uint8Array {
  const view = new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  if (LITTLE_ENDIAN) return view;
  const out = new Uint8Array(a.byteLength);
  const dv = new DataView(out.buffer);
  for (let i = 0; i < a.length; i++) dv.setInt32(i * 4, a[i], true);
  return out;
}
