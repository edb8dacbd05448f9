/**
 * The model configurations the benches time, once: the wave example's 1-D DDPM and
 * `ddpm-cifar10-small` (the 8,952,067-parameter checkpoint's `config.json`).
 *
 * @module
 */
import { DDPM_CIFAR10_32_CONFIG, type UNet1DConfig, type UNet2DConfig } from "../mod.ts";

/** The wave example's 1-D DDPM, as the training benches and `train_torch.py` build it. */
export const WAVE_1D: UNet1DConfig = {
  _class_name: "DiffprobeUNet1DModel",
  in_channels: 1,
  out_channels: 1,
  sample_size: 128,
  block_out_channels: [32, 64, 64],
  layers_per_block: 2,
  norm_num_groups: 8,
  dropout: 0.1,
  down_block_types: ["DownBlock1D", "AttnDownBlock1D", "DownBlock1D"],
  up_block_types: ["UpBlock1D", "AttnUpBlock1D", "UpBlock1D"],
};

/** ddpm-cifar10-small's config.json: google/ddpm-cifar10-32's with narrower levels. */
export const DDPM_CIFAR10_SMALL: UNet2DConfig = {
  ...DDPM_CIFAR10_32_CONFIG,
  block_out_channels: [64, 128, 128, 128],
  up_block_types: ["UpBlock2D", "UpBlock2D", "AttnUpBlock2D", "UpBlock2D"],
  dropout: 0.1,
};
