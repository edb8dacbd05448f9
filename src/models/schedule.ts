/**
 * DDPM noise schedules: linear or cosine betas, ᾱ computed in float64 and kept as float32 (as
 * diffusers' `DDPMScheduler` holds it), and the forward process `addNoise`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { noiseSchedule } from "@diffprobe/core";
 *
 * const schedule = noiseSchedule(); // linear 1e-4..0.02, T = 1000
 * assert.equal(schedule.timesteps, 1000);
 * assert.equal(schedule.alphasCumprod[0], Math.fround(1 - 1e-4));
 * ```
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { integerInRange, oneOf, show } from "../base/validate.ts";

/** The most diffusion steps a schedule may have (the config bound, `num_train_timesteps`). */
const MAX_TIMESTEPS = 100_000;

/** How to build a schedule. */
export interface ScheduleOptions {
  /** Number of diffusion steps T (default 1000). */
  timesteps?: number;
  /** `"linear"` (default) or `"cosine"` (diffusers' `squaredcos_cap_v2`). */
  kind?: "linear" | "cosine";
  /** First beta of the linear schedule (default 1e-4). */
  betaStart?: number;
  /** Last beta of the linear schedule (default 0.02). */
  betaEnd?: number;
}

/** A noise schedule and the forward process q(x_t | x_0). */
export interface NoiseSchedule {
  /** `"linear"` or `"cosine"`. */
  readonly kind: "linear" | "cosine";
  /** T, the number of steps; valid timesteps are 0..T-1. */
  readonly timesteps: number;
  /** β_t (float64). */
  readonly betas: Float64Array;
  /** ᾱ_t computed in float64, stored rounded to float32 like diffusers. */
  readonly alphasCumprod: Float32Array;
  /**
   * `sqrt(ᾱ_t)·x0 + sqrt(1−ᾱ_t)·noise` with `t` one step for all samples or one per sample.
   * Throws a `RangeError` for a `t` outside [0, T).
   */
  addNoise(x0: tf.Tensor, t: number | ArrayLike<number>, noise: tf.Tensor): tf.Tensor;
}

/**
 * Checks that `t` is an integer in [0, T) and returns it; the error names the value.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { checkTimestep } from "./schedule.ts";
 *
 * assert.equal(checkTimestep(30, 1000), 30);
 * assert.throws(() => checkTimestep(1000, 1000), {
 *   message: "Timestep must be an integer in [0, 999], got 1000",
 * });
 * ```
 */
export function checkTimestep(t: number, timesteps: number): number {
  return integerInRange(t, "Timestep", 0, timesteps - 1);
}

/**
 * Builds a schedule.
 *
 * @param options T (1 to 100,000), the kind, and the linear schedule's betas
 * (0 < betaStart ≤ betaEnd < 1).
 * @returns The schedule.
 * @throws {RangeError} For T or betas out of range.
 * @throws {TypeError} For an unknown kind.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import * as tf from "@tensorflow/tfjs";
 * import { noiseSchedule } from "@diffprobe/core";
 *
 * const s = noiseSchedule({ kind: "cosine", timesteps: 100 });
 * const xt = s.addNoise(tf.ones([1, 2]), 99, tf.zeros([1, 2]));
 * assert.ok(xt.dataSync()[0] < 0.1); // almost all signal is gone at the last step
 * xt.dispose();
 * ```
 */
export function noiseSchedule(options: ScheduleOptions = {}): NoiseSchedule {
  const T = integerInRange(options.timesteps ?? 1000, "Timesteps", 1, MAX_TIMESTEPS);
  const kind = options.kind ?? "linear";
  const betas = new Float64Array(T);
  if (kind === "linear") {
    const start = options.betaStart ?? 1e-4;
    const end = options.betaEnd ?? 0.02;
    if (typeof start !== "number" || !(start > 0 && start < 1)) {
      throw new RangeError(`betaStart must be a number in (0, 1), got ${show(start)}`);
    }
    if (typeof end !== "number" || !(end >= start && end < 1)) {
      throw new RangeError(
        `betaEnd must be a number in [betaStart, 1) = [${start}, 1), got ${show(end)}`,
      );
    }
    for (let i = 0; i < T; i++) betas[i] = T === 1 ? start : start + (end - start) * i / (T - 1);
  } else if (kind === "cosine") {
    const alphaBar = (s: number) => Math.cos((s + 0.008) / 1.008 * Math.PI / 2) ** 2;
    for (let i = 0; i < T; i++) {
      betas[i] = Math.min(1 - alphaBar((i + 1) / T) / alphaBar(i / T), 0.999);
    }
  } else {
    oneOf(kind, "Schedule kind", ["linear", "cosine"]);
  }
  const alphasCumprod = new Float32Array(T);
  let prod = 1;
  for (let i = 0; i < T; i++) {
    prod *= 1 - betas[i];
    alphasCumprod[i] = prod;
  }
  return {
    kind,
    timesteps: T,
    betas,
    alphasCumprod,
    addNoise(x0: tf.Tensor, t: number | ArrayLike<number>, noise: tf.Tensor): tf.Tensor {
      if (!x0.shape.every((d, i) => d === noise.shape[i]) || x0.rank !== noise.rank) {
        throw new RangeError(
          `Noise shape [${noise.shape}] does not match the sample shape [${x0.shape}]`,
        );
      }
      const ts = typeof t === "number" ? [t] : Array.from(t);
      if (typeof t !== "number" && ts.length !== x0.shape[0]) {
        throw new RangeError(`Got ${ts.length} timesteps for a batch of ${x0.shape[0]}`);
      }
      const a = new Float32Array(ts.length);
      const b = new Float32Array(ts.length);
      ts.forEach((ti, i) => {
        const ab = alphasCumprod[checkTimestep(ti, T)];
        a[i] = Math.sqrt(ab);
        b[i] = Math.sqrt(Math.fround(1 - ab));
      });
      return tf.tidy(() => {
        const shape = [ts.length, ...x0.shape.slice(1).map(() => 1)];
        return tf.add(tf.mul(x0, tf.tensor(a, shape)), tf.mul(noise, tf.tensor(b, shape)));
      });
    },
  };
}
