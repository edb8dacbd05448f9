import { createBackbone } from "./src/models/backbone.ts";
import { createOnnxUNetTrainer } from "./src/engine/train_engine.ts";
const unet = createBackbone({ _class_name: "DiffprobeUNet1DModel", in_channels: 1, out_channels: 1, sample_size: 32, block_out_channels: [16, 32], layers_per_block: 1, down_block_types: ["DownBlock1D", "AttnDownBlock1D"], up_block_types: ["AttnUpBlock1D", "UpBlock1D"], norm_num_groups: 8, dropout: 0.1 });
const trainer = await createOnnxUNetTrainer(unet, { batch: 4, threads: 1, ema: true });
const x0 = new Float32Array(4 * 32).map((_, i) => Math.sin(i));
const noise = new Float32Array(4 * 32).map((_, i) => Math.cos(3 * i));
for (let k = 1; k <= 2000; k++) {
  await trainer.step({ x0, noise, t: [1, 200, 500, 999], dropout: k, emaDecay: 0.99 }, 1e-4);
  if (k === 100 || k % 500 === 0) { const m = Deno.memoryUsage(); console.log(k, (m.rss / 2 ** 20).toFixed(1), (m.heapUsed / 2 ** 20).toFixed(1), (m.external / 2 ** 20).toFixed(1)); }
}
