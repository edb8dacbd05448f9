/**
 * AdamW (Adam with decoupled weight decay, Loshchilov & Hutter 2019) over `tf.Variable`s, in the
 * float order of PyTorch's `torch.optim.AdamW`, with a state that can be read and restored so
 * that a checkpointed run resumes bit for bit. The one optimiser of the package: heads and
 * diffusion training both use it.
 *
 * ```text
 * p ← p · (1 − lr · wd)
 * m ← β1 · m + (1 − β1) · g
 * v ← β2 · v + (1 − β2) · g²
 * denom = sqrt(v) / sqrt(1 − β2ᵗ) + ε
 * p ← p − (lr / (1 − β1ᵗ)) · m / denom
 * ```
 *
 * `tf.train.adam` folds no decay and `tf.train.*` offers no decoupled variant, hence this class.
 *
 * @example Adam's first step moves every weight by the learning rate against its gradient
 * ```ts
 * import assert from "node:assert/strict";
 * import * as tf from "@tensorflow/tfjs";
 * import { AdamW } from "./adamw.ts";
 *
 * const p = tf.variable(tf.tensor1d([1, -1]));
 * const opt = new AdamW([p], { weightDecay: 0 });
 * const g = tf.tensor1d([0.5, -0.5]);
 * opt.step([g], 0.1);
 * const [a, b] = p.dataSync();
 * assert.ok(Math.abs(a - 0.9) < 1e-6 && Math.abs(b + 0.9) < 1e-6);
 * tf.dispose([g, p]);
 * opt.dispose();
 * ```
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { nonNegativeInteger, show } from "../base/validate.ts";

/** Options of {@linkcode AdamW}. */
export interface AdamWOptions {
  /** First-moment decay, in [0, 1). Default 0.9. */
  beta1?: number;
  /** Second-moment decay, in [0, 1). Default 0.999. */
  beta2?: number;
  /** Added to the denominator for stability, ≥ 0. Default 1e-8. */
  epsilon?: number;
  /** Decoupled weight decay, multiplied by the learning rate at each step. Default 0.01 (PyTorch's). */
  weightDecay?: number;
  /**
   * Which variables are decayed; default all. Heads decay weight matrices only, not biases,
   * normalisation gains, embeddings or tokens.
   */
  decay?: (variable: tf.Variable) => boolean;
}

/** The optimiser's state: the step count and one pair of moments per variable. */
export interface AdamWState {
  /** Steps taken so far. */
  iterations: number;
  /** First moments, in the order of the variables. */
  m: readonly tf.Tensor[];
  /** Second moments, in the order of the variables. */
  v: readonly tf.Tensor[];
}

/** Throws unless `value` is a number in [0, 1). */
function beta(value: number, what: string): number {
  if (typeof value !== "number" || !(value >= 0 && value < 1)) {
    throw new RangeError(`${what} must be a number in [0, 1), got ${show(value)}`);
  }
  return value;
}

/**
 * An AdamW optimiser over an ordered list of variables, holding one pair of moments per
 * variable. The variables are not owned: {@linkcode AdamW.dispose} frees the moments only.
 *
 * @example Only the decay acts when the gradient is zero
 * ```ts
 * import assert from "node:assert/strict";
 * import * as tf from "@tensorflow/tfjs";
 * import { AdamW } from "./adamw.ts";
 *
 * const p = tf.variable(tf.scalar(2));
 * const opt = new AdamW([p], { weightDecay: 0.1 });
 * const g = tf.scalar(0);
 * opt.step([g], 0.5);
 * assert.ok(Math.abs(p.dataSync()[0] - 1.9) < 1e-6); // 2 · (1 − 0.5 · 0.1)
 * assert.equal(opt.iterations, 1);
 * tf.dispose([g, p]);
 * opt.dispose();
 * ```
 */
export class AdamW {
  /** First-moment decay. */
  readonly beta1: number;
  /** Second-moment decay. */
  readonly beta2: number;
  /** Denominator constant. */
  readonly epsilon: number;
  /** Decoupled weight decay. */
  readonly weightDecay: number;
  #variables: tf.Variable[];
  #decayed: boolean[];
  #m: tf.Variable[];
  #v: tf.Variable[];
  #t = 0;
  #disposed = false;

  /** Creates zero moments for `variables`. */
  constructor(variables: readonly tf.Variable[], options: AdamWOptions = {}) {
    this.beta1 = beta(options.beta1 ?? 0.9, "AdamW beta1");
    this.beta2 = beta(options.beta2 ?? 0.999, "AdamW beta2");
    this.epsilon = options.epsilon ?? 1e-8;
    this.weightDecay = options.weightDecay ?? 0.01;
    if (typeof this.epsilon !== "number" || !(this.epsilon >= 0)) {
      throw new RangeError(`AdamW epsilon must be a number >= 0, got ${show(this.epsilon)}`);
    }
    if (!(this.weightDecay >= 0) || !Number.isFinite(this.weightDecay)) {
      throw new RangeError(
        `Weight decay must be a finite number >= 0, got ${show(this.weightDecay)}`,
      );
    }
    this.#variables = [...variables];
    const decay = options.decay ?? (() => true);
    this.#decayed = this.#variables.map((v) => decay(v));
    // Variables are not tracked by tidy, so only the temporary zeros are freed here.
    this.#m = tf.tidy(() => this.#variables.map((v) => tf.variable(tf.zerosLike(v), false)));
    this.#v = tf.tidy(() => this.#variables.map((v) => tf.variable(tf.zerosLike(v), false)));
  }

  /** Steps taken so far. */
  get iterations(): number {
    return this.#t;
  }

  /**
   * Applies one update at `learningRate` with `grads` aligned with the variables. A variable
   * whose gradient is `undefined` is left as it is (its moments do not move).
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import * as tf from "@tensorflow/tfjs";
   * import { AdamW } from "./adamw.ts";
   *
   * const [a, b] = [tf.variable(tf.scalar(1)), tf.variable(tf.scalar(1))];
   * const opt = new AdamW([a, b], { weightDecay: 0 });
   * const g = tf.scalar(-3);
   * opt.step([g, undefined], 0.01);
   * assert.ok(Math.abs(a.dataSync()[0] - 1.01) < 1e-6);
   * assert.equal(b.dataSync()[0], 1);
   * tf.dispose([g, a, b]);
   * opt.dispose();
   * ```
   */
  step(grads: readonly (tf.Tensor | undefined)[], learningRate: number): void {
    if (this.#disposed) throw new TypeError("This AdamW optimiser has been disposed");
    if (grads.length !== this.#variables.length) {
      throw new RangeError(
        `Gradients must be one per variable (${this.#variables.length}), got ${grads.length}`,
      );
    }
    if (!(learningRate >= 0) || !Number.isFinite(learningRate)) {
      throw new RangeError(`Learning rate must be a finite number >= 0, got ${learningRate}`);
    }
    this.#t++;
    const { beta1, beta2, epsilon } = this;
    const stepSize = learningRate / (1 - beta1 ** this.#t);
    const correction2 = Math.sqrt(1 - beta2 ** this.#t);
    const decay = 1 - learningRate * this.weightDecay;
    tf.tidy(() => {
      this.#variables.forEach((p, i) => {
        const g = grads[i];
        if (g === undefined) return;
        const m = tf.add(tf.mul(this.#m[i], beta1), tf.mul(g, 1 - beta1));
        const v = tf.add(tf.mul(this.#v[i], beta2), tf.mul(tf.square(g), 1 - beta2));
        this.#m[i].assign(m);
        this.#v[i].assign(v);
        const decayed = decay === 1 || !this.#decayed[i] ? p : tf.mul(p, decay);
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
   * import assert from "node:assert/strict";
   * import * as tf from "@tensorflow/tfjs";
   * import { AdamW } from "./adamw.ts";
   *
   * const p = tf.variable(tf.zeros([2]));
   * const opt = new AdamW([p]);
   * assert.equal(opt.state().iterations, 0);
   * assert.deepEqual(opt.state().m[0].shape, [2]);
   * opt.dispose();
   * p.dispose();
   * ```
   */
  state(): AdamWState {
    return { iterations: this.#t, m: this.#m, v: this.#v };
  }

  /**
   * Restores a state saved from an optimiser over variables of the same shapes; the tensors are
   * copied, not taken over.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import * as tf from "@tensorflow/tfjs";
   * import { AdamW } from "./adamw.ts";
   *
   * const [p, q, g] = [tf.variable(tf.zeros([2])), tf.variable(tf.zeros([2])), tf.ones([2])];
   * const a = new AdamW([p]);
   * a.step([g], 0.1);
   * const b = new AdamW([q]);
   * b.loadState(a.state());
   * assert.equal(b.iterations, 1);
   * assert.deepEqual(b.state().m[0].dataSync(), a.state().m[0].dataSync());
   * tf.dispose([p, q, g]);
   * a.dispose();
   * b.dispose();
   * ```
   */
  loadState(state: AdamWState): void {
    nonNegativeInteger(state.iterations, "Optimiser step count");
    for (const [which, list] of [["m", state.m], ["v", state.v]] as const) {
      if (list.length !== this.#variables.length) {
        throw new RangeError(
          `Optimiser state ${which} must hold ${this.#variables.length} tensors, got ${list.length}`,
        );
      }
      list.forEach((t, i) => {
        const want = this.#variables[i].shape;
        if (t.shape.length !== want.length || t.shape.some((d, j) => d !== want[j])) {
          throw new RangeError(
            `Optimiser state ${which}[${i}] must have the variable's shape [${want}], got [${t.shape}]`,
          );
        }
      });
    }
    this.#t = state.iterations;
    state.m.forEach((t, i) => this.#m[i].assign(t));
    state.v.forEach((t, i) => this.#v[i].assign(t));
  }

  /** Frees the moments (the variables themselves are left alone). Idempotent. */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    tf.dispose(this.#m);
    tf.dispose(this.#v);
  }
}
