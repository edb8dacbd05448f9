/**
 * The onnxruntime extraction engine: every block of the diffusers parity fixtures to 1e-4, the
 * same outputs as the TensorFlow.js path for 1-D UNets and per-sample timesteps, early exit
 * (a graph for a shallow block is smaller), no leaked tfjs tensors, and input checks.
 * Skips with a message when onnxruntime-node cannot load (it needs --allow-ffi).
 */
import * as tf from "@tensorflow/tfjs";
import assert from "node:assert/strict";
import { createBackbone, loadBackbone } from "../src/models/backbone.ts";
import type { Backbone } from "../src/models/unet.ts";
import { readSafetensorsFile, toFloat32 } from "../src/io/safetensors.ts";
import { asLowerable, buildOnnxGraph, timeEmbeddingInput } from "../src/engine/onnx_graph.ts";
import { GraphBuilder } from "../src/engine/_graph_builder.ts";
import { builderLowering, lowerOutput, lowerPlan, onnxWeights } from "../src/engine/_lower_unet.ts";
import { createOnnxExtractor, onnxRuntimeAvailable } from "../src/engine/onnx_engine.ts";
import { fixture, shared, skipNote } from "./_fixtures.ts";

const TOLERANCE = 1e-4;
const ORT = await onnxRuntimeAvailable();
if (!ORT) {
  console.log(
    "skipped: onnxruntime-node cannot be loaded here (not installed, or run without --allow-ffi)",
  );
}

/** A 4-level config with 25 numbered blocks, small enough to build in a test. */
const FOUR_LEVELS = {
  _class_name: "UNet2DModel" as const,
  block_out_channels: [16, 32, 32, 32],
  down_block_types: ["DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D"],
  up_block_types: ["UpBlock2D", "AttnUpBlock2D", "UpBlock2D", "UpBlock2D"],
  layers_per_block: 2,
  norm_num_groups: 8,
  norm_eps: 1e-6,
  downsample_padding: 0,
  flip_sin_to_cos: false,
  freq_shift: 1,
  sample_size: 16,
};

/** Max abs error of every block (and eps) against a diffusers parity file. */
async function parityErrors(unet: Backbone, parityPath: string): Promise<Map<string, number>> {
  const file = await readSafetensorsFile(parityPath);
  const get = (name: string) => {
    const e = file.tensors.get(name);
    if (!e) throw new Error(`Parity file has no ${name}`);
    return tf.tidy(() => tf.tensor(toFloat32(e), e.shape).transpose([0, 2, 3, 1]));
  };
  const t = Number(file.metadata.t);
  const order = JSON.parse(file.metadata.order) as string[];
  const xt = get("input.xt");
  const before = tf.memory().numTensors;
  const extractor = await createOnnxExtractor(unet, order, { eps: true, threads: 2 });
  const out = await extractor.run(xt, xt.shape, [t, t]);
  assert.equal(tf.memory().numTensors, before + order.length + 1, "only the outputs are new");
  assert.deepEqual([...out.keys()], [...order, "eps"]);
  const errors = new Map<string, number>();
  for (const name of [...order, "eps"]) {
    const theirs = get(name === "eps" ? "output.eps" : `block.${name}`);
    const ours = out.get(name)!;
    assert.deepEqual(ours.shape, theirs.shape, `shape of ${name}`);
    errors.set(name, tf.tidy(() => tf.max(tf.abs(tf.sub(ours, theirs))).dataSync()[0]));
    theirs.dispose();
  }
  tf.dispose([...out.values(), xt]);
  extractor.dispose();
  return errors;
}

function report(label: string, errors: Map<string, number>): void {
  console.log(
    `${label} max abs error per block (onnxruntime vs diffusers):\n` +
      [...errors].map(([n, e]) => `  ${n.padEnd(26)} ${e.toExponential(2)}`).join("\n"),
  );
  for (const [name, err] of errors) {
    assert.ok(err <= TOLERANCE, `${name}: max abs error ${err} > ${TOLERANCE}`);
  }
}

function maxDiff(a: tf.Tensor, b: tf.Tensor): number {
  return tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]);
}

Deno.test({
  name: "onnx engine: tiny-unet2d matches diffusers on every block",
  ignore: !ORT,
  async fn() {
    const unet = await loadBackbone(fixture("tiny-unet2d"));
    const errors = await parityErrors(unet, fixture("tiny-unet2d-parity-t500.safetensors"));
    assert.equal(errors.size, 11);
    report("tiny-unet2d", errors);
    unet.dispose();
  },
});

Deno.test({
  name: "onnx engine: ddpm-cifar10-small (real checkpoint) matches diffusers on every block",
  ignore: !ORT || skipNote("fixtures/ddpm-cifar10-small"),
  async fn() {
    const unet = await loadBackbone(shared("fixtures/ddpm-cifar10-small")!);
    const errors = await parityErrors(
      unet,
      shared("fixtures/ddpm-cifar10-small-parity-t30.safetensors")!,
    );
    assert.equal(errors.size, 29);
    report("ddpm-cifar10-small", errors);
    unet.dispose();
  },
});

Deno.test("onnx graph: early exit — a graph for block 3 is smaller than one for block 20", () => {
  const unet = createBackbone(FOUR_LEVELS, { seed: 3 });
  const shallow = buildOnnxGraph(unet, { blocks: [3] });
  const deep = buildOnnxGraph(unet, { blocks: [20] });
  const full = buildOnnxGraph(unet, { blocks: [3, 20], eps: true });
  assert.ok(shallow.nodeCount < deep.nodeCount && deep.nodeCount < full.nodeCount);
  assert.equal(shallow.opCounts.DepthToSpace, undefined, "no upsampler before block 3");
  assert.equal(deep.opCounts.DepthToSpace, 2, "two upsamplers before block 20");
  assert.deepEqual(shallow.outputs.map((o) => o.name), ["down_blocks.0.1"]);
  assert.deepEqual(full.outputs.map((o) => o.name), ["down_blocks.0.1", "up_blocks.2.0", "eps"]);
  assert.deepEqual(full.outputs.map((o) => o.shape), [[16, 16, 16], [8, 8, 32], [16, 16, 3]]);
  assert.ok(shallow.model.byteLength < deep.model.byteLength / 4, "fewer weights too");
  unet.dispose();
});

Deno.test({
  name: "onnx engine: early-exit graphs give the tfjs path's outputs and leak no tensors",
  ignore: !ORT,
  async fn() {
    const unet = createBackbone(FOUR_LEVELS, { seed: 3 });
    const x = tf.randomUniform([3, 16, 16, 3], -1, 1, "float32", 5);
    const before = tf.memory().numTensors;
    for (const block of [3, 20]) {
      const extractor = await createOnnxExtractor(unet, [block]);
      const ours = await extractor.run(x, x.shape, 30);
      const name = unet.block(block).name;
      const theirs = unet.forward(x, 30, { capture: [block] }).blocks.get(name)!;
      assert.deepEqual([...ours.keys()], [name]);
      assert.ok(maxDiff(ours.get(name)!, theirs) < TOLERANCE, `block ${block}`);
      tf.dispose([...ours.values(), theirs]);
      extractor.dispose();
    }
    assert.equal(tf.memory().numTensors, before, "no tfjs tensor leaks");
    x.dispose();
    unet.dispose();
  },
});

Deno.test({
  name: "onnx engine: per-sample timesteps, Float32Array input, both upsample lowerings",
  ignore: !ORT,
  async fn() {
    const unet = createBackbone(FOUR_LEVELS, { seed: 4 });
    const x = tf.randomUniform([4, 16, 16, 3], -1, 1, "float32", 6);
    const data = x.dataSync().slice() as Float32Array;
    const ts = [0, 30, 500, 999];
    const refs = unet.forward(x, ts, { capture: [16, 19, 25], eps: true });
    for (const upsample of ["subpixel", "resize"] as const) {
      const extractor = await createOnnxExtractor(unet, [16, 19, 25], { eps: true, upsample });
      const ours = await extractor.run(data, [4, 16, 16, 3], ts);
      for (const [name, ref] of [...refs.blocks, ["eps", refs.eps!] as const]) {
        assert.ok(maxDiff(ours.get(name)!, ref) < TOLERANCE, `${name} (${upsample})`);
      }
      tf.dispose([...ours.values()]);
      extractor.dispose();
    }
    tf.dispose([x, refs.eps!, ...refs.blocks.values()]);
    unet.dispose();
  },
});

Deno.test({
  name: "onnx engine: 1-D UNet gives the tfjs path's outputs (NWC)",
  ignore: !ORT,
  async fn() {
    for (const padding of [0, 1]) {
      const unet = createBackbone({
        _class_name: "DiffprobeUNet1DModel",
        in_channels: 2,
        out_channels: 2,
        sample_size: 32,
        block_out_channels: [8, 16, 16],
        norm_num_groups: 4,
        layers_per_block: 1,
        downsample_padding: padding,
        attention_head_dim: 4,
        down_block_types: ["DownBlock1D", "AttnDownBlock1D", "DownBlock1D"],
        up_block_types: ["UpBlock1D", "AttnUpBlock1D", "UpBlock1D"],
      }, { seed: padding });
      const x = tf.randomNormal([3, 32, 2], 0, 1, "float32", 7);
      const all = unet.blocks.map((b) => b.name);
      const ref = unet.forward(x, 250, { capture: all, eps: true });
      const extractor = await createOnnxExtractor(unet, all, { eps: true });
      const ours = await extractor.run(x, x.shape, 250);
      for (const [name, t] of [...ref.blocks, ["eps", ref.eps!] as const]) {
        assert.deepEqual(ours.get(name)!.shape, t.shape, name);
        assert.ok(maxDiff(ours.get(name)!, t) < TOLERANCE, `${name} (padding ${padding})`);
      }
      tf.dispose([x, ref.eps!, ...ref.blocks.values(), ...ours.values()]);
      extractor.dispose();
      unet.dispose();
    }
  },
});

Deno.test({
  name: "onnx engine: bad inputs are errors that name the problem",
  ignore: !ORT,
  async fn() {
    const unet = createBackbone(FOUR_LEVELS);
    await assert.rejects(() => createOnnxExtractor(unet, [99]), RangeError);
    const extractor = await createOnnxExtractor(unet, [2]);
    await assert.rejects(
      () => extractor.run(new Float32Array(16 * 16 * 3), [1, 16, 16, 4], 30),
      /expected \[N, H, W, C\] with C = 3/,
    );
    await assert.rejects(
      () => extractor.run(new Float32Array(10), [1, 16, 16, 3], 30),
      /needs 768/,
    );
    await assert.rejects(
      () => extractor.run(new Float32Array(2 * 768), [2, 16, 16, 3], [1]),
      /1 timesteps for a batch of 2/,
    );
    await assert.rejects(
      () => extractor.run(new Float32Array(768), [1, 16, 16, 3], 1000),
      /Timestep.*1000/,
    );
    await assert.rejects(
      () => extractor.run(new Float32Array(12 * 12 * 3), [1, 12, 12, 3], 30),
      /multiple of 8/,
    );
    extractor.dispose();
    await assert.rejects(
      () => extractor.run(new Float32Array(768), [1, 16, 16, 3], 30),
      /disposed/,
    );
    unet.dispose();
  },
});

Deno.test({
  name:
    "onnx lowering: unfolded (fold: false, for training graphs) uses each weight once under its name and gives the tfjs outputs",
  ignore: !ORT,
  async fn() {
    type Ort = typeof import("onnxruntime-node");
    const mod = await import("onnxruntime-node");
    const ort = ((mod as unknown as { default?: Ort }).default ?? mod) as Ort;
    const unet = createBackbone({ ...FOUR_LEVELS, attention_head_dim: 8 }, { seed: 5 });
    const g = new GraphBuilder();
    const lowering = builderLowering(g, asLowerable(unet).resolved, onnxWeights(unet.weights), {
      fold: false,
    });
    const xt = g.input("xt", ["N", 16, 16, 3]);
    const temb = g.input("temb", ["N", 16]);
    const eps = lowerPlan(
      lowering,
      asLowerable(unet).plan.ops,
      { xt, temb, size: [16, 16] },
      () => false,
    );
    lowerOutput(lowering, eps!, "eps");
    // Every weight of the plan is an initializer of its own name and PyTorch element count.
    const names = new Set(g.initializers.map((i) => i.name));
    for (const [key, shape] of asLowerable(unet).plan.weights) {
      assert.ok(names.has(key), key);
      const dims = g.dims(key)!;
      assert.equal(dims.reduce((a, b) => a * b, 1), shape.reduce((a, b) => a * b, 1), key);
    }
    assert.equal(g.opCounts().DepthToSpace, undefined, "no folded subpixel upsampling");
    const x = tf.randomUniform([2, 16, 16, 3], -1, 1, "float32", 8);
    const ref = unet.forward(x, [30, 600], { eps: true }).eps!;
    const session = await ort.InferenceSession.create(g.encode("unfolded"));
    const out = await session.run({
      xt: new ort.Tensor("float32", x.dataSync() as Float32Array, [2, 16, 16, 3]),
      temb: new ort.Tensor("float32", timeEmbeddingInput(unet, [30, 600]), [2, 16]),
    });
    const ours = tf.tensor(out.eps.data as Float32Array, [2, 16, 16, 3]);
    assert.ok(maxDiff(ours, ref) < TOLERANCE);
    await session.release();
    tf.dispose([x, ref, ours]);
    unet.dispose();
  },
});
