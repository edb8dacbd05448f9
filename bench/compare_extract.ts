/**
 * diffprobe (onnxruntime engine) against PyTorch on this machine: images/s for a full forward
 * pass and for tapping block 17, batch 64, and the ratio diffprobe / PyTorch.
 *
 * Both run at the same time on the same machine: the PyTorch reference
 * (`bench/reference/extract_torch.py --serve`, diffusers' UNet2DModel or its module-for-module
 * twin, full forward with a hook on the tapped block) is a child process, and the two
 * alternate pass by pass, so load from other processes hits both alike. Each cell is the median
 * (and best) over the rounds; the ratio is the median of per-round ratios.
 *
 * Usage (from the repository root):
 *
 * ```sh
 * deno run --allow-read --allow-write=/tmp --allow-env --allow-sys --allow-ffi --allow-run \
 *   bench/compare_extract.ts [--model DIR] [--batch 64] [--rounds 7] [--threads 2] [--python PATH]
 * ```
 *
 * Without `--model` both sides use the 35.7M google/ddpm-cifar10-32 configuration with random
 * weights (speed does not depend on the values). Python defaults to `.venv/bin/python` when it
 * exists (`python3 -m venv .venv && .venv/bin/pip install torch safetensors numpy`).
 *
 * @module
 */
import { spawnLineChild } from "./_line_child.ts";
import * as tf from "@tensorflow/tfjs";
import { cpus } from "node:os";
import {
  type Backbone,
  createBackbone,
  createOnnxExtractor,
  DDPM_CIFAR10_32_CONFIG,
  loadBackbone,
  type OnnxExtractor,
  onnxRuntimeAvailable,
  onnxRuntimeFolder,
  sampleNoise,
} from "../mod.ts";
import { checkReadable, intFlag, parseCli } from "../examples/_cli.ts";

const args = parseCli({
  name: "deno task bench:compare",
  summary: "diffprobe (onnx engine) against the PyTorch reference, alternately, images/s.",
  flags: {
    model: {
      type: "string",
      value: "dir",
      help: "a diffusers folder",
      defaultText: "google/ddpm-cifar10-32's config with random weights",
    },
    batch: { type: "string", default: "64", value: "N", help: "images per forward pass" },
    rounds: { type: "string", default: "7", value: "N", help: "alternating rounds" },
    threads: { type: "string", default: "2", value: "N", help: "threads of both sides" },
    python: {
      type: "string",
      value: "path",
      help: "a Python with torch, safetensors and numpy",
      defaultText: ".venv/bin/python, else python3",
    },
    t: { type: "string", default: "30", value: "t", help: "noise level" },
  },
});
const batch = intFlag("batch", args.batch, 1, 4096);
const rounds = intFlag("rounds", args.rounds, 1, 1000);
const threads = intFlag("threads", args.threads, 1, 1024);
const t = intFlag("t", args.t, 0, 999);
if (args.model) await checkReadable("model", args.model);
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

// --- PyTorch side: a child process that times one forward pass per command ---
const torchArgs = [
  `${root}bench/reference/extract_torch.py`,
  "--serve",
  "--batch",
  String(batch),
  "--threads",
  String(threads),
  "--t",
  String(t),
  ...(args.model ? ["--model", args.model] : []),
];
const torch = spawnLineChild(python, { args: torchArgs, what: "The PyTorch reference" });
async function torchSeconds(block: string, warmup = 0): Promise<number> {
  return ((await torch.request({ block, reps: 1, warmup })).seconds as number[])[0];
}
const hello = await torch.read();

// --- diffprobe side ---
const unet: Backbone = args.model
  ? await loadBackbone(args.model)
  : createBackbone(DDPM_CIFAR10_32_CONFIG, { seed: 0 });
const [h, w] = unet.blocks[0].shape;
const c = Number(unet.config.in_channels ?? 3);
const xt = tf.tidy(() => {
  const x0 = tf.randomUniform([batch, h, w, c], -1, 1, "float32", 1);
  return unet.schedule.addNoise(x0, t, sampleNoise(0, 0, batch, [h, w, c]));
});
const data = xt.dataSync().slice() as Float32Array;
const extractors: Record<string, OnnxExtractor> = {
  full: await createOnnxExtractor(unet, [], { eps: true, threads, device: "cpu" }),
  "17": await createOnnxExtractor(unet, [17], { threads, device: "cpu" }),
};
async function oursSeconds(block: string): Promise<number> {
  const start = performance.now();
  const out = await extractors[block].run(data, [batch, h, w, c], t);
  const seconds = (performance.now() - start) / 1000;
  tf.dispose([...out.values()]);
  return seconds;
}

const loadBefore = Deno.loadavg();
const pause = () => new Promise((ok) => setTimeout(ok, 150));
for (const block of ["full", "17"]) {
  await torchSeconds(block, 1);
  await oursSeconds(block);
  await oursSeconds(block);
}
const samples: Record<string, { ours: number[]; torch: number[] }> = {
  full: { ours: [], torch: [] },
  "17": { ours: [], torch: [] },
};
for (let r = 0; r < rounds; r++) {
  for (const block of ["full", "17"]) {
    // Alternate which side goes first.
    const order = r % 2 === 0 ? ["torch", "ours"] : ["ours", "torch"];
    for (const side of order) {
      await pause();
      const s = side === "torch" ? await torchSeconds(block) : await oursSeconds(block);
      samples[block][side as "ours" | "torch"].push(batch / s);
    }
  }
}
await torch.close();

const median = (v: number[]) => [...v].sort((a, b) => a - b)[v.length >> 1];
const best = (v: number[]) => Math.max(...v);
const cpu = cpus()[0]?.model ?? Deno.build.arch;
console.log(
  `\n${args.model ?? "google/ddpm-cifar10-32 config (35.7M, random weights)"}, batch ${batch}, ` +
    `${threads} threads, t = ${t}, ${rounds} alternating rounds`,
);
console.log(
  `machine: ${cpu}, ${navigator.hardwareConcurrency} CPUs, ${Deno.build.os}; load average ` +
    `${loadBefore[0].toFixed(2)} before, ${Deno.loadavg()[0].toFixed(2)} after`,
);
console.log(`PyTorch side: ${hello.model}, torch ${hello.torch}`);
console.log(
  `diffprobe side: onnxruntime-node ${
    (await onnxRuntimeFolder()).version
  }, CPU execution provider\n`,
);
console.log(
  "| tap | diffprobe img/s (median / best) | PyTorch img/s (median / best) | ratio (median / best) |",
);
console.log("|---|---|---|---|");
for (const block of ["full", "17"]) {
  const { ours, torch } = samples[block];
  const ratios = ours.map((o, i) => o / torch[i]);
  console.log(
    `| ${block === "full" ? "full forward" : `block ${block} (early exit)`} | ` +
      `${median(ours).toFixed(2)} / ${best(ours).toFixed(2)} | ` +
      `${median(torch).toFixed(2)} / ${best(torch).toFixed(2)} | ` +
      `${median(ratios).toFixed(2)} / ${(best(ours) / best(torch)).toFixed(2)} |`,
  );
}
for (const e of Object.values(extractors)) e.dispose();
xt.dispose();
unet.dispose();
