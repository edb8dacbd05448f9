/**
 * Downloads what the CIFAR-10 experiment needs, for users with internet: the official CIFAR-10
 * binary archive (checked against its published MD5, then unpacked) and the google/ddpm-cifar10-32
 * diffusers model through the library's hub loader (`resolveHubModel`): into the Hugging Face
 * cache that Python's `huggingface_hub` shares (nothing is downloaded when Python already has the
 * model), each file checked against the hub's SHA-256 or git hash, with resumable downloads and
 * a progress bar. The model's two files are then linked (or copied, across file systems) into
 * `<out>/ddpm-cifar10-32`, which the `cifar10` task may read.
 *
 * ```sh
 * deno task cifar10:download --out data
 * ```
 *
 * The task may read and write `data/` and `~/.cache/huggingface` (the default cache); with
 * `HF_HOME` or `HF_HUB_CACHE` set elsewhere, pass `--cache` inside those or run the script with
 * your own `--allow-read`/`--allow-write` for that folder.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { dirname, join } from "node:path";
import { type ProgressBar, progressBar, resolveHubModel } from "../../mod.ts";
import { checkWritable, fail, parseCli } from "../_cli.ts";

/** The published checksum of the official binary archive (cs.toronto.edu/~kriz/cifar.html). */
export const CIFAR10_BINARY = {
  url: "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",
  md5: "c32a1d4ab5d03f1284b67883e8d87530",
  file: "cifar-10-binary.tar.gz",
};

/** The diffusers model: files of the hub repository's main revision. */
export const DDPM_CIFAR10_32 = {
  repo: "google/ddpm-cifar10-32",
  files: ["config.json", "diffusion_pytorch_model.safetensors"],
};

/** An `onProgress` callback for `resolveHubModel` that shows one bar per file on stderr. */
export function downloadBars(): (done: number, total: number, file: string) => void {
  let bar: ProgressBar | undefined;
  let current = "";
  return (done, total, file) => {
    if (file !== current) {
      bar?.stop();
      bar = progressBar(file, total, { unit: "bytes" });
      current = file;
    }
    bar!.update(done);
    if (done === total) {
      bar!.stop();
      bar = undefined;
      current = "";
    }
  };
}

/** Hard-links `from` to `to` (copies it across file systems), replacing `to`. */
async function linkOrCopy(from: string, to: string): Promise<void> {
  await Deno.remove(to).catch(() => {});
  await Deno.link(from, to).catch(() => Deno.copyFile(from, to));
}

/** Hex digest of a file with node:crypto (`md5` or `sha256`), streamed. */
export async function fileDigest(path: string, algorithm: "md5" | "sha256"): Promise<string> {
  const hash = createHash(algorithm);
  const file = await Deno.open(path);
  for await (const chunk of file.readable) hash.update(chunk);
  return hash.digest("hex");
}

/**
 * Parses the `Content-Range` header of a 206 answer (`bytes 100-199/1000`); null when absent or
 * malformed.
 */
export function parseContentRange(
  value: string | null,
): { start: number; end: number; total: number | null } | null {
  const m = value?.match(/^bytes (\d+)-(\d+)\/(\d+|\*)$/);
  if (!m) return null;
  const start = Number(m[1]), end = Number(m[2]);
  if (end < start) return null;
  return { start, end, total: m[3] === "*" ? null : Number(m[3]) };
}

/** One entry of a tar archive. */
export interface TarEntry {
  /** Path inside the archive. */
  name: string;
  /** `"file"`, `"directory"` or `"other"` (links and specials, which we skip). */
  type: "file" | "directory" | "other";
  /** File contents. */
  data: Uint8Array;
}

/**
 * Reads a (ustar) tar archive held in memory. Entry names that are absolute or contain `..`
 * are rejected with a `RangeError` naming them, so a hostile archive cannot write outside the
 * target folder; truncated archives and bad header checksums are errors too.
 */
export function readTar(bytes: Uint8Array, file = "archive"): TarEntry[] {
  const entries: TarEntry[] = [];
  const text = (a: Uint8Array) => new TextDecoder().decode(a).replace(/\0.*$/s, "");
  let offset = 0;
  while (offset + 512 <= bytes.length) {
    const header = bytes.subarray(offset, offset + 512);
    if (header.every((b) => b === 0)) break;
    let sum = 0;
    for (let i = 0; i < 512; i++) sum += i >= 148 && i < 156 ? 32 : header[i];
    const stored = parseInt(text(header.subarray(148, 156)).trim() || "0", 8);
    if (stored !== sum) throw new RangeError(`${file}: bad tar header checksum at byte ${offset}`);
    const prefix = text(header.subarray(345, 500));
    const name = (prefix ? `${prefix}/` : "") + text(header.subarray(0, 100));
    const size = parseInt(text(header.subarray(124, 136)).trim() || "0", 8);
    const flag = String.fromCharCode(header[156] || 48);
    if (name.startsWith("/") || name.split("/").includes("..")) {
      throw new RangeError(`${file}: entry "${name}" would be written outside the target folder`);
    }
    const start = offset + 512;
    if (start + size > bytes.length) throw new RangeError(`${file}: entry "${name}" is truncated`);
    entries.push({
      name,
      type: flag === "0" ? "file" : flag === "5" ? "directory" : "other",
      data: bytes.subarray(start, start + size),
    });
    offset = start + Math.ceil(size / 512) * 512;
  }
  return entries;
}

/**
 * Downloads `url` to `path`, resuming from `path.part` with an HTTP Range request when it
 * exists; renames to `path` when complete.
 */
export async function download(url: string, path: string, label: string): Promise<void> {
  const part = `${path}.part`;
  let have = await Deno.stat(part).then((s) => s.size, () => 0);
  const response = await fetch(url, { headers: have > 0 ? { Range: `bytes=${have}-` } : {} });
  if (response.status === 416) {
    await Deno.rename(part, path); // already complete
    return;
  }
  if (!response.ok) throw new Error(`Download of ${url} failed: HTTP ${response.status}`);
  let total = Number(response.headers.get("content-length") ?? 0);
  if (response.status === 206) {
    const range = parseContentRange(response.headers.get("content-range"));
    if (!range || range.start !== have) {
      throw new Error(`Server sent a range that does not resume ${part}`);
    }
    total = range.total ?? have + total;
  } else {
    have = 0; // the server ignored the range: start over
    total = total || 0;
  }
  await Deno.mkdir(dirname(path), { recursive: true });
  const out = await Deno.open(part, {
    write: true,
    create: true,
    truncate: have === 0,
    append: have > 0,
  });
  const bar = progressBar(label, total, { unit: "bytes" });
  let done = have;
  for await (const chunk of response.body!) {
    await out.write(chunk);
    done += chunk.length;
    bar.update(done);
  }
  out.close();
  bar.stop();
  await Deno.rename(part, path);
}

if (import.meta.main) {
  const args = parseCli({
    name: "deno task cifar10:download",
    summary: "Downloads the CIFAR-10 binaries (MD5-checked) and google/ddpm-cifar10-32 into the " +
      "Hugging Face cache (SHA-256-checked); resumable.",
    flags: {
      out: {
        type: "string",
        default: "data",
        value: "dir",
        help: "where to put them (the task may write only data/ and ~/.cache/huggingface)",
      },
      cache: {
        type: "string",
        value: "dir",
        defaultText: "HF_HUB_CACHE, HF_HOME/hub or ~/.cache/huggingface/hub, as Python",
        help: "the Hugging Face cache folder the model goes to",
      },
    },
  });
  const out = args.out;
  await checkWritable("out", out, "data");
  // CIFAR-10 binary
  const archive = join(out, CIFAR10_BINARY.file);
  if (!(await Deno.stat(archive).then(() => true, () => false))) {
    await download(CIFAR10_BINARY.url, archive, "cifar-10-binary");
  }
  const md5 = await fileDigest(archive, "md5");
  if (md5 !== CIFAR10_BINARY.md5) {
    await Deno.remove(archive);
    throw new Error(
      `${archive}: MD5 ${md5} does not match the published ${CIFAR10_BINARY.md5}; removed it, run again`,
    );
  }
  const gz = (await Deno.open(archive)).readable.pipeThrough(new DecompressionStream("gzip"));
  const tar = new Uint8Array(await new Response(gz).arrayBuffer());
  for (const entry of readTar(tar, archive)) {
    if (entry.type !== "file") continue;
    const target = join(out, entry.name);
    await Deno.mkdir(dirname(target), { recursive: true });
    await Deno.writeFile(target, entry.data);
  }
  console.log(`CIFAR-10 binary batches in ${join(out, "cifar-10-batches-bin")} (MD5 verified)`);
  // google/ddpm-cifar10-32, through the shared Hugging Face cache
  const model = await resolveHubModel(DDPM_CIFAR10_32.repo, {
    cacheDir: args.cache,
    onProgress: downloadBars(),
  }).catch((e) => fail((e as Error).message));
  console.log(
    model.downloaded.length === 0
      ? `${DDPM_CIFAR10_32.repo}: already in the Hugging Face cache (${model.folder})`
      : `${DDPM_CIFAR10_32.repo}: ${model.downloaded.join(", ")} downloaded and verified into ` +
        model.folder,
  );
  const modelDir = join(out, "ddpm-cifar10-32");
  await Deno.mkdir(modelDir, { recursive: true });
  for (const name of DDPM_CIFAR10_32.files) {
    await linkOrCopy(await Deno.realPath(join(model.folder, name)), join(modelDir, name));
  }
  console.log(`model in ${modelDir}; run: deno task cifar10 --data ${out} --backbone ${modelDir}`);
}
