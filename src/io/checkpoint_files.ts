/**
 * Read the tensors of a diffusers-style model folder: either one
 * `diffusion_pytorch_model.safetensors` file, or shards listed in
 * `diffusion_pytorch_model.safetensors.index.json` (`{ metadata?, weight_map: { tensor: shard } }`).
 *
 * Shards are read one at a time, so peak memory is about one shard, and the index is checked
 * against them: shard names must stay inside the folder, and so must every file once symbolic
 * links are resolved (both checked before any shard is read); every listed tensor must be in
 * its shard and no shard may hold an unlisted tensor. Errors name the file and never quote its
 * contents.
 *
 * @example Reading a folder with one file
 * ```ts
 * import assert from "node:assert/strict";
 * import { readCheckpointTensors } from "./checkpoint_files.ts";
 * import { writeSafetensorsFile } from "./safetensors.ts";
 *
 * const folder = await Deno.makeTempDir();
 * await writeSafetensorsFile(`${folder}/diffusion_pytorch_model.safetensors`, {
 *   "conv_in.bias": { dtype: "F32", shape: [2], data: new Float32Array([0.1, 0.2]) },
 * });
 * const names: string[] = [];
 * for await (const { name } of readCheckpointTensors(folder)) names.push(name);
 * assert.deepEqual(names, ["conv_in.bias"]);
 * await Deno.remove(folder, { recursive: true });
 * ```
 *
 * @module
 */

import { isAbsolute, join, posix, relative } from "node:path";
import { nonNegativeInteger } from "../base/validate.ts";
import { fileSystemFailure, readRegularFile } from "./bounded_read.ts";
import { parseJsonBytes } from "./parse_json.ts";
import { SafetensorsError } from "./errors.ts";
import { readSafetensorsFile } from "./safetensors.ts";
import type { SafetensorsEntry } from "./safetensors.ts";

const DEFAULT_BASE = "diffusion_pytorch_model";

/** Largest index file read (real ones are tens of kilobytes). */
const MAX_INDEX_BYTES = 16 * 1024 * 1024;

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** JSON-quotes a string for a message, shortened. */
function quote(text: string): string {
  const shown = text.length > 80 ? `${text.slice(0, 77)}...` : text;
  return JSON.stringify(shown);
}

function describeValue(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  return `a value of type ${typeof value}`;
}

function readFailed(path: string, error: unknown, listedIn?: string): SafetensorsError {
  const where = listedIn === undefined ? "" : ` (listed in ${JSON.stringify(listedIn)})`;
  const [, problem] = fileSystemFailure(error);
  return new SafetensorsError("read-failed", path, `${problem}${where}`, { cause: error });
}

/**
 * The model folder: its real path, against which every file it names is checked.
 */
interface Folder {
  /** The folder as given (used to build the paths named in errors). */
  path: string;
  /** The real path (symbolic links resolved) of the folder links may lead into. */
  real: string;
  /** Whether files may resolve outside it. */
  allowExternalLinks: boolean;
  /** What the folder is, for messages. */
  what: string;
}

async function openFolder(
  path: string,
  allowExternalLinks: boolean,
  linkRoot?: string,
): Promise<Folder> {
  let real: string;
  try {
    real = await Deno.realPath(path);
    if (!(await Deno.stat(real)).isDirectory) {
      throw new SafetensorsError("read-failed", path, "it is not a folder");
    }
  } catch (error) {
    if (error instanceof SafetensorsError) throw error;
    throw readFailed(path, error);
  }
  if (linkRoot !== undefined) {
    const root = await Deno.realPath(linkRoot).catch((error) => {
      throw readFailed(linkRoot, error);
    });
    if (!isInside(root, real) && root !== real) {
      throw new SafetensorsError(
        "path-escape",
        path,
        `it is not inside ${JSON.stringify(linkRoot)}`,
      );
    }
    real = root;
  }
  const what = linkRoot === undefined ? "model folder" : "repository's cache folder";
  return { path: linkRoot ?? path, real, allowExternalLinks, what };
}

/** Whether the real path `real` lies strictly inside the real folder `root`. */
function isInside(root: string, real: string): boolean {
  const rel = relative(root, real);
  return rel !== "" && rel !== ".." && !rel.startsWith("../") && !isAbsolute(rel);
}

/**
 * Checks that `path` (after symbolic links) stays inside `root`, as the weight files of
 * {@linkcode readCheckpointTensors} must; a missing file passes (reading it will say so).
 *
 * @param path The file.
 * @param root The folder it must stay in.
 * @throws {SafetensorsError} `"path-escape"` when it resolves outside `root`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { checkLinkInside } from "./checkpoint_files.ts";
 *
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/config.json`, "{}");
 * await checkLinkInside(`${dir}/config.json`, dir);
 * await assert.rejects(checkLinkInside("/etc/hostname", dir), /leads outside/);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function checkLinkInside(path: string, root: string): Promise<void> {
  await resolveInside(await openFolder(root, false), path);
}

/**
 * Checks that `path` (inside `folder`) resolves inside the folder; returns false when it does
 * not exist. Deno's read permission applies to a link's own path, not its target, so a link
 * out of the folder would also read past the permission the user granted: it is refused unless
 * `allowExternalLinks` is set.
 */
async function resolveInside(folder: Folder, path: string, listedIn?: string): Promise<boolean> {
  let real: string;
  try {
    real = await Deno.realPath(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw readFailed(path, error, listedIn);
  }
  if (!isInside(folder.real, real) && !folder.allowExternalLinks) {
    throw new SafetensorsError(
      "path-escape",
      path,
      `it is a symbolic link (or inside a linked sub-folder) that leads outside the ` +
        `${folder.what} ${
          JSON.stringify(folder.path)
        }; pass allowExternalLinks to follow such links`,
    );
  }
  return true;
}

/** Why a shard name would leave the folder, or undefined when it stays inside. */
function escapeReason(shard: string): string | undefined {
  if (shard === "") return "is empty";
  if (shard.includes("\\")) return "contains a backslash";
  if (shard.startsWith("/") || /^[A-Za-z]:/.test(shard) || isAbsolute(shard)) {
    return "is an absolute path";
  }
  if (shard.split("/").includes("..")) return 'has a ".." segment';
  const normalized = posix.normalize(shard);
  if (normalized === "." || normalized === "./") return "names the folder itself";
  return undefined;
}

interface Shard {
  /** The shard name as written in the index (first spelling seen). */
  name: string;
  /** The tensors the index assigns to it, in index order. */
  tensors: string[];
}

/** Parses and checks an index file; returns the shards keyed by normalized name. */
function parseIndex(
  bytes: Uint8Array,
  indexPath: string,
): { shards: Map<string, Shard>; shardOf: Map<string, string> } {
  const fail = (problem: string, cause?: unknown) =>
    new SafetensorsError(
      "invalid-index",
      indexPath,
      problem,
      cause === undefined ? undefined : { cause },
    );
  const index = parseJsonBytes(bytes, (problem, cause) => fail(`the index ${problem}`, cause))
    .value;
  if (!isPlainObject(index)) {
    throw fail(`the index is ${describeValue(index)}, not a JSON object`);
  }
  if (
    Object.hasOwn(index, "metadata") && index.metadata !== null && !isPlainObject(index.metadata)
  ) {
    throw fail(`"metadata" is ${describeValue(index.metadata)}, not an object`);
  }
  const weightMap = index.weight_map;
  if (!isPlainObject(weightMap)) {
    throw fail(
      Object.hasOwn(index, "weight_map")
        ? `"weight_map" is ${describeValue(weightMap)}, not an object`
        : `the index has no "weight_map"`,
    );
  }
  const names = Object.keys(weightMap);
  if (names.length === 0) throw fail(`"weight_map" lists no tensors`);

  // Every value must be a safe shard name before anything else is read.
  const shards = new Map<string, Shard>();
  const shardOf = new Map<string, string>();
  for (const name of names) {
    const shard = weightMap[name];
    if (typeof shard !== "string") {
      throw fail(`the shard of tensor ${quote(name)} is ${describeValue(shard)}, not a file name`);
    }
    const reason = escapeReason(shard);
    if (reason !== undefined) {
      throw new SafetensorsError(
        "path-escape",
        indexPath,
        `the shard ${quote(shard)} of tensor ${quote(name)} ${reason}; shards must be ` +
          `relative paths inside the folder`,
      );
    }
    if (shard.includes("\0")) {
      throw fail(`the shard ${quote(shard)} of tensor ${quote(name)} contains a NUL character`);
    }
    const key = posix.normalize(shard);
    let entry = shards.get(key);
    if (entry === undefined) {
      entry = { name: shard, tensors: [] };
      shards.set(key, entry);
    }
    entry.tensors.push(name);
    shardOf.set(name, key);
  }
  return { shards, shardOf };
}

/**
 * The shard file names a `*.safetensors.index.json` lists (each once, sorted), after checking
 * that every one is a relative path inside the folder.
 *
 * @param bytes The index file's bytes.
 * @param indexPath The index's path or label, for errors.
 * @returns The shard names as the index spells them.
 * @throws {SafetensorsError} `"invalid-index"` for a malformed index, `"path-escape"` for a
 * shard name that would leave the folder.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { indexShards } from "./checkpoint_files.ts";
 *
 * const index = JSON.stringify({ weight_map: { a: "m-2.safetensors", b: "m-1.safetensors", c: "m-2.safetensors" } });
 * assert.deepEqual(indexShards(new TextEncoder().encode(index), "m.index.json"),
 *   ["m-1.safetensors", "m-2.safetensors"]);
 * assert.throws(
 *   () => indexShards(new TextEncoder().encode('{"weight_map":{"a":"../x"}}'), "i.json"),
 *   /has a "\.\." segment/,
 * );
 * ```
 */
export function indexShards(bytes: Uint8Array, indexPath: string): string[] {
  const { shards } = parseIndex(bytes, indexPath);
  return [...shards.keys()].sort().map((key) => shards.get(key)!.name);
}

/** Options of {@linkcode readCheckpointTensors}. */
export interface ReadCheckpointOptions {
  /**
   * The largest data buffer read from one file, in bytes; a file whose header declares more
   * fails with code `"data-too-large"` before its data is read. Default: no limit.
   */
  maxDataBytes?: number;
  /**
   * Called with each file's path and its tensors' dtypes and shapes before the file's data is
   * read; throw from it to refuse the file.
   */
  checkHeader?: (
    file: string,
    tensors: ReadonlyMap<string, Omit<SafetensorsEntry, "bytes">>,
  ) => void;
  /**
   * Follow symbolic links that lead outside the folder (a Hugging Face cache snapshot links its
   * files to `../../blobs/`). Default false: such links fail with code `"path-escape"`.
   */
  allowExternalLinks?: boolean;
  /**
   * A folder containing the model folder inside which links may lead (the repository folder
   * `…/models--org--name` of a Hugging Face cache snapshot, whose files link into its
   * `blobs/`); links leaving it are still refused. Default: the model folder itself.
   */
  linkRoot?: string;
}

/**
 * Yields every tensor of a model folder, one shard at a time.
 *
 * If `<folder>/<base>.safetensors` exists it is read; otherwise
 * `<folder>/<base>.safetensors.index.json` is read and its shards are read in file-name order
 * (tensors in header order within each). Every file must resolve (after symbolic links) inside
 * the folder, which is checked for all shards before any is read. Files are read header first
 * (see `readSafetensorsFile`). Each shard is fully validated against the index before any of
 * its tensors is yielded, but a problem in a later shard is only found after the earlier
 * shards' tensors were yielded. Entries' bytes are views into their shard's data, so memory
 * stays at about one shard unless the caller keeps them. Needs `--allow-read`. A file swapped
 * for a link between the check and the read is not detected.
 *
 * @param folder The model folder.
 * @param base The file name stem, `"diffusion_pytorch_model"` by default.
 * @param options Limits, a check of each file's header before its data is read, and whether
 * links may lead outside the folder.
 * @returns An async generator of `{ file, name, entry }`, `file` being the path of the
 * safetensors file the tensor came from.
 * @throws {SafetensorsError} `"read-failed"` when a file cannot be read (or when neither
 * candidate file exists), `"invalid-index"` when the index is malformed or a shard holds a
 * tensor it does not list, `"path-escape"` when a shard name or a link leaves the folder,
 * `"missing-tensor"` when a listed tensor is not in its shard, or any code of
 * `readSafetensorsFile` for a bad shard.
 * @throws {TypeError} When `folder` or `base` is not a string.
 * @throws {RangeError} When `folder` is empty, `base` is empty or contains a path separator,
 * or `maxDataBytes` is not a non-negative integer.
 *
 * @example Reading a sharded folder
 * ```ts
 * import assert from "node:assert/strict";
 * import { readCheckpointTensors } from "./checkpoint_files.ts";
 * import { writeSafetensorsFile } from "./safetensors.ts";
 *
 * const folder = await Deno.makeTempDir();
 * await writeSafetensorsFile(`${folder}/model-00001-of-00002.safetensors`, {
 *   a: { dtype: "F32", shape: [1], data: new Float32Array([1]) },
 * });
 * await writeSafetensorsFile(`${folder}/model-00002-of-00002.safetensors`, {
 *   b: { dtype: "F32", shape: [2], data: new Float32Array([2, 3]) },
 * });
 * await Deno.writeTextFile(
 *   `${folder}/model.safetensors.index.json`,
 *   JSON.stringify({
 *     metadata: { total_size: 12 },
 *     weight_map: { a: "model-00001-of-00002.safetensors", b: "model-00002-of-00002.safetensors" },
 *   }),
 * );
 * const seen: string[] = [];
 * for await (const { name, entry } of readCheckpointTensors(folder, "model")) {
 *   seen.push(`${name}:${entry.shape}`);
 * }
 * assert.deepEqual(seen, ["a:1", "b:2"]);
 * await Deno.remove(folder, { recursive: true });
 * ```
 */
export async function* readCheckpointTensors(
  folder: string,
  base: string = DEFAULT_BASE,
  options: ReadCheckpointOptions = {},
): AsyncGenerator<{ file: string; name: string; entry: SafetensorsEntry }> {
  if (typeof folder !== "string") {
    throw new TypeError(`Checkpoint folder must be a string, got ${describeValue(folder)}`);
  }
  if (folder === "") throw new RangeError(`Checkpoint folder must be a non-empty path, got ""`);
  if (typeof base !== "string") {
    throw new TypeError(`Checkpoint file stem must be a string, got ${describeValue(base)}`);
  }
  if (base === "" || base.includes("/") || base.includes("\\")) {
    throw new RangeError(
      `Checkpoint file stem must be a file name without separators, got ${quote(base)}`,
    );
  }
  const maxDataBytes = options.maxDataBytes === undefined
    ? undefined
    : nonNegativeInteger(options.maxDataBytes, "maxDataBytes");
  const root = await openFolder(folder, options.allowExternalLinks ?? false, options.linkRoot);

  const singlePath = join(folder, `${base}.safetensors`);
  if (await resolveInside(root, singlePath)) {
    const { tensors } = await readSafetensorsFile(singlePath, {
      maxDataBytes,
      checkHeader: options.checkHeader && ((t) => options.checkHeader!(singlePath, t)),
    });
    for (const [name, entry] of tensors) yield { file: singlePath, name, entry };
    return;
  }

  const indexPath = join(folder, `${base}.safetensors.index.json`);
  if (!(await resolveInside(root, indexPath))) {
    throw new SafetensorsError(
      "read-failed",
      folder,
      `neither ${JSON.stringify(singlePath)} nor ${JSON.stringify(indexPath)} exists`,
    );
  }
  const indexBytes = await readRegularFile(
    indexPath,
    MAX_INDEX_BYTES,
    (kind, problem, cause) =>
      new SafetensorsError(
        kind === "not-regular"
          ? "not-regular-file"
          : kind === "too-large"
          ? "invalid-index"
          : "read-failed",
        indexPath,
        problem,
        { cause },
      ),
  );
  const { shards, shardOf } = parseIndex(indexBytes, indexPath);
  const keys = [...shards.keys()].sort();
  for (const key of keys) { // every shard is checked before any is read
    const shardPath = join(folder, shards.get(key)!.name);
    if (!(await resolveInside(root, shardPath, indexPath))) {
      throw readFailed(shardPath, new Deno.errors.NotFound(), indexPath);
    }
  }
  for (const key of keys) {
    const shard = shards.get(key)!;
    const shardPath = join(folder, shard.name);
    const { tensors } = await readSafetensorsFile(shardPath, {
      maxDataBytes,
      checkHeader: options.checkHeader && ((t) => options.checkHeader!(shardPath, t)),
    });
    checkShard(tensors, shard, key, shards, shardOf, indexPath, shardPath);
    for (const [name, entry] of tensors) yield { file: shardPath, name, entry };
  }
}

/** Checks a shard's tensors against the index: each listed there, and each listed one present. */
function checkShard(
  tensors: Map<string, SafetensorsEntry>,
  shard: Shard,
  key: string,
  shards: Map<string, Shard>,
  shardOf: Map<string, string>,
  indexPath: string,
  shardPath: string,
): void {
  for (const name of tensors.keys()) {
    const listed = shardOf.get(name);
    if (listed !== key) {
      throw new SafetensorsError(
        "invalid-index",
        indexPath,
        listed === undefined
          ? `the shard ${quote(shard.name)} contains the tensor ${quote(name)}, which the ` +
            `index does not list`
          : `the shard ${quote(shard.name)} contains the tensor ${quote(name)}, which the ` +
            `index assigns to the shard ${quote(shards.get(listed)!.name)}`,
      );
    }
  }
  for (const name of shard.tensors) {
    if (!tensors.has(name)) {
      throw new SafetensorsError(
        "missing-tensor",
        shardPath,
        `the tensor ${quote(name)}, which ${
          JSON.stringify(indexPath)
        } assigns to this shard, is not in it`,
      );
    }
  }
}
