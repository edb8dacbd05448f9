/**
 * The linear probe: flattened features, one affine map to the outputs.
 *
 * @module
 */

import * as tf from "@tensorflow/tfjs";
import { Head } from "./head.ts";
import {
  checkHeadOptions,
  type HeadOptions,
  type HeadTargets,
  type HeadTask,
} from "./head_options.ts";
import { readSavedHead } from "./head_file.ts";
import { centredSystem, type RidgeSums, type RidgeSystem, solveShiftedCholesky } from "./_ridge.ts";
import { chooseTrainEngine, type TrainEngine } from "../engine/train_engine.ts";
import { createOnnxGram } from "../engine/onnx_gram.ts";
import { dense, initLinearUniform } from "./_layers.ts";
import { Random } from "../base/random.ts";

/** Options of {@linkcode LinearHead}: only the common ones. */
export type LinearHeadOptions<T extends HeadTask = HeadTask> = HeadOptions<T>;

/** Options of {@linkcode LinearHead.fitRidge}. */
export interface RidgeOptions {
  /**
   * Candidate penalties λ of `mean((y − x·W − b)²) + λ·‖W‖²`, on standardised features.
   * Default `[1e-6, 1e-5, …, 1]`; more than one needs `validationData`.
   */
  penalties?: readonly number[];
  /** Validation features and targets that choose the penalty. */
  validationData?: { x: tf.Tensor; y: HeadTargets };
  /** Standardise features with the training statistics first (default true). */
  standardize?: boolean;
  /**
   * What computes the Gram matrix `Σzzᵀ` (the bulk of the work): `"onnx"` (onnxruntime-node's
   * GEMM on all cores, the lower triangle only; needs `--allow-ffi`), `"tfjs"` (the current
   * TensorFlow.js backend), or `"auto"` (default: onnx when onnxruntime-node loads, else tfjs,
   * said once on stderr), as for `fit`. Both accumulate float32 chunk products in float64.
   */
  engine?: TrainEngine;
}

/** What {@linkcode LinearHead.fitRidge} returns. */
export interface RidgeResult {
  /** The chosen penalty. */
  penalty: number;
  /** Every penalty tried, with its validation MSE (null: not solvable, or no validation). */
  penalties: { penalty: number; validationMse: number | null }[];
}

/** One penalty's solution and its validation MSE. */
interface RidgeSolution {
  penalty: number;
  w: Float32Array;
  bias: Float32Array;
  mse: number;
}

/** Standardised validation rows and their targets. */
interface RidgeCheck {
  rows: tf.Tensor2D;
  targets: tf.Tensor2D;
}

/**
 * A linear probe: features `[N, ...inputShape]` are flattened (row-major) and mapped by
 * `x · W + b`, with `W: [features, outputs]` saved as `linear.weight` and `b` as
 * `linear.bias`. Weights start as PyTorch's `nn.Linear` does (uniform in ±1/√features).
 *
 * @example A linear probe on pooled features
 * ```ts
 * import assert from "node:assert/strict";
 * import * as tf from "@tensorflow/tfjs";
 * import { LinearHead } from "@diffprobe/core";
 *
 * const x = tf.randomNormal([64, 16], 0, 1, "float32", 1);
 * const labels = Array.from(x.dataSync().filter((_, i) => i % 16 === 0), (v) => (v > 0 ? 1 : 0));
 * const head = new LinearHead({ inputShape: [16], outputs: 2 });
 * await head.fit(x, labels, { epochs: 30, learningRate: 0.05, batchSize: 16 });
 * const { accuracy } = head.evaluate(x, labels);
 * assert.ok(accuracy > 0.9);
 * head.dispose();
 * x.dispose();
 * ```
 */
export class LinearHead<T extends HeadTask = "classification"> extends Head<T> {
  /** Always `"LinearHead"`. */
  override readonly className: string = "LinearHead";
  /** The resolved options. */
  override readonly options: Required<LinearHeadOptions<T>>;
  #weight: tf.Variable;
  #bias: tf.Variable;

  /**
   * Creates a randomly initialised linear head.
   *
   * @param options Input shape, outputs, task and seed.
   */
  constructor(options: LinearHeadOptions<T>) {
    super(options);
    this.options = {
      inputShape: [...this.inputShape],
      outputs: this.outputs,
      task: this.task,
      seed: this.seed,
    };
    const { weight, bias } = initLinearUniform(
      Random.seeded(this.seed),
      this.featureSize,
      this.outputs,
    );
    this.#weight = this.addWeight("linear.weight", [this.featureSize, this.outputs], weight, true);
    this.#bias = this.addWeight("linear.bias", [this.outputs], bias, false);
  }

  /** Flattens and applies the affine map. */
  protected override forward(x: tf.Tensor): tf.Tensor {
    return dense(x.reshape([-1, this.featureSize]), this.#weight, this.#bias);
  }

  /**
   * Fits a regression head in closed form by ridge regression — the exact minimiser of
   * `mean((y − x·W − b)²) + penalty·‖W‖²` on the (by default standardised) features — instead of
   * training it with AdamW. With several penalties, the one with the lowest validation MSE wins.
   * The Gram matrix is accumulated in float64 from float32 chunk products (on onnxruntime or
   * TensorFlow.js, see `engine`) and factorised by Cholesky in float64 once per penalty, so it
   * suits up to a few thousand features.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import * as tf from "@tensorflow/tfjs";
   * import { LinearHead } from "@diffprobe/core";
   *
   * // y = 2·x0 − x1 + 1, exactly.
   * const x = tf.tensor2d([[0, 0], [1, 0], [0, 1], [1, 1], [2, 1]]);
   * const head = new LinearHead({ inputShape: [2], outputs: 1, task: "regression" });
   * await head.fitRidge(x, [1, 3, 0, 2, 4], { penalties: [0] });
   * const q = tf.tensor2d([[3, 3]]);
   * const p = head.predict(q);
   * assert.ok(Math.abs(p.dataSync()[0] - 4) < 1e-4);
   * tf.dispose([x, q, p]);
   * head.dispose();
   * ```
   *
   * @param x Features `[N, ...inputShape]`.
   * @param y Targets `[N, outputs]` (or `[N]` for one output).
   * @param options Penalties, validation data, standardisation.
   * @returns The chosen penalty and every penalty's validation MSE.
   * @throws {TypeError} For a classification head.
   * @throws {RangeError} On bad shapes, non-finite values, bad penalties, more than 8192
   *   features, or when no penalty gives a solvable system.
   */
  async fitRidge(
    x: tf.Tensor,
    y: HeadTargets,
    options: RidgeOptions = {},
  ): Promise<RidgeResult> {
    if (this.task !== "regression") {
      throw new TypeError(`fitRidge fits regression heads; this one does ${this.task}: use fit`);
    }
    const penalties = [...(options.penalties ?? [1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1])];
    if (penalties.length === 0 || !penalties.every((p) => Number.isFinite(p) && p >= 0)) {
      throw new RangeError(`Penalties must be finite numbers >= 0, got [${penalties}]`);
    }
    if (penalties.length > 1 && options.validationData === undefined) {
      throw new RangeError("Choosing among several penalties needs validationData");
    }
    const d = this.featureSize;
    if (d > 8192) {
      throw new RangeError(
        `fitRidge solves a ${d}×${d} system; use at most 8192 features (pool the features) or fit`,
      );
    }
    const { engine } = await chooseTrainEngine(options.engine ?? "auto");
    return await this.transaction(async () => {
      // The onnx engine reads the features out of TensorFlow.js once, whole (slicing a tensor on
      // the wasm backend copies all of it), for the statistics and the Gram matrix.
      const raw = engine === "onnx" ? await x.data() : undefined; // read only
      const values = raw === undefined || raw instanceof Float32Array
        ? raw
        : Float32Array.from(raw);
      const standardize = options.standardize ?? true;
      const { n, targets } = this.prepareClosedFormFit(x, y, standardize, values);
      const owned: tf.Tensor[] = [targets];
      try {
        const sums = values
          ? await this.#onnxSums(values, targets, n)
          : await this.#tfjsSums(x, targets, n);
        const system = centredSystem(sums, n);
        const validation = options.validationData;
        let check: RidgeCheck | undefined;
        if (validation) {
          const vTargets = this.checkedRegressionTargets(validation.x, validation.y);
          owned.push(vTargets);
          const vRows = tf.tidy(() => this.standardizedRows(validation.x));
          owned.push(vRows);
          check = { rows: vRows, targets: vTargets };
        }
        const { best, tried } = await this.#tryPenalties(system, penalties, n, check);
        const k = this.outputs;
        tf.tidy(() => {
          this.#weight.assign(tf.tensor2d(best.w, [d, k]));
          this.#bias.assign(tf.tensor1d(best.bias));
        });
        return { penalty: best.penalty, penalties: tried };
      } finally {
        tf.dispose(owned);
      }
    });
  }

  /** Rows per chunk: float32 products over at most this many rows are summed in float64. */
  #chunkRows(n: number): number {
    return Math.max(1, Math.min(n, Math.floor((1 << 22) / this.featureSize)));
  }

  /**
   * The raw sums of ridge regression's normal equations on TensorFlow.js, in float64 from
   * float32 chunk products: `Σzzᵀ`, `Σz·yᵀ`, `Σz`, `Σy` over the standardised rows z.
   */
  async #tfjsSums(x: tf.Tensor, targets: tf.Tensor2D, n: number): Promise<RidgeSums> {
    const d = this.featureSize, k = this.outputs;
    const acc: RidgeSums = {
      zz: new Float64Array(d * d),
      zy: new Float64Array(d * k),
      z: new Float64Array(d),
      y: new Float64Array(k),
    };
    const add = async (sum: Float64Array, tensor: tf.Tensor) => {
      const v = await tensor.data();
      for (let i = 0; i < sum.length; i++) sum[i] += v[i];
    };
    const chunk = this.#chunkRows(n);
    for (let start = 0; start < n; start += chunk) {
      const size = Math.min(chunk, n - start);
      const sums = tf.tidy(() => {
        const z = this.standardizedRows(x.slice([start], [size]));
        const t = targets.slice([start], [size]);
        return [tf.matMul(z, z, true, false), tf.matMul(z, t, true, false), z.sum(0), t.sum(0)];
      });
      await add(acc.zz, sums[0]);
      await add(acc.zy, sums[1]);
      await add(acc.z, sums[2]);
      await add(acc.y, sums[3]);
      tf.dispose(sums);
    }
    return acc;
  }

  /**
   * The same sums with onnxruntime's GEMM (the Gram matrix's lower triangle only), on the
   * features' values `x` (standardised in the graph).
   */
  async #onnxSums(x: Float32Array, targets: tf.Tensor2D, n: number): Promise<RidgeSums> {
    const d = this.featureSize, k = this.outputs;
    const gram = await createOnnxGram(d, k, { standardization: this.standardization });
    try {
      const y = await targets.data() as Float32Array;
      const chunk = this.#chunkRows(n);
      for (let start = 0; start < n; start += chunk) {
        const end = Math.min(n, start + chunk);
        await gram.add(x.subarray(start * d, end * d), y.subarray(start * k, end * k), end - start);
      }
      return gram.sums();
    } finally {
      gram.dispose();
    }
  }

  /** Solves for every penalty; the best is the lowest validation MSE (or the only one). */
  async #tryPenalties(
    { a, b, mu, yBar }: RidgeSystem,
    penalties: readonly number[],
    n: number,
    check: RidgeCheck | undefined,
  ): Promise<{ best: RidgeSolution; tried: RidgeResult["penalties"] }> {
    const d = this.featureSize, k = this.outputs;
    const tried: RidgeResult["penalties"] = [];
    let best: RidgeSolution | null = null;
    for (const penalty of penalties) {
      const w64 = solveShiftedCholesky(a, b, d, k, penalty * n);
      if (!w64) {
        tried.push({ penalty, validationMse: null });
        continue;
      }
      const w = Float32Array.from(w64);
      const bias = Float32Array.from(yBar, (v, c) => {
        let s = v;
        for (let i = 0; i < d; i++) s -= mu[i] * w64[i * k + c];
        return s;
      });
      let mse = 0;
      if (check) {
        const m = tf.tidy(() =>
          tf.matMul(check.rows, tf.tensor2d(w, [d, k])).add(tf.tensor1d(bias)).sub(check.targets)
            .square().mean()
        );
        mse = (await m.data())[0];
        m.dispose();
      }
      tried.push({ penalty, validationMse: check ? mse : null });
      if (Number.isFinite(mse) && (!best || mse < best.mse)) best = { penalty, w, bias, mse };
    }
    if (!best) {
      throw new RangeError(
        `Ridge regression found no positive definite system for penalties [${penalties}]: ` +
          "use larger penalties",
      );
    }
    return { best, tried };
  }

  /**
   * Loads a head saved by {@linkcode Head.save}.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { LinearHead } from "@diffprobe/core";
   *
   * const dir = await Deno.makeTempDir();
   * const head = new LinearHead({ inputShape: [3], outputs: 2, seed: 4 });
   * await head.save(dir);
   * const loaded = await LinearHead.load(dir);
   * assert.deepEqual(loaded.options, head.options);
   * assert.deepEqual(loaded.weights.get("linear.bias")!.dataSync(), head.weights.get("linear.bias")!.dataSync());
   * head.dispose();
   * loaded.dispose();
   * await Deno.remove(dir, { recursive: true });
   * ```
   *
   * @param dir The folder.
   * @returns The head, with its weights and standardisation statistics.
   */
  static async load(dir: string): Promise<LinearHead<HeadTask>> {
    const saved = await readSavedHead(dir, "LinearHead", LinearHead.weightShapes);
    const head = new LinearHead<HeadTask>(saved.manifest.options);
    head.restore(saved);
    return head;
  }

  /**
   * The names and shapes of the weights a linear head with `options` has (checks the options;
   * allocates nothing).
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { LinearHead } from "@diffprobe/core";
   *
   * const shapes = LinearHead.weightShapes({ inputShape: [4, 4], outputs: 3 });
   * assert.deepEqual(shapes.get("linear.weight"), [16, 3]);
   * ```
   */
  static weightShapes(options: LinearHeadOptions): Map<string, number[]> {
    const { featureSize, outputs } = checkHeadOptions(options);
    return new Map([["linear.weight", [featureSize, outputs]], ["linear.bias", [outputs]]]);
  }
}
