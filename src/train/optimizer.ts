/**
 * AdamW with decoupled weight decay, written out as `torch.optim.AdamW` computes it, with a state
 * that can be read and restored so that a checkpointed run resumes bit for bit:
 *
 * ```text
 * p ← p · (1 − lr · wd)
 * m ← β1 · m + (1 − β1) · g
 * v ← β2 · v + (1 − β2) · g²
 * p ← p − (lr / (1 − β1ᵗ)) · m / (sqrt(v) / sqrt(1 − β2ᵗ) + ε)
 * ```
 *
 * (The heads' `AdamW` in `src/heads/adamw.ts` has the same update but no state access.)
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import { AdamWOptimizer } from "./optimizer.ts";
 *
 * const p = tf.variable(tf.tensor1d([1, -1]));
 * const opt = new AdamWOptimizer([p], { weightDecay: 0 });
 * opt.step([tf.tensor1d([0.5, -0.5])], 0.1);
 * console.log(Array.from(p.dataSync())); // ≈ [0.9, -0.9]: Adam's first step is lr · sign(g)
 * opt.dispose();
 * p.dispose();
 * ```
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";

/** Options of {@linkcode AdamWOptimizer}. */
export interface AdamWOptimizerOptions {
  /** First-moment decay (default 0.9). */
  beta1?: number;
  /** Second-moment decay (default 0.999). */
  beta2?: number;
  /** Added to the denominator (default 1e-8). */
  epsilon?: number;
  /** Decoupled weight decay, multiplied by the learning rate (default 0.01, PyTorch's). */
  weightDecay?: number;
}

/** The optimiser's state: the step count and one pair of moments per variable. */
export interface AdamWOptimizerState {
  /** Steps taken so far. */
  iterations: number;
  /** First moments, in the order of the variables. */
  m: readonly tf.Tensor[];
  /** Second moments, in the order of the variables. */
  v: readonly tf.Tensor[];
}

/**
 * An AdamW optimiser over an ordered list of `tf.Variable`s.
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import { AdamWOptimizer } from "./optimizer.ts";
 *
 * const p = tf.variable(tf.scalar(2));
 * const opt = new AdamWOptimizer([p], { weightDecay: 0.1 });
 * opt.step([tf.scalar(0)], 0.5);
 * console.log(p.dataSync()[0]); // 1.9: only the decay 2 · (1 − 0.5 · 0.1) acted
 * opt.dispose();
 * p.dispose();
 * ```
 */
export class AdamWOptimizer {
  /** First-moment decay. */
  readonly beta1: number;
  /** Second-moment decay. */
  readonly beta2: number;
  /** Denominator constant. */
  readonly epsilon: number;
  /** Decoupled weight decay. */
  readonly weightDecay: number;
  #variables: tf.Variable[];
  #m: tf.Variable[];
  #v: tf.Variable[];
  #t = 0;
  #disposed = false;

  /**
   * Creates zero moments for `variables` (not owned: {@linkcode AdamWOptimizer.dispose} leaves
   * them alone).
   */
  constructor(variables: readonly tf.Variable[], options: AdamWOptimizerOptions = {}) {
    this.beta1 = options.beta1 ?? 0.9;
    this.beta2 = options.beta2 ?? 0.999;
    this.epsilon = options.epsilon ?? 1e-8;
    this.weightDecay = options.weightDecay ?? 0.01;
    for (const [name, value] of [["beta1", this.beta1], ["beta2", this.beta2]] as const) {
      if (!(value >= 0 && value < 1)) {
        throw new RangeError(`AdamW ${name} ${value} is not in [0, 1)`);
      }
    }
    if (!(this.epsilon >= 0)) throw new RangeError(`AdamW epsilon ${this.epsilon} is negative`);
    if (!(this.weightDecay >= 0) || !Number.isFinite(this.weightDecay)) {
      throw new RangeError(`AdamW weight decay ${this.weightDecay} is not a finite number >= 0`);
    }
    this.#variables = [...variables];
    this.#m = this.#variables.map((v) => tf.tidy(() => tf.variable(tf.zerosLike(v), false)));
    this.#v = this.#variables.map((v) => tf.tidy(() => tf.variable(tf.zerosLike(v), false)));
  }

  /** Steps taken so far. */
  get iterations(): number {
    return this.#t;
  }

  /**
   * Applies one update with `grads` (aligned with the variables) at `learningRate`.
   *
   * @example
   * ```ts
   * import * as tf from "@tensorflow/tfjs";
   * import { AdamWOptimizer } from "./optimizer.ts";
   *
   * const p = tf.variable(tf.scalar(0));
   * const opt = new AdamWOptimizer([p]);
   * opt.step([tf.scalar(-3)], 0.01);
   * console.log(opt.iterations); // 1
   * opt.dispose();
   * ```
   */
  step(grads: readonly tf.Tensor[], learningRate: number): void {
    if (this.#disposed) throw new TypeError("This AdamWOptimizer has been disposed");
    if (grads.length !== this.#variables.length) {
      throw new RangeError(
        `Got ${grads.length} gradients for ${this.#variables.length} variables`,
      );
    }
    if (!(learningRate >= 0) || !Number.isFinite(learningRate)) {
      throw new RangeError(`Learning rate ${learningRate} is not a finite number >= 0`);
    }
    this.#t++;
    const { beta1, beta2, epsilon } = this;
    const stepSize = learningRate / (1 - beta1 ** this.#t);
    const correction2 = Math.sqrt(1 - beta2 ** this.#t);
    const decay = 1 - learningRate * this.weightDecay;
    tf.tidy(() => {
      this.#variables.forEach((p, i) => {
        const g = grads[i];
        const m = tf.add(tf.mul(this.#m[i], beta1), tf.mul(g, 1 - beta1));
        const v = tf.add(tf.mul(this.#v[i], beta2), tf.mul(tf.square(g), 1 - beta2));
        this.#m[i].assign(m);
        this.#v[i].assign(v);
        const decayed = decay === 1 ? p : tf.mul(p, decay);
        const denom = tf.add(tf.div(tf.sqrt(v), correction2), epsilon);
        p.assign(tf.sub(decayed, tf.mul(tf.div(m, denom), stepSize)));
      });
    });
  }

  /**
   * The current state (the moment tensors are the optimiser's own: read, do not dispose).
   *
   * @example
   * ```ts
   * import * as tf from "@tensorflow/tfjs";
   * import { AdamWOptimizer } from "./optimizer.ts";
   *
   * const opt = new AdamWOptimizer([tf.variable(tf.zeros([2]))]);
   * console.log(opt.state().iterations, opt.state().m[0].shape); // 0 [2]
   * ```
   */
  state(): AdamWOptimizerState {
    return { iterations: this.#t, m: this.#m, v: this.#v };
  }

  /**
   * Restores a state saved from an optimiser over variables of the same shapes; the tensors are
   * copied, not taken over.
   *
   * @example
   * ```ts
   * import * as tf from "@tensorflow/tfjs";
   * import { AdamWOptimizer } from "./optimizer.ts";
   *
   * const a = new AdamWOptimizer([tf.variable(tf.zeros([2]))]);
   * a.step([tf.ones([2])], 0.1);
   * const b = new AdamWOptimizer([tf.variable(tf.zeros([2]))]);
   * b.loadState(a.state());
   * console.log(b.iterations); // 1
   * ```
   */
  loadState(state: AdamWOptimizerState): void {
    if (!Number.isInteger(state.iterations) || state.iterations < 0) {
      throw new RangeError(`Optimiser step count ${state.iterations} is not an integer >= 0`);
    }
    for (const [which, list] of [["m", state.m], ["v", state.v]] as const) {
      if (list.length !== this.#variables.length) {
        throw new RangeError(
          `Optimiser state has ${list.length} ${which} tensors for ${this.#variables.length} variables`,
        );
      }
      list.forEach((t, i) => {
        const want = this.#variables[i].shape;
        if (t.shape.length !== want.length || t.shape.some((d, j) => d !== want[j])) {
          throw new RangeError(
            `Optimiser ${which}[${i}] has shape [${t.shape}], the variable has [${want}]`,
          );
        }
      });
    }
    this.#t = state.iterations;
    state.m.forEach((t, i) => this.#m[i].assign(t));
    state.v.forEach((t, i) => this.#v[i].assign(t));
  }

  /** Frees the moments (the variables themselves are left alone). */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    tf.dispose(this.#m);
    tf.dispose(this.#v);
  }
}
