/**
 * The block registry and the UNet's structure against numbers fixed outside this code: the README's
 * block numbering ("Blocks"), the parameter count of google/ddpm-cifar10-32 (35,746,307, as diffusers reports it),
 * and early exit.
 */
import * as tf from "@tensorflow/tfjs";
import assert from "node:assert/strict";
import { createBackbone } from "../src/models/backbone.ts";
import type { UNet1DConfig, UNet2DConfig } from "../src/models/config.ts";
import { DDPM_CIFAR10_32_CONFIG } from "../src/models/presets.ts";

/** google/ddpm-cifar10-32's config.json, as published with the model. */
const DDPM_CIFAR10_32: UNet2DConfig = { ...DDPM_CIFAR10_32_CONFIG, _diffusers_version: "0.1.0" };

/** The README's numbering for the DDPM CIFAR-10 UNet (its "Blocks" table), written out by hand. */
const README_NUMBERING = [
  "conv_in",
  "down_blocks.0.0",
  "down_blocks.0.1",
  "down_blocks.0.downsample",
  "down_blocks.1.0",
  "down_blocks.1.1",
  "down_blocks.1.downsample",
  "down_blocks.2.0",
  "down_blocks.2.1",
  "down_blocks.2.downsample",
  "down_blocks.3.0",
  "down_blocks.3.1",
  "mid_block",
  "up_blocks.0.0",
  "up_blocks.0.1",
  "up_blocks.0.upsample",
  "up_blocks.1.0",
  "up_blocks.1.1",
  "up_blocks.1.upsample",
  "up_blocks.2.0",
  "up_blocks.2.1",
  "up_blocks.2.upsample",
  "up_blocks.3.0",
  "up_blocks.3.1",
  "up_blocks.3.2",
];

Deno.test("google/ddpm-cifar10-32 config: 35,746,307 parameters, 25 blocks numbered as in the README", () => {
  const before = tf.memory().numTensors;
  const unet = createBackbone(DDPM_CIFAR10_32, { seed: 0 });
  assert.equal(unet.parameterCount(), 35_746_307);
  assert.equal(unet.blocks.length, 25);
  assert.deepEqual(unet.blocks.map((b) => b.name), README_NUMBERING);
  assert.deepEqual(unet.blocks.map((b) => b.index), README_NUMBERING.map((_, i) => i + 1));
  assert.equal(unet.block(17).name, "up_blocks.1.0");
  assert.equal(unet.block(24).name, "up_blocks.3.1");
  assert.deepEqual(unet.block(17).shape, [8, 8, 256]);
  assert.deepEqual(unet.block("up_blocks.3.1").shape, [32, 32, 128]);
  // Name-only outputs before an upsampler stay reachable.
  assert.equal(unet.block("up_blocks.0.2").index, null);
  assert.throws(
    () => unet.block(26),
    (e: Error) =>
      e instanceof RangeError && /No block 26/.test(e.message) &&
      /17 up_blocks\.1\.0/.test(e.message),
  );
  assert.throws(() => unet.block("up_blocks.9.0"), RangeError);
  unet.dispose();
  assert.equal(tf.memory().numTensors, before);
});

Deno.test("an unsupported config value names the field and value", () => {
  assert.throws(
    () => createBackbone({ ...DDPM_CIFAR10_32, resnet_time_scale_shift: "scale_shift" }),
    /resnet_time_scale_shift in the config must be one of "default", got "scale_shift"/,
  );
  assert.throws(
    () =>
      createBackbone({
        ...DDPM_CIFAR10_32,
        down_block_types: ["CrossAttnDownBlock2D", "DownBlock2D", "DownBlock2D", "DownBlock2D"],
      }),
    /down_block_types\[0\] in the config must be one of .*, got "CrossAttnDownBlock2D"/,
  );
  assert.throws(
    () => createBackbone({ ...DDPM_CIFAR10_32, norm_num_groups: 48 }),
    /norm_num_groups in the config must be a divisor of every channel count .*, got 48/,
  );
});

const WAVE_1D: UNet1DConfig = {
  _class_name: "DiffprobeUNet1DModel",
  in_channels: 1,
  out_channels: 1,
  sample_size: 64,
  block_out_channels: [16, 32, 32],
  layers_per_block: 2,
  norm_num_groups: 8,
  down_block_types: ["DownBlock1D", "AttnDownBlock1D", "DownBlock1D"],
  up_block_types: ["UpBlock1D", "AttnUpBlock1D", "UpBlock1D"],
  attention_head_dim: 8,
};

Deno.test("UNet1D follows the same naming and numbering rules", () => {
  const unet = createBackbone(WAVE_1D, { seed: 3 });
  assert.equal(unet.kind, "unet1d");
  // 3 levels, 2 layers: 1 conv_in + 3·2 down layers + 2 downsamples + mid + 3·3 up layers
  // where the last layer of the two upsampling levels counts as its upsample = 19 blocks.
  assert.equal(unet.blocks.length, 1 + 6 + 2 + 1 + 9);
  assert.deepEqual(unet.blocks.slice(9, 14).map((b) => b.name), [
    "mid_block",
    "up_blocks.0.0",
    "up_blocks.0.1",
    "up_blocks.0.upsample",
    "up_blocks.1.0",
  ]);
  assert.deepEqual(unet.block(1).shape, [64, 16]);
  assert.deepEqual(unet.block("mid_block").shape, [16, 32]);
  const x = tf.randomNormal([2, 64, 1], 0, 1, "float32", 1);
  const { eps, blocks } = unet.forward(x, [10, 500], { capture: [3, "up_blocks.1.1"], eps: true });
  assert.deepEqual(eps!.shape, [2, 64, 1]);
  assert.deepEqual(blocks.get("down_blocks.0.1")!.shape, [2, 64, 16]);
  assert.deepEqual(blocks.get("up_blocks.1.1")!.shape, [2, 32, 32]);
  tf.dispose([x, eps!, ...blocks.values()]);
  unet.dispose();
});

/** Counts the kernels a function runs, with tfjs' profiler. */
async function kernelCount(f: () => tf.TensorContainer): Promise<number> {
  const info = await tf.profile(f);
  tf.dispose(info.result as tf.TensorContainer);
  return info.kernels.length;
}

Deno.test("capture stops after the deepest requested block and skips eps", async () => {
  for (const config of [WAVE_1D, DDPM_CIFAR10_32]) {
    const unet = createBackbone({
      ...config,
      block_out_channels: config === WAVE_1D ? [16, 32, 32] : [32, 32, 32, 32],
      norm_num_groups: 8,
    });
    const size = config === WAVE_1D ? [1, 64, 1] : [1, 32, 32, 3];
    const x = tf.zeros(size);
    const before = tf.memory().numTensors;
    const run = (capture?: number[]) => () => {
      const r = unet.forward(x, 30, { capture });
      const out = [...r.blocks.values(), ...(r.eps ? [r.eps] : [])];
      return out;
    };
    const full = await kernelCount(run());
    const early = await kernelCount(run([3]));
    const deeper = await kernelCount(run([2, 12]));
    assert.ok(early < deeper && deeper < full, `${early} < ${deeper} < ${full} kernels`);
    const r = unet.forward(x, 30, { capture: [1] });
    assert.equal(r.eps, undefined);
    assert.deepEqual([...r.blocks.keys()], ["conv_in"]);
    tf.dispose([...r.blocks.values()]);
    assert.equal(tf.memory().numTensors, before);
    x.dispose();
    unet.dispose();
  }
});

Deno.test("forward rejects bad timesteps and shapes with RangeError", () => {
  const unet = createBackbone({ ...WAVE_1D, block_out_channels: [8, 8, 8] });
  const x = tf.zeros([1, 64, 1]);
  assert.throws(() => unet.forward(x, 1000), /Timestep.*1000/);
  assert.throws(() => unet.forward(x, -1), RangeError);
  assert.throws(() => unet.forward(x, 2.5), RangeError);
  assert.throws(() => unet.forward(tf.zeros([1, 62, 1]), 5), /multiple of 4/);
  assert.throws(() => unet.forward(tf.zeros([1, 64, 2]), 5), /C = 1/);
  x.dispose();
  unet.dispose();
});
