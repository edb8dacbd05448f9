/**
 * The base class shared by every probing head: input checks, standardisation, the AdamW
 * training loop with warm-up + cosine decay, validation and early stopping, batched
 * prediction, evaluation, and the `head.json` + `head.safetensors` folder format.
 *
 * A concrete head only declares its weights (with {@linkcode Head.addWeight}) and its
 * forward pass; see `linear_head.ts`, `mlp_head.ts` and `attention_head.ts`.
 *
 * @module
 */

import * as tf from "@tensorflow/tfjs";
import { join } from "node:path";
import { parseSafetensors, serializeSafetensors, toFloat32 } from "../io/safetensors.ts";
import type { TensorToWrite } from "../io/safetensors.ts";
import { AdamW } from "../optim/adamw.ts";
import { Random } from "../base/random.ts";
import { learningRateAt } from "../optim/lr_schedule.ts";

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

/** What {@linkcode Head.evaluate} returns for a classification head. */
export interface ClassificationMetrics {
  /** The fraction of samples whose largest logit is the label. */
  accuracy: number;
  /** The mean softmax cross-entropy. */
  loss: number;
}

/** What {@linkcode Head.evaluate} returns for a regression head. */
export interface RegressionMetrics {
  /** The mean squared error over all samples and outputs. */
  mse: number;
  /** The mean absolute error over all samples and outputs. */
  mae: number;
  /** The training loss, equal to `mse`. */
  loss: number;
}

/** The metrics of a head with task `T`. */
export type HeadMetrics<T extends HeadTask> = T extends "regression" ? RegressionMetrics
  : ClassificationMetrics;

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

/** What {@linkcode Head.fit} resolves to. */
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
}

/** Options of {@linkcode Head.fit}. */
export interface FitOptions {
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
}

/** Options of {@linkcode Head.predict} and {@linkcode Head.evaluate}. */
export interface PredictOptions {
  /** Samples per forward pass. Default 256. */
  batchSize?: number;
}

/** The contents of `head.json`. */
export interface HeadManifest {
  /** Always `"diffprobe-head"`. */
  format: "diffprobe-head";
  /** The format version, 1. */
  version: 1;
  /** The head class, e.g. `"AttentionHead"`. */
  className: string;
  /** The resolved constructor options. */
  options: HeadOptions & Record<string, unknown>;
  /** Per-feature statistics (flattened in row-major order), or null when not standardising. */
  standardization: { mean: number[]; std: number[] } | null;
  /** The weights file, relative to the folder. */
  weights: string;
}

const MANIFEST_FILE = "head.json";
const WEIGHTS_FILE = "head.safetensors";
const STAT_ROWS_BUDGET = 1 << 22; // floats per batch when computing statistics

type PreparedTargets =
  | { kind: "labels"; labels: Int32Array }
  | { kind: "values"; values: tf.Tensor2D };

/** Formats a shape as `[a, b, c]` for messages. */
export function formatShape(shape: readonly number[]): string {
  return `[${shape.join(", ")}]`;
}

function positiveInteger(value: unknown, what: string): number {
  if (typeof value !== "number" || !Number.isInteger(value) || value < 1) {
    throw new RangeError(`${what} must be a positive integer, got ${String(value)}`);
  }
  return value;
}

function sizeOf(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** Turns a flat index into a position in `shape`. */
function unravel(index: number, shape: readonly number[]): number[] {
  const position = new Array<number>(shape.length);
  for (let i = shape.length - 1; i >= 0; i--) {
    position[i] = index % shape[i];
    index = Math.floor(index / shape[i]);
  }
  return position;
}

/** Throws a RangeError naming the first non-finite value of `x` (rows are samples). */
function assertFinite(x: tf.Tensor, what: string): void {
  if (x.dtype !== "float32" || x.size === 0) return;
  const [anyBad, first] = tf.tidy(() => {
    const bad = tf.logicalNot(tf.isFinite(x)).reshape([-1]);
    return [bad.any(), bad.cast("int32").argMax()];
  });
  const found = anyBad.dataSync()[0];
  const index = first.dataSync()[0];
  tf.dispose([anyBad, first]);
  if (!found) return;
  const value = tf.tidy(() => x.reshape([-1]).slice([index], [1]).dataSync()[0]);
  const rowShape = x.shape.slice(1);
  const rowSize = sizeOf(rowShape);
  const sample = Math.floor(index / rowSize);
  const where = rowSize === 1 && what === "Targets"
    ? `at sample ${sample}`
    : `at sample ${sample}, ${what === "Targets" ? "output" : "position"} ${
      formatShape(unravel(index % rowSize, rowShape))
    }`;
  throw new RangeError(`${what} contain a non-finite value (${value}) ${where}`);
}

/**
 * The base of every probing head. Subclasses declare weights in their constructor with
 * {@linkcode Head.addWeight} and implement {@linkcode Head.forward}; everything else —
 * checks, training, prediction, evaluation, saving — lives here.
 *
 * Every method leaves `tf.memory().numTensors` where it found it, except for the tensors it
 * returns; the head's own weights (and standardisation statistics) are allocated by the
 * constructor and freed by {@linkcode Head.dispose}.
 *
 * @example Train and evaluate any head
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import { LinearHead } from "./linear_head.ts";
 * import type { Head } from "./head.ts";
 * const head: Head = new LinearHead({ inputShape: [2], outputs: 2 });
 * const x = tf.tensor2d([[0, 1], [1, 0], [0, 2], [2, 0]]);
 * await head.fit(x, [0, 1, 0, 1], { epochs: 50, learningRate: 0.1 });
 * console.log(head.evaluate(x, [0, 1, 0, 1]));
 * head.dispose();
 * x.dispose();
 * ```
 */
export abstract class Head<T extends HeadTask = HeadTask> {
  /** The head class name written to `head.json`, e.g. `"LinearHead"`. */
  abstract readonly className: string;
  /** The resolved constructor options, as saved to `head.json`. */
  abstract readonly options: HeadOptions<T>;
  /** The shape of one sample's features. */
  readonly inputShape: number[];
  /** The number of classes or regressed values. */
  readonly outputs: number;
  /** Classification or regression. */
  readonly task: T;
  /** The initialisation seed. */
  readonly seed: number;
  /** The number of features of one sample (the product of `inputShape`). */
  readonly featureSize: number;

  #weights = new Map<string, tf.Variable>();
  #decayed = new Set<tf.Variable>();
  #mean: tf.Variable;
  #std: tf.Variable;
  #standardized = false;
  #disposed = false;
  #fitting = false;

  /**
   * Checks the common options and allocates the standardisation statistics.
   *
   * @param options Input shape, outputs, task and seed.
   */
  protected constructor(options: HeadOptions<T>) {
    if (options === null || typeof options !== "object") {
      throw new TypeError("Head options must be an object with inputShape and outputs");
    }
    const { inputShape } = options;
    if (
      !Array.isArray(inputShape) || inputShape.length === 0 ||
      !inputShape.every((d) => Number.isInteger(d) && d > 0)
    ) {
      throw new RangeError(
        `Input shape must be a non-empty array of positive integers, got ${
          Array.isArray(inputShape) ? formatShape(inputShape) : String(inputShape)
        }`,
      );
    }
    const task = options.task ?? "classification";
    if (task !== "classification" && task !== "regression") {
      throw new RangeError(`Task must be "classification" or "regression", got "${task}"`);
    }
    this.outputs = positiveInteger(options.outputs, "Outputs");
    if (task === "classification" && this.outputs < 2) {
      throw new RangeError(`A classification head needs at least 2 outputs, got ${this.outputs}`);
    }
    const seed = options.seed ?? 0;
    if (!Number.isSafeInteger(seed)) throw new RangeError(`Seed must be an integer, got ${seed}`);
    this.inputShape = [...inputShape];
    this.task = task as T;
    this.seed = seed;
    this.featureSize = sizeOf(inputShape);
    this.#mean = tf.tidy(() => tf.variable(tf.zeros(inputShape), false));
    this.#std = tf.tidy(() => tf.variable(tf.ones(inputShape), false));
  }

  /**
   * Declares a trainable weight. For subclass constructors.
   *
   * @param name A stable name, used as the tensor name in `head.safetensors`.
   * @param shape The weight's shape.
   * @param values Its initial values, row-major.
   * @param decay Whether AdamW's weight decay applies (weight matrices: yes; biases,
   *   normalisation gains, embeddings, tokens: no).
   * @returns The variable.
   */
  protected addWeight(
    name: string,
    shape: number[],
    values: Float32Array,
    decay: boolean,
  ): tf.Variable {
    if (this.#weights.has(name)) throw new Error(`Weight "${name}" is declared twice`);
    const variable = tf.tidy(() => tf.variable(tf.tensor(values, shape, "float32"), true));
    this.#weights.set(name, variable);
    if (decay) this.#decayed.add(variable);
    return variable;
  }

  /**
   * The forward pass on standardised float32 features `[B, ...inputShape]`, returning
   * `[B, outputs]`. Called inside `tf.tidy` and under gradient tapes.
   */
  protected abstract forward(x: tf.Tensor): tf.Tensor;

  /**
   * For subclasses with their own (closed-form) fitting: checks the features and the targets,
   * and fits the standardisation on all samples (or turns it off). Returns N and the targets as
   * a float32 `[N, outputs]` tensor the caller owns (regression only).
   *
   * @param x Features `[N, ...inputShape]`.
   * @param y Regression targets.
   * @param standardize Whether to standardise features.
   * @returns The sample count and the targets.
   */
  protected prepareClosedFormFit(
    x: tf.Tensor,
    y: HeadTargets,
    standardize: boolean,
  ): { n: number; targets: tf.Tensor2D } {
    this.#assertAlive();
    if (this.task !== "regression") {
      throw new TypeError(`A closed-form fit is for regression heads; this one does ${this.task}`);
    }
    const n = this.#checkFeatures(x, "fit");
    if (n === 0) throw new RangeError("Cannot fit on 0 samples");
    const owned: tf.Tensor[] = [];
    const targets = this.#prepareTargets(y, n, owned) as { values: tf.Tensor2D };
    if (standardize) this.#fitStandardization(x, Int32Array.from({ length: n }, (_, i) => i));
    else this.#standardized = false;
    return { n, targets: targets.values };
  }

  /**
   * For subclasses: float32 features `[N, featureSize]`, standardised as `predict` does.
   *
   * @param x Features `[N, ...inputShape]` (already checked).
   * @returns A new tensor (call inside `tf.tidy`).
   */
  protected standardizedRows(x: tf.Tensor): tf.Tensor2D {
    return this.#standardize(x).reshape([-1, this.featureSize]) as tf.Tensor2D;
  }

  /**
   * For subclasses: checks validation features and targets like `fit` does.
   *
   * @param x Features `[M, ...inputShape]`.
   * @param y Regression targets.
   * @returns The targets as a float32 `[M, outputs]` tensor the caller owns.
   */
  protected checkedRegressionTargets(x: tf.Tensor, y: HeadTargets): tf.Tensor2D {
    const m = this.#checkFeatures(x, "validation");
    if (m === 0) throw new RangeError("Validation data has 0 samples");
    const owned: tf.Tensor[] = [];
    return (this.#prepareTargets(y, m, owned) as { values: tf.Tensor2D }).values;
  }

  /** The trainable weights by name (live variables: read, do not dispose). */
  get weights(): ReadonlyMap<string, tf.Variable> {
    return this.#weights;
  }

  /** The number of trainable scalars. */
  get parameterCount(): number {
    let n = 0;
    for (const v of this.#weights.values()) n += v.size;
    return n;
  }

  /** The per-feature statistics in use, or undefined when features are not standardised. */
  get standardization(): { mean: Float32Array; std: Float32Array } | undefined {
    this.#assertAlive();
    if (!this.#standardized) return undefined;
    return {
      mean: Float32Array.from(this.#mean.dataSync() as Float32Array),
      std: Float32Array.from(this.#std.dataSync() as Float32Array),
    };
  }

  /** Whether {@linkcode Head.dispose} has been called. */
  get isDisposed(): boolean {
    return this.#disposed;
  }

  /**
   * Trains the head with AdamW, a linear warm-up and a cosine decay to zero.
   *
   * @param x Features `[N, ...inputShape]`.
   * @param y Class indices (classification) or targets (regression), one per sample.
   * @param options Epochs, batch size, learning rate, decay, validation, callbacks.
   * @returns The per-epoch history.
   * @throws {RangeError} On a shape mismatch, a non-finite feature, a bad label or option.
   */
  async fit(x: tf.Tensor, y: HeadTargets, options: FitOptions = {}): Promise<FitHistory> {
    this.#assertAlive();
    const epochs = positiveInteger(options.epochs ?? 10, "Epochs");
    const batchSize = positiveInteger(options.batchSize ?? 256, "Batch size");
    const learningRate = options.learningRate ?? 1e-3;
    if (!(learningRate > 0) || !Number.isFinite(learningRate)) {
      throw new RangeError(`Learning rate must be a finite number > 0, got ${learningRate}`);
    }
    const split = options.validationSplit ?? 0;
    if (!(split >= 0 && split < 1)) {
      throw new RangeError(`Validation split must be in [0, 1), got ${split}`);
    }
    if (split > 0 && options.validationData !== undefined) {
      throw new RangeError("Give validationSplit or validationData, not both");
    }
    if (options.warmupEpochs !== undefined && options.warmupSteps !== undefined) {
      throw new RangeError("Give warmupEpochs or warmupSteps, not both");
    }
    const patience = options.patience;
    if (patience !== undefined && !(Number.isInteger(patience) && patience >= 0)) {
      throw new RangeError(`Patience must be an integer >= 0, got ${patience}`);
    }
    const seed = options.seed ?? this.seed;
    if (!Number.isSafeInteger(seed)) throw new RangeError(`Seed must be an integer, got ${seed}`);
    const weightDecay = options.weightDecay ?? 0.01;
    if (!(weightDecay >= 0) || !Number.isFinite(weightDecay)) {
      throw new RangeError(`Weight decay must be a finite number >= 0, got ${weightDecay}`);
    }
    const { warmupSteps: givenWarmupSteps, warmupEpochs } = options;
    if (
      givenWarmupSteps !== undefined &&
      !(Number.isInteger(givenWarmupSteps) && givenWarmupSteps >= 0)
    ) {
      throw new RangeError(`Warm-up steps must be an integer >= 0, got ${givenWarmupSteps}`);
    }
    if (warmupEpochs !== undefined && !(warmupEpochs >= 0 && Number.isFinite(warmupEpochs))) {
      throw new RangeError(`Warm-up epochs must be a finite number >= 0, got ${warmupEpochs}`);
    }
    if (this.#fitting) throw new Error(`This ${this.className} is already fitting`);

    const n = this.#checkFeatures(x, "fit");
    if (n === 0) throw new RangeError("Cannot fit on 0 samples");
    const owned: tf.Tensor[] = [];
    let optimizer: AdamW | undefined;
    const best = new Map<string, tf.Tensor>();
    this.#fitting = true;
    try {
      const targets = this.#prepareTargets(y, n, owned);
      let validation: { x: tf.Tensor; targets: PreparedTargets; rows: Int32Array } | undefined;
      const rng = Random.seeded(seed, 1);
      const order = rng.shuffle(Int32Array.from({ length: n }, (_, i) => i));
      const nVal = split > 0 ? Math.max(1, Math.floor(n * split)) : 0;
      if (n - nVal < 1) {
        throw new RangeError(
          `Validation split ${split} leaves no training samples out of ${n}`,
        );
      }
      const train = order.slice(0, n - nVal);
      if (nVal > 0) validation = { x, targets, rows: order.slice(n - nVal) };
      if (options.validationData !== undefined) {
        const { x: vx, y: vy } = options.validationData;
        const m = this.#checkFeatures(vx, "validation");
        if (m === 0) throw new RangeError("Validation data has 0 samples");
        validation = {
          x: vx,
          targets: this.#prepareTargets(vy, m, owned),
          rows: Int32Array.from({ length: m }, (_, i) => i),
        };
      }

      if (options.standardize ?? true) this.#fitStandardization(x, train);
      else this.#standardized = false;

      const stepsPerEpoch = Math.ceil(train.length / batchSize);
      const totalSteps = epochs * stepsPerEpoch;
      const warmupSteps = Math.min(
        totalSteps,
        givenWarmupSteps ??
          Math.round(
            warmupEpochs !== undefined ? warmupEpochs * stepsPerEpoch : 0.05 * totalSteps,
          ),
      );

      const variables = [...this.#weights.values()];
      optimizer = new AdamW(variables, {
        weightDecay,
        beta1: options.beta1,
        beta2: options.beta2,
        decay: (v) => this.#decayed.has(v),
      });

      const history: FitHistory = {
        epochs: [],
        steps: 0,
        stoppedEarly: false,
        restoredBest: false,
      };
      let bestLoss = Infinity;
      let sinceBest = 0;
      let step = 0;
      for (let epoch = 1; epoch <= epochs; epoch++) {
        rng.shuffle(train);
        let lossSum: tf.Scalar = tf.scalar(0);
        let lr = 0;
        for (let start = 0; start < train.length; start += batchSize) {
          const rows = train.slice(start, start + batchSize);
          lr = learningRateAt(step, { peak: learningRate, totalSteps, warmupSteps });
          const opt = optimizer;
          const previous = lossSum;
          lossSum = tf.tidy(() => {
            const xb = this.#rows(x, rows);
            const { value, grads } = tf.variableGrads(
              () => this.#loss(this.forward(xb), targets, rows).mean() as tf.Scalar,
              variables,
            );
            opt.step(variables.map((v) => grads[v.name]), lr);
            return previous.add(value.mul(rows.length)) as tf.Scalar;
          });
          previous.dispose();
          step++;
        }
        const loss = (await lossSum.data())[0] / train.length;
        lossSum.dispose();
        const log: EpochLog = { epoch, loss, lr };
        if (validation !== undefined) {
          const metrics = this.#evaluateRows(
            validation.x,
            validation.targets,
            validation.rows,
            batchSize,
          );
          log.valLoss = metrics.loss;
          log.valMetric = "accuracy" in metrics ? metrics.accuracy : metrics.mae;
          if (metrics.loss < bestLoss || history.bestEpoch === undefined) {
            bestLoss = metrics.loss;
            history.bestEpoch = epoch;
            sinceBest = 0;
            if (patience !== undefined) {
              tf.dispose([...best.values()]);
              for (const [name, v] of this.#weights) best.set(name, tf.clone(v));
            }
          } else {
            sinceBest++;
          }
        }
        history.epochs.push(log);
        history.steps = step;
        await options.onEpoch?.(log);
        if (
          validation !== undefined && patience !== undefined && sinceBest > 0 &&
          sinceBest >= patience && epoch < epochs
        ) {
          history.stoppedEarly = true;
          break;
        }
      }
      if (patience !== undefined && best.size > 0) {
        for (const [name, v] of this.#weights) v.assign(best.get(name)!);
        history.restoredBest = true;
      }
      return history;
    } finally {
      this.#fitting = false;
      optimizer?.dispose();
      tf.dispose([...best.values()]);
      tf.dispose(owned);
    }
  }

  /**
   * Runs the head on features `[N, ...inputShape]` in batches.
   *
   * @param x The features.
   * @param options The batch size.
   * @returns Logits (classification) or values (regression), `[N, outputs]`. The caller owns it.
   * @throws {RangeError} On a shape mismatch or a non-finite feature.
   */
  predict(x: tf.Tensor, options: PredictOptions = {}): tf.Tensor2D {
    this.#assertAlive();
    const batchSize = positiveInteger(options.batchSize ?? 256, "Batch size");
    const n = this.#checkFeatures(x, "predict");
    if (n === 0) return tf.zeros([0, this.outputs]);
    const parts: tf.Tensor2D[] = [];
    for (let start = 0; start < n; start += batchSize) {
      const size = Math.min(batchSize, n - start);
      parts.push(
        tf.tidy(() => this.forward(this.#standardize(x.slice([start], [size])))) as tf.Tensor2D,
      );
    }
    if (parts.length === 1) return parts[0];
    const out = tf.concat(parts, 0);
    tf.dispose(parts);
    return out;
  }

  /**
   * Measures the head on labelled features.
   *
   * @param x Features `[N, ...inputShape]`.
   * @param y Class indices or regression targets.
   * @param options The batch size.
   * @returns `{ accuracy, loss }` (classification) or `{ mse, mae, loss }` (regression).
   * @throws {RangeError} On a shape mismatch, a non-finite feature or a bad label.
   */
  evaluate(x: tf.Tensor, y: HeadTargets, options: PredictOptions = {}): HeadMetrics<T> {
    this.#assertAlive();
    const batchSize = positiveInteger(options.batchSize ?? 256, "Batch size");
    const n = this.#checkFeatures(x, "evaluate");
    if (n === 0) throw new RangeError("Cannot evaluate on 0 samples");
    const owned: tf.Tensor[] = [];
    try {
      const targets = this.#prepareTargets(y, n, owned);
      const rows = Int32Array.from({ length: n }, (_, i) => i);
      return this.#evaluateRows(x, targets, rows, batchSize) as HeadMetrics<T>;
    } finally {
      tf.dispose(owned);
    }
  }

  /**
   * Writes `head.json` (class, options, standardisation statistics) and `head.safetensors`
   * (float32 weights) into `dir`, creating it if needed. Each file is written atomically.
   *
   * @param dir The folder.
   */
  async save(dir: string): Promise<void> {
    this.#assertAlive();
    await Deno.mkdir(dir, { recursive: true });
    const tensors = new Map<string, TensorToWrite>();
    for (const [name, v] of this.#weights) {
      tensors.set(name, {
        dtype: "F32",
        shape: [...v.shape],
        data: await v.data() as Float32Array,
      });
    }
    const bytes = serializeSafetensors(tensors, {
      format: "diffprobe-head",
      className: this.className,
    });
    const manifest: HeadManifest = {
      format: "diffprobe-head",
      version: 1,
      className: this.className,
      options: this.options as HeadManifest["options"],
      standardization: this.#standardized
        ? {
          mean: Array.from(await this.#mean.data() as Float32Array),
          std: Array.from(await this.#std.data() as Float32Array),
        }
        : null,
      weights: WEIGHTS_FILE,
    };
    await writeAtomic(join(dir, WEIGHTS_FILE), bytes);
    await writeAtomic(
      join(dir, MANIFEST_FILE),
      new TextEncoder().encode(JSON.stringify(manifest, null, 2) + "\n"),
    );
  }

  /**
   * Replaces the weights and statistics with those saved in `dir`; used by the `load`
   * functions. On failure the head is disposed and the error rethrown.
   *
   * @param dir The folder written by {@linkcode Head.save}.
   * @param manifest Its parsed `head.json`.
   */
  protected async restore(dir: string, manifest: HeadManifest): Promise<void> {
    try {
      const file = join(dir, manifest.weights);
      const parsed = parseSafetensors(await Deno.readFile(file), file);
      for (const name of parsed.tensors.keys()) {
        if (!this.#weights.has(name)) {
          throw new Error(
            `Cannot load "${file}": unexpected tensor "${name}" for a ${this.className}`,
          );
        }
      }
      for (const [name, v] of this.#weights) {
        const entry = parsed.tensors.get(name);
        if (entry === undefined) {
          throw new Error(`Cannot load "${file}": tensor "${name}" is missing`);
        }
        if (formatShape(entry.shape) !== formatShape(v.shape)) {
          throw new Error(
            `Cannot load "${file}": tensor "${name}" has shape ${
              formatShape(entry.shape)
            }, expected ${formatShape(v.shape)}`,
          );
        }
        const values = toFloat32(entry);
        tf.tidy(() => v.assign(tf.tensor(values, v.shape, "float32")));
      }
      const stats = manifest.standardization;
      if (stats === null || stats === undefined) {
        this.#standardized = false;
      } else {
        for (const key of ["mean", "std"] as const) {
          if (!Array.isArray(stats[key]) || stats[key].length !== this.featureSize) {
            throw new Error(
              `Cannot load "${dir}": standardization.${key} must hold ${this.featureSize} numbers`,
            );
          }
        }
        tf.tidy(() => {
          this.#mean.assign(tf.tensor(stats.mean, this.inputShape, "float32"));
          this.#std.assign(tf.tensor(stats.std, this.inputShape, "float32"));
        });
        this.#standardized = true;
      }
    } catch (error) {
      this.dispose();
      throw error;
    }
  }

  /** Frees the weights and statistics. Further use of the head throws. Idempotent. */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    tf.dispose([...this.#weights.values(), this.#mean, this.#std]);
    this.#weights.clear();
    this.#decayed.clear();
  }

  #assertAlive(): void {
    if (this.#disposed) throw new Error(`This ${this.className} has been disposed`);
  }

  /** Checks `[N, ...inputShape]` and finiteness; returns N. */
  #checkFeatures(x: tf.Tensor, where: string): number {
    if (!(x instanceof tf.Tensor)) {
      throw new TypeError(`Features for ${where} must be a tf.Tensor`);
    }
    const expected = this.inputShape;
    const sample = x.shape.slice(1);
    if (x.rank !== expected.length + 1 || formatShape(sample) !== formatShape(expected)) {
      throw new RangeError(
        `Features for ${where} have shape ${formatShape(x.shape)}, expected [N, ${
          expected.join(", ")
        }] (inputShape ${formatShape(expected)})`,
      );
    }
    assertFinite(x, "Features");
    return x.shape[0];
  }

  /** Validates targets; regression values become an owned float32 `[N, outputs]` tensor. */
  #prepareTargets(y: HeadTargets, n: number, owned: tf.Tensor[]): PreparedTargets {
    const isTensor = y instanceof tf.Tensor;
    if (!isTensor && !Array.isArray(y)) {
      throw new TypeError("Targets must be a tf.Tensor or an array of numbers");
    }
    if (this.task === "classification") {
      if (isTensor && y.rank !== 1) {
        throw new RangeError(
          `Labels must be a 1-D tensor of class indices [${n}], got shape ${formatShape(y.shape)}`,
        );
      }
      const values = isTensor ? y.dataSync() : y;
      if (values.length !== n) {
        throw new RangeError(`Expected ${n} labels (one per sample), got ${values.length}`);
      }
      const labels = new Int32Array(n);
      for (let i = 0; i < n; i++) {
        const label = values[i];
        if (typeof label !== "number" || !Number.isInteger(label)) {
          throw new RangeError(
            `Label ${
              String(label)
            } at index ${i} is not an integer class index in [0, ${this.outputs})`,
          );
        }
        if (label < 0 || label >= this.outputs) {
          throw new RangeError(
            `Label ${label} at index ${i} is out of range: class indices must be in [0, ${this.outputs})`,
          );
        }
        labels[i] = label;
      }
      return { kind: "labels", labels };
    }
    let shape: number[];
    if (isTensor) shape = y.shape;
    else {
      if (!y.every((v) => typeof v === "number")) {
        throw new TypeError("Regression targets given as an array must be numbers");
      }
      shape = [y.length];
    }
    const ok = (shape.length === 1 && shape[0] === n && this.outputs === 1) ||
      (shape.length === 2 && shape[0] === n && shape[1] === this.outputs);
    if (!ok) {
      throw new RangeError(
        `Regression targets have shape ${formatShape(shape)}, expected [${n}, ${this.outputs}]${
          this.outputs === 1 ? ` or [${n}]` : ""
        }`,
      );
    }
    const values = tf.tidy(() =>
      (isTensor ? y : tf.tensor1d(y, "float32")).cast("float32").reshape([n, this.outputs])
    ) as tf.Tensor2D;
    owned.push(values);
    assertFinite(values, "Targets");
    return { kind: "values", values };
  }

  /** Computes the per-feature mean and deviation over the given rows of `x`. */
  #fitStandardization(x: tf.Tensor, rows: Int32Array): void {
    const size = this.featureSize;
    const chunk = Math.max(1, Math.floor(STAT_ROWS_BUDGET / size));
    const sumOver = (f: (xb: tf.Tensor2D) => tf.Tensor): tf.Tensor => {
      let acc = tf.zeros([size]);
      for (let start = 0; start < rows.length; start += chunk) {
        const previous = acc;
        acc = tf.tidy(() => {
          const xb = tf.gather(x, tf.tensor1d(rows.slice(start, start + chunk), "int32"))
            .cast("float32").reshape([-1, size]) as tf.Tensor2D;
          return previous.add(f(xb).sum(0));
        });
        previous.dispose();
      }
      return acc;
    };
    const sum = sumOver((xb) => xb);
    const mean = tf.tidy(() => sum.div(rows.length));
    sum.dispose();
    const squares = sumOver((xb) => xb.sub(mean).square());
    tf.tidy(() => {
      const std = squares.div(rows.length).sqrt();
      const safe = tf.where(std.greater(1e-6), std, tf.onesLike(std));
      this.#mean.assign(mean.reshape(this.inputShape));
      this.#std.assign(safe.reshape(this.inputShape));
    });
    tf.dispose([mean, squares]);
    this.#standardized = true;
  }

  /** float32, standardised when the head standardises. */
  #standardize(x: tf.Tensor): tf.Tensor {
    const xf = x.dtype === "float32" ? x : x.cast("float32");
    return this.#standardized ? xf.sub(this.#mean).div(this.#std) : xf;
  }

  /** The standardised rows of `x`. */
  #rows(x: tf.Tensor, rows: Int32Array): tf.Tensor {
    return this.#standardize(tf.gather(x, tf.tensor1d(rows, "int32")));
  }

  /** Per-sample loss `[B]` for the given output and rows of the targets. */
  #loss(output: tf.Tensor, targets: PreparedTargets, rows: Int32Array): tf.Tensor1D {
    if (targets.kind === "labels") {
      const labels = tf.tensor1d(rows.map((r) => targets.labels[r]), "int32");
      const oneHot = tf.oneHot(labels, this.outputs).cast("float32");
      return tf.logSoftmax(output).mul(oneHot).sum(-1).neg() as tf.Tensor1D;
    }
    const truth = tf.gather(targets.values, tf.tensor1d(rows, "int32"));
    return output.sub(truth).square().mean(-1) as tf.Tensor1D;
  }

  #evaluateRows(
    x: tf.Tensor,
    targets: PreparedTargets,
    rows: Int32Array,
    batchSize: number,
  ): ClassificationMetrics | RegressionMetrics {
    // Accumulates [loss sum, correct count or squared-error sum, absolute-error sum].
    let acc = tf.zeros([3]);
    for (let start = 0; start < rows.length; start += batchSize) {
      const batch = rows.slice(start, start + batchSize);
      const previous = acc;
      acc = tf.tidy(() => {
        const output = this.forward(this.#rows(x, batch));
        const loss = this.#loss(output, targets, batch).sum();
        let second: tf.Tensor, third: tf.Tensor;
        if (targets.kind === "labels") {
          const labels = tf.tensor1d(batch.map((r) => targets.labels[r]), "int32");
          second = output.argMax(-1).equal(labels).cast("float32").sum();
          third = tf.scalar(0);
        } else {
          const diff = output.sub(tf.gather(targets.values, tf.tensor1d(batch, "int32")));
          second = diff.square().sum();
          third = diff.abs().sum();
        }
        return previous.add(tf.stack([loss, second, third]));
      });
      previous.dispose();
    }
    const [lossSum, second, third] = acc.dataSync();
    acc.dispose();
    const n = rows.length;
    if (targets.kind === "labels") return { accuracy: second / n, loss: lossSum / n };
    const mse = second / (n * this.outputs);
    return { mse, mae: third / (n * this.outputs), loss: mse };
  }
}

/** Writes `bytes` to `path` through a temporary file and a rename. */
async function writeAtomic(path: string, bytes: Uint8Array): Promise<void> {
  const tmp = `${path}.${crypto.randomUUID().slice(0, 8)}.tmp`;
  try {
    await Deno.writeFile(tmp, bytes);
    await Deno.rename(tmp, path);
  } catch (error) {
    await Deno.remove(tmp).catch(() => {});
    throw error;
  }
}

/**
 * Reads and checks `<dir>/head.json`.
 *
 * @example Look at a saved head
 * ```ts ignore
 * import { readHeadManifest } from "./head.ts";
 * const manifest = await readHeadManifest("out/probe");
 * console.log(manifest.className, manifest.options.inputShape);
 * ```
 *
 * @param dir The folder written by {@linkcode Head.save}.
 * @param expectedClass When given, the class the folder must hold.
 * @returns The manifest.
 */
export async function readHeadManifest(
  dir: string,
  expectedClass?: string,
): Promise<HeadManifest> {
  const file = join(dir, MANIFEST_FILE);
  let text: string;
  try {
    text = await Deno.readTextFile(file);
  } catch (error) {
    throw new Error(`Cannot read a head from "${dir}": ${file} is unreadable`, { cause: error });
  }
  let manifest: HeadManifest;
  try {
    manifest = JSON.parse(text);
  } catch (error) {
    throw new Error(`Cannot read a head from "${dir}": ${file} is not valid JSON`, {
      cause: error,
    });
  }
  if (
    manifest === null || typeof manifest !== "object" || manifest.format !== "diffprobe-head" ||
    typeof manifest.className !== "string" || typeof manifest.options !== "object" ||
    manifest.options === null || typeof manifest.weights !== "string"
  ) {
    throw new Error(`Cannot read a head from "${dir}": ${file} is not a diffprobe head manifest`);
  }
  if (manifest.version !== 1) {
    throw new Error(
      `Cannot read a head from "${dir}": format version ${manifest.version} is not supported`,
    );
  }
  if (manifest.weights.includes("/") || manifest.weights.includes("\\")) {
    throw new Error(`Cannot read a head from "${dir}": weights must be a file name in the folder`);
  }
  if (expectedClass !== undefined && manifest.className !== expectedClass) {
    throw new Error(
      `"${dir}" holds a ${manifest.className}, not a ${expectedClass}; loadHead() loads any head`,
    );
  }
  return manifest;
}
