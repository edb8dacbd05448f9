/**
 * Faster `BatchMatMul`, `Tile` and `Transpose` kernels for the `wasm` backend
 * (tfjs-backend-wasm 4.22), which sit on the training paths of the UNets and the heads and, for
 * `Tile`, on the UNet's forward pass.
 *
 * `BatchMatMul`: the backend multiplies with XNNPACK only when neither operand is transposed and
 * there is a single batch; every other case (`transposeA`, `transposeB`, or a batch of matrices,
 * as in multi-head attention) falls back to a scalar loop 5–30× slower. The gradients of a dense
 * layer (`xᵀ·dy`, `dy·Wᵀ`) and every attention product hit that loop. The replacement reaches
 * XNNPACK in all cases:
 *
 * - transposed operands are transposed explicitly first (the `Transpose` kernel is fast);
 * - a batch against one shared matrix is one `[B·M, K] × [K, N]` product (and one matrix against
 *   a batch one `[M, K] × [K, B·N]` product);
 * - a batch against a batch (attention) is a depthwise convolution with one channel per matrix
 *   (`x[0, i, k, b] = A[b, i, k]`, filter `f[0, k, b, j] = B[b, k, j]`), one XNNPACK call.
 *
 * Results equal the loop's up to float32 rounding (summation order).
 *
 * `Identity` (which `tf.clone` runs, and with it the gradient tape for every tensor it saves for
 * the backward pass): the backend copies the data, so training held every saved activation
 * twice (a [256, 65, 512] attention step grew the wasm heap past 4 GB and aborted). The
 * replacement shares the memory and raises its reference count, as the cpu backend does.
 *
 * `Transpose` above rank 4 (multi-head attention splits `[B, N, 3, heads, d]` that way): the
 * backend's generic kernel takes ~150 ns per element, 250 ms for 1.7M values; the replacement
 * chains rank-4 transposes (the backend's fast path), one per misplaced axis.
 *
 * `Tile` (which `tf.broadcastTo` runs): the backend's kernel computes every output index
 * separately, about 35× slower than copying: the nearest-neighbour ×2 upsampling of a
 * `[32, 16, 16, 128]` batch (a rank-6 broadcast) takes 0.7 s. The replacement copies whole
 * contiguous runs, one tiled axis at a time (via the `Concat` kernel); the values are identical.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import * as tf from "@tensorflow/tfjs";
 * import "@tensorflow/tfjs-backend-wasm";
 * import { registerWasmKernels } from "./wasm_kernels.ts";
 *
 * registerWasmKernels();
 * await tf.setBackend("wasm");
 * const y = tf.matMul(tf.ones([4, 2, 3]), tf.ones([4, 2, 5]), true, false);
 * assert.deepEqual(y.shape, [4, 3, 5]);
 * assert.equal(y.dataSync()[0], 2);
 * ```
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";

/** What a kernel function receives and returns (TensorFlow.js's `TensorInfo`). */
interface Info {
  dataId: object;
  shape: number[];
  dtype: tf.DataType;
}

/** The parts of the wasm backend used here. */
interface WasmBackend {
  disposeData(dataId: object): boolean;
}

type Kernel = (args: {
  inputs: Record<string, Info>;
  backend: WasmBackend;
  attrs?: Record<string, unknown>;
}) => Info;

let registered = false;

const product = (s: readonly number[]): number => s.reduce((p, d) => p * d, 1);

/** The wasm kernel functions used here, or a `TypeError` when the backend is not loaded. */
function kernels() {
  const get = (name: string) => {
    const k = tf.getKernel(name, "wasm");
    if (!k) {
      throw new TypeError(
        `The wasm backend has no "${name}" kernel: import "@tensorflow/tfjs-backend-wasm" first`,
      );
    }
    return k;
  };
  const fn = (name: string) => get(name).kernelFunc as unknown as Kernel;
  return {
    matmul: get("BatchMatMul"),
    tile: get("Tile"),
    transpose: fn("Transpose"),
    reshape: fn("Reshape"),
    depthwise: fn("DepthwiseConv2dNative"),
    concat: fn("Concat"),
  };
}

/**
 * Replaces the `wasm` backend's `BatchMatMul`, `Tile` and `Transpose` kernels by the versions described in the
 * module doc (once; later calls do nothing). Call it before or after the backend starts; other
 * backends are not touched.
 *
 * @example
 * ```ts
 * import "@tensorflow/tfjs-backend-wasm";
 * import { registerWasmKernels } from "./wasm_kernels.ts";
 *
 * registerWasmKernels();
 * registerWasmKernels(); // no effect
 * ```
 */
export function registerWasmKernels(): void {
  if (registered) return;
  const k = kernels();
  const original = k.matmul;
  const transposeK = k.transpose, reshapeK = k.reshape, depthwiseK = k.depthwise;
  const matmul = original.kernelFunc as unknown as Kernel;
  const fast: Kernel = (args) => {
    const { backend } = args;
    const { a, b } = args.inputs;
    const transposeA = Boolean(args.attrs?.transposeA);
    const transposeB = Boolean(args.attrs?.transposeB);
    const batchA = product(a.shape.slice(0, -2));
    const batchB = product(b.shape.slice(0, -2));
    if (
      (!transposeA && !transposeB && batchA === 1 && batchB === 1) || a.dtype !== "float32" ||
      (batchA !== batchB && batchA !== 1 && batchB !== 1)
    ) {
      return matmul(args);
    }
    const ra = a.shape.length, rb = b.shape.length;
    const m = transposeA ? a.shape[ra - 1] : a.shape[ra - 2];
    const k = transposeA ? a.shape[ra - 2] : a.shape[ra - 1];
    const n = transposeB ? b.shape[rb - 2] : b.shape[rb - 1];
    const outer = tf.broadcast_util.assertAndGetBroadcastShape(
      a.shape.slice(0, -2),
      b.shape.slice(0, -2),
    );
    const outShape = [...outer, m, n];
    const temps: Info[] = [];
    const keep = (info: Info): Info => {
      temps.push(info);
      return info;
    };
    const nn = { transposeA: false, transposeB: false };
    try {
      let a3 = keep(
        reshapeK({ inputs: { x: a }, backend, attrs: { shape: [batchA, ...a.shape.slice(-2)] } }),
      );
      if (transposeA) {
        a3 = keep(transposeK({ inputs: { x: a3 }, backend, attrs: { perm: [0, 2, 1] } }));
      }
      let b3 = keep(
        reshapeK({ inputs: { x: b }, backend, attrs: { shape: [batchB, ...b.shape.slice(-2)] } }),
      );
      if (transposeB) {
        b3 = keep(transposeK({ inputs: { x: b3 }, backend, attrs: { perm: [0, 2, 1] } }));
      }
      if (batchB === 1) {
        // All of A's matrices against one B: a single [batchA·m, k] × [k, n] product.
        const a2 = keep(
          reshapeK({ inputs: { x: a3 }, backend, attrs: { shape: [batchA * m, k] } }),
        );
        const b2 = keep(reshapeK({ inputs: { x: b3 }, backend, attrs: { shape: [k, n] } }));
        const r = keep(matmul({ inputs: { a: a2, b: b2 }, backend, attrs: nn }));
        return reshapeK({ inputs: { x: r }, backend, attrs: { shape: outShape } });
      }
      if (batchA === 1) {
        // One A against all of B's matrices: A × [k, batchB·n], then [m, batchB, n] → [batchB, m, n].
        const bt = keep(transposeK({ inputs: { x: b3 }, backend, attrs: { perm: [1, 0, 2] } }));
        const b2 = keep(
          reshapeK({ inputs: { x: bt }, backend, attrs: { shape: [k, batchB * n] } }),
        );
        const a2 = keep(reshapeK({ inputs: { x: a3 }, backend, attrs: { shape: [m, k] } }));
        const r = keep(matmul({ inputs: { a: a2, b: b2 }, backend, attrs: nn }));
        const r3 = keep(reshapeK({ inputs: { x: r }, backend, attrs: { shape: [m, batchB, n] } }));
        const t = keep(transposeK({ inputs: { x: r3 }, backend, attrs: { perm: [1, 0, 2] } }));
        return reshapeK({ inputs: { x: t }, backend, attrs: { shape: outShape } });
      }
      // A batch against a batch: a depthwise convolution with one channel per matrix computes
      // all products in one XNNPACK call. x[0, i, k, b] = A[b, i, k] is convolved (valid, width k)
      // with f[0, k, b, j] = B[b, k, j], giving y[0, i, 0, b·n + j] = Σ_k A[b, i, k]·B[b, k, j].
      const x = keep(transposeK({ inputs: { x: a3 }, backend, attrs: { perm: [1, 2, 0] } }));
      const x4 = keep(reshapeK({ inputs: { x }, backend, attrs: { shape: [1, m, k, batchA] } }));
      const f = keep(transposeK({ inputs: { x: b3 }, backend, attrs: { perm: [1, 0, 2] } }));
      const f4 = keep(reshapeK({ inputs: { x: f }, backend, attrs: { shape: [1, k, batchA, n] } }));
      const y = keep(depthwiseK({
        inputs: { x: x4, filter: f4 },
        backend,
        attrs: { strides: [1, 1], pad: "valid", dilations: [1, 1], dimRoundingMode: null },
      }));
      const y3 = keep(reshapeK({ inputs: { x: y }, backend, attrs: { shape: [m, batchA, n] } }));
      const t = keep(transposeK({ inputs: { x: y3 }, backend, attrs: { perm: [1, 0, 2] } }));
      return reshapeK({ inputs: { x: t }, backend, attrs: { shape: outShape } });
    } finally {
      for (const t of temps) backend.disposeData(t.dataId);
    }
  };
  tf.unregisterKernel("BatchMatMul", "wasm");
  tf.registerKernel({ ...original, kernelFunc: fast as unknown as tf.KernelFunc });
  tf.unregisterKernel("Tile", "wasm");
  tf.registerKernel({ ...k.tile, kernelFunc: tileKernel(k) as unknown as tf.KernelFunc });
  const identityInfo = tf.getKernel("Identity", "wasm")!;
  tf.unregisterKernel("Identity", "wasm");
  tf.registerKernel({
    ...identityInfo,
    kernelFunc: identityKernel(
      identityInfo.kernelFunc as unknown as Kernel,
    ) as unknown as tf.KernelFunc,
  });
  const transposeInfo = tf.getKernel("Transpose", "wasm")!;
  tf.unregisterKernel("Transpose", "wasm");
  tf.registerKernel({
    ...transposeInfo,
    kernelFunc: transposeKernel(k) as unknown as tf.KernelFunc,
  });
  registered = true;
}

/**
 * `Identity` (what `tf.clone` runs) as a shared reference, as on the cpu backend: the result
 * points at the same memory with its reference count raised. Kernels never write into their
 * inputs, so sharing is safe.
 */
function identityKernel(copy: Kernel): Kernel {
  return (args) => {
    const x = args.inputs.x;
    if (x.dtype === "string") return copy(args);
    (args.backend as WasmBackend & { incRef(dataId: object): void }).incRef(x.dataId);
    return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
  };
}

/**
 * `Transpose` above rank 4 as a sequence of rank-4 transposes: output axis by output axis, the
 * axis that belongs there is moved forward past the axes in between (`[A, B, C, D]` →
 * `[A, C, B, D]`). At rank ≤ 4 the backend's kernel is used as is.
 */
function transposeKernel(k: ReturnType<typeof kernels>): Kernel {
  return (args) => {
    const { backend } = args;
    const x = args.inputs.x;
    const perm = args.attrs?.perm as number[];
    if (x.shape.length <= 4) return k.transpose(args);
    let cur = k.reshape({ inputs: { x }, backend, attrs: { shape: x.shape } });
    let order = x.shape.map((_, i) => i); // order[j]: the input axis now at position j
    const temps: Info[] = [];
    try {
      for (let j = 0; j < perm.length; j++) {
        const i = order.indexOf(perm[j]);
        if (i === j) continue;
        const s = cur.shape;
        const four = [
          product(s.slice(0, j)),
          product(s.slice(j, i)),
          s[i],
          product(s.slice(i + 1)),
        ];
        const flat = k.reshape({ inputs: { x: cur }, backend, attrs: { shape: four } });
        temps.push(cur, flat);
        const moved = k.transpose({ inputs: { x: flat }, backend, attrs: { perm: [0, 2, 1, 3] } });
        temps.push(moved);
        const shape = [...s.slice(0, j), s[i], ...s.slice(j, i), ...s.slice(i + 1)];
        cur = k.reshape({ inputs: { x: moved }, backend, attrs: { shape } });
        order = [...order.slice(0, j), order[i], ...order.slice(j, i), ...order.slice(i + 1)];
      }
      return cur;
    } catch (e) {
      if (!temps.includes(cur)) temps.push(cur);
      throw e;
    } finally {
      for (const t of temps) backend.disposeData(t.dataId);
    }
  };
}

/** `Tile` by contiguous copies: for each axis with reps > 1, concatenate `reps` copies. */
function tileKernel(k: ReturnType<typeof kernels>): Kernel {
  const slow = k.tile.kernelFunc as unknown as Kernel;
  return (args) => {
    const { backend } = args;
    const x = args.inputs.x;
    const reps = args.attrs?.reps as number[];
    if (x.dtype === "string" || x.shape.length === 0) return slow(args);
    let cur = x;
    const shape = [...x.shape];
    const temps: Info[] = [];
    try {
      for (let d = 0; d < shape.length; d++) {
        if (reps[d] === 1) continue;
        const before = product(shape.slice(0, d));
        const inner = product(shape.slice(d));
        const flat = k.reshape({ inputs: { x: cur }, backend, attrs: { shape: [before, inner] } });
        temps.push(flat);
        const copies = new Array<Info>(reps[d]).fill(flat);
        cur = k.concat({
          inputs: copies as unknown as Record<string, Info>,
          backend,
          attrs: { axis: 1 },
        });
        temps.push(cur);
        shape[d] *= reps[d];
      }
      return k.reshape({ inputs: { x: cur }, backend, attrs: { shape } });
    } finally {
      for (const t of temps) backend.disposeData(t.dataId);
    }
  };
}
