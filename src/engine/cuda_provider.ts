/**
 * An opt-in, verified install of onnxruntime's CUDA execution provider for `onnxruntime-node`.
 *
 * `onnxruntime-node` ships the CPU build only; its binding loads the CUDA provider
 * (`libonnxruntime_providers_cuda.so`, with `libonnxruntime_providers_shared.so`) at session
 * creation from the folder of the `libonnxruntime.so.1` it was linked with
 * (`bin/napi-v6/linux/x64/` in the package): onnxruntime prepends the directory of its own
 * library to the file name, and neither a session option nor an environment variable changes it
 * (the binding passes only `deviceId` to the CUDA provider). The package's own install script
 * would fetch the files from a NuGet feed; {@linkcode installCudaProvider} instead takes them from
 * the npm package `com.github.asus4.onnxruntime.linux-x64-gpu@0.4.9` (built from onnxruntime
 * 1.29.0 for CUDA 13 and cuDNN 9), checks the tarball's npm integrity and each file's SHA-256
 * against the values pinned here, and only then moves them beside `libonnxruntime.so.1`.
 * Nothing is downloaded unless it is called (`deno task cuda:setup`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { CUDA_PROVIDER_PACKAGE } from "@diffprobe/core";
 *
 * assert.equal(CUDA_PROVIDER_PACKAGE.onnxruntime, "1.29.0");
 * assert.deepEqual(Object.keys(CUDA_PROVIDER_PACKAGE.files), [
 *   "libonnxruntime_providers_cuda.so",
 *   "libonnxruntime_providers_shared.so",
 * ]);
 * ```
 *
 * @module
 */
import { createHash } from "node:crypto";
import { createRequire } from "node:module";
import { writeFileAtomic } from "../base/atomic_write.ts";
import { tarEntries } from "./_tar.ts";

/** One file taken from the provider package, with its pinned digest. */
export interface PinnedFile {
  /** Path inside the npm tarball. */
  readonly path: string;
  /** SHA-256 of the file, lower-case hex. */
  readonly sha256: string;
  /** Size in bytes. */
  readonly bytes: number;
}

/** Where the CUDA provider comes from and what it must hash to. */
export interface ProviderPins {
  /** npm package name. */
  readonly name: string;
  /** npm package version. */
  readonly version: string;
  /** The tarball's URL in the npm registry. */
  readonly tarball: string;
  /** The tarball's npm `integrity` (`sha512-<base64>`); `""` skips this check. */
  readonly integrity: string;
  /** The onnxruntime release the provider was built from (must equal onnxruntime-node's). */
  readonly onnxruntime: string;
  /** The provider files by the name they take beside `libonnxruntime.so.1`. */
  readonly files: Readonly<Record<string, PinnedFile>>;
}

/**
 * The pinned CUDA provider: npm `com.github.asus4.onnxruntime.linux-x64-gpu@0.4.9` (179 MB), built
 * from onnxruntime 1.29.0, linked against CUDA 13 (`libcudart.so.13`, `libcublas.so.13`,
 * `libcublasLt.so.13`, `libcurand.so.10`) and loading cuDNN 9 (`libcudnn.so.9`) at run time.
 * Digests computed from the registry's tarball (whose `integrity` matched the registry's).
 */
export const CUDA_PROVIDER_PACKAGE: ProviderPins = {
  name: "com.github.asus4.onnxruntime.linux-x64-gpu",
  version: "0.4.9",
  tarball: "https://registry.npmjs.org/com.github.asus4.onnxruntime.linux-x64-gpu/-/" +
    "com.github.asus4.onnxruntime.linux-x64-gpu-0.4.9.tgz",
  integrity:
    "sha512-FopIhNE/Ng+v2X65wVc9clPCBCvhvA53Hxo2U0Kf5fGdVsC7iCA+mZ0KLWggcQAj7TIZ6pNidR4AC10g74Xo6w==",
  onnxruntime: "1.29.0",
  files: {
    "libonnxruntime_providers_cuda.so": {
      path: "package/Plugins/Linux/x64/libonnxruntime_providers_cuda.so",
      sha256: "56cf3254b118ad837ccc4ed8f6d1b23504bbf7ef91b34cbc0b289cb7f10b3037",
      bytes: 229780440,
    },
    "libonnxruntime_providers_shared.so": {
      path: "package/Plugins/Linux/x64/libonnxruntime_providers_shared.so",
      sha256: "c6a12593396095f5670160e284c35d1700b7708cf3037b7042e2a5200ccae772",
      bytes: 14632,
    },
  },
};

/** The record written beside the provider files by {@linkcode installCudaProvider}. */
export const PROVIDER_MANIFEST = "diffprobe-cuda-provider.json";

/** Where onnxruntime-node lives and which version it is. */
export interface OnnxRuntimeFolder {
  /** The folder of `libonnxruntime.so.1` (and of the provider files, once installed). */
  folder: string;
  /** onnxruntime-node's version, from its package.json. */
  version: string;
}

/**
 * Locates the folder from which `onnxruntime-node`'s binding loads onnxruntime and its execution
 * providers (`<package>/bin/napi-v6/<platform>/<arch>/`), and the package's version. Needs read
 * access to the package. Throws when the package cannot be located as files (a remote import
 * without a `node_modules` folder: pass the folder yourself).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { onnxRuntimeFolder } from "@diffprobe/core";
 *
 * const { folder, version } = await onnxRuntimeFolder();
 * assert.match(folder, /onnxruntime-node.*bin\/napi-v6\//);
 * assert.match(version, /^\d+\.\d+\.\d+/);
 * ```
 */
export async function onnxRuntimeFolder(): Promise<OnnxRuntimeFolder> {
  let entry: string | undefined;
  try {
    const resolved = import.meta.resolve("onnxruntime-node");
    if (resolved.startsWith("file:")) entry = new URL(resolved).pathname;
  } catch { /* try node's resolution below */ }
  if (entry === undefined) {
    try {
      entry = createRequire(import.meta.url).resolve("onnxruntime-node");
    } catch (e) {
      throw new Error(
        "Cannot locate onnxruntime-node's files (is it installed in a node_modules folder? " +
          `"nodeModulesDir": "auto" in deno.json does that): ${(e as Error).message}`,
        { cause: e },
      );
    }
  }
  // entry is <package>/dist/index.js
  const root = entry.replace(/\/dist\/[^/]+$/, "");
  const pkg = JSON.parse(await Deno.readTextFile(`${root}/package.json`));
  const platform = Deno.build.os === "windows" ? "win32" : Deno.build.os;
  const arch = ({ x86_64: "x64", aarch64: "arm64" } as Record<string, string>)[Deno.build.arch];
  return { folder: `${root}/bin/napi-v6/${platform}/${arch}`, version: String(pkg.version) };
}

/** Options of {@linkcode installCudaProvider}. */
export interface InstallCudaProviderOptions {
  /** Target folder (default: onnxruntime-node's binary folder, see {@linkcode onnxRuntimeFolder}). */
  folder?: string;
  /** The tarball: a URL (`https:`, `file:`, …) or a local path (default: the registry's). */
  source?: string | URL;
  /** Digests to check against (default {@linkcode CUDA_PROVIDER_PACKAGE}). */
  pins?: ProviderPins;
  /** Reinstall even when the files in place already match. */
  force?: boolean;
  /** The onnxruntime-node version the files must fit (default: the installed package's). */
  onnxruntimeVersion?: string;
  /** Progress of the download, in bytes of the tarball. */
  onProgress?: (bytes: number, total: number | undefined) => void;
}

/** One provider file in place. */
export interface InstalledFile {
  /** File name. */
  name: string;
  /** Absolute path. */
  path: string;
  /** Size in bytes. */
  bytes: number;
  /** Its SHA-256, verified. */
  sha256: string;
}

/** What {@linkcode installCudaProvider} did. */
export interface CudaProviderInstall {
  /** The folder the files are in. */
  folder: string;
  /** The files, verified. */
  files: InstalledFile[];
  /** `true` when the files in place already matched and nothing was downloaded. */
  alreadyInstalled: boolean;
  /** Where the tarball came from (absent when nothing was downloaded). */
  source?: string;
}

/** SHA-256 of a file, streamed (lower-case hex), or `undefined` when it does not exist. */
export async function fileSha256(path: string): Promise<string | undefined> {
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return undefined;
    throw e;
  }
  const hash = createHash("sha256");
  for await (const chunk of file.readable) hash.update(chunk);
  return hash.digest("hex");
}

async function openSource(
  source: string | URL,
): Promise<{ stream: ReadableStream<Uint8Array>; total?: number; shown: string }> {
  const url = source instanceof URL
    ? source
    : /^[a-z][a-z0-9+.-]+:/i.test(source)
    ? new URL(source)
    : new URL(source, `file://${Deno.cwd()}/`);
  const shown = url.protocol === "file:" ? decodeURIComponent(url.pathname) : url.href;
  if (url.protocol === "file:") {
    const file = await Deno.open(url).catch((e) => {
      throw new Error(`Cannot read the provider tarball "${shown}": ${e.message}`, { cause: e });
    });
    return { stream: file.readable, total: (await file.stat()).size, shown };
  }
  const response = await fetch(url).catch((e) => {
    throw new Error(`Cannot download the provider tarball ${shown}: ${e.message}`, { cause: e });
  });
  if (!response.ok || !response.body) {
    await response.body?.cancel();
    throw new Error(`Cannot download the provider tarball ${shown}: HTTP ${response.status}`);
  }
  const length = Number(response.headers.get("content-length"));
  return { stream: response.body, total: length > 0 ? length : undefined, shown };
}

/**
 * Installs onnxruntime's CUDA provider for `onnxruntime-node`: downloads the pinned npm tarball
 * (or reads `source`), takes out `libonnxruntime_providers_cuda.so` and
 * `libonnxruntime_providers_shared.so`, checks the tarball's integrity and each file's SHA-256
 * and size against `pins`, and only when all match moves them into `folder` (each by a rename
 * from a temporary file in that folder) and writes {@linkcode PROVIDER_MANIFEST} beside them. A
 * mismatch is an error naming the file, the expected and the actual digest; nothing is placed
 * then. Files already in place that match are kept (no download) unless `force`.
 *
 * Needs `--allow-read`, `--allow-write` on the folder and `--allow-net=registry.npmjs.org` (for
 * the default source). The files are Linux x86-64 libraries; the installed onnxruntime-node must
 * be the release they were built from (1.29.0).
 *
 * @example A tampered tarball is refused
 * ```ts
 * import assert from "node:assert/strict";
 * import { installCudaProvider } from "@diffprobe/core";
 *
 * const dir = await Deno.makeTempDir();
 * // An archive of one empty block pair: the provider files are not in it.
 * await Deno.writeFile(`${dir}/fake.tgz`, new Uint8Array(await new Response(
 *   new Blob([new Uint8Array(1024)]).stream().pipeThrough(new CompressionStream("gzip")),
 * ).arrayBuffer()));
 * await assert.rejects(
 *   installCudaProvider({ folder: dir, source: `${dir}/fake.tgz`, onnxruntimeVersion: "1.29.0" }),
 *   /does not hold package\/Plugins\/Linux\/x64\/libonnxruntime_providers_cuda.so/,
 * );
 * assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["fake.tgz"]);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function installCudaProvider(
  options: InstallCudaProviderOptions = {},
): Promise<CudaProviderInstall> {
  const pins = options.pins ?? CUDA_PROVIDER_PACKAGE;
  const located = options.folder === undefined ? await onnxRuntimeFolder() : undefined;
  const folder = options.folder ?? located!.folder;
  const version = options.onnxruntimeVersion ?? located?.version ??
    (await onnxRuntimeFolder()).version;
  if (version !== pins.onnxruntime) {
    throw new Error(
      `Version mismatch: the CUDA provider in ${pins.name}@${pins.version} is built from ` +
        `onnxruntime ${pins.onnxruntime}, but onnxruntime-node here is ${version}: use ` +
        `npm:onnxruntime-node@${pins.onnxruntime}`,
    );
  }
  if (!(await Deno.stat(folder).then((s) => s.isDirectory, () => false))) {
    throw new Error(`The provider folder "${folder}" does not exist`);
  }
  const names = Object.keys(pins.files);
  if (!options.force) {
    const present = await Promise.all(names.map(async (name) => {
      const sha256 = await fileSha256(`${folder}/${name}`);
      return sha256 === pins.files[name].sha256
        ? { name, path: `${folder}/${name}`, bytes: pins.files[name].bytes, sha256 }
        : undefined;
    }));
    if (present.every((f) => f !== undefined)) {
      await writeManifest(folder, pins);
      return { folder, files: present as InstalledFile[], alreadyInstalled: true };
    }
  }
  const { stream, total, shown } = await openSource(options.source ?? pins.tarball);
  const wanted = new Map(names.map((name) => [pins.files[name].path, name]));
  const temps = new Map<string, string>();
  try {
    // The tarball is hashed whole on one branch (the tar reader stops at the end-of-archive
    // blocks, before the gzip trailer) and unpacked on the other.
    const [forHash, forTar] = stream.tee();
    const tarballHash = createHash("sha512");
    let bytes = 0;
    const hashed = (async () => {
      for await (const chunk of forHash) {
        tarballHash.update(chunk);
        bytes += chunk.length;
        options.onProgress?.(bytes, total);
      }
    })();
    const files: InstalledFile[] = [];
    const tar = forTar.pipeThrough(
      new DecompressionStream("gzip") as unknown as TransformStream<Uint8Array, Uint8Array>,
    );
    for await (const entry of tarEntries(tar)) {
      const name = wanted.get(entry.name);
      if (name === undefined || temps.has(name)) continue;
      files.push(await extractVerified(entry, name, folder, pins.files[name], temps));
    }
    const missing = names.filter((n) => !temps.has(n));
    if (missing.length > 0) {
      throw new Error(
        `The provider tarball ${shown} does not hold ` +
          missing.map((n) => pins.files[n].path).join(", "),
      );
    }
    await hashed;
    const integrity = `sha512-${tarballHash.digest("base64")}`;
    if (pins.integrity && integrity !== pins.integrity) {
      throw new Error(
        `The provider tarball ${shown} fails its integrity check: expected ${pins.integrity}, ` +
          `got ${integrity}`,
      );
    }
    for (const [name, tmp] of temps) await Deno.rename(tmp, `${folder}/${name}`);
    temps.clear();
    await writeManifest(folder, pins);
    return { folder, files, alreadyInstalled: false, source: shown };
  } finally {
    for (const tmp of temps.values()) await Deno.remove(tmp).catch(() => {});
  }
}

/** Streams one tar member to a temporary file in `folder`, hashing it; throws on a mismatch. */
async function extractVerified(
  entry: { size: number; body(): AsyncIterable<Uint8Array> },
  name: string,
  folder: string,
  pin: PinnedFile,
  temps: Map<string, string>,
): Promise<InstalledFile> {
  const suffix = crypto.getRandomValues(new Uint32Array(1))[0].toString(16);
  const tmp = `${folder}/.${name}.${suffix}.tmp`;
  temps.set(name, tmp);
  const file = await Deno.open(tmp, { write: true, createNew: true, mode: 0o755 });
  const hash = createHash("sha256");
  try {
    for await (const chunk of entry.body()) {
      hash.update(chunk);
      for (let at = 0; at < chunk.length;) at += await file.write(chunk.subarray(at));
    }
  } finally {
    file.close();
  }
  const sha256 = hash.digest("hex");
  if (sha256 !== pin.sha256 || entry.size !== pin.bytes) {
    throw new Error(
      `Refusing ${name} from ${pin.path}: SHA-256 ${sha256} (${entry.size} bytes), expected ` +
        `${pin.sha256} (${pin.bytes} bytes) — the file was altered or is not the pinned build`,
    );
  }
  return { name, path: `${folder}/${name}`, bytes: entry.size, sha256 };
}

async function writeManifest(folder: string, pins: ProviderPins): Promise<void> {
  const record = {
    package: `${pins.name}@${pins.version}`,
    onnxruntime: pins.onnxruntime,
    files: Object.fromEntries(Object.entries(pins.files).map(([n, f]) => [n, f.sha256])),
  };
  await writeFileAtomic(`${folder}/${PROVIDER_MANIFEST}`, JSON.stringify(record, null, 2) + "\n");
}
