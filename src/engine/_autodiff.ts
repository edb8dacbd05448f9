/**
 * A small reverse-mode automatic differentiation over an ONNX node list, in TypeScript.
 *
 * {@linkcode TrainGraph} records ONNX nodes with the static shape of every value (training
 * graphs are built for one batch size); {@linkcode TrainGraph.backward} walks the nodes that lie
 * between the parameters and a scalar loss in reverse and appends, for each, the ONNX nodes of
 * its gradient rule. Broadcasting in element-wise ops is undone by a `ReduceSum` over the
 * broadcast axes. The result is one plain ONNX graph (forward, backward and whatever the caller
 * appends, e.g. clipping and the AdamW update of `_optim_graph.ts`) that any execution provider
 * runs. Internal to `src/engine/`.
 *
 * @example d(sum(x · w))/dw = x
 * ```ts
 * import assert from "node:assert/strict";
 * import { TrainGraph } from "./_autodiff.ts";
 *
 * const g = new TrainGraph();
 * const x = g.input("x", [2, 3]);
 * const w = g.input("w", [3, 1]);
 * const loss = g.reduceSum(g.matmul(x, w), [0, 1], false);
 * const grads = g.backward(loss, [w]);
 * assert.deepEqual(g.shape(grads.get(w)!), [3, 1]);
 * ```
 *
 * @module
 */

import type { Attr, OpSink } from "./_graph_builder.ts";
export type { Attr };

/** One recorded ONNX node. */
export interface IRNode {
  /** ONNX operator type. */
  op: string;
  /** Input value names ("" for an omitted optional input). */
  inputs: string[];
  /** Output value names. */
  outputs: string[];
  /** Attributes. */
  attrs: Record<string, Attr>;
  /** A gradient rule of the composite this node ends, used instead of the op's own. */
  rule?: GradRule;
}

/** A constant tensor of the graph. */
export interface IRConstant {
  /** Dimensions. */
  dims: number[];
  /** float32 or int64 data. */
  data: Float32Array | BigInt64Array;
}

type GradRule = (
  g: TrainGraph,
  node: IRNode,
  dys: (string | null)[],
  wants: boolean[],
) => (string | null)[];

const size = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);

/** The broadcast shape of `a` and `b` (numpy rules); throws on a mismatch. */
export function broadcastShape(a: readonly number[], b: readonly number[]): number[] {
  const rank = Math.max(a.length, b.length);
  const out: number[] = [];
  for (let i = 0; i < rank; i++) {
    const x = a[a.length - rank + i] ?? 1, y = b[b.length - rank + i] ?? 1;
    if (x !== y && x !== 1 && y !== 1) throw new RangeError(`Cannot broadcast [${a}] with [${b}]`);
    out.push(x === 1 ? y : x);
  }
  return out;
}

/** Records ONNX nodes with static shapes and derives gradients. */
export class TrainGraph implements OpSink {
  /** Nodes in execution order. */
  readonly nodes: IRNode[] = [];
  /** Graph inputs in order. */
  readonly inputs: string[] = [];
  /** Constant tensors (initializers) by name. */
  readonly constants = new Map<string, IRConstant>();
  #shapes = new Map<string, number[]>();
  #producer = new Map<string, IRNode>();
  #count = 0;
  #shared = new Map<string, string>();

  /** The static shape of a value. */
  shape(name: string): number[] {
    const s = this.#shapes.get(name);
    if (!s) throw new Error(`Unknown value "${name}"`);
    return s;
  }

  /** A fresh value name. */
  fresh(hint: string): string {
    return `${hint}:${this.#count++}`;
  }

  /** Declares a float32 graph input. */
  input(name: string, shape: readonly number[]): string {
    this.#shapes.set(name, [...shape]);
    this.inputs.push(name);
    return name;
  }

  /** Declares a float32 constant (initializer). */
  constant(name: string, shape: readonly number[], data: Float32Array): string {
    if (data.length !== size(shape)) {
      throw new RangeError(`Constant "${name}" has ${data.length} values for shape [${shape}]`);
    }
    this.#shapes.set(name, [...shape]);
    this.constants.set(name, { dims: [...shape], data });
    return name;
  }

  /** A float32 scalar constant shared by value (shape `[]`). */
  scalar(value: number): string {
    const key = `f:${Math.fround(value)}`;
    let name = this.#shared.get(key);
    if (!name) {
      name = this.constant(`const:${key}`, [], new Float32Array([value]));
      this.#shared.set(key, name);
    }
    return name;
  }

  /** An int64 vector constant shared by value. */
  ints(values: readonly number[]): string {
    const key = `i:${values.join(",")}`;
    let name = this.#shared.get(key);
    if (!name) {
      name = `const:${key}`;
      this.#shapes.set(name, [values.length]);
      this.constants.set(name, {
        dims: [values.length],
        data: BigInt64Array.from(values, (v) => BigInt(v)),
      });
      this.#shared.set(key, name);
    }
    return name;
  }

  /** Records a node whose output shapes are given; returns its output names. */
  node(
    op: string,
    inputs: string[],
    shapes: number[][],
    attrs: Record<string, Attr> = {},
    names?: string[],
  ): string[] {
    const outputs = names ?? shapes.map(() => this.fresh(op));
    const node: IRNode = { op, inputs, outputs, attrs };
    outputs.forEach((o, i) => {
      this.#shapes.set(o, [...shapes[i]]);
      this.#producer.set(o, node);
    });
    this.nodes.push(node);
    return outputs;
  }

  /** Records a one-output node. */
  op(op: string, inputs: string[], shape: number[], attrs: Record<string, Attr> = {}): string {
    return this.node(op, inputs, [shape], attrs)[0];
  }

  /** Renames a value: an `Identity` node writing `name`. */
  output(value: string, name: string): string {
    return this.node("Identity", [value], [this.shape(value)], {}, [name])[0];
  }

  // --- element-wise ---
  #binary(op: string, a: string, b: string): string {
    return this.op(op, [a, b], broadcastShape(this.shape(a), this.shape(b)));
  }
  /** `a + b` (broadcasting). */
  add(a: string, b: string): string {
    return this.#binary("Add", a, b);
  }
  /** `a − b` (broadcasting). */
  sub(a: string, b: string): string {
    return this.#binary("Sub", a, b);
  }
  /** `a · b` (broadcasting). */
  mul(a: string, b: string): string {
    return this.#binary("Mul", a, b);
  }
  /** `a / b` (broadcasting). */
  div(a: string, b: string): string {
    return this.#binary("Div", a, b);
  }
  /** A one-input element-wise op (`Neg`, `Exp`, `Sqrt`, `Sigmoid`, `Relu`, `Erf`, …). */
  unary(op: string, x: string): string {
    return this.op(op, [x], this.shape(x));
  }
  /** `x · sigmoid(x)`. */
  silu(x: string): string {
    const s = this.unary("Sigmoid", x);
    const y = this.mul(x, s);
    // dx = dy · s · (1 + x · (1 − s)): five element-wise ops instead of six.
    this.#producer.get(y)!.rule = (g, _n, [dy]) => {
      const inner = g.add(g.scalar(1), g.mul(x, g.sub(g.scalar(1), s)));
      return [g.mul(dy!, g.mul(s, inner)), null];
    };
    return y;
  }
  /** The exact GELU `x · (1 + erf(x / √2)) / 2`. */
  gelu(x: string): string {
    const u = this.mul(x, this.scalar(Math.SQRT1_2));
    const cdf = this.mul(this.add(this.unary("Erf", u), this.scalar(1)), this.scalar(0.5));
    const y = this.mul(x, cdf);
    // dx = dy · (Φ(x) + x · φ(x)), φ(x) = exp(−u²) / √(2π): seven ops instead of ten.
    this.#producer.get(y)!.rule = (g, _n, [dy]) => {
      const pdf = g.unary("Exp", g.unary("Neg", g.mul(u, u)));
      const slope = g.add(cdf, g.mul(g.mul(x, pdf), g.scalar(1 / Math.sqrt(2 * Math.PI))));
      return [g.mul(dy!, slope), null];
    };
    return y;
  }

  // --- shape ops ---
  /**
   * Reshape to `dims` (ONNX: 0 copies the input's dim, −1 is inferred), recorded static.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { TrainGraph } from "./_autodiff.ts";
   *
   * const g = new TrainGraph();
   * const x = g.input("x", [2, 3, 4]);
   * assert.deepEqual(g.shape(g.reshape(x, [0, -1])), [2, 12]);
   * assert.deepEqual(g.shape(g.reshape(x, [0, 3, 2, 2])), [2, 3, 2, 2]);
   * assert.throws(() => g.reshape(x, [5, -1]), RangeError);
   * ```
   */
  reshape(x: string, dims: readonly number[]): string {
    const from = this.shape(x);
    const shape = dims.map((d, i) => (d === 0 ? from[i] : d));
    const rest = shape.indexOf(-1);
    if (rest >= 0) shape[rest] = size(from) / -size(shape);
    if (size(shape) !== size(from) || !shape.every(Number.isInteger)) {
      throw new RangeError(`Cannot reshape [${from}] to [${dims}]`);
    }
    return this.op("Reshape", [x, this.ints(shape)], shape);
  }
  /** Transpose by `perm`. */
  transpose(x: string, perm: readonly number[]): string {
    const s = this.shape(x);
    return this.op("Transpose", [x], perm.map((p) => s[p]), { perm: [...perm] });
  }
  /** Concatenation along `axis`. */
  concat(xs: string[], axis: number): string {
    const shape = [...this.shape(xs[0])];
    const a = axis < 0 ? axis + shape.length : axis;
    shape[a] = xs.reduce((n, x) => n + this.shape(x)[a], 0);
    return this.op("Concat", xs, shape, { axis: a });
  }
  /** Splits along `axis` into parts of the given sizes. */
  split(x: string, axis: number, sizes: readonly number[]): string[] {
    const s = this.shape(x);
    const a = axis < 0 ? axis + s.length : axis;
    return this.node(
      "Split",
      [x, this.ints(sizes)],
      sizes.map((n) => s.map((d, i) => (i === a ? n : d))),
      { axis: a },
    );
  }
  /** `x[starts:ends]` along `axes` (step 1). */
  slice(x: string, starts: number[], ends: number[], axes: number[], steps?: number[]): string {
    const shape = [...this.shape(x)];
    axes.forEach((a, i) => (shape[a] = Math.ceil((ends[i] - starts[i]) / (steps?.[i] ?? 1))));
    const inputs = [x, this.ints(starts), this.ints(ends), this.ints(axes)];
    if (steps) inputs.push(this.ints(steps));
    return this.op("Slice", inputs, shape);
  }
  /** Broadcast to `shape`. */
  expand(x: string, shape: readonly number[]): string {
    return this.op("Expand", [x, this.ints(shape)], broadcastShape(this.shape(x), shape));
  }

  // --- reductions ---
  #reduced(x: string, axes: readonly number[], keep: boolean): { axes: number[]; shape: number[] } {
    const s = this.shape(x);
    const norm = axes.map((a) => (a < 0 ? a + s.length : a));
    const shape = keep
      ? s.map((d, i) => (norm.includes(i) ? 1 : d))
      : s.filter((_, i) => !norm.includes(i));
    return { axes: norm, shape };
  }
  /** Sum over `axes`. */
  reduceSum(x: string, axes: readonly number[], keep: boolean): string {
    const r = this.#reduced(x, axes, keep);
    return this.op("ReduceSum", [x, this.ints(r.axes)], r.shape, { keepdims: keep ? 1 : 0 });
  }
  /** Mean over `axes`. */
  reduceMean(x: string, axes: readonly number[], keep: boolean): string {
    const r = this.#reduced(x, axes, keep);
    return this.op("ReduceMean", [x], r.shape, { axes: r.axes, keepdims: keep ? 1 : 0 });
  }

  // --- linear algebra ---
  /**
   * Matrix product `a · b`: equal ranks with equal batch axes, or `b` a `[K, N]` matrix applied
   * to the last axis of `a`.
   */
  matmul(a: string, b: string): string {
    const sa = this.shape(a), sb = this.shape(b);
    const k = sa[sa.length - 1];
    if (sb[sb.length - 2] !== k || (sb.length !== 2 && sb.length !== sa.length)) {
      throw new RangeError(`Cannot multiply [${sa}] by [${sb}]`);
    }
    return this.op("MatMul", [a, b], [...sa.slice(0, -1), sb[sb.length - 1]]);
  }

  /** `a · b + c` as `MatMul` then `Add` (whose gradient rules exist). */
  gemm(a: string, b: string, c: string): string {
    return this.add(this.matmul(a, b), c);
  }
  /** A 2-D NCHW convolution with an OIHW kernel (group 1, no dilation). */
  conv(x: string, kernel: string, bias: string, pads: number[], strides: number[]): string {
    const [n, ci, h, w] = this.shape(x);
    const [co, ki, kh, kw] = this.shape(kernel);
    if (ci !== ki) {
      throw new RangeError(`Convolution of ${ci} channels with a ${ki}-channel kernel`);
    }
    const ho = Math.floor((h + pads[0] + pads[2] - kh) / strides[0]) + 1;
    const wo = Math.floor((w + pads[1] + pads[3] - kw) / strides[1]) + 1;
    return this.op("Conv", [x, kernel, bias], [n, co, ho, wo], {
      kernel_shape: [kh, kw],
      pads,
      strides,
    });
  }
  /** Rows of `[N, G, M]` normalised: `LayerNormalization` over the last axis, unit gain. */
  normalizeRows(x: string, _groups: number, epsilon: number): string {
    const m = this.shape(x)[2];
    const ones = this.constant(`const:ones:${m}`, [m], new Float32Array(m).fill(1));
    const zeros = this.constant(`const:zeros:${m}`, [m], new Float32Array(m));
    return this.layerNorm(x, ones, zeros, epsilon);
  }
  /** Nearest-neighbour upsampling of NCHW `x` as `Reshape`, `Expand`, `Reshape`. */
  upsampleNearest(x: string, factors: readonly number[], _hint: string): string {
    const [n, c, h, w] = this.shape(x);
    const [fh, fw] = factors;
    const wide = this.expand(this.reshape(x, [n, c, h, 1, w, 1]), [n, c, h, fh, w, fw]);
    return this.reshape(wide, [n, c, h * fh, w * fw]);
  }

  // --- fused ops with their own gradient rules ---
  /** Softmax over the last axis. */
  softmax(x: string): string {
    return this.op("Softmax", [x], this.shape(x), { axis: -1 });
  }
  /** Log-softmax over the last axis. */
  logSoftmax(x: string): string {
    return this.op("LogSoftmax", [x], this.shape(x), { axis: -1 });
  }
  /** LayerNorm over the last axis with gain and shift (`LayerNormalization`, opset 17). */
  layerNorm(x: string, gamma: string, beta: string, epsilon: number): string {
    const s = this.shape(x);
    const stat = [...s.slice(0, -1), 1];
    return this.node("LayerNormalization", [x, gamma, beta], [s, stat, stat], {
      axis: -1,
      epsilon: { float: epsilon },
    })[0];
  }

  /** The producer of a value, if any. */
  producer(name: string): IRNode | undefined {
    return this.#producer.get(name);
  }

  /**
   * Sums `dy` (shaped like the broadcast result) down to `shape`: a `ReduceSum` over the axes
   * that were broadcast, then a `Reshape` when leading axes were added.
   */
  unbroadcast(dy: string, shape: readonly number[]): string {
    const sd = this.shape(dy);
    if (sd.join() === shape.join()) return dy;
    const lead = sd.length - shape.length;
    const axes: number[] = [];
    sd.forEach((d, i) => {
      if (i < lead || (shape[i - lead] === 1 && d !== 1)) axes.push(i);
    });
    const summed = axes.length > 0 ? this.reduceSum(dy, axes, true) : dy;
    return this.shape(summed).join() === shape.join() ? summed : this.reshape(summed, shape);
  }

  /** The static shape of each of `names`, by name. */
  shapes(names: readonly string[]): Map<string, number[]> {
    return new Map(names.map((name) => [name, this.shape(name)]));
  }

  /** {@linkcode TrainGraph.backward}'s gradients as a list in `wrt`'s order. */
  gradients(loss: string, wrt: readonly string[]): string[] {
    const grads = this.backward(loss, wrt);
    return wrt.map((w) => grads.get(w)!);
  }

  /**
   * Appends the backward pass of the scalar `loss` (seeded with 1) and returns the gradient of
   * every value in `wrt` (a zero constant where the loss does not depend on it).
   */
  backward(loss: string, wrt: readonly string[]): Map<string, string> {
    if (size(this.shape(loss)) !== 1) throw new RangeError(`Loss must be a scalar`);
    // Which values depend on a parameter.
    const needs = new Set<string>(wrt);
    const forward = [...this.nodes];
    for (const n of forward) {
      if (n.inputs.some((i) => needs.has(i))) n.outputs.forEach((o) => needs.add(o));
    }
    const grads = new Map<string, string[]>();
    const accumulate = (name: string, g: string) => {
      const list = grads.get(name);
      if (list) list.push(g);
      else grads.set(name, [g]);
    };
    const total = (name: string): string | null => {
      const list = grads.get(name);
      if (!list) return null;
      if (list.length > 1) grads.set(name, [this.op("Sum", list, this.shape(name))]);
      return grads.get(name)![0];
    };
    accumulate(loss, this.constant(this.fresh("seed"), this.shape(loss), new Float32Array([1])));
    for (let i = forward.length - 1; i >= 0; i--) {
      const n = forward[i];
      if (!n.outputs.some((o) => needs.has(o)) || !n.inputs.some((x) => needs.has(x))) continue;
      const dys = n.outputs.map(total);
      if (dys.every((d) => d === null)) continue;
      const rule = n.rule ?? RULES[n.op];
      if (!rule) throw new Error(`No gradient rule for ONNX op ${n.op}`);
      const dxs = rule(this, n, dys, n.inputs.map((input) => needs.has(input)));
      n.inputs.forEach((input, j) => {
        const dx = dxs[j];
        if (dx && needs.has(input)) accumulate(input, dx);
      });
    }
    const out = new Map<string, string>();
    for (const w of wrt) {
      out.set(
        w,
        total(w) ??
          this.constant(this.fresh("zero"), this.shape(w), new Float32Array(size(this.shape(w)))),
      );
    }
    return out;
  }
}

/** Swaps the last two axes. */
function swapLast(g: TrainGraph, x: string): string {
  const r = g.shape(x).length;
  const perm = Array.from({ length: r }, (_, i) => i);
  [perm[r - 2], perm[r - 1]] = [perm[r - 1], perm[r - 2]];
  return g.transpose(x, perm);
}

const RULES: Record<string, GradRule> = {
  Identity: (_g, _n, [dy]) => [dy],
  Add: (g, n, [dy]) => n.inputs.map((x) => g.unbroadcast(dy!, g.shape(x))),
  Sub: (g, n, [dy]) => [
    g.unbroadcast(dy!, g.shape(n.inputs[0])),
    g.unbroadcast(g.unary("Neg", dy!), g.shape(n.inputs[1])),
  ],
  Sum: (g, n, [dy]) => n.inputs.map((x) => g.unbroadcast(dy!, g.shape(x))),
  Mul: (g, n, [dy], wants) => {
    const [a, b] = n.inputs;
    if (a === b) return [g.mul(dy!, g.mul(a, g.scalar(2))), null];
    return [
      wants[0] ? g.unbroadcast(g.mul(dy!, b), g.shape(a)) : null,
      wants[1] ? g.unbroadcast(g.mul(dy!, a), g.shape(b)) : null,
    ];
  },
  Div: (g, n, [dy]) => {
    const [a, b] = n.inputs;
    const y = n.outputs[0];
    return [
      g.unbroadcast(g.div(dy!, b), g.shape(a)),
      g.unbroadcast(g.unary("Neg", g.div(g.mul(dy!, y), b)), g.shape(b)),
    ];
  },
  Neg: (g, _n, [dy]) => [g.unary("Neg", dy!)],
  Exp: (g, n, [dy]) => [g.mul(dy!, n.outputs[0])],
  Sqrt: (g, n, [dy]) => [g.div(g.mul(dy!, g.scalar(0.5)), n.outputs[0])],
  Sigmoid: (g, n, [dy]) => {
    const y = n.outputs[0];
    return [g.mul(dy!, g.mul(y, g.sub(g.scalar(1), y)))];
  },
  Relu: (g, n, [dy]) => {
    const positive = g.op("Greater", [n.inputs[0], g.scalar(0)], g.shape(n.inputs[0]));
    return [g.op("Where", [positive, dy!, g.scalar(0)], g.shape(dy!))];
  },
  Erf: (g, n, [dy]) => {
    const x = n.inputs[0];
    const pdf = g.unary("Exp", g.unary("Neg", g.mul(x, x)));
    return [g.mul(dy!, g.mul(pdf, g.scalar(2 / Math.sqrt(Math.PI))))];
  },
  Reshape: (g, n, [dy]) => [g.reshape(dy!, g.shape(n.inputs[0])), null],
  Transpose: (g, n, [dy]) => {
    const perm = n.attrs.perm as number[];
    const inverse = perm.map((_, i) => perm.indexOf(i));
    return [g.transpose(dy!, inverse)];
  },
  Expand: (g, n, [dy]) => [g.unbroadcast(dy!, g.shape(n.inputs[0])), null],
  Concat: (g, n, [dy]) => {
    const axis = n.attrs.axis as number;
    return g.split(dy!, axis, n.inputs.map((x) => g.shape(x)[axis]));
  },
  Split: (g, n, dys) => {
    const parts = dys.map((d, i) =>
      d ??
        g.constant(
          g.fresh("zero"),
          g.shape(n.outputs[i]),
          new Float32Array(size(g.shape(n.outputs[i]))),
        )
    );
    return [g.concat(parts, n.attrs.axis as number), null];
  },
  Slice: (g, n, [dy]) => {
    if (n.inputs.length > 4) throw new Error("No gradient rule for a strided Slice");
    const s = g.shape(n.inputs[0]);
    const starts = [...g.constants.get(n.inputs[1])!.data as BigInt64Array].map(Number);
    const axes = [...g.constants.get(n.inputs[3])!.data as BigInt64Array].map(Number);
    const out = g.shape(n.outputs[0]);
    const pads = new Array(2 * s.length).fill(0);
    axes.forEach((a, i) => {
      pads[a] = starts[i];
      pads[s.length + a] = s[a] - starts[i] - out[a];
    });
    return [g.op("Pad", [dy!, g.ints(pads)], s), null, null, null];
  },
  ReduceSum: (g, n, [dy]) => {
    const s = g.shape(n.inputs[0]);
    const axes = [...g.constants.get(n.inputs[1])!.data as BigInt64Array].map(Number);
    const kept = n.attrs.keepdims === 0
      ? g.reshape(dy!, s.map((d, i) => (axes.includes(i) ? 1 : d)))
      : dy!;
    return [g.expand(kept, s), null];
  },
  ReduceMean: (g, n, [dy]) => {
    const s = g.shape(n.inputs[0]);
    const axes = n.attrs.axes as number[];
    const count = axes.reduce((c, a) => c * s[a], 1);
    const kept = n.attrs.keepdims === 0
      ? g.reshape(dy!, s.map((d, i) => (axes.includes(i) ? 1 : d)))
      : dy!;
    return [g.expand(g.mul(kept, g.scalar(1 / count)), s)];
  },
  MatMul: (g, n, [dy], wants) => {
    const [a, b] = n.inputs;
    const sa = g.shape(a), sb = g.shape(b);
    const da = wants[0] ? g.matmul(dy!, swapLast(g, b)) : null;
    let db: string | null = null;
    if (!wants[1]) db = null;
    else if (sb.length === 2 && sa.length > 2) {
      // A matrix applied to every row: one [K, rows] · [rows, N] product.
      const k = sa[sa.length - 1], cols = sb[1];
      const rows = size(sa) / k;
      db = g.op("Gemm", [g.reshape(a, [rows, k]), g.reshape(dy!, [rows, cols])], [k, cols], {
        transA: 1,
      });
    } else db = g.matmul(swapLast(g, a), dy!);
    return [da, db];
  },
  Conv: (g, n, [dy], wants) => convGrad(g, n, dy!, wants),
  Softmax: (g, n, [dy]) => {
    const y = n.outputs[0];
    return [g.mul(y, g.sub(dy!, g.reduceSum(g.mul(dy!, y), [-1], true)))];
  },
  LogSoftmax: (g, n, [dy]) => {
    const p = g.unary("Exp", n.outputs[0]);
    return [g.sub(dy!, g.mul(p, g.reduceSum(dy!, [-1], true)))];
  },
  LayerNormalization: (g, n, [dy], wants) => {
    const [x, gamma] = n.inputs;
    const [, mean, invStd] = n.outputs;
    const s = g.shape(x);
    const lead = Array.from({ length: s.length - 1 }, (_, i) => i);
    const xhat = g.mul(g.sub(x, mean), invStd);
    const dGamma = wants[1] ? g.reduceSum(g.mul(dy!, xhat), lead, false) : null;
    const dBeta = wants[2] ? g.reduceSum(dy!, lead, false) : null;
    const dxhat = g.mul(dy!, gamma);
    const dx = g.mul(
      invStd,
      g.sub(
        g.sub(dxhat, g.reduceMean(dxhat, [-1], true)),
        g.mul(xhat, g.reduceMean(g.mul(dxhat, xhat), [-1], true)),
      ),
    );
    return [dx, dGamma, dBeta];
  },
};

let convWeightMethod: ConvWeightGradMethod = "taps";

/** How kernel gradients are lowered (see {@linkcode setConvWeightGradMethod}). */
export type ConvWeightGradMethod = "taps" | "im2col" | "conv";

/**
 * Chooses how the gradient of a convolution kernel is lowered: `"taps"` (default) slices the
 * padded input once per kernel tap (with the strides) and multiplies each slice with `dy` per
 * sample (a batched MatMul, summed over the batch); `"im2col"` stacks those slices into one patch
 * tensor and does one batched MatMul; `"conv"` convolves the batch-transposed input with the
 * batch-transposed `dy`. Returns the previous method. For benchmarks and tests.
 */
export function setConvWeightGradMethod(method: ConvWeightGradMethod): ConvWeightGradMethod {
  const previous = convWeightMethod;
  convWeightMethod = method;
  return previous;
}

/**
 * A convolution's input `x` (`[batch, ci, h, wd]`), output gradient `dy` (`[batch, co, ho, wo]`),
 * kernel size, pads and strides: what the kernel-gradient lowerings read.
 */
interface ConvDims {
  x: string;
  dy: string;
  batch: number;
  ci: number;
  h: number;
  wd: number;
  co: number;
  ho: number;
  wo: number;
  kh: number;
  kw: number;
  pads: number[];
  strides: number[];
}

/** dW as a convolution of `[Ci, N, H, W]` with `[Co, N, Ho, Wo]` dilated by the strides. */
function convWeightGradByConv(g: TrainGraph, c: ConvDims): string {
  const { x, dy, ci, h, wd, co, ho, wo, kh, kw, pads, strides } = c;
  const full = [
    h + pads[0] + pads[2] - strides[0] * (ho - 1),
    wd + pads[1] + pads[3] - strides[1] * (wo - 1),
  ];
  let dw = g.op("Conv", [g.transpose(x, [1, 0, 2, 3]), g.transpose(dy, [1, 0, 2, 3])], [
    ci,
    co,
    full[0],
    full[1],
  ], { kernel_shape: [ho, wo], pads, dilations: strides, strides: [1, 1] });
  if (full[0] !== kh || full[1] !== kw) dw = g.slice(dw, [0, 0], [kh, kw], [2, 3]);
  return g.transpose(dw, [1, 0, 2, 3]);
}

/**
 * dW[o, i, a, b] = Σ_n Σ_l dy[n, o, l] · patch_ab[n, i, l], where patch_ab is the padded input
 * sliced from (a, b) with the strides: the patches stacked as `[N, Ci · kh · kw, L]`, one
 * batched MatMul with `dy` `[N, Co, L]` (transposed operand fused by onnxruntime), summed over N.
 */
function im2colWeightGrad(g: TrainGraph, c: ConvDims): string {
  const { x, dy, batch, ci, h, wd, co, ho, wo, kh, kw, pads, strides } = c;
  const length = ho * wo;
  let patches: string;
  if (kh === 1 && kw === 1 && pads.every((p) => p === 0) && strides.every((s) => s === 1)) {
    patches = g.reshape(x, [batch, ci, length]);
  } else {
    const padded = pads.some((p) => p !== 0)
      ? g.op("Pad", [x, g.ints([0, 0, pads[0], pads[1], 0, 0, pads[2], pads[3]])], [
        batch,
        ci,
        h + pads[0] + pads[2],
        wd + pads[1] + pads[3],
      ])
      : x;
    const taps: string[] = [];
    const dy3 = g.reshape(dy, [batch, co, length]);
    for (let a = 0; a < kh; a++) {
      for (let b = 0; b < kw; b++) {
        const tap = g.slice(
          padded,
          [a, b],
          [a + strides[0] * (ho - 1) + 1, b + strides[1] * (wo - 1) + 1],
          [2, 3],
          strides,
        );
        if (convWeightMethod === "taps") {
          // One batched product per tap, summed over the batch: no stacked patch tensor.
          const perTap = g.matmul(dy3, swapLast(g, g.reshape(tap, [batch, ci, length])));
          taps.push(g.reshape(g.reduceSum(perTap, [0], false), [co, ci, 1]));
        } else taps.push(g.reshape(tap, [batch, ci, 1, length]));
      }
    }
    if (convWeightMethod === "taps") {
      return g.reshape(taps.length === 1 ? taps[0] : g.concat(taps, 2), [co, ci, kh, kw]);
    }
    const stacked = taps.length === 1 ? taps[0] : g.concat(taps, 2);
    patches = g.reshape(stacked, [batch, ci * kh * kw, length]);
  }
  const perSample = g.matmul(g.reshape(dy, [batch, co, length]), swapLast(g, patches));
  return g.reshape(g.reduceSum(perSample, [0], false), [co, ci, kh, kw]);
}

/**
 * Gradients of a 2-D `Conv` (group 1, dilation 1) in NCHW: the bias gradient sums `dy`; the
 * input gradient is a `ConvTranspose` of `dy` with the same kernel, strides and pads (an output
 * padding restores rows a strided convolution dropped); the kernel gradient is a convolution of
 * the batch-transposed input (`[Ci, N, H, W]`) with the batch-transposed `dy` (`[Co, N, Ho, Wo]`)
 * as kernel, dilated by the forward strides, cut to the kernel size and transposed to OIHW.
 */
function convGrad(g: TrainGraph, n: IRNode, dy: string, wants: boolean[]): (string | null)[] {
  const [x, w] = n.inputs;
  const [batch, ci, h, wd] = g.shape(x);
  const [, , kh, kw] = g.shape(w);
  const [, co, ho, wo] = g.shape(dy);
  const pads = (n.attrs.pads as number[] | undefined) ?? [0, 0, 0, 0];
  const strides = (n.attrs.strides as number[] | undefined) ?? [1, 1];
  const out: (string | null)[] = [null, null, null];
  if (wants[0]) {
    const extra = [
      h - (strides[0] * (ho - 1) + kh - pads[0] - pads[2]),
      wd - (strides[1] * (wo - 1) + kw - pads[1] - pads[3]),
    ];
    out[0] = g.op("ConvTranspose", [dy, w], [batch, ci, h, wd], {
      kernel_shape: [kh, kw],
      pads,
      strides,
      output_padding: extra,
    });
  }
  if (wants[1]) {
    const dims = { x, dy, batch, ci, h, wd, co, ho, wo, kh, kw, pads, strides };
    out[1] = convWeightMethod !== "conv"
      ? im2colWeightGrad(g, dims)
      : convWeightGradByConv(g, dims);
  }
  if (n.inputs.length > 2 && wants[2]) out[2] = g.reduceSum(dy, [0, 2, 3], false);
  return out;
}
