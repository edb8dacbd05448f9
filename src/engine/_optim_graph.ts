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
 * import { adamwScalars } from "./_optim_graph.ts";
 *
 * const s = adamwScalars(1, 0.1, { beta1: 0.9, beta2: 0.999, epsilon: 1e-8, weightDecay: 0 });
 * console.log(s[0], s[1].toFixed(4)); // 1 "1.0000"
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

/** One parameter to update: its value, gradient and whether weight decay applies. */
export interface UpdatedParam {
  /** The current value (a graph input). */
  value: string;
  /** Its gradient in the graph. */
  grad: string;
  /** Whether AdamW's weight decay applies. */
  decay: boolean;
  /** The name of the first-moment input (`<value>.m`) and of the outputs. */
  name: string;
}

/** The graph names of one parameter's optimizer state and outputs. */
export interface ParamSlots {
  /** First-moment input. */
  m: string;
  /** Second-moment input. */
  v: string;
  /** Output names: new value, first and second moments. */
  out: { value: string; m: string; v: string };
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
 * Appends the AdamW update of `params`, reading the step scalars from the graph input `adamw`
 * (declared here); each parameter gets inputs `<name>.m`, `<name>.v` and outputs
 * `<name>:new`, `<name>.m:new`, `<name>.v:new`.
 */
export function appendAdamW(
  g: TrainGraph,
  params: readonly UpdatedParam[],
  hyper: AdamWHyper,
): ParamSlots[] {
  const scalars = g.input("adamw", [3]);
  const [decayFactor, stepSize, bc2Sqrt] = g.split(scalars, 0, [1, 1, 1]);
  const b1 = g.scalar(hyper.beta1), c1 = g.scalar(1 - hyper.beta1);
  const b2 = g.scalar(hyper.beta2), c2 = g.scalar(1 - hyper.beta2);
  const eps = g.scalar(hyper.epsilon);
  return params.map((p) => {
    const shape = g.shape(p.value);
    const m = g.input(`${p.name}.m`, shape), v = g.input(`${p.name}.v`, shape);
    const out = { value: `${p.name}:new`, m: `${p.name}.m:new`, v: `${p.name}.v:new` };
    const decayed = p.decay && hyper.weightDecay > 0 ? g.mul(p.value, decayFactor) : p.value;
    const m1 = g.add(g.mul(m, b1), g.mul(p.grad, c1));
    const v1 = g.add(g.mul(v, b2), g.mul(g.mul(p.grad, p.grad), c2));
    const denom = g.add(g.div(g.unary("Sqrt", v1), bc2Sqrt), eps);
    g.output(g.sub(decayed, g.mul(g.div(m1, denom), stepSize)), out.value);
    g.output(m1, out.m);
    g.output(v1, out.v);
    return { m, v, out };
  });
}
