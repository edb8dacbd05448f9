/**
 * Downloading one file of a hub repository into the cache, the way Python's `huggingface_hub`
 * lays it out: a `HEAD` of `<endpoint>/<repo>/resolve/<commit>/<file>` gives the file's etag
 * (`X-Linked-Etag` for LFS files, whose answer is a redirect to the CDN, else `ETag`) and size
 * (`X-Linked-Size`, else `Content-Length`); the bytes go to `blobs/<etag>.incomplete`
 * (resumed with an HTTP `Range` request when it exists), are checked against the etag (the
 * SHA-256 of an LFS file, the git blob SHA-1 of a small one) and the size, then renamed to
 * `blobs/<etag>` and linked from `snapshots/<commit>/<file>`. A file that fails the check is
 * deleted; a download that breaks off is kept to be resumed.
 *
 * @example Digests as the hub names blobs
 * ```ts
 * import assert from "node:assert/strict";
 * import { gitBlobSha1 } from "./hub_download.ts";
 *
 * const hash = gitBlobSha1(13);
 * hash.update(new TextEncoder().encode("Hello, World!"));
 * assert.equal(hash.digest("hex"), "b45ef6fec89518d314f546fd6c3025367b721684"); // `git hash-object`
 * ```
 *
 * @module
 */
import { createHash, type Hash } from "node:crypto";
import { dirname } from "node:path";
import { show } from "../base/validate.ts";
import { HubError } from "./hub_error.ts";
import { blobPath, linkSnapshot } from "./hub_cache.ts";
import { hubFetch, hubHeaders, type HubRequestContext, statusError } from "./hub_http.ts";

/** Called as a download progresses: bytes done, bytes in all, and the file. */
export type HubProgress = (done: number, total: number, file: string) => void;

/** One file to put in the cache. */
export interface HubFileRequest extends HubRequestContext {
  /** The hub's base URL. */
  endpoint: string;
  /** The commit to download from (the revision resolved). */
  commit: string;
  /** The repository's cache folder (`…/models--org--name`). */
  repoDir: string;
  /** The largest size accepted, in bytes. */
  maxBytes: number;
  /** Progress of the download. */
  onProgress?: HubProgress;
}

/** A git blob SHA-1 hash primed with the header `blob <size>\0`, ready for the file's bytes. */
export function gitBlobSha1(size: number): Hash {
  return createHash("sha1").update(`blob ${size}\0`);
}

/** What the `HEAD` of a file says about it. */
interface FileMetadata {
  etag: string;
  size: number;
  /** Where to `GET` it (the CDN location of a redirect, or the resolve URL). */
  location: string;
}

/** `HEAD` of the resolve URL, following relative redirects (renamed repositories) only. */
async function fileMetadata(req: HubFileRequest): Promise<FileMetadata> {
  const path = req.file.split("/").map(encodeURIComponent).join("/");
  let url = `${req.endpoint}/${req.repo}/resolve/${req.commit}/${path}`;
  const init = { method: "HEAD", redirect: "manual" as const, headers: hubHeaders(req.token) };
  let response = await hubFetch(url, init, req);
  for (let hops = 0; hops < 5 && isRelativeRedirect(response); hops++) {
    url = new URL(response.headers.get("location")!, url).href;
    response = await hubFetch(url, init, req);
  }
  const redirect = response.status >= 300 && response.status < 400;
  if (!response.ok && !redirect) throw statusError(response, req);
  const h = response.headers;
  const etag = (h.get("x-linked-etag") ?? h.get("etag") ?? "").replace(/^W\//, "")
    .replaceAll('"', "");
  const size = Number(h.get("x-linked-size") ?? (redirect ? NaN : h.get("content-length")));
  const bad = (problem: string) =>
    new HubError("bad-response", req.repo, req.file, `the hub's answer for ${url} ${problem}`);
  if (!/^([0-9a-f]{40}|[0-9a-f]{64})$/.test(etag)) {
    throw bad(
      `has no etag that is a SHA-1 or SHA-256 (got ${show(etag)}), so it cannot be checked`,
    );
  }
  if (!Number.isSafeInteger(size) || size < 0) throw bad("gives no file size");
  const location = redirect ? new URL(h.get("location") ?? "", url).href : url;
  return { etag, size, location };
}

function isRelativeRedirect(response: Response): boolean {
  const location = response.headers.get("location");
  return response.status >= 300 && response.status < 400 && location !== null &&
    location.startsWith("/") && !location.startsWith("//");
}

/** The hash an etag names: SHA-256 (64 hex digits) or the git blob SHA-1 (40). */
function hashFor(etag: string, size: number): Hash {
  return etag.length === 64 ? createHash("sha256") : gitBlobSha1(size);
}

/** Feeds the bytes already in `path` to `hash`, streaming; returns how many there were. */
async function hashExisting(path: string, hash: Hash): Promise<number> {
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path, { read: true });
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return 0;
    throw error;
  }
  let n = 0;
  for await (const chunk of file.readable) {
    hash.update(chunk);
    n += chunk.length;
  }
  return n;
}

/**
 * Puts one file of the repository into the cache (downloading it unless its blob is there)
 * and returns its snapshot path.
 *
 * @throws {HubError} `"too-large"` above `maxBytes`, `"corrupt"` for bytes that do not match
 * the etag or size (deleted), `"network"` for a broken-off download (kept for resuming), or
 * the errors of the hub's answers.
 */
export async function downloadHubFile(req: HubFileRequest): Promise<string> {
  const meta = await fileMetadata(req);
  if (meta.size > req.maxBytes) {
    throw new HubError(
      "too-large",
      req.repo,
      req.file,
      `the hub announces ${meta.size} bytes, above the limit of ${req.maxBytes} bytes`,
    );
  }
  const blob = blobPath(req.repoDir, meta.etag);
  const present = await Deno.stat(blob).then((s) => s.isFile, () => false);
  if (!present) await fetchBlob(req, meta, blob);
  return await linkSnapshot(req.repoDir, req.commit, req.file, meta.etag);
}

/** Downloads `meta` into `<blob>.incomplete` (resuming it), checks it, and renames it to `blob`. */
async function fetchBlob(req: HubFileRequest, meta: FileMetadata, blob: string): Promise<void> {
  const partial = `${blob}.incomplete`;
  await Deno.mkdir(dirname(blob), { recursive: true });
  let hash = hashFor(meta.etag, meta.size);
  let have = await hashExisting(partial, hash);
  if (have > meta.size) { // longer than the file can be: start over
    hash = hashFor(meta.etag, meta.size);
    have = 0;
  }
  if (have < meta.size) {
    // The token goes to the hub only, not to the CDN a large file redirects to.
    const sameOrigin = new URL(meta.location).origin === new URL(req.endpoint).origin;
    const headers = hubHeaders(sameOrigin ? req.token : undefined);
    if (have > 0) headers.Range = `bytes=${have}-`;
    const response = await hubFetch(meta.location, { headers }, req);
    if (response.status === 206 && !resumes(response, have, meta.size)) {
      await response.body?.cancel();
      throw new HubError(
        "bad-response",
        req.repo,
        req.file,
        `the hub sent a range that does not resume ${JSON.stringify(partial)}`,
      );
    }
    if (response.status !== 206 && !response.ok) throw statusError(response, req);
    if (response.status !== 206 && have > 0) { // the range was ignored: start over
      hash = hashFor(meta.etag, meta.size);
      have = 0;
    }
    await receive(req, response, partial, have, meta.size, hash);
  }
  const digest = hash.digest("hex");
  if (digest !== meta.etag) {
    await Deno.remove(partial).catch(() => {});
    throw new HubError(
      "corrupt",
      req.repo,
      req.file,
      `the ${meta.size} bytes received hash to ${digest}, not to the hub's etag ${meta.etag}; ` +
        `the download was deleted, try again`,
    );
  }
  await Deno.rename(partial, blob);
}

/** Whether a 206 answer's `Content-Range` continues at byte `have` of a `size`-byte file. */
function resumes(response: Response, have: number, size: number): boolean {
  const m = response.headers.get("content-range")?.match(/^bytes (\d+)-(\d+)\/(\d+|\*)$/);
  return m !== undefined && m !== null && Number(m[1]) === have &&
    (m[3] === "*" || Number(m[3]) === size);
}

/**
 * Streams the answer's body onto `partial` (appending from byte `have`), hashing it; refuses
 * bytes past `size` and keeps a download that breaks off.
 */
async function receive(
  req: HubFileRequest,
  response: Response,
  partial: string,
  have: number,
  size: number,
  hash: Hash,
): Promise<void> {
  const out = await Deno.open(partial, {
    write: true,
    create: true,
    truncate: have === 0,
    append: have > 0,
  });
  let done = have;
  req.onProgress?.(done, size, req.file);
  try {
    for await (const chunk of response.body ?? []) {
      done += chunk.length;
      if (done > size) {
        throw new HubError(
          "corrupt",
          req.repo,
          req.file,
          `the hub sent more than the ${size} bytes it announced; the download was deleted`,
        );
      }
      hash.update(chunk);
      await out.write(chunk);
      req.onProgress?.(done, size, req.file);
    }
  } catch (error) {
    out.close();
    if (error instanceof HubError) {
      await Deno.remove(partial).catch(() => {});
      throw error;
    }
    const reason = error instanceof Error ? error.message : String(error);
    throw new HubError(
      "network",
      req.repo,
      req.file,
      `the download broke off after ${done} of ${size} bytes (${reason}); run again to resume ` +
        `it from ${JSON.stringify(partial)}`,
      { cause: error },
    );
  }
  out.close();
  if (done < size) {
    throw new HubError(
      "network",
      req.repo,
      req.file,
      `the download ended after ${done} of ${size} bytes; run again to resume it from ${
        JSON.stringify(partial)
      }`,
    );
  }
}
