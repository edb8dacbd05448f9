/**
 * The learning rate of diffusion pre-training: a linear warm-up to the peak, then either the
 * peak held constant or a half cosine down to a floor.
 *
 * @example
 * ```ts
 * import { learningRateAt } from "./lr_schedule.ts";
 *
 * const options = { peak: 2e-4, warmupSteps: 10, totalSteps: 100, schedule: "cosine" as const };
 * console.log(learningRateAt(0, options), learningRateAt(9, options)); // 0.00002 0.0002
 * ```
 *
 * @module
 */

/** Options of {@linkcode learningRateAt}. */
export interface LearningRateOptions {
  /** The peak rate, reached at the last warm-up step. */
  peak: number;
  /** Warm-up steps (default 0). */
  warmupSteps?: number;
  /** Total steps of the run (needed by `"cosine"`). */
  totalSteps: number;
  /** After warm-up: `"constant"` or `"cosine"` (default `"cosine"`). */
  schedule?: "constant" | "cosine";
  /** The floor of the cosine, as a fraction of the peak (default 0). */
  minRatio?: number;
}

/**
 * The learning rate of 0-based `step`: `peak · (step + 1) / warmupSteps` during warm-up, then
 * the peak (constant) or `floor + (peak − floor) · (1 + cos(π · p)) / 2` with
 * `p = (step − warmupSteps) / (totalSteps − warmupSteps)` (cosine).
 *
 * @example
 * ```ts
 * import { learningRateAt } from "./lr_schedule.ts";
 *
 * console.log(learningRateAt(50, { peak: 1, totalSteps: 100, schedule: "cosine" })); // 0.5
 * console.log(learningRateAt(50, { peak: 1, totalSteps: 100, schedule: "constant" })); // 1
 * ```
 */
export function learningRateAt(step: number, options: LearningRateOptions): number {
  const { peak, totalSteps } = options;
  const warmup = options.warmupSteps ?? 0;
  const minRatio = options.minRatio ?? 0;
  if (!Number.isInteger(step) || step < 0) {
    throw new RangeError(`Step ${step} is not an integer >= 0`);
  }
  if (!(peak >= 0) || !Number.isFinite(peak)) {
    throw new RangeError(`Learning rate ${peak} is not a finite number >= 0`);
  }
  if (!Number.isInteger(warmup) || warmup < 0) {
    throw new RangeError(`Warm-up steps ${warmup} is not an integer >= 0`);
  }
  if (!(minRatio >= 0 && minRatio <= 1)) {
    throw new RangeError(`Minimum learning-rate ratio ${minRatio} is not in [0, 1]`);
  }
  if (step < warmup) return (peak * (step + 1)) / warmup;
  const schedule = options.schedule ?? "cosine";
  if (schedule === "constant") return peak;
  if (schedule !== "cosine") {
    throw new RangeError(
      `Unknown learning-rate schedule ${JSON.stringify(schedule)}: expected "constant" or "cosine"`,
    );
  }
  const span = Math.max(1, totalSteps - warmup);
  const p = Math.min(1, (step - warmup) / span);
  const floor = peak * minRatio;
  return floor + ((peak - floor) * (1 + Math.cos(Math.PI * p))) / 2;
}
