/**
 * Argument validators with one message style: `<what> must be <rule>, got <value>`.
 *
 * Every check of a caller's number, integer or option in this package goes through these, so
 * that messages read alike and name what was wrong and the value given. Bad values throw
 * `RangeError` (a number out of its range) or `TypeError` (a value of the wrong kind).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { positiveInteger } from "./validate.ts";
 *
 * assert.equal(positiveInteger(64, "Batch size"), 64);
 * assert.throws(() => positiveInteger(0, "Batch size"), {
 *   name: "RangeError",
 *   message: "Batch size must be a positive integer, got 0",
 * });
 * ```
 *
 * @module
 */

/**
 * Shows a value in a message: strings quoted, arrays and plain objects as JSON (shortened to 80
 * characters), everything else with `String`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { show } from "./validate.ts";
 *
 * assert.equal(show("abc"), '"abc"');
 * assert.equal(show([1, 2]), "[1,2]");
 * assert.equal(show(NaN), "NaN");
 * ```
 */
export function show(value: unknown): string {
  let text: string;
  if (typeof value === "string") text = JSON.stringify(value);
  else if (typeof value === "bigint") text = `${value}n`;
  else if (Array.isArray(value) || (typeof value === "object" && value !== null)) {
    try {
      text = JSON.stringify(value) ?? String(value);
    } catch {
      text = String(value);
    }
  } else text = String(value);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

/**
 * Returns `value` when it is an integer ≥ 1, else throws `RangeError`
 * (`"<what> must be a positive integer, got <value>"`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { positiveInteger } from "./validate.ts";
 *
 * assert.equal(positiveInteger(3, "Epochs"), 3);
 * assert.throws(() => positiveInteger(1.5, "Epochs"), RangeError);
 * ```
 */
export function positiveInteger(value: unknown, what: string): number {
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 1) {
    throw new RangeError(`${what} must be a positive integer, got ${show(value)}`);
  }
  return value;
}

/**
 * Returns `value` when it is an integer ≥ 0, else throws `RangeError`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { nonNegativeInteger } from "./validate.ts";
 *
 * assert.equal(nonNegativeInteger(0, "Warm-up steps"), 0);
 * assert.throws(() => nonNegativeInteger(-1, "Warm-up steps"), RangeError);
 * ```
 */
export function nonNegativeInteger(value: unknown, what: string): number {
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 0) {
    throw new RangeError(`${what} must be a non-negative integer, got ${show(value)}`);
  }
  return value;
}

/**
 * Returns `value` when it is a safe integer (any sign), else throws `RangeError`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { safeInteger } from "./validate.ts";
 *
 * assert.equal(safeInteger(-7, "Seed"), -7);
 * assert.throws(() => safeInteger(2 ** 60, "Seed"), RangeError);
 * ```
 */
export function safeInteger(value: unknown, what: string): number {
  if (typeof value !== "number" || !Number.isSafeInteger(value)) {
    throw new RangeError(`${what} must be a safe integer, got ${show(value)}`);
  }
  return value;
}

/**
 * Returns `value` when it is an integer in `[min, max]`, else throws `RangeError`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { integerInRange } from "./validate.ts";
 *
 * assert.equal(integerInRange(30, "Time step", 0, 999), 30);
 * assert.throws(() => integerInRange(1000, "Time step", 0, 999), {
 *   message: "Time step must be an integer in [0, 999], got 1000",
 * });
 * ```
 */
export function integerInRange(value: unknown, what: string, min: number, max: number): number {
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < min || value > max) {
    throw new RangeError(`${what} must be an integer in [${min}, ${max}], got ${show(value)}`);
  }
  return value;
}

/**
 * Returns `value` when it is a finite number, else throws `RangeError`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { finiteNumber } from "./validate.ts";
 *
 * assert.equal(finiteNumber(0.5, "Learning rate"), 0.5);
 * assert.throws(() => finiteNumber(NaN, "Learning rate"), RangeError);
 * ```
 */
export function finiteNumber(value: unknown, what: string): number {
  if (typeof value !== "number" || !Number.isFinite(value)) {
    throw new RangeError(`${what} must be a finite number, got ${show(value)}`);
  }
  return value;
}

/**
 * Returns `value` when it is a finite number > 0, else throws `RangeError`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { positiveNumber } from "./validate.ts";
 *
 * assert.equal(positiveNumber(1e-3, "Learning rate"), 1e-3);
 * assert.throws(() => positiveNumber(0, "Learning rate"), RangeError);
 * ```
 */
export function positiveNumber(value: unknown, what: string): number {
  if (typeof value !== "number" || !Number.isFinite(value) || value <= 0) {
    throw new RangeError(`${what} must be a positive finite number, got ${show(value)}`);
  }
  return value;
}

/**
 * Returns `value` when it is a finite number in `[min, max]`, else throws `RangeError`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { numberInRange } from "./validate.ts";
 *
 * assert.equal(numberInRange(0.1, "Dropout", 0, 1), 0.1);
 * assert.throws(() => numberInRange(1.5, "Dropout", 0, 1), {
 *   message: "Dropout must be a number in [0, 1], got 1.5",
 * });
 * ```
 */
export function numberInRange(value: unknown, what: string, min: number, max: number): number {
  if (typeof value !== "number" || !Number.isFinite(value) || value < min || value > max) {
    throw new RangeError(`${what} must be a number in [${min}, ${max}], got ${show(value)}`);
  }
  return value;
}

/**
 * Returns `value` when it is one of `choices`, else throws `TypeError` listing them.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { oneOf } from "./validate.ts";
 *
 * assert.equal(oneOf("cpu", "Device", ["auto", "cpu", "cuda"] as const), "cpu");
 * assert.throws(() => oneOf("gpu", "Device", ["auto", "cpu", "cuda"] as const), {
 *   name: "TypeError",
 *   message: 'Device must be one of "auto", "cpu", "cuda", got "gpu"',
 * });
 * ```
 */
export function oneOf<const T extends string>(
  value: unknown,
  what: string,
  choices: readonly T[],
): T {
  if (typeof value !== "string" || !(choices as readonly string[]).includes(value)) {
    throw new TypeError(
      `${what} must be one of ${choices.map((c) => JSON.stringify(c)).join(", ")}, got ${
        show(value)
      }`,
    );
  }
  return value as T;
}

/**
 * Returns `shape` when it is a non-empty array of positive integers, else throws `RangeError`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { positiveShape } from "./validate.ts";
 *
 * assert.deepEqual(positiveShape([4, 4, 64], "Input shape"), [4, 4, 64]);
 * assert.throws(() => positiveShape([4, 0], "Input shape"), RangeError);
 * ```
 */
export function positiveShape(shape: unknown, what: string): number[] {
  if (
    !Array.isArray(shape) || shape.length === 0 ||
    !shape.every((d) => typeof d === "number" && Number.isSafeInteger(d) && d >= 1)
  ) {
    throw new RangeError(
      `${what} must be a non-empty array of positive integers, got ${show(shape)}`,
    );
  }
  return [...shape];
}
