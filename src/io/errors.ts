/**
 * The error thrown when a safetensors file, or a sharded checkpoint folder, is not valid.
 *
 * Every {@linkcode SafetensorsError} carries a machine-readable
 * {@linkcode SafetensorsErrorCode}, the file it is about, and a message that names the file
 * and the problem, for example:
 *
 * ```text
 * Cannot read "x.safetensors": the header length 9999999 is beyond the end of the file (120 bytes)
 * ```
 *
 * Bad arguments to this package's own functions throw `TypeError` or `RangeError` instead.
 *
 * @example Telling a bad file apart from other failures
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseSafetensors, SafetensorsError } from "@diffprobe/core";
 *
 * assert.throws(
 *   () => parseSafetensors(new Uint8Array(3), "tiny.safetensors"),
 *   (error) =>
 *     error instanceof SafetensorsError &&
 *     error.code === "file-too-small" &&
 *     error.file === "tiny.safetensors",
 * );
 * ```
 *
 * @module
 */

/**
 * What is wrong with a file, one code per kind of problem.
 *
 * - `file-too-small`: shorter than the 8-byte header length.
 * - `header-too-large`: the header length is above 100,000,000 bytes.
 * - `header-beyond-file`: the header length runs past the end of the file.
 * - `invalid-json`: the header is not UTF-8 or not JSON.
 * - `invalid-header`: the header, an entry or the metadata does not have the expected structure.
 * - `unknown-dtype`: an entry's dtype is not one of the supported dtypes.
 * - `invalid-shape`: a shape dimension is not a non-negative safe integer.
 * - `offsets-out-of-range`: `data_offsets` are not integers with `0 <= begin <= end <= buffer size`.
 * - `overlapping-data`: two tensors share bytes.
 * - `data-hole`: bytes of the data buffer belong to no tensor (gaps or trailing bytes).
 * - `size-mismatch`: a tensor's byte range does not match its shape and dtype.
 * - `duplicate-name`: a tensor name appears twice in the header.
 * - `invalid-index`: a `*.safetensors.index.json` file is malformed or disagrees with its shards.
 * - `path-escape`: an index names a shard outside the checkpoint folder, or a file of the folder
 *   is a symbolic link (or sits in a linked sub-folder) that resolves outside it.
 * - `missing-tensor`: a tensor listed in an index is not in its shard.
 * - `not-regular-file`: the path is a directory, FIFO, device or socket (refused unopened).
 * - `data-too-large`: the header declares more tensor data than the caller's limit.
 * - `read-failed`: the file system refused or could not find a file, or a path is a loop of
 *   symbolic links.
 */
export type SafetensorsErrorCode =
  | "file-too-small"
  | "header-too-large"
  | "header-beyond-file"
  | "invalid-json"
  | "invalid-header"
  | "unknown-dtype"
  | "invalid-shape"
  | "offsets-out-of-range"
  | "overlapping-data"
  | "data-hole"
  | "size-mismatch"
  | "duplicate-name"
  | "invalid-index"
  | "path-escape"
  | "missing-tensor"
  | "not-regular-file"
  | "data-too-large"
  | "read-failed";

/**
 * A safetensors file (or checkpoint folder) that cannot be read.
 *
 * The message is `Cannot read "<file>": <problem>`.
 *
 * @example Creating and inspecting an error
 * ```ts
 * import assert from "node:assert/strict";
 * import { SafetensorsError } from "@diffprobe/core";
 *
 * const error = new SafetensorsError(
 *   "header-beyond-file",
 *   "x.safetensors",
 *   "the header length 9999999 is beyond the end of the file (120 bytes)",
 * );
 * assert.equal(error.name, "SafetensorsError");
 * assert.equal(error.code, "header-beyond-file");
 * assert.equal(
 *   error.message,
 *   'Cannot read "x.safetensors": the header length 9999999 is beyond the end of the file (120 bytes)',
 * );
 * ```
 */
export class SafetensorsError extends Error {
  /** Always `"SafetensorsError"`. */
  override readonly name: string = "SafetensorsError";
  /** The kind of problem. */
  readonly code: SafetensorsErrorCode;
  /** The file the problem is in, as given by the caller (a path or a label). */
  readonly file: string;

  /**
   * Creates an error whose message is `Cannot read "<file>": <problem>`.
   *
   * @param code The kind of problem.
   * @param file The file the problem is in.
   * @param problem What is wrong, as a lowercase sentence fragment without a final period.
   * @param options Standard error options, e.g. `{ cause }`.
   */
  constructor(
    code: SafetensorsErrorCode,
    file: string,
    problem: string,
    options?: ErrorOptions,
  ) {
    super(`Cannot read "${file}": ${problem}`, options);
    this.code = code;
    this.file = file;
  }
}
