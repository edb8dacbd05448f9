/**
 * The learning-rate schedule of the package (heads and diffusion training): a linear warm-up to
 * the peak, then either the peak held constant or a half cosine down to a floor.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { learningRateAt } from "./lr_schedule.ts";
 *
 * const options = { peak: 2e-4, warmupSteps: 10, totalSteps: 100 };
 * assert.equal(learningRateAt(0, options), 2e-5);
 * assert.equal(learningRateAt(9, options), 2e-4);
 * assert.equal(learningRateAt(100, options), 0);
 * ```
 *
 * @module
 */
import { nonNegativeInteger, numberInRange, oneOf, show } from "../base/validate.ts";

/** Options of {@linkcode learningRateAt}. */
export interface LearningRateOptions {
  /** The peak rate, reached at the last warm-up step. */
  peak: number;
  /** Total steps of the run, warm-up included. */
  totalSteps: number;
  /** Warm-up steps (default 0: start at the peak). */
  warmupSteps?: number;
  /** After warm-up: `"constant"` or `"cosine"` (default `"cosine"`). */
  schedule?: "constant" | "cosine";
  /** The floor of the cosine, as a fraction of the peak (default 0). */
  minRatio?: number;
}

/**
 * The learning rate of 0-based `step`: `peak · (step + 1) / warmupSteps` during warm-up (so the
 * first step already moves and the last warm-up step uses the peak), then the peak (constant) or
 * `floor + (peak − floor) · (1 + cos(π · p)) / 2` with
 * `p = (step − warmupSteps) / (totalSteps − warmupSteps)` (cosine). Cosine steps at or beyond
 * `totalSteps` give the floor.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { learningRateAt } from "./lr_schedule.ts";
 *
 * assert.equal(learningRateAt(50, { peak: 1, totalSteps: 100 }), 0.5);
 * assert.equal(learningRateAt(50, { peak: 1, totalSteps: 100, schedule: "constant" }), 1);
 * assert.equal(learningRateAt(100, { peak: 1, totalSteps: 100, minRatio: 0.1 }), 0.1);
 * ```
 */
export function learningRateAt(step: number, options: LearningRateOptions): number {
  const { peak } = options;
  nonNegativeInteger(step, "Step");
  const totalSteps = nonNegativeInteger(options.totalSteps, "Total steps");
  const warmup = nonNegativeInteger(options.warmupSteps ?? 0, "Warm-up steps");
  const minRatio = numberInRange(options.minRatio ?? 0, "Minimum learning-rate ratio", 0, 1);
  if (typeof peak !== "number" || !(peak >= 0) || !Number.isFinite(peak)) {
    throw new RangeError(`Learning rate must be a finite number >= 0, got ${show(peak)}`);
  }
  const schedule = oneOf(options.schedule ?? "cosine", "Learning-rate schedule", [
    "constant",
    "cosine",
  ]);
  if (step < warmup) return (peak * (step + 1)) / warmup;
  if (schedule === "constant") return peak;
  const floor = peak * minRatio;
  if (step >= totalSteps) return floor;
  const p = (step - warmup) / (totalSteps - warmup);
  return floor + ((peak - floor) * (1 + Math.cos(Math.PI * p))) / 2;
}
