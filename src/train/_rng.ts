/**
 * Counter-based randomness for training and sampling: every draw of step `s` comes from a fresh
 * sfc32 generator seeded by `(seed, stream, s)`, so a run's randomness is a pure function of its
 * seed and the step number. Resuming at step `s` therefore needs no generator state beyond those
 * numbers, and replays the same batches, timesteps, flips, noise and dropout masks as an
 * uninterrupted run. Internal to `src/train/`.
 *
 * @module
 */

/** A 32-bit mix of two integers (murmur3-style finaliser). */
function mix(a: number, b: number): number {
  let h = Math.imul(a ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul((b + 0x632be5ab) | 0, 0xc2b2ae35);
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/** Folds a non-negative integer of up to 53 bits into 32 bits. */
function fold(n: number): number {
  return (Math.trunc(n) ^ Math.trunc(n / 0x100000000)) | 0;
}

/** The sfc32 generator of the stream `(seed, stream, counter)`. */
export class Rng {
  #a: number;
  #b: number;
  #c: number;
  #d = 1;

  /** Creates the generator of stream `stream` at position `counter` for `seed`. */
  constructor(seed: number, stream = 0, counter = 0) {
    const s = fold(seed), k = mix(stream, fold(counter));
    this.#a = mix(s, k);
    this.#b = mix(k, s ^ 0x5bd1e995);
    this.#c = mix((s + 1) | 0, (k + 1) | 0);
    for (let i = 0; i < 12; i++) this.uint32();
  }

  /** A uniform 32-bit unsigned integer. */
  uint32(): number {
    const t = (((this.#a + this.#b) | 0) + this.#d) | 0;
    this.#d = (this.#d + 1) | 0;
    this.#a = this.#b ^ (this.#b >>> 9);
    this.#b = (this.#c + (this.#c << 3)) | 0;
    this.#c = (this.#c << 21) | (this.#c >>> 11);
    this.#c = (this.#c + t) | 0;
    return t >>> 0;
  }

  /** A uniform number in (0, 1). */
  next(): number {
    return (this.uint32() + 0.5) / 4294967296;
  }

  /** A uniform integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  /** Fills `out` with standard normal values (Box–Muller) and returns it. */
  normals(out: Float32Array): Float32Array {
    for (let i = 0; i < out.length; i += 2) {
      const r = Math.sqrt(-2 * Math.log(this.next()));
      const theta = 2 * Math.PI * this.next();
      out[i] = r * Math.cos(theta);
      if (i + 1 < out.length) out[i + 1] = r * Math.sin(theta);
    }
    return out;
  }
}

/** A permutation of `0 .. n − 1` (Fisher–Yates with `rng`). */
export function permutation(n: number, rng: Rng): Int32Array {
  const p = new Int32Array(n);
  for (let i = 0; i < n; i++) p[i] = i;
  for (let i = n - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    const tmp = p[i];
    p[i] = p[j];
    p[j] = tmp;
  }
  return p;
}
