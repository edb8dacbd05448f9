/**
 * The loss curve of a training run as SVG: the per-step loss and its bias-corrected exponential
 * moving average, on a log scale, binned to at most 1,500 points.
 *
 * @module
 */
import { dirname } from "node:path";
import { writeFileAtomic } from "../base/atomic_write.ts";
import { linePlotSvg } from "../report/line_plot.ts";

/** Averages `values` over at most `bins` equal bins. */
function binned(values: readonly number[], bins: number): { x: number[]; y: number[] } {
  const n = values.length, b = Math.min(n, bins);
  const x: number[] = [], y: number[] = [];
  for (let i = 0; i < b; i++) {
    const lo = Math.floor((i * n) / b), hi = Math.floor(((i + 1) * n) / b);
    let s = 0;
    for (let j = lo; j < hi; j++) s += values[j];
    x.push((lo + hi + 1) / 2);
    y.push(s / (hi - lo));
  }
  return { x, y };
}

/**
 * Writes the loss curve (per-step loss and its exponential moving average, log scale) as SVG,
 * atomically, creating the folder if needed.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { writeLossCurve } from "@diffprobe/core";
 *
 * const dir = await Deno.makeTempDir();
 * await writeLossCurve(`${dir}/loss.svg`, [1, 0.8, 0.5, 0.45, 0.3]);
 * assert.ok((await Deno.readTextFile(`${dir}/loss.svg`)).startsWith("<svg"));
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function writeLossCurve(path: string, losses: readonly number[]): Promise<void> {
  // Exponential moving average with bias correction (as Adam's moments).
  const smooth: number[] = [];
  let s = 0;
  losses.forEach((l, i) => {
    s = 0.98 * s + 0.02 * l;
    smooth.push(s / (1 - 0.98 ** (i + 1)));
  });
  const raw = binned(losses, 1500), avg = binned(smooth, 1500);
  const svg = await linePlotSvg([
    { name: "loss", x: raw.x, y: raw.y },
    { name: "moving average", x: avg.x, y: avg.y },
  ], { title: "Diffusion training loss", xLabel: "step", yLabel: "MSE (noise)", logY: true });
  await Deno.mkdir(dirname(path) || ".", { recursive: true });
  await writeFileAtomic(path, svg);
}
