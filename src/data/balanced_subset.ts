/**
 * A seeded class-balanced subset of an image dataset: {@linkcode balancedSubset}.
 *
 * @module
 */

import { Random } from "../base/random.ts";
import { positiveInteger, safeInteger } from "../base/validate.ts";
import { type ImageDataset, subset } from "./image_dataset.ts";

/**
 * A seeded, class-balanced subset of `n` images of `ds`, in dataset order: every class gets
 * `⌊n / classes⌋` images, and the first `n mod classes` classes one more; a class with fewer
 * images gives all it has (so the subset is then smaller than `n`). Within each class the images
 * are drawn by a Fisher–Yates shuffle with `Random.seeded(seed)`, one generator running through
 * the classes in label order, so the same `(ds, n, seed)` always gives the same subset. When
 * `n >= ds.size` the dataset itself is returned (not a copy).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { balancedSubset, type ImageDataset } from "@diffprobe/core";
 *
 * const ds: ImageDataset = {
 *   pixels: Uint8Array.from({ length: 12 * 3 }, (_, i) => Math.floor(i / 3)),
 *   labels: new Int32Array([0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1]), // 8 of class a, 4 of b
 *   classes: ["a", "b"],
 *   size: 12,
 *   height: 1,
 *   width: 1,
 * };
 * const picked = balancedSubset(ds, 4, 1);
 * assert.deepEqual(Array.from(picked.labels).sort(), [0, 0, 1, 1]);
 * assert.deepEqual(balancedSubset(ds, 4, 1).pixels, picked.pixels); // seeded: same images again
 * assert.equal(balancedSubset(ds, 100, 1), ds); // n >= size: everything
 * ```
 *
 * @param ds The dataset to draw from.
 * @param n How many images to keep, a positive integer.
 * @param seed The seed of the draw, a safe integer.
 * @returns A new dataset of at most `n` images (or `ds` when `n >= ds.size`).
 * @throws {RangeError} If `n` is not a positive integer, `seed` not a safe integer, or a label
 *   is not an index into `ds.classes`.
 */
export function balancedSubset(ds: ImageDataset, n: number, seed: number): ImageDataset {
  positiveInteger(n, "Subset size");
  safeInteger(seed, "Subset seed");
  if (n >= ds.size) return ds;
  const classes = ds.classes.length;
  const byClass: number[][] = ds.classes.map(() => []);
  ds.labels.forEach((label, i) => {
    if (!(label >= 0 && label < classes)) {
      throw new RangeError(
        `Label of image ${i} must be an integer in [0, ${classes - 1}], got ${label}`,
      );
    }
    byClass[label].push(i);
  });
  const random = Random.seeded(seed);
  const picked: number[] = [];
  byClass.forEach((members, label) => {
    const quota = Math.floor(n / classes) + (label < n % classes ? 1 : 0);
    random.shuffle(members);
    picked.push(...members.slice(0, quota));
  });
  return subset(ds, picked.sort((a, b) => a - b));
}
