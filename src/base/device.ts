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
import * as tf from "@tensorflow/tfjs";
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

/** The device a TensorFlow.js backend computes on. */
export type TfjsDevice = ResolvedDevice | "webgpu";

/**
 * The device the current TensorFlow.js backend computes on: `"cuda"` for the `tensorflow`
 * backend of `@tensorflow/tfjs-node-gpu` when it uses a GPU, `"webgpu"` for `webgpu`, else
 * `"cpu"` (`cpu`, `wasm`, CPU libtensorflow).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import * as tf from "@tensorflow/tfjs";
 * import { tfjsBackendDevice } from "./device.ts";
 *
 * await tf.setBackend("cpu");
 * assert.equal(tfjsBackendDevice(), "cpu");
 * ```
 */
export function tfjsBackendDevice(): TfjsDevice {
  const name = tf.getBackend();
  if (name === "webgpu") return "webgpu";
  const gpu = name === "tensorflow" &&
    (tf.backend() as unknown as { isUsingGpuDevice?: boolean }).isUsingGpuDevice === true;
  return gpu ? "cuda" : "cpu";
}

/**
 * Checks that work done with TensorFlow.js (`what`: "Head training", …) can run on `device` with
 * the current backend, and returns the device it runs on. `"auto"` takes the backend as it is;
 * `"cpu"` refuses a GPU backend; `"cuda"` needs TensorFlow.js on CUDA (the `tensorflow` backend of
 * `@tensorflow/tfjs-node-gpu`), else the error says what to do instead (`cudaHint`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import * as tf from "@tensorflow/tfjs";
 * import { tfjsDevice } from "./device.ts";
 *
 * await tf.setBackend("cpu");
 * assert.equal(tfjsDevice("auto", "Head training"), "cpu");
 * assert.throws(() => tfjsDevice("cuda", "Head training"), /Head training on device "cuda" needs/);
 * ```
 */
export function tfjsDevice(device: unknown, what: string, cudaHint?: string): TfjsDevice {
  const asked = checkDevice(device, `${what} device`);
  const actual = tfjsBackendDevice();
  if (asked === "auto" || asked === actual) return actual;
  const backend = `the TensorFlow.js backend is "${tf.getBackend()}"`;
  if (asked === "cpu") {
    throw new Error(
      `${what} on device "cpu", but ${backend} (${actual}): call useBackend("wasm") first, ` +
        'or use device "auto"',
    );
  }
  throw new Error(
    `${what} on device "cuda" needs TensorFlow.js on CUDA (the "tensorflow" backend of ` +
      `@tensorflow/tfjs-node-gpu, which needs CUDA 11.2 and cuDNN 8.1), but ${backend}` +
      (cudaHint ? `; ${cudaHint}` : '; use device "auto" or "cpu"'),
  );
}
