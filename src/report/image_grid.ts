/**
 * Image grids as PNG: a batch of NHWC images with values in [-1, 1] (the diffusion convention),
 * tiled row by row with a gap between cells, encoded by `pngjs`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import * as tf from "@tensorflow/tfjs";
 * import { imageGridPng } from "./image_grid.ts";
 *
 * const png = imageGridPng(tf.zeros([6, 8, 8, 3]), { columns: 3 });
 * assert.deepEqual([...png.subarray(1, 4)], [0x50, 0x4e, 0x47]); // "PNG"
 * ```
 *
 * @module
 */
import type * as tf from "@tensorflow/tfjs";
import { PNG } from "pngjs";
import { dirname } from "node:path";

/** Options of {@linkcode imageGridPng}. */
export interface ImageGridOptions {
  /** Images per row (default `ceil(sqrt(N))`). */
  columns?: number;
  /** Pixels between cells (default 2). */
  gap?: number;
  /** Each image pixel becomes a `scale × scale` block (default 1). */
  scale?: number;
  /** Gap colour as `[r, g, b]` in 0..255 (default white). */
  background?: [number, number, number];
}

/**
 * Encodes `images` (`[N, H, W, C]`, C = 1 or 3, values in [-1, 1]; values outside are clipped)
 * as one PNG grid.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { imageGridPng, tf } from "@diffprobe/core";
 *
 * const png = imageGridPng(tf.randomUniform([4, 16, 16, 1], -1, 1), { scale: 2 });
 * assert.deepEqual([...png.subarray(1, 4)], [0x50, 0x4e, 0x47]); // "PNG"
 * ```
 */
export function imageGridPng(images: tf.Tensor, options: ImageGridOptions = {}): Uint8Array {
  if (images.rank !== 4 || (images.shape[3] !== 1 && images.shape[3] !== 3)) {
    throw new RangeError(
      `Images must be [N, H, W, C] with C = 1 or 3, got shape [${images.shape}]`,
    );
  }
  const [n, h, w, c] = images.shape;
  if (n < 1) throw new RangeError("No images to draw");
  const columns = options.columns ?? Math.ceil(Math.sqrt(n));
  const gap = options.gap ?? 2;
  const scale = options.scale ?? 1;
  for (
    const [name, v, min] of [["columns", columns, 1], ["gap", gap, 0], ["scale", scale, 1]] as const
  ) {
    if (!Number.isInteger(v) || v < min) {
      throw new RangeError(`Grid ${name} ${v} is not an integer >= ${min}`);
    }
  }
  const rows = Math.ceil(n / columns);
  const cw = w * scale, ch = h * scale;
  const width = columns * cw + (columns + 1) * gap;
  const height = rows * ch + (rows + 1) * gap;
  const png = new PNG({ width, height });
  const [br, bg, bb] = options.background ?? [255, 255, 255];
  for (let i = 0; i < width * height; i++) {
    png.data[4 * i] = br;
    png.data[4 * i + 1] = bg;
    png.data[4 * i + 2] = bb;
    png.data[4 * i + 3] = 255;
  }
  const values = images.dataSync();
  const byte = (v: number) => Math.max(0, Math.min(255, Math.round((v + 1) * 127.5)));
  for (let k = 0; k < n; k++) {
    const ox = gap + (k % columns) * (cw + gap), oy = gap + Math.floor(k / columns) * (ch + gap);
    for (let y = 0; y < ch; y++) {
      for (let x = 0; x < cw; x++) {
        const src = ((k * h + Math.floor(y / scale)) * w + Math.floor(x / scale)) * c;
        const dst = 4 * ((oy + y) * width + ox + x);
        for (let j = 0; j < 3; j++) png.data[dst + j] = byte(values[src + (c === 3 ? j : 0)]);
      }
    }
  }
  return new Uint8Array(PNG.sync.write(png));
}

/**
 * Writes {@linkcode imageGridPng}'s output to `path` (atomically, creating the folder).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { tf, writeImageGrid } from "@diffprobe/core";
 *
 * const dir = await Deno.makeTempDir();
 * await writeImageGrid(`${dir}/samples.png`, tf.zeros([2, 4, 4, 3]));
 * assert.ok((await Deno.stat(`${dir}/samples.png`)).isFile);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function writeImageGrid(
  path: string,
  images: tf.Tensor,
  options: ImageGridOptions = {},
): Promise<void> {
  const bytes = imageGridPng(images, options);
  await Deno.mkdir(dirname(path), { recursive: true });
  const tmp = `${path}.${crypto.randomUUID()}.tmp`;
  await Deno.writeFile(tmp, bytes);
  await Deno.rename(tmp, path);
}
