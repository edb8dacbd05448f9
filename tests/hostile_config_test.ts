/**
 * Hostile configs: sizes that would allocate or loop without end, values out of range or of the
 * wrong kind, oversized or non-regular `config.json` files, and models too large for memory.
 * Each case asserts the error class and that the message names the file (or "the config"), the
 * field and the value, and that the refusal is quick and allocates no tensor. The published
 * DDPM configs (CIFAR-10 32×32, LSUN church and bedroom 256×256) must stay accepted.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import assert from "node:assert/strict";
import { join } from "node:path";
import { createBackbone, loadBackbone } from "../src/models/backbone.ts";
import { resolveConfig, type UNet2DConfig } from "../src/models/config.ts";
import { DDPM_CIFAR10_32_CONFIG } from "../src/models/presets.ts";
import { noiseSchedule } from "../src/models/schedule.ts";
import { unetPlan } from "../src/models/unet_plan.ts";
import { fixture } from "./_fixtures.ts";

const TINY_CONFIG: UNet2DConfig = JSON.parse(
  Deno.readTextFileSync(fixture("tiny-unet2d/config.json")),
);
const SECRET = "SECRET-CONTENT-7f3a";

/** Writes `text` as `config.json` of a new folder, runs `fn`, removes the folder. */
async function withConfig(text: string, fn: (folder: string, path: string) => Promise<void>) {
  const folder = await Deno.makeTempDir({ prefix: "diffprobe-hostile-config-" });
  try {
    await Deno.writeTextFile(join(folder, "config.json"), text);
    await fn(folder, join(folder, "config.json"));
  } finally {
    await Deno.remove(folder, { recursive: true });
  }
}

/** Checks a caught error: its class, the parts its message names, no echoed content. */
function check(
  caught: unknown,
  cls: abstract new (...args: never[]) => Error,
  parts: string[],
): Error {
  assert.ok(caught instanceof cls, `expected a ${cls.name}, got ${String(caught)}`);
  for (const part of parts) {
    assert.ok(caught.message.includes(part), `"${caught.message}" does not name ${part}`);
  }
  assert.ok(
    !caught.message.includes(SECRET),
    `the message echoes file contents: ${caught.message}`,
  );
  return caught;
}

/** `loadBackbone` on a folder whose config.json is `config`: must fail fast, allocating nothing. */
async function loadRejects(
  config: unknown,
  cls: abstract new (...args: never[]) => Error,
  parts: (path: string) => string[],
): Promise<void> {
  await withConfig(JSON.stringify(config), async (folder, path) => {
    const before = tf.memory().numTensors;
    const started = performance.now();
    let caught: unknown;
    try {
      await loadBackbone(folder);
    } catch (error) {
      caught = error;
    }
    assert.ok(performance.now() - started < 2000, "took more than 2 s");
    assert.equal(tf.memory().numTensors, before, "allocated tensors before refusing");
    check(caught, cls, [`"${path}"`, ...parts(path)]);
  });
}

/** `resolveConfig` of the tiny config with `edit` applied must throw naming field and value. */
function resolveRejects(
  edit: Record<string, unknown>,
  cls: abstract new (...args: never[]) => Error,
  parts: string[],
): void {
  let caught: unknown;
  try {
    resolveConfig({ ...TINY_CONFIG, ...edit } as UNet2DConfig, "m/config.json");
  } catch (error) {
    caught = error;
  }
  check(caught, cls, ['"m/config.json"', ...parts]);
}

function parameters(config: UNet2DConfig): number {
  let count = 0;
  for (const shape of unetPlan(resolveConfig(config)).weights.values()) {
    count += shape.reduce((a, b) => a * b, 1);
  }
  return count;
}

// Sizes that allocate or spin ---------------------------------------------------------------------

Deno.test("hostile config: num_train_timesteps 2e9 is refused naming file, field and value", async () => {
  await loadRejects(
    { ...TINY_CONFIG, num_train_timesteps: 2e9 },
    RangeError,
    () => ["num_train_timesteps", "2000000000", "[1, 100000]"],
  );
  const started = performance.now();
  assert.throws(() => noiseSchedule({ timesteps: 2e9 }), {
    name: "RangeError",
    message: "Timesteps must be an integer in [1, 100000], got 2000000000",
  });
  assert.ok(performance.now() - started < 100);
});

Deno.test("hostile config: layers_per_block 1e8 is refused", async () => {
  await loadRejects(
    { ...TINY_CONFIG, layers_per_block: 1e8 },
    RangeError,
    () => ["layers_per_block", "100000000", "[1, 64]"],
  );
});

Deno.test("hostile config: channel counts of 2^20 are refused", async () => {
  await loadRejects(
    { ...TINY_CONFIG, block_out_channels: [2 ** 20, 2 ** 20] },
    RangeError,
    () => ["block_out_channels", "1048576", "8192"],
  );
  resolveRejects({ in_channels: 2 ** 20 }, RangeError, ["in_channels", "1048576"]);
  resolveRejects({ out_channels: 0 }, RangeError, ["out_channels", "got 0"]);
  resolveRejects({ time_embedding_dim: 1e9 }, RangeError, ["time_embedding_dim", "1000000000"]);
  resolveRejects({ attention_head_dim: 2 ** 20 }, RangeError, ["attention_head_dim", "1048576"]);
  resolveRejects({ sample_size: 1e9 }, RangeError, ["sample_size", "1000000000"]);
  resolveRejects({ sample_size: [32, -1] }, RangeError, ["sample_size", "[32,-1]"]);
  resolveRejects({ norm_num_groups: 3 }, RangeError, ["norm_num_groups", "got 3"]);
  resolveRejects(
    { block_out_channels: [32, 32, 32, 32, 32, 32, 32, 32, 32] },
    RangeError,
    ["block_out_channels", "1 to 8"],
  );
});

Deno.test("hostile config: a model too large for memory is refused before any allocation", () => {
  // Every field within its bound, but 8 levels of 8,192 channels: billions of parameters.
  const huge = {
    _class_name: "UNet2DModel" as const,
    block_out_channels: new Array(8).fill(8192),
    down_block_types: new Array(8).fill("DownBlock2D"),
    up_block_types: new Array(8).fill("UpBlock2D"),
    layers_per_block: 64,
  };
  const before = tf.memory().numTensors;
  const started = performance.now();
  let caught: unknown;
  try {
    createBackbone(huge);
  } catch (error) {
    caught = error;
  }
  check(caught, RangeError, [
    "the config",
    "parameters",
    "above the limit of 2048 MiB",
    "block_out_channels ([8192,8192,8192,8192,8192,8192,8192,8192])",
    "layers_per_block (64)",
    "maxParameterBytes",
  ]);
  assert.ok(performance.now() - started < 2000);
  assert.equal(tf.memory().numTensors, before);
  // The limit is an option: the tiny model (702,499 parameters, 2.8 MB) under a 1 MB limit.
  assert.throws(() => createBackbone(TINY_CONFIG, { maxParameterBytes: 1e6 }), {
    name: "RangeError",
    message: /702499 parameters \(3 MiB as float32\), above the limit of 1 MiB/,
  });
  assert.throws(() => createBackbone(TINY_CONFIG, { maxParameterBytes: -1 }), {
    message: "maxParameterBytes must be a non-negative integer, got -1",
  });
});

Deno.test("hostile config: loadBackbone estimates the memory from config.json before reading weights", async () => {
  await withConfig(JSON.stringify(TINY_CONFIG), async (folder, path) => {
    // No weights in the folder at all: the estimate must fail first, naming the config file.
    await assert.rejects(loadBackbone(folder, { maxParameterBytes: 1e6 }), (e) => {
      check(e, RangeError, [`"${path}"`, "702499 parameters", "maxParameterBytes"]);
      return true;
    });
    // A schedule override is checked before any weight is read, too.
    await assert.rejects(loadBackbone(folder, { schedule: { timesteps: 2e9 } }), {
      name: "RangeError",
      message: "Timesteps must be an integer in [1, 100000], got 2000000000",
    });
  });
});

// Values out of range -------------------------------------------------------------------------------

Deno.test("hostile config: beta_start and beta_end out of range name file, field and value", async () => {
  await loadRejects({ ...TINY_CONFIG, beta_start: -1 }, RangeError, () => [
    "beta_start",
    "got -1",
    "(0, 1)",
  ]);
  await loadRejects({ ...TINY_CONFIG, beta_end: 1.5 }, RangeError, () => ["beta_end", "1.5"]);
  resolveRejects({ beta_start: 0.1, beta_end: 0.01 }, RangeError, [
    "beta_end",
    "at least beta_start (0.1)",
    "got 0.01",
  ]);
  resolveRejects({ beta_start: "0.1" }, RangeError, ["beta_start", '"0.1"']);
  assert.throws(() => noiseSchedule({ betaStart: 2 }), {
    message: "betaStart must be a number in (0, 1), got 2",
  });
});

Deno.test("hostile config: norm_eps 1e999, 0 and -1 are refused", async () => {
  // JSON's 1e999 parses to Infinity.
  await withConfig(
    JSON.stringify(TINY_CONFIG).replace('"norm_eps":0.000001', '"norm_eps":1e999'),
    async (folder, path) => {
      assert.match(await Deno.readTextFile(path), /1e999/);
      await assert.rejects(loadBackbone(folder), (e) => {
        check(e, RangeError, [`"${path}"`, "norm_eps", "(0, 1]", "got Infinity"]);
        return true;
      });
    },
  );
  resolveRejects({ norm_eps: 0 }, RangeError, ["norm_eps", "got 0"]);
  resolveRejects({ norm_eps: -1 }, RangeError, ["norm_eps", "got -1"]);
  resolveRejects({ dropout: 1 }, RangeError, ["dropout", "[0, 1)", "got 1"]);
  resolveRejects({ mid_block_scale_factor: 0 }, RangeError, ["mid_block_scale_factor", "got 0"]);
  // The timestep embedding divides by (block_out_channels[0] / 2 − freq_shift).
  resolveRejects({ freq_shift: 16 }, RangeError, ["freq_shift", "[0, 16)", "got 16"]);
});

Deno.test("hostile config: values of the wrong kind name field and value", () => {
  resolveRejects({ _class_name: "UNet3DModel" }, TypeError, ["_class_name", '"UNet3DModel"']);
  resolveRejects({ add_attention: "yes" }, TypeError, ["add_attention", '"yes"']);
  resolveRejects({ layers_per_block: "2" }, RangeError, ["layers_per_block", '"2"']);
  resolveRejects({ down_block_types: ["DownBlock2D", "CrossAttnDownBlock2D"] }, TypeError, [
    "down_block_types[1]",
    '"CrossAttnDownBlock2D"',
  ]);
  resolveRejects({ class_embed_type: "timestep" }, TypeError, ["class_embed_type", '"timestep"']);
  resolveRejects({ downsample_padding: 2 }, RangeError, ["downsample_padding", "got 2"]);
  // Without a file, errors say "the config".
  assert.throws(() => createBackbone({ ...TINY_CONFIG, layers_per_block: 0 }), {
    name: "RangeError",
    message: "layers_per_block in the config must be an integer in [1, 64], got 0",
  });
});

// config.json files that are not small JSON objects -------------------------------------------------

Deno.test("hostile config: an oversized config.json is refused before it is read", async () => {
  await withConfig(" ".repeat(2 * 1024 * 1024) + "{}", async (folder, path) => {
    await assert.rejects(loadBackbone(folder), (e) => {
      check(e, RangeError, [`"${path}"`, "2097154 bytes", "1048576"]);
      return true;
    });
  });
});

Deno.test("hostile config: config.json that is a folder, or not JSON, or not an object", async () => {
  const folder = await Deno.makeTempDir({ prefix: "diffprobe-hostile-config-" });
  try {
    const path = join(folder, "config.json");
    await Deno.mkdir(path);
    await assert.rejects(loadBackbone(folder), (e) => {
      check(e, TypeError, [`"${path}"`, "directory, not a regular file"]);
      return true;
    });
  } finally {
    await Deno.remove(folder, { recursive: true });
  }
  await assert.rejects(loadBackbone("/nonexistent/model"), (e) => {
    check(e, Deno.errors.NotFound, ['"/nonexistent/model/config.json"', "does not exist"]);
    return true;
  });
  await withConfig(`{"_class_name": ${SECRET}}`, async (folder, path) => {
    await assert.rejects(loadBackbone(folder), (e) => {
      check(e, TypeError, [`"${path}"`, "is not valid JSON"]);
      return true;
    });
  });
  await withConfig("[1, 2]", async (folder, path) => {
    await assert.rejects(loadBackbone(folder), (e) => {
      check(e, TypeError, [`"${path}"`, "must be a JSON object", "[1,2]"]);
      return true;
    });
  });
});

Deno.test("hostile config: a config.json linked to /dev/zero is refused unopened", async () => {
  const folder = fixture("hostile/zero-config"); // config.json -> /dev/zero
  await assert.rejects(loadBackbone(folder), (e) => {
    check(e, TypeError, [`"${join(folder, "config.json")}"`, "character device"]);
    return true;
  });
});

// Real configs stay accepted --------------------------------------------------------------------------

/** google/ddpm-church-256 and google/ddpm-bedroom-256 (their config.json, the same for both). */
const DDPM_LSUN_256: UNet2DConfig = {
  _class_name: "UNet2DModel",
  _diffusers_version: "0.0.4",
  act_fn: "silu",
  attention_head_dim: null,
  block_out_channels: [128, 128, 256, 256, 512, 512],
  center_input_sample: false,
  down_block_types: [
    "DownBlock2D",
    "DownBlock2D",
    "DownBlock2D",
    "DownBlock2D",
    "AttnDownBlock2D",
    "DownBlock2D",
  ],
  downsample_padding: 0,
  flip_sin_to_cos: false,
  freq_shift: 1,
  in_channels: 3,
  layers_per_block: 2,
  mid_block_scale_factor: 1,
  norm_eps: 1e-6,
  norm_num_groups: 32,
  out_channels: 3,
  sample_size: 256,
  time_embedding_type: "positional",
  up_block_types: [
    "UpBlock2D",
    "AttnUpBlock2D",
    "UpBlock2D",
    "UpBlock2D",
    "UpBlock2D",
    "UpBlock2D",
  ],
};

Deno.test("hostile config: the published DDPM configs are inside every bound", () => {
  // Ho et al. 2020, appendix B: 35.7M parameters for CIFAR-10, 114M for the LSUN 256 models.
  assert.equal(parameters(DDPM_CIFAR10_32_CONFIG as UNet2DConfig), 35_746_307);
  assert.equal(Math.round(parameters(DDPM_LSUN_256) / 1e6), 114);
  const lsun = resolveConfig(DDPM_LSUN_256, "ddpm-church-256/config.json");
  assert.deepEqual(lsun.sampleSize, [256, 256]);
  assert.equal(lsun.schedule.timesteps, 1000);
});
