/**
 * What every head is made from: its task, the shape of one sample's features, its outputs and
 * its seed; the targets it learns; and the checks of those options.
 *
 * @module
 */
import type * as tf from "@tensorflow/tfjs";
import { positiveInteger, positiveShape, safeInteger, show } from "../base/validate.ts";
import { sizeOf } from "./_shape.ts";

/** What a head predicts: class logits or real values. */
export type HeadTask = "classification" | "regression";

/** Options every head takes. */
export interface HeadOptions<T extends HeadTask = HeadTask> {
  /** The shape of one sample's features, without the batch axis, e.g. `[8, 8, 256]`. */
  inputShape: number[];
  /** The number of classes (classification) or of regressed values (regression). */
  outputs: number;
  /** Default `"classification"`. */
  task?: T;
  /** Seeds the weight initialisation, and the shuffling of `fit` unless it has its own. Default 0. */
  seed?: number;
}

/** Classification targets: class indices as an int32 `Tensor1D` or a `number[]`; regression
 * targets: a `[N]` or `[N, outputs]` float tensor (or a `number[]` when `outputs` is 1). */
export type HeadTargets = tf.Tensor | number[];

/** Options of `Head.predict` and `Head.evaluate`. */
export interface PredictOptions {
  /** Samples per forward pass. Default 256. */
  batchSize?: number;
}

/** The largest number of features of one sample (2^28, 1 GiB of float32 per statistic). */
export const MAX_FEATURES = 2 ** 28;

/** The largest size a head's own options may give (an MLP's hidden width, an attention head's
 * `dim`, `heads` or `layers`): 65,536. */
export const MAX_HEAD_SIZE = 65536;

/** {@linkcode HeadOptions} checked, with defaults, plus the feature count. */
export interface ResolvedHeadOptions<T extends HeadTask> {
  inputShape: number[];
  outputs: number;
  task: T;
  seed: number;
  featureSize: number;
}

/**
 * Checks the options every head takes and fills in the defaults; allocates nothing.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { checkHeadOptions } from "./head_options.ts";
 *
 * assert.equal(checkHeadOptions({ inputShape: [4, 4, 8], outputs: 10 }).featureSize, 128);
 * assert.throws(() => checkHeadOptions({ inputShape: [4], outputs: 1 }), /at least 2 outputs/);
 * ```
 */
export function checkHeadOptions<T extends HeadTask>(
  options: HeadOptions<T>,
): ResolvedHeadOptions<T> {
  if (options === null || typeof options !== "object") {
    throw new TypeError(
      `Head options must be an object with inputShape and outputs, got ${show(options)}`,
    );
  }
  const inputShape = positiveShape(options.inputShape, "Input shape");
  const featureSize = sizeOf(inputShape);
  if (featureSize > MAX_FEATURES) {
    throw new RangeError(
      `Input shape must hold at most ${MAX_FEATURES} features, got ${
        show(inputShape)
      } (${featureSize})`,
    );
  }
  const task = options.task ?? "classification";
  if (task !== "classification" && task !== "regression") {
    throw new RangeError(`Task must be "classification" or "regression", got ${show(task)}`);
  }
  const outputs = positiveInteger(options.outputs, "Outputs");
  if (task === "classification" && outputs < 2) {
    throw new RangeError(`A classification head needs at least 2 outputs, got ${outputs}`);
  }
  const seed = safeInteger(options.seed ?? 0, "Seed");
  return { inputShape, outputs, task: task as T, seed, featureSize };
}
