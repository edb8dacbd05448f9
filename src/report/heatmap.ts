/**
 * SVG heatmaps of sweep results (t × block), rendered by vega-lite + vega's headless SVG
 * renderer — no browser, no canvas.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { heatmapSvg } from "./heatmap.ts";
 *
 * const svg = await heatmapSvg([
 *   { t: 10, block: "17 up_blocks.1.0", value: 0.55 },
 *   { t: 30, block: "17 up_blocks.1.0", value: 0.58 },
 * ], { title: "Linear probe accuracy", valueLabel: "accuracy" });
 * assert.ok(svg.startsWith("<svg"));
 * ```
 *
 * @module
 */
import type { TopLevelSpec } from "vega-lite";
import { renderSvg } from "./_render.ts";

/** One cell of a heatmap. */
export interface HeatmapCell {
  /** Column: the timestep. */
  t: number;
  /** Row label, e.g. `"17 up_blocks.1.0"`; rows keep their first-seen order. */
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
  /** Decimal digits of each value as a fraction (default 3: 0.553, or 55.3 with `percent`). */
  digits?: number;
  /**
   * Show values (fractions) as percentages, in the cells and the legend (default: true when
   * `valueLabel` is `"accuracy"`).
   */
  percent?: boolean;
}

/**
 * Renders the cells as an SVG heatmap (columns t, rows blocks with their full names, the best
 * cell outlined in red, each cell's value printed in a colour readable on it).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { heatmapSvg } from "@diffprobe/core";
 *
 * const svg = await heatmapSvg([
 *   { t: 10, block: "17 up_blocks.1.0", value: 0.553 },
 *   { t: 30, block: "17 up_blocks.1.0", value: 0.581 },
 * ], { title: "Linear probe accuracy", valueLabel: "accuracy" });
 * assert.ok(svg.includes("58.1")); // accuracy is shown in percent
 * assert.ok(svg.includes("17 up_blocks.1.0")); // full block names
 *
 * const mse = await heatmapSvg([{ t: 10, block: "16", value: 0.004 }], {
 *   valueLabel: "MSE (normalised)",
 *   higherIsBetter: false,
 * });
 * assert.ok(mse.includes("0.004") && mse.includes("MSE (normalised)"));
 * ```
 */
export async function heatmapSvg(
  cells: readonly HeatmapCell[],
  options: HeatmapOptions = {},
): Promise<string> {
  if (cells.length === 0) throw new RangeError("A heatmap needs at least one cell");
  const style = heatmapStyle(options);
  const blocks = [...new Set(cells.map((c) => c.block))];
  const ts = [...new Set(cells.map((c) => c.t))];
  // Blocks are rows, so that their full names read horizontally; noise levels are columns.
  const spec: TopLevelSpec = {
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    title: options.title ?? "",
    data: { values: cellRows(cells, style) },
    width: Math.max(120, 56 * ts.length),
    height: 22 * blocks.length,
    config: { view: { stroke: null } },
    encoding: axesEncoding(blocks),
    layer: cellLayers(style),
  };
  return await renderSvg(spec);
}

/** The layered form of a vega-lite spec, which a heatmap is. */
type LayeredSpec = Extract<TopLevelSpec, { layer: unknown }>;

/** The resolved display options of a heatmap. */
interface HeatmapStyle {
  higher: boolean;
  label: string;
  percent: boolean;
  /** Digits printed (in percent, two fewer than asked). */
  digits: number;
}

/** Fills in {@linkcode HeatmapOptions}' defaults. */
function heatmapStyle(options: HeatmapOptions): HeatmapStyle {
  const higher = options.higherIsBetter ?? true;
  const label = options.valueLabel ?? "value";
  const percent = options.percent ?? label === "accuracy";
  // Digits of the value; in percent, two fewer (0.553 with 3 digits shows as 55.3).
  const digits = Math.max(0, (options.digits ?? 3) - (percent ? 2 : 0));
  return { higher, label, percent, digits };
}

/** The data rows: each cell with its printed text, whether it is the best, and text colour. */
function cellRows(
  cells: readonly HeatmapCell[],
  { higher, percent, digits }: HeatmapStyle,
): Record<string, unknown>[] {
  const best = cells.reduce((a, b) => (higher ? b.value > a.value : b.value < a.value) ? b : a);
  const lo = Math.min(...cells.map((c) => c.value)), hi = Math.max(...cells.map((c) => c.value));
  return cells.map((c) => {
    // Where the cell sits on the colour scale, 0 = darkest purple … 1 = brightest yellow.
    const position = hi > lo ? (c.value - lo) / (hi - lo) : 0.5;
    return {
      t: c.t,
      block: c.block,
      value: c.value,
      text: percent ? (c.value * 100).toFixed(digits) : c.value.toFixed(digits),
      best: c === best,
      // viridis is bright from about 60 % of its range: dark text there, white text below.
      bright: (higher ? position : 1 - position) > 0.6,
    };
  });
}

/** Rows: the blocks in first-seen order, full names; columns: t ascending, labels on top. */
function axesEncoding(blocks: string[]): LayeredSpec["encoding"] {
  return {
    y: {
      field: "block",
      type: "ordinal",
      sort: blocks,
      title: "block",
      // The axis title sits above the block names, level with the t labels.
      axis: {
        labelLimit: 0,
        labelFontSize: 11,
        titleAngle: 0,
        titleAlign: "right",
        titleBaseline: "bottom",
        titleX: -6,
        titleY: -6,
      },
    },
    x: {
      field: "t",
      type: "ordinal",
      sort: "ascending",
      title: "noise level t",
      axis: { labelAngle: 0, orient: "top" },
    },
  };
}

/** The coloured cells, the red outline of the best one, and the printed values. */
function cellLayers({ higher, label, percent }: HeatmapStyle): LayeredSpec["layer"] {
  return [
    {
      mark: "rect",
      encoding: {
        color: {
          field: "value",
          type: "quantitative",
          title: percent ? `${label} (%)` : label,
          scale: { scheme: "viridis", reverse: !higher },
          legend: percent ? { format: ".0%" } : { format: ".2~g" },
        },
      },
    },
    {
      mark: { type: "rect", fill: null, stroke: "red", strokeWidth: 2.5 },
      transform: [{ filter: "datum.best" }],
    },
    {
      mark: { type: "text", fontSize: 10 },
      encoding: {
        text: { field: "text" },
        color: { condition: { test: "datum.bright", value: "black" }, value: "white" },
      },
    },
  ];
}
