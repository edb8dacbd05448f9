/**
 * Gradient clipping to a global norm and the AdamW update as graph nodes, appended to a
 * {@linkcode TrainGraph} after its backward pass. Internal to `src/engine/`.
 *
 * The AdamW update follows `torch.optim.AdamW` (single-tensor path) in its float order:
 *
 * ```text
 * p ← p · (1 − lr · wd)
 * m ← β1 · m + (1 − β1) · g
 * v ← β2 · v + (1 − β2) · g²
 * p ← p − (lr / (1 − β1ᵗ)) · m / (sqrt(v) / sqrt(1 − β2ᵗ) + ε)
 * ```
 *
 * The three step-dependent scalars `1 − lr · wd`, `lr / (1 − β1ᵗ)` and `sqrt(1 − β2ᵗ)` are
 * computed in float64 in JavaScript, as PyTorch computes them in Python, and fed as the one
 * graph input `adamw` (`[3]`) each step ({@linkcode adamwScalars}), so that the learning-rate
 * schedule stays in JavaScript and one session serves every step.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { adamwScalars } from "./_optim_graph.ts";
 *
 * const s = adamwScalars(1, 0.1, { beta1: 0.9, beta2: 0.999, epsilon: 1e-8, weightDecay: 0 });
 * assert.equal(s[0], 1);
 * assert.equal(s[1].toFixed(4), "1.0000");
 * ```
 *
 * @module
 */
import type { TrainGraph } from "./_autodiff.ts";

/** AdamW's hyper-parameters. */
export interface AdamWHyper {
  /** First-moment decay. */
  beta1: number;
  /** Second-moment decay. */
  beta2: number;
  /** Added to the denominator. */
  epsilon: number;
  /** Decoupled weight decay (applied to the parameters marked `decay`). */
  weightDecay: number;
}

/** The graph names of the flat optimizer state and outputs. */
export interface FlatSlots {
  /** First-moment input `m` (`[P]`). */
  m: string;
  /** Second-moment input `v` (`[P]`). */
  v: string;
  /** Outputs: `params:new`, `m:new`, `v:new`. */
  out: { value: string; m: string; v: string };
}

/**
 * Declares the flat parameter input `params` (`[P]`, the weights one after the other, row-major)
 * and returns it with one value per weight (a `Slice` reshaped to the weight's shape); take
 * gradients with respect to those values and concatenate them with {@linkcode flatGradient}.
 */
export function flatParams(
  g: TrainGraph,
  weights: readonly { name: string; shape: readonly number[] }[],
): { flat: string; values: string[]; size: number } {
  const sizes = weights.map((w) => w.shape.reduce((a, b) => a * b, 1));
  const size = sizes.reduce((a, b) => a + b, 0);
  const flat = g.input("params", [size]);
  let offset = 0;
  const values = weights.map((w, i) => {
    const part = g.slice(flat, [offset], [offset + sizes[i]], [0]);
    offset += sizes[i];
    return g.reshape(part, w.shape);
  });
  return { flat, values, size };
}

/** The gradients of {@linkcode flatParams}' values as one `[P]` vector. */
export function flatGradient(g: TrainGraph, grads: readonly string[]): string {
  const parts = grads.map((d) => g.reshape(d, [g.shape(d).reduce((a, b) => a * b, 1)]));
  return parts.length === 1 ? parts[0] : g.concat(parts, 0);
}

/**
 * The `adamw` input of step `t` (1-based): `[1 − lr · wd, lr / (1 − β1ᵗ), sqrt(1 − β2ᵗ)]`.
 */
export function adamwScalars(t: number, lr: number, hyper: AdamWHyper): Float32Array {
  return new Float32Array([
    1 - lr * hyper.weightDecay,
    lr / (1 - hyper.beta1 ** t),
    Math.sqrt(1 - hyper.beta2 ** t),
  ]);
}

/**
 * Scales `grads` to a global L2 norm of at most `maxNorm` as `torch.nn.utils.clip_grad_norm_`
 * does (`· min(1, maxNorm / (norm + 1e-6))`); returns the scaled gradients and the norm before
 * clipping. `maxNorm` of `Infinity` (or 0) only measures the norm.
 */
export function clipByGlobalNorm(
  g: TrainGraph,
  grads: readonly string[],
  maxNorm: number,
): { grads: string[]; norm: string } {
  const squares = grads.map((d) => g.op("ReduceSumSquare", [d], [], { keepdims: 0 }));
  const norm = g.unary("Sqrt", squares.length === 1 ? squares[0] : g.op("Sum", squares, []));
  if (!(maxNorm > 0 && Number.isFinite(maxNorm))) return { grads: [...grads], norm };
  const scale = g.op("Min", [
    g.div(g.scalar(maxNorm), g.add(norm, g.scalar(1e-6))),
    g.scalar(1),
  ], []);
  return { grads: grads.map((d) => g.mul(d, scale)), norm };
}

/**
 * Appends the AdamW update of the flat parameters `params` with the flat gradient `grad`,
 * reading the step scalars from the graph input `adamw` (declared here, with the moment inputs
 * `m` and `v`). `decay` marks (1) the entries weight decay applies to; default all. Outputs
 * `params:new`, `m:new`, `v:new`.
 */
export function appendAdamW(
  g: TrainGraph,
  params: string,
  grad: string,
  hyper: AdamWHyper,
  decay?: Float32Array,
): FlatSlots {
  const scalars = g.input("adamw", [3]);
  const [decayFactor, stepSize, bc2Sqrt] = g.split(scalars, 0, [1, 1, 1]);
  const shape = g.shape(params);
  const m = g.input("m", shape), v = g.input("v", shape);
  const out = { value: "params:new", m: "m:new", v: "v:new" };
  let decayed = params;
  if (hyper.weightDecay > 0 && (!decay || decay.some((d) => d !== 0))) {
    // Exact: 1 + mask · (f − 1) is f where mask is 1 (f − 1 is exact for f in [0.5, 1]) and 1
    // where it is 0, so undecayed entries are multiplied by exactly 1.
    const factor = decay && decay.some((d) => d !== 1)
      ? g.add(
        g.scalar(1),
        g.mul(g.constant(g.fresh("decay_mask"), shape, decay), g.sub(decayFactor, g.scalar(1))),
      )
      : decayFactor;
    decayed = g.mul(params, factor);
  }
  const m1 = g.add(g.mul(m, g.scalar(hyper.beta1)), g.mul(grad, g.scalar(1 - hyper.beta1)));
  const v1 = g.add(
    g.mul(v, g.scalar(hyper.beta2)),
    g.mul(g.mul(grad, grad), g.scalar(1 - hyper.beta2)),
  );
  const denom = g.add(g.div(g.unary("Sqrt", v1), bc2Sqrt), g.scalar(hyper.epsilon));
  g.output(g.sub(decayed, g.mul(g.div(m1, denom), stepSize)), out.value);
  g.output(m1, out.m);
  g.output(v1, out.v);
  return { m, v, out };
}
