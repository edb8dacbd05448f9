/**
 * Pooling of block outputs on JS arrays: the shape a tap's features take, and the pooled values
 * added (scaled, for ensembles) into a running sum, in one pass over the block output.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { addPooled, pooledShape } from "./_pool.ts";
 *
 * // One 2×2 map with 1 channel, globally averaged.
 * const block = { data: new Float32Array([1, 2, 3, 6]), shape: [1, 2, 2, 1] };
 * assert.deepEqual(pooledShape([2, 2, 1], "mean", "b"), [1]);
 * const sum = new Float32Array(1);
 * addPooled(sum, block, "mean", 1);
 * assert.deepEqual([...sum], [3]);
 * ```
 *
 * @module
 */
import type { BlockArray } from "../engine/extractor.ts";
import type { Pooling } from "./tap.ts";

/**
 * The per-sample feature shape of a block output of per-sample shape `shape` (`[H, W, C]` or
 * `[W, C]`) under `pool`. Throws a `RangeError` naming the block when a pooling size does not
 * divide the map.
 */
export function pooledShape(shape: readonly number[], pool: Pooling, block: string): number[] {
  const spatial = shape.slice(0, -1);
  const c = shape[shape.length - 1];
  if (pool === "none") return [...shape];
  if (pool === "mean") return [c];
  for (const d of spatial) {
    if (d % pool.size !== 0) {
      throw new RangeError(
        `Pooling size must divide block ${block}'s ${spatial.join("×")} map, got ${pool.size}`,
      );
    }
  }
  return [...spatial.map(() => pool.size), c];
}

/**
 * Adds `scale` × the pooled `block` (`[N, H, W, C]` or `[N, W, C]`) into `sum`
 * (`N × pooledShape` values). Window means are taken in float64.
 */
export function addPooled(
  sum: Float32Array,
  block: BlockArray,
  pool: Pooling,
  scale: number,
): void {
  const { data, shape } = block;
  const [n, c] = [shape[0], shape[shape.length - 1]];
  const [h, w] = shape.length === 4 ? [shape[1], shape[2]] : [1, shape[1]];
  if (pool === "none") {
    for (let i = 0; i < data.length; i++) sum[i] += data[i] * scale;
    return;
  }
  // Output grid kh × kw of windows wh × ww (signals: one row).
  const [kh, kw] = pool === "mean" ? [1, 1] : [shape.length === 4 ? pool.size : 1, pool.size];
  const [wh, ww] = [h / kh, w / kw];
  const acc = new Float64Array(c);
  const norm = scale / (wh * ww);
  for (let s = 0; s < n; s++) {
    for (let oy = 0; oy < kh; oy++) {
      for (let ox = 0; ox < kw; ox++) {
        acc.fill(0);
        for (let y = oy * wh; y < (oy + 1) * wh; y++) {
          for (let x = ox * ww; x < (ox + 1) * ww; x++) {
            const at = ((s * h + y) * w + x) * c;
            for (let ch = 0; ch < c; ch++) acc[ch] += data[at + ch];
          }
        }
        const out = ((s * kh + oy) * kw + ox) * c;
        for (let ch = 0; ch < c; ch++) sum[out + ch] += acc[ch] * norm;
      }
    }
  }
}
