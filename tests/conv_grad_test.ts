/**
 * Gradient parity: the forward-convolution gradients of `src/nn/conv_grad.ts` (used on `wasm`)
 * against the `cpu` backend's built-in `Conv2DBackpropFilter` / `Conv2DBackpropInput`, to 1e-4
 * relative, for every convolution shape the 2-D and 1-D UNets use; then whole-UNet gradients.
 */
import * as tf from "@tensorflow/tfjs";
import "@tensorflow/tfjs-backend-wasm";
import assert from "node:assert/strict";
import { conv, type ConvOptions } from "../src/nn/conv.ts";
import { type ConvGradMode, setConvGradMode, usesCustomConvGrad } from "../src/nn/conv_grad.ts";
import { registerTileGradient } from "../src/nn/tile_grad.ts";
import { createBackbone } from "../src/models/backbone.ts";
import type { UNet1DConfig, UNet2DConfig } from "../src/models/config.ts";

const TOLERANCE = 1e-4;

/** Seeded uniform values in [-1, 1) (the same on every backend). */
function values(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    out[i] = ((s >>> 0) / 4294967296) * 2 - 1;
  }
  return out;
}

function relError(a: Float32Array, b: Float32Array): number {
  let diff = 0, scale = 0;
  for (let i = 0; i < a.length; i++) {
    diff = Math.max(diff, Math.abs(a[i] - b[i]));
    scale = Math.max(scale, Math.abs(b[i]));
  }
  return diff / Math.max(scale, 1e-30);
}

interface Case {
  name: string;
  x: [number, number, number, number];
  kernel: [number, number];
  cout: number;
  options: ConvOptions;
}

/** The convolutions of the UNets (batch and sizes cut down so the cpu reference stays quick). */
const CASES: Case[] = [
  {
    name: "2-D conv_in 3→64",
    x: [2, 16, 16, 3],
    kernel: [3, 3],
    cout: 64,
    options: { padding: 1 },
  },
  { name: "2-D resnet 64→64", x: [2, 8, 8, 64], kernel: [3, 3], cout: 64, options: { padding: 1 } },
  {
    name: "2-D resnet 128→128",
    x: [2, 4, 4, 128],
    kernel: [3, 3],
    cout: 128,
    options: { padding: 1 },
  },
  {
    name: "2-D up concat 256→128",
    x: [2, 4, 4, 256],
    kernel: [3, 3],
    cout: 128,
    options: { padding: 1 },
  },
  { name: "2-D shortcut 1×1 192→128", x: [2, 4, 4, 192], kernel: [1, 1], cout: 128, options: {} },
  { name: "2-D conv_out 64→3", x: [2, 8, 8, 64], kernel: [3, 3], cout: 3, options: { padding: 1 } },
  {
    name: "2-D downsample padding 0",
    x: [2, 8, 8, 64],
    kernel: [3, 3],
    cout: 64,
    options: { stride: 2, padding: [0, 1, 0, 1] },
  },
  {
    name: "2-D downsample padding 1",
    x: [2, 8, 8, 32],
    kernel: [3, 3],
    cout: 32,
    options: { stride: 2, padding: 1 },
  },
  {
    name: "2-D stride 2, odd sizes",
    x: [2, 7, 9, 8],
    kernel: [3, 3],
    cout: 5,
    options: { stride: 2, padding: [0, 1, 0, 1] },
  },
  {
    name: "2-D stride 2, odd sizes, padding 1",
    x: [2, 9, 7, 8],
    kernel: [3, 3],
    cout: 5,
    options: { stride: 2, padding: 1 },
  },
  {
    name: "1-D conv_in 1→32",
    x: [4, 1, 128, 1],
    kernel: [1, 3],
    cout: 32,
    options: { padding: 1 },
  },
  {
    name: "1-D resnet 64→64",
    x: [4, 1, 64, 64],
    kernel: [1, 3],
    cout: 64,
    options: { padding: 1 },
  },
  { name: "1-D shortcut 96→64", x: [4, 1, 32, 96], kernel: [1, 1], cout: 64, options: {} },
  {
    name: "1-D downsample padding 0",
    x: [4, 1, 128, 32],
    kernel: [1, 3],
    cout: 32,
    options: { stride: 2, padding: [0, 0, 0, 1] },
  },
  {
    name: "1-D downsample padding 1",
    x: [4, 1, 64, 32],
    kernel: [1, 3],
    cout: 32,
    options: { stride: 2, padding: [0, 0, 1, 1] },
  },
  {
    name: "1-D stride 2, odd length",
    x: [2, 1, 9, 4],
    kernel: [1, 3],
    cout: 3,
    options: { stride: 2, padding: [0, 0, 0, 1] },
  },
];

/** dL/dx, dL/dW, dL/db of L = Σ conv(x)·r on the active backend. */
function convGrads(c: Case): Float32Array[] {
  return tf.tidy(() => {
    const size = (s: number[]) => s.reduce((p, d) => p * d, 1);
    const wShape = [...c.kernel, c.x[3], c.cout];
    const x = tf.tensor(values(size(c.x), 1), c.x);
    const w = tf.tensor(values(size(wShape), 2), wShape);
    const b = tf.tensor(values(c.cout, 3), [c.cout]);
    const yShape = conv((k) => (k === "weight" ? w : b), x, c.options).shape;
    const r = tf.tensor(values(size(yShape), 4), yShape);
    const grads = tf.grads((xi: tf.Tensor, wi: tf.Tensor, bi: tf.Tensor) =>
      tf.sum(tf.mul(conv((k) => (k === "weight" ? wi : bi), xi, c.options), r))
    )([x, w, b]);
    return grads.map((g) => g.dataSync() as Float32Array);
  });
}

/** Runs `f` with the convolution gradient mode set to `m`. */
async function withMode<T>(m: ConvGradMode, f: () => T | Promise<T>): Promise<T> {
  const previous = setConvGradMode(m);
  try {
    return await f();
  } finally {
    setConvGradMode(previous);
  }
}

Deno.test("wasm lacks Conv2DBackpropFilter; wasm and cpu use the custom gradients", async () => {
  await tf.setBackend("wasm");
  assert.equal(tf.getKernel("Conv2DBackpropFilter", "wasm"), undefined);
  assert.equal(usesCustomConvGrad("wasm"), true);
  assert.equal(usesCustomConvGrad("cpu"), true);
  assert.ok(tf.getKernel("Conv2DBackpropFilter", "cpu"));
  await withMode("builtin", () => assert.equal(usesCustomConvGrad("cpu"), false));
  assert.throws(() => setConvGradMode("fast" as ConvGradMode), RangeError);
});

Deno.test("convolution gradients on wasm match the cpu backend's built-in ones", async () => {
  let worst = 0;
  for (const c of CASES) {
    await tf.setBackend("cpu");
    const reference = await withMode("builtin", () => convGrads(c));
    await tf.setBackend("wasm");
    const before = tf.memory().numTensors;
    const ours = convGrads(c);
    assert.equal(tf.memory().numTensors, before, `${c.name}: no leaked tensors`);
    ["x", "weight", "bias"].forEach((what, i) => {
      assert.deepEqual(ours[i].length, reference[i].length);
      const err = relError(ours[i], reference[i]);
      worst = Math.max(worst, err);
      assert.ok(err <= TOLERANCE, `${c.name}: d${what} relative error ${err} > ${TOLERANCE}`);
    });
  }
  console.log(`worst relative error over ${CASES.length} shapes: ${worst.toExponential(2)}`);
});

Deno.test("custom gradients on cpu match the built-in ones on cpu", async () => {
  await tf.setBackend("cpu");
  for (const c of CASES.filter((c) => c.x[1] * c.x[2] * c.x[3] <= 8 * 8 * 32)) {
    const reference = await withMode("builtin", () => convGrads(c));
    const ours = await withMode("custom", () => convGrads(c));
    ours.forEach((g, i) => {
      const err = relError(g, reference[i]);
      assert.ok(err <= TOLERANCE, `${c.name}: gradient ${i} relative error ${err}`);
    });
  }
});

Deno.test("forward values are unchanged by the custom gradient", async () => {
  await tf.setBackend("wasm");
  const c = CASES[6];
  const x = tf.tensor(values(c.x.reduce((p, d) => p * d, 1), 5), c.x);
  const w = tf.tensor(values(9 * 64 * 64, 6), [3, 3, 64, 64]);
  const b = tf.zeros([64]);
  const get = (k: string) => (k === "weight" ? w : b);
  const previous = setConvGradMode("builtin");
  const plain = conv(get, x, c.options).dataSync();
  setConvGradMode("custom");
  const custom = conv(get, x, c.options).dataSync();
  setConvGradMode(previous);
  assert.deepEqual(custom, plain);
  tf.dispose([x, w, b]);
});

const UNET_2D: UNet2DConfig = {
  _class_name: "UNet2DModel",
  sample_size: 8,
  block_out_channels: [16, 32],
  layers_per_block: 1,
  down_block_types: ["DownBlock2D", "AttnDownBlock2D"],
  up_block_types: ["AttnUpBlock2D", "UpBlock2D"],
  norm_num_groups: 8,
  downsample_padding: 0,
};

const UNET_1D: UNet1DConfig = {
  _class_name: "DiffprobeUNet1DModel",
  in_channels: 1,
  out_channels: 1,
  sample_size: 32,
  block_out_channels: [16, 32],
  layers_per_block: 1,
  down_block_types: ["DownBlock1D", "AttnDownBlock1D"],
  up_block_types: ["AttnUpBlock1D", "UpBlock1D"],
  norm_num_groups: 8,
};

/** Gradients of a whole UNet's noise-prediction loss, keyed by weight name. */
function unetGrads(config: UNet2DConfig | UNet1DConfig): Map<string, Float32Array> {
  registerTileGradient();
  const unet = createBackbone(config, { seed: 3 });
  const names = [...unet.weights.keys()];
  for (const name of names) {
    const v = tf.variable(unet.weights.get(name)!);
    unet.weights.get(name)!.dispose();
    unet.weights.set(name, v);
  }
  const shape = unet.kind === "unet2d" ? [2, 8, 8, 3] : [2, 32, 1];
  const size = shape.reduce((p, d) => p * d, 1);
  const x = tf.tensor(values(size, 7), shape);
  const target = tf.tensor(values(size, 8), shape);
  const { grads, value } = tf.variableGrads(() =>
    tf.mean(tf.square(tf.sub(unet.forward(x, [10, 700], { eps: true }).eps!, target))) as tf.Scalar
  );
  const out = new Map<string, Float32Array>();
  names.forEach((name) => {
    const v = unet.weights.get(name) as tf.Variable;
    out.set(name, grads[v.name].dataSync() as Float32Array);
  });
  tf.dispose([x, target, value]);
  tf.dispose(grads);
  unet.dispose();
  return out;
}

for (const [label, config] of [["2-D", UNET_2D], ["1-D", UNET_1D]] as const) {
  Deno.test(`${label} UNet weight gradients on wasm match cpu's`, async () => {
    await tf.setBackend("cpu");
    const reference = await withMode("builtin", () => unetGrads(config));
    await tf.setBackend("wasm");
    const before = tf.memory().numTensors;
    const ours = unetGrads(config);
    assert.equal(tf.memory().numTensors, before, "no leaked tensors");
    assert.equal(ours.size, reference.size);
    // Some gradients are zero in exact arithmetic (a key bias cannot change a softmax), so
    // errors are relative to the larger of the tensor's scale and 1e-3 of the network's.
    let overall = 0;
    for (const g of reference.values()) for (const v of g) overall = Math.max(overall, Math.abs(v));
    for (const [name, g] of ours) {
      const ref = reference.get(name)!;
      let scale = 0;
      for (const v of ref) scale = Math.max(scale, Math.abs(v));
      const err = relError(g, ref) * scale / Math.max(scale, 1e-3 * overall);
      assert.ok(err <= TOLERANCE, `${name}: relative error ${err} > ${TOLERANCE}`);
    }
  });
}
