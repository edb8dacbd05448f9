/**
 * A diffusers model from the Hugging Face Hub, as a folder in the shared cache: the files of
 * `org/name` that `loadBackbone` reads (`config.json` and `diffusion_pytorch_model.safetensors`,
 * or the `.safetensors.index.json` and every shard it lists) are found in the cache Python's
 * `huggingface_hub` uses, and only the missing ones are downloaded. Pickled `.bin` weights are
 * never downloaded.
 *
 * Permissions: `--allow-read` and `--allow-write` for the cache folder
 * (`~/.cache/huggingface/hub` by default; only `--allow-read` when everything is cached),
 * `--allow-env=HF_HOME,HF_HUB_CACHE,HF_ENDPOINT,HF_HUB_OFFLINE,HF_TOKEN,HF_TOKEN_PATH,XDG_CACHE_HOME,HOME`
 * to honour those variables (see `hub_settings.ts`), and, to download, `--allow-net` for the
 * hub and the CDN it redirects weights to (`huggingface.co,cdn-lfs.hf.co,cdn-lfs-us-1.hf.co,cas-bridge.xethub.hf.co`).
 *
 * @example Resolving a model that is already in the cache, offline
 * ```ts
 * import assert from "node:assert/strict";
 * import { resolveHubModel } from "@diffprobe/core";
 *
 * // The layout Python's huggingface_hub writes (blobs named by etag, snapshot links into them).
 * const cacheDir = await Deno.makeTempDir();
 * const repo = `${cacheDir}/models--org--tiny`;
 * const commit = "0123456789abcdef0123456789abcdef01234567";
 * await Deno.mkdir(`${repo}/refs`, { recursive: true });
 * await Deno.writeTextFile(`${repo}/refs/main`, commit);
 * await Deno.mkdir(`${repo}/snapshots/${commit}`, { recursive: true });
 * for (const file of ["config.json", "diffusion_pytorch_model.safetensors"]) {
 *   await Deno.writeTextFile(`${repo}/snapshots/${commit}/${file}`, "{}");
 * }
 * const model = await resolveHubModel("org/tiny", { cacheDir, offline: true });
 * assert.equal(model.folder, `${repo}/snapshots/${commit}`);
 * assert.equal(model.commit, commit);
 * assert.deepEqual(model.downloaded, []);
 * await assert.rejects(resolveHubModel("org/other", { cacheDir, offline: true }), {
 *   name: "HubError",
 *   code: "offline",
 * });
 * await Deno.remove(cacheDir, { recursive: true });
 * ```
 *
 * @module
 */
import { join } from "node:path";
import { show } from "../base/validate.ts";
import { readRegularFile } from "./bounded_read.ts";
import { indexShards } from "./checkpoint_files.ts";
import { SafetensorsError } from "./errors.ts";
import { HubError } from "./hub_error.ts";
import { HubEnvironment, type HubSettingsOptions } from "./hub_settings.ts";
import { cachedCommit, repoFolderName, repoPath, snapshotPath, writeRef } from "./hub_cache.ts";
import { downloadHubFile, type HubProgress } from "./hub_download.ts";
import { type RevisionInfo, revisionInfo } from "./hub_http.ts";

/** Options of {@linkcode resolveHubModel}. */
export interface HubModelOptions extends HubSettingsOptions {
  /** Branch, tag or commit hash (default `"main"`). */
  revision?: string;
  /** The model's folder inside the repository (`"unet"` for a pipeline repository). */
  subfolder?: string;
  /** Base name of the weight files (default `"diffusion_pytorch_model"`). */
  weightsName?: string;
  /** The most bytes of weights downloaded, all shards together (default 4 GiB). */
  maxBytes?: number;
  /** Called as each file downloads: bytes done, bytes in all, the file (show a bar with it). */
  onProgress?: HubProgress;
}

/** A model resolved into the cache. */
export interface HubModel {
  /** The repository id. */
  repo: string;
  /** The commit the revision resolved to. */
  commit: string;
  /** The model folder: `<cache>/models--org--name/snapshots/<commit>[/<subfolder>]`. */
  folder: string;
  /** The repository's cache folder, inside which the snapshot's links lead. */
  repoFolder: string;
  /** The files downloaded by this call (paths inside the repository). */
  downloaded: string[];
}

/** Largest config or index downloaded or read from the cache. */
const MAX_SMALL_BYTES = 16 * 1024 * 1024;

/** What a call works with. */
interface Job {
  repo: string;
  revision: string;
  prefix: string;
  weights: string;
  repoDir: string;
  env: HubEnvironment;
  options: HubModelOptions;
}

/**
 * Finds a diffusers model of the Hugging Face Hub in the cache, downloading what is missing.
 *
 * The cache is looked at first: when `refs/<revision>` (or the commit hash given) has a
 * snapshot with the config and all weights, nothing else is done, with no network. Otherwise,
 * unless offline, the hub is asked which files the revision has (`/api/models/<repo>/revision/<rev>`)
 * and the missing ones are downloaded into the layout Python's `huggingface_hub` uses, each
 * checked against the hub's checksum before it enters `blobs/`; interrupted downloads resume.
 *
 * @param repoId The repository id, `org/name`.
 * @param options Revision, subfolder, cache, offline, token, endpoint, progress callback.
 * @returns The snapshot folder to load, and what was downloaded.
 * @throws {HubError} `"offline"` or `"no-permission"` (naming the file and what to grant or
 * set) when a file is missing and cannot be downloaded, `"pickle-only"` for a repository with
 * only `.bin` weights, and the network and hub errors (`"not-found"`, `"gated"`,
 * `"revision-not-found"`, `"network"`, `"corrupt"`, …).
 * @throws {RangeError} For an id that is not `org/name`, or a bad revision or subfolder.
 */
export async function resolveHubModel(
  repoId: string,
  options: HubModelOptions = {},
): Promise<HubModel> {
  const env = new HubEnvironment(options);
  try {
    const job: Job = {
      repo: repoId,
      revision: repoPath(options.revision ?? "main", "revision"),
      prefix: options.subfolder === undefined || options.subfolder === ""
        ? ""
        : `${repoPath(options.subfolder, "subfolder")}/`,
      weights: repoPath(options.weightsName ?? "diffusion_pytorch_model", "weightsName"),
      repoDir: join(env.cacheDir(repoId), repoFolderName(repoId)),
      env,
      options,
    };
    const commit = await cachedCommit(job.repoDir, job.revision, repoId);
    const missing = commit === undefined ? ["config.json"] : await missingFiles(job, commit);
    if (commit !== undefined && missing.length === 0) return model(job, commit, []);
    checkMayDownload(job, `${job.prefix}${missing[0]}`);
    return await download(job);
  } finally {
    env.report();
  }
}

function model(job: Job, commit: string, downloaded: string[]): HubModel {
  const folder = job.prefix === ""
    ? join(job.repoDir, "snapshots", commit)
    : snapshotPath(job.repoDir, commit, job.prefix.slice(0, -1));
  return { repo: job.repo, commit, folder, repoFolder: job.repoDir, downloaded };
}

/** The model files (inside the subfolder) missing from a cached snapshot, config first. */
async function missingFiles(job: Job, commit: string): Promise<string[]> {
  const here = (file: string) =>
    Deno.stat(snapshotPath(job.repoDir, commit, job.prefix + file)).then(() => true, () => false);
  const missing = (await here("config.json")) ? [] : ["config.json"];
  const single = `${job.weights}.safetensors`;
  if (await here(single)) return missing;
  const index = `${single}.index.json`;
  if (!(await here(index))) return [...missing, single];
  const indexPath = snapshotPath(job.repoDir, commit, job.prefix + index);
  for (const shard of await readIndex(job, indexPath, job.prefix + index)) {
    if (!(await here(shard))) missing.push(shard);
  }
  return missing;
}

/** The shards an index file lists; a malformed index is an error naming it. */
async function readIndex(job: Job, path: string, file: string): Promise<string[]> {
  const bytes = await readRegularFile(
    path,
    MAX_SMALL_BYTES,
    (_kind, problem, cause) => new HubError("bad-cache", job.repo, file, problem, { cause }),
  );
  return indexShards(bytes, path);
}

/** Refuses to go online when offline, or when `--allow-net` does not grant the hub. */
function checkMayDownload(job: Job, file: string): void {
  const where = `it is not in the cache folder ${JSON.stringify(job.repoDir)}`;
  if (job.env.offline()) {
    throw new HubError(
      "offline",
      job.repo,
      file,
      `${where} and offline mode is on (HF_HUB_OFFLINE=1 or offline: true); download it once ` +
        `online (unset HF_HUB_OFFLINE, grant --allow-net) or with Python's huggingface_hub`,
    );
  }
  const host = new URL(job.env.endpoint()).host;
  if (Deno.permissions.querySync({ name: "net", host }).state !== "granted") {
    throw new HubError(
      "no-permission",
      job.repo,
      file,
      `${where}, and downloading it needs --allow-net=${host} (plus the hosts the hub ` +
        `redirects weights to: cdn-lfs.hf.co,cdn-lfs-us-1.hf.co,cas-bridge.xethub.hf.co), or ` +
        `set HF_HUB_OFFLINE=1 once it is cached`,
    );
  }
}

/** Asks the hub for the revision's files and downloads the model's missing ones. */
async function download(job: Job): Promise<HubModel> {
  const token = await job.env.token();
  const endpoint = job.env.endpoint();
  const ctx = { repo: job.repo, revision: job.revision, file: "", token };
  const info = await revisionInfo(endpoint, ctx);
  await writeRef(job.repoDir, job.revision, info.commit);
  const files = [`${job.prefix}config.json`, ...weightFiles(job, info)];
  const downloaded: string[] = [];
  let budget = job.options.maxBytes ?? 4 * 2 ** 30;
  const fetchFile = async (file: string, maxBytes: number): Promise<string> => {
    const pointer = snapshotPath(job.repoDir, info.commit, file);
    if (await Deno.stat(pointer).then((s) => s.isFile, () => false)) return pointer;
    downloaded.push(file);
    return await downloadHubFile({
      ...ctx,
      file,
      endpoint,
      commit: info.commit,
      repoDir: job.repoDir,
      maxBytes,
      onProgress: job.options.onProgress,
    });
  };
  for (const file of files) {
    if (!file.endsWith(".safetensors")) {
      const path = await fetchFile(file, MAX_SMALL_BYTES);
      if (file.endsWith(".index.json")) files.push(...await shardsToFetch(job, path, file, info));
      continue;
    }
    const path = await fetchFile(file, budget);
    budget -= (await Deno.stat(path)).size;
  }
  return model(job, info.commit, downloaded);
}

/** The weights to download: the single file, else the index (its shards follow). */
function weightFiles(job: Job, info: RevisionInfo): string[] {
  const stem = `${job.prefix}${job.weights}`;
  if (!info.files.has(`${job.prefix}config.json`)) {
    throw new HubError("no-weights", job.repo, `${job.prefix}config.json`, noFile(job, info));
  }
  if (info.files.has(`${stem}.safetensors`)) return [`${stem}.safetensors`];
  if (info.files.has(`${stem}.safetensors.index.json`)) return [`${stem}.safetensors.index.json`];
  const pickles = [`${stem}.bin`, `${stem}.bin.index.json`].filter((f) => info.files.has(f));
  if (pickles.length > 0) {
    throw new HubError(
      "pickle-only",
      job.repo,
      pickles[0],
      `the revision ${show(job.revision)} has only pickled PyTorch weights, which diffprobe ` +
        `does not load (unpickling can run code); convert them to safetensors, e.g. in Python ` +
        `\`UNet2DModel.from_pretrained(...).save_pretrained(folder, safe_serialization=True)\`, ` +
        `and load that folder`,
    );
  }
  throw new HubError("no-weights", job.repo, `${stem}.safetensors`, noFile(job, info));
}

function noFile(job: Job, info: RevisionInfo): string {
  return `the revision ${show(job.revision)} (commit ${info.commit}) has no such file` +
    (job.prefix === "" ? ' (is the model in a subfolder, such as subfolder: "unet"?)' : "");
}

/** The shards an index lists, as repository paths, each checked to be in the revision. */
async function shardsToFetch(
  job: Job,
  indexPath: string,
  indexFile: string,
  info: RevisionInfo,
): Promise<string[]> {
  let shards: string[];
  try {
    shards = await readIndex(job, indexPath, indexFile);
  } catch (error) {
    if (!(error instanceof SafetensorsError)) throw error;
    throw new HubError("bad-response", job.repo, indexFile, error.message, { cause: error });
  }
  return shards.map((shard) => {
    const file = `${job.prefix}${shard}`;
    if (!info.files.has(file)) {
      throw new HubError(
        "no-weights",
        job.repo,
        file,
        `the index lists it but the revision has no such file`,
      );
    }
    return file;
  });
}
