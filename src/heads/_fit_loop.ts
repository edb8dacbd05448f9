/**
 * The gradient-descent loop of `Head.fit`: a seeded validation split and batch order, AdamW with
 * warm-up + cosine decay, per-epoch validation, early stopping with the best weights put back.
 * One optimisation step is a replaceable strategy ({@linkcode HeadTrainStep}), so another engine
 * can run it. Internal to `src/heads/`.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import type { Random } from "../base/random.ts";
import { AdamW } from "../optim/adamw.ts";
import { learningRateAt } from "../optim/lr_schedule.ts";
import type { EpochLog, FitHistory, FitSettings } from "./fit_options.ts";
import { type ClassificationMetrics, evaluateRows, type RegressionMetrics } from "./metrics.ts";
import { type PreparedTargets, sampleLoss } from "./_targets.ts";
import type { HeadLike, TrainPlacement } from "../engine/train_engine.ts";
import type { ResolvedDevice } from "../base/device.ts";
import { onnxHeadStep } from "./_onnx_step.ts";

/**
 * One optimisation step on rows `rows` of the training features at `learningRate`: updates the
 * weights and returns the batch's mean loss (a scalar the caller disposes).
 */
export type HeadTrainStep = (rows: Int32Array, learningRate: number) => Promise<tf.Scalar>;

/** A step and, for engines that keep their own copy of the weights, how to write them back. */
export interface HeadStepRunner {
  /** The step. */
  step: HeadTrainStep;
  /** Writes the engine's weights into the head's variables (before validation, at the end). */
  sync(): void;
  /** Releases what the engine holds. */
  dispose(): void;
  /** The device the engine ran on, for engines with their own sessions. */
  device?: () => ResolvedDevice;
}

/** What the loop trains: the head's weights and its output on rows of a feature tensor. */
export interface FitModel {
  /** Trainable weights by name. */
  weights: ReadonlyMap<string, tf.Variable>;
  /** Whether AdamW's weight decay applies to a weight. */
  decayed(variable: tf.Variable): boolean;
  /** The head's output on rows `rows` of `x`, standardised (called inside `tf.tidy`). */
  output(x: tf.Tensor, rows: Int32Array): tf.Tensor;
  /** Classes or regressed values. */
  outputs: number;
  /** Rows `rows` of `x`, standardised as `output` sees them (called inside `tf.tidy`). */
  features(x: tf.Tensor, rows: Int32Array): tf.Tensor;
  /** The head (its class, options and weights), for engines that build their own graph. */
  head: HeadLike;
}

/** The samples to validate on. */
export interface Validation {
  x: tf.Tensor;
  targets: PreparedTargets;
  rows: Int32Array;
}

/** The tfjs step: loss, gradients by `tf.variableGrads`, AdamW. */
export function tfjsHeadStep(
  model: FitModel,
  x: tf.Tensor,
  targets: PreparedTargets,
  optimizer: AdamW,
): Promise<HeadStepRunner> {
  const variables = [...model.weights.values()];
  const step: HeadTrainStep = (rows, learningRate) =>
    Promise.resolve(tf.tidy(() => {
      const { value, grads } = tf.variableGrads(
        () => sampleLoss(model.output(x, rows), targets, rows, model.outputs).mean() as tf.Scalar,
        variables,
      );
      optimizer.step(variables.map((v) => grads[v.name]), learningRate);
      return value;
    }));
  return Promise.resolve({ step, sync: () => {}, dispose: () => {} });
}

/** The weights of the best epoch so far (kept only with `patience`). */
class BestWeights {
  #saved = new Map<string, tf.Tensor>();
  keep(weights: ReadonlyMap<string, tf.Variable>): void {
    this.dispose();
    for (const [name, v] of weights) this.#saved.set(name, tf.clone(v));
  }
  /** Puts the kept weights back; false when none were kept. */
  restore(weights: ReadonlyMap<string, tf.Variable>): boolean {
    if (this.#saved.size === 0) return false;
    for (const [name, v] of weights) v.assign(this.#saved.get(name)!);
    return true;
  }
  dispose(): void {
    tf.dispose([...this.#saved.values()]);
    this.#saved.clear();
  }
}

/** Warm-up steps: given, or from epochs, or 5% of all steps; at most `totalSteps`. */
function warmupStepsOf(settings: FitSettings, stepsPerEpoch: number, totalSteps: number): number {
  const { warmupSteps, warmupEpochs } = settings;
  const steps = warmupSteps ??
    Math.round(warmupEpochs !== undefined ? warmupEpochs * stepsPerEpoch : 0.05 * totalSteps);
  return Math.min(totalSteps, steps);
}

/**
 * Trains `model` on rows `train` of `x` (shuffled each epoch by `rng`) and returns the history;
 * `makeStep` builds the optimisation step (default: the tfjs one). Throws a RangeError when an
 * epoch's loss is not finite (the caller restores the head).
 */
export async function fitLoop(
  model: FitModel,
  x: tf.Tensor,
  targets: PreparedTargets,
  train: Int32Array,
  validation: Validation | undefined,
  settings: FitSettings,
  rng: Random,
  placement: TrainPlacement,
): Promise<FitHistory> {
  const { epochs, batchSize, learningRate: peak, patience } = settings;
  const stepsPerEpoch = Math.ceil(train.length / batchSize);
  const totalSteps = epochs * stepsPerEpoch;
  const schedule = {
    peak,
    totalSteps,
    warmupSteps: warmupStepsOf(settings, stepsPerEpoch, totalSteps),
  };
  const optimizer = new AdamW([...model.weights.values()], {
    weightDecay: settings.weightDecay,
    beta1: settings.beta1,
    beta2: settings.beta2,
    decay: (v) => model.decayed(v),
  });
  const runner = placement.engine === "onnx"
    ? await onnxHeadStep(model, x, targets, optimizer, placement.choice)
    : await tfjsHeadStep(model, x, targets, optimizer);
  const step = runner.step;
  const best = new BestWeights();
  const history: Omit<FitHistory, "device"> = {
    epochs: [],
    steps: 0,
    stoppedEarly: false,
    restoredBest: false,
  };
  try {
    let bestLoss = Infinity, sinceBest = 0;
    for (let epoch = 1; epoch <= epochs; epoch++) {
      rng.shuffle(train);
      const log = await runEpoch(step, train, batchSize, history, schedule, epoch);
      runner.sync();
      if (validation !== undefined) {
        const metrics = validate(model, validation, batchSize);
        log.valLoss = metrics.loss;
        log.valMetric = "accuracy" in metrics ? metrics.accuracy : metrics.mae;
        if (metrics.loss < bestLoss || history.bestEpoch === undefined) {
          bestLoss = metrics.loss;
          history.bestEpoch = epoch;
          sinceBest = 0;
          if (patience !== undefined) best.keep(model.weights);
        } else {
          sinceBest++;
        }
      }
      history.epochs.push(log);
      await settings.onEpoch?.(log);
      const patient = patience === undefined || sinceBest === 0 || sinceBest < patience;
      if (validation !== undefined && !patient && epoch < epochs) {
        history.stoppedEarly = true;
        break;
      }
    }
    if (patience !== undefined) history.restoredBest = best.restore(model.weights);
    return { ...history, device: runner.device?.() ?? placement.device };
  } finally {
    runner.dispose();
    optimizer.dispose();
    best.dispose();
  }
}

/** One pass over `train` in batches; returns the epoch's log (loss and last rate). */
async function runEpoch(
  step: HeadTrainStep,
  train: Int32Array,
  batchSize: number,
  history: Omit<FitHistory, "device">,
  schedule: { peak: number; totalSteps: number; warmupSteps: number },
  epoch: number,
): Promise<EpochLog> {
  let lossSum: tf.Scalar = tf.scalar(0);
  let lr = 0;
  for (let start = 0; start < train.length; start += batchSize) {
    const rows = train.slice(start, start + batchSize);
    lr = learningRateAt(history.steps, schedule);
    const mean = await step(rows, lr);
    const previous = lossSum;
    lossSum = tf.tidy(() => previous.add(mean.mul(rows.length)) as tf.Scalar);
    tf.dispose([previous, mean]);
    history.steps++;
  }
  const loss = (await lossSum.data())[0] / train.length;
  lossSum.dispose();
  if (!Number.isFinite(loss)) {
    throw new RangeError(
      `Training diverged: the mean loss of epoch ${epoch} is ${loss}; the head is left as it ` +
        `was before fit. Lower the learning rate (${schedule.peak}) or scale the features down`,
    );
  }
  return { epoch, loss, lr };
}

/** The metrics on the validation rows. */
function validate(
  model: FitModel,
  validation: Validation,
  batchSize: number,
): ClassificationMetrics | RegressionMetrics {
  return evaluateRows(
    (rows) => model.output(validation.x, rows),
    validation.targets,
    validation.rows,
    batchSize,
    model.outputs,
  );
}
