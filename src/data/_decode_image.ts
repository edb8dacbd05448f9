/**
 * Internal: decoding one JPEG or PNG file to 8-bit RGB, and a chunk of files at
 * a time (the unit of work of the decode workers). Not part of the public API.
 *
 * @module
 */

import { decode as decodeJpeg } from "jpeg-js";
import { PNG } from "pngjs";
import { Buffer } from "node:buffer";
import { inflateSync } from "node:zlib";
import { readDataFileSync } from "./_files.ts";

/**
 * Largest image accepted, in pixels: 2^25 = 33,554,432 (e.g. 8192 × 4096). Checked on the size in
 * the PNG or JPEG header before decoding, so a small file that declares a huge image (a
 * "decompression bomb") is refused without allocating it.
 */
export const MAX_IMAGE_PIXELS = 2 ** 25;
/** Largest image file read: 256 MiB. */
export const MAX_IMAGE_FILE_BYTES = 256 * 1024 * 1024;

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
    checkDeclaredSize(jpegSize(bytes, file), file, "JPEG");
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
    const size = pngSize(bytes, file);
    checkDeclaredSize(size, file, "PNG");
    if (size.interlaced) checkInterlacedData(bytes, size, file);
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

/** The size a PNG declares in its IHDR chunk, and whether it is interlaced. */
function pngSize(
  bytes: Uint8Array,
  file: string,
): { width: number; height: number; interlaced: boolean } {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const ihdr = bytes.length >= 33 && String.fromCharCode(...bytes.subarray(12, 16)) === "IHDR";
  if (!ihdr) throw new TypeError(`Cannot decode PNG image "${file}": no IHDR chunk at its start`);
  return { width: view.getUint32(16), height: view.getUint32(20), interlaced: bytes[28] === 1 };
}

/**
 * The size in a JPEG's first frame header (SOF0–SOF15 but DHT, JPG and DAC), found by walking the
 * marker segments from the start.
 */
function jpegSize(bytes: Uint8Array, file: string): { width: number; height: number } {
  let at = 2;
  while (at + 4 <= bytes.length) {
    if (bytes[at] !== 0xff) break;
    const marker = bytes[at + 1];
    if (marker === 0xff) { // fill byte
      at++;
      continue;
    }
    if (marker === 0x01 || (marker >= 0xd0 && marker <= 0xd8)) { // no length field
      at += 2;
      continue;
    }
    if (marker === 0xd9 || marker === 0xda) break; // end of image, or scan data before a frame
    const length = (bytes[at + 2] << 8) | bytes[at + 3];
    const isFrame = marker >= 0xc0 && marker <= 0xcf && ![0xc4, 0xc8, 0xcc].includes(marker);
    if (isFrame && at + 9 <= bytes.length) {
      return {
        height: (bytes[at + 5] << 8) | bytes[at + 6],
        width: (bytes[at + 7] << 8) | bytes[at + 8],
      };
    }
    at += 2 + length;
  }
  throw new TypeError(`Cannot decode JPEG image "${file}": no frame header (SOF) before its data`);
}

/** Refuses a declared size over {@linkcode MAX_IMAGE_PIXELS} before anything is decoded. */
function checkDeclaredSize(
  size: { width: number; height: number },
  file: string,
  format: string,
): void {
  const pixels = size.width * size.height;
  if (pixels > MAX_IMAGE_PIXELS) {
    throw new RangeError(
      `${format} image "${file}" must have at most ${MAX_IMAGE_PIXELS} pixels, got ` +
        `${size.width}×${size.height} = ${pixels} in its header`,
    );
  }
}

/**
 * Interlaced PNGs are inflated by pngjs without a bound: inflate their image data here first,
 * stopping at the most an interlaced image of the declared size can hold (8 bytes per pixel, 16-bit
 * RGBA, plus filter bytes).
 */
function checkInterlacedData(
  bytes: Uint8Array,
  size: { width: number; height: number },
  file: string,
): void {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const parts: Uint8Array[] = [];
  for (let at = 8; at + 12 <= bytes.length;) {
    const length = view.getUint32(at);
    const type = String.fromCharCode(...bytes.subarray(at + 4, at + 8));
    if (type === "IDAT") {
      parts.push(bytes.subarray(at + 8, Math.min(at + 8 + length, bytes.length)));
    }
    if (type === "IEND") break;
    at += 12 + length;
  }
  const limit = size.width * size.height * 8 + 7 * (size.height + 8) + 1024;
  try {
    inflateSync(Buffer.concat(parts), { maxOutputLength: limit });
  } catch (error) {
    if (error instanceof RangeError) {
      throw new RangeError(
        `PNG image "${file}" must hold at most ${limit} bytes of image data for its ` +
          `${size.width}×${size.height} pixels, got more (a decompression bomb?)`,
      );
    }
    // Other inflate errors are left to the decoder, which names them.
  }
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
      const bytes = readDataFileSync(files[k], "Image file", MAX_IMAGE_FILE_BYTES);
      images.push(decodeImage(bytes, files[k]));
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
