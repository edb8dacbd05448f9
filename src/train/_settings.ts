/**
 * The checked settings of a training run, resolved from `TrainDiffusionOptions` with their
 * defaults, and the checks of the training data. Internal to `src/train/`.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import {
  numberInRange,
  positiveInteger,
  positiveNumber,
  safeInteger,
  show,
} from "../base/validate.ts";
import type { UNet } from "../models/unet.ts";
import { learningRateAt, type LearningRateOptions } from "../optim/lr_schedule.ts";
import type { TrainDiffusionOptions } from "./train_diffusion.ts";

/** A run's checked settings. */
export interface Settings {
  steps: number;
  batchSize: number;
  peak: number;
  lr: LearningRateOptions;
  gradClip: number;
  emaDecay: number;
  emaWarmup: boolean;
  seed: number;
  checkpointEvery?: number;
  keepCheckpoints: number;
  /** Undefined for `"auto"`. */
  microBatch?: number;
}

/** Checks the options and fills in the defaults. */
export function resolveSettings(options: TrainDiffusionOptions): Settings {
  const steps = positiveInteger(options.steps, "Number of steps");
  const peak = positiveNumber(options.learningRate ?? 1e-4, "Learning rate");
  const lr: LearningRateOptions = {
    peak,
    warmupSteps: options.warmupSteps ?? Math.min(500, Math.floor(steps / 10)),
    totalSteps: steps,
    schedule: options.lrSchedule ?? "cosine",
    minRatio: options.minLearningRateRatio ?? 0,
  };
  learningRateAt(0, lr); // validates
  const gradClip = options.gradClip ?? 1;
  if (typeof gradClip !== "number" || !(gradClip >= 0)) {
    throw new RangeError(`Gradient clip must be a number >= 0, got ${show(gradClip)}`);
  }
  const micro = options.microBatchSize ?? "auto";
  return {
    steps,
    batchSize: positiveInteger(options.batchSize ?? 32, "Batch size"),
    peak,
    lr,
    gradClip,
    emaDecay: numberInRange(options.emaDecay ?? 0.9999, "EMA decay", 0, 1),
    emaWarmup: options.emaWarmup ?? true,
    seed: safeInteger(options.seed ?? 0, "Seed"),
    checkpointEvery: options.checkpointEvery === undefined
      ? undefined
      : positiveInteger(options.checkpointEvery, "Checkpoint interval"),
    keepCheckpoints: positiveInteger(options.keepCheckpoints ?? 3, "Number of checkpoints to keep"),
    microBatch: micro === "auto" ? undefined : positiveInteger(micro, "Micro-batch size"),
  };
}

/** Checks that `data` is float32 `[N, H, W, C]` / `[N, W, C]` for `unet`, N ≥ 1, in [-1, 1]. */
export function checkTrainingData(unet: UNet, data: tf.Tensor): void {
  const expectRank = unet.kind === "unet2d" ? 4 : 3;
  const inC = unet.resolved.inChannels;
  if (data.rank !== expectRank || data.shape[data.rank - 1] !== inC) {
    const layout = unet.kind === "unet2d" ? "[N, H, W, C]" : "[N, W, C]";
    throw new RangeError(
      `Training data must have shape ${layout} with C = ${inC} for this ${unet.kind}, got [${data.shape}]`,
    );
  }
  if (data.dtype !== "float32") {
    throw new TypeError(`Training data must be float32, got ${data.dtype}`);
  }
  if (data.shape[0] < 1) throw new RangeError("Training data must hold samples, got N = 0");
  const [lo, hi] = tf.tidy(() => [tf.min(data).dataSync()[0], tf.max(data).dataSync()[0]]);
  if (!(lo >= -1 - 1e-6 && hi <= 1 + 1e-6)) {
    throw new RangeError(`Training data must lie in [-1, 1], got values in [${lo}, ${hi}]`);
  }
}
