/**
 * The random draws of one training step, a pure function of `(seed, step)`: the batch (from a
 * per-epoch permutation of the data), a timestep per sample, optional flips, the noise and the
 * dropout seed. A run resumed at step `s` therefore replays exactly what the uninterrupted run
 * would have drawn. Internal to `src/train/`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { StepDraws } from "./_draws.ts";
 *
 * const a = new StepDraws({ seed: 1, samples: 10, batchSize: 4, timesteps: 1000, sampleSize: 3 });
 * const b = new StepDraws({ seed: 1, samples: 10, batchSize: 4, timesteps: 1000, sampleSize: 3 });
 * assert.deepEqual(a.draw(7), b.draw(7));
 * ```
 *
 * @module
 */
import { Random } from "../base/random.ts";

/** What one step draws. */
export interface Draws {
  /** Rows of the data in the batch. */
  indices: Int32Array;
  /** One timestep in [0, T) per sample. */
  timesteps: Int32Array;
  /** 1 where a sample is flipped along its width, or null without flips. */
  flips: Uint8Array | null;
  /** Standard normal noise, `batchSize · sampleSize` values. */
  noise: Float32Array;
  /** The seed of the step's dropout masks. */
  dropoutSeed: number;
}

/** Options of {@linkcode StepDraws}. */
export interface StepDrawsOptions {
  /** The run's seed. */
  seed: number;
  /** Rows of the data. */
  samples: number;
  /** Samples per step. */
  batchSize: number;
  /** The schedule's number of timesteps T. */
  timesteps: number;
  /** Values per sample. */
  sampleSize: number;
  /** Whether to draw flips. */
  flip?: boolean;
}

/**
 * The draws of every step of a run (stream 1: the epoch permutations; stream 2: the rest of
 * step `s`). Keeps the permutation of the current epoch.
 */
export class StepDraws {
  #options: StepDrawsOptions;
  #epoch = -1;
  #order: Int32Array = new Int32Array(0);

  /** Draws for the run described by `options`. */
  constructor(options: StepDrawsOptions) {
    this.#options = { ...options };
  }

  /** The draws of 0-based `step`. */
  draw(step: number): Draws {
    const { seed, samples: n, batchSize, timesteps: T, sampleSize, flip } = this.#options;
    const indices = new Int32Array(batchSize);
    for (let i = 0; i < batchSize; i++) {
      const k = step * batchSize + i;
      const e = Math.floor(k / n);
      if (e !== this.#epoch) {
        this.#epoch = e;
        this.#order = permutation(n, Random.counter(seed, 1, e));
      }
      indices[i] = this.#order[k % n];
    }
    const rng = Random.counter(seed, 2, step);
    const timesteps = Int32Array.from({ length: batchSize }, () => Math.floor(rng.open() * T));
    const flips = flip
      ? Uint8Array.from({ length: batchSize }, () => (rng.open() < 0.5 ? 1 : 0))
      : null;
    const noise = rng.normals(new Float32Array(batchSize * sampleSize));
    const dropoutSeed = rng.uint32() % 0x7fffffff;
    return { indices, timesteps, flips, noise, dropoutSeed };
  }
}

/**
 * A permutation of `0 .. n − 1` (Fisher–Yates drawing `floor(open() · (i + 1))`). Not
 * `Random.shuffle`, whose draws use `next()` ([0, 1)): the two differ for rare draws, and the
 * batch order of earlier runs must stay bit-identical.
 */
function permutation(n: number, rng: Random): Int32Array {
  const p = Int32Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rng.open() * (i + 1));
    const tmp = p[i];
    p[i] = p[j];
    p[j] = tmp;
  }
  return p;
}
