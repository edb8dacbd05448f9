/**
 * File helpers shared by the data readers: reading a file only after checking that it is a
 * regular file of bounded size (a path to `/dev/zero` or a FIFO would otherwise exhaust memory or
 * hang), bounded gunzipping, expanding a folder into its data files, and clipping long values in
 * messages. Internal.
 *
 * @module
 */
import { join } from "node:path";
import { fileURLToPath } from "node:url";

/** Largest text file (or decompressed `.gz` content) the series readers accept: 256 MiB. */
export const MAX_TEXT_BYTES = 256 * 1024 * 1024;

/**
 * `Deno.stat` of `path` (following symlinks), with errors that name `what` and the path: a
 * missing file stays `Deno.errors.NotFound`, a symlink loop `Deno.errors.FilesystemLoop`.
 */
export async function statFile(path: string, what: string): Promise<Deno.FileInfo> {
  try {
    return await Deno.stat(path);
  } catch (error) {
    throw renamed(error, what, path);
  }
}

/** Synchronous {@linkcode statFile}. */
export function statFileSync(path: string, what: string): Deno.FileInfo {
  try {
    return Deno.statSync(path);
  } catch (error) {
    throw renamed(error, what, path);
  }
}

/**
 * Throws unless `info` describes a regular file of at most `maxBytes` bytes: a `TypeError` for
 * another kind of file (directory, FIFO, device, socket), a `RangeError` for one too large.
 */
export function requireRegularFile(
  info: Deno.FileInfo,
  path: string,
  what: string,
  maxBytes: number,
): void {
  if (!info.isFile) {
    throw new TypeError(`${what} "${path}" must be a regular file, got a ${kindOf(info)}`);
  }
  if (info.size > maxBytes) {
    throw new RangeError(
      `${what} "${path}" must have at most ${maxBytes} bytes, got ${info.size} bytes`,
    );
  }
}

/**
 * The bytes of `path`, read only after {@linkcode statFile} and {@linkcode requireRegularFile}
 * accept it, so that no special file is opened and no oversized file is read.
 */
export async function readRegularFile(
  path: string,
  what: string,
  maxBytes: number,
): Promise<Uint8Array> {
  requireRegularFile(await statFile(path, what), path, what, maxBytes);
  try {
    using file = await Deno.open(path);
    // The file may have been replaced since the stat: check the opened file itself.
    const info = await file.stat();
    requireRegularFile(info, path, what, maxBytes);
    const bytes = new Uint8Array(info.size);
    let at = 0;
    while (at < bytes.length) {
      const n = await file.read(bytes.subarray(at));
      if (n === null) break;
      at += n;
    }
    return at === bytes.length ? bytes : bytes.subarray(0, at);
  } catch (error) {
    throw renamed(error, what, path);
  }
}

/** Synchronous {@linkcode readRegularFile}, for the decode workers. */
export function readRegularFileSync(path: string, what: string, maxBytes: number): Uint8Array {
  requireRegularFile(statFileSync(path, what), path, what, maxBytes);
  try {
    using file = Deno.openSync(path);
    const info = file.statSync();
    requireRegularFile(info, path, what, maxBytes);
    const bytes = new Uint8Array(info.size);
    let at = 0;
    while (at < bytes.length) {
      const n = file.readSync(bytes.subarray(at));
      if (n === null) break;
      at += n;
    }
    return at === bytes.length ? bytes : bytes.subarray(0, at);
  } catch (error) {
    throw renamed(error, what, path);
  }
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
  if (!(await statFile(path, what)).isDirectory) return [path];
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
  const bytes = await readRegularFile(path, what, MAX_TEXT_BYTES);
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

/** What kind of file `info` describes, for messages. */
export function kindOf(info: Deno.FileInfo): string {
  if (info.isFile) return "regular file";
  if (info.isDirectory) return "directory";
  if (info.isFifo) return "FIFO (named pipe)";
  if (info.isCharDevice) return "character device";
  if (info.isBlockDevice) return "block device";
  if (info.isSocket) return "socket";
  return "special file";
}

/** `error` with a message naming `what` and `path`, keeping its class where it has one. */
function renamed(error: unknown, what: string, path: string): Error {
  if (!(error instanceof Error)) return new Error(`${what} "${path}": ${String(error)}`);
  if (error.message.includes(`"${path}"`)) return error;
  const problem = error instanceof Deno.errors.FilesystemLoop
    ? "is a symbolic link loop"
    : error instanceof Deno.errors.NotFound
    ? "does not exist"
    : "cannot be read";
  const Class = error.constructor as new (message: string, options?: ErrorOptions) => Error;
  try {
    return new Class(`${what} "${path}" ${problem}: ${error.message}`, { cause: error });
  } catch {
    return new Error(`${what} "${path}" ${problem}: ${error.message}`, { cause: error });
  }
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
