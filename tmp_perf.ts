import { createBackbone } from "./src/models/backbone.ts";
import { createOnnxUNetTrainer } from "./src/engine/train_engine.ts";
const WAVE = { _class_name: "DiffprobeUNet1DModel", in_channels: 1, out_channels: 1, sample_size: 128,
  block_out_channels: [32, 64, 64], layers_per_block: 2, norm_num_groups: 8, dropout: 0.1,
  down_block_types: ["DownBlock1D", "AttnDownBlock1D", "DownBlock1D"], up_block_types: ["UpBlock1D", "AttnUpBlock1D", "UpBlock1D"] } as const;
const unet = createBackbone(WAVE as any);
const batch = 32;
let t0 = performance.now();
const trainer = await createOnnxUNetTrainer(unet, { batch, threads: 2 });
console.log("session", performance.now() - t0);
const x0 = new Float32Array(batch * 128).map(() => Math.random() * 2 - 1);
const noise = new Float32Array(batch * 128).map(() => Math.random() * 2 - 1);
const ts = Array.from({ length: batch }, (_, i) => (i * 31) % 1000);
for (let i = 0; i < 8; i++) {
  t0 = performance.now();
  const r = await trainer.step({ x0, noise, t: ts, dropout: i }, 1e-4);
  console.log(i, (performance.now() - t0).toFixed(1), r.loss.toFixed(4));
}
trainer.dispose();
