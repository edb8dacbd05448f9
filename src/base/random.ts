/**
 * One seeded generator (sfc32) for the whole package, with the seedings its users rely on as
 * named constructors, so that noise streams, training runs, head initialisations and cache keys
 * stay bit-identical to earlier versions:
 *
 * - {@linkcode Random.stream}`(seed, index)`: the per-sample noise stream (murmur3-style mixes of
 *   seed and index). Sample `i`'s noise is a function of `(seed, i)` only.
 * - {@linkcode Random.counter}`(seed, stream, counter)`: training's counter-based draws: every step
 *   `s` of stream `k` gets a fresh generator, so resuming needs no generator state.
 * - {@linkcode Random.seeded}`(seed, stream)`: heads' weight initialisation and batch order
 *   (splitmix32 expansion of the seed).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Random } from "./random.ts";
 *
 * const a = Random.seeded(7), b = Random.seeded(7);
 * assert.equal(a.uint32(), b.uint32());
 * assert.notEqual(Random.seeded(7, 1).uint32(), Random.seeded(7).uint32());
 * ```
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

/** One splitmix32 step: the next state and its output. */
function splitmix32(state: number): [number, number] {
  state = (state + 0x9e3779b9) | 0;
  let z = state;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  z ^= z >>> 16;
  return [state, z >>> 0];
}

/**
 * The sfc32 generator. Create it with one of the named constructors; `new Random(a, b, c, d)`
 * takes a raw state and warms it up by 12 draws.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Random } from "./random.ts";
 *
 * const r = Random.counter(1, 2, 3);
 * const x = r.open();
 * assert(x > 0 && x < 1);
 * ```
 */
export class Random {
  #a: number;
  #b: number;
  #c: number;
  #d: number;
  #spare: number | undefined;

  /** A generator from a raw sfc32 state, warmed up by 12 draws. */
  constructor(a: number, b: number, c: number, d: number) {
    this.#a = a | 0;
    this.#b = b | 0;
    this.#c = c | 0;
    this.#d = d | 0;
    for (let i = 0; i < 12; i++) this.uint32();
  }

  /**
   * The per-sample noise stream `(seed, index)`: the same numbers for sample `index` however the
   * samples are batched.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { Random } from "./random.ts";
   *
   * assert.equal(Random.stream(0, 5).uint32(), Random.stream(0, 5).uint32());
   * ```
   */
  static stream(seed: number, index: number): Random {
    return new Random(mix(seed, index), mix(index, seed ^ 0x5bd1e995), mix(seed + 1, index + 1), 1);
  }

  /**
   * Training's counter-based generator of stream `stream` at step `counter` for `seed`
   * (seed and counter may use up to 53 bits).
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { Random } from "./random.ts";
   *
   * assert.equal(Random.counter(9, 1, 100).uint32(), Random.counter(9, 1, 100).uint32());
   * ```
   */
  static counter(seed: number, stream = 0, counter = 0): Random {
    const s = fold(seed), k = mix(stream, fold(counter));
    return Random.stream(s, k);
  }

  /**
   * Heads' generator: `seed` expanded by splitmix32; different `stream`s are independent.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { Random } from "./random.ts";
   *
   * const r = Random.seeded(42);
   * const x = r.next();
   * assert(x >= 0 && x < 1);
   * ```
   */
  static seeded(seed: number, stream = 0): Random {
    let s = (Math.trunc(seed) ^ Math.imul(stream + 1, 0x27d4eb2d)) | 0;
    s ^= Math.trunc(seed / 0x100000000) | 0; // the high bits of large seeds
    const words: number[] = [];
    for (let i = 0; i < 4; i++) {
      const [next, out] = splitmix32(s);
      s = next;
      words.push(out);
    }
    return new Random(words[0], words[1], words[2], words[3]);
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

  /** A uniform number in [0, 1). */
  next(): number {
    return this.uint32() / 0x100000000;
  }

  /** A uniform number in the open interval (0, 1) (never 0, so `log` is safe). */
  open(): number {
    return (this.uint32() + 0.5) / 0x100000000;
  }

  /** A uniform integer in [0, n), from {@linkcode Random.prototype.next}. */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  /** A uniform number in [low, high). */
  uniform(low: number, high: number): number {
    return low + (high - low) * this.next();
  }

  /** A standard normal number (Box–Muller on `next`, the second of each pair kept for later). */
  normal(): number {
    if (this.#spare !== undefined) {
      const s = this.#spare;
      this.#spare = undefined;
      return s;
    }
    let u = 0;
    while (u === 0) u = this.next();
    const v = this.next();
    const r = Math.sqrt(-2 * Math.log(u));
    this.#spare = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  }

  /** A normal number with standard deviation `std`, redrawn until within ±2 std. */
  truncatedNormal(std: number): number {
    for (;;) {
      const z = this.normal();
      if (z >= -2 && z <= 2) return z * std;
    }
  }

  /**
   * Fills `out` with standard normal values (Box–Muller on `open`, both values of each pair
   * used in order) and returns it: the noise streams' normals.
   */
  normals(out: Float32Array): Float32Array {
    for (let i = 0; i < out.length; i += 2) {
      const r = Math.sqrt(-2 * Math.log(this.open()));
      const theta = 2 * Math.PI * this.open();
      out[i] = r * Math.cos(theta);
      if (i + 1 < out.length) out[i + 1] = r * Math.sin(theta);
    }
    return out;
  }

  /** Shuffles `array` in place (Fisher–Yates with {@linkcode Random.prototype.int}) and returns it. */
  shuffle<T extends { length: number; [i: number]: number }>(array: T): T {
    for (let i = array.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const tmp = array[i];
      array[i] = array[j];
      array[j] = tmp;
    }
    return array;
  }
}
