/**
 * Internal: decoding one JPEG or PNG file to 8-bit RGB, and a chunk of files at
 * a time (the unit of work of the decode workers). Not part of the public API.
 *
 * @module
 */

import { decode as decodeJpeg } from "jpeg-js";
import { PNG } from "pngjs";
import { Buffer } from "node:buffer";

/** One decoded image: `width × height × 3` bytes, RGB, row-major. */
export interface DecodedImage {
  width: number;
  height: number;
  rgb: Uint8Array;
}

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

/**
 * Decodes a JPEG or PNG (chosen by its signature, not its name) to RGB.
 * Grayscale becomes R = G = B, CMYK is converted, alpha is dropped.
 *
 * @throws {TypeError} naming `file` if the bytes are not a decodable JPEG or PNG.
 */
export function decodeImage(bytes: Uint8Array, file: string): DecodedImage {
  if (bytes.length >= 3 && bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff) {
    let image;
    try {
      image = decodeJpeg(bytes, {
        useTArray: true,
        formatAsRGBA: false,
        tolerantDecoding: false,
        maxResolutionInMP: 100,
        maxMemoryUsageInMB: 1024,
      });
    } catch (error) {
      throw new TypeError(`Cannot decode JPEG image "${file}": ${messageOf(error)}`, {
        cause: error,
      });
    }
    checkDimensions(image.width, image.height, file);
    return { width: image.width, height: image.height, rgb: image.data };
  }
  if (bytes.length >= 8 && PNG_SIGNATURE.every((b, i) => bytes[i] === b)) {
    let image: { width: number; height: number; data: Uint8Array };
    try {
      image = PNG.sync.read(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
    } catch (error) {
      throw new TypeError(`Cannot decode PNG image "${file}": ${messageOf(error)}`, {
        cause: error,
      });
    }
    checkDimensions(image.width, image.height, file);
    const pixels = image.width * image.height;
    const rgba = image.data;
    if (rgba.length !== pixels * 4) {
      throw new TypeError(
        `Cannot decode PNG image "${file}": expected ${pixels * 4} RGBA bytes, got ${rgba.length}`,
      );
    }
    const rgb = new Uint8Array(pixels * 3);
    for (let p = 0, s = 0, d = 0; p < pixels; p++, s += 4, d += 3) {
      rgb[d] = rgba[s];
      rgb[d + 1] = rgba[s + 1];
      rgb[d + 2] = rgba[s + 2];
    }
    return { width: image.width, height: image.height, rgb };
  }
  const head = Array.from(bytes.subarray(0, 8), (b) => b.toString(16).padStart(2, "0")).join(" ");
  throw new TypeError(
    `Cannot decode image "${file}": not a JPEG or PNG file (first bytes: ${head || "none"})`,
  );
}

function checkDimensions(width: number, height: number, file: string): void {
  if (!(width > 0 && height > 0)) {
    throw new TypeError(`Cannot decode image "${file}": invalid size ${width}×${height}`);
  }
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** A failure while reading or decoding one file of a chunk. */
export interface ChunkError {
  /** Index of the failing file within the chunk. */
  index: number;
  /** The error's class name (`TypeError`, `NotFound`, ...). */
  name: string;
  message: string;
}

/**
 * The decoded images of a chunk of files, packed for transfer between threads:
 * image `k` is `pixels.subarray(offsets[k], offsets[k] + widths[k] * heights[k] * 3)`.
 * When `error` is set, only the images before `error.index` were decoded.
 */
export interface ChunkResult {
  count: number;
  widths: Int32Array;
  heights: Int32Array;
  offsets: Float64Array;
  pixels: Uint8Array;
  error?: ChunkError;
}

/** Reads and decodes `files` in order, stopping at the first failure. */
export function decodeChunk(files: readonly string[]): ChunkResult {
  const images: DecodedImage[] = [];
  let error: ChunkError | undefined;
  for (let k = 0; k < files.length; k++) {
    try {
      images.push(decodeImage(Deno.readFileSync(files[k]), files[k]));
    } catch (e) {
      const err = e instanceof Error ? e : new Error(String(e));
      error = { index: k, name: err.name, message: err.message };
      break;
    }
  }
  const count = images.length;
  const widths = new Int32Array(count);
  const heights = new Int32Array(count);
  const offsets = new Float64Array(count);
  let total = 0;
  for (let k = 0; k < count; k++) {
    widths[k] = images[k].width;
    heights[k] = images[k].height;
    offsets[k] = total;
    total += images[k].rgb.length;
  }
  const pixels = new Uint8Array(total);
  for (let k = 0; k < count; k++) pixels.set(images[k].rgb, offsets[k]);
  return error ? { count, widths, heights, offsets, pixels, error } : {
    count,
    widths,
    heights,
    offsets,
    pixels,
  };
}

/** Rebuilds the error a chunk reported, keeping its class where possible. */
export function chunkErrorToError(error: ChunkError): Error {
  switch (error.name) {
    case "TypeError":
      return new TypeError(error.message);
    case "RangeError":
      return new RangeError(error.message);
    default: {
      const errors = Deno.errors as unknown as Record<
        string,
        (new (message: string) => Error) | undefined
      >;
      const DenoError = errors[error.name];
      return DenoError ? new DenoError(error.message) : new Error(error.message);
    }
  }
}
