/**
 * Diffusion pre-training: AdamW against a hand-computed update, the learning-rate schedule, loss
 * going down on a tiny 1-D model, a resumed run continuing exactly where it stopped, micro-batch
 * accumulation, no tensor leaks, and the samplers against an exact noise oracle.
 */
import * as tf from "@tensorflow/tfjs";
import "@tensorflow/tfjs-backend-wasm";
import assert from "node:assert/strict";
import { join } from "node:path";
import { createBackbone, loadBackbone } from "../src/models/backbone.ts";
import type { UNet1DConfig } from "../src/models/config.ts";
import type { Backbone } from "../src/models/unet.ts";
import { checkpointPath, trainDiffusion } from "../src/train/train_diffusion.ts";
import { sampleDDIM, sampleDDPM, writeSamples } from "../src/train/sample.ts";

await tf.setBackend("wasm");

const TINY: UNet1DConfig = {
  _class_name: "DiffprobeUNet1DModel",
  in_channels: 1,
  out_channels: 1,
  sample_size: 32,
  block_out_channels: [16, 32],
  layers_per_block: 1,
  down_block_types: ["DownBlock1D", "AttnDownBlock1D"],
  up_block_types: ["AttnUpBlock1D", "UpBlock1D"],
  norm_num_groups: 8,
  dropout: 0.1,
};

/** Sine waves with random frequency and phase, in [-0.9, 0.9]: `[n, 32, 1]`. */
function waves(n: number): tf.Tensor {
  const data = new Float32Array(n * 32);
  let s = 12345;
  const rand = () => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 4294967296);
  for (let i = 0; i < n; i++) {
    const f = 1 + 2 * rand(), phase = 2 * Math.PI * rand();
    for (let j = 0; j < 32; j++) {
      data[i * 32 + j] = 0.9 * Math.sin((2 * Math.PI * f * j) / 32 + phase);
    }
  }
  return tf.tensor3d(data, [n, 32, 1]);
}

function weightsOf(b: Backbone): Map<string, Float32Array> {
  return new Map([...b.weights].map(([k, v]) => [k, v.dataSync() as Float32Array]));
}

Deno.test("loss decreases on a tiny 1-D model within a few dozen steps", async () => {
  const data = waves(64);
  const unet = createBackbone({ ...TINY, dropout: 0 }, { seed: 1 });
  const before = tf.memory().numTensors;
  const run = await trainDiffusion(unet, data, {
    steps: 40,
    batchSize: 16,
    learningRate: 3e-3,
    warmupSteps: 5,
    lrSchedule: "constant",
    seed: 2,
  });
  const mean = (a: number[]) => a.reduce((p, q) => p + q, 0) / a.length;
  const first = mean(run.losses.slice(0, 5)), last = mean(run.losses.slice(-5));
  assert.ok(last < 0.6 * first, `loss went from ${first} to ${last}`);
  assert.equal(tf.memory().numTensors - before, run.ema.weights.size, "only the EMA is new");
  run.ema.dispose();
  assert.equal(tf.memory().numTensors, before, "no leaked tensors");
  unet.dispose();
  data.dispose();
});

Deno.test("a resumed run continues the loss curve and the weights exactly", async () => {
  const dir = await Deno.makeTempDir({ prefix: "diffprobe-train-" });
  const data = waves(24);
  const options = {
    steps: 6,
    batchSize: 6,
    microBatchSize: 3,
    learningRate: 2e-3,
    warmupSteps: 2,
    horizontalFlip: true,
    emaDecay: 0.9,
    seed: 7,
  };
  try {
    // Uninterrupted: 2k steps.
    const a = createBackbone(TINY, { seed: 3 });
    const full = await trainDiffusion(a, data, options);

    // k steps, a checkpoint, then a crash.
    const b = createBackbone(TINY, { seed: 3 });
    const before = tf.memory().numTensors;
    await assert.rejects(
      trainDiffusion(b, data, {
        ...options,
        checkpointDir: dir,
        checkpointEvery: 3,
        lossPlot: join(dir, "loss.svg"),
        onStep: ({ step }) => {
          if (step === 4) throw new Error("simulated crash");
        },
      }),
      /simulated crash/,
    );
    assert.equal(tf.memory().numTensors, before, "a failed run leaks no tensors");
    assert.ok((await Deno.readTextFile(join(dir, "loss.svg"))).startsWith("<svg"));
    b.dispose();

    // A fresh process would start from a fresh backbone: resume k more steps.
    const c = createBackbone(TINY, { seed: 99 });
    const seen: number[] = [];
    const resumed = await trainDiffusion(c, data, {
      ...options,
      resume: dir,
      onStep: ({ step }) => void seen.push(step),
    });
    assert.deepEqual(seen, [4, 5, 6]);
    assert.deepEqual(resumed.losses, full.losses, "same losses, bit for bit");
    for (const [name, w] of weightsOf(a)) assert.deepEqual(weightsOf(c).get(name), w, name);
    const emaA = weightsOf(full.ema), emaC = weightsOf(resumed.ema);
    for (const [name, w] of emaA) assert.deepEqual(emaC.get(name), w, `ema ${name}`);

    // The checkpoint's EMA is a diffusers folder that loads as a backbone.
    const ema3 = await loadBackbone(join(checkpointPath(dir, 3), "ema"));
    assert.equal(ema3.parameterCount(), a.parameterCount());
    ema3.dispose();
    await assert.rejects(
      trainDiffusion(createBackbone(TINY), data, { ...options, seed: 8, resume: dir }),
      (e: Error) => e instanceof RangeError && /seed is 7/.test(e.message),
    );
    for (const b of [a, c, full.ema, resumed.ema]) b.dispose();
  } finally {
    data.dispose();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("micro-batches accumulate the same gradients as one batch", async () => {
  const data = waves(16);
  const runs: { losses: number[]; gradNorms: number[] }[] = [];
  for (const micro of [8, 3]) {
    const unet = createBackbone({ ...TINY, dropout: 0 }, { seed: 4 });
    const run = await trainDiffusion(unet, data, {
      steps: 3,
      batchSize: 8,
      microBatchSize: micro,
      learningRate: 1e-3,
      gradClip: 0,
      seed: 5,
    });
    runs.push(run);
    run.ema.dispose();
    unet.dispose();
  }
  // The global gradient norm checks the accumulated gradients; later losses check the updates.
  for (const key of ["losses", "gradNorms"] as const) {
    runs[0][key].forEach((v, i) => {
      const w = runs[1][key][i];
      assert.ok(Math.abs(v - w) <= 1e-5 * Math.abs(v), `${key}[${i}]: ${v} vs ${w}`);
    });
  }
  data.dispose();
});

Deno.test("bad options are sentence-case RangeErrors naming the value", async () => {
  const unet = createBackbone(TINY);
  const data = waves(4);
  await assert.rejects(
    trainDiffusion(unet, data, { steps: 0 }),
    /Number of steps must be a positive integer, got 0/,
  );
  await assert.rejects(trainDiffusion(unet, tf.zeros([4, 32, 2]), { steps: 1 }), /C = 1/);
  await assert.rejects(trainDiffusion(unet, tf.fill([4, 32, 1], 2), { steps: 1 }), /\[-1, 1\]/);
  unet.dispose();
  data.dispose();
});

/** A stand-in backbone whose noise prediction is exact for data that is always `target`. */
function oracle(template: Backbone, target: tf.Tensor): Backbone {
  const ab = template.schedule.alphasCumprod;
  return Object.create(template, {
    forward: {
      value: (xt: tf.Tensor, t: number) => ({
        eps: tf.tidy(() =>
          tf.div(tf.sub(xt, tf.mul(target, Math.sqrt(ab[t]))), Math.sqrt(1 - ab[t]))
        ),
        blocks: new Map(),
      }),
    },
  });
}

Deno.test("DDPM and DDIM recover the data point of an exact noise oracle", async () => {
  const template = createBackbone(TINY);
  const target = tf.tidy(() => tf.sin(tf.linspace(0, 6, 32)).mul(0.8).reshape([1, 32, 1]));
  const model = oracle(template, target);
  const before = tf.memory().numTensors;
  for (
    const samples of [
      await sampleDDIM(model, { count: 3, steps: 20, batchSize: 2 }),
      await sampleDDIM(model, { count: 2, steps: 10, eta: 1, seed: 3 }),
      await sampleDDPM(model, { count: 2, steps: 50 }),
    ]
  ) {
    assert.deepEqual(samples.shape.slice(1), [32, 1]);
    const err = tf.tidy(() => tf.max(tf.abs(tf.sub(samples, target))).dataSync()[0]);
    assert.ok(err < 1e-3, `max error ${err}`);
    samples.dispose();
  }
  assert.equal(tf.memory().numTensors, before, "no leaked tensors");
  target.dispose();
  template.dispose();
});

Deno.test("samples are reproducible, batch-size independent, and written as PNG / SVG", async () => {
  const unet = createBackbone(TINY, { seed: 6 });
  const a = await sampleDDIM(unet, { count: 3, steps: 4, seed: 1 });
  const b = await sampleDDIM(unet, { count: 3, steps: 4, seed: 1, batchSize: 1 });
  const da = a.dataSync(), db = b.dataSync();
  da.forEach((v, i) => assert.ok(Math.abs(v - db[i]) < 1e-5));
  const dir = await Deno.makeTempDir();
  await writeSamples(join(dir, "signals.svg"), a);
  assert.ok((await Deno.readTextFile(join(dir, "signals.svg"))).includes("</svg>"));
  await writeSamples(join(dir, "images.png"), tf.zeros([4, 8, 8, 3]));
  const png = await Deno.readFile(join(dir, "images.png"));
  assert.deepEqual([...png.slice(1, 4)], [0x50, 0x4e, 0x47]);
  await assert.rejects(writeSamples(join(dir, "x.png"), a), RangeError);
  tf.dispose([a, b]);
  unet.dispose();
  await Deno.remove(dir, { recursive: true });
});
