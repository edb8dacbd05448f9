/**
 * The data readers' layer over `io/bounded_read.ts`: their error style for refused reads
 * (`"<What> "<path>" must be a regular file, got a FIFO (named pipe)"`, keeping the file
 * system's error class for a missing file or a link loop), reading UTF-8 text with bounded
 * gunzipping, expanding a folder into its data files, and clipping long values in messages.
 * Internal.
 *
 * @module
 */
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  type ReadFail,
  readRegularFile,
  readRegularFileSync,
  statPath,
  statRegularFile,
} from "../io/bounded_read.ts";

/** Largest text file (or decompressed `.gz` content) the series readers accept: 256 MiB. */
export const MAX_TEXT_BYTES = 256 * 1024 * 1024;

/**
 * The errors of the data readers for a refused read of `path`, named `what` ("CSV file"): a
 * `TypeError` for another kind of file than a regular one, a `RangeError` for one over
 * `maxBytes`, and otherwise the file system's own class (`Deno.errors.NotFound`,
 * `Deno.errors.FilesystemLoop`, …) with a message naming `what` and the path.
 */
function dataReadFail(path: string, what: string, maxBytes = Infinity): ReadFail {
  return (kind, problem, cause, found) => {
    const file = `${what} "${path}"`;
    if (kind === "not-regular") {
      return new TypeError(`${file} must be a regular file, got ${found}`, { cause });
    }
    if (kind === "too-large") {
      return new RangeError(`${file} must have at most ${maxBytes} bytes, got ${found}`);
    }
    const phrase = kind === "loop"
      ? "is a symbolic link loop"
      : kind === "not-found"
      ? "does not exist"
      : "cannot be read";
    const message = `${file} ${phrase}: ${cause instanceof Error ? cause.message : problem}`;
    const Class = cause instanceof Error
      ? cause.constructor as new (message: string, options?: ErrorOptions) => Error
      : Error;
    return new Class(message, { cause });
  };
}

/**
 * The bytes of the regular file `path` of at most `maxBytes` bytes (checked before it is
 * opened), with the errors of {@linkcode dataReadFail}.
 */
export function readDataFile(path: string, what: string, maxBytes: number): Promise<Uint8Array> {
  return readRegularFile(path, maxBytes, dataReadFail(path, what, maxBytes));
}

/**
 * The info of the regular file `path` of at most `maxBytes` bytes, with the errors of
 * {@linkcode dataReadFail}.
 */
export function statDataFile(path: string, what: string, maxBytes: number): Promise<Deno.FileInfo> {
  return statRegularFile(path, dataReadFail(path, what, maxBytes), maxBytes);
}

/** Synchronous {@linkcode readDataFile}, for the image decode workers. */
export function readDataFileSync(path: string, what: string, maxBytes: number): Uint8Array {
  return readRegularFileSync(path, maxBytes, dataReadFail(path, what, maxBytes));
}

/**
 * The files to read: `paths` as given, or the `*.<extension>` and `*.<extension>.gz` files of a
 * folder in name order. `what` names the data in errors ("CSV series", "NDBC files").
 */
export async function listDataFiles(
  paths: string | URL | readonly (string | URL)[],
  extension: string,
  what: string,
): Promise<string[]> {
  const toPath = (p: string | URL): string => p instanceof URL ? fileURLToPath(p) : p;
  if (typeof paths !== "string" && !(paths instanceof URL)) {
    if (paths.length === 0) throw new RangeError(`Cannot read ${what}: no file given`);
    return paths.map(toPath);
  }
  const path = toPath(paths);
  if (!(await statPath(path, dataReadFail(path, what))).isDirectory) return [path];
  const pattern = new RegExp(`\\.${extension}(\\.gz)?$`, "i");
  const names: string[] = [];
  for await (const entry of Deno.readDir(path)) {
    if (pattern.test(entry.name)) names.push(entry.name);
  }
  if (names.length === 0) {
    throw new RangeError(
      `Cannot read ${what} from ${path}: it holds no *.${extension} or *.${extension}.gz file`,
    );
  }
  return names.sort().map((n) => join(path, n));
}

/**
 * Reads a regular file of at most {@linkcode MAX_TEXT_BYTES} as UTF-8 text, gunzipping names that
 * end in `.gz` (their content bounded the same way).
 *
 * @throws {TypeError} If the path is not a regular file or the gzip data is corrupt or truncated.
 * @throws {RangeError} If the file or its content is too large.
 */
export async function readText(path: string, what: string): Promise<string> {
  const bytes = await readRegularFile(
    path,
    MAX_TEXT_BYTES,
    dataReadFail(path, what, MAX_TEXT_BYTES),
  );
  if (!/\.gz$/i.test(path)) return new TextDecoder().decode(bytes);
  return new TextDecoder().decode(await gunzip(bytes, path, what));
}

/** Decompresses gzip `bytes`, refusing corrupt data and content over {@linkcode MAX_TEXT_BYTES}. */
async function gunzip(bytes: Uint8Array, path: string, what: string): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let total = 0;
  const reader = new Blob([new Uint8Array(bytes)]).stream()
    .pipeThrough(new DecompressionStream("gzip")).getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      total += value.length;
      if (total > MAX_TEXT_BYTES) {
        throw new RangeError(
          `${what} "${path}" must decompress to at most ${MAX_TEXT_BYTES} bytes, got more`,
        );
      }
      chunks.push(value);
    }
  } catch (error) {
    await reader.cancel().catch(() => {});
    if (error instanceof RangeError) throw error;
    throw new TypeError(
      `${what} "${path}" is not valid gzip data (corrupt or truncated): ${messageOf(error)}`,
      { cause: error },
    );
  }
  const out = new Uint8Array(total);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

/** A value shortened to 40 characters for an error message. */
export function clip(s: string): string {
  return s.length > 40 ? s.slice(0, 37) + "..." : s;
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
