/**
 * The `device` option shared by extraction, sweeps, head training and pre-training: where the
 * numbers are computed. `"cpu"` always works; `"cuda"` needs an NVIDIA GPU and onnxruntime's
 * CUDA provider (see the engine's `cudaStatus`) and is an error, never a silent fallback, when
 * they are missing; `"auto"` takes CUDA when it loads and the CPU otherwise, and says which on
 * stderr. It lives in `base` so that every layer can accept and check it.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { checkDevice } from "./device.ts";
 *
 * assert.equal(checkDevice("cuda"), "cuda");
 * assert.equal(checkDevice(undefined), "auto");
 * assert.throws(() => checkDevice("gpu"), {
 *   name: "TypeError",
 *   message: 'Device must be one of "auto", "cpu", "cuda", got "gpu"',
 * });
 * ```
 *
 * @module
 */
import { oneOf } from "./validate.ts";

/** Where computation runs: `"auto"` (CUDA when it loads, else the CPU), `"cpu"` or `"cuda"`. */
export type Device = "auto" | "cpu" | "cuda";

/** A device that actually ran: what `"auto"` resolved to. */
export type ResolvedDevice = "cpu" | "cuda";

/** The accepted values of {@linkcode Device}, in the order messages list them. */
export const DEVICES: readonly Device[] = ["auto", "cpu", "cuda"];

/**
 * Returns `value` as a {@linkcode Device} (`undefined` → `"auto"`), else throws a `TypeError`
 * naming `what` and the value given.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { checkDevice } from "./device.ts";
 *
 * assert.equal(checkDevice("cpu", "Head device"), "cpu");
 * assert.throws(() => checkDevice(1, "Head device"), /Head device must be one of/);
 * ```
 */
export function checkDevice(value: unknown, what = "Device"): Device {
  return value === undefined ? "auto" : oneOf(value, what, DEVICES);
}
