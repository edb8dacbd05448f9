/**
 * A Deno worker running the TensorFlow.js path on the wasm backend, for the "tfjs wasm in
 * several workers" engine of `extract_bench.ts` (a prototype to measure, not a public API).
 *
 * Messages in: `{ init: { config?, model?, seed } }`, then `{ id, data, shape, t, block }`
 * (`block` a number, or `"full"` for the noise prediction). Out: `{ ready: true }`, then
 * `{ id, data, shape }` with the block output (NHWC), or `{ error }`.
 *
 * @module
 */
/// <reference lib="deno.worker" />
import * as tf from "@tensorflow/tfjs";
import {
  type Backbone,
  createBackbone,
  freeze,
  loadBackbone,
  type UNet2DConfig,
  useBackend,
} from "../mod.ts";

let unet: Backbone | undefined;

self.onmessage = async (event: MessageEvent) => {
  const msg = event.data;
  try {
    if (msg.init) {
      await useBackend("wasm");
      unet = freeze(
        msg.init.model
          ? await loadBackbone(msg.init.model)
          : createBackbone(msg.init.config as UNet2DConfig, { seed: msg.init.seed ?? 0 }),
      );
      self.postMessage({ ready: true, backend: tf.getBackend() });
      return;
    }
    const x = tf.tensor(msg.data as Float32Array, msg.shape);
    const out = msg.block === "full"
      ? unet!.forward(x, msg.t).eps!
      : unet!.forward(x, msg.t, { capture: [msg.block] }).blocks.values().next().value!;
    const data = await out.data() as Float32Array;
    const shape = out.shape;
    tf.dispose([x, out]);
    self.postMessage({ id: msg.id, data, shape }, [data.buffer as ArrayBuffer]);
  } catch (e) {
    self.postMessage({ id: msg.id, error: (e as Error).message });
  }
};
