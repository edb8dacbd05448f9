/**
 * The on-disk layout of the Hugging Face Hub cache, as Python's `huggingface_hub` writes it, so
 * that files either side downloaded are used by the other:
 *
 * ```text
 * <cache>/models--<org>--<name>/
 *   refs/<revision>                 the commit hash the branch or tag pointed to (no newline)
 *   blobs/<etag>                    each file's bytes, named by its etag: the SHA-256 for LFS
 *                                   files, the git blob SHA-1 for small ones
 *   blobs/<etag>.incomplete         a download in progress (resumed from its length)
 *   snapshots/<commit>/<file>       a relative symbolic link to ../../blobs/<etag> (one more
 *                                   ../ per subfolder)
 * ```
 *
 * Where symbolic links cannot be made (Deno's `symlink` needs unscoped `--allow-read` and
 * `--allow-write`), the snapshot entry is a hard link to the blob instead, which Python reads
 * the same way; that is said once on stderr.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { repoFolderName, snapshotPath } from "./hub_cache.ts";
 *
 * assert.equal(repoFolderName("google/ddpm-cifar10-32"), "models--google--ddpm-cifar10-32");
 * assert.equal(snapshotPath("/c/models--a--b", "0".repeat(40), "unet/config.json"),
 *   `/c/models--a--b/snapshots/${"0".repeat(40)}/unet/config.json`);
 * ```
 *
 * @module
 */
import { dirname, isAbsolute, join, relative, sep } from "node:path";
import { notice } from "../base/notice.ts";
import { writeFileAtomic } from "../base/atomic_write.ts";
import { show } from "../base/validate.ts";
import { HubError } from "./hub_error.ts";

/** A full commit hash, as the hub and the cache name snapshots. */
export const COMMIT_HASH: RegExp = /^[0-9a-f]{40}$/;

/** A repository id: `org/name`, each part of letters, digits, `-`, `_`, `.`. */
const REPO_ID = /^[A-Za-z0-9][\w.-]{0,95}\/[A-Za-z0-9][\w.-]{0,95}$/;

/**
 * Whether `text` has the form of a hub repository id (`org/name`, neither part starting with
 * a dot or a dash, no `--` or `..`), which is what {@linkcode repoFolderName} accepts.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { isRepoId } from "./hub_cache.ts";
 *
 * assert.equal(isRepoId("google/ddpm-cifar10-32"), true);
 * assert.equal(isRepoId("./models/unet"), false);
 * assert.equal(isRepoId("a/../b"), false);
 * ```
 */
export function isRepoId(text: string): boolean {
  return REPO_ID.test(text) && !text.includes("--") && !text.includes("..") &&
    !text.endsWith(".") && !text.endsWith("-");
}

/**
 * The cache folder name of a model repository: `models--<org>--<name>`.
 *
 * @throws {RangeError} When `repoId` is not an `org/name` id.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { repoFolderName } from "./hub_cache.ts";
 *
 * assert.equal(repoFolderName("org/name"), "models--org--name");
 * ```
 */
export function repoFolderName(repoId: string): string {
  if (!isRepoId(repoId)) {
    throw new RangeError(`Hub repository id must be "org/name", got ${show(repoId)}`);
  }
  return `models--${repoId.replace("/", "--")}`;
}

/**
 * Checks a path inside a repository (a file name, a subfolder, a revision such as `refs/pr/1`):
 * relative, `/`-separated, without empty, `.` or `..` segments, backslashes or NUL.
 *
 * @param path The path.
 * @param what What it is, for the message (`"subfolder"`).
 * @returns The path.
 * @throws {RangeError} When it could leave its folder.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { repoPath } from "./hub_cache.ts";
 *
 * assert.equal(repoPath("unet/config.json", "file"), "unet/config.json");
 * assert.throws(() => repoPath("../x", "subfolder"), /subfolder must be a relative path/);
 * ```
 */
export function repoPath(path: string, what: string): string {
  const bad = typeof path !== "string" || path === "" || path.includes("\\") ||
    path.includes("\0") || path.startsWith("/") || isAbsolute(path) ||
    path.split("/").some((s) => s === "" || s === "." || s === "..");
  if (bad) {
    throw new RangeError(
      `Hub ${what} must be a relative path without "." or ".." segments, got ${show(path)}`,
    );
  }
  return path;
}

/** `<repoDir>/snapshots/<commit>/<file>`. */
export function snapshotPath(repoDir: string, commit: string, file: string): string {
  return join(repoDir, "snapshots", commit, ...file.split("/"));
}

/** `<repoDir>/blobs/<etag>`. */
export function blobPath(repoDir: string, etag: string): string {
  return join(repoDir, "blobs", etag);
}

/**
 * The commit a revision stands for in the cache: the revision itself when it is a full commit
 * hash, else the content of `refs/<revision>`, or undefined when there is no such ref.
 *
 * @throws {HubError} `"bad-cache"` when the ref does not hold a commit hash.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { cachedCommit } from "./hub_cache.ts";
 *
 * const repo = await Deno.makeTempDir();
 * await Deno.mkdir(`${repo}/refs`);
 * await Deno.writeTextFile(`${repo}/refs/main`, "a".repeat(40));
 * assert.equal(await cachedCommit(repo, "main", "org/name"), "a".repeat(40));
 * assert.equal(await cachedCommit(repo, "v2", "org/name"), undefined);
 * await Deno.remove(repo, { recursive: true });
 * ```
 */
export async function cachedCommit(
  repoDir: string,
  revision: string,
  repoId: string,
): Promise<string | undefined> {
  if (COMMIT_HASH.test(revision)) return revision;
  const ref = join(repoDir, "refs", ...revision.split("/"));
  let text: string;
  try {
    const info = await Deno.stat(ref);
    if (!info.isFile || info.size > 1024) throw new Error("not a small regular file");
    text = (await Deno.readTextFile(ref)).trim();
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw new HubError("bad-cache", repoId, "", `cannot read the ref ${JSON.stringify(ref)}`, {
      cause: error,
    });
  }
  if (!COMMIT_HASH.test(text)) {
    throw new HubError(
      "bad-cache",
      repoId,
      "",
      `the ref ${JSON.stringify(ref)} does not hold a commit hash`,
    );
  }
  return text;
}

/**
 * Records that `revision` points at `commit` (`refs/<revision>`, written atomically, no
 * newline); nothing is written for a commit hash or an unchanged ref.
 */
export async function writeRef(repoDir: string, revision: string, commit: string): Promise<void> {
  if (revision === commit) return;
  const ref = join(repoDir, "refs", ...revision.split("/"));
  const old = await Deno.readTextFile(ref).catch(() => undefined);
  if (old === commit) return;
  await Deno.mkdir(dirname(ref), { recursive: true });
  await writeFileAtomic(ref, commit);
}

/**
 * Makes `snapshots/<commit>/<file>` point at `blobs/<etag>`: a relative symbolic link, or a
 * hard link where Deno may not make symbolic links (said once on stderr). Returns the path.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { linkSnapshot } from "./hub_cache.ts";
 *
 * const repo = await Deno.makeTempDir();
 * await Deno.mkdir(`${repo}/blobs`);
 * await Deno.writeTextFile(`${repo}/blobs/${"e".repeat(40)}`, "{}");
 * const path = await linkSnapshot(repo, "c".repeat(40), "config.json", "e".repeat(40));
 * assert.equal(await Deno.readTextFile(path), "{}");
 * await Deno.remove(repo, { recursive: true });
 * ```
 */
export async function linkSnapshot(
  repoDir: string,
  commit: string,
  file: string,
  etag: string,
): Promise<string> {
  const pointer = snapshotPath(repoDir, commit, file);
  const blob = blobPath(repoDir, etag);
  await Deno.mkdir(dirname(pointer), { recursive: true });
  await Deno.remove(pointer).catch(() => {});
  try {
    await Deno.symlink(relative(dirname(pointer), blob), pointer);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotCapable)) throw error;
    notice(
      "hub-hard-links",
      "diffprobe: the Hugging Face cache gets hard links, not symbolic links, in snapshots/ " +
        "(Deno.symlink needs unscoped --allow-read and --allow-write); Python reads both",
    );
    await Deno.link(blob, pointer);
  }
  return pointer;
}

/**
 * The repository folder (`…/models--org--name`) of a path inside one of its snapshots
 * (`…/models--org--name/snapshots/<commit>[/subfolder…]`), or undefined for any other path.
 * Links from a snapshot into that folder's `blobs/` are part of the layout.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { repoFolderOfSnapshot } from "./hub_cache.ts";
 *
 * const c = "0".repeat(40);
 * assert.equal(repoFolderOfSnapshot(`/h/models--a--b/snapshots/${c}/unet`), "/h/models--a--b");
 * assert.equal(repoFolderOfSnapshot("/h/my-model"), undefined);
 * ```
 */
export function repoFolderOfSnapshot(path: string): string | undefined {
  const parts = path.split(sep);
  for (let i = parts.length - 1; i >= 2; i--) {
    if (
      COMMIT_HASH.test(parts[i]) && parts[i - 1] === "snapshots" &&
      /^models--[^/]+--[^/]+$/.test(parts[i - 2])
    ) {
      return parts.slice(0, i - 1).join(sep);
    }
  }
  return undefined;
}
