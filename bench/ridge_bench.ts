/**
 * Closed-form ridge speed: `LinearHead.fitRidge` on the wave sweep's feature sizes (36,752
 * training windows; 512, 1,024 and 2,048 features: blocks 13, 8/16 and 24 at pool "none"), one
 * penalty, on the onnx engine (onnxruntime GEMM for the Gram matrix) and the tfjs engine (the
 * wasm backend's matMul). Random features: the speed does not depend on the values.
 *
 * ```sh
 * deno bench --allow-read --allow-write=/tmp --allow-ffi bench/ridge_bench.ts
 * ```
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { LinearHead, onnxRuntimeAvailable, useBackend } from "../mod.ts";

await useBackend("wasm");
const N = 36_752;
const ORT = await onnxRuntimeAvailable();

for (const d of [512, 1024, 2048]) {
  for (const engine of ["onnx", "tfjs"] as const) {
    Deno.bench({
      name: `fitRidge ${N}×${d} (${engine})`,
      group: `${d} features`,
      ignore: engine === "onnx" && !ORT,
      n: 1,
      warmup: 0,
      async fn(b) {
        const x = tf.randomNormal([N, d], 0, 1, "float32", 1);
        const y = tf.randomNormal([N], 0, 1, "float32", 2);
        const head = new LinearHead({ inputShape: [d], outputs: 1, task: "regression" });
        b.start();
        await head.fitRidge(x, y, { penalties: [1e-4], engine });
        b.end();
        head.dispose();
        tf.dispose([x, y]);
      },
    });
  }
}
