/**
 * The error thrown when a model cannot be resolved from the Hugging Face Hub or its cache: the
 * repository, revision or file does not exist or is not accessible, the network or a
 * permission is missing, a download does not match the hub's checksum, or the repository has
 * only pickled weights.
 *
 * @example Telling an access problem apart from others
 * ```ts
 * import assert from "node:assert/strict";
 * import { HubError } from "@diffprobe/core";
 *
 * const error = new HubError("gated", "org/model", "config.json", "accept its license first");
 * assert.equal(error.code, "gated");
 * assert.equal(error.message, 'Cannot get "config.json" of org/model: accept its license first');
 * ```
 *
 * @module
 */

/**
 * What went wrong, one code per kind of problem.
 *
 * - `not-found`: the repository does not exist, or is private and no valid token was sent (401).
 * - `gated`: the repository is gated or the token lacks access (403).
 * - `revision-not-found`: the revision (branch, tag or commit) does not exist.
 * - `entry-not-found`: the file does not exist at that revision.
 * - `offline`: a file is not in the cache and offline mode (`HF_HUB_OFFLINE=1` or
 *   `offline: true`) forbids downloading it.
 * - `no-permission`: a file is not in the cache and `--allow-net` is not granted for the hub.
 * - `network`: the hub cannot be reached, or a download broke off (it resumes next time).
 * - `corrupt`: a download does not match the hub's checksum or size (it is not kept).
 * - `too-large`: the hub announces a file above the caller's limit.
 * - `pickle-only`: the repository has only pickled PyTorch weights (`.bin`), which are not read.
 * - `no-weights`: the repository has neither safetensors nor `.bin` weights, or no config.
 * - `bad-response`: the hub answered with something this loader does not understand.
 * - `bad-cache`: the cache holds something unexpected (a ref that is not a commit hash).
 */
export type HubErrorCode =
  | "not-found"
  | "gated"
  | "revision-not-found"
  | "entry-not-found"
  | "offline"
  | "no-permission"
  | "network"
  | "corrupt"
  | "too-large"
  | "pickle-only"
  | "no-weights"
  | "bad-response"
  | "bad-cache";

/**
 * A model file that cannot be had from the Hugging Face Hub or its cache.
 *
 * The message is `Cannot get "<file>" of <repo>: <problem>`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { HubError } from "@diffprobe/core";
 *
 * const error = new HubError("offline", "google/ddpm-cifar10-32", "config.json", "offline");
 * assert.equal(error.name, "HubError");
 * assert.equal(error.repo, "google/ddpm-cifar10-32");
 * assert.equal(error.file, "config.json");
 * ```
 */
export class HubError extends Error {
  /** Always `"HubError"`. */
  override readonly name: string = "HubError";
  /** The kind of problem. */
  readonly code: HubErrorCode;
  /** The repository id (`org/name`). */
  readonly repo: string;
  /** The file inside the repository (with its subfolder), or `""` for the whole repository. */
  readonly file: string;

  /**
   * Creates an error whose message is `Cannot get "<file>" of <repo>: <problem>` (or
   * `Cannot get <repo>: <problem>` when `file` is empty).
   *
   * @param code The kind of problem.
   * @param repo The repository id.
   * @param file The file, or `""`.
   * @param problem What is wrong and what to do, without a final period.
   * @param options Standard error options, e.g. `{ cause }`.
   */
  constructor(
    code: HubErrorCode,
    repo: string,
    file: string,
    problem: string,
    options?: ErrorOptions,
  ) {
    super(`Cannot get ${file === "" ? "" : `"${file}" of `}${repo}: ${problem}`, options);
    this.code = code;
    this.repo = repo;
    this.file = file;
  }
}
