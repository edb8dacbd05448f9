/**
 * Generating samples from a trained diffusion backbone, to see what it learned: DDPM ancestral
 * sampling and DDIM, both following diffusers' `DDPMScheduler` / `DDIMScheduler` (epsilon
 * prediction, "leading" timestep spacing, `fixed_small` variance, `set_alpha_to_one`), and
 * writing them as an image grid (PNG) or signal panels (SVG).
 *
 * Sample `i` starts from noise that depends only on `(seed, i)`, so it is the same whatever the
 * batch size.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { createBackbone, sampleDDIM } from "@diffprobe/core";
 *
 * const unet = createBackbone({
 *   _class_name: "DiffprobeUNet1DModel", in_channels: 1, out_channels: 1, sample_size: 32,
 *   block_out_channels: [16, 16], norm_num_groups: 8, layers_per_block: 1,
 *   down_block_types: ["DownBlock1D", "DownBlock1D"], up_block_types: ["UpBlock1D", "UpBlock1D"],
 * });
 * const samples = await sampleDDIM(unet, { count: 4, steps: 5 });
 * assert.deepEqual(samples.shape, [4, 32, 1]);
 * samples.dispose();
 * unet.dispose();
 * ```
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { integerInRange, positiveInteger, show } from "../base/validate.ts";
import { sampleNoise } from "../models/noise.ts";
import type { Backbone } from "../models/unet.ts";
import { type ImageGridOptions, writeImageGrid } from "../report/image_grid.ts";
import { type SignalPanelsOptions, writeSignalPanels } from "../report/signal_panels.ts";

/** Options shared by {@linkcode sampleDDPM} and {@linkcode sampleDDIM}. */
export interface SampleOptions {
  /** Number of samples. */
  count: number;
  /** Seed of the starting noise and of the per-step noise (default 0). */
  seed?: number;
  /** Denoising steps (DDPM: default T; DDIM: default 50); timesteps are spaced `floor(T / steps)` apart. */
  steps?: number;
  /** Samples per forward pass (default `min(count, 64)`). */
  batchSize?: number;
  /** Per-sample shape: `[H, W, C]` or `[W, C]` (default: the config's `sample_size` and `in_channels`). */
  shape?: readonly number[];
  /** Clip the predicted clean sample to [-1, 1] at every step (default true, as diffusers). */
  clipSample?: boolean;
  /** Called after every denoising step of every batch with the steps done and the total. */
  onStep?: (done: number, total: number) => void;
}

/** Options of {@linkcode sampleDDIM}. */
export interface DDIMSampleOptions extends SampleOptions {
  /** 0 (default) is deterministic DDIM; 1 has DDPM's amount of noise. */
  eta?: number;
}

interface StepSpec {
  t: number;
  alphaBar: number;
  alphaBarPrev: number;
}

function timesteps(backbone: Backbone, steps: number): StepSpec[] {
  const T = backbone.schedule.timesteps;
  integerInRange(steps, "Number of sampling steps", 1, T);
  const ratio = Math.floor(T / steps);
  const ab = backbone.schedule.alphasCumprod;
  const out: StepSpec[] = [];
  for (let i = steps - 1; i >= 0; i--) {
    const t = i * ratio;
    const prev = t - ratio;
    out.push({ t, alphaBar: ab[t], alphaBarPrev: prev >= 0 ? ab[prev] : 1 });
  }
  return out;
}

function sampleShape(backbone: Backbone, shape?: readonly number[]): number[] {
  if (shape) return [...shape];
  const cfg = backbone.config as { sample_size?: number | number[] | null; in_channels?: number };
  const c = cfg.in_channels ?? 3;
  const s = cfg.sample_size ?? (backbone.kind === "unet2d" ? 32 : 128);
  if (backbone.kind === "unet1d") return [s as number, c];
  return Array.isArray(s) ? [s[0], s[1], c] : [s, s, c];
}

type Update = (x: tf.Tensor, eps: tf.Tensor, s: StepSpec, z: () => tf.Tensor) => tf.Tensor;

async function run(
  backbone: Backbone,
  options: SampleOptions,
  defaultSteps: number,
  update: Update,
): Promise<tf.Tensor> {
  const count = options.count;
  positiveInteger(count, "Number of samples");
  const seed = options.seed ?? 0;
  const batch = options.batchSize ?? Math.min(count, 64);
  positiveInteger(batch, "Sampling batch size");
  const shape = sampleShape(backbone, options.shape);
  const plan = timesteps(backbone, options.steps ?? defaultSteps);
  const total = plan.length * Math.ceil(count / batch);
  let done = 0;
  const parts: tf.Tensor[] = [];
  try {
    for (let start = 0; start < count; start += batch) {
      const n = Math.min(batch, count - start);
      let x = sampleNoise(seed, start, n, shape, 0);
      try {
        for (const [k, s] of plan.entries()) {
          const next = tf.tidy(() => {
            const eps = backbone.forward(x, s.t, { eps: true }).eps!;
            return update(x, eps, s, () => sampleNoise(seed, start, n, shape, 1 + k));
          });
          x.dispose();
          x = next;
          options.onStep?.(++done, total);
          await new Promise((resolve) => setTimeout(resolve, 0)); // let progress output through
        }
      } catch (e) {
        x.dispose();
        throw e;
      }
      parts.push(x);
    }
    return parts.length === 1 ? parts[0] : tf.concat(parts, 0);
  } catch (e) {
    tf.dispose(parts);
    throw e;
  } finally {
    if (parts.length > 1) tf.dispose(parts);
  }
}

/** Predicted clean sample from x_t and the predicted noise, optionally clipped. */
function predictX0(x: tf.Tensor, eps: tf.Tensor, alphaBar: number, clip: boolean): tf.Tensor {
  const x0 = tf.div(tf.sub(x, tf.mul(eps, Math.sqrt(1 - alphaBar))), Math.sqrt(alphaBar));
  return clip ? tf.clipByValue(x0, -1, 1) : x0;
}

/**
 * DDPM ancestral sampling (Ho et al. 2020) as diffusers' `DDPMScheduler.step` with
 * `fixed_small` variance: `steps` (default T) denoising steps from pure noise.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { createBackbone, sampleDDPM } from "@diffprobe/core";
 *
 * const unet = createBackbone({
 *   _class_name: "UNet2DModel", sample_size: 8, block_out_channels: [16, 16], layers_per_block: 1,
 *   down_block_types: ["DownBlock2D", "DownBlock2D"], up_block_types: ["UpBlock2D", "UpBlock2D"],
 *   norm_num_groups: 8,
 * });
 * const images = await sampleDDPM(unet, { count: 2, steps: 4, seed: 1 });
 * assert.deepEqual(images.shape, [2, 8, 8, 3]);
 * images.dispose();
 * unet.dispose();
 * ```
 */
export function sampleDDPM(backbone: Backbone, options: SampleOptions): Promise<tf.Tensor> {
  const clip = options.clipSample ?? true;
  return run(backbone, options, backbone.schedule.timesteps, (x, eps, s, z) => {
    const alpha = s.alphaBar / s.alphaBarPrev;
    const beta = 1 - alpha;
    const x0 = predictX0(x, eps, s.alphaBar, clip);
    const cx0 = (Math.sqrt(s.alphaBarPrev) * beta) / (1 - s.alphaBar);
    const cxt = (Math.sqrt(alpha) * (1 - s.alphaBarPrev)) / (1 - s.alphaBar);
    const mean = tf.add(tf.mul(x0, cx0), tf.mul(x, cxt));
    if (s.t === 0) return mean;
    const variance = Math.max(((1 - s.alphaBarPrev) / (1 - s.alphaBar)) * beta, 1e-20);
    return tf.add(mean, tf.mul(z(), Math.sqrt(variance)));
  });
}

/**
 * DDIM sampling (Song et al. 2021) as diffusers' `DDIMScheduler.step`: `steps` (default 50)
 * steps, deterministic for `eta` 0.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { createBackbone, sampleDDIM } from "@diffprobe/core";
 *
 * const unet = createBackbone({
 *   _class_name: "UNet2DModel", sample_size: 8, block_out_channels: [16, 16], layers_per_block: 1,
 *   down_block_types: ["DownBlock2D", "DownBlock2D"], up_block_types: ["UpBlock2D", "UpBlock2D"],
 *   norm_num_groups: 8,
 * });
 * const images = await sampleDDIM(unet, { count: 2, steps: 3, eta: 0 });
 * assert.deepEqual(images.shape, [2, 8, 8, 3]);
 * images.dispose();
 * unet.dispose();
 * ```
 */
export function sampleDDIM(backbone: Backbone, options: DDIMSampleOptions): Promise<tf.Tensor> {
  const clip = options.clipSample ?? true;
  const eta = options.eta ?? 0;
  if (typeof eta !== "number" || !(eta >= 0) || !Number.isFinite(eta)) {
    throw new RangeError(`DDIM eta must be a finite number >= 0, got ${show(eta)}`);
  }
  return run(backbone, options, 50, (x, eps, s, z) => {
    const x0 = predictX0(x, eps, s.alphaBar, clip);
    const variance = ((1 - s.alphaBarPrev) / (1 - s.alphaBar)) * (1 - s.alphaBar / s.alphaBarPrev);
    const std = eta * Math.sqrt(Math.max(variance, 0));
    const direction = tf.mul(eps, Math.sqrt(Math.max(1 - s.alphaBarPrev - std * std, 0)));
    const prev = tf.add(tf.mul(x0, Math.sqrt(s.alphaBarPrev)), direction);
    return std > 0 ? tf.add(prev, tf.mul(z(), std)) : prev;
  });
}

/** Options of {@linkcode writeSamples}. */
export interface WriteSamplesOptions {
  /** For images: the grid's layout. */
  grid?: ImageGridOptions;
  /** For signals: the panels' layout. */
  panels?: SignalPanelsOptions;
}

/**
 * Writes samples for a person to look at: images (`[N, H, W, C]`) as a PNG grid, signals
 * (`[N, W, C]`) as SVG panels. The path's extension must match (`.png` or `.svg`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import * as tf from "@tensorflow/tfjs";
 * import { writeSamples } from "@diffprobe/core";
 *
 * const dir = await Deno.makeTempDir();
 * await writeSamples(`${dir}/images.png`, tf.zeros([4, 8, 8, 3]));
 * await writeSamples(`${dir}/signals.svg`, tf.zeros([4, 32, 1]));
 * assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name).sort(), ["images.png", "signals.svg"]);
 * await assert.rejects(writeSamples(`${dir}/images.svg`, tf.zeros([1, 8, 8, 3])), /PNG/);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function writeSamples(
  path: string,
  samples: tf.Tensor,
  options: WriteSamplesOptions = {},
): Promise<void> {
  if (samples.rank === 4) {
    if (!path.toLowerCase().endsWith(".png")) {
      throw new RangeError(`Images are written as PNG: the path must end in .png, got "${path}"`);
    }
    await writeImageGrid(path, samples, options.grid);
  } else if (samples.rank === 3) {
    if (!path.toLowerCase().endsWith(".svg")) {
      throw new RangeError(`Signals are written as SVG: the path must end in .svg, got "${path}"`);
    }
    await writeSignalPanels(path, samples, options.panels);
  } else {
    throw new RangeError(
      `Samples must be images [N, H, W, C] or signals [N, W, C], got shape [${samples.shape}]`,
    );
  }
}
