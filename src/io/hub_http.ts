/**
 * Talking to the Hugging Face Hub: one request helper that turns network failures and the hub's
 * error answers (401, 403, 404 with its `X-Error-Code` header) into {@linkcode HubError}s with a
 * message saying what to do, and the revision-info route that lists a revision's files.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { statusError } from "./hub_http.ts";
 *
 * const answer = new Response(null, { status: 404, headers: { "X-Error-Code": "RevisionNotFound" } });
 * const error = statusError(answer, { repo: "org/name", revision: "v9", file: "config.json", token: undefined });
 * assert.equal(error.code, "revision-not-found");
 * assert.match(error.message, /revision "v9" does not exist/);
 * ```
 *
 * @module
 */
import { show } from "../base/validate.ts";
import { HubError } from "./hub_error.ts";
import { COMMIT_HASH } from "./hub_cache.ts";

/** What a request is about, for its error messages. */
export interface HubRequestContext {
  /** The repository id. */
  repo: string;
  /** The revision asked for. */
  revision: string;
  /** The file (with its subfolder), or `""`. */
  file: string;
  /** The token sent, if any. */
  token: string | undefined;
}

/**
 * The error for a hub answer that is not a success: `not-found` (401, 404 or `RepoNotFound`),
 * `gated` (403 or `GatedRepo`), `revision-not-found`, `entry-not-found`, else `bad-response`.
 */
export function statusError(response: Response, ctx: HubRequestContext): HubError {
  const code = response.headers.get("x-error-code");
  const status = response.status;
  const fail = (kind: HubError["code"], problem: string) =>
    new HubError(kind, ctx.repo, ctx.file, `${problem} (HTTP ${status})`);
  if (code === "RevisionNotFound") {
    return fail(
      "revision-not-found",
      `the revision ${show(ctx.revision)} does not exist in ${ctx.repo}; check the branch, tag ` +
        `or commit hash`,
    );
  }
  if (code === "EntryNotFound") {
    return fail("entry-not-found", `the file does not exist at revision ${show(ctx.revision)}`);
  }
  if (code === "GatedRepo" || status === 403) {
    return fail(
      "gated",
      `the repository is gated or private and ${
        ctx.token ? "the token sent has no access to it" : "no token was sent"
      }; accept its conditions on the hub and set HF_TOKEN (or the token option) to a token ` +
        `with access`,
    );
  }
  if (code === "RepoNotFound" || status === 401 || status === 404) {
    return fail(
      "not-found",
      `the repository does not exist, or it is private and ${
        ctx.token ? "the token sent was refused" : "no token was sent"
      }; check the id, or set HF_TOKEN (or the token option) for a private repository`,
    );
  }
  return fail("bad-response", `the hub answered ${status} ${response.statusText}`.trim());
}

/**
 * `fetch(url, init)`, a network failure becoming a {@linkcode HubError} `"network"`.
 *
 * @param url The URL.
 * @param init The request.
 * @param ctx What it is about (for the message).
 * @returns The response, whatever its status.
 */
export async function hubFetch(
  url: string,
  init: RequestInit,
  ctx: HubRequestContext,
): Promise<Response> {
  try {
    return await fetch(url, init);
  } catch (error) {
    if (error instanceof Deno.errors.NotCapable) {
      const host = new URL(url).host;
      throw new HubError(
        "no-permission",
        ctx.repo,
        ctx.file,
        `downloading it needs --allow-net=${host}`,
        { cause: error },
      );
    }
    const reason = error instanceof Error ? error.message : String(error);
    throw new HubError(
      "network",
      ctx.repo,
      ctx.file,
      `cannot reach ${new URL(url).origin} (${reason}); check the network, or set ` +
        `HF_HUB_OFFLINE=1 to use only what is in the cache`,
      { cause: error },
    );
  }
}

/** The headers of every hub request: the token, and no compression (sizes must be real). */
export function hubHeaders(token: string | undefined): Record<string, string> {
  const headers: Record<string, string> = { "Accept-Encoding": "identity" };
  if (token !== undefined) headers.Authorization = `Bearer ${token}`;
  return headers;
}

/** A revision's commit and file list, from `/api/models/<repo>/revision/<revision>`. */
export interface RevisionInfo {
  /** The full commit hash. */
  commit: string;
  /** Every file of the revision (paths inside the repository). */
  files: Set<string>;
}

/** Largest revision-info answer read (a repository with tens of thousands of files). */
const MAX_INFO_BYTES = 32 * 1024 * 1024;

/**
 * Asks the hub which commit `revision` is and which files it has.
 *
 * @throws {HubError} For an unreachable hub, an error answer, or an answer without `sha` and
 * `siblings`.
 */
export async function revisionInfo(
  endpoint: string,
  ctx: HubRequestContext,
): Promise<RevisionInfo> {
  const url = `${endpoint}/api/models/${ctx.repo}/revision/${encodeURIComponent(ctx.revision)}`;
  const response = await hubFetch(url, { headers: hubHeaders(ctx.token) }, ctx);
  if (!response.ok) {
    await response.body?.cancel();
    throw statusError(response, ctx);
  }
  const bad = (problem: string) =>
    new HubError("bad-response", ctx.repo, ctx.file, `the revision info at ${url} ${problem}`);
  let text = "";
  const decoder = new TextDecoder();
  for await (const chunk of response.body ?? []) { // leaving the loop cancels the body
    text += decoder.decode(chunk, { stream: true });
    if (text.length > MAX_INFO_BYTES) throw bad(`is larger than ${MAX_INFO_BYTES} bytes`);
  }
  let info: unknown;
  try {
    info = JSON.parse(text + decoder.decode());
  } catch (error) {
    throw new HubError("bad-response", ctx.repo, ctx.file, `the revision info is not JSON`, {
      cause: error,
    });
  }
  const { sha, siblings } = (info ?? {}) as { sha?: unknown; siblings?: unknown };
  if (typeof sha !== "string" || !COMMIT_HASH.test(sha)) throw bad(`has no commit hash "sha"`);
  if (!Array.isArray(siblings)) throw bad(`has no file list "siblings"`);
  const files = new Set<string>();
  for (const s of siblings) {
    const name = (s as { rfilename?: unknown } | null)?.rfilename;
    if (typeof name === "string") files.add(name);
  }
  return { commit: sha, files };
}
