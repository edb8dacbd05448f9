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

/**
 * Builds the error to throw for a refused read. `problem` is a lowercase sentence fragment
 * ("it is a FIFO (named pipe), not a regular file"); `cause` is the file system's error, when
 * there is one; `found` is the offending value alone, for messages in the
 * `"… must be <rule>, got <found>"` style: the kind of file for `"not-regular"`
 * (`"a FIFO (named pipe)"`), the size for `"too-large"` (`"100 bytes"`).
 */
export type ReadFail = (
  kind: ReadFailure,
  problem: string,
  cause?: unknown,
  found?: string,
) => Error;

/**
 * What kind of file `info` describes, with its article, for messages ("a directory", "a FIFO
 * (named pipe)", "a character device", …).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { describeKind } from "./bounded_read.ts";
 *
 * assert.equal(describeKind(await Deno.stat("/dev/null")), "a character device");
 * ```
 */
export function describeKind(info: Deno.FileInfo): string {
  if (info.isFile) return "a regular file";
  if (info.isDirectory) return "a directory";
  if (info.isSymlink) return "a symbolic link";
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

/** The error `fail` builds for a file-system error. */
function failed(error: unknown, fail: ReadFail): Error {
  const [kind, problem] = fileSystemFailure(error);
  return fail(kind, problem, error, kind === "not-regular" ? "a directory" : undefined);
}

/** A `.catch` handler that rethrows a file-system error as the error `fail` builds. */
function rethrow(fail: ReadFail): (error: unknown) => never {
  return (error) => {
    throw failed(error, fail);
  };
}

/** `op()` (a synchronous file-system call), its error rethrown as the error `fail` builds. */
function attempt<T>(op: () => T, fail: ReadFail): T {
  try {
    return op();
  } catch (error) {
    throw failed(error, fail);
  }
}

/** `info` when it is a regular file of at most `maxBytes` bytes; else the error `fail` builds. */
function requireRegular(info: Deno.FileInfo, maxBytes: number, fail: ReadFail): Deno.FileInfo {
  if (!info.isFile) {
    const kind = describeKind(info);
    throw fail("not-regular", `it is ${kind}, not a regular file`, undefined, kind);
  }
  if (info.size > maxBytes) {
    throw fail(
      "too-large",
      `the file is ${info.size} bytes, above the limit of ${maxBytes} bytes`,
      undefined,
      `${info.size} bytes`,
    );
  }
  return info;
}

/** The error for a file that ended before `end` (it shrank after it was stat'ed). */
function endedEarly(at: number, end: number, fail: ReadFail): Error {
  return fail(
    "io",
    `the file ended at byte ${at}, before byte ${end} (it changed while being read)`,
  );
}

/**
 * `Deno.stat` of `path` (following symbolic links), any kind of file; a failure becomes the
 * error `fail` builds (`"not-found"`, `"loop"`, …).
 *
 * @param path The path.
 * @param fail Builds the error for a failure.
 * @returns The path's info.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { statPath } from "./bounded_read.ts";
 *
 * const fail = (kind: string, problem: string) => new Error(`${kind}: ${problem}`);
 * assert.ok((await statPath("/", fail)).isDirectory);
 * await assert.rejects(statPath("/no/such/file", fail), /not-found: the file does not exist/);
 * ```
 */
export function statPath(path: string, fail: ReadFail): Promise<Deno.FileInfo> {
  return Deno.stat(path).catch(rethrow(fail));
}

/**
 * Stats `path` (following symbolic links) and returns its info when it is a regular file of at
 * most `maxBytes` bytes.
 *
 * @param path The file.
 * @param fail Builds the error for a refusal.
 * @param maxBytes The largest size accepted (no limit by default).
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
export async function statRegularFile(
  path: string,
  fail: ReadFail,
  maxBytes = Infinity,
): Promise<Deno.FileInfo> {
  return requireRegular(await statPath(path, fail), maxBytes, fail);
}

/**
 * Opens a regular file of at most `maxBytes` bytes for reading after checking, before and after
 * opening, that it is one: nothing else is ever opened. The caller closes the handle.
 *
 * @param path The file.
 * @param fail Builds the error for a refusal.
 * @param maxBytes The largest size accepted (no limit by default).
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
  maxBytes = Infinity,
): Promise<{ file: Deno.FsFile; size: number }> {
  await statRegularFile(path, fail, maxBytes);
  const file = await Deno.open(path, { read: true }).catch(rethrow(fail));
  try {
    // The file actually opened, should the path have changed since the stat.
    const info = await file.stat().catch(rethrow(fail));
    return { file, size: requireRegular(info, maxBytes, fail).size };
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
  for (let filled = 0; filled < length;) {
    if (filled === 0) await file.seek(offset, Deno.SeekMode.Start).catch(rethrow(fail));
    const n = await file.read(out.subarray(filled)).catch(rethrow(fail));
    if (n === null) throw endedEarly(offset + filled, offset + length, fail);
    filled += n;
  }
  return out;
}

/**
 * Reads a whole regular file of at most `maxBytes` bytes: the kind and size are checked before
 * the file is opened (and again on the opened file), and no more than that size is read even
 * if the file grows.
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
  const { file, size } = await openRegularFile(path, fail, maxBytes);
  try {
    return await readAt(file, 0, size, fail);
  } finally {
    file.close();
  }
}

/**
 * Synchronous {@linkcode readRegularFile}, for the image decode workers (whose chunk decoder is
 * synchronous): the same checks, in the same order.
 *
 * @param path The file.
 * @param maxBytes The largest size accepted.
 * @param fail Builds the error for a refusal.
 * @returns The file's bytes.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { readRegularFileSync } from "./bounded_read.ts";
 *
 * const fail = (kind: string, problem: string) => new Error(`${kind}: ${problem}`);
 * assert.throws(() => readRegularFileSync("/dev/zero", 1024, fail), /not-regular/);
 * ```
 */
export function readRegularFileSync(path: string, maxBytes: number, fail: ReadFail): Uint8Array {
  requireRegular(attempt(() => Deno.statSync(path), fail), maxBytes, fail);
  const file = attempt(() => Deno.openSync(path, { read: true }), fail);
  try {
    const info = attempt(() => file.statSync(), fail); // the file actually opened
    const out = new Uint8Array(requireRegular(info, maxBytes, fail).size);
    for (let filled = 0; filled < out.length;) {
      const n = attempt(() => file.readSync(out.subarray(filled)), fail);
      if (n === null) throw endedEarly(filled, out.length, fail);
      filled += n;
    }
    return out;
  } finally {
    file.close();
  }
}
