/**
 * The one loader of `onnxruntime-node` (extraction and training both use it) and the ffi
 * permission it needs. The package is loaded by a dynamic import, once per process, so code that
 * never asks for it — or a machine where it cannot load — keeps the TensorFlow.js path.
 *
 * @module
 */

/** The `onnxruntime-node` module. */
export type Ort = typeof import("onnxruntime-node");

/** Thrown when `onnxruntime-node` cannot be loaded; the message says why. */
export class OnnxRuntimeUnavailableError extends Error {
  /**
   * Wraps the reason the import failed.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { OnnxRuntimeUnavailableError } from "@diffprobe/core";
   *
   * const e = new OnnxRuntimeUnavailableError("not installed");
   * assert.equal(e.name, "OnnxRuntimeUnavailableError");
   * assert.match(e.message, /cannot be loaded \(not installed\)/);
   * ```
   */
  constructor(reason: string, options?: ErrorOptions) {
    super(
      `onnxruntime-node cannot be loaded (${reason}): install it (npm:onnxruntime-node) and ` +
        "grant --allow-ffi, or use the TensorFlow.js path",
      options,
    );
    this.name = "OnnxRuntimeUnavailableError";
  }
}

let ortModule: Promise<Ort> | undefined;

/**
 * Loads `onnxruntime-node` once per process; rejects with an
 * {@linkcode OnnxRuntimeUnavailableError} (and tries again next call) when it cannot.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { loadOrt, onnxRuntimeAvailable } from "./ort.ts";
 *
 * if (await onnxRuntimeAvailable()) assert.equal(typeof (await loadOrt()).InferenceSession, "function");
 * ```
 */
export function loadOrt(): Promise<Ort> {
  ortModule ??= (async () => {
    try {
      const mod = await import("onnxruntime-node");
      return ((mod as { default?: Ort }).default ?? mod) as Ort;
    } catch (e) {
      ortModule = undefined;
      const message = (e as Error).message?.split("\n")[0] ?? String(e);
      throw new OnnxRuntimeUnavailableError(message, { cause: e });
    }
  })();
  return ortModule;
}

/**
 * Whether `onnxruntime-node` loads here (installed, and the process may load native addons).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { onnxRuntimeAvailable } from "@diffprobe/core";
 *
 * assert.equal(typeof await onnxRuntimeAvailable(), "boolean");
 * ```
 */
export async function onnxRuntimeAvailable(): Promise<boolean> {
  try {
    await loadOrt();
    return true;
  } catch {
    return false;
  }
}

/**
 * The ffi permission onnxruntime-node needs: for its installed folder when that is known (so
 * `--allow-ffi=node_modules` counts), else in general.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ortFfiDescriptor } from "./ort.ts";
 *
 * assert.equal(ortFfiDescriptor().name, "ffi");
 * ```
 */
export function ortFfiDescriptor(): Deno.PermissionDescriptor {
  try {
    const url = new URL("..", import.meta.resolve("onnxruntime-node"));
    if (url.protocol === "file:") return { name: "ffi", path: decodeURIComponent(url.pathname) };
  } catch {
    // not resolvable to a file: ask for ffi in general
  }
  return { name: "ffi" };
}

/**
 * Whether this process may load onnxruntime-node's native addon (without prompting).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ortFfiGranted } from "./ort.ts";
 *
 * assert.equal(typeof await ortFfiGranted(), "boolean");
 * ```
 */
export async function ortFfiGranted(): Promise<boolean> {
  return (await Deno.permissions.query(ortFfiDescriptor())).state === "granted";
}
