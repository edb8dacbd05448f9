/**
 * Reading CIFAR-10 in either of its common formats: {@linkcode readCifar10}.
 *
 * @module
 */

import { join } from "node:path";
import { oneOf } from "../base/validate.ts";
import {
  batchNames,
  CIFAR10_CLASSES,
  type Cifar10Split,
  findBatchFolder,
  readCifar10Binary,
} from "./cifar10_binary.ts";
import type { ImageDataset } from "./image_dataset.ts";
import { readImageFolder } from "./image_folder.ts";

/** Options of {@linkcode readCifar10}. */
export interface ReadCifar10Options {
  /** Called with the number of images read so far and the total (after each batch file or chunk). */
  onProgress?: (done: number, total: number) => void;
  /** Decode cache folder for the image-folder format (see `readImageFolder`); ignored for binaries. */
  cacheDir?: string;
  /** Decode workers for the image-folder format (see `readImageFolder`); ignored for binaries. */
  workers?: number;
}

/**
 * Reads one split of CIFAR-10 from `path`, in whichever format it holds:
 *
 * - the official binary release: `path` holds `data_batch_1.bin` … `data_batch_5.bin` and
 *   `test_batch.bin`, directly or in `cifar-10-batches-bin/` (read by `readCifar10Binary`);
 * - an image folder: `path/<split>/<class>/*.jpg|png` with the ten class folders named as in
 *   `CIFAR10_CLASSES` (read by `readImageFolder`, labels in that order).
 *
 * Either way labels follow `CIFAR10_CLASSES`, so both formats give the same labels.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { readCifar10 } from "@diffprobe/core";
 *
 * const dir = await Deno.makeTempDir();
 * const record = new Uint8Array(3073);
 * record[0] = 3; // one "cat", all pixels 0
 * await Deno.writeFile(`${dir}/test_batch.bin`, record);
 * const seen: number[] = [];
 * const test = await readCifar10(dir, "test", { onProgress: (done) => seen.push(done) });
 * assert.equal(test.size, 1);
 * assert.equal(test.classes[test.labels[0]], "cat");
 * assert.deepEqual(seen, [1]);
 * await Deno.remove(dir, { recursive: true });
 * ```
 *
 * @param path The dataset folder.
 * @param split `"train"` or `"test"`.
 * @param options Progress callback, and cache folder and workers for image folders.
 * @returns The split's 32×32 RGB images with labels.
 * @throws {TypeError} If `split` is neither `"train"` nor `"test"`.
 * @throws {Deno.errors.NotFound} If `path` holds neither format (the message names what was
 *   looked for).
 */
export async function readCifar10(
  path: string,
  split: Cifar10Split,
  options: ReadCifar10Options = {},
): Promise<ImageDataset> {
  oneOf(split, "CIFAR-10 split", ["train", "test"]);
  if (await findBatchFolder(path, split) !== undefined) {
    return await readCifar10Binary(path, split, { onProgress: options.onProgress });
  }
  if (await isDirectory(join(path, split))) {
    return await readImageFolder(path, {
      split,
      classes: CIFAR10_CLASSES,
      cacheDir: options.cacheDir,
      workers: options.workers,
      onProgress: options.onProgress,
    });
  }
  throw new Deno.errors.NotFound(
    `CIFAR-10 folder "${path}" holds neither the binary release ("${batchNames(split)[0]}", ` +
      `directly or in ` +
      `cifar-10-batches-bin/) nor an image folder "${join(path, split)}/<class>/"`,
  );
}

async function isDirectory(path: string): Promise<boolean> {
  return await Deno.stat(path).then((info) => info.isDirectory, () => false);
}
