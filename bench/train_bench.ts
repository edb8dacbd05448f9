/**
 * One diffusion training step at batch 32 (`trainDiffusion`: noise, forward in training mode,
 * MSE, backward, clipping, AdamW, EMA) for a small 1-D wave model and for the
 * ddpm-cifar10-small configuration, on `wasm` (convolution gradients from src/nn/conv_grad.ts,
 * faster BatchMatMul/Tile kernels) and, opt-in because they take minutes to hours per step, on
 * `cpu` with the same custom convolution gradients or with tfjs's built-in ones.
 *
 * ```sh
 * deno bench --allow-read --allow-write=/tmp bench/train_bench.ts
 * deno bench --allow-read --allow-write=/tmp bench/train_bench.ts -- --with-cpu --with-cpu-builtin
 * .venv/bin/python bench/reference/train_torch.py   # the same steps in PyTorch (2 threads)
 * ```
 *
 * The timed region is the second step of a run (the first warms the kernels up).
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { DDPM_CIFAR10_SMALL, WAVE_1D } from "./_models.ts";
import "@tensorflow/tfjs-backend-wasm";
import {
  type Backbone,
  type ConvGradMode,
  createBackbone,
  setConvGradMode,
  trainDiffusion,
  type UNet1DConfig,
  type UNet2DConfig,
} from "../mod.ts";

/** ../shared/fixtures/ddpm-cifar10-small/config.json, or the same values when it is absent. */
function cifarSmall(): UNet2DConfig {
  try {
    const url = new URL("../../shared/fixtures/ddpm-cifar10-small/config.json", import.meta.url);
    return JSON.parse(Deno.readTextFileSync(url));
  } catch {
    return DDPM_CIFAR10_SMALL;
  }
}

const BATCH = 32;
const models = {
  "wave-1d": { config: WAVE_1D as UNet1DConfig | UNet2DConfig, shape: [64, 128, 1] },
  "ddpm-cifar10-small": {
    config: cifarSmall() as UNet1DConfig | UNet2DConfig,
    shape: [64, 32, 32, 3],
  },
};

/**
 * Backends and convolution gradients: wasm (custom, the default there), cpu with the custom
 * gradients (the default there) and cpu with tfjs's built-in ones. The slow cpu runs are opt-in.
 */
const variants: { backend: string; grads: ConvGradMode; flag?: string }[] = [
  { backend: "wasm", grads: "auto" },
  { backend: "cpu", grads: "auto", flag: "--with-cpu" },
  { backend: "cpu", grads: "builtin", flag: "--with-cpu-builtin" },
];

for (const [name, { config, shape }] of Object.entries(models)) {
  for (const { backend, grads, flag } of variants) {
    const state: { unet?: Backbone; data?: tf.Tensor } = {};
    const label = backend === "wasm"
      ? "wasm"
      : `cpu, ${grads === "auto" ? "custom" : "built-in"} conv gradients`;
    Deno.bench({
      name: `${name} train step, batch ${BATCH}, ${label}`,
      group: name,
      baseline: backend === "wasm",
      ignore: flag !== undefined && !Deno.args.includes(flag),
      n: backend === "wasm" ? 3 : 1,
      warmup: backend === "wasm" ? 1 : 0,
      async fn(b) {
        await tf.setBackend(backend);
        const previous = setConvGradMode(grads);
        try {
          state.unet ??= createBackbone(config, { seed: 0 });
          state.data ??= tf.randomUniform(shape, -1, 1, "float32", 1);
          const run = await trainDiffusion(state.unet, state.data, {
            steps: 2,
            batchSize: BATCH,
            learningRate: 1e-4,
            warmupSteps: 0,
            onStep: ({ step }) => (step === 1 ? b.start() : b.end()),
          });
          run.ema.dispose();
        } finally {
          setConvGradMode(previous);
        }
      },
    });
  }
}
