/**
 * Quiet defaults for TensorFlow.js. tfjs' cpu backend prints a banner advertising
 * `@tensorflow/tfjs-node` the first time it holds data; we document that route in the README
 * instead, so the banner is switched off for every cpu backend instance.
 *
 * @example
 * ```ts
 * import { quietTfjs } from "./quiet.ts";
 *
 * quietTfjs();
 * ```
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";

let quieted = false;

/**
 * Turns off the cpu backend's first-use banner (for the instance registered now and any created
 * later). Idempotent.
 *
 * @example
 * ```ts
 * import { quietTfjs } from "./quiet.ts";
 *
 * quietTfjs();
 * quietTfjs(); // a second call changes nothing
 * ```
 */
export function quietTfjs(): void {
  if (quieted) return;
  quieted = true;
  const registry = (tf.engine() as unknown as {
    registryFactory: Record<string, { factory: () => unknown }>;
  }).registryFactory;
  const cpu = registry?.cpu;
  if (!cpu) return;
  const make = cpu.factory;
  cpu.factory = () => {
    const backend = make() as { firstUse?: boolean } | Promise<unknown>;
    if (!(backend instanceof Promise)) backend.firstUse = false;
    return backend;
  };
  const existing = tf.findBackend("cpu") as { firstUse?: boolean } | null;
  if (existing) existing.firstUse = false;
}
