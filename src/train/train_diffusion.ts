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
 * The run is a sequence of named steps (see {@linkcode trainDiffusion}); the per-step computation
 * is one replaceable strategy (`TrainStep` in `_step.ts`), so another engine can run it.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import * as tf from "@tensorflow/tfjs";
 * import { createBackbone, trainDiffusion } from "@diffprobe/core";
 *
 * const unet = createBackbone({
 *   _class_name: "DiffprobeUNet1DModel", in_channels: 1, out_channels: 1, sample_size: 32,
 *   block_out_channels: [16, 32], norm_num_groups: 8, layers_per_block: 1,
 *   down_block_types: ["DownBlock1D", "DownBlock1D"], up_block_types: ["UpBlock1D", "UpBlock1D"],
 * }, { seed: 0 });
 * const waves = tf.tidy(() => tf.sin(tf.linspace(0, 12, 32)).reshape([1, 32, 1]).tile([16, 1, 1]));
 * const { ema, losses } = await trainDiffusion(unet, waves, { steps: 3, batchSize: 4, learningRate: 1e-3 });
 * assert.equal(losses.length, 3);
 * ema.dispose();
 * unet.dispose();
 * waves.dispose();
 * ```
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { join } from "node:path";
import { nonNegativeInteger } from "../base/validate.ts";
import type { Device, TfjsDevice } from "../base/device.ts";
import { type Backbone, UNet } from "../models/unet.ts";
import { registerTileGradient } from "../nn/tile_grad.ts";
import { registerWasmKernels } from "../backend/wasm_kernels.ts";
import { AdamW } from "../optim/adamw.ts";
import { learningRateAt } from "../optim/lr_schedule.ts";
import {
  loadCheckpoint,
  resolveCheckpoint,
  saveCheckpoint,
  stepFolder,
  type TrainState,
} from "./_checkpoint.ts";
import { StepDraws } from "./_draws.ts";
import { chooseMicroBatch, splitBatch } from "./_micro_batch.ts";
import { checkTrainingData, resolveSettings, type Settings } from "./_settings.ts";
import { type TfjsStepContext, tfjsTrainStep, type TrainStep } from "./_step.ts";
import { type OnnxStep, onnxTrainStep } from "./_onnx_step.ts";
import { chooseTrainPlacement, type TrainEngine } from "../engine/train_engine.ts";
import { writeLossCurve } from "./loss_curve.ts";

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
  /**
   * Which engine runs the steps: `"onnx"` (the whole step as one onnxruntime graph; needs
   * onnxruntime-node and `--allow-ffi`), `"tfjs"` (the current TensorFlow.js backend), or
   * `"auto"` (default: onnx when onnxruntime-node loads, else tfjs; the choice and its reason
   * are printed once on stderr). Both draw the same batches, timesteps, flips and noise; their
   * dropout masks differ. Checkpoints of either engine resume on either.
   */
  engine?: TrainEngine;
  /**
   * Where to train (default `"auto"`). With the onnx engine: `"cuda"` runs onnxruntime's CUDA
   * provider, or fails before any step with a `CudaUnavailableError` naming what is missing;
   * `"auto"` takes CUDA when it loads, else the CPU, and says which once; `"cpu"` the CPU. With
   * the tfjs engine: the device of the current TensorFlow.js backend (`"cuda"` needs
   * `@tensorflow/tfjs-node-gpu`), else an error before any work.
   */
  device?: Device;
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
  /** The device the run trained on (the onnx sessions', or the TensorFlow.js backend's). */
  device: TfjsDevice;
}

/** The per-step history of a run. */
interface History {
  losses: number[];
  learningRates: number[];
  gradNorms: number[];
}

/** Everything a running training holds. */
interface Run {
  unet: UNet;
  ema: UNet;
  names: string[];
  variables: tf.Variable[];
  emaVariables: tf.Variable[];
  optimizer: AdamW;
  settings: Settings;
  /** The settings that must not change on resume. */
  identity: TrainState["run"];
  history: History;
  microBatch: number;
}

/**
 * Trains `backbone` in place to predict the noise added to `data` and returns the EMA of its
 * weights. `data` is `[N, H, W, C]` (images) or `[N, W, C]` (signals) with values in [-1, 1].
 * The backbone's weights become `tf.Variable`s (the raw, non-averaged weights).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import * as tf from "@tensorflow/tfjs";
 * import { createBackbone, trainDiffusion } from "@diffprobe/core";
 *
 * const unet = createBackbone({
 *   _class_name: "UNet2DModel", sample_size: 8, block_out_channels: [16, 16], layers_per_block: 1,
 *   down_block_types: ["DownBlock2D", "DownBlock2D"], up_block_types: ["UpBlock2D", "UpBlock2D"],
 *   norm_num_groups: 8,
 * });
 * const images = tf.randomUniform([8, 8, 8, 3], -1, 1, "float32", 1);
 * const steps: number[] = [];
 * const run = await trainDiffusion(unet, images, {
 *   steps: 2, batchSize: 4, horizontalFlip: true, onStep: ({ step }) => void steps.push(step),
 * });
 * assert.deepEqual(steps, [1, 2]);
 * assert.ok(run.losses.every(Number.isFinite));
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
  // 1. Check the backbone, the options and the data, before any work.
  const unet = trainableBackbone(backbone);
  const settings = resolveSettings(options);
  checkTrainingData(unet, data);
  const placement = await chooseTrainPlacement(options.engine, options.device, "Training");
  const engine = placement.engine;
  let device: TfjsDevice = placement.device;

  // 2. The weights become variables; their EMA and the optimiser start.
  const run = startRun(unet, data, settings, options);
  const { ema, optimizer, variables } = run;
  const { seed, batchSize } = settings;
  let lastCheckpoint: string | undefined;
  let onnx: OnnxStep | undefined;
  try {
    // 3. Resume the weights, EMA, optimiser and history of a checkpoint.
    let start = 0, microBatch = settings.microBatch;
    if (options.resume !== undefined) {
      const resumed = await resume(run, options.resume);
      start = resumed.step;
      microBatch ??= resumed.microBatchSize;
    }

    // 4. The per-step computation and the step's random draws.
    const sampleShape = data.shape.slice(1);
    // The onnx engine has no 4 GiB heap: it splits batches only when asked to.
    run.microBatch = microBatch ??
      (engine === "onnx" ? batchSize : chooseMicroBatch(unet, sampleShape, variables, batchSize));
    const context = stepContext(run, data);
    if (engine === "onnx") {
      onnx = await onnxTrainStep(context, {
        batchSize,
        microBatch: run.microBatch,
        device: placement.choice,
      });
      device = onnx.device;
    }
    const trainStep: TrainStep = onnx?.step ?? tfjsTrainStep(context);
    const draws = new StepDraws({
      seed,
      samples: data.shape[0],
      batchSize,
      timesteps: unet.schedule.timesteps,
      sampleSize: sampleShape.reduce((p, d) => p * d, 1),
      flip: options.horizontalFlip,
    });

    // 5. The loop: draw, step, record, report, checkpoint.
    lastCheckpoint = await trainLoop(run, options, { start, trainStep, draws, onnx });

    // 6. The weights, EMA and optimiser state back from the onnx engine; the loss plot.
    onnx?.sync();
    if (options.lossPlot && run.history.losses.length > 0) {
      await writeLossCurve(options.lossPlot, run.history.losses);
    }
  } catch (e) {
    ema.dispose();
    throw e;
  } finally {
    onnx?.dispose();
    optimizer.dispose();
  }
  const { losses, learningRates, gradNorms } = run.history;
  return {
    ema,
    losses,
    learningRates,
    gradNorms,
    step: losses.length,
    checkpoint: lastCheckpoint,
    device,
  };
}

/** What the tfjs (and onnx) step computes with: the run's model, data, optimiser and settings. */
function stepContext(run: Run, data: tf.Tensor): TfjsStepContext {
  const { settings } = run;
  return {
    unet: run.unet,
    data,
    variables: run.variables,
    emaVariables: run.emaVariables,
    optimizer: run.optimizer,
    chunks: splitBatch(settings.batchSize, run.microBatch),
    gradClip: settings.gradClip,
    emaDecay: settings.emaDecay,
    emaWarmup: settings.emaWarmup,
  };
}

/**
 * The training loop from step `start`: draw, step, record, report, checkpoint. Resolves to the
 * last checkpoint written, if any.
 */
async function trainLoop(
  run: Run,
  options: TrainDiffusionOptions,
  loop: { start: number; trainStep: TrainStep; draws: StepDraws; onnx: OnnxStep | undefined },
): Promise<string | undefined> {
  const { settings } = run;
  const { steps } = settings;
  const { trainStep, draws, onnx } = loop;
  let lastCheckpoint: string | undefined;
  for (let step = loop.start; step < steps; step++) {
    const lr = learningRateAt(step, settings.lr);
    const { loss, gradNorm } = await trainStep(draws.draw(step), lr);
    record(run, step, loss, lr, gradNorm);
    await options.onStep?.({ step: step + 1, loss, lr, gradNorm });
    const done = step + 1, every = settings.checkpointEvery;
    if (options.checkpointDir && ((every && done % every === 0) || done === steps)) {
      onnx?.sync();
      lastCheckpoint = await writeCheckpoint(run, options.checkpointDir, done);
      if (options.lossPlot) await writeLossCurve(options.lossPlot, run.history.losses);
    }
  }
  return lastCheckpoint;
}

/** Makes the weights trainable variables and starts their EMA and the optimiser. */
function startRun(
  unet: UNet,
  data: tf.Tensor,
  settings: Settings,
  options: TrainDiffusionOptions,
): Run {
  registerTileGradient();
  if (tf.getBackend() === "wasm") registerWasmKernels();
  const names = [...unet.plan.weights.keys()];
  const variables = trainableVariables(unet, names);
  const emaVariables = variables.map((v) => tf.variable(v, false));
  const ema = new UNet(
    unet.resolved,
    unet.plan,
    new Map(names.map((n, i) => [n, emaVariables[i]])),
  );
  const optimizer = new AdamW(variables, {
    beta1: options.beta1,
    beta2: options.beta2,
    epsilon: options.epsilon,
    weightDecay: options.weightDecay ?? 0,
  });
  const { seed, batchSize, steps } = settings;
  return {
    unet,
    ema,
    names,
    variables,
    emaVariables,
    optimizer,
    settings,
    identity: { seed, batchSize, dataShape: data.shape, steps, config: unet.config },
    history: { losses: [], learningRates: [], gradNorms: [] },
    microBatch: 0,
  };
}

/** The backbone as a trainable `UNet`, or a TypeError. */
function trainableBackbone(backbone: Backbone): UNet {
  if (!(backbone instanceof UNet)) {
    throw new TypeError("trainDiffusion needs a backbone made by createBackbone or loadBackbone");
  }
  if (backbone.frozen) throw new TypeError("Cannot train a frozen backbone: pass the unfrozen one");
  return backbone;
}

/** The backbone's weights `names` as trainable variables, swapped into its weight map. */
function trainableVariables(unet: UNet, names: readonly string[]): tf.Variable[] {
  return names.map((name) => {
    const w = unet.weights.get(name);
    if (!w) throw new RangeError(`Backbone has no weight "${name}"`);
    if (w instanceof tf.Variable && w.trainable) return w;
    const v = tf.variable(w, true);
    w.dispose();
    unet.weights.set(name, v);
    return v;
  });
}

/** Appends a step to the history; a non-finite loss ends the run. */
function record(run: Run, step: number, loss: number, lr: number, gradNorm: number): void {
  run.history.losses.push(loss);
  run.history.learningRates.push(lr);
  run.history.gradNorms.push(gradNorm);
  if (!Number.isFinite(loss)) {
    throw new RangeError(
      `Loss became ${loss} at step ${step + 1}: lower the learning rate (${run.settings.peak}) ` +
        "or clip harder",
    );
  }
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

/** Loads a checkpoint into `run`; returns its step and micro-batch size. */
async function resume(
  run: Run,
  from: string,
): Promise<{ step: number; microBatchSize: number }> {
  const folder = await resolveCheckpoint(from);
  const ck = await loadCheckpoint(folder, run.names);
  try {
    for (const key of ["seed", "batchSize", "steps", "dataShape", "config"] as const) {
      if (canonical(ck.state.run[key]) !== canonical(run.identity[key])) {
        throw new RangeError(
          `Cannot resume from "${folder}": its ${key} is ${JSON.stringify(ck.state.run[key])}, ` +
            `this run's is ${JSON.stringify(run.identity[key])}`,
        );
      }
    }
    run.names.forEach((name, i) => {
      run.variables[i].assign(ck.model.weights.get(name)!);
      run.emaVariables[i].assign(ck.ema.weights.get(name)!);
    });
    run.optimizer.loadState({ iterations: ck.state.optimizer.iterations, m: ck.m, v: ck.v });
  } finally {
    ck.model.dispose();
    ck.ema.dispose();
    tf.dispose([...ck.m, ...ck.v]);
  }
  const step = ck.state.step;
  run.history = {
    losses: ck.state.losses.slice(0, step),
    learningRates: ck.state.learningRates.slice(0, step),
    gradNorms: ck.state.gradNorms.slice(0, step),
  };
  return { step, microBatchSize: ck.state.microBatchSize };
}

/** Writes the checkpoint of `step` (steps done) under `dir`; returns its folder. */
function writeCheckpoint(run: Run, dir: string, step: number): Promise<string> {
  const { optimizer, settings } = run;
  const state: TrainState = {
    format: "diffprobe-train-state",
    version: 1,
    step,
    run: run.identity,
    optimizer: {
      iterations: optimizer.iterations,
      beta1: optimizer.beta1,
      beta2: optimizer.beta2,
      epsilon: optimizer.epsilon,
      weightDecay: optimizer.weightDecay,
    },
    rng: { algorithm: "sfc32-counter", seed: settings.seed, nextStep: step },
    microBatchSize: run.microBatch,
    ...run.history,
  };
  return saveCheckpoint(
    dir,
    state,
    run.unet,
    run.ema,
    run.names,
    optimizer.state(),
    settings.keepCheckpoints,
  );
}

/**
 * The folder of the checkpoint of `step` under a run's `checkpointDir`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { checkpointPath } from "./train_diffusion.ts";
 *
 * assert.equal(checkpointPath("runs/waves", 100), "runs/waves/step-00000100");
 * ```
 */
export function checkpointPath(checkpointDir: string, step: number): string {
  return join(checkpointDir, stepFolder(nonNegativeInteger(step, "Checkpoint step")));
}
