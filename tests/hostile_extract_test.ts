/**
 * Hostile extraction inputs: images of another size than the config's `sample_size` give the
 * true block outputs at their size (checked against diffusers' own outputs, on both engines),
 * sizes the UNet cannot take are refused by name, and bad taps and options (seeds beyond 32
 * bits, huge ensembles, bad pools, batch sizes, engines, totals, mixed batch sizes) are errors
 * that name the field and the value.
 */
import * as tf from "@tensorflow/tfjs";
import assert from "node:assert/strict";
import { join } from "node:path";
import { loadBackbone } from "../src/models/backbone.ts";
import type { Backbone } from "../src/models/unet.ts";
import { freeze } from "../src/probe/freeze.ts";
import { extractFeatures } from "../src/probe/extract.ts";
import { tapBlock } from "../src/probe/tap.ts";
import { createTfjsExtractor, type Extractor } from "../src/engine/extractor.ts";
import { createOnnxExtractor, onnxRuntimeAvailable } from "../src/engine/onnx_engine.ts";
import { readSafetensorsFile, toFloat32 } from "../src/io/safetensors.ts";
import { fixture } from "./_fixtures.ts";

const ORT = await onnxRuntimeAvailable();
const unet = freeze(await loadBackbone(fixture("tiny-unet2d"))); // sample_size 16

/** The tiny checkpoint with only its config's `sample_size` changed (weights identical). */
async function withSampleSize(size: number): Promise<Backbone> {
  const dir = await Deno.makeTempDir({ prefix: "diffprobe-size-" });
  const src = fixture("tiny-unet2d");
  const config = JSON.parse(await Deno.readTextFile(join(src, "config.json")));
  await Deno.writeTextFile(
    join(dir, "config.json"),
    JSON.stringify({ ...config, sample_size: size }),
  );
  await Deno.copyFile(
    join(src, "diffusion_pytorch_model.safetensors"),
    join(dir, "diffusion_pytorch_model.safetensors"),
  );
  const backbone = await loadBackbone(dir);
  await Deno.remove(dir, { recursive: true });
  return backbone;
}

function maxDiff(a: tf.Tensor, b: tf.Tensor): number {
  return tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]);
}

/** Every block of diffusers' 16×16 parity run, through `extractor`, as max abs errors. */
async function parityAtSixteen(extractor: Extractor): Promise<Map<string, number>> {
  const file = await readSafetensorsFile(fixture("tiny-unet2d-parity-t500.safetensors"));
  const nhwc = (name: string) => {
    const e = file.tensors.get(name)!;
    return tf.tidy(() => tf.tensor(toFloat32(e), e.shape).transpose([0, 2, 3, 1]));
  };
  const xt = nhwc("input.xt");
  const out = await extractor.extract(xt.dataSync() as Float32Array, xt.shape, 500);
  const errors = new Map<string, number>();
  for (const [name, block] of out) {
    const theirs = nhwc(`block.${name}`);
    assert.deepEqual(block.shape, theirs.shape, name);
    const ours = tf.tensor(block.data, block.shape);
    errors.set(name, maxDiff(ours, theirs));
    tf.dispose([ours, theirs]);
  }
  xt.dispose();
  return errors;
}

Deno.test("a model configured for 8×8 gives diffusers' true block outputs for 16×16 inputs (tfjs and onnx)", async () => {
  const small = await withSampleSize(8);
  const names = small.blocks.map((b) => b.name);
  const engines: [string, Extractor][] = [["tfjs", createTfjsExtractor(small, names)]];
  if (ORT) engines.push(["onnx", await createOnnxExtractor(small, names, { threads: 2 })]);
  else console.log("skipped the onnx half: onnxruntime-node is not loadable (needs --allow-ffi)");
  for (const [engine, extractor] of engines) {
    const errors = await parityAtSixteen(extractor);
    assert.equal(errors.size, names.length);
    for (const [name, err] of errors) assert.ok(err <= 1e-4, `${engine} ${name}: ${err}`);
    extractor.dispose();
  }
  small.dispose();
});

Deno.test("extractFeatures returns whole maps at the input's size: 32×32 and 8×8 into a 16×16 model", async () => {
  const x32 = tf.randomUniform([2, 32, 32, 3], -1, 1, "float32", 21);
  const x8 = tf.randomUniform([2, 8, 8, 3], -1, 1, "float32", 22);
  const taps = [tapBlock(30, 1, { pool: "none" }), tapBlock(30, 4, { pool: "none" })];
  const big = await extractFeatures(unet, taps, x32, { engine: "tfjs" });
  const small = await extractFeatures(unet, taps, x8, { engine: "tfjs" });
  assert.deepEqual(big.get(taps[0].key)!.shape, [2, 32, 32, 32]);
  assert.deepEqual(big.get(taps[1].key)!.shape, [2, 16, 16, 64]);
  assert.deepEqual(small.get(taps[0].key)!.shape, [2, 8, 8, 32]);
  assert.deepEqual(small.get(taps[1].key)!.shape, [2, 4, 4, 64]);
  // `sample_size` is metadata: a model configured for 32×32 (same weights) gives the same maps.
  const native = freeze(await withSampleSize(32));
  const ref = await extractFeatures(native, taps, x32, { engine: "tfjs" });
  for (const t of taps) assert.deepEqual(big.get(t.key)!.dataSync(), ref.get(t.key)!.dataSync());
  // Pooled taps on the same maps: the mean of the whole 32×32 map, not of a 16×16 corner.
  const mean = await extractFeatures(unet, [tapBlock(30, 1)], x32, { engine: "tfjs" });
  const byHand = tf.tidy(() => tf.mean(big.get(taps[0].key)!, [1, 2]));
  assert.ok(maxDiff(mean.get(tapBlock(30, 1).key)!, byHand) < 1e-5);
  if (ORT) {
    const onnx = await extractFeatures(unet, taps, x32, { engine: "onnx", threads: 2 });
    for (const t of taps) assert.ok(maxDiff(onnx.get(t.key)!, big.get(t.key)!) <= 1e-4, t.key);
    tf.dispose([...onnx.values()]);
  }
  tf.dispose([x32, x8, byHand, ...big.values(), ...small.values(), ...ref.values()]);
  tf.dispose([...mean.values()]);
  native.dispose();
});

Deno.test("sizes, channels and mixed batch sizes the UNet cannot take are refused, naming the value", async () => {
  const tap = tapBlock(30, 2);
  const odd = tf.zeros([1, 15, 16, 3]);
  await assert.rejects(extractFeatures(unet, [tap], odd), {
    name: "RangeError",
    message: "Sample size of data must be a multiple of 2 on each side for this unet2d, got 15×16",
  });
  const four = tf.zeros([1, 16, 16, 4]);
  await assert.rejects(extractFeatures(unet, [tap], four), {
    name: "RangeError",
    message: "Sample shape of data must be [H, W, C] with C = 3 for this unet2d, got [16,16,4]",
  });
  const a = tf.zeros([2, 16, 16, 3]), b = tf.zeros([1, 32, 32, 3]);
  await assert.rejects(extractFeatures(unet, [tap], [a, b], { engine: "tfjs" }), {
    name: "RangeError",
    message: "Sample shape of the batch at sample 2 must be [16,16,3] like the earlier ones, " +
      "got [32,32,3]",
  });
  await assert.rejects(
    extractFeatures(unet, [tap], [3 as unknown as tf.Tensor]),
    { name: "TypeError", message: "Batch at sample 0 must be a tensor, got number" },
  );
  tf.dispose([odd, four, a, b]);
});

Deno.test("seeds beyond 32 bits, huge ensembles and bad pools are refused at once", () => {
  const cases: [() => unknown, string, string][] = [
    [
      () => tapBlock(30, 2, { seed: 2 ** 32 }),
      "RangeError",
      "Noise seed must be an integer in [0, 4294967295], got 4294967296",
    ],
    [
      () => tapBlock(30, 2, { seed: -1 }),
      "RangeError",
      "Noise seed must be an integer in [0, 4294967295], got -1",
    ],
    [
      () => tapBlock(30, 2, { seed: 0.5 }),
      "RangeError",
      "Noise seed must be an integer in [0, 4294967295], got 0.5",
    ],
    [
      () => tapBlock(30, 2, { ensemble: 1e9 }),
      "RangeError",
      "Ensemble size must be an integer in [1, 256], got 1000000000",
    ],
    [
      () => tapBlock(30, 2, { ensemble: 0 }),
      "RangeError",
      "Ensemble size must be an integer in [1, 256], got 0",
    ],
    [
      () => tapBlock(30, 2, { pool: { size: 0 } }),
      "RangeError",
      "Pooling size must be a positive integer, got 0",
    ],
    [
      () => tapBlock(30, 2, { pool: "max" as "mean" }),
      "TypeError",
      'Pooling must be one of "none", "mean", got "max"',
    ],
    [
      () => tapBlock(30, 2, { pool: 4 as unknown as "mean" }),
      "TypeError",
      'Pooling must be "none", "mean" or { size: k }, got 4',
    ],
    [
      () => tapBlock(30, ""),
      "TypeError",
      'Block must be a 1-based number or a non-empty name, got ""',
    ],
    [() => tapBlock(30, 1.5), "RangeError", "Block number must be a positive integer, got 1.5"],
    [
      () => tapBlock(1e9, 2),
      "RangeError",
      "Timestep must be an integer in [0, 999], got 1000000000",
    ],
  ];
  for (const [fn, name, message] of cases) {
    const start = performance.now();
    assert.throws(fn, { name, message });
    assert.ok(performance.now() - start < 50, `${message}: refused at once`);
  }
  // The largest seed is accepted and gives its own key.
  assert.equal(tapBlock(30, 2, { seed: 2 ** 32 - 1 }).key, "t30/b2/mean/s4294967295");
});

Deno.test("bad extraction options name the option and the value", async () => {
  const x = tf.zeros([1, 16, 16, 3]);
  const tap = tapBlock(30, 2);
  const cases: [Parameters<typeof extractFeatures>[3], string, string][] = [
    [{ batchSize: 0 }, "RangeError", "Batch size must be a positive integer, got 0"],
    [{ batchSize: 2.5 }, "RangeError", "Batch size must be a positive integer, got 2.5"],
    [
      { engine: "gpu" as "tfjs" },
      "TypeError",
      'Extraction engine must be one of "auto", "onnx", "tfjs", got "gpu"',
    ],
  ];
  for (const [options, name, message] of cases) {
    await assert.rejects(extractFeatures(unet, [tap], x, options), { name, message });
  }
  await assert.rejects(extractFeatures(unet, [tap], [x], { total: -1 }), {
    name: "RangeError",
    message: "Total sample count (options.total) must be a non-negative integer, got -1",
  });
  // A timestep beyond this backbone's schedule (taps are checked against 1000 by default).
  await assert.rejects(
    extractFeatures(unet, [
      tapBlock(30, 2, { timesteps: 5000 }),
      tapBlock(4000, 2, { timesteps: 5000 }),
    ], x),
    {
      name: "RangeError",
      message: "Timestep of tap t4000/b2/mean/s0 must be an integer in [0, 999], got 4000",
    },
  );
  x.dispose();
});

Deno.test("non-finite features blame NaN weights, not a finite input", async () => {
  const owned = await loadBackbone(fixture("tiny-unet2d"));
  const key = "down_blocks.0.resnets.0.conv1.bias";
  const old = owned.weights.get(key)!;
  owned.weights.set(key, tf.fill(old.shape, NaN));
  old.dispose();
  const x = tf.zeros([3, 16, 16, 3]);
  await assert.rejects(
    extractFeatures(owned, [tapBlock(30, 2)], x, { engine: "tfjs", batchSize: 2 }),
    {
      name: "RangeError",
      message:
        "Features of tap t30/b2/mean/s0 must be finite, got NaN or ±Infinity for sample 0: " +
        "the input is finite, so the backbone's weights hold NaN or ±Infinity, or overflow on it",
    },
  );
  x.dispose();
  owned.dispose();
});
