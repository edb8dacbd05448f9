/**
 * Probing heads: small trainable models on frozen diffusion features. `LinearHead`, `MLPHead`
 * and `AttentionHead` share the {@linkcode Head} base: `fit` (AdamW with warm-up and cosine
 * decay), `predict`, `evaluate`, `save` / `load`, `dispose`.
 *
 * This file holds the base class of every probing head: its weights, the checks of its inputs, `fit`,
 * `predict`, `evaluate`, `save`, and the hooks its subclasses fill in. The pieces live beside
 * it: options (`head_options.ts`), fit options and history (`fit_options.ts`), metrics
 * (`metrics.ts`), the file format (`head_file.ts`), the training loop (`_fit_loop.ts`),
 * standardisation (`_standardization.ts`) and targets (`_targets.ts`).
 *
 * A concrete head declares its weights (with {@linkcode Head.addWeight}) and its forward pass;
 * see `linear_head.ts`, `mlp_head.ts` and `attention_head.ts`.
 *
 * @module
 */

import * as tf from "@tensorflow/tfjs";
import { Random } from "../base/random.ts";
import { positiveInteger } from "../base/validate.ts";
import { chooseTrainPlacement } from "../engine/train_engine.ts";
import type { TensorToWrite } from "../io/safetensors.ts";
import {
  checkHeadOptions,
  type HeadOptions,
  type HeadTargets,
  type HeadTask,
} from "./head_options.ts";
import type { PredictOptions } from "./head_options.ts";
import { type FitHistory, type FitOptions, resolveFitOptions } from "./fit_options.ts";
import { evaluateRows, type HeadMetrics } from "./metrics.ts";
import { type HeadManifest, type SavedHead, writeHeadFolder } from "./head_file.ts";
import { fitLoop, type FitModel, type Validation } from "./_fit_loop.ts";
import { Standardization } from "./_standardization.ts";
import { assertFinite, disposeTargets, type PreparedTargets, prepareTargets } from "./_targets.ts";
import { formatShape, sameShape } from "./_shape.ts";

/**
 * The base of every probing head. Subclasses declare weights in their constructor with
 * {@linkcode Head.addWeight} and implement {@linkcode Head.forward}; everything else —
 * checks, training, prediction, evaluation, saving — lives here.
 *
 * Every method leaves `tf.memory().numTensors` where it found it, except for the tensors it
 * returns; the head's own weights (and standardisation statistics) are allocated by the
 * constructor and freed by {@linkcode Head.dispose}. A `fit` or `fitRidge` that fails leaves
 * the head as it was before.
 *
 * @example Train and evaluate any head
 * ```ts
 * import assert from "node:assert/strict";
 * import * as tf from "@tensorflow/tfjs";
 * import { type Head, LinearHead } from "@diffprobe/core";
 *
 * const head: Head<"classification"> = new LinearHead({ inputShape: [2], outputs: 2 });
 * const x = tf.tensor2d([[0, 1], [1, 0], [0, 2], [2, 0]]);
 * await head.fit(x, [0, 1, 0, 1], { epochs: 50, learningRate: 0.1 });
 * assert.equal(head.evaluate(x, [0, 1, 0, 1]).accuracy, 1);
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
  #stats: Standardization;
  #disposed = false;
  #busy = false;

  /**
   * Checks the common options and allocates the standardisation statistics.
   *
   * @param options Input shape, outputs, task and seed.
   */
  protected constructor(options: HeadOptions<T>) {
    const resolved = checkHeadOptions(options);
    this.inputShape = resolved.inputShape;
    this.outputs = resolved.outputs;
    this.task = resolved.task;
    this.seed = resolved.seed;
    this.featureSize = resolved.featureSize;
    this.#stats = new Standardization(this.inputShape);
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
    return this.#stats.values();
  }

  /** Whether {@linkcode Head.dispose} has been called. */
  get isDisposed(): boolean {
    return this.#disposed;
  }

  /**
   * Trains the head with AdamW, a linear warm-up and a cosine decay to zero. On any error
   * (bad input, a diverging loss, an exception in `onEpoch`) the head is left as it was.
   *
   * @param x Features `[N, ...inputShape]`.
   * @param y Class indices (classification) or targets (regression), one per sample.
   * @param options Epochs, batch size, learning rate, decay, validation, callbacks.
   * @returns The per-epoch history.
   * @throws {RangeError} On a shape mismatch, a non-finite feature, a bad label or option, or
   *   a loss that is no longer finite.
   */
  async fit(x: tf.Tensor, y: HeadTargets, options: FitOptions = {}): Promise<FitHistory> {
    this.#assertAlive();
    const settings = resolveFitOptions(options, this.seed);
    const placement = await chooseTrainPlacement(settings.engine, options.device, "Head training");
    return await this.transaction(async () => {
      const n = this.#checkFeatures(x, "fit");
      if (n === 0) throw new RangeError("Cannot fit on 0 samples");
      const rng = Random.seeded(settings.seed, 1);
      const order = rng.shuffle(Int32Array.from({ length: n }, (_, i) => i));
      const split = settings.validationSplit;
      const nVal = split > 0 ? Math.max(1, Math.floor(n * split)) : 0;
      if (n - nVal < 1) {
        throw new RangeError(`Validation split ${split} leaves no training samples out of ${n}`);
      }
      const train = order.slice(0, n - nVal);
      let targets: PreparedTargets | undefined, extra: PreparedTargets | undefined;
      try {
        targets = prepareTargets(y, n, this.task, this.outputs);
        let validation: Validation | undefined = nVal > 0
          ? { x, targets, rows: order.slice(n - nVal) }
          : undefined;
        if (settings.validationData !== undefined) {
          const { x: vx, y: vy } = settings.validationData;
          const m = this.#checkFeatures(vx, "validation");
          if (m === 0) throw new RangeError("Validation data has 0 samples");
          extra = prepareTargets(vy, m, this.task, this.outputs);
          validation = { x: vx, targets: extra, rows: Int32Array.from({ length: m }, (_, i) => i) };
        }
        if (settings.standardize) this.#stats.fit(x, train);
        else this.#stats.off();
        const history = await fitLoop(
          this.#fitModel(),
          x,
          targets,
          train,
          validation,
          settings,
          rng,
          placement,
        );
        return history;
      } finally {
        disposeTargets(targets);
        disposeTargets(extra);
      }
    });
  }

  /** What the training loop sees of this head. */
  #fitModel(): FitModel {
    return {
      weights: this.#weights,
      decayed: (v) => this.#decayed.has(v),
      output: (x, rows) => this.forward(this.#rows(x, rows)),
      outputs: this.outputs,
      features: (x, rows) => this.#rows(x, rows),
      head: this,
    };
  }

  /**
   * Runs `work` (a fit of this head); when it throws, puts back the weights and statistics it
   * started from. One at a time per head. For subclasses with their own fitting.
   *
   * @param work The fitting.
   * @returns What `work` returns.
   */
  protected async transaction<R>(work: () => Promise<R>): Promise<R> {
    this.#assertAlive();
    if (this.#busy) throw new Error(`This ${this.className} is already fitting`);
    this.#busy = true;
    const weights = new Map([...this.#weights].map(([name, v]) => [name, v.clone()]));
    const stats = this.#stats.snapshot();
    try {
      const result = await work();
      tf.dispose([...weights.values(), stats.mean, stats.std]);
      return result;
    } catch (error) {
      if (this.#disposed) {
        tf.dispose([stats.mean, stats.std]);
      } else {
        for (const [name, v] of this.#weights) v.assign(weights.get(name)!);
        this.#stats.restore(stats); // and frees the snapshot
      }
      tf.dispose([...weights.values()]);
      throw error;
    } finally {
      this.#busy = false;
    }
  }

  /**
   * For subclasses with their own (closed-form) fitting, inside {@linkcode Head.transaction}:
   * checks the features and the targets, and fits the standardisation on all samples (or turns
   * it off). Returns N and the targets as a float32 `[N, outputs]` tensor the caller owns
   * (regression only); on an error nothing is left allocated.
   *
   * @param x Features `[N, ...inputShape]`.
   * @param y Regression targets.
   * @param standardize Whether to standardise features.
   * @param values The values of `x`, when the caller has read them already: the statistics are
   *   then summed on them (in float64) instead of with tensor ops.
   * @returns The sample count and the targets.
   */
  protected prepareClosedFormFit(
    x: tf.Tensor,
    y: HeadTargets,
    standardize: boolean,
    values?: Float32Array,
  ): { n: number; targets: tf.Tensor2D } {
    this.#assertAlive();
    if (this.task !== "regression") {
      throw new TypeError(`A closed-form fit is for regression heads; this one does ${this.task}`);
    }
    const n = this.#checkFeatures(x, "fit");
    if (n === 0) throw new RangeError("Cannot fit on 0 samples");
    const targets = prepareTargets(y, n, this.task, this.outputs) as { values: tf.Tensor2D };
    try {
      if (standardize && values) this.#stats.fitValues(values, n);
      else if (standardize) this.#stats.fit(x, Int32Array.from({ length: n }, (_, i) => i));
      else this.#stats.off();
    } catch (error) {
      targets.values.dispose();
      throw error;
    }
    return { n, targets: targets.values };
  }

  /**
   * For subclasses: float32 features `[N, featureSize]`, standardised as `predict` does.
   *
   * @param x Features `[N, ...inputShape]` (already checked).
   * @returns A new tensor (call inside `tf.tidy`).
   */
  protected standardizedRows(x: tf.Tensor): tf.Tensor2D {
    return this.#stats.apply(x).reshape([-1, this.featureSize]) as tf.Tensor2D;
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
    return (prepareTargets(y, m, this.task, this.outputs) as { values: tf.Tensor2D }).values;
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
        tf.tidy(() => this.forward(this.#stats.apply(x.slice([start], [size])))) as tf.Tensor2D,
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
    const targets = prepareTargets(y, n, this.task, this.outputs);
    try {
      const rows = Int32Array.from({ length: n }, (_, i) => i);
      const output = (batch: Int32Array) => this.forward(this.#rows(x, batch));
      return evaluateRows(output, targets, rows, batchSize, this.outputs) as HeadMetrics<T>;
    } finally {
      disposeTargets(targets);
    }
  }

  /**
   * Writes `head.json` (class, options, standardisation statistics) and `head.safetensors`
   * (float32 weights) into `dir`, creating it if needed. Each file is written atomically; a
   * failed save leaves no temporary file, and its error names the path.
   *
   * @param dir The folder.
   */
  async save(dir: string): Promise<void> {
    this.#assertAlive();
    const tensors = new Map<string, TensorToWrite>();
    for (const [name, v] of this.#weights) {
      tensors.set(name, {
        dtype: "F32",
        shape: [...v.shape],
        data: await v.data() as Float32Array,
      });
    }
    const stats = this.#stats.values();
    await writeHeadFolder(dir, {
      format: "diffprobe-head",
      version: 1,
      className: this.className,
      options: this.options as HeadManifest["options"],
      standardization: stats ? { mean: Array.from(stats.mean), std: Array.from(stats.std) } : null,
    }, tensors);
  }

  /**
   * Puts in the weights and statistics of a checked saved head (see `readSavedHead`), whose
   * shapes match this head's; used by the `load` functions.
   *
   * @param saved The head read back.
   */
  protected restore(saved: SavedHead): void {
    for (const [name, v] of this.#weights) {
      const values = saved.weights.get(name)!;
      tf.tidy(() => v.assign(tf.tensor(values, v.shape, "float32")));
    }
    this.#stats.set(saved.standardization);
  }

  /** Frees the weights and statistics. Further use of the head throws. Idempotent. */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    tf.dispose([...this.#weights.values()]);
    this.#stats.dispose();
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
    if (x.rank !== expected.length + 1 || !sameShape(x.shape.slice(1), expected)) {
      throw new RangeError(
        `Features for ${where} have shape ${formatShape(x.shape)}, expected [N, ${
          expected.join(", ")
        }] (inputShape ${formatShape(expected)})`,
      );
    }
    assertFinite(x, "Features");
    return x.shape[0];
  }

  /** The standardised rows of `x`. */
  #rows(x: tf.Tensor, rows: Int32Array): tf.Tensor {
    return this.#stats.apply(tf.gather(x, tf.tensor1d(rows, "int32")));
  }
}
