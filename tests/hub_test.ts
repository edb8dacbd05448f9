/**
 * Models from the Hugging Face Hub through the cache layout Python's `huggingface_hub` writes.
 *
 * The layout is written here from its documented format (huggingface_hub's "Manage the cache"
 * guide and `file_download.py`): `refs/<revision>` holds the commit hash, `blobs/<etag>` the
 * bytes (etag = SHA-256 for LFS files, git blob SHA-1 for small ones), and
 * `snapshots/<commit>/<file>` is a relative symbolic link `../../blobs/<etag>`.
 *
 * Downloads are tested against a fake hub on loopback (`Deno.serve` on 127.0.0.1, port 0)
 * serving the committed tiny diffusers fixture through the routes the loader uses: the revision
 * info `/api/models/<repo>/revision/<rev>`, `HEAD`/`GET` of `/<repo>/resolve/<rev>/<file>`
 * (small files answered directly with `ETag`; LFS files with a 302 to a CDN route and
 * `X-Linked-Etag`/`X-Linked-Size`), and the CDN route honouring `Range`. The hub's error
 * answers (401 `RepoNotFound`, 403 `GatedRepo`, 404 `RevisionNotFound`) follow
 * `huggingface_hub`'s `hf_raise_for_status`.
 *
 * Needs `--allow-net=127.0.0.1` and `--allow-run=deno,ln` (subprocesses with other permissions,
 * and symbolic links, which Deno makes only under unscoped write permission).
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { fileURLToPath } from "node:url";
import { join } from "node:path";
import {
  HubError,
  loadBackbone,
  readSafetensorsFile,
  resolveHubModel,
  serializeSafetensors,
  type TensorToWrite,
} from "../mod.ts";
import type { Backbone } from "../src/models/unet.ts";
import { downloadBars } from "../examples/cifar10/download.ts";
import { fixture } from "./_fixtures.ts";

const TINY = fixture("tiny-unet2d");
const CONFIG = await Deno.readFile(join(TINY, "config.json"));
const WEIGHTS = await Deno.readFile(join(TINY, "diffusion_pytorch_model.safetensors"));
const COMMIT = "4f3c6b1d2e5a7980a1b2c3d4e5f60718293a4b5c";
const CHILD = fileURLToPath(new URL("./_hub_child.ts", import.meta.url));

const sha256 = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");
const gitSha1 = (b: Uint8Array) =>
  createHash("sha1").update(`blob ${b.length}\0`).update(b).digest("hex");

/** What the fake hub does besides serving files. */
interface HubBehaviour {
  /** Serve these bytes instead of an LFS file's (same etag announced). */
  corrupt?: boolean;
  /** Append this many bytes to each CDN body (more than the announced size). */
  extra?: number;
  /** Break off each CDN body after this many bytes. */
  cutAfter?: number;
  /** Answer every request with this status and `X-Error-Code`. */
  fail?: [number, string];
}

/** A fake hub on 127.0.0.1 serving repositories of files (larger than 10 KiB ones as LFS). */
class FakeHub {
  readonly requests: { method: string; path: string; range: string | null; auth: string | null }[] =
    [];
  readonly repos = new Map<string, Map<string, Uint8Array>>();
  behaviour: HubBehaviour = {};
  readonly #server: Deno.HttpServer<Deno.NetAddr>;
  readonly url: string;

  constructor() {
    this.#server = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen() {} },
      (req) => this.#answer(req),
    );
    this.url = `http://127.0.0.1:${this.#server.addr.port}`;
  }

  close(): Promise<void> {
    return this.#server.shutdown();
  }

  #error(status: number, code: string): Response {
    return new Response(`{"error":"${code}"}`, { status, headers: { "X-Error-Code": code } });
  }

  #answer(req: Request): Response {
    const path = decodeURIComponent(new URL(req.url).pathname);
    const [range, auth] = [req.headers.get("range"), req.headers.get("authorization")];
    this.requests.push({ method: req.method, path, range, auth });
    if (this.behaviour.fail) return this.#error(...this.behaviour.fail);
    const info = /^\/api\/models\/([^/]+\/[^/]+)\/revision\/(.+)$/.exec(path);
    if (info) {
      const files = this.repos.get(info[1]);
      if (!files) return this.#error(401, "RepoNotFound");
      if (info[2] !== "main" && info[2] !== COMMIT) return this.#error(404, "RevisionNotFound");
      const siblings = [...files.keys()].map((rfilename) => ({ rfilename }));
      return Response.json({ id: info[1], sha: COMMIT, siblings });
    }
    const resolve = /^\/([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(path);
    if (resolve) return this.#resolve(req, resolve[1], resolve[2], resolve[3]);
    const cdn = /^\/cdn\/([0-9a-f]{64})$/.exec(path);
    if (cdn) return this.#cdn(req, cdn[1]);
    return this.#error(404, "NotFound");
  }

  #resolve(req: Request, repo: string, revision: string, file: string): Response {
    const files = this.repos.get(repo);
    if (!files) return this.#error(401, "RepoNotFound");
    if (revision !== "main" && revision !== COMMIT) return this.#error(404, "RevisionNotFound");
    const bytes = files.get(file);
    if (!bytes) return this.#error(404, "EntryNotFound");
    const headers: Record<string, string> = { "X-Repo-Commit": COMMIT };
    if (bytes.length > 10240) { // an LFS file: redirect to the CDN
      return new Response(null, {
        status: 302,
        headers: {
          ...headers,
          Location: `${this.url}/cdn/${sha256(bytes)}`,
          "X-Linked-Etag": `"${sha256(bytes)}"`,
          "X-Linked-Size": String(bytes.length),
        },
      });
    }
    headers.ETag = `"${gitSha1(bytes)}"`;
    headers["Content-Length"] = String(bytes.length);
    return new Response(req.method === "HEAD" ? null : bytes.slice(), { headers });
  }

  #cdn(req: Request, sha: string): Response {
    const bytes = [...this.repos.values()].flatMap((m) => [...m.values()])
      .find((b) => sha256(b) === sha);
    if (!bytes) return this.#error(404, "NotFound");
    let body = bytes;
    if (this.behaviour.corrupt) {
      body = bytes.slice();
      body[body.length >> 1] ^= 0xff;
    }
    if (this.behaviour.extra) {
      body = new Uint8Array(bytes.length + this.behaviour.extra);
      body.set(bytes);
    }
    const start = Number(/^bytes=(\d+)-$/.exec(req.headers.get("range") ?? "")?.[1] ?? 0);
    const part = body.subarray(start);
    const cut = this.behaviour.cutAfter;
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        if (cut === undefined) {
          controller.enqueue(part);
          controller.close();
        } else {
          controller.enqueue(part.slice(0, cut));
          setTimeout(() => controller.error(new Error("connection reset")), 100);
        }
      },
    });
    const headers: Record<string, string> = { "Content-Length": String(part.length) };
    if (start === 0) return new Response(stream, { headers });
    headers["Content-Range"] = `bytes ${start}-${bytes.length - 1}/${bytes.length}`;
    return new Response(stream, { status: 206, headers });
  }
}

/** The tiny fixture as a hub repository. */
function tinyRepo(): Map<string, Uint8Array> {
  return new Map([
    ["config.json", CONFIG],
    ["diffusion_pytorch_model.safetensors", WEIGHTS],
    ["README.md", new TextEncoder().encode("# tiny\n")],
  ]);
}

async function withHub(fn: (hub: FakeHub, cacheDir: string) => Promise<void>): Promise<void> {
  const hub = new FakeHub();
  hub.repos.set("org/tiny", tinyRepo());
  const cacheDir = await Deno.makeTempDir({ prefix: "diffprobe-hub-" });
  try {
    await fn(hub, cacheDir);
  } finally {
    await hub.close();
    await Deno.remove(cacheDir, { recursive: true });
  }
}

/** Asserts that two backbones hold the same weights, exactly. */
function assertSameWeights(a: Backbone, b: Backbone): void {
  assert.equal(a.parameterCount(), b.parameterCount());
  for (const [name, w] of a.weights) {
    assert.deepEqual(w.dataSync(), b.weights.get(name)!.dataSync(), name);
  }
}

/** `ln -s target path` (Deno.symlink needs unscoped write permission). */
async function symlink(target: string, path: string): Promise<void> {
  const { success } = await new Deno.Command("ln", { args: ["-s", target, path] }).output();
  assert.ok(success, `ln -s ${target} ${path}`);
}

/** Runs tests/_hub_child.ts with `perms` and `env`; returns its JSON line. */
async function child(
  perms: string[],
  args: string[],
  env: Record<string, string> = {},
): Promise<Record<string, unknown>> {
  const out = await new Deno.Command("deno", {
    args: ["run", "--quiet", ...perms, CHILD, ...args],
    env,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout).trim();
  assert.ok(out.success && text !== "", new TextDecoder().decode(out.stderr));
  return JSON.parse(text.split("\n").at(-1)!);
}

/** Awaits a HubError with `code` whose message contains each of `parts`. */
async function rejectsHub(run: Promise<unknown>, code: string, parts: string[]): Promise<void> {
  await assert.rejects(run, (error) => {
    assert.ok(error instanceof HubError, String(error));
    assert.equal(error.code, code, error.message);
    for (const part of parts) {
      assert.ok(error.message.includes(part), `${part} in ${error.message}`);
    }
    return true;
  });
}

Deno.test("hub: a cache written as huggingface_hub does loads offline, without allowExternalLinks", async () => {
  const cacheDir = await Deno.makeTempDir({ prefix: "diffprobe-hub-" });
  const repo = join(cacheDir, "models--org--tiny");
  await Deno.mkdir(join(repo, "refs"), { recursive: true });
  await Deno.writeTextFile(join(repo, "refs", "main"), COMMIT); // no newline, as Python writes
  await Deno.mkdir(join(repo, "blobs"));
  await Deno.mkdir(join(repo, "snapshots", COMMIT), { recursive: true });
  for (
    const [name, bytes] of [["config.json", CONFIG], [
      "diffusion_pytorch_model.safetensors",
      WEIGHTS,
    ]] as const
  ) {
    const etag = bytes.length > 10240 ? sha256(bytes) : gitSha1(bytes);
    await Deno.writeFile(join(repo, "blobs", etag), bytes);
    await symlink(`../../blobs/${etag}`, join(repo, "snapshots", COMMIT, name));
  }
  const before = tf.memory().numTensors;
  const reference = await loadBackbone(TINY);
  const byId = await loadBackbone("org/tiny", { cacheDir, offline: true });
  const byPath = await loadBackbone(join(repo, "snapshots", COMMIT)); // the snapshot as a folder
  assertSameWeights(reference, byId);
  assertSameWeights(reference, byPath);
  for (const b of [reference, byId, byPath]) b.dispose();
  assert.equal(tf.memory().numTensors, before);

  // A link leaving the repository's cache folder is still refused.
  const outside = join(cacheDir, "outside.safetensors");
  await Deno.writeFile(outside, WEIGHTS);
  const pointer = join(repo, "snapshots", COMMIT, "diffusion_pytorch_model.safetensors");
  await Deno.remove(pointer);
  await symlink("../../../outside.safetensors", pointer);
  await assert.rejects(
    loadBackbone("org/tiny", { cacheDir, offline: true }),
    /leads outside the repository's cache folder/,
  );
  await Deno.remove(cacheDir, { recursive: true });
});

Deno.test("hub: the first load downloads and verifies into Python's layout, file by file", async () => {
  await withHub(async (hub, cacheDir) => {
    // Symbolic links need unscoped --allow-write, so this runs in a subprocess that has it.
    const result = await child(
      ["--allow-read", "--allow-write", "--allow-net=127.0.0.1"],
      ["resolve", "org/tiny", JSON.stringify({ cacheDir, endpoint: hub.url, token: false })],
    );
    const repo = join(cacheDir, "models--org--tiny");
    assert.deepEqual(result, {
      folder: join(repo, "snapshots", COMMIT),
      downloaded: ["config.json", "diffusion_pytorch_model.safetensors"],
    });
    assert.equal(await Deno.readTextFile(join(repo, "refs", "main")), COMMIT);
    const blobs = [...Deno.readDirSync(join(repo, "blobs"))].map((e) => e.name).sort();
    assert.deepEqual(blobs, [gitSha1(CONFIG), sha256(WEIGHTS)].sort()); // no .incomplete left
    for (
      const [name, bytes, etag] of [
        ["config.json", CONFIG, gitSha1(CONFIG)],
        ["diffusion_pytorch_model.safetensors", WEIGHTS, sha256(WEIGHTS)],
      ] as const
    ) {
      const pointer = join(repo, "snapshots", COMMIT, name);
      assert.ok((await Deno.lstat(pointer)).isSymlink, `${name} is a symbolic link`);
      assert.equal(await Deno.readLink(pointer), `../../blobs/${etag}`);
      assert.deepEqual(await Deno.readFile(join(repo, "blobs", etag)), bytes);
    }
    // The README is not a model file: never asked for.
    assert.ok(!hub.requests.some((r) => r.path.endsWith("README.md")));
    assert.ok(hub.requests.some((r) => r.method === "HEAD" && r.path.includes("/resolve/")));
  });
});

Deno.test("hub: the second load, with HF_HUB_OFFLINE=1 and no net permission, uses the cache", async () => {
  await withHub(async (hub, cacheDir) => {
    const options = { cacheDir, endpoint: hub.url, token: false as const, offline: false };
    const first = await loadBackbone("org/tiny", options);
    first.dispose();
    const asked = hub.requests.length;
    // In-process, under the test task's permissions, snapshot entries are hard links.
    const pointer = join(cacheDir, "models--org--tiny", "snapshots", COMMIT, "config.json");
    assert.deepEqual(await Deno.readFile(pointer), CONFIG);
    const env = { HF_HUB_OFFLINE: "1", HF_HUB_CACHE: cacheDir };
    const perms = ["--allow-read", "--allow-env=HF_HUB_OFFLINE,HF_HUB_CACHE"];
    const second = await child(perms, ["load", "org/tiny"], env);
    const reference = await loadBackbone(TINY);
    assert.deepEqual(second, { parameters: reference.parameterCount() });
    reference.dispose();
    assert.equal(hub.requests.length, asked); // nothing asked of the hub
    // A model that is not cached: named, with what to set.
    const missing = await child(perms, ["load", "org/absent"], env);
    assert.equal(missing.code, "offline");
    assert.match(String(missing.error), /"config\.json" of org\/absent.*HF_HUB_OFFLINE=1/);
    // Not offline, but no --allow-net: the message names the flag.
    const noNet = await child(perms, ["load", "org/absent"], { HF_HUB_CACHE: cacheDir });
    assert.equal(noNet.code, "no-permission");
    assert.match(String(noNet.error), /--allow-net=huggingface\.co/);
    // No --allow-env and no cacheDir: the cache cannot be found, and the message says why.
    const noEnv = await child(["--allow-read"], ["load", "org/tiny"], env);
    assert.equal(noEnv.code, "no-permission");
    assert.match(
      String(noEnv.error),
      /grant --allow-env=HF_HUB_CACHE,HF_HOME,HOME .* or pass cacheDir/,
    );
  });
});

Deno.test("hub: HF_HOME, HF_ENDPOINT and the token file $HF_HOME/token are honoured", async () => {
  await withHub(async (hub, cacheDir) => {
    const home = join(cacheDir, "hf-home");
    await Deno.mkdir(home);
    await Deno.writeTextFile(join(home, "token"), "hf_from_file\n"); // as `huggingface-cli login`
    const env = {
      HF_HOME: home,
      HF_ENDPOINT: `${hub.url}/`,
      HF_HUB_CACHE: "",
      HF_TOKEN: "",
      HF_TOKEN_PATH: "",
      HF_HUB_OFFLINE: "",
    };
    const result = await child(
      [
        "--allow-read",
        `--allow-write=${cacheDir}`,
        "--allow-net=127.0.0.1",
        "--allow-env=HF_HOME,HF_HUB_CACHE,HF_ENDPOINT,HF_HUB_OFFLINE,HF_TOKEN,HF_TOKEN_PATH,XDG_CACHE_HOME,HOME",
      ],
      ["resolve", "org/tiny"],
      env,
    );
    assert.equal(result.folder, join(home, "hub", "models--org--tiny", "snapshots", COMMIT));
    assert.ok(hub.requests.length > 0);
    for (const r of hub.requests) assert.equal(r.auth, "Bearer hf_from_file", r.path);
  });
});

Deno.test("hub: a download whose bytes do not match the etag is refused and not kept", async () => {
  await withHub(async (hub, cacheDir) => {
    hub.behaviour = { corrupt: true };
    await rejectsHub(
      resolveHubModel("org/tiny", { cacheDir, endpoint: hub.url, token: false }),
      "corrupt",
      ["diffusion_pytorch_model.safetensors", "org/tiny", sha256(WEIGHTS), "deleted"],
    );
    const blobs = [...Deno.readDirSync(join(cacheDir, "models--org--tiny", "blobs"))]
      .map((e) => e.name);
    assert.deepEqual(blobs, [gitSha1(CONFIG)]); // the config only: no weights, no .incomplete
  });
});

Deno.test("hub: a file above the limit or longer than announced is refused and not kept", async () => {
  await withHub(async (hub, cacheDir) => {
    const options = { cacheDir, endpoint: hub.url, token: false as const, offline: false };
    await rejectsHub(
      resolveHubModel("org/tiny", { ...options, maxBytes: 1_000_000 }),
      "too-large",
      [
        `announces ${WEIGHTS.length} bytes, above the limit of 1000000 bytes`,
      ],
    );
    assert.ok(!hub.requests.some((r) => r.path.startsWith("/cdn/")), "nothing downloaded");
    hub.behaviour = { extra: 1000 };
    await rejectsHub(resolveHubModel("org/tiny", options), "corrupt", [
      `more than the ${WEIGHTS.length} bytes it announced`,
    ]);
    const blobs = [...Deno.readDirSync(join(cacheDir, "models--org--tiny", "blobs"))]
      .map((e) => e.name);
    assert.deepEqual(blobs, [gitSha1(CONFIG)]);
  });
});

Deno.test("hub: an interrupted download resumes from its .incomplete file with a Range request", async () => {
  await withHub(async (hub, cacheDir) => {
    const options = { cacheDir, endpoint: hub.url, token: false as const };
    hub.behaviour = { cutAfter: 1_000_000 };
    await rejectsHub(resolveHubModel("org/tiny", options), "network", ["broke off", ".incomplete"]);
    const partial = join(cacheDir, "models--org--tiny", "blobs", `${sha256(WEIGHTS)}.incomplete`);
    const kept = (await Deno.stat(partial)).size;
    assert.ok(kept > 0 && kept <= 1_000_000, `${kept} bytes kept`);
    hub.behaviour = {};
    const progress: number[] = [];
    const model = await resolveHubModel("org/tiny", {
      ...options,
      onProgress: (done, total) => progress.push(done / total),
    });
    assert.deepEqual(model.downloaded, ["diffusion_pytorch_model.safetensors"]);
    const last = hub.requests.at(-1)!;
    assert.equal(last.range, `bytes=${kept}-`);
    assert.equal(progress[0], kept / WEIGHTS.length);
    assert.equal(progress.at(-1), 1);
    const blob = join(cacheDir, "models--org--tiny", "blobs", sha256(WEIGHTS));
    assert.equal(sha256(await Deno.readFile(blob)), sha256(WEIGHTS));
    await assert.rejects(Deno.stat(partial), Deno.errors.NotFound);
  });
});

Deno.test("hub: a sharded model downloads its index and every shard, and loads the same weights", async () => {
  await withHub(async (hub, cacheDir) => {
    const { tensors } = await readSafetensorsFile(
      join(TINY, "diffusion_pytorch_model.safetensors"),
    );
    const names = [...tensors.keys()];
    const half = names.length >> 1;
    const shard = (part: string[]) =>
      serializeSafetensors(
        new Map<string, TensorToWrite>(part.map((n) => {
          const e = tensors.get(n)!;
          return [n, { dtype: e.dtype, shape: e.shape, data: e.bytes }];
        })),
      );
    const shardNames = ["unet-00001-of-00002.safetensors", "unet-00002-of-00002.safetensors"];
    const weightMap = Object.fromEntries(names.map((n, i) => [n, shardNames[i < half ? 0 : 1]]));
    hub.repos.set(
      "org/sharded",
      new Map([
        ["unet/config.json", CONFIG],
        [
          "unet/diffusion_pytorch_model.safetensors.index.json",
          new TextEncoder().encode(JSON.stringify({ metadata: {}, weight_map: weightMap })),
        ],
        [`unet/${shardNames[0]}`, shard(names.slice(0, half))],
        [`unet/${shardNames[1]}`, shard(names.slice(half))],
      ]),
    );
    const options = { cacheDir, endpoint: hub.url, token: false as const, subfolder: "unet" };
    const model = await resolveHubModel("org/sharded", { ...options, onProgress: downloadBars() });
    assert.deepEqual(model.downloaded.sort(), [
      "unet/config.json",
      "unet/diffusion_pytorch_model.safetensors.index.json",
      `unet/${shardNames[0]}`,
      `unet/${shardNames[1]}`,
    ]);
    const reference = await loadBackbone(TINY);
    const sharded = await loadBackbone("org/sharded", { ...options, offline: true });
    assertSameWeights(reference, sharded);
    reference.dispose();
    sharded.dispose();
  });
});

Deno.test("hub: a repository with only pickled .bin weights is refused with what to do", async () => {
  await withHub(async (hub, cacheDir) => {
    hub.repos.set(
      "org/pickled",
      new Map([["config.json", CONFIG], ["diffusion_pytorch_model.bin", new Uint8Array(20000)]]),
    );
    await rejectsHub(
      loadBackbone("org/pickled", { cacheDir, endpoint: hub.url, token: false }),
      "pickle-only",
      ["diffusion_pytorch_model.bin", "org/pickled", "convert them to safetensors"],
    );
    assert.ok(!hub.requests.some((r) => r.path.endsWith(".bin")), "the .bin is never fetched");
  });
});

Deno.test("hub: 401, 403 and 404 answers and a missing network give messages that say what to do", async () => {
  await withHub(async (hub, cacheDir) => {
    const options = { cacheDir, endpoint: hub.url, token: false as const };
    await rejectsHub(resolveHubModel("org/nope", options), "not-found", [
      "org/nope",
      "does not exist, or it is private and no token was sent",
      "HTTP 401",
    ]);
    await rejectsHub(
      resolveHubModel("org/tiny", { ...options, revision: "v9" }),
      "revision-not-found",
      [
        'revision "v9" does not exist',
      ],
    );
    hub.behaviour = { fail: [403, "GatedRepo"] };
    await rejectsHub(resolveHubModel("org/tiny", { ...options, token: "hf_x" }), "gated", [
      "gated or private and the token sent has no access",
      "HF_TOKEN",
    ]);
    hub.behaviour = {};
    hub.repos.get("org/tiny")!.delete("diffusion_pytorch_model.safetensors");
    await rejectsHub(resolveHubModel("org/tiny", options), "no-weights", [
      '"diffusion_pytorch_model.safetensors" of org/tiny',
      'subfolder: "unet"',
    ]);
    const closed = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = closed.addr.port;
    closed.close();
    await rejectsHub(
      resolveHubModel("org/tiny", { ...options, endpoint: `http://127.0.0.1:${port}` }),
      "network",
      [`cannot reach http://127.0.0.1:${port}`, "HF_HUB_OFFLINE=1"],
    );
    await rejectsHub(resolveHubModel("org/tiny", { ...options, offline: true }), "offline", [
      '"config.json" of org/tiny',
      "HF_HUB_OFFLINE=1",
    ]);
  });
});

Deno.test("hub: ids and paths that could leave the cache are refused before any request", async () => {
  await withHub(async (hub, cacheDir) => {
    const options = { cacheDir, endpoint: hub.url, token: false as const };
    await assert.rejects(resolveHubModel("../etc", options), /repository id must be "org\/name"/);
    await assert.rejects(
      resolveHubModel("org/tiny", { ...options, subfolder: "../x" }),
      /subfolder must be a relative path/,
    );
    await assert.rejects(
      resolveHubModel("org/tiny", { ...options, revision: "../../x" }),
      /revision must be a relative path/,
    );
    assert.equal(hub.requests.length, 0);
    // A ref that does not hold a commit hash is not followed.
    await Deno.mkdir(join(cacheDir, "models--org--tiny", "refs"), { recursive: true });
    await Deno.writeTextFile(join(cacheDir, "models--org--tiny", "refs", "main"), "../../../etc");
    await rejectsHub(resolveHubModel("org/tiny", options), "bad-cache", [
      "does not hold a commit hash",
    ]);
  });
});
