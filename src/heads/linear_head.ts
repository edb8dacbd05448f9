/**
 * The linear probe: flattened features, one affine map to the outputs.
 *
 * @module
 */

import * as tf from "@tensorflow/tfjs";
import {
  Head,
  type HeadOptions,
  type HeadTargets,
  type HeadTask,
  readHeadManifest,
} from "./head.ts";
import { solveShiftedCholesky } from "./_ridge.ts";
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
}

/** What {@linkcode LinearHead.fitRidge} returns. */
export interface RidgeResult {
  /** The chosen penalty. */
  penalty: number;
  /** Every penalty tried, with its validation MSE (null: not solvable, or no validation). */
  penalties: { penalty: number; validationMse: number | null }[];
}

/**
 * A linear probe: features `[N, ...inputShape]` are flattened (row-major) and mapped by
 * `x · W + b`, with `W: [features, outputs]` saved as `linear.weight` and `b` as
 * `linear.bias`. Weights start as PyTorch's `nn.Linear` does (uniform in ±1/√features).
 *
 * @example A linear probe on pooled features
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import { LinearHead } from "./linear_head.ts";
 * const x = tf.randomNormal([64, 16], 0, 1, "float32", 1);
 * const labels = Array.from(x.dataSync().filter((_, i) => i % 16 === 0), (v) => (v > 0 ? 1 : 0));
 * const head = new LinearHead({ inputShape: [16], outputs: 2 });
 * await head.fit(x, labels, { epochs: 30, learningRate: 0.05, batchSize: 16 });
 * const { accuracy } = head.evaluate(x, labels);
 * console.log(accuracy); // close to 1
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
   * The Gram matrix is accumulated in float64 from float32 chunk products and factorised by
   * Cholesky in float64, so it suits up to a few thousand features.
   *
   * @example
   * ```ts
   * import * as tf from "@tensorflow/tfjs";
   * import { LinearHead } from "./linear_head.ts";
   *
   * // y = 2·x0 − x1 + 1, exactly.
   * const x = tf.tensor2d([[0, 0], [1, 0], [0, 1], [1, 1], [2, 1]]);
   * const head = new LinearHead({ inputShape: [2], outputs: 1, task: "regression" });
   * await head.fitRidge(x, [1, 3, 0, 2, 4], { penalties: [0] });
   * const p = head.predict(tf.tensor2d([[3, 3]]));
   * console.log(p.dataSync()[0].toFixed(4)); // "4.0000"
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
    const d = this.featureSize, k = this.outputs;
    if (d > 8192) {
      throw new RangeError(
        `fitRidge solves a ${d}×${d} system; use at most 8192 features (pool the features) or fit`,
      );
    }
    const { n, targets } = this.prepareClosedFormFit(x, y, options.standardize ?? true);
    const validation = options.validationData;
    const owned: tf.Tensor[] = [targets];
    try {
      // Sums over samples: Σz, Σzzᵀ, Σz·yᵀ, Σy.
      const sz = new Float64Array(d), szz = new Float64Array(d * d);
      const szy = new Float64Array(d * k), sy = new Float64Array(k);
      const chunk = Math.max(1, Math.min(n, Math.floor((1 << 22) / d)));
      for (let start = 0; start < n; start += chunk) {
        const size = Math.min(chunk, n - start);
        const [zz, zy, z1, y1] = tf.tidy(() => {
          const z = this.standardizedRows(x.slice([start], [size]));
          const t = targets.slice([start], [size]);
          return [
            tf.matMul(z, z, true, false),
            tf.matMul(z, t, true, false),
            z.sum(0),
            t.sum(0),
          ];
        });
        const add = async (acc: Float64Array, tensor: tf.Tensor) => {
          const v = await tensor.data();
          for (let i = 0; i < acc.length; i++) acc[i] += v[i];
        };
        await add(szz, zz);
        await add(szy, zy);
        await add(sz, z1);
        await add(sy, y1);
        tf.dispose([zz, zy, z1, y1]);
      }
      // Centred: A = Σzzᵀ − n·μμᵀ, B = Σz·yᵀ − n·μ·ȳᵀ; the bias is ȳ − μᵀW.
      const mu = sz.map((v) => v / n), yBar = sy.map((v) => v / n);
      const a = new Float64Array(d * d), b = new Float64Array(d * k);
      for (let i = 0; i < d; i++) {
        for (let j = 0; j < d; j++) a[i * d + j] = szz[i * d + j] - n * mu[i] * mu[j];
        for (let c = 0; c < k; c++) b[i * k + c] = szy[i * k + c] - n * mu[i] * yBar[c];
      }
      let vTargets: tf.Tensor2D | undefined, vRows: tf.Tensor2D | undefined;
      if (validation) {
        vTargets = this.checkedRegressionTargets(validation.x, validation.y);
        vRows = tf.tidy(() => this.standardizedRows(validation.x));
        owned.push(vTargets, vRows);
      }
      const tried: { penalty: number; validationMse: number | null }[] = [];
      let best: { penalty: number; w: Float32Array; bias: Float32Array; mse: number } | null = null;
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
        if (vRows && vTargets) {
          const m = tf.tidy(() =>
            tf.matMul(vRows!, tf.tensor2d(w, [d, k])).add(tf.tensor1d(bias)).sub(vTargets!)
              .square().mean()
          );
          mse = (await m.data())[0];
          m.dispose();
        }
        tried.push({ penalty, validationMse: vRows ? mse : null });
        if (Number.isFinite(mse) && (!best || mse < best.mse)) best = { penalty, w, bias, mse };
      }
      if (!best) {
        throw new RangeError(
          `Ridge regression found no positive definite system for penalties [${penalties}]: ` +
            "use larger penalties",
        );
      }
      tf.tidy(() => {
        this.#weight.assign(tf.tensor2d(best!.w, [d, k]));
        this.#bias.assign(tf.tensor1d(best!.bias));
      });
      return { penalty: best.penalty, penalties: tried };
    } finally {
      tf.dispose(owned);
    }
  }

  /**
   * Loads a head saved by {@linkcode Head.save}.
   *
   * @example
   * ```ts ignore
   * const head = await LinearHead.load("out/linear-probe");
   * ```
   *
   * @param dir The folder.
   * @returns The head, with its weights and standardisation statistics.
   */
  static async load(dir: string): Promise<LinearHead<HeadTask>> {
    const manifest = await readHeadManifest(dir, "LinearHead");
    const head = new LinearHead<HeadTask>(manifest.options);
    await head.restore(dir, manifest);
    return head;
  }
}
