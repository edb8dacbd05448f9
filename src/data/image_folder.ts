/**
 * A reader for labelled image folders: one sub-folder per class holding JPEG or
 * PNG files, optionally under a split folder (`train/`, `test/`, ...), the layout
 * of torchvision's `ImageFolder`:
 *
 * ```text
 * <dir>/<split>/<class>/<name>.{jpg,jpeg,png}
 * ```
 *
 * Images are decoded to 8-bit RGB in parallel workers and packed into one
 * {@linkcode ImageDataset}. With `cacheDir`, the decoded dataset is stored as a
 * safetensors file so later reads skip decoding.
 *
 * @module
 */

import { fileURLToPath } from "node:url";
import { join, sep as SEP } from "node:path";
import { notice } from "../base/notice.ts";
import { nonNegativeInteger } from "../base/validate.ts";
import { chunkErrorToError, type ChunkResult, decodeChunk } from "./_decode_image.ts";
import type { DecodeRequest, DecodeResponse } from "./_decode_worker.ts";
import {
  type CacheLocation,
  imageCacheLocation,
  readImageCache,
  writeImageCache,
} from "./_image_cache.ts";
import { describeKind } from "../io/bounded_read.ts";
import type { ImageDataset } from "./image_dataset.ts";

/**
 * Options of {@linkcode readImageFolder}.
 */
export interface ReadImageFolderOptions {
  /** Sub-folder holding the class folders, e.g. `"train"`. Default: none, `dir` holds them. */
  split?: string;
  /**
   * Class folder names in label order; other folders are ignored. Default: every
   * sub-folder not starting with ".", sorted by name (UTF-16 code
   * unit order, independent of locale).
   */
  classes?: readonly string[];
  /** Called with the number of images decoded so far (at most every 256 images). */
  onProgress?: (done: number, total: number) => void;
  /**
   * A folder for the decode cache (created if missing). The decoded dataset is
   * stored there as one safetensors file whose name includes a hash of the
   * file list with sizes and modification times, so changed files miss the cache.
   */
  cacheDir?: string;
  /**
   * Decode workers to start; 0 decodes on the calling thread. Default: one per
   * CPU (at most 8) for 2,048 files or more, else 0.
   */
  workers?: number;
}

/** File extensions read as images (compared lower-case). */
const IMAGE_EXTENSIONS = [".jpg", ".jpeg", ".png"];
/** Largest decoded dataset: 2^32 bytes (4 GiB) of RGB pixels. */
const MAX_DATASET_BYTES = 2 ** 32;
/** Files per unit of work (and per progress report). */
const CHUNK = 256;

/**
 * Reads a folder of class sub-folders of JPEG/PNG images into an
 * {@linkcode ImageDataset}.
 *
 * Labels follow the class order; within a class, files are sorted by name
 * (UTF-16 code unit order, not locale order), so the result is the same on every
 * machine. All images must have the same size. Grayscale images are expanded to
 * RGB, CMYK JPEGs converted and alpha channels dropped. JPEGs are decoded with
 * jpeg-js, which upsamples chroma by repeating samples where libjpeg (used by
 * PIL) interpolates, so pixels can differ from PIL's by a few
 * levels. `files` holds each image's path (joined onto `dir`).
 *
 * Hostile folders are refused before anything is decoded: each image's size is read from its PNG
 * or JPEG header and must be at most 2^25 (33,554,432) pixels, each file at most 256 MiB and the
 * whole decoded dataset at most 4 GiB; symbolic links (split, class folders, images) must resolve
 * inside `dir`; FIFOs, devices and sockets named like images are errors.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { readImageFolder } from "@diffprobe/core";
 * import { PNG } from "pngjs";
 * import { Buffer } from "node:buffer";
 *
 * const dir = await Deno.makeTempDir();
 * for (const [name, value] of [["cat", 10], ["dog", 20]] as const) {
 *   const png = new PNG({ width: 2, height: 1 });
 *   png.data = Buffer.from([value, value, value, 255, value, value, value, 255]);
 *   await Deno.mkdir(`${dir}/val/${name}`, { recursive: true });
 *   await Deno.writeFile(`${dir}/val/${name}/0.png`, PNG.sync.write(png));
 * }
 * const ds = await readImageFolder(dir, { split: "val" });
 * assert.deepEqual([ds.size, ds.height, ds.width], [2, 1, 2]);
 * assert.deepEqual(ds.classes, ["cat", "dog"]);
 * assert.deepEqual(Array.from(ds.labels), [0, 1]);
 * assert.equal(ds.pixels[6], 20); // the dog's first red value
 * await Deno.remove(dir, { recursive: true });
 * ```
 *
 * @param dir The dataset folder.
 * @param options Split, class order, progress callback, cache folder, workers.
 * @returns The decoded images with labels, class names and file paths.
 * @throws {Deno.errors.NotFound} If the folder, split or a given class is missing.
 * @throws {TypeError} If there are no classes or images, an image cannot be
 *   decoded, an entry is a special file, or a link leads outside `dir` (the
 *   message names the file).
 * @throws {RangeError} If an image's size differs from the first image's (the
 *   message names both files and sizes), or an image or the dataset exceeds
 *   the limits above.
 */
export async function readImageFolder(
  dir: string,
  options: ReadImageFolderOptions = {},
): Promise<ImageDataset> {
  const root = options.split === undefined ? dir : join(dir, options.split);
  await requireDirectory(root, options.split === undefined ? "Image folder" : "Split folder");
  const base = await Deno.realPath(dir);
  await requireInside(root, base, "Split folder");
  const classes = options.classes ? checkClasses(options.classes) : await listClasses(root);

  const relative: string[] = [];
  const labelOf: number[] = [];
  for (let label = 0; label < classes.length; label++) {
    const classDir = join(root, classes[label]);
    await requireDirectory(classDir, "Class folder");
    await requireInside(classDir, base, "Class folder");
    const names = await listImages(classDir, base);
    if (names.length === 0) {
      throw new TypeError(`Class folder "${classDir}" contains no .jpg, .jpeg or .png files`);
    }
    const prefix = options.split === undefined
      ? classes[label]
      : `${options.split}/${classes[label]}`;
    for (const name of names) {
      relative.push(`${prefix}/${name}`);
      labelOf.push(label);
    }
  }
  const files = relative.map((rel) => join(dir, rel));
  const labels = Int32Array.from(labelOf);

  let cache: CacheLocation | undefined;
  if (options.cacheDir !== undefined) {
    const stats = statFiles(files, relative);
    cache = imageCacheLocation(options.cacheDir, dir, options.split, classes, stats);
    const hit = await readImageCache(cache, classes, relative, labels);
    if (hit) {
      options.onProgress?.(hit.size, hit.size);
      return { ...hit, files };
    }
  }

  const ds = await decodeImages(files, labels, classes, options);
  if (cache !== undefined) await writeImageCache(cache, ds, relative);
  return ds;
}

async function decodeImages(
  files: string[],
  labels: Int32Array,
  classes: string[],
  options: ReadImageFolderOptions,
): Promise<ImageDataset> {
  const total = files.length;
  let pixels: Uint8Array | undefined;
  let height = 0;
  let width = 0;
  let done = 0;

  const consume = (start: number, result: ChunkResult): void => {
    for (let k = 0; k < result.count; k++) {
      const i = start + k;
      const h = result.heights[k];
      const w = result.widths[k];
      if (pixels === undefined) {
        height = h;
        width = w;
        if (total * h * w * 3 > MAX_DATASET_BYTES) {
          throw new RangeError(
            `Image folder must decode to at most ${MAX_DATASET_BYTES} bytes, got ${total} images ` +
              `of ${w}×${h} pixels (as "${files[0]}") = ${total * h * w * 3} bytes`,
          );
        }
        pixels = new Uint8Array(total * h * w * 3);
      } else if (h !== height || w !== width) {
        throw new RangeError(
          `Image "${files[i]}" is ${w}×${h} pixels but "${files[0]}" is ${width}×${height}: ` +
            `all images must have the same size`,
        );
      }
      const bytes = h * w * 3;
      pixels.set(
        result.pixels.subarray(result.offsets[k], result.offsets[k] + bytes),
        i * bytes,
      );
    }
    if (result.error) throw chunkErrorToError(result.error);
    done += result.count;
    options.onProgress?.(done, total);
  };

  if (options.workers !== undefined) nonNegativeInteger(options.workers, "Workers");
  const workers = options.workers ??
    (total >= 2048 && navigator.hardwareConcurrency >= 2 && workersMayStart(true)
      ? Math.min(navigator.hardwareConcurrency, 8)
      : 0);
  if (workers > 0 && !workersMayStart(false)) {
    throw new TypeError(
      `Image decode workers need read access to the library's source folder ${WORKER_DIR} ` +
        "(their module files): add it to --allow-read, or pass { workers: 0 } to decode on this thread",
    );
  }
  if (workers === 0) {
    for (let start = 0; start < total; start += CHUNK) {
      consume(start, decodeChunk(files.slice(start, start + CHUNK)));
    }
  } else {
    await decodeInWorkers(files, Math.min(workers, Math.ceil(total / CHUNK)), consume);
  }

  return { pixels: pixels!, labels, classes, size: total, height, width, files };
}

/** The folder of the decode worker's modules (`src/`) when they are local files. */
const WORKER_DIR = import.meta.url.startsWith("file:")
  ? fileURLToPath(new URL("../", import.meta.url))
  : null;

/**
 * Whether decode workers can load their modules: local module files need read permission
 * (remote ones, e.g. from JSR, do not). When the default would use workers but they cannot
 * start (`announce`), decoding stays on this thread and this says so once.
 */
function workersMayStart(announce: boolean): boolean {
  if (WORKER_DIR === null) return true;
  if (Deno.permissions.querySync({ name: "read", path: WORKER_DIR }).state === "granted") {
    return true;
  }
  notice(
    "decode-workers",
    `diffprobe: decoding images on one thread: parallel decode workers need read access to ${WORKER_DIR} ` +
      "(their module files); add it to --allow-read to decode in parallel",
    announce,
  );
  return false;
}

/** Decodes `files` in chunks on `count` workers, consuming the results in file order. */
async function decodeInWorkers(
  files: string[],
  count: number,
  consume: (start: number, result: ChunkResult) => void,
): Promise<void> {
  const chunks = Math.ceil(files.length / CHUNK);
  const pending = Array.from({ length: chunks }, () => Promise.withResolvers<ChunkResult>());
  // Results after a failure are never awaited; keep their rejections handled.
  for (const p of pending) p.promise.catch(() => {});
  const url = new URL("./_decode_worker.ts", import.meta.url).href;
  const pool: Worker[] = [];
  let next = 0;
  let stopped = false;
  const fail = (error: Error): void => {
    stopped = true;
    for (const p of pending) p.reject(error);
  };
  const send = (worker: Worker): void => {
    if (stopped || next >= chunks) return;
    const id = next++;
    const request: DecodeRequest = { id, files: files.slice(id * CHUNK, (id + 1) * CHUNK) };
    worker.postMessage(request);
  };
  try {
    for (let w = 0; w < count; w++) {
      const worker = new Worker(url, { type: "module" });
      pool.push(worker);
      worker.onmessage = (event: MessageEvent<DecodeResponse>) => {
        pending[event.data.id].resolve(event.data.result);
        send(worker);
      };
      worker.onerror = (event: ErrorEvent) => {
        event.preventDefault();
        fail(
          new Error(
            `Image decode worker failed: ${event.message}; pass { workers: 0 } to decode on this thread`,
          ),
        );
      };
      send(worker);
    }
    for (let id = 0; id < chunks; id++) {
      consume(id * CHUNK, await pending[id].promise);
    }
  } finally {
    stopped = true;
    for (const worker of pool) worker.terminate();
  }
}

/** Stats every file (size and modification time key the decode cache). */
function statFiles(
  files: string[],
  relative: string[],
): { path: string; size: number; mtime: number }[] {
  // Synchronous stats are about 4× faster than awaited ones for 50,000 files.
  return files.map((file, i) => {
    const info = Deno.statSync(file);
    return { path: relative[i], size: info.size, mtime: info.mtime?.getTime() ?? -1 };
  });
}

async function listClasses(root: string): Promise<string[]> {
  const names: string[] = [];
  for await (const entry of Deno.readDir(root)) {
    if (entry.name.startsWith(".")) continue;
    if (entry.isDirectory || (entry.isSymlink && await isDirectory(join(root, entry.name)))) {
      names.push(entry.name);
    }
  }
  if (names.length === 0) {
    throw new TypeError(`Image folder "${root}" has no class sub-folders`);
  }
  return names.sort(byCodeUnit);
}

function checkClasses(classes: readonly string[]): string[] {
  if (classes.length === 0) throw new TypeError("Classes must not be empty");
  const seen = new Set<string>();
  for (const name of classes) {
    if (typeof name !== "string" || name === "" || /[\\/]/.test(name) || name === "..") {
      throw new TypeError(`Class name ${JSON.stringify(name)} is not a folder name`);
    }
    if (seen.has(name)) throw new TypeError(`Class "${name}" is listed twice`);
    seen.add(name);
  }
  return [...classes];
}

/**
 * The image file names of a class folder, sorted. A symbolic link must resolve inside the dataset
 * folder `base`; a special file (FIFO, device, socket) with an image name is refused.
 */
async function listImages(classDir: string, base: string): Promise<string[]> {
  const names: string[] = [];
  for await (const entry of Deno.readDir(classDir)) {
    if (entry.isDirectory || entry.name.startsWith(".")) continue;
    const lower = entry.name.toLowerCase();
    if (!IMAGE_EXTENSIONS.some((ext) => lower.endsWith(ext))) continue;
    const path = join(classDir, entry.name);
    if (entry.isSymlink) await requireInside(path, base, "Image file");
    else if (!entry.isFile) {
      throw new TypeError(
        `Image file "${path}" must be a regular file, got ${describeKind(await Deno.lstat(path))}`,
      );
    }
    names.push(entry.name);
  }
  return names.sort(byCodeUnit);
}

/**
 * Throws a `TypeError` when `path` resolves (through symbolic links) outside the dataset folder
 * `base` (a real path), so that a link cannot pull in files from elsewhere.
 */
async function requireInside(path: string, base: string, what: string): Promise<void> {
  const real = await Deno.realPath(path).catch((error) => {
    throw error instanceof Error && !error.message.includes(path)
      ? new (error.constructor as ErrorConstructor)(
        `${what} "${path}" cannot be resolved: ${error.message}`,
        { cause: error },
      )
      : error;
  });
  if (real !== base && !real.startsWith(base.endsWith(SEP) ? base : base + SEP)) {
    throw new TypeError(
      `${what} "${path}" must stay inside the image folder "${base}", got a symbolic link to ` +
        `"${real}"`,
    );
  }
}

async function requireDirectory(path: string, what: string): Promise<void> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new Deno.errors.NotFound(`${what} "${path}" does not exist`, { cause: error });
    }
    throw error;
  }
  if (!info.isDirectory) throw new TypeError(`${what} "${path}" is not a directory`);
}

async function isDirectory(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isDirectory;
  } catch {
    return false;
  }
}

function byCodeUnit(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
