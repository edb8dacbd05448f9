/**
 * diffprobe's onnxruntime training engine against PyTorch on this machine: milliseconds per
 * training step and the ratio PyTorch ms / diffprobe ms, for
 *
 * - `wave`: the 1-D wave model of `examples/waves` (batch 32), a diffusion step (forward in
 *   training mode, MSE, backward, clipping to norm 1, AdamW, EMA), dropout masks drawn each step;
 * - `cifar-small`: `ddpm-cifar10-small` (its config from `../shared/fixtures` when present, else
 *   the same config built in), batch 32, the same step;
 * - `attention-head`: the `AttentionHead` at the CIFAR-10 example's setting (4×4 tokens of 128
 *   channels, dim 128, 2 layers, 8 heads, batch 256, cross-entropy, AdamW).
 *
 * Both run on the same machine at the same time: the PyTorch reference
 * (`bench/reference/train_torch.py --serve`) is a child process, and the two alternate step by
 * step (who goes first alternates too), so load from other processes hits both alike. Each cell
 * is the median over the rounds; the ratio is the median of per-round ratios.
 *
 * Usage (from the repository root):
 *
 * ```sh
 * deno task bench:compare-train [--models wave,cifar-small,attention-head] [--rounds 7]
 *   [--threads 2] [--python PATH]
 * ```
 *
 * Python defaults to `.venv/bin/python` when it exists (`python3 -m venv .venv &&
 * .venv/bin/pip install torch safetensors numpy`). `--rss` runs 1,000 steps of the first of
 * `--models` on the onnx engine alone and prints the resident set size at steps 100 and 1,000.
 *
 * @module
 */
import { spawnLineChild } from "./_line_child.ts";
import { DDPM_CIFAR10_SMALL, WAVE_1D } from "./_models.ts";
import { parseArgs } from "node:util";
import {
  AttentionHead,
  type Backbone,
  createBackbone,
  createOnnxHeadTrainer,
  createOnnxUNetTrainer,
  headTrainSpec,
  loadBackbone,
  onnxRuntimeAvailable,
  type OnnxUNetTrainer,
} from "../mod.ts";

const { values: args } = parseArgs({
  args: Deno.args,
  options: {
    models: { type: "string", default: "wave,cifar-small,attention-head" },
    rounds: { type: "string", default: "7" },
    threads: { type: "string", default: "2" },
    python: { type: "string" },
    rss: { type: "boolean", default: false },
  },
});
const rounds = Number(args.rounds);
const threads = Number(args.threads);
const root = new URL("..", import.meta.url).pathname;
const python = args.python ??
  (await Deno.stat(`${root}.venv/bin/python`).then(
    () => `${root}.venv/bin/python`,
    () => "python3",
  ));

if (!(await onnxRuntimeAvailable())) {
  console.error("onnxruntime-node cannot be loaded: install it and run with --allow-ffi");
  Deno.exit(1);
}

/** A diffusion step as trainDiffusion runs it: data draw, noise, timesteps, dropout, EMA. */
async function diffusionStep(unet: Backbone, batch: number): Promise<() => Promise<number>> {
  const trainer: OnnxUNetTrainer = await createOnnxUNetTrainer(unet, {
    batch,
    threads,
    weightDecay: 0,
    gradClip: 1,
    ema: true,
  });
  const per = unet.blocks[0].shape.slice(0, -1).reduce((a, b) => a * b, 1) *
    Number(unet.config.in_channels ?? 3);
  const data = new Float32Array(64 * per).map(() => Math.random() * 2 - 1);
  let step = 0;
  return async () => {
    const start = performance.now();
    const x0 = new Float32Array(batch * per);
    for (let i = 0; i < batch; i++) {
      const j = Math.floor(Math.random() * 64);
      x0.set(data.subarray(j * per, (j + 1) * per), i * per);
    }
    const noise = new Float32Array(batch * per);
    for (let i = 0; i < noise.length; i++) {
      noise[i] = Math.sqrt(-2 * Math.log(1 - Math.random())) *
        Math.cos(2 * Math.PI * Math.random());
    }
    const t = Array.from({ length: batch }, () => Math.floor(Math.random() * 1000));
    const emaDecay = Math.min(0.9999, (1 + step) / (10 + step));
    await trainer.step({ x0, noise, t, dropout: step++, emaDecay }, 1e-4);
    return performance.now() - start;
  };
}

function headStep(batch: number): () => Promise<number> {
  const head = new AttentionHead({
    inputShape: [4, 4, 128],
    outputs: 10,
    dim: 128,
    layers: 2,
    heads: 8,
  });
  const initial = new Map([...head.weights].map(([n, v]) => [n, v.dataSync()]));
  const trainer = createOnnxHeadTrainer(headTrainSpec(head), initial, {
    threads,
    weightDecay: 0.05,
  });
  head.dispose();
  const features = 16 * 128;
  const x = new Float32Array(4 * batch * features).map(() => Math.random() * 2 - 1);
  const labels = Array.from({ length: 4 * batch }, () => Math.floor(Math.random() * 10));
  let i = 0;
  return async () => {
    const start = performance.now();
    const lo = (i++ % 4) * batch;
    const y = new Float32Array(batch * 10);
    for (let k = 0; k < batch; k++) y[k * 10 + labels[lo + k]] = 1;
    await trainer.step(x.subarray(lo * features, (lo + batch) * features), y, 3e-4);
    return performance.now() - start;
  };
}

async function oursFor(model: string): Promise<{ batch: number; step: () => Promise<number> }> {
  if (model === "wave") {
    return { batch: 32, step: await diffusionStep(createBackbone(WAVE_1D), 32) };
  }
  if (model === "cifar-small") {
    const dir = `${root}../shared/fixtures/ddpm-cifar10-small`;
    const unet = await Deno.stat(`${dir}/config.json`).then(
      () => loadBackbone(dir),
      () => createBackbone(DDPM_CIFAR10_SMALL),
    );
    return { batch: 32, step: await diffusionStep(unet, 32) };
  }
  if (model === "attention-head") return { batch: 256, step: headStep(256) };
  throw new RangeError(`Unknown model ${model}: use wave, cifar-small or attention-head`);
}

const models = args.models!.split(",");
if (args.rss) {
  const { step } = await oursFor(models[0]);
  const rss: Record<number, number> = {};
  for (let s = 1; s <= 1000; s++) {
    await step();
    if (s === 100 || s === 1000) rss[s] = Deno.memoryUsage().rss / 2 ** 20;
  }
  console.log(
    `${models[0]}, 1,000 onnx steps: RSS ${rss[100].toFixed(0)} MiB at step 100, ` +
      `${rss[1000].toFixed(0)} MiB at step 1,000`,
  );
  Deno.exit(0);
}

// --- PyTorch side: a child process that times one step per command ---
const torch = spawnLineChild(python, {
  args: [`${root}bench/reference/train_torch.py`, "--serve", "--threads", String(threads)],
  what: "The PyTorch reference",
});
async function torchMs(model: string, batch: number): Promise<number> {
  return ((await torch.request({ model, batch, steps: 1 })).ms as number[])[0];
}
const hello = await torch.read();

const loadBefore = Deno.loadavg();
const results: { model: string; ours: number[]; torch: number[] }[] = [];
for (const model of models) {
  const { batch, step } = await oursFor(model);
  // Warm-up: two steps each (graph building, first-run allocations).
  for (let i = 0; i < 2; i++) {
    await torchMs(model, batch);
    await step();
  }
  const ours: number[] = [], torch: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const order = r % 2 === 0 ? ["torch", "ours"] : ["ours", "torch"];
    for (const side of order) {
      if (side === "torch") torch.push(await torchMs(model, batch));
      else ours.push(await step());
    }
  }
  results.push({ model, ours, torch });
}
await torch.close();

const median = (v: number[]) => [...v].sort((a, b) => a - b)[v.length >> 1];
console.log(
  `\n${rounds} alternating rounds, ${threads} threads; load average ` +
    `${loadBefore[0].toFixed(2)} before, ${Deno.loadavg()[0].toFixed(2)} after; ` +
    `${navigator.hardwareConcurrency} CPUs; torch ${hello.torch}\n`,
);
console.log("| model | diffprobe onnx ms/step | PyTorch ms/step | PyTorch ms / diffprobe ms |");
console.log("|---|---|---|---|");
for (const { model, ours, torch } of results) {
  const ratios = ours.map((o, i) => torch[i] / o);
  console.log(
    `| ${model} | ${median(ours).toFixed(0)} | ${median(torch).toFixed(0)} | ` +
      `${median(ratios).toFixed(2)} |`,
  );
}
