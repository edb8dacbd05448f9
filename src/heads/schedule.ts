/**
 * The learning-rate schedule used by head training: linear warm-up followed by cosine decay
 * to zero.
 *
 * @module
 */

/** Options for {@linkcode warmupCosine}. */
export interface WarmupCosineOptions {
  /** The peak learning rate, reached at the end of warm-up. */
  peak: number;
  /** The total number of optimisation steps (warm-up included). */
  totalSteps: number;
  /** The number of warm-up steps; 0 starts directly at the peak. Default 0. */
  warmupSteps?: number;
}

/**
 * The learning rate at 0-based optimisation `step`.
 *
 * During warm-up (`step < warmupSteps`) the rate rises linearly: `peak * (step + 1) /
 * warmupSteps`, so the first step already moves and the last warm-up step uses the peak.
 * After warm-up it follows a half cosine from the peak towards 0 over the remaining
 * `totalSteps - warmupSteps` steps: `peak * (1 + cos(pi * p)) / 2` with
 * `p = (step - warmupSteps) / (totalSteps - warmupSteps)`. Steps at or beyond `totalSteps`
 * give 0.
 *
 * @example Ten steps, two of warm-up
 * ```ts
 * import { warmupCosine } from "./schedule.ts";
 * const lrs = Array.from({ length: 10 }, (_, s) =>
 *   warmupCosine(s, { peak: 1e-3, totalSteps: 10, warmupSteps: 2 }));
 * // lrs[0] = 5e-4, lrs[1] = lrs[2] = 1e-3, then down to lrs[9] ≈ 3.8e-5
 * if (Math.abs(lrs[0] - 5e-4) > 1e-12) throw new Error("unexpected warm-up");
 * ```
 *
 * @param step The 0-based step index.
 * @param options The peak, the total number of steps and the warm-up length.
 * @returns The learning rate for that step.
 */
export function warmupCosine(step: number, options: WarmupCosineOptions): number {
  const { peak, totalSteps } = options;
  const warmupSteps = options.warmupSteps ?? 0;
  if (!Number.isInteger(step) || step < 0) {
    throw new RangeError(`Step must be a non-negative integer, got ${step}`);
  }
  if (!Number.isInteger(totalSteps) || totalSteps < 0) {
    throw new RangeError(`Total steps must be a non-negative integer, got ${totalSteps}`);
  }
  if (!Number.isInteger(warmupSteps) || warmupSteps < 0) {
    throw new RangeError(`Warm-up steps must be a non-negative integer, got ${warmupSteps}`);
  }
  if (!(peak >= 0) || !Number.isFinite(peak)) {
    throw new RangeError(`Peak learning rate must be a finite number >= 0, got ${peak}`);
  }
  if (step >= totalSteps) return 0;
  if (step < warmupSteps) return (peak * (step + 1)) / warmupSteps;
  const progress = (step - warmupSteps) / (totalSteps - warmupSteps);
  return (peak * (1 + Math.cos(Math.PI * progress))) / 2;
}
