/**
 * Shapes in messages and index arithmetic. Internal to `src/heads/`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { formatShape, unravel } from "./_shape.ts";
 *
 * assert.equal(formatShape([2, 3]), "[2, 3]");
 * assert.deepEqual(unravel(5, [2, 3]), [1, 2]);
 * ```
 *
 * @module
 */

/** Formats a shape as `[a, b, c]` for messages. */
export function formatShape(shape: readonly number[]): string {
  return `[${shape.join(", ")}]`;
}

/** The number of elements of `shape`. */
export function sizeOf(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** Turns a flat row-major index into a position in `shape`. */
export function unravel(index: number, shape: readonly number[]): number[] {
  const position = new Array<number>(shape.length);
  for (let i = shape.length - 1; i >= 0; i--) {
    position[i] = index % shape[i];
    index = Math.floor(index / shape[i]);
  }
  return position;
}

/** Whether two shapes are equal. */
export function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}
