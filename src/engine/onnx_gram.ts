/**
 * The sums of ridge regression's normal equations on onnxruntime: for row chunks `x` `[m, d]`
 * and `y` `[m, k]`, one graph standardises `z = (x − mean) / std` (float32, as TensorFlow.js
 * does) and gives `zᵀz` (its lower triangle, in row strips: symmetry halves
 * the work), `zᵀy` and the column sums of both in float32 (MLAS GEMM, all cores), and
 * {@linkcode OnnxGram.add} accumulates them across chunks in float64.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { createOnnxGram } from "./onnx_gram.ts";
 * import { onnxRuntimeAvailable } from "./ort.ts";
 *
 * if (await onnxRuntimeAvailable()) {
 *   const gram = await createOnnxGram(2, 1);
 *   await gram.add(new Float32Array([1, 2, 3, 4]), new Float32Array([5, 6]), 2); // rows [1, 2], [3, 4]
 *   const { zz, zy, z, y } = gram.sums();
 *   assert.deepEqual([...zz], [10, 14, 14, 20]);
 *   assert.deepEqual([...zy], [23, 34]);
 *   assert.deepEqual([...z], [4, 6]);
 *   assert.deepEqual([...y], [11]);
 *   gram.dispose();
 * }
 * ```
 *
 * @module
 */
import { GraphBuilder } from "./_graph_builder.ts";
import { loadOrt, type Ort } from "./ort.ts";

type Session = Awaited<ReturnType<Ort["InferenceSession"]["create"]>>;

/** Columns per strip of the Gram matrix's lower triangle. */
const STRIP = 512;

/** Options of {@linkcode createOnnxGram}. */
export interface OnnxGramOptions {
  /** Intra-op threads (default: `navigator.hardwareConcurrency`). */
  threads?: number;
  /** Per-feature means and deviations to standardise by (default: none, 0 and 1). */
  standardization?: { mean: Float32Array; std: Float32Array };
}

/** The float64 sums over every row added so far. */
export interface GramSums {
  /** `Σ zzᵀ`, `[d, d]` row-major, symmetric. */
  zz: Float64Array;
  /** `Σ z yᵀ`, `[d, k]` row-major. */
  zy: Float64Array;
  /** `Σ z`, `[d]`. */
  z: Float64Array;
  /** `Σ y`, `[k]`. */
  y: Float64Array;
}

/** Accumulates the normal equations' sums chunk by chunk (see the module doc). */
export interface OnnxGram {
  /** Adds `m` rows: features `x` `[m, d]` and targets `y` `[m, k]`, row-major float32. */
  add(x: Float32Array, y: Float32Array, m: number): Promise<void>;
  /** The sums so far (the Gram matrix with both triangles filled). */
  sums(): GramSums;
  /** Releases the session. */
  dispose(): void;
}

/** The strips `[from, to)` of the lower triangle: strip i is rows from..to, columns 0..to. */
function strips(d: number): [number, number][] {
  const out: [number, number][] = [];
  for (let from = 0; from < d; from += STRIP) out.push([from, Math.min(d, from + STRIP)]);
  return out;
}

/** The graph: row strips of `zᵀz`'s lower triangle, `zᵀy`, and the column sums. */
function gramGraph(d: number, k: number): Uint8Array {
  const g = new GraphBuilder();
  g.input("x", ["M", d]);
  g.input("mean", [d]);
  g.input("std", [d]);
  g.input("y", ["M", k]);
  g.node("Div", [g.op("Sub", ["x", "mean"]), "std"], {}, ["z"]);
  const axis = g.ints([1]);
  for (const [i, [from, to]] of strips(d).entries()) {
    const rows = from === 0 && to === d
      ? "z"
      : g.op("Slice", ["z", g.ints([from]), g.ints([to]), axis]);
    const cols = to === d ? "z" : g.op("Slice", ["z", g.ints([0]), g.ints([to]), axis]);
    g.node("Gemm", [rows, cols], { transA: 1 }, [`strip${i}`]);
    g.output(`strip${i}`, [to - from, to]);
  }
  g.node("Gemm", ["z", "y"], { transA: 1 }, ["zy"]);
  g.output("zy", [d, k]);
  g.node("ReduceSum", ["z", g.ints([0])], { keepdims: 0 }, ["sz"]);
  g.output("sz", [d]);
  g.node("ReduceSum", ["y", g.ints([0])], { keepdims: 0 }, ["sy"]);
  g.output("sy", [k]);
  return g.encode("gram");
}

/**
 * A session accumulating `Σzzᵀ`, `Σzyᵀ`, `Σz`, `Σy` for `d` features and `k` targets on the
 * CPU. Rejects with an `OnnxRuntimeUnavailableError` when onnxruntime-node cannot be loaded.
 *
 * @param d Features per row.
 * @param k Targets per row.
 * @param options Threads and the standardisation.
 * @returns The accumulator.
 */
export async function createOnnxGram(
  d: number,
  k: number,
  options: OnnxGramOptions = {},
): Promise<OnnxGram> {
  const ort = await loadOrt();
  const session: Session = await ort.InferenceSession.create(gramGraph(d, k), {
    intraOpNumThreads: options.threads ?? navigator.hardwareConcurrency ?? 1,
    interOpNumThreads: 1,
    executionMode: "sequential",
    graphOptimizationLevel: "all",
    logSeverityLevel: 3,
  });
  const stats = options.standardization ??
    { mean: new Float32Array(d), std: new Float32Array(d).fill(1) };
  const meanTensor = new ort.Tensor("float32", stats.mean, [d]);
  const stdTensor = new ort.Tensor("float32", stats.std, [d]);
  const parts = strips(d);
  const outputs = {
    strips: parts.map(([from, to]) => new Float32Array((to - from) * to)),
    zy: new Float32Array(d * k),
    z: new Float32Array(d),
    y: new Float32Array(k),
  };
  const fetches: Record<string, InstanceType<Ort["Tensor"]>> = {
    zy: new ort.Tensor("float32", outputs.zy, [d, k]),
    sz: new ort.Tensor("float32", outputs.z, [d]),
    sy: new ort.Tensor("float32", outputs.y, [k]),
  };
  parts.forEach(([from, to], i) => {
    fetches[`strip${i}`] = new ort.Tensor("float32", outputs.strips[i], [to - from, to]);
  });
  const acc: GramSums = {
    zz: new Float64Array(d * d),
    zy: new Float64Array(d * k),
    z: new Float64Array(d),
    y: new Float64Array(k),
  };
  const addInto = (sum: Float64Array, part: Float32Array) => {
    for (let i = 0; i < part.length; i++) sum[i] += part[i];
  };
  return {
    async add(x, y, m) {
      if (x.length !== m * d || y.length !== m * k) {
        throw new RangeError(
          `Gram chunk of ${m} rows needs ${m * d} features and ${m * k} targets, got ` +
            `${x.length} and ${y.length}`,
        );
      }
      await session.run({
        x: new ort.Tensor("float32", x, [m, d]),
        mean: meanTensor,
        std: stdTensor,
        y: new ort.Tensor("float32", y, [m, k]),
      }, fetches);
      parts.forEach(([from, to], i) => {
        const strip = outputs.strips[i];
        for (let r = from; r < to; r++) {
          const src = (r - from) * to, dst = r * d;
          for (let c = 0; c <= r; c++) acc.zz[dst + c] += strip[src + c];
        }
      });
      addInto(acc.zy, outputs.zy);
      addInto(acc.z, outputs.z);
      addInto(acc.y, outputs.y);
    },
    sums() {
      const zz = acc.zz.slice();
      for (let r = 0; r < d; r++) {
        for (let c = r + 1; c < d; c++) zz[r * d + c] = zz[c * d + r];
      }
      return { zz, zy: acc.zy.slice(), z: acc.z.slice(), y: acc.y.slice() };
    },
    dispose() {
      session.release().catch(() => {});
    },
  };
}
