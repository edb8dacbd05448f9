/**
 * Pre-training a diffusion UNet (DDPM, epsilon prediction) on the CPU backends.
 *
 * Each step draws a batch from the data with a seeded generator (a fresh permutation per epoch),
 * a timestep per sample uniformly from [0, T), optional random horizontal flips and Gaussian
 * noise; computes the mean squared error between the predicted and the true noise with dropout
 * active; clips the gradients by their global norm; applies AdamW (decoupled weight decay)
 * with a linear warm-up and then a constant or cosine learning rate; and updates an exponential
 * moving average (EMA) of the weights, which is what the run returns and saves.
 *
 * All randomness of step `s` is a function of `(seed, s)`, so a run resumed from a checkpoint
 * replays exactly the batches, timesteps, flips, noise and dropout masks that the uninterrupted
 * run would have used: its losses and weights are the same, bit for bit, on the same backend.
 *
 * On `wasm` and `cpu`, convolution gradients go through `src/nn/conv_grad.ts` (`wasm` has no
 * `Conv2DBackpropFilter` kernel, `cpu`'s is very slow), and on `wasm` the first call installs
 * faster `BatchMatMul`, `Tile` and `Transpose` kernels (`src/backend/wasm_kernels.ts`) for the whole process.
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import { createBackbone } from "../models/backbone.ts";
 * import { trainDiffusion } from "./train_diffusion.ts";
 *
 * const unet = createBackbone({
 *   _class_name: "DiffprobeUNet1DModel", in_channels: 1, out_channels: 1, sample_size: 32,
 *   block_out_channels: [16, 32], norm_num_groups: 8, layers_per_block: 1,
 *   down_block_types: ["DownBlock1D", "DownBlock1D"], up_block_types: ["UpBlock1D", "UpBlock1D"],
 * }, { seed: 0 });
 * const waves = tf.tidy(() => tf.sin(tf.linspace(0, 12, 32)).reshape([1, 32, 1]).tile([16, 1, 1]));
 * const { ema, losses } = await trainDiffusion(unet, waves, { steps: 3, batchSize: 4, learningRate: 1e-3 });
 * console.log(losses.length); // 3
 * ema.dispose();
 * unet.dispose();
 * waves.dispose();
 * ```
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { type Backbone, UNet } from "../models/unet.ts";
import { registerTileGradient } from "../nn/tile_grad.ts";
import { registerWasmKernels } from "../backend/wasm_kernels.ts";
import { linePlotSvg } from "../report/line_plot.ts";
import { AdamW } from "../optim/adamw.ts";
import { learningRateAt } from "../optim/lr_schedule.ts";
import { Random } from "../base/random.ts";
import {
  loadCheckpoint,
  resolveCheckpoint,
  saveCheckpoint,
  stepFolder,
  type TrainState,
} from "./_checkpoint.ts";
import { dirname, join } from "node:path";

/** What `onStep` receives after every optimiser step. */
export interface TrainStepInfo {
  /** 1-based number of the step just taken. */
  step: number;
  /** Its loss (mean squared error of the noise prediction). */
  loss: number;
  /** Its learning rate. */
  lr: number;
  /** Global gradient norm before clipping. */
  gradNorm: number;
}

/** Options of {@linkcode trainDiffusion}. */
export interface TrainDiffusionOptions {
  /** Total optimiser steps of the run (a resumed run continues up to this number). */
  steps: number;
  /** Samples per step (default 32). */
  batchSize?: number;
  /** Peak learning rate (default 1e-4). */
  learningRate?: number;
  /** Linear warm-up steps (default `min(500, floor(steps / 10))`). */
  warmupSteps?: number;
  /** After warm-up: `"constant"` or `"cosine"` down to `minLearningRateRatio · peak` (default `"cosine"`). */
  lrSchedule?: "constant" | "cosine";
  /** Floor of the cosine as a fraction of the peak (default 0). */
  minLearningRateRatio?: number;
  /** AdamW decoupled weight decay (default 0). */
  weightDecay?: number;
  /** AdamW β1 (default 0.9). */
  beta1?: number;
  /** AdamW β2 (default 0.999). */
  beta2?: number;
  /** AdamW ε (default 1e-8). */
  epsilon?: number;
  /** Clip gradients to this global L2 norm; 0 or `Infinity` disables (default 1). */
  gradClip?: number;
  /** Largest EMA decay (default 0.9999). */
  emaDecay?: number;
  /**
   * Ramp the EMA decay up as diffusers' `EMAModel` does, `min(emaDecay, (1 + k) / (10 + k))`
   * at update `k` (the first update copies the weights); false uses `emaDecay` throughout
   * (default true).
   */
  emaWarmup?: boolean;
  /** Flip each sample left–right with probability 1/2 (images; for signals: time reversal). Default false. */
  horizontalFlip?: boolean;
  /**
   * Samples per forward/backward pass; the batch's gradients are accumulated over
   * `ceil(batchSize / microBatchSize)` near-equal parts. `"auto"` (default) splits only on
   * `wasm`, whose heap is limited to 4 GiB, from the activation memory of one sample measured at
   * the start (the ddpm-cifar10-small UNet keeps about 160 MB per sample). A resumed run keeps
   * the value its checkpoint recorded.
   */
  microBatchSize?: number | "auto";
  /** Seed of every random draw of the run (default 0). */
  seed?: number;
  /** Called after every step (awaited when it returns a promise). */
  onStep?: (info: TrainStepInfo) => void | Promise<void>;
  /** Writes the loss curve (SVG) here at every checkpoint and at the end. */
  lossPlot?: string;
  /** Folder of the checkpoints (`<dir>/step-00000100/…`). */
  checkpointDir?: string;
  /** Save a checkpoint every this many steps (and after the last step) when `checkpointDir` is set. */
  checkpointEvery?: number;
  /** Newest checkpoints to keep (default 3). */
  keepCheckpoints?: number;
  /**
   * Continue a run from a checkpoint: a `step-*` folder or a checkpoint folder (its newest
   * `step-*`). The seed, batch size, total steps, data shape and model config must match.
   */
  resume?: string;
}

/** What {@linkcode trainDiffusion} resolves to. */
export interface TrainDiffusionResult {
  /** The EMA of the weights as a new backbone (the caller disposes it). */
  ema: Backbone;
  /** Loss of every step of the run, resumed steps included. */
  losses: number[];
  /** Learning rate of every step. */
  learningRates: number[];
  /** Global gradient norm (before clipping) of every step. */
  gradNorms: number[];
  /** Steps done. */
  step: number;
  /** The last checkpoint written, if any. */
  checkpoint?: string;
}

function positiveInteger(name: string, value: number): number {
  if (!Number.isInteger(value) || value < 1) {
    throw new RangeError(`${name} ${value} is not a positive integer`);
  }
  return value;
}

function inRange(name: string, value: number, lo: number, hi: number): number {
  if (!(value >= lo && value <= hi)) {
    throw new RangeError(`${name} ${value} is not in [${lo}, ${hi}]`);
  }
  return value;
}

/** EMA decay for the `k`-th update (1-based), diffusers' `EMAModel.get_decay`. */
function emaDecayAt(k: number, decay: number, warmup: boolean): number {
  if (!warmup) return decay;
  const step = k - 1;
  if (step <= 0) return 0;
  return Math.min(decay, (1 + step) / (10 + step));
}

/** Activation memory a training forward keeps for backward, per sample (bytes). */
function activationBytesPerSample(
  unet: UNet,
  sampleShape: readonly number[],
  variables: readonly tf.Variable[],
): number {
  const x = tf.zeros([1, ...sampleShape]);
  const before = tf.memory().numBytes;
  let bytes = 0;
  const { value, grads } = tf.variableGrads(() => {
    const out = unet.forward(x, [0], { eps: true, training: true, dropoutSeed: 0 });
    bytes = tf.memory().numBytes - before;
    return tf.mean(tf.square(out.eps!)) as tf.Scalar;
  }, [...variables]);
  tf.dispose([x, value]);
  tf.dispose(grads);
  return bytes;
}

/** Activation budget of one micro-batch on wasm (its heap is 4 GiB; backward needs headroom). */
const WASM_ACTIVATION_BUDGET = 1.9e9;

/** The micro-batch size `"auto"` picks: the whole batch, except on wasm when it would not fit. */
function chooseMicroBatch(
  unet: UNet,
  sampleShape: readonly number[],
  variables: readonly tf.Variable[],
  batchSize: number,
): number {
  if (tf.getBackend() !== "wasm") return batchSize;
  const perSample = activationBytesPerSample(unet, sampleShape, variables);
  const fits = Math.max(1, Math.floor(WASM_ACTIVATION_BUDGET / Math.max(perSample, 1)));
  return Math.min(batchSize, fits);
}

/** `[start, size]` of near-equal parts of a batch, none larger than `micro`. */
function splitBatch(batchSize: number, micro: number): [number, number][] {
  const parts = Math.ceil(batchSize / micro);
  const base = Math.floor(batchSize / parts), extra = batchSize % parts;
  const out: [number, number][] = [];
  let start = 0;
  for (let i = 0; i < parts; i++) {
    const size = base + (i < extra ? 1 : 0);
    out.push([start, size]);
    start += size;
  }
  return out;
}

/** Averages `values` over at most `bins` equal bins. */
function binned(values: readonly number[], bins: number): { x: number[]; y: number[] } {
  const n = values.length, b = Math.min(n, bins);
  const x: number[] = [], y: number[] = [];
  for (let i = 0; i < b; i++) {
    const lo = Math.floor((i * n) / b), hi = Math.floor(((i + 1) * n) / b);
    let s = 0;
    for (let j = lo; j < hi; j++) s += values[j];
    x.push((lo + hi + 1) / 2);
    y.push(s / (hi - lo));
  }
  return { x, y };
}

/**
 * Writes the loss curve (per-step loss and its exponential moving average, log scale) as SVG.
 *
 * @example
 * ```ts
 * import { writeLossCurve } from "./train_diffusion.ts";
 *
 * const dir = await Deno.makeTempDir();
 * await writeLossCurve(`${dir}/loss.svg`, [1, 0.8, 0.5, 0.45, 0.3]);
 * console.log((await Deno.readTextFile(`${dir}/loss.svg`)).startsWith("<svg")); // true
 * ```
 */
export async function writeLossCurve(path: string, losses: readonly number[]): Promise<void> {
  // Exponential moving average with bias correction (as Adam's moments).
  const smooth: number[] = [];
  let s = 0;
  losses.forEach((l, i) => {
    s = 0.98 * s + 0.02 * l;
    smooth.push(s / (1 - 0.98 ** (i + 1)));
  });
  const raw = binned(losses, 1500), avg = binned(smooth, 1500);
  const svg = await linePlotSvg([
    { name: "loss", x: raw.x, y: raw.y },
    { name: "moving average", x: avg.x, y: avg.y },
  ], { title: "Diffusion training loss", xLabel: "step", yLabel: "MSE (noise)", logY: true });
  await Deno.mkdir(dirname(path) || ".", { recursive: true });
  const tmp = `${path}.${crypto.randomUUID()}.tmp`;
  await Deno.writeTextFile(tmp, svg);
  await Deno.rename(tmp, path);
}

/** JSON with object keys sorted, so that key order does not matter. */
function canonical(value: unknown): string {
  return JSON.stringify(
    value,
    (_key, v) =>
      v && typeof v === "object" && !Array.isArray(v)
        ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
        : v,
  );
}

function sameJson(a: unknown, b: unknown): boolean {
  return canonical(a) === canonical(b);
}

/**
 * Trains `backbone` in place to predict the noise added to `data` and returns the EMA of its
 * weights. `data` is `[N, H, W, C]` (images) or `[N, W, C]` (signals) with values in [-1, 1].
 * The backbone's weights become `tf.Variable`s (the raw, non-averaged weights).
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import { createBackbone } from "../models/backbone.ts";
 * import { trainDiffusion } from "./train_diffusion.ts";
 *
 * const unet = createBackbone({
 *   _class_name: "UNet2DModel", sample_size: 8, block_out_channels: [16, 16], layers_per_block: 1,
 *   down_block_types: ["DownBlock2D", "DownBlock2D"], up_block_types: ["UpBlock2D", "UpBlock2D"],
 *   norm_num_groups: 8,
 * });
 * const images = tf.randomUniform([8, 8, 8, 3], -1, 1, "float32", 1);
 * const run = await trainDiffusion(unet, images, {
 *   steps: 2, batchSize: 4, horizontalFlip: true, onStep: ({ step, loss }) => console.log(step, loss),
 * });
 * run.ema.dispose();
 * unet.dispose();
 * images.dispose();
 * ```
 */
export async function trainDiffusion(
  backbone: Backbone,
  data: tf.Tensor,
  options: TrainDiffusionOptions,
): Promise<TrainDiffusionResult> {
  if (!(backbone instanceof UNet)) {
    throw new TypeError("trainDiffusion needs a backbone made by createBackbone or loadBackbone");
  }
  if (backbone.frozen) throw new TypeError("Cannot train a frozen backbone: pass the unfrozen one");
  const unet = backbone;
  const steps = positiveInteger("Number of steps", options.steps);
  const batchSize = positiveInteger("Batch size", options.batchSize ?? 32);
  const peak = options.learningRate ?? 1e-4;
  if (!(peak > 0) || !Number.isFinite(peak)) {
    throw new RangeError(`Learning rate ${peak} is not a finite positive number`);
  }
  const warmupSteps = options.warmupSteps ?? Math.min(500, Math.floor(steps / 10));
  const lrOptions = {
    peak,
    warmupSteps,
    totalSteps: steps,
    schedule: options.lrSchedule ?? "cosine",
    minRatio: options.minLearningRateRatio ?? 0,
  };
  learningRateAt(0, lrOptions); // validates
  const gradClip = options.gradClip ?? 1;
  if (!(gradClip >= 0)) throw new RangeError(`Gradient clip ${gradClip} is not a number >= 0`);
  const emaDecay = inRange("EMA decay", options.emaDecay ?? 0.9999, 0, 1);
  const emaWarmup = options.emaWarmup ?? true;
  const seed = options.seed ?? 0;
  if (!Number.isSafeInteger(seed)) throw new RangeError(`Seed ${seed} is not a safe integer`);
  const every = options.checkpointEvery === undefined
    ? undefined
    : positiveInteger("Checkpoint interval", options.checkpointEvery);
  const keep = positiveInteger("Number of checkpoints to keep", options.keepCheckpoints ?? 3);
  const microOption = options.microBatchSize ?? "auto";
  let microBatch: number | undefined = microOption === "auto"
    ? undefined
    : positiveInteger("Micro-batch size", microOption);

  const expectRank = unet.kind === "unet2d" ? 4 : 3;
  const inC = unet.resolved.inChannels;
  if (data.rank !== expectRank || data.shape[data.rank - 1] !== inC) {
    const layout = unet.kind === "unet2d" ? "[N, H, W, C]" : "[N, W, C]";
    throw new RangeError(
      `Training data of shape [${data.shape}] does not fit this ${unet.kind}: expected ${layout} with C = ${inC}`,
    );
  }
  if (data.dtype !== "float32") {
    throw new TypeError(`Training data must be float32, got ${data.dtype}`);
  }
  const n = data.shape[0];
  if (n < 1) throw new RangeError("Training data is empty");
  const [lo, hi] = tf.tidy(() => [tf.min(data).dataSync()[0], tf.max(data).dataSync()[0]]);
  if (!(lo >= -1 - 1e-6 && hi <= 1 + 1e-6)) {
    throw new RangeError(`Training data must lie in [-1, 1], got values in [${lo}, ${hi}]`);
  }

  registerTileGradient();
  if (tf.getBackend() === "wasm") registerWasmKernels();
  const names = [...unet.plan.weights.keys()];
  const variables = names.map((name) => {
    const w = unet.weights.get(name);
    if (!w) throw new RangeError(`Backbone has no weight "${name}"`);
    if (w instanceof tf.Variable && w.trainable) return w;
    const v = tf.variable(w, true);
    w.dispose();
    unet.weights.set(name, v);
    return v;
  });
  const emaWeights = new Map<string, tf.Tensor>();
  const emaVars = variables.map((v, i) => {
    const e = tf.variable(v, false);
    emaWeights.set(names[i], e);
    return e;
  });
  const ema = new UNet(unet.resolved, unet.plan, emaWeights);
  const optimizer = new AdamW(variables, {
    beta1: options.beta1,
    beta2: options.beta2,
    epsilon: options.epsilon,
    weightDecay: options.weightDecay ?? 0,
  });

  const run: TrainState["run"] = {
    seed,
    batchSize,
    dataShape: data.shape,
    steps,
    config: unet.config,
  };
  let start = 0;
  let losses: number[] = [], learningRates: number[] = [], gradNorms: number[] = [];
  let lastCheckpoint: string | undefined;
  try {
    if (options.resume !== undefined) {
      const folder = await resolveCheckpoint(options.resume);
      const ck = await loadCheckpoint(folder, names);
      try {
        for (const key of ["seed", "batchSize", "steps", "dataShape", "config"] as const) {
          if (!sameJson(ck.state.run[key], run[key])) {
            throw new RangeError(
              `Cannot resume from "${folder}": its ${key} is ${
                JSON.stringify(ck.state.run[key])
              }, ` +
                `this run's is ${JSON.stringify(run[key])}`,
            );
          }
        }
        names.forEach((name, i) => {
          variables[i].assign(ck.model.weights.get(name)!);
          emaVars[i].assign(ck.ema.weights.get(name)!);
        });
        optimizer.loadState({ iterations: ck.state.optimizer.iterations, m: ck.m, v: ck.v });
      } finally {
        ck.model.dispose();
        ck.ema.dispose();
        tf.dispose([...ck.m, ...ck.v]);
      }
      start = ck.state.step;
      if (microBatch === undefined) microBatch = ck.state.microBatchSize;
      losses = ck.state.losses.slice(0, start);
      learningRates = ck.state.learningRates.slice(0, start);
      gradNorms = ck.state.gradNorms.slice(0, start);
    }

    const schedule = unet.schedule;
    const T = schedule.timesteps;
    const sampleShape = data.shape.slice(1);
    const sampleSize = sampleShape.reduce((p, d) => p * d, 1);
    const widthAxis = unet.kind === "unet2d" ? 2 : 1;
    let epoch = -1;
    let order: Int32Array = new Int32Array(0);
    const micro = microBatch ?? chooseMicroBatch(unet, sampleShape, variables, batchSize);
    microBatch = micro;
    const chunks = splitBatch(batchSize, micro);

    const checkpoint = async (step: number) => {
      const state: TrainState = {
        format: "diffprobe-train-state",
        version: 1,
        step,
        run,
        optimizer: {
          iterations: optimizer.iterations,
          beta1: optimizer.beta1,
          beta2: optimizer.beta2,
          epsilon: optimizer.epsilon,
          weightDecay: optimizer.weightDecay,
        },
        rng: { algorithm: "sfc32-counter", seed, nextStep: step },
        microBatchSize: micro,
        losses,
        learningRates,
        gradNorms,
      };
      lastCheckpoint = await saveCheckpoint(
        options.checkpointDir!,
        state,
        unet,
        ema,
        names,
        optimizer.state(),
        keep,
      );
      if (options.lossPlot) await writeLossCurve(options.lossPlot, losses);
    };

    for (let step = start; step < steps; step++) {
      // The step's random draws: batch (per-epoch permutation), timesteps, flips, noise, dropout.
      const indices = new Int32Array(batchSize);
      for (let i = 0; i < batchSize; i++) {
        const k = step * batchSize + i;
        const e = Math.floor(k / n);
        if (e !== epoch) {
          epoch = e;
          order = permutation(n, Random.counter(seed, 1, e));
        }
        indices[i] = order[k % n];
      }
      const rng = Random.counter(seed, 2, step);
      const ts = Int32Array.from({ length: batchSize }, () => Math.floor(rng.open() * T));
      const flips = options.horizontalFlip
        ? Uint8Array.from({ length: batchSize }, () => (rng.open() < 0.5 ? 1 : 0))
        : null;
      const noise = rng.normals(new Float32Array(batchSize * sampleSize));
      const dropoutSeed = rng.uint32() % 0x7fffffff;
      const lr = learningRateAt(step, lrOptions);

      // Forward and backward per micro-batch (to bound memory), gradients summed with weights.
      let gradSum: tf.Tensor[] | null = null;
      let lossSum: tf.Tensor | null = null;
      for (let c = 0; c < chunks.length; c++) {
        const [from, size] = chunks[c];
        const weight = size / batchSize;
        const acc: { g: tf.Tensor[]; l: tf.Tensor } = tf.tidy(() => {
          const shape = [size, ...sampleShape];
          let x0 = tf.gather(data, indices.subarray(from, from + size));
          if (flips) {
            const mask = tf.tensor(flips.subarray(from, from + size), [
              size,
              ...sampleShape.map(() => 1),
            ], "bool");
            x0 = tf.where(tf.broadcastTo(mask, shape), tf.reverse(x0, widthAxis), x0);
          }
          const eps = tf.tensor(
            noise.subarray(from * sampleSize, (from + size) * sampleSize),
            shape,
          );
          const tc = ts.subarray(from, from + size);
          const xt = schedule.addNoise(x0, tc, eps);
          const { value, grads } = tf.variableGrads(() => {
            const out = unet.forward(xt, tc, {
              eps: true,
              training: true,
              dropoutSeed: (dropoutSeed + c * 4096) % 0x7fffffff,
            });
            return tf.mean(tf.squaredDifference(out.eps!, eps)) as tf.Scalar;
          }, variables);
          const g = variables.map((
            v,
          ) => (weight === 1 ? grads[v.name] : tf.mul(grads[v.name], weight)));
          const l = weight === 1 ? value : tf.mul(value, weight);
          return {
            g: gradSum ? g.map((t, i) => tf.add(gradSum![i], t)) : g,
            l: lossSum ? tf.add(lossSum, l) : l,
          };
        });
        if (gradSum) tf.dispose(gradSum);
        if (lossSum) lossSum.dispose();
        gradSum = acc.g;
        lossSum = acc.l;
      }
      const g = gradSum!;
      const normT = tf.tidy(() => {
        const norm = tf.sqrt(tf.addN(g.map((t) => tf.sum(tf.square(t)))));
        let clipped = g;
        if (gradClip > 0 && Number.isFinite(gradClip)) {
          // torch.nn.utils.clip_grad_norm_: scale by min(1, clip / (norm + 1e-6)).
          const scale = tf.minimum(1, tf.div(gradClip, tf.add(norm, 1e-6)));
          clipped = g.map((t) => tf.mul(t, scale));
        }
        optimizer.step(clipped, lr);
        const d = emaDecayAt(optimizer.iterations, emaDecay, emaWarmup);
        emaVars.forEach((e, i) => {
          e.assign(d === 0 ? variables[i] : tf.add(tf.mul(e, d), tf.mul(variables[i], 1 - d)));
        });
        return norm;
      });
      tf.dispose(g);
      const lossT = lossSum!;
      const loss = (await lossT.data())[0];
      const gradNorm = (await normT.data())[0];
      tf.dispose([lossT, normT]);
      losses.push(loss);
      learningRates.push(lr);
      gradNorms.push(gradNorm);
      if (!Number.isFinite(loss)) {
        throw new RangeError(
          `Loss became ${loss} at step ${
            step + 1
          }: lower the learning rate (${peak}) or clip harder`,
        );
      }
      await options.onStep?.({ step: step + 1, loss, lr, gradNorm });
      const done = step + 1;
      if (options.checkpointDir && ((every && done % every === 0) || done === steps)) {
        await checkpoint(done);
      }
    }
    if (options.lossPlot && losses.length > 0) {
      await writeLossCurve(options.lossPlot, losses);
    }
  } catch (e) {
    ema.dispose();
    throw e;
  } finally {
    optimizer.dispose();
  }
  return {
    ema,
    losses,
    learningRates,
    gradNorms,
    step: losses.length,
    checkpoint: lastCheckpoint,
  };
}

/**
 * The folder of the checkpoint of `step` under a run's `checkpointDir`.
 *
 * @example
 * ```ts
 * import { checkpointPath } from "./train_diffusion.ts";
 *
 * console.log(checkpointPath("runs/waves", 100)); // runs/waves/step-00000100
 * ```
 */
export function checkpointPath(checkpointDir: string, step: number): string {
  if (!Number.isInteger(step) || step < 0) {
    throw new RangeError(`Step ${step} is not an integer >= 0`);
  }
  return join(checkpointDir, stepFolder(step));
}

/**
 * A permutation of `0 .. n − 1` (Fisher–Yates drawing `floor(open() · (i + 1))`). Not
 * `Random.shuffle`, whose draws use `next()` ([0, 1)): the two differ for rare draws, and the
 * batch order of earlier runs must stay bit-identical.
 */
function permutation(n: number, rng: Random): Int32Array {
  const p = Int32Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rng.open() * (i + 1));
    const tmp = p[i];
    p[i] = p[j];
    p[j] = tmp;
  }
  return p;
}
