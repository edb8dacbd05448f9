/**
 * Per-feature standardisation: the mean and deviation of the training features, applied as
 * `(x − mean) / std` by `predict`, `evaluate` and every training step. Internal to
 * `src/heads/`.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { formatShape, unravel } from "./_shape.ts";

/** Floats per batch when computing statistics. */
const STAT_ROWS_BUDGET = 1 << 22;

/** Deviations at or below this are replaced by 1: such features are only centred. */
export const MIN_STD = 1e-6;

/** A copy of the statistics, to put back with {@linkcode Standardization.restore}. */
export interface StandardizationSnapshot {
  on: boolean;
  mean: tf.Tensor;
  std: tf.Tensor;
}

/** The statistics of one head (two variables of the input shape, and whether they apply). */
export class Standardization {
  /** The shape of one sample's features. */
  readonly shape: readonly number[];
  #mean: tf.Variable;
  #std: tf.Variable;
  #on = false;

  /** Zero mean, unit deviation, off. */
  constructor(shape: readonly number[]) {
    this.shape = [...shape];
    this.#mean = tf.tidy(() => tf.variable(tf.zeros([...shape]), false));
    this.#std = tf.tidy(() => tf.variable(tf.ones([...shape]), false));
  }

  /** Whether features are standardised. */
  get enabled(): boolean {
    return this.#on;
  }

  /** Turns standardisation off (the statistics are kept but not applied). */
  off(): void {
    this.#on = false;
  }

  /**
   * Computes the mean and deviation over rows `rows` of `x` and turns standardisation on. Throws
   * a RangeError, leaving the statistics as they were, when they overflow float32.
   */
  fit(x: tf.Tensor, rows: Int32Array): void {
    const size = this.#mean.size;
    const chunk = Math.max(1, Math.floor(STAT_ROWS_BUDGET / size));
    const sumOver = (f: (xb: tf.Tensor2D) => tf.Tensor): tf.Tensor => {
      let acc = tf.zeros([size]);
      for (let start = 0; start < rows.length; start += chunk) {
        const previous = acc;
        acc = tf.tidy(() => {
          const xb = tf.gather(x, tf.tensor1d(rows.slice(start, start + chunk), "int32"))
            .cast("float32").reshape([-1, size]) as tf.Tensor2D;
          return previous.add(f(xb).sum(0));
        });
        previous.dispose();
      }
      return acc;
    };
    const sum = sumOver((xb) => xb);
    const mean = tf.tidy(() => sum.div(rows.length));
    sum.dispose();
    const squares = sumOver((xb) => xb.sub(mean).square());
    const std = tf.tidy(() => {
      const s = squares.div(rows.length).sqrt();
      return tf.where(s.greater(MIN_STD), s, tf.onesLike(s));
    });
    squares.dispose();
    try {
      this.#assertFinite(mean, std);
      tf.tidy(() => {
        this.#mean.assign(mean.reshape([...this.shape]));
        this.#std.assign(std.reshape([...this.shape]));
      });
      this.#on = true;
    } finally {
      tf.dispose([mean, std]);
    }
  }

  /**
   * The same statistics over all `n` rows of `values` (row-major, `n × size` features, already
   * read out of TensorFlow.js), summed in float64 on JS arrays: no tensor ops, which on the wasm
   * backend gather rows slowly. Throws like {@linkcode Standardization.fit}.
   */
  fitValues(values: Float32Array, n: number): void {
    const size = this.#mean.size;
    const sum = new Float64Array(size), squares = new Float64Array(size);
    for (let r = 0; r < n; r++) {
      const row = values.subarray(r * size, (r + 1) * size);
      for (let j = 0; j < size; j++) sum[j] += row[j];
    }
    const mean = Float32Array.from(sum, (v) => v / n);
    for (let r = 0; r < n; r++) {
      const row = values.subarray(r * size, (r + 1) * size);
      for (let j = 0; j < size; j++) {
        const e = row[j] - mean[j];
        squares[j] += e * e;
      }
    }
    const std = Float32Array.from(squares, (v) => {
      const s = Math.fround(Math.sqrt(v / n));
      return s > MIN_STD ? s : 1;
    });
    const [m, s] = [tf.tensor1d(mean), tf.tensor1d(std)];
    try {
      this.#assertFinite(m, s);
    } finally {
      tf.dispose([m, s]);
    }
    this.set({ mean, std });
  }

  /** Throws when a statistic is not finite (features too large for float32 sums). */
  #assertFinite(mean: tf.Tensor, std: tf.Tensor): void {
    const m = mean.dataSync(), s = std.dataSync();
    for (let i = 0; i < m.length; i++) {
      if (!Number.isFinite(m[i]) || !Number.isFinite(s[i])) {
        throw new RangeError(
          `Features are too large to standardise in float32: feature ${
            formatShape(unravel(i, this.shape))
          } has mean ${m[i]} and deviation ${s[i]}; scale the features down`,
        );
      }
    }
  }

  /** `x` as float32, standardised when on (call inside `tf.tidy`). */
  apply(x: tf.Tensor): tf.Tensor {
    const xf = x.dtype === "float32" ? x : x.cast("float32");
    return this.#on ? xf.sub(this.#mean).div(this.#std) : xf;
  }

  /** Copies of the statistics in use, or undefined when off. */
  values(): { mean: Float32Array; std: Float32Array } | undefined {
    if (!this.#on) return undefined;
    return {
      mean: Float32Array.from(this.#mean.dataSync() as Float32Array),
      std: Float32Array.from(this.#std.dataSync() as Float32Array),
    };
  }

  /** Sets checked statistics (row-major, one per feature), or turns standardisation off. */
  set(stats: { mean: ArrayLike<number>; std: ArrayLike<number> } | null): void {
    if (stats === null) {
      this.#on = false;
      return;
    }
    tf.tidy(() => {
      this.#mean.assign(tf.tensor(Float32Array.from(stats.mean), [...this.shape], "float32"));
      this.#std.assign(tf.tensor(Float32Array.from(stats.std), [...this.shape], "float32"));
    });
    this.#on = true;
  }

  /** A copy of the current state (the caller disposes its tensors, or restores it). */
  snapshot(): StandardizationSnapshot {
    return { on: this.#on, mean: this.#mean.clone(), std: this.#std.clone() };
  }

  /** Puts back a snapshot and frees it. */
  restore(snapshot: StandardizationSnapshot): void {
    this.#mean.assign(snapshot.mean);
    this.#std.assign(snapshot.std);
    this.#on = snapshot.on;
    tf.dispose([snapshot.mean, snapshot.std]);
  }

  /** Frees the statistics. */
  dispose(): void {
    tf.dispose([this.#mean, this.#std]);
  }
}
