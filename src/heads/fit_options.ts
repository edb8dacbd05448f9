/**
 * The options of `Head.fit`, what it reports, and the checks of those options (all done before
 * any work).
 *
 * @module
 */
import type * as tf from "@tensorflow/tfjs";
import {
  nonNegativeInteger,
  oneOf,
  positiveInteger,
  positiveNumber,
  safeInteger,
  show,
} from "../base/validate.ts";
import type { HeadTargets } from "./head_options.ts";
import type { TrainEngine } from "../engine/train_engine.ts";
import type { Device, TfjsDevice } from "../base/device.ts";

/** What `onEpoch` receives after each epoch. */
export interface EpochLog {
  /** The 1-based number of the epoch just finished. */
  epoch: number;
  /** The mean training loss over the epoch (as the weights moved). */
  loss: number;
  /** The loss on the validation samples after the epoch, when validating. */
  valLoss?: number;
  /** Accuracy (classification) or mean absolute error (regression) on the validation samples. */
  valMetric?: number;
  /** The learning rate of the epoch's last step. */
  lr: number;
}

/** What `Head.fit` resolves to. */
export interface FitHistory {
  /** One log per epoch run, as passed to `onEpoch`. */
  epochs: EpochLog[];
  /** The optimisation steps taken. */
  steps: number;
  /** The epoch with the lowest validation loss, when validating. */
  bestEpoch?: number;
  /** Whether `patience` ended training before `epochs`. */
  stoppedEarly: boolean;
  /** Whether the weights of `bestEpoch` were put back at the end (whenever `patience` is set). */
  restoredBest: boolean;
  /** The device the head trained on (the onnx sessions', or the TensorFlow.js backend's). */
  device: TfjsDevice;
}

/** Options of `Head.fit`. */
export interface FitOptions {
  /**
   * Where to train (default `"auto"`). With the onnx engine: `"cuda"` runs onnxruntime's CUDA
   * provider, or `fit` fails before any step with a `CudaUnavailableError` naming what is
   * missing; `"auto"` takes CUDA when it loads, else the CPU, and says which once; `"cpu"` the
   * CPU. With the tfjs engine: `"cuda"` needs TensorFlow.js on CUDA (`@tensorflow/tfjs-node-gpu`)
   * and `"cpu"` a CPU backend; otherwise `fit` fails before any work, saying why.
   */
  device?: Device;
  /** Passes over the training samples. Default 10. */
  epochs?: number;
  /** Samples per optimisation step (the last step of an epoch may be smaller). Default 256. */
  batchSize?: number;
  /** The peak learning rate. Default 1e-3. */
  learningRate?: number;
  /** AdamW's decoupled weight decay, applied to weight matrices only. Default 0.01. */
  weightDecay?: number;
  /** AdamW's first-moment decay. Default 0.9. */
  beta1?: number;
  /** AdamW's second-moment decay. Default 0.999. */
  beta2?: number;
  /** Linear warm-up length in epochs (may be fractional). Default: 5% of all steps. */
  warmupEpochs?: number;
  /** Linear warm-up length in steps; give this or `warmupEpochs`, not both. */
  warmupSteps?: number;
  /** Seeds the validation split and the batch order. Default: the head's seed. */
  seed?: number;
  /**
   * The fraction of samples held out for validation: the last ones after a seeded shuffle.
   * Default 0 (no validation).
   */
  validationSplit?: number;
  /** Separate validation samples, instead of `validationSplit`. */
  validationData?: { x: tf.Tensor; y: HeadTargets };
  /**
   * With validation: stop after this many epochs without a lower validation loss, and put
   * back the weights of the best epoch at the end. Default: never stop.
   */
  patience?: number;
  /**
   * Standardise each feature with the mean and standard deviation of the training samples
   * (not the validation ones); the statistics are kept in the head and applied by `predict`
   * and `evaluate`, and recomputed by every `fit`. Features whose deviation is below 1e-6
   * are only centred. Default true.
   */
  standardize?: boolean;
  /** Called (and awaited) after every epoch. */
  onEpoch?: (log: EpochLog) => void | Promise<void>;
  /**
   * Which engine runs the optimisation steps: `"onnx"` (each step one onnxruntime graph; needs
   * onnxruntime-node and `--allow-ffi`), `"tfjs"`, or `"auto"` (default: onnx when
   * onnxruntime-node loads, else tfjs; the choice and its reason are printed once on stderr).
   */
  engine?: TrainEngine;
}

/** {@linkcode FitOptions} checked, with their defaults. */
export interface FitSettings {
  epochs: number;
  batchSize: number;
  learningRate: number;
  weightDecay: number;
  beta1?: number;
  beta2?: number;
  warmupEpochs?: number;
  warmupSteps?: number;
  seed: number;
  validationSplit: number;
  validationData?: { x: tf.Tensor; y: HeadTargets };
  patience?: number;
  standardize: boolean;
  onEpoch?: (log: EpochLog) => void | Promise<void>;
  engine: TrainEngine;
}

/**
 * Checks `options` and fills in the defaults (`headSeed` is the default seed).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { resolveFitOptions } from "./fit_options.ts";
 *
 * assert.equal(resolveFitOptions({}, 3).seed, 3);
 * assert.throws(() => resolveFitOptions({ epochs: 0 }, 0), /Epochs must be a positive integer/);
 * ```
 */
export function resolveFitOptions(options: FitOptions, headSeed: number): FitSettings {
  const split = options.validationSplit ?? 0;
  if (typeof split !== "number" || !(split >= 0 && split < 1)) {
    throw new RangeError(`Validation split must be in [0, 1), got ${show(split)}`);
  }
  if (split > 0 && options.validationData !== undefined) {
    throw new RangeError("Give validationSplit or validationData, not both");
  }
  if (options.warmupEpochs !== undefined && options.warmupSteps !== undefined) {
    throw new RangeError("Give warmupEpochs or warmupSteps, not both");
  }
  const { warmupEpochs } = options;
  if (
    warmupEpochs !== undefined &&
    !(typeof warmupEpochs === "number" && warmupEpochs >= 0 && Number.isFinite(warmupEpochs))
  ) {
    throw new RangeError(`Warm-up epochs must be a finite number >= 0, got ${show(warmupEpochs)}`);
  }
  const weightDecay = options.weightDecay ?? 0.01;
  if (typeof weightDecay !== "number" || !(weightDecay >= 0) || !Number.isFinite(weightDecay)) {
    throw new RangeError(`Weight decay must be a finite number >= 0, got ${show(weightDecay)}`);
  }
  return {
    epochs: positiveInteger(options.epochs ?? 10, "Epochs"),
    batchSize: positiveInteger(options.batchSize ?? 256, "Batch size"),
    learningRate: positiveNumber(options.learningRate ?? 1e-3, "Learning rate"),
    weightDecay,
    beta1: options.beta1,
    beta2: options.beta2,
    warmupEpochs,
    warmupSteps: options.warmupSteps === undefined
      ? undefined
      : nonNegativeInteger(options.warmupSteps, "Warm-up steps"),
    seed: safeInteger(options.seed ?? headSeed, "Seed"),
    validationSplit: split,
    validationData: options.validationData,
    patience: options.patience === undefined
      ? undefined
      : nonNegativeInteger(options.patience, "Patience"),
    standardize: options.standardize ?? true,
    onEpoch: options.onEpoch,
    engine: oneOf(options.engine ?? "auto", "Training engine", ["auto", "onnx", "tfjs"] as const),
  };
}
