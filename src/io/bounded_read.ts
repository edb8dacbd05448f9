/**
 * Bounded file reads for untrusted paths: stat first, refuse anything that is not a regular file
 * (a FIFO would block, `/dev/zero` never ends), never read more than the size the file system
 * reports (or a caller's limit), and read ranges through one file handle so that a file's header
 * can be checked before its body is read.
 *
 * Each function takes a `fail` callback that turns a {@linkcode ReadFailure} kind and a problem
 * text into the error to throw, so every caller keeps its own error class (a `SafetensorsError`
 * for checkpoints, `TypeError`/`RangeError` for configs). Problems never quote file contents.
 *
 * @example Reading a small file, refusing a folder
 * ```ts
 * import assert from "node:assert/strict";
 * import { readRegularFile } from "./bounded_read.ts";
 *
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/a.json`, "{}");
 * const fail = (_kind: string, problem: string) => new Error(problem);
 * assert.equal((await readRegularFile(`${dir}/a.json`, 1024, fail)).length, 2);
 * await assert.rejects(readRegularFile(dir, 1024, fail), /is a directory, not a regular file/);
 * await Deno.remove(dir, { recursive: true });
 * ```
 *
 * @module
 */

/**
 * Why a read was refused: `"not-found"` (no such file), `"not-regular"` (a directory, FIFO,
 * device or socket), `"too-large"` (above the caller's limit), `"loop"` (a symbolic link loop)
 * or `"io"` (any other failure: permissions, a file that shrank while being read).
 */
export type ReadFailure = "not-found" | "not-regular" | "too-large" | "loop" | "io";

/** Builds the error to throw for a refused read; `problem` is a lowercase sentence fragment. */
export type ReadFail = (kind: ReadFailure, problem: string, cause?: unknown) => Error;

/** What a non-regular file is, for messages ("a directory", "a FIFO (named pipe)", …). */
function describeKind(info: Deno.FileInfo): string {
  if (info.isDirectory) return "a directory";
  if (info.isFifo) return "a FIFO (named pipe)";
  if (info.isCharDevice) return "a character device";
  if (info.isBlockDevice) return "a block device";
  if (info.isSocket) return "a socket";
  return "a special file";
}

/**
 * The message and kind for a file-system error (the OS message, which names the operation and
 * the path, never the file's contents).
 */
export function fileSystemFailure(error: unknown): [ReadFailure, string] {
  if (error instanceof Deno.errors.NotFound) return ["not-found", "the file does not exist"];
  if (error instanceof Deno.errors.FilesystemLoop) {
    return ["loop", "the path is a loop of symbolic links"];
  }
  if (error instanceof Deno.errors.IsADirectory) {
    return ["not-regular", "it is a directory, not a regular file"];
  }
  const reason = error instanceof Error ? error.message : String(error);
  return ["io", `the file could not be read (${reason})`];
}

/**
 * Stats `path` (following symbolic links) and returns its info when it is a regular file.
 *
 * @param path The file.
 * @param fail Builds the error for a refusal.
 * @returns The file's info (`size` is its length in bytes).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { statRegularFile } from "./bounded_read.ts";
 *
 * const fail = (kind: string, problem: string) => new Error(`${kind}: ${problem}`);
 * await assert.rejects(statRegularFile("/dev/null", fail), /not-regular: .*character device/);
 * ```
 */
export async function statRegularFile(path: string, fail: ReadFail): Promise<Deno.FileInfo> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(path);
  } catch (error) {
    const [kind, problem] = fileSystemFailure(error);
    throw fail(kind, problem, error);
  }
  if (!info.isFile) {
    throw fail("not-regular", `it is ${describeKind(info)}, not a regular file`);
  }
  return info;
}

/**
 * Opens a regular file for reading after checking, before and after opening, that it is one.
 * The caller closes the handle.
 *
 * @param path The file.
 * @param fail Builds the error for a refusal.
 * @returns The open handle and the file's size in bytes.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { openRegularFile } from "./bounded_read.ts";
 *
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/x`, "abc");
 * const { file, size } = await openRegularFile(`${dir}/x`, (_k, p) => new Error(p));
 * file.close();
 * assert.equal(size, 3);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function openRegularFile(
  path: string,
  fail: ReadFail,
): Promise<{ file: Deno.FsFile; size: number }> {
  await statRegularFile(path, fail);
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path, { read: true });
  } catch (error) {
    const [kind, problem] = fileSystemFailure(error);
    throw fail(kind, problem, error);
  }
  try {
    const info = await file.stat(); // the file actually opened, should the path have changed
    if (!info.isFile) throw fail("not-regular", `it is ${describeKind(info)}, not a regular file`);
    return { file, size: info.size };
  } catch (error) {
    file.close();
    throw error;
  }
}

/**
 * Reads exactly `length` bytes at `offset` of an open file.
 *
 * @param file The open handle.
 * @param offset Where to start, in bytes.
 * @param length How many bytes to read.
 * @param fail Builds the error when the file ends early (it shrank after it was stat'ed).
 * @returns The bytes, in a new array.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { openRegularFile, readAt } from "./bounded_read.ts";
 *
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/x`, "abcdef");
 * const fail = (_k: string, p: string) => new Error(p);
 * const { file } = await openRegularFile(`${dir}/x`, fail);
 * assert.equal(new TextDecoder().decode(await readAt(file, 2, 3, fail)), "cde");
 * file.close();
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function readAt(
  file: Deno.FsFile,
  offset: number,
  length: number,
  fail: ReadFail,
): Promise<Uint8Array> {
  const out = new Uint8Array(length);
  let filled = 0;
  while (filled < length) {
    let n: number | null;
    try {
      if (filled === 0) await file.seek(offset, Deno.SeekMode.Start);
      n = await file.read(out.subarray(filled));
    } catch (error) {
      const [kind, problem] = fileSystemFailure(error);
      throw fail(kind, problem, error);
    }
    if (n === null) {
      throw fail(
        "io",
        `the file ended at byte ${offset + filled}, before byte ${offset + length} ` +
          `(it changed while being read)`,
      );
    }
    filled += n;
  }
  return out;
}

/**
 * Reads a whole regular file of at most `maxBytes` bytes: the size is checked before anything
 * is read, and no more than that size is read even if the file grows.
 *
 * @param path The file.
 * @param maxBytes The largest size accepted.
 * @param fail Builds the error for a refusal (`"too-large"` above `maxBytes`).
 * @returns The file's bytes.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { readRegularFile } from "./bounded_read.ts";
 *
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/big.json`, "x".repeat(100));
 * await assert.rejects(
 *   readRegularFile(`${dir}/big.json`, 10, (kind, p) => new RangeError(`${kind}: ${p}`)),
 *   /too-large: the file is 100 bytes, above the limit of 10 bytes/,
 * );
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function readRegularFile(
  path: string,
  maxBytes: number,
  fail: ReadFail,
): Promise<Uint8Array> {
  const { file, size } = await openRegularFile(path, fail);
  try {
    if (size > maxBytes) {
      throw fail("too-large", `the file is ${size} bytes, above the limit of ${maxBytes} bytes`);
    }
    return await readAt(file, 0, size, fail);
  } finally {
    file.close();
  }
}
