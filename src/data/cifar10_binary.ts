/**
 * A reader for the official CIFAR-10 binary release (`cifar-10-binary.tar.gz`,
 * Krizhevsky 2009, "Learning Multiple Layers of Features from Tiny Images").
 *
 * Each batch file is a sequence of 3,073-byte records: one label byte (0–9)
 * followed by a 32×32 image stored as three planes (all red values row by row,
 * then green, then blue). {@linkcode readCifar10Binary} interleaves the planes
 * into the NHWC layout of {@linkcode ImageDataset}.
 *
 * After `tar xzf cifar-10-binary.tar.gz` in `./data`, `readCifar10Binary("./data", "train")`
 * gives the 50,000 training images.
 *
 * @module
 */

import { join } from "node:path";
import { oneOf } from "../base/validate.ts";
import { readDataFile, statDataFile } from "./_files.ts";
import type { ImageDataset } from "./image_dataset.ts";

/**
 * The CIFAR-10 class names in label order (0 = airplane … 9 = truck).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { CIFAR10_CLASSES } from "@diffprobe/core";
 *
 * assert.equal(CIFAR10_CLASSES.length, 10);
 * assert.equal(CIFAR10_CLASSES[3], "cat");
 * ```
 */
export const CIFAR10_CLASSES: readonly string[] = Object.freeze([
  "airplane",
  "automobile",
  "bird",
  "cat",
  "deer",
  "dog",
  "frog",
  "horse",
  "ship",
  "truck",
]);

/**
 * Which part of CIFAR-10 to read: `"train"` (`data_batch_1.bin` …
 * `data_batch_5.bin`, 50,000 images) or `"test"` (`test_batch.bin`, 10,000).
 */
export type Cifar10Split = "train" | "test";

/** Options of {@linkcode readCifar10Binary}. */
export interface ReadCifar10BinaryOptions {
  /** Called after each batch file with the number of images read so far and the total. */
  onProgress?: (done: number, total: number) => void;
}

/** Records per batch file: the official batches hold 10,000 images each. */
const MAX_RECORDS = 10_000;
const SIDE = 32;
const PLANE = SIDE * SIDE;
const IMAGE_BYTES = 3 * PLANE;
const RECORD_BYTES = 1 + IMAGE_BYTES;
/** Largest batch file read. */
const MAX_BATCH_BYTES = MAX_RECORDS * RECORD_BYTES;
/** What a batch file is called in errors. */
const BATCH = "CIFAR-10 batch file";

/**
 * Reads one split of the CIFAR-10 binary release into an {@linkcode ImageDataset}
 * of 32×32 RGB images.
 *
 * `dir` may be the extracted `cifar-10-batches-bin/` folder or its parent. Class
 * names come from `batches.meta.txt` when it is there, else
 * {@linkcode CIFAR10_CLASSES}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { readCifar10Binary } from "@diffprobe/core";
 *
 * const dir = await Deno.makeTempDir();
 * const record = new Uint8Array(3073);
 * record[0] = 6; // label: frog
 * record[1] = 255; // red plane, pixel (0, 0)
 * record[1 + 1024 + 1] = 128; // green plane, pixel (0, 1)
 * await Deno.writeFile(`${dir}/test_batch.bin`, record);
 * const test = await readCifar10Binary(dir, "test");
 * assert.deepEqual([test.size, test.height, test.width], [1, 32, 32]);
 * assert.equal(test.classes[test.labels[0]], "frog");
 * assert.deepEqual(Array.from(test.pixels.subarray(0, 6)), [255, 0, 0, 0, 128, 0]); // NHWC
 * await Deno.remove(dir, { recursive: true });
 * ```
 *
 * @param dir The folder holding the `.bin` files, or its parent.
 * @param split `"train"` or `"test"`.
 * @param options A progress callback.
 * @returns The images with their labels; `files` is not set.
 * @throws {Deno.errors.NotFound} If a batch file is missing.
 * @throws {RangeError} If a file's size is not a whole number of records or
 *   over 10,000 records (checked before reading), or a label is above 9; the
 *   message names the file, record and byte offset.
 * @throws {TypeError} If `split` is not `"train"` or `"test"`, a batch file
 *   is not a regular file (a FIFO, a device), or `batches.meta.txt` does not
 *   hold ten class names.
 */
export async function readCifar10Binary(
  dir: string,
  split: Cifar10Split,
  options: ReadCifar10BinaryOptions = {},
): Promise<ImageDataset> {
  oneOf(split, "CIFAR-10 split", ["train", "test"]);
  const names = batchNames(split);
  const folder = await findBatchFolder(dir, split);
  if (folder === undefined) {
    throw new Deno.errors.NotFound(
      `CIFAR-10 batch file "${names[0]}" not found in "${dir}" or "${join(dir, NESTED_FOLDER)}"`,
    );
  }
  const files = names.map((name) => join(folder, name));

  // Check every size before allocating the full dataset.
  let records = 0;
  for (const file of files) {
    const info = await statDataFile(file, BATCH, MAX_BATCH_BYTES);
    checkFileSize(file, info.size);
    records += info.size / RECORD_BYTES;
  }

  const pixels = new Uint8Array(records * IMAGE_BYTES);
  const labels = new Int32Array(records);
  let image = 0;
  for (const file of files) {
    const bytes = await readDataFile(file, BATCH, MAX_BATCH_BYTES);
    checkFileSize(file, bytes.length); // it may have changed since the stat
    if (image + bytes.length / RECORD_BYTES > records) {
      throw new RangeError(`CIFAR-10 batch file "${file}" grew while it was being read`);
    }
    for (let r = 0; r < bytes.length / RECORD_BYTES; r++, image++) {
      const offset = r * RECORD_BYTES;
      const label = bytes[offset];
      if (label > 9) {
        throw new RangeError(
          `Invalid CIFAR-10 label ${label} in record ${r} (byte offset ${offset}) of "${file}": ` +
            `expected 0 to 9`,
        );
      }
      labels[image] = label;
      const src = offset + 1;
      let dst = image * IMAGE_BYTES;
      for (let p = 0; p < PLANE; p++, dst += 3) {
        pixels[dst] = bytes[src + p];
        pixels[dst + 1] = bytes[src + PLANE + p];
        pixels[dst + 2] = bytes[src + 2 * PLANE + p];
      }
    }
    options.onProgress?.(image, records);
  }

  return {
    pixels,
    labels,
    classes: await readClassNames(folder),
    size: records,
    height: SIDE,
    width: SIDE,
  };
}

/**
 * The batch files of a split of the binary release, in reading order.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { batchNames } from "./cifar10_binary.ts";
 *
 * assert.deepEqual(batchNames("test"), ["test_batch.bin"]);
 * assert.equal(batchNames("train")[4], "data_batch_5.bin");
 * ```
 */
export function batchNames(split: Cifar10Split): string[] {
  return split === "train" ? [1, 2, 3, 4, 5].map((k) => `data_batch_${k}.bin`) : ["test_batch.bin"];
}

/** The folder of the binary release inside the official archive. */
const NESTED_FOLDER = "cifar-10-batches-bin";

/**
 * The folder that holds the binary release's batches of `split`: `dir` itself when it holds the
 * split's first batch file, else `dir/cifar-10-batches-bin` when that does, else `undefined`.
 * Errors other than a missing file (a link loop, no permission) are thrown.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { findBatchFolder } from "./cifar10_binary.ts";
 *
 * const dir = await Deno.makeTempDir();
 * await Deno.mkdir(`${dir}/cifar-10-batches-bin`);
 * await Deno.writeFile(`${dir}/cifar-10-batches-bin/test_batch.bin`, new Uint8Array(3073));
 * assert.equal(await findBatchFolder(dir, "test"), `${dir}/cifar-10-batches-bin`);
 * assert.equal(await findBatchFolder(dir, "train"), undefined);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function findBatchFolder(
  dir: string,
  split: Cifar10Split,
): Promise<string | undefined> {
  const probe = batchNames(split)[0];
  for (const folder of [dir, join(dir, NESTED_FOLDER)]) {
    if (await exists(join(folder, probe))) return folder;
  }
  return undefined;
}

function checkFileSize(file: string, size: number): void {
  if (size === 0) {
    throw new RangeError(`CIFAR-10 file "${file}" is empty`);
  }
  if (size % RECORD_BYTES !== 0) {
    const whole = Math.floor(size / RECORD_BYTES);
    throw new RangeError(
      `CIFAR-10 file "${file}" has ${size} bytes, not a multiple of ${RECORD_BYTES}: ` +
        `record ${whole} at byte offset ${whole * RECORD_BYTES} is truncated to ${
          size - whole * RECORD_BYTES
        } bytes`,
    );
  }
}

async function readClassNames(folder: string): Promise<string[]> {
  const file = join(folder, "batches.meta.txt");
  let text: string;
  try {
    text = new TextDecoder().decode(await readDataFile(file, "CIFAR-10 class file", 65536));
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return [...CIFAR10_CLASSES];
    throw error;
  }
  const names = text.split(/\r?\n/).map((line) => line.trim()).filter((line) => line !== "");
  if (names.length !== 10) {
    throw new TypeError(
      `CIFAR-10 class file "${file}" has ${names.length} non-empty lines, expected 10 class names`,
    );
  }
  return names;
}

async function exists(file: string): Promise<boolean> {
  try {
    await Deno.stat(file);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}
