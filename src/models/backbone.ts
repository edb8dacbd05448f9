/**
 * Building, loading and saving backbones in the diffusers layout: a folder with `config.json`
 * and `diffusion_pytorch_model.safetensors` (or shards plus
 * `diffusion_pytorch_model.safetensors.index.json`). PyTorch layouts are converted once, at load;
 * `saveBackbone` converts back, so PyTorch users can open our checkpoints with
 * `UNet2DModel.from_pretrained`.
 *
 * @example
 * ```ts
 * import { createBackbone, loadBackbone, saveBackbone } from "./backbone.ts";
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
 * console.log(again.parameterCount() === unet.parameterCount()); // true
 * unet.dispose();
 * again.dispose();
 * ```
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { join } from "node:path";
import { resolveConfig, type UNet1DConfig, type UNet2DConfig } from "./config.ts";
import { unetPlan } from "./unet_plan.ts";
import { type Backbone, toTfLayout, toTorchLayout, UNet } from "./unet.ts";
import type { ScheduleOptions } from "./schedule.ts";
import { readCheckpointTensors } from "../io/checkpoint_files.ts";
import { toFloat32, writeSafetensorsFile } from "../io/safetensors.ts";
import type { TensorToWrite } from "../io/safetensors.ts";

/** Options of {@linkcode createBackbone}. */
export interface CreateBackboneOptions {
  /** Seed of the random initialisation (default 0). */
  seed?: number;
}

/**
 * A randomly initialised backbone (PyTorch's default initialisation: uniform ±1/√fan_in for
 * convolutions and linears, ones and zeros for norms), for pre-training with `trainDiffusion`.
 *
 * @example
 * ```ts
 * import { createBackbone } from "./backbone.ts";
 *
 * const unet = createBackbone({
 *   _class_name: "DiffprobeUNet1DModel", in_channels: 1, out_channels: 1, sample_size: 64,
 *   block_out_channels: [16, 32], norm_num_groups: 8, layers_per_block: 1,
 *   down_block_types: ["DownBlock1D", "AttnDownBlock1D"], up_block_types: ["AttnUpBlock1D", "UpBlock1D"],
 * });
 * console.log(unet.kind, unet.blocks.length); // unet1d 9
 * unet.dispose();
 * ```
 */
export function createBackbone(
  config: UNet2DConfig | UNet1DConfig,
  options: CreateBackboneOptions = {},
): Backbone {
  const resolved = resolveConfig(config);
  const plan = unetPlan(resolved);
  const weights = new Map<string, tf.Tensor>();
  let i = 0;
  const seed = options.seed ?? 0;
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
  return new UNet(resolved, plan, weights);
}

/** Options of {@linkcode loadBackbone}. */
export interface LoadBackboneOptions {
  /** Overrides the noise schedule (diffusers keeps it in the scheduler, not the UNet config). */
  schedule?: ScheduleOptions;
  /** Base name of the weight files (default `"diffusion_pytorch_model"`). */
  weightsName?: string;
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

/**
 * Loads a diffusers model folder (single-file or sharded safetensors; F32, F16 or BF16; current
 * or legacy attention key names). Missing, unexpected or mis-shaped weights fail with an error
 * naming the key (and both shapes).
 *
 * @example
 * ```ts ignore
 * import { loadBackbone } from "./backbone.ts";
 *
 * const unet = await loadBackbone("path/to/ddpm-cifar10-32");
 * console.log(unet.blocks.length); // 25
 * ```
 */
export async function loadBackbone(
  source: string | URL,
  options: LoadBackboneOptions = {},
): Promise<Backbone> {
  const folder = source instanceof URL ? decodeURIComponent(source.pathname) : source;
  const configPath = join(folder, "config.json");
  let text: string;
  try {
    text = await Deno.readTextFile(configPath);
  } catch (e) {
    throw new TypeError(`Cannot read the model config "${configPath}": ${(e as Error).message}`);
  }
  let config: UNet2DConfig | UNet1DConfig;
  try {
    config = JSON.parse(text);
  } catch (e) {
    throw new TypeError(`Model config "${configPath}" is not valid JSON: ${(e as Error).message}`);
  }
  const resolved = resolveConfig(config);
  if (options.schedule) {
    resolved.schedule = {
      kind: options.schedule.kind ?? "linear",
      timesteps: options.schedule.timesteps ?? resolved.schedule.timesteps,
      betaStart: options.schedule.betaStart ?? 1e-4,
      betaEnd: options.schedule.betaEnd ?? 0.02,
    };
  }
  const plan = unetPlan(resolved);
  const weights = new Map<string, tf.Tensor>();
  try {
    for await (const { file, name, entry } of readCheckpointTensors(folder, options.weightsName)) {
      const key = currentKeyName(name);
      const expected = plan.weights.get(key);
      if (!expected) {
        throw new RangeError(
          `Unexpected weight "${name}" in "${file}": this ${
            config._class_name ?? "UNet2DModel"
          } config has no such parameter`,
        );
      }
      if (weights.has(key)) {
        throw new RangeError(
          `Weight "${key}" appears twice (second time as "${name}" in "${file}")`,
        );
      }
      if (expected.length !== entry.shape.length || expected.some((d, i) => d !== entry.shape[i])) {
        throw new RangeError(
          `Weight "${name}" in "${file}" has shape [${entry.shape}], the config expects [${expected}]`,
        );
      }
      const raw = tf.tensor(toFloat32(entry), entry.shape, "float32");
      weights.set(key, toTfLayout(key, raw));
      raw.dispose();
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
    for (const t of weights.values()) t.dispose();
    throw e;
  }
  return new UNet(resolved, plan, weights);
}

/**
 * Writes `config.json` and `diffusion_pytorch_model.safetensors` (float32, PyTorch layouts) to
 * `dir`, creating it. The files are written atomically.
 *
 * @example
 * ```ts
 * import { createBackbone, saveBackbone } from "./backbone.ts";
 *
 * const unet = createBackbone({ _class_name: "UNet2DModel", block_out_channels: [32, 32],
 *   down_block_types: ["DownBlock2D", "DownBlock2D"], up_block_types: ["UpBlock2D", "UpBlock2D"], norm_num_groups: 8 });
 * const dir = await Deno.makeTempDir();
 * await saveBackbone(unet, dir);
 * console.log((await Deno.stat(`${dir}/config.json`)).isFile); // true
 * unet.dispose();
 * ```
 */
export async function saveBackbone(backbone: Backbone, dir: string): Promise<void> {
  if (!(backbone instanceof UNet)) {
    throw new TypeError("saveBackbone needs a backbone made by createBackbone or loadBackbone");
  }
  await Deno.mkdir(dir, { recursive: true });
  const tensors = new Map<string, TensorToWrite>();
  for (const [name, shape] of backbone.plan.weights) {
    const w = backbone.weights.get(name);
    if (!w) throw new RangeError(`Backbone has no weight "${name}"`);
    const torch = toTorchLayout(w, shape);
    tensors.set(name, { dtype: "F32", shape, data: torch.dataSync() as Float32Array });
    torch.dispose();
  }
  await writeSafetensorsFile(join(dir, "diffusion_pytorch_model.safetensors"), tensors, {
    format: "pt",
  });
  const config = { ...backbone.config };
  config._class_name ??= "UNet2DModel";
  const tmp = join(dir, `config.json.${crypto.randomUUID()}.tmp`);
  await Deno.writeTextFile(tmp, JSON.stringify(config, null, 2) + "\n");
  await Deno.rename(tmp, join(dir, "config.json"));
}
