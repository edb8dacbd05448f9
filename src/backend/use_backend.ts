/**
 * Choosing where TensorFlow.js computes. `"auto"` takes the fastest backend that really works
 * here: `tensorflow` (native libtensorflow, CUDA when built with it) when the user has installed
 * `@tensorflow/tfjs-node-gpu` or `@tensorflow/tfjs-node`, then `webgpu` on a real (non-fallback)
 * adapter, then `wasm` (its `.wasm` files are read from the installed npm package, never
 * fetched), then `cpu`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { useBackend } from "./use_backend.ts";
 *
 * const name = await useBackend("auto");
 * assert.ok(["tensorflow", "webgpu", "wasm", "cpu"].includes(name));
 * ```
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { registerWasmKernels } from "./wasm_kernels.ts";
import { quietTfjs } from "./quiet.ts";
import { notice } from "../base/notice.ts";

/** A backend name `useBackend` understands. */
export type BackendName = "auto" | "tensorflow" | "webgpu" | "wasm" | "cpu";

/** Options of {@linkcode useBackend}. */
export interface UseBackendOptions {
  /**
   * Modules to try for the `tensorflow` backend, in order (default
   * `["@tensorflow/tfjs-node-gpu", "@tensorflow/tfjs-node"]`, resolved through the caller's
   * import map). A backend registered before the call (by `import "npm:@tensorflow/tfjs-node-gpu"`)
   * is used as it is.
   */
  tensorflowModules?: string[];
  /** Print why each skipped backend was skipped (default false). */
  verbose?: boolean;
  /**
   * Say once on stderr which backend `"auto"` chose when a faster one was skipped for a reason
   * the user can fix (a missing permission), with the permission to grant (default true).
   */
  notices?: boolean;
}

async function tryTensorflow(modules: string[], reasons: string[]): Promise<boolean> {
  if (tf.findBackendFactory("tensorflow") === null) {
    for (const specifier of modules) {
      try {
        await import(specifier);
        break;
      } catch (e) {
        reasons.push(`${specifier}: ${(e as Error).message.split("\n")[0]}`);
      }
    }
  }
  if (tf.findBackendFactory("tensorflow") === null) return false;
  return await tf.setBackend("tensorflow");
}

async function tryWebgpu(reasons: string[]): Promise<boolean> {
  const gpu = (globalThis.navigator as { gpu?: { requestAdapter(): Promise<unknown> } })?.gpu;
  if (!gpu) {
    reasons.push("webgpu: navigator.gpu is not available in this runtime");
    return false;
  }
  const adapter = await gpu.requestAdapter() as
    | { info?: { isFallbackAdapter?: boolean; description?: string }; isFallbackAdapter?: boolean }
    | null;
  if (!adapter) {
    reasons.push("webgpu: no adapter");
    return false;
  }
  if (adapter.info?.isFallbackAdapter || adapter.isFallbackAdapter) {
    reasons.push(
      `webgpu: only a software fallback adapter (${adapter.info?.description ?? "unknown"}) ` +
        "is available, which is slower than wasm",
    );
    return false;
  }
  await import("@tensorflow/tfjs-backend-webgpu");
  return await tf.setBackend("webgpu");
}

/** The folder of the installed wasm backend package (where its .wasm files are), or null. */
function wasmPackageDir(): string | null {
  try {
    const url = new URL(".", import.meta.resolve("@tensorflow/tfjs-backend-wasm"));
    return url.protocol === "file:" ? decodeURIComponent(url.pathname) : null;
  } catch {
    return null;
  }
}

async function tryWasm(reasons: string[]): Promise<boolean> {
  // Without read access to the package, emscripten prints "Aborted(NotCapable…)" lines and
  // fails; ask first and say what to grant instead.
  const dir = wasmPackageDir();
  if (
    dir !== null && (await Deno.permissions.query({ name: "read", path: dir })).state !== "granted"
  ) {
    reasons.push(
      `wasm: no read permission for its .wasm files in ${dir} (grant --allow-read=node_modules)`,
    );
    return false;
  }
  try {
    await import("@tensorflow/tfjs-backend-wasm");
    registerWasmKernels(); // faster BatchMatMul (transposed operands) and Tile
    return await tf.setBackend("wasm");
  } catch (e) {
    reasons.push(`wasm: ${(e as Error).message}`);
    return false;
  }
}

const HOW_TO_FIX: Record<Exclude<BackendName, "auto">, string> = {
  tensorflow:
    "install @tensorflow/tfjs-node-gpu@4.22.0 (CUDA 11.2 + cuDNN 8.1) or @tensorflow/tfjs-node@4.22.0, " +
    'allow its install script ("allowScripts" in deno.json) and run with --allow-ffi; see the README',
  webgpu: "run on a machine with a GPU and a working WebGPU driver (Vulkan, Metal or D3D12)",
  wasm: "run with --allow-read so the backend can read its .wasm files from node_modules",
  cpu: "this should not happen: the cpu backend ships with @tensorflow/tfjs",
};

/**
 * Sets the TensorFlow.js backend and returns the name it set. An explicit name that cannot be
 * set throws an `Error` saying why and how to fix it.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { tf, useBackend } from "@diffprobe/core";
 *
 * assert.equal(await useBackend("cpu"), "cpu");
 * assert.equal(tf.getBackend(), "cpu");
 * assert.ok(["tensorflow", "webgpu", "wasm", "cpu"].includes(await useBackend("auto")));
 * ```
 */
export async function useBackend(
  name: BackendName = "auto",
  options: UseBackendOptions = {},
): Promise<Exclude<BackendName, "auto">> {
  quietTfjs();
  const reasons: string[] = [];
  const modules = options.tensorflowModules ??
    ["@tensorflow/tfjs-node-gpu", "@tensorflow/tfjs-node"];
  const attempts: Record<Exclude<BackendName, "auto">, () => Promise<boolean>> = {
    tensorflow: () => tryTensorflow(modules, reasons),
    webgpu: () => tryWebgpu(reasons),
    wasm: () => tryWasm(reasons),
    cpu: async () => {
      const ok = await tf.setBackend("cpu");
      // The cpu backend's first-use banner advertises tfjs-node; we document that route instead.
      const cpu = tf.findBackend("cpu") as { firstUse?: boolean } | null;
      if (cpu) cpu.firstUse = false;
      return ok;
    },
  };
  if (name !== "auto" && !(name in attempts)) {
    throw new RangeError(
      `Unknown backend "${name}": expected "auto", "tensorflow", "webgpu", "wasm" or "cpu"`,
    );
  }
  const order = name === "auto"
    ? (["tensorflow", "webgpu", "wasm", "cpu"] as const)
    : [name as Exclude<BackendName, "auto">];
  for (const candidate of order) {
    if (await attempts[candidate]()) {
      await tf.ready();
      if (options.verbose && reasons.length > 0) {
        console.error(`useBackend: using ${candidate}; skipped:\n  ${reasons.join("\n  ")}`);
      } else if (candidate === "cpu" && name === "auto") {
        const wasm = reasons.find((r) => r.startsWith("wasm:"));
        notice(
          "backend-cpu",
          `diffprobe: using the slow cpu backend because the wasm backend is unavailable (${
            wasm?.slice(6) ?? "unknown reason"
          })`,
          options.notices ?? true,
        );
      }
      return candidate;
    }
  }
  const only = order[0];
  throw new Error(
    `Cannot use the ${only} backend: ${reasons.join("; ") || "setBackend failed"}. To fix: ${
      HOW_TO_FIX[only]
    }`,
  );
}
