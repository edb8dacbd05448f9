/**
 * Configurations of published checkpoints, for `createBackbone` (random weights of the same
 * shape: benchmarks, pre-training from scratch) and for checking a downloaded `config.json`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { createBackbone, DDPM_CIFAR10_32_CONFIG } from "@diffprobe/core";
 *
 * const unet = createBackbone(DDPM_CIFAR10_32_CONFIG);
 * assert.equal(unet.parameterCount(), 35_746_307);
 * unet.dispose();
 * ```
 *
 * @module
 */
import type { UNet2DConfig } from "./config.ts";

/**
 * google/ddpm-cifar10-32 (Ho et al. 2020, converted to diffusers): 35.7M parameters, 4 levels
 * of 128/256/256/256 channels, attention at 16×16, 25 numbered blocks.
 *
 * @example Checking a downloaded config against it
 * ```ts
 * import assert from "node:assert/strict";
 * import { DDPM_CIFAR10_32_CONFIG } from "@diffprobe/core";
 *
 * const downloaded: Record<string, unknown> = JSON.parse(
 *   JSON.stringify({ ...DDPM_CIFAR10_32_CONFIG, _diffusers_version: "0.0.4" }),
 * );
 * for (const [key, value] of Object.entries(DDPM_CIFAR10_32_CONFIG)) {
 *   assert.deepEqual(downloaded[key], value, key);
 * }
 * ```
 */
export const DDPM_CIFAR10_32_CONFIG: Readonly<UNet2DConfig> = Object.freeze({
  _class_name: "UNet2DModel",
  act_fn: "silu",
  attention_head_dim: null,
  block_out_channels: [128, 256, 256, 256],
  center_input_sample: false,
  down_block_types: ["DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D"],
  downsample_padding: 0,
  flip_sin_to_cos: false,
  freq_shift: 1,
  in_channels: 3,
  layers_per_block: 2,
  mid_block_scale_factor: 1,
  norm_eps: 1e-6,
  norm_num_groups: 32,
  out_channels: 3,
  sample_size: 32,
  time_embedding_type: "positional",
  up_block_types: ["UpBlock2D", "UpBlock2D", "AttnUpBlock2D", "UpBlock2D"],
});
