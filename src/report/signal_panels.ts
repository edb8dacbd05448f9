/**
 * 1-D signals as SVG small multiples: one panel per signal (and per channel), drawn by
 * Vega-Lite and Vega's headless SVG renderer. Used to show what a 1-D diffusion model generates.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import * as tf from "@tensorflow/tfjs";
 * import { signalPanelsSvg } from "./signal_panels.ts";
 *
 * const waves = tf.sin(tf.linspace(0, 12, 64)).reshape([1, 64, 1]).tile([4, 1, 1]);
 * const svg = await signalPanelsSvg(waves, { title: "Samples" });
 * assert.ok(svg.startsWith("<svg"));
 * ```
 *
 * @module
 */
import type * as tf from "@tensorflow/tfjs";
import type { TopLevelSpec } from "vega-lite";
import { renderSvg } from "./_render.ts";
import { dirname } from "node:path";

/** Options of {@linkcode signalPanelsSvg}. */
export interface SignalPanelsOptions {
  /** Title above the panels. */
  title?: string;
  /** Panels per row (default 4). */
  columns?: number;
  /** Panel width in pixels (default 200). */
  width?: number;
  /** Panel height in pixels (default 80). */
  height?: number;
  /** Fixed vertical range (default `[-1, 1]`, the diffusion range; `null` fits the data). */
  yDomain?: [number, number] | null;
}

/**
 * Renders `signals` (`[N, W, C]`) as SVG: panel `i` shows signal `i`, one line per channel.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { signalPanelsSvg, tf } from "@diffprobe/core";
 *
 * const svg = await signalPanelsSvg(tf.zeros([2, 16, 2]), { columns: 2, yDomain: null });
 * assert.ok(svg.startsWith("<svg") && svg.includes("</svg>"));
 * ```
 */
export async function signalPanelsSvg(
  signals: tf.Tensor,
  options: SignalPanelsOptions = {},
): Promise<string> {
  if (signals.rank !== 3) {
    throw new RangeError(`Signals must be [N, W, C], got shape [${signals.shape}]`);
  }
  const [n, w, c] = signals.shape;
  if (n < 1) throw new RangeError("No signals to draw");
  const columns = options.columns ?? 4;
  if (!Number.isInteger(columns) || columns < 1) {
    throw new RangeError(`Panel columns ${columns} is not a positive integer`);
  }
  const data = signals.dataSync();
  const values: { sample: string; channel: string; x: number; y: number }[] = [];
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < c; j++) {
      for (let x = 0; x < w; x++) {
        values.push({ sample: `#${i + 1}`, channel: `ch ${j}`, x, y: data[(i * w + x) * c + j] });
      }
    }
  }
  const domain = options.yDomain === undefined ? [-1, 1] : options.yDomain;
  const spec = {
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    background: "white",
    ...(options.title ? { title: options.title } : {}),
    data: { values },
    facet: {
      field: "sample",
      type: "nominal",
      title: null,
      sort: Array.from({ length: n }, (_, i) => `#${i + 1}`),
    },
    columns,
    spec: {
      width: options.width ?? 200,
      height: options.height ?? 80,
      mark: { type: "line", strokeWidth: 1, clip: true },
      encoding: {
        x: { field: "x", type: "quantitative", title: null },
        y: {
          field: "y",
          type: "quantitative",
          title: null,
          scale: domain ? { domain } : { zero: false },
        },
        color: { field: "channel", type: "nominal", title: null, legend: c > 1 ? {} : null },
      },
    },
  } as unknown as TopLevelSpec;
  return await renderSvg(spec);
}

/**
 * Writes {@linkcode signalPanelsSvg}'s output to `path` (atomically, creating the folder).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { tf, writeSignalPanels } from "@diffprobe/core";
 *
 * const dir = await Deno.makeTempDir();
 * await writeSignalPanels(`${dir}/samples.svg`, tf.zeros([3, 32, 1]));
 * assert.ok((await Deno.stat(`${dir}/samples.svg`)).isFile);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function writeSignalPanels(
  path: string,
  signals: tf.Tensor,
  options: SignalPanelsOptions = {},
): Promise<void> {
  const svg = await signalPanelsSvg(signals, options);
  await Deno.mkdir(dirname(path), { recursive: true });
  const tmp = `${path}.${crypto.randomUUID()}.tmp`;
  await Deno.writeTextFile(tmp, svg);
  await Deno.rename(tmp, path);
}
