/**
 * AdamW (Adam with decoupled weight decay, Loshchilov & Hutter 2019) over `tf.Variable`s.
 *
 * `tf.train.adam` folds no decay and `tf.train.*` offers no decoupled variant, so the update is
 * written out here. It follows PyTorch's `torch.optim.AdamW`:
 *
 * ```text
 * p ← p · (1 − lr · wd)
 * m ← β1 · m + (1 − β1) · g
 * v ← β2 · v + (1 − β2) · g²
 * p ← p − lr · (m / (1 − β1ᵗ)) / (sqrt(v / (1 − β2ᵗ)) + ε)
 * ```
 *
 * @module
 */

import * as tf from "@tensorflow/tfjs";

/** Options for {@linkcode AdamW}. */
export interface AdamWOptions {
  /** Exponential decay of the first moment. Default 0.9. */
  beta1?: number;
  /** Exponential decay of the second moment. Default 0.999. */
  beta2?: number;
  /** Added to the denominator for stability. Default 1e-8. */
  epsilon?: number;
  /** Decoupled weight decay, multiplied by the learning rate at each step. Default 0.01. */
  weightDecay?: number;
  /**
   * Which variables are decayed; default all. Heads decay weight matrices only, not biases,
   * normalisation gains, embeddings or tokens.
   */
  decay?: (variable: tf.Variable) => boolean;
}

/**
 * An AdamW optimiser holding one pair of moment slots per variable.
 *
 * The slots are `tf.Variable`s created in the constructor; call {@linkcode AdamW.dispose} to
 * free them. The variables themselves are not owned and are left alone.
 *
 * @example One step on a scalar
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import { AdamW } from "./adamw.ts";
 * const p = tf.tidy(() => tf.variable(tf.scalar(1))); // tidy frees the initial scalar
 * const opt = new AdamW([p], { weightDecay: 0.01 });
 * const grads = { [p.name]: tf.scalar(0.5) };
 * opt.step(grads, 0.1);               // p = 1 · (1 − 0.001) − 0.1 · 0.5 / (0.5 + 1e-8)
 * tf.dispose(grads);
 * console.log(p.dataSync()[0]);       // ≈ 0.899
 * opt.dispose();
 * p.dispose();
 * ```
 */
export class AdamW {
  /** The first-moment decay. */
  readonly beta1: number;
  /** The second-moment decay. */
  readonly beta2: number;
  /** The stability constant. */
  readonly epsilon: number;
  /** The decoupled weight decay. */
  readonly weightDecay: number;
  #variables: tf.Variable[];
  #decayed: boolean[];
  #m: tf.Variable[];
  #v: tf.Variable[];
  #t = 0;
  #disposed = false;

  /**
   * Creates the optimiser and its zero-initialised moment slots.
   *
   * @param variables The trainable variables to update.
   * @param options Betas, epsilon, weight decay and which variables to decay.
   */
  constructor(variables: tf.Variable[], options: AdamWOptions = {}) {
    this.beta1 = options.beta1 ?? 0.9;
    this.beta2 = options.beta2 ?? 0.999;
    this.epsilon = options.epsilon ?? 1e-8;
    this.weightDecay = options.weightDecay ?? 0.01;
    for (const [name, value] of [["Beta1", this.beta1], ["Beta2", this.beta2]] as const) {
      if (!(value >= 0 && value < 1)) {
        throw new RangeError(`${name} must be in [0, 1), got ${value}`);
      }
    }
    if (!(this.epsilon >= 0)) throw new RangeError(`Epsilon must be >= 0, got ${this.epsilon}`);
    if (!(this.weightDecay >= 0) || !Number.isFinite(this.weightDecay)) {
      throw new RangeError(`Weight decay must be a finite number >= 0, got ${this.weightDecay}`);
    }
    this.#variables = [...variables];
    const decay = options.decay ?? (() => true);
    this.#decayed = this.#variables.map((v) => decay(v));
    // Variables are not tracked by tidy, so only the temporary zeros are freed here.
    this.#m = tf.tidy(() => this.#variables.map((v) => tf.variable(tf.zerosLike(v), false)));
    this.#v = tf.tidy(() => this.#variables.map((v) => tf.variable(tf.zerosLike(v), false)));
  }

  /** The number of steps taken so far. */
  get iterations(): number {
    return this.#t;
  }

  /**
   * Applies one AdamW update.
   *
   * @param grads Gradients keyed by variable name, as returned by `tf.variableGrads`.
   *   A variable without a gradient is left unchanged (its moments are not advanced).
   * @param learningRate The learning rate for this step.
   */
  step(grads: tf.NamedTensorMap, learningRate: number): void {
    if (this.#disposed) throw new Error("Cannot step a disposed AdamW optimiser");
    if (!(learningRate >= 0) || !Number.isFinite(learningRate)) {
      throw new RangeError(`Learning rate must be a finite number >= 0, got ${learningRate}`);
    }
    this.#t++;
    const { beta1, beta2, epsilon } = this;
    const biasCorrection1 = 1 - beta1 ** this.#t;
    const biasCorrection2 = 1 - beta2 ** this.#t;
    tf.tidy(() => {
      this.#variables.forEach((variable, i) => {
        const g = grads[variable.name];
        if (g === undefined) return;
        const m = this.#m[i], v = this.#v[i];
        const newM = m.mul(beta1).add(g.mul(1 - beta1));
        const newV = v.mul(beta2).add(g.square().mul(1 - beta2));
        m.assign(newM);
        v.assign(newV);
        const decayed = this.#decayed[i] && this.weightDecay > 0
          ? variable.mul(1 - learningRate * this.weightDecay)
          : variable;
        const update = newM.div(biasCorrection1).div(
          newV.div(biasCorrection2).sqrt().add(epsilon),
        ).mul(learningRate);
        variable.assign(decayed.sub(update));
      });
    });
  }

  /** Frees the moment slots. The optimised variables are not touched. */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    tf.dispose(this.#m);
    tf.dispose(this.#v);
    this.#m = [];
    this.#v = [];
  }
}
