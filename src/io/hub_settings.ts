/**
 * Where the Hugging Face cache is, which hub to ask, whether to go online and with which token:
 * from the caller's options first, then the environment variables Python's `huggingface_hub`
 * reads, then its defaults.
 *
 * | setting  | option     | environment (in order)                                   | default                    |
 * | -------- | ---------- | -------------------------------------------------------- | -------------------------- |
 * | cache    | `cacheDir` | `HF_HUB_CACHE`, `HF_HOME`/hub, `XDG_CACHE_HOME`/huggingface/hub | `$HOME/.cache/huggingface/hub` |
 * | hub      | `endpoint` | `HF_ENDPOINT`                                            | `https://huggingface.co`   |
 * | offline  | `offline`  | `HF_HUB_OFFLINE` (`1`, `ON`, `YES`, `TRUE`)              | online                     |
 * | token    | `token`    | `HF_TOKEN`, then the file `HF_TOKEN_PATH` or `$HF_HOME/token` | none                  |
 *
 * A variable is read only when `--allow-env` grants it (checked with `Deno.permissions`, never
 * prompting); one that is not granted is treated as unset, and that is said once on stderr
 * with the flag that would honour it. Variables are read only when needed: a model found in the
 * cache never reads the endpoint or the token.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { HubEnvironment } from "./hub_settings.ts";
 *
 * const env = new HubEnvironment({ cacheDir: "/tmp/hf", endpoint: "http://127.0.0.1:8/", offline: true });
 * assert.equal(env.cacheDir("org/name"), "/tmp/hf");
 * assert.equal(env.endpoint(), "http://127.0.0.1:8");
 * assert.equal(env.offline(), true);
 * ```
 *
 * @module
 */
import { join } from "node:path";
import { notice } from "../base/notice.ts";
import { show } from "../base/validate.ts";
import { HubError } from "./hub_error.ts";

/** The environment variables read (the `--allow-env` list that honours them all). */
export const HUB_ENV_VARIABLES: readonly string[] = [
  "HF_HOME",
  "HF_HUB_CACHE",
  "HF_ENDPOINT",
  "HF_HUB_OFFLINE",
  "HF_TOKEN",
  "HF_TOKEN_PATH",
  "XDG_CACHE_HOME",
  "HOME",
];

/** What the caller may set instead of the environment. */
export interface HubSettingsOptions {
  /** The cache folder (instead of `HF_HUB_CACHE`, `HF_HOME`, …). */
  cacheDir?: string;
  /** The hub's URL (instead of `HF_ENDPOINT`). */
  endpoint?: string;
  /** Never download (instead of `HF_HUB_OFFLINE`). */
  offline?: boolean;
  /** The access token, or `false` to send none (instead of `HF_TOKEN` and the token file). */
  token?: string | false;
}

const TRUE_VALUES = new Set(["1", "ON", "YES", "TRUE"]);

/**
 * The settings of one hub request, read lazily from options and environment; variables that
 * `--allow-env` does not grant are collected and reported once by {@linkcode HubEnvironment.report}.
 */
export class HubEnvironment {
  readonly #options: HubSettingsOptions;
  readonly #unreadable = new Set<string>();

  /** Settings from `options`, falling back to the environment. */
  constructor(options: HubSettingsOptions = {}) {
    this.#options = options;
  }

  /** A variable's value when `--allow-env` grants it; else undefined (and noted). */
  #get(name: string): string | undefined {
    if (Deno.permissions.querySync({ name: "env", variable: name }).state !== "granted") {
      this.#unreadable.add(name);
      return undefined;
    }
    const value = Deno.env.get(name);
    return value === "" ? undefined : value;
  }

  /** `~/x` with the home folder, when it is known. */
  #expand(path: string): string | undefined {
    if (path !== "~" && !path.startsWith("~/")) return path;
    const home = this.#get("HOME");
    return home === undefined ? undefined : join(home, path.slice(1));
  }

  /** `$HF_HOME`, or its default `$XDG_CACHE_HOME/huggingface` (`~/.cache/huggingface`). */
  #home(): string | undefined {
    const hfHome = this.#get("HF_HOME");
    if (hfHome !== undefined) return this.#expand(hfHome);
    const xdg = this.#get("XDG_CACHE_HOME");
    const cache = xdg !== undefined ? this.#expand(xdg) : this.#expand("~/.cache");
    return cache === undefined ? undefined : join(cache, "huggingface");
  }

  /**
   * The hub cache folder.
   *
   * @throws {HubError} `"no-permission"` when none is given and the environment that would
   * say where it is cannot be read.
   */
  cacheDir(repoId: string): string {
    if (this.#options.cacheDir !== undefined) {
      if (typeof this.#options.cacheDir !== "string" || this.#options.cacheDir === "") {
        throw new TypeError(
          `cacheDir must be a non-empty path, got ${show(this.#options.cacheDir)}`,
        );
      }
      return this.#options.cacheDir;
    }
    const hubCache = this.#get("HF_HUB_CACHE");
    const home = hubCache === undefined ? this.#home() : undefined;
    const dir = hubCache !== undefined ? this.#expand(hubCache) : home && join(home, "hub");
    if (dir === undefined) {
      this.report();
      throw new HubError(
        "no-permission",
        repoId,
        "",
        `cannot tell where the Hugging Face cache is: grant --allow-env=HF_HUB_CACHE,HF_HOME,HOME ` +
          `(the variables Python's huggingface_hub reads) or pass cacheDir`,
      );
    }
    return dir;
  }

  /**
   * The hub's base URL without a trailing slash.
   *
   * @throws {TypeError} When it is not an http(s) URL.
   */
  endpoint(): string {
    const raw = this.#options.endpoint ?? this.#get("HF_ENDPOINT") ?? "https://huggingface.co";
    let url: URL | undefined;
    try {
      url = new URL(raw);
    } catch {
      url = undefined;
    }
    if (url === undefined || (url.protocol !== "https:" && url.protocol !== "http:")) {
      throw new TypeError(`Hub endpoint (HF_ENDPOINT) must be an http(s) URL, got ${show(raw)}`);
    }
    return raw.replace(/\/+$/, "");
  }

  /** Whether downloads are forbidden. */
  offline(): boolean {
    if (this.#options.offline !== undefined) return this.#options.offline === true;
    return TRUE_VALUES.has((this.#get("HF_HUB_OFFLINE") ?? "").toUpperCase());
  }

  /** The token to send, if any: the option, `HF_TOKEN`, or the token file Python's login writes. */
  async token(): Promise<string | undefined> {
    const given = this.#options.token;
    if (given === false) return undefined;
    if (given !== undefined) return clean(given);
    const fromEnv = this.#get("HF_TOKEN");
    if (fromEnv !== undefined) return clean(fromEnv);
    const explicit = this.#get("HF_TOKEN_PATH");
    const home = explicit === undefined ? this.#home() : undefined;
    const path = explicit !== undefined ? this.#expand(explicit) : home && join(home, "token");
    if (path === undefined) return undefined;
    if (Deno.permissions.querySync({ name: "read", path }).state !== "granted") return undefined;
    try {
      const info = await Deno.stat(path);
      if (!info.isFile || info.size > 65536) return undefined;
      return clean(await Deno.readTextFile(path));
    } catch {
      return undefined; // no token file: anonymous, like Python
    }
  }

  /** Says once on stderr which variables were treated as unset for want of `--allow-env`. */
  report(): void {
    if (this.#unreadable.size === 0) return;
    const names = [...this.#unreadable].sort().join(",");
    notice(
      `hub-env:${names}`,
      `diffprobe: treating ${names} as unset (--allow-env does not grant them); grant ` +
        `--allow-env=${HUB_ENV_VARIABLES.join(",")} to use the Hugging Face settings`,
    );
  }
}

/** A token without line breaks or surrounding blanks, or undefined when empty. */
function clean(token: string): string | undefined {
  const text = token.replace(/[\r\n]/g, "").trim();
  return text === "" ? undefined : text;
}
