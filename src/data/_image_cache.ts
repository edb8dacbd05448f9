/**
 * Internal: the decode cache of `readImageFolder`. A decoded image folder is
 * stored as one safetensors file (`pixels`: U8 [N, H, W, 3], `labels`: I32 [N];
 * class names, relative file names and a content checksum in the metadata) whose
 * name carries a hash of the file list with sizes and modification times. Not
 * part of the public API.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { writeFileAtomic } from "../base/atomic_write.ts";
import { MAX_IMAGE_PIXELS } from "./_decode_image.ts";
import { readDataFile } from "./_files.ts";
import { basename, join, resolve } from "node:path";
import { parseSafetensors, serializeSafetensors, toInt32 } from "../io/safetensors.ts";
import { datasetChecksum, type ImageDataset } from "./image_dataset.ts";

/** What identifies one source file in the cache key. */
export interface CachedFile {
  /** Path relative to the dataset folder, with "/" separators. */
  path: string;
  size: number;
  /** Modification time in ms since the epoch, -1 when unknown. */
  mtime: number;
}

/** Where a cache entry lives and the full key it must carry. */
export interface CacheLocation {
  path: string;
  key: string;
}

const FORMAT = "diffprobe.image-folder-cache";
const VERSION = "1";
/** Part of the key: a different decoder may produce different pixels. */
const DECODER = "jpeg-js@0.4.4+pngjs@7.0.0";

/** The cache file for this exact file list (names, sizes, mtimes), split and class order. */
export function imageCacheLocation(
  cacheDir: string,
  dir: string,
  split: string | undefined,
  classes: readonly string[],
  files: readonly CachedFile[],
): CacheLocation {
  const hash = createHash("sha256");
  hash.update(
    JSON.stringify({ format: FORMAT, version: VERSION, decoder: DECODER, split, classes }),
  );
  for (const f of files) hash.update(`\n${f.path}\t${f.size}\t${f.mtime}`);
  const key = hash.digest("hex");
  const name = basename(resolve(dir)).replace(/[^A-Za-z0-9._-]+/g, "_").slice(0, 40) || "root";
  const splitPart = split === undefined ? "" : `-${split.replace(/[^A-Za-z0-9._-]+/g, "_")}`;
  return {
    path: join(cacheDir, `images-${name}${splitPart}-${key.slice(0, 24)}.safetensors`),
    key,
  };
}

/**
 * The cached dataset (without `files`), or undefined when there is no usable
 * entry. A missing file is silent; an unreadable, truncated, corrupt or
 * mismatched one is reported with `console.warn` so that it gets rebuilt.
 */
export async function readImageCache(
  location: CacheLocation,
  classes: readonly string[],
  files: readonly string[],
  labels: Int32Array,
): Promise<ImageDataset | undefined> {
  let bytes: Uint8Array;
  try {
    // Pixels, labels and metadata (file names) of the largest images allowed.
    const maxBytes = files.length * (MAX_IMAGE_PIXELS * 3 + 4 + 4096) + 65536;
    bytes = await readDataFile(location.path, "Image cache", maxBytes);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    warn(location.path, `cannot be read (${messageOf(error)}); rebuilding it`);
    return undefined;
  }
  try {
    return await decodeCache(bytes, location, classes, files, labels);
  } catch (error) {
    warn(location.path, `is corrupt (${messageOf(error)}); rebuilding it`);
    return undefined;
  }
}

async function decodeCache(
  bytes: Uint8Array,
  location: CacheLocation,
  classes: readonly string[],
  files: readonly string[],
  labels: Int32Array,
): Promise<ImageDataset> {
  const file = parseSafetensors(bytes, location.path);
  const meta = file.metadata;
  if (meta.format !== FORMAT || meta.version !== VERSION) {
    throw new TypeError(`unexpected format ${meta.format} version ${meta.version}`);
  }
  if (meta.key !== location.key) throw new TypeError("its key does not match the file list");
  const pixelsEntry = file.tensors.get("pixels");
  const labelsEntry = file.tensors.get("labels");
  if (!pixelsEntry || !labelsEntry) throw new TypeError("tensor pixels or labels is missing");
  const [size, height, width, channels] = pixelsEntry.shape;
  if (
    pixelsEntry.dtype !== "U8" || pixelsEntry.shape.length !== 4 || channels !== 3 ||
    size !== files.length
  ) {
    throw new TypeError(
      `pixels is ${pixelsEntry.dtype} [${pixelsEntry.shape}], expected U8 [${files.length}, H, W, 3]`,
    );
  }
  if (labelsEntry.dtype !== "I32" || labelsEntry.shape.join() !== `${size}`) {
    throw new TypeError(
      `labels is ${labelsEntry.dtype} [${labelsEntry.shape}], expected I32 [${size}]`,
    );
  }
  if (meta.classes !== JSON.stringify(classes)) throw new TypeError("its classes differ");
  if (meta.files !== JSON.stringify(files)) throw new TypeError("its file list differs");
  const cachedLabels = toInt32(labelsEntry);
  if (cachedLabels.some((v, i) => v !== labels[i])) throw new TypeError("its labels differ");
  const ds: ImageDataset = {
    pixels: pixelsEntry.bytes,
    labels: cachedLabels,
    classes: [...classes],
    size,
    height,
    width,
  };
  const checksum = await datasetChecksum(ds);
  if (meta.checksum !== checksum) {
    throw new TypeError(`checksum ${checksum.slice(0, 12)}… does not match the stored one`);
  }
  return ds;
}

/**
 * Stores `ds` at `location`, atomically (`writeFileAtomic`: a temporary file renamed into place,
 * removed on failure).
 * A failure is reported with `console.warn`: the dataset is still usable.
 */
export async function writeImageCache(
  location: CacheLocation,
  ds: ImageDataset,
  files: readonly string[],
): Promise<void> {
  try {
    const bytes = serializeSafetensors({
      pixels: { dtype: "U8", shape: [ds.size, ds.height, ds.width, 3], data: ds.pixels },
      labels: { dtype: "I32", shape: [ds.size], data: ds.labels },
    }, {
      format: FORMAT,
      version: VERSION,
      key: location.key,
      checksum: await datasetChecksum(ds),
      classes: JSON.stringify(ds.classes),
      files: JSON.stringify(files),
    });
    await Deno.mkdir(join(location.path, ".."), { recursive: true });
    await writeFileAtomic(location.path, bytes);
  } catch (error) {
    warn(location.path, `could not be written (${messageOf(error)})`);
  }
}

function warn(path: string, problem: string): void {
  console.warn(`Image cache "${path}" ${problem}`);
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
