/**
 * SVG heatmaps of sweep results (t × block), rendered by vega-lite + vega's headless SVG
 * renderer — no browser, no canvas.
 *
 * @example
 * ```ts
 * import { heatmapSvg } from "./heatmap.ts";
 *
 * const svg = await heatmapSvg([
 *   { t: 10, block: "17 up_blocks.1.0", value: 0.55 },
 *   { t: 30, block: "17 up_blocks.1.0", value: 0.58 },
 * ], { title: "Linear probe accuracy", valueLabel: "accuracy" });
 * console.log(svg.startsWith("<svg")); // true
 * ```
 *
 * @module
 */
import type { TopLevelSpec } from "vega-lite";
import { renderSvg } from "./_render.ts";

/** One cell of a heatmap. */
export interface HeatmapCell {
  /** Row: the timestep. */
  t: number;
  /** Column label, e.g. `"17 up_blocks.1.0"`; columns keep their first-seen order. */
  block: string;
  /** The value shown by colour and printed in the cell. */
  value: number;
}

/** Options of {@linkcode heatmapSvg}. */
export interface HeatmapOptions {
  /** Chart title. */
  title?: string;
  /** Name of the value in the legend (default `"value"`). */
  valueLabel?: string;
  /** Higher is better (default true); flips the colour scale for losses. */
  higherIsBetter?: boolean;
  /** Digits printed in each cell (default 3). */
  digits?: number;
}

/**
 * Renders the cells as an SVG heatmap (rows t, columns blocks, the best cell outlined).
 *
 * @example
 * ```ts
 * import { heatmapSvg } from "./heatmap.ts";
 *
 * const svg = await heatmapSvg([{ t: 10, block: "16", value: 0.004 }], { higherIsBetter: false });
 * console.log(svg.includes("0.004")); // true
 * ```
 */
export async function heatmapSvg(
  cells: readonly HeatmapCell[],
  options: HeatmapOptions = {},
): Promise<string> {
  if (cells.length === 0) throw new RangeError("A heatmap needs at least one cell");
  const higher = options.higherIsBetter ?? true;
  const label = options.valueLabel ?? "value";
  const digits = options.digits ?? 3;
  const best = cells.reduce((a, b) => (higher ? b.value > a.value : b.value < a.value) ? b : a);
  const values = cells.map((c) => ({
    t: c.t,
    block: c.block,
    value: c.value,
    text: c.value.toFixed(digits),
    best: c === best,
  }));
  const columns = [...new Set(cells.map((c) => c.block))];
  const spec: TopLevelSpec = {
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    title: options.title ?? "",
    data: { values },
    width: Math.max(200, 46 * columns.length),
    height: Math.max(80, 32 * new Set(cells.map((c) => c.t)).size),
    encoding: {
      x: {
        field: "block",
        type: "ordinal",
        sort: columns,
        title: "block",
        axis: { labelAngle: -45 },
      },
      y: { field: "t", type: "ordinal", sort: "ascending", title: "t" },
    },
    layer: [
      {
        mark: "rect",
        encoding: {
          color: {
            field: "value",
            type: "quantitative",
            title: label,
            scale: { scheme: "viridis", reverse: !higher },
          },
        },
      },
      {
        mark: { type: "rect", fill: null, stroke: "red", strokeWidth: 2 },
        transform: [{ filter: "datum.best" }],
      },
      {
        mark: { type: "text", fontSize: 9 },
        encoding: {
          text: { field: "text" },
          color: { value: "white" },
        },
      },
    ],
  } as TopLevelSpec;
  return await renderSvg(spec);
}
