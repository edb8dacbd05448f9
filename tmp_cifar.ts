import { loadBackbone } from "./src/models/backbone.ts";
import { createOnnxUNetTrainer } from "./src/engine/train_engine.ts";
import { setConvWeightGradMethod } from "./src/engine/_autodiff.ts";
setConvWeightGradMethod((Deno.args[0] ?? "taps") as "taps");
const unet = await loadBackbone("../shared/fixtures/ddpm-cifar10-small");
console.log("params", unet.parameterCount());
const batch = 32;
let t0 = performance.now();
const trainer = await createOnnxUNetTrainer(unet, { batch, threads: Number(Deno.args[1] ?? 1), ema: true });
console.log("session", (performance.now() - t0).toFixed(0));
const n = batch * 32 * 32 * 3;
const x0 = new Float32Array(n).map(() => Math.random() * 2 - 1);
const noise = new Float32Array(n).map(() => Math.random() * 2 - 1);
const ts = Array.from({ length: batch }, (_, i) => (i * 31) % 1000);
for (let i = 0; i < 3; i++) {
  t0 = performance.now();
  const r = await trainer.step({ x0, noise, t: ts, dropout: i, emaDecay: 0.99 }, 1e-4);
  console.log(i, (performance.now() - t0).toFixed(0), r.loss.toFixed(4), (Deno.memoryUsage().rss / 2 ** 20).toFixed(0));
}
