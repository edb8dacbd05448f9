/**
 * Building, loading and saving backbones in the diffusers layout: a folder with `config.json`
 * and `diffusion_pytorch_model.safetensors` (or shards plus
 * `diffusion_pytorch_model.safetensors.index.json`). PyTorch layouts are converted once, at load;
 * `saveBackbone` converts back, so PyTorch users can open our checkpoints with
 * `UNet2DModel.from_pretrained`.
 *
 * Loading treats the folder as untrusted: `config.json` must be a regular file of at most 1 MiB,
 * its sizes are bounded (see {@linkcode UNet2DConfig}), the parameter memory the config implies is
 * estimated before anything is allocated (2 GiB of float32 by default, `maxParameterBytes`
 * to change it), weight files must stay inside the folder and are read header first with
 * their data bounded by that estimate, and every weight must be finite in float32.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { createBackbone, loadBackbone, saveBackbone } from "@diffprobe/core";
 *
 * const config = {
 *   _class_name: "UNet2DModel" as const, block_out_channels: [32, 64], layers_per_block: 1,
 *   down_block_types: ["DownBlock2D", "AttnDownBlock2D"], up_block_types: ["AttnUpBlock2D", "UpBlock2D"],
 *   norm_num_groups: 8, sample_size: 16,
 * };
 * const unet = createBackbone(config, { seed: 0 });
 * const dir = await Deno.makeTempDir();
 * await saveBackbone(unet, dir);
 * const again = await loadBackbone(dir);
 * assert.equal(again.parameterCount(), unet.parameterCount());
 * unet.dispose();
 * again.dispose();
 * await Deno.remove(dir, { recursive: true });
 * ```
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { writeFileAtomic } from "../base/atomic_write.ts";
import { nonNegativeInteger, show } from "../base/validate.ts";
import {
  resolveConfig,
  type ResolvedConfig,
  type UNet1DConfig,
  type UNet2DConfig,
} from "./config.ts";
import { type UNetPlan, unetPlan } from "./unet_plan.ts";
import { type Backbone, toTfLayout, toTorchLayout, UNet } from "./unet.ts";
import { noiseSchedule, type ScheduleOptions } from "./schedule.ts";
import { readRegularFile } from "../io/bounded_read.ts";
import { checkLinkInside, readCheckpointTensors } from "../io/checkpoint_files.ts";
import { isRepoId, repoFolderOfSnapshot } from "../io/hub_cache.ts";
import { type HubModelOptions, resolveHubModel } from "../io/hub_model.ts";
import { parseJsonBytes } from "../io/parse_json.ts";
import { serializeSafetensors, toFloat32 } from "../io/safetensors.ts";
import type { SafetensorsEntry, TensorToWrite } from "../io/safetensors.ts";

/** Default bound on a model's float32 parameter memory: 2 GiB (about 537 million parameters). */
const DEFAULT_MAX_PARAMETER_BYTES = 2 ** 31;

/** Largest `config.json` read (real ones are about 1 KB). */
const MAX_CONFIG_BYTES = 1024 * 1024;

/** Options of {@linkcode createBackbone}. */
export interface CreateBackboneOptions {
  /** Seed of the random initialisation (default 0). */
  seed?: number;
  /**
   * The most float32 parameter memory, in bytes, the config may imply (default 2 GiB); checked
   * before anything is allocated.
   */
  maxParameterBytes?: number;
}

/**
 * Checks the parameter memory `plan` implies against the limit, before anything is allocated;
 * returns the parameter count.
 */
function checkParameterMemory(
  resolved: ResolvedConfig,
  plan: UNetPlan,
  maxBytes: number | undefined,
  where: string,
): number {
  const limit = maxBytes === undefined
    ? DEFAULT_MAX_PARAMETER_BYTES
    : nonNegativeInteger(maxBytes, "maxParameterBytes");
  let count = 0;
  for (const shape of plan.weights.values()) count += shape.reduce((a, b) => a * b, 1);
  if (4 * count > limit) {
    const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(0)} MiB`;
    throw new RangeError(
      `The model of ${where} has ${count} parameters (${mib(4 * count)} as float32), above the ` +
        `limit of ${mib(limit)}; check block_out_channels (${show(resolved.channels)}) and ` +
        `layers_per_block (${resolved.layersPerBlock}), or raise maxParameterBytes`,
    );
  }
  return count;
}

/**
 * A randomly initialised backbone (PyTorch's default initialisation: uniform ±1/√fan_in for
 * convolutions and linears, ones and zeros for norms), for pre-training with `trainDiffusion`.
 * The config is validated and its parameter memory bounded before anything is allocated.
 *
 * @param config A diffusers-style UNet config.
 * @param options The seed, and the memory bound.
 * @returns The backbone; dispose it when done.
 * @throws {TypeError | RangeError} For an unsupported config value (naming the field and value)
 * or a model above `maxParameterBytes`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { createBackbone } from "@diffprobe/core";
 *
 * const unet = createBackbone({
 *   _class_name: "DiffprobeUNet1DModel", in_channels: 1, out_channels: 1, sample_size: 64,
 *   block_out_channels: [16, 32], norm_num_groups: 8, layers_per_block: 1,
 *   down_block_types: ["DownBlock1D", "AttnDownBlock1D"], up_block_types: ["AttnUpBlock1D", "UpBlock1D"],
 * });
 * assert.equal(unet.kind, "unet1d");
 * assert.equal(unet.blocks.length, 9);
 * unet.dispose();
 * assert.throws( // 1.2 billion parameters: refused before anything is allocated
 *   () =>
 *     createBackbone({
 *       _class_name: "UNet2DModel", block_out_channels: [4096, 4096],
 *       down_block_types: ["DownBlock2D", "DownBlock2D"], up_block_types: ["UpBlock2D", "UpBlock2D"],
 *     }),
 *   /above the limit of 2048 MiB/,
 * );
 * ```
 */
export function createBackbone(
  config: UNet2DConfig | UNet1DConfig,
  options: CreateBackboneOptions = {},
): Backbone {
  const resolved = resolveConfig(config);
  const plan = unetPlan(resolved);
  checkParameterMemory(resolved, plan, options.maxParameterBytes, "the config");
  const weights = new Map<string, tf.Tensor>();
  const seed = options.seed ?? 0;
  try {
    let i = 0;
    for (const [name, shape] of plan.weights) {
      const owner = name.slice(0, name.lastIndexOf("."));
      const isNorm = /norm/.test(owner.split(".").pop()!);
      let t: tf.Tensor;
      if (isNorm) t = name.endsWith(".weight") ? tf.ones(shape) : tf.zeros(shape);
      else {
        const w = plan.weights.get(`${owner}.weight`)!;
        const fanIn = w.slice(1).reduce((p, d) => p * d, 1);
        const bound = 1 / Math.sqrt(fanIn);
        t = tf.randomUniform(shape, -bound, bound, "float32", seed * 100003 + i);
      }
      i++;
      weights.set(name, toTfLayout(name, t));
      t.dispose();
    }
  } catch (error) {
    tf.dispose([...weights.values()]);
    throw new RangeError(
      `Cannot allocate the weights of the config (${weights.size} of ${plan.weights.size} ` +
        `done): ${error instanceof Error ? error.message : String(error)}`,
      { cause: error },
    );
  }
  return new UNet(resolved, plan, weights);
}

/**
 * Options of {@linkcode loadBackbone}. The hub options (`revision`, `subfolder`, `cacheDir`,
 * `offline`, `token`, `endpoint`, `onProgress`) apply when the source is a hub id.
 */
export interface LoadBackboneOptions extends Omit<HubModelOptions, "maxBytes"> {
  /** Overrides the noise schedule (diffusers keeps it in the scheduler, not the UNet config). */
  schedule?: ScheduleOptions;
  /** Base name of the weight files (default `"diffusion_pytorch_model"`). */
  weightsName?: string;
  /**
   * The most float32 parameter memory, in bytes, the config may imply (default 2 GiB); checked
   * before any weight is read.
   */
  maxParameterBytes?: number;
  /**
   * Follow symbolic links that lead outside the model folder. Default false: such links are
   * refused, since Deno's read permission applies to the link's path, not to its target. A
   * Hugging Face cache snapshot (`…/models--org--name/snapshots/<commit>`) needs no flag: its
   * links into that repository's `blobs/` are allowed, links leaving the repository's cache
   * folder are not.
   */
  allowExternalLinks?: boolean;
}

const LEGACY_ATTENTION: Record<string, string> = {
  query: "to_q",
  key: "to_k",
  value: "to_v",
  proj_attn: "to_out.0",
};

/** Maps pre-2023 attention key names (`query`, `key`, `value`, `proj_attn`) to current ones. */
function currentKeyName(name: string): string {
  return name.replace(
    /(\.attentions\.\d+\.)(query|key|value|proj_attn)\./,
    (_, head: string, legacy: string) => `${head}${LEGACY_ATTENTION[legacy]}.`,
  );
}

/** Whether `path` exists (false too when `--allow-read` does not cover it). */
async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound || error instanceof Deno.errors.NotCapable) {
      return false;
    }
    throw error;
  }
}

/**
 * The model folder a `loadBackbone` source names, and the folder its links may lead into
 * when it is a Hugging Face cache snapshot: an existing path is a folder; an `org/name` that
 * is not one is resolved through the hub cache (downloading what is missing).
 */
async function locate(
  source: string | URL,
  options: LoadBackboneOptions,
): Promise<{ folder: string; linkRoot?: string }> {
  const path = folderOf(source);
  if (typeof source === "string" && isRepoId(source) && !(await exists(path))) {
    const limit = options.maxParameterBytes === undefined
      ? DEFAULT_MAX_PARAMETER_BYTES
      : nonNegativeInteger(options.maxParameterBytes, "maxParameterBytes");
    const model = await resolveHubModel(source, {
      ...options,
      maxBytes: 2 * limit + 2 ** 28, // every weight as F64, plus room for headers
    });
    return { folder: model.folder, linkRoot: model.repoFolder };
  }
  const real = await Deno.realPath(path).catch(() => undefined);
  const repoFolder = real === undefined ? undefined : repoFolderOfSnapshot(real);
  return { folder: path, linkRoot: repoFolder };
}

/** The folder a `loadBackbone` source names. */
function folderOf(source: string | URL): string {
  if (source instanceof URL) {
    if (source.protocol !== "file:") {
      throw new TypeError(`Model folder must be a path or a file: URL, got ${show(source.href)}`);
    }
    return fileURLToPath(source);
  }
  if (typeof source !== "string" || source === "") {
    throw new TypeError(
      `Model folder must be a non-empty path or a file: URL, got ${show(source)}`,
    );
  }
  return source;
}

/** Reads and parses `config.json` (a regular file of at most 1 MiB). */
async function readConfigFile(configPath: string): Promise<UNet2DConfig | UNet1DConfig> {
  const bytes = await readRegularFile(configPath, MAX_CONFIG_BYTES, (kind, problem, cause) => {
    const message = `Cannot read the model config "${configPath}": ${problem}`;
    if (kind === "too-large") return new RangeError(message, { cause });
    if (kind === "not-found") return new Deno.errors.NotFound(message, { cause });
    if (kind === "io" && cause instanceof Error) { // keep the file system's class (permissions, …)
      return new (cause.constructor as ErrorConstructor)(message, { cause });
    }
    return new TypeError(message, { cause }); // not a regular file, or a loop of links
  });
  return parseJsonBytes(
    bytes,
    (problem, cause) => new TypeError(`Model config "${configPath}" ${problem}`, { cause }),
  ).value as UNet2DConfig | UNet1DConfig;
}

/**
 * Decodes one weight to float32, refusing values that are not finite in float32: NaN and
 * infinities in the file, and F64 (or other) values beyond float32's range.
 */
function finiteWeights(entry: SafetensorsEntry, name: string, file: string): Float32Array {
  const values = toFloat32(entry);
  for (let i = 0; i < values.length; i++) {
    if (Number.isFinite(values[i])) continue;
    const original = entry.dtype === "F64"
      ? new DataView(entry.bytes.buffer, entry.bytes.byteOffset).getFloat64(8 * i, true)
      : values[i];
    const what = Number.isFinite(original)
      ? `the ${entry.dtype} value ${original}, which overflows float32`
      : `the value ${original}`;
    throw new RangeError(
      `Weight "${name}" in "${file}" holds ${what} at index ${i}; weights must be finite`,
    );
  }
  return values;
}

/**
 * Checks a weight's name and shape against the plan, and that no other file declared it;
 * returns its current key name.
 */
function expectWeight(
  plan: UNetPlan,
  declared: Set<string>,
  className: string,
  file: string,
  name: string,
  shape: readonly number[],
): string {
  const key = currentKeyName(name);
  const expected = plan.weights.get(key);
  if (!expected) {
    throw new RangeError(
      `Unexpected weight "${name}" in "${file}": this ${className} config has no such parameter`,
    );
  }
  if (declared.has(key)) {
    throw new RangeError(`Weight "${key}" appears twice (second time as "${name}" in "${file}")`);
  }
  if (expected.length !== shape.length || expected.some((d, i) => d !== shape[i])) {
    throw new RangeError(
      `Weight "${name}" in "${file}" has shape [${shape}], the config expects [${expected}]`,
    );
  }
  declared.add(key);
  return key;
}

/**
 * Reads every weight of the folder into tfjs tensors (tfjs layout). Each file's header is
 * checked against the plan before its data is read, and its data is bounded by the plan.
 */
async function readWeights(
  folder: string,
  plan: UNetPlan,
  parameters: number,
  className: string,
  options: LoadBackboneOptions,
  linkRoot: string | undefined,
): Promise<Map<string, tf.Tensor>> {
  const weights = new Map<string, tf.Tensor>();
  const declared = new Set<string>();
  const tensors = readCheckpointTensors(folder, options.weightsName, {
    maxDataBytes: 8 * parameters, // every weight once, in the widest dtype (F64/I64)
    allowExternalLinks: options.allowExternalLinks ?? false,
    linkRoot,
    checkHeader: (file, header) => {
      for (const [name, { shape }] of header) {
        expectWeight(plan, declared, className, file, name, shape);
      }
    },
  });
  try {
    for await (const { file, name, entry } of tensors) {
      const key = currentKeyName(name);
      const values = finiteWeights(entry, name, file);
      let raw: tf.Tensor | undefined;
      try {
        raw = tf.tensor(values, entry.shape, "float32");
        weights.set(key, toTfLayout(key, raw));
      } catch (error) { // the backend is out of memory
        const reason = error instanceof Error ? error.message : String(error);
        throw new RangeError(
          `Cannot allocate weight "${name}" of "${file}" (${weights.size} loaded): ${reason}`,
          { cause: error },
        );
      } finally {
        raw?.dispose();
      }
    }
    const missing = [...plan.weights.keys()].filter((k) => !weights.has(k));
    if (missing.length > 0) {
      throw new RangeError(
        `Checkpoint "${folder}" is missing ${missing.length} weight(s): ${
          missing.slice(0, 10).join(", ")
        }${missing.length > 10 ? ", …" : ""}`,
      );
    }
  } catch (e) {
    tf.dispose([...weights.values()]);
    throw e;
  }
  return weights;
}

/**
 * Loads a diffusers model folder (single-file or sharded safetensors; F32, F16, BF16 or any
 * other dtype whose values are finite in float32; current or legacy attention key names), or a
 * model of the Hugging Face Hub by its id, like diffusers' `from_pretrained`.
 * The config is validated and the model's memory bounded before any weight is read; missing,
 * unexpected, mis-shaped or non-finite weights fail with an error naming the file and the key.
 *
 * A source that exists is a folder. Otherwise an `org/name` id is resolved through the
 * Hugging Face cache Python's `huggingface_hub` shares (see `resolveHubModel`): what
 * is cached loads without network, what is missing is downloaded (safetensors only) into the
 * same layout. A cache snapshot (`…/models--org--name/snapshots/<commit>`), by id or as a
 * folder, may link anywhere inside `models--org--name/` without `allowExternalLinks`.
 *
 * Permissions for a hub id: `--allow-read` for the cache (`$HOME/.cache/huggingface` by
 * default); to download, `--allow-write` for it and
 * `--allow-net=huggingface.co,cdn-lfs.hf.co,cdn-lfs-us-1.hf.co,cas-bridge.xethub.hf.co`;
 * `--allow-env=HF_HOME,HF_HUB_CACHE,HF_ENDPOINT,HF_HUB_OFFLINE,HF_TOKEN,HF_TOKEN_PATH,XDG_CACHE_HOME,HOME`
 * to honour those variables (one not granted is treated as unset, said once on stderr).
 *
 * @param source The model folder (a path or a `file:` URL), or a hub id such as
 * `"google/ddpm-cifar10-32"`.
 * @param options Schedule override, weight file stem, memory bound, links policy, and for a hub
 * id: revision, subfolder, cache folder, offline mode, token, endpoint, progress callback.
 * @returns The backbone; dispose it when done.
 * @throws {TypeError | RangeError} For a bad `config.json` (naming the file, field and value),
 * a model above `maxParameterBytes`, or bad weights.
 * @throws {SafetensorsError} For weight files that are malformed, not regular files, or
 * symbolic links leading outside the folder.
 * @throws {HubError} When a hub id cannot be resolved (not cached and offline or without
 * `--allow-net`, a wrong id or revision, a gated repository, `.bin`-only weights, a failed
 * download; its `code` says which).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { loadBackbone } from "@diffprobe/core";
 *
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/config.json`, JSON.stringify({ num_train_timesteps: 2e9 }));
 * await assert.rejects(loadBackbone(dir), {
 *   name: "RangeError",
 *   message: `num_train_timesteps in "${dir}/config.json" must be an integer in [1, 100000], ` +
 *     `got 2000000000`,
 * });
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function loadBackbone(
  source: string | URL,
  options: LoadBackboneOptions = {},
): Promise<Backbone> {
  const { folder, linkRoot } = await locate(source, options);
  const configPath = join(folder, "config.json");
  if (linkRoot !== undefined) await checkLinkInside(configPath, linkRoot);
  const config = await readConfigFile(configPath);
  const resolved = resolveConfig(config, configPath);
  if (options.schedule) {
    resolved.schedule = {
      kind: options.schedule.kind ?? "linear",
      timesteps: options.schedule.timesteps ?? resolved.schedule.timesteps,
      betaStart: options.schedule.betaStart ?? 1e-4,
      betaEnd: options.schedule.betaEnd ?? 0.02,
    };
    noiseSchedule(resolved.schedule); // checks the override before any weight is read
  }
  const plan = unetPlan(resolved);
  const parameters = checkParameterMemory(
    resolved,
    plan,
    options.maxParameterBytes,
    JSON.stringify(configPath),
  );
  const className = config._class_name ?? "UNet2DModel";
  const weights = await readWeights(folder, plan, parameters, className, options, linkRoot);
  return new UNet(resolved, plan, weights);
}

/**
 * Writes `config.json` and `diffusion_pytorch_model.safetensors` (float32, PyTorch layouts) to
 * `dir`, creating it. Each file is written atomically (no temporary file is left behind when a
 * write fails), and errors name the path.
 *
 * @param backbone A backbone from `createBackbone` or `loadBackbone`.
 * @param dir The folder to write into.
 * @returns A promise that resolves once both files are in place.
 * @throws {TypeError} When `backbone` is not one of ours or `dir` is not a non-empty path.
 * @throws {Deno.errors.AlreadyExists | Deno.errors.IsADirectory} Or other file-system errors,
 * their message naming the path.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { createBackbone, saveBackbone } from "@diffprobe/core";
 *
 * const unet = createBackbone({ _class_name: "UNet2DModel", block_out_channels: [32, 32],
 *   down_block_types: ["DownBlock2D", "DownBlock2D"], up_block_types: ["UpBlock2D", "UpBlock2D"], norm_num_groups: 8 });
 * const dir = await Deno.makeTempDir();
 * await saveBackbone(unet, dir);
 * assert.ok((await Deno.stat(`${dir}/config.json`)).isFile);
 * unet.dispose();
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function saveBackbone(backbone: Backbone, dir: string): Promise<void> {
  if (!(backbone instanceof UNet)) {
    throw new TypeError("saveBackbone needs a backbone made by createBackbone or loadBackbone");
  }
  if (typeof dir !== "string" || dir === "") {
    throw new TypeError(`Backbone folder must be a non-empty path, got ${show(dir)}`);
  }
  try {
    await Deno.mkdir(dir, { recursive: true });
  } catch (error) {
    const reason = error instanceof Deno.errors.AlreadyExists
      ? "it exists and is not a folder"
      : error instanceof Error
      ? error.message
      : String(error);
    throw new (error instanceof Error ? error.constructor as ErrorConstructor : Error)(
      `Cannot save the backbone to "${dir}": ${reason}`,
      { cause: error },
    );
  }
  const tensors = new Map<string, TensorToWrite>();
  for (const [name, shape] of backbone.plan.weights) {
    const w = backbone.weights.get(name);
    if (!w) throw new RangeError(`Backbone has no weight "${name}"`);
    const torch = toTorchLayout(w, shape);
    tensors.set(name, { dtype: "F32", shape, data: torch.dataSync() as Float32Array });
    torch.dispose();
  }
  await writeFileAtomic(
    join(dir, "diffusion_pytorch_model.safetensors"),
    serializeSafetensors(tensors, { format: "pt" }),
  );
  const config = { ...backbone.config };
  config._class_name ??= "UNet2DModel";
  await writeFileAtomic(join(dir, "config.json"), JSON.stringify(config, null, 2) + "\n");
}
