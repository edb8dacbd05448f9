/**
 * SVG line plots (loss curves, predictions against truth, signals), rendered by vega-lite +
 * vega's headless SVG renderer.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { linePlotSvg } from "./line_plot.ts";
 *
 * const svg = await linePlotSvg([
 *   { name: "truth", x: [0, 1, 2], y: [1, 2, 1.5] },
 *   { name: "probe", x: [0, 1, 2], y: [1.1, 1.8, 1.6] },
 * ], { title: "Wave height", xLabel: "hour", yLabel: "m" });
 * assert.ok(svg.startsWith("<svg"));
 * ```
 *
 * @module
 */
import type { TopLevelSpec } from "vega-lite";
import { renderSvg } from "./_render.ts";

/** One line. */
export interface LineSeries {
  /** Legend name. */
  name: string;
  /** X values (numbers, or epoch milliseconds with `xType: "time"`). */
  x: ArrayLike<number>;
  /** Y values; non-finite values leave a gap. */
  y: ArrayLike<number>;
  /** CSS colour of the line (default: the next of a fixed palette of distinct colours). */
  color?: string;
}

/** Options of {@linkcode linePlotSvg}. */
export interface LinePlotOptions {
  /** Chart title. */
  title?: string;
  /** X axis title. */
  xLabel?: string;
  /** Y axis title. */
  yLabel?: string;
  /** `"quantitative"` (default) or `"time"` (x in epoch milliseconds, UTC). */
  xType?: "quantitative" | "time";
  /** Logarithmic y axis (default false). */
  logY?: boolean;
  /** Width in pixels (default 640). */
  width?: number;
  /** Height in pixels (default 260). */
  height?: number;
  /**
   * Break a line where consecutive x values are further apart than this (missing data is then
   * drawn as a gap, not bridged by a straight segment). Default: never.
   */
  breakGaps?: number;
}

/** Distinct colours for series without one (observed data usually gets black). */
const PALETTE = ["#e45756", "#4c78a8", "#54a24b", "#b279a2", "#f58518", "#9d755d", "#72b7b2"];

/**
 * Renders the series as an SVG line chart.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { linePlotSvg } from "@diffprobe/core";
 *
 * const hour = 3600e3, start = Date.UTC(2014, 0, 1);
 * const x = [0, 1, 2, 10, 11].map((h) => start + h * hour); // hours 3–9 are missing
 * const svg = await linePlotSvg([
 *   { name: "observed", x, y: [1, 2, 1.5, 2.5, 2], color: "black" },
 *   { name: "probe", x, y: [1.1, 1.8, 1.6, 2.2, 2.1] },
 * ], { xType: "time", xLabel: "time (UTC)", yLabel: "height (m)", breakGaps: 1.5 * hour });
 * assert.ok(svg.includes("time (UTC)") && svg.includes("observed"));
 * ```
 */
export async function linePlotSvg(
  series: readonly LineSeries[],
  options: LinePlotOptions = {},
): Promise<string> {
  if (series.length === 0) throw new RangeError("A line plot needs at least one series");
  const values: { x: number; y: number | null; series: string }[] = [];
  const gap = options.breakGaps ?? Infinity;
  for (const s of series) {
    if (s.x.length !== s.y.length) {
      throw new RangeError(
        `Series "${s.name}" has ${s.x.length} x values but ${s.y.length} y values`,
      );
    }
    for (let i = 0; i < s.x.length; i++) {
      if (i > 0 && s.x[i] - s.x[i - 1] > gap) {
        values.push({ x: (s.x[i] + s.x[i - 1]) / 2, y: null, series: s.name }); // a break
      }
      values.push({ x: s.x[i], y: Number.isFinite(s.y[i]) ? s.y[i] : null, series: s.name });
    }
  }
  let next = 0;
  const colors = series.map((s) => s.color ?? PALETTE[next++ % PALETTE.length]);
  const time = options.xType === "time";
  const spec = {
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    title: options.title ?? "",
    width: options.width ?? 640,
    height: options.height ?? 260,
    data: { values },
    mark: { type: "line", clip: true, strokeWidth: 1.3, invalid: "break-paths-show-domains" },
    encoding: {
      x: {
        field: "x",
        type: time ? "temporal" : "quantitative",
        title: options.xLabel ?? "",
        ...(time
          ? {
            scale: { type: "utc" },
            axis: { format: "%b %d", labelFlush: true },
          }
          : {}),
      },
      y: {
        field: "y",
        type: "quantitative",
        title: options.yLabel ?? "",
        scale: options.logY ? { type: "log" } : { zero: false },
      },
      color: {
        field: "series",
        type: "nominal",
        title: "",
        sort: series.map((s) => s.name),
        scale: { domain: series.map((s) => s.name), range: colors },
        legend: { labelLimit: 0 },
      },
    },
  } as unknown as TopLevelSpec;
  return await renderSvg(spec);
}
