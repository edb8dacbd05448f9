/**
 * extractFeatures: features equal a hand-run forward pass on noised inputs, do not depend on the
 * batch size, leak no tensors, and the cache is used, verified and resumed.
 */
import * as tf from "@tensorflow/tfjs";
import assert from "node:assert/strict";
import { loadBackbone } from "../src/models/backbone.ts";
import { freeze } from "../src/probe/freeze.ts";
import { extractFeatures, resolveEngine } from "../src/probe/extract.ts";
import { onnxRuntimeAvailable } from "../src/engine/onnx_engine.ts";
import { tapBlock } from "../src/probe/tap.ts";
import { FeatureCache } from "../src/probe/feature_cache.ts";
import { sampleNoise } from "../src/models/noise.ts";
import { readSafetensorsFile, toFloat32 } from "../src/io/safetensors.ts";
import { fixture } from "./_fixtures.ts";
import { noisedBatch } from "../src/probe/_noised.ts";
import { addPooled, pooledShape } from "../src/probe/_pool.ts";

const unet = freeze(await loadBackbone(fixture("tiny-unet2d")));

/** The parity file's images (two real inputs), tiled to 6 samples. */
async function images(): Promise<tf.Tensor4D> {
  const file = await readSafetensorsFile(fixture("tiny-unet2d-parity-t500.safetensors"));
  const e = file.tensors.get("input.x0")!;
  return tf.tidy(() => {
    const x = tf.tensor4d(toFloat32(e), e.shape as [number, number, number, number])
      .transpose([0, 2, 3, 1]);
    return tf.concat([x, tf.reverse(x, 2), tf.mul(x, 0.5)]) as tf.Tensor4D;
  });
}

function maxDiff(a: tf.Tensor, b: tf.Tensor): number {
  return tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]);
}

Deno.test("features are the pooled block output of the noised input, whatever the batch size", async () => {
  const x = await images();
  const before = tf.memory().numTensors;
  const taps = [
    tapBlock(30, 4, { pool: "none" }), // down_blocks.1.0, 8×8×64
    tapBlock(30, 4), // same pass, mean-pooled
    tapBlock(30, "up_blocks.0.1", { pool: { size: 2 } }), // name-only block, same pass
    tapBlock(500, 2, { seed: 7 }), // another pass
  ];
  const progress: number[] = [];
  const a = await extractFeatures(unet, taps, x, {
    batchSize: 4,
    onProgress: (d) => progress.push(d),
    engine: "tfjs",
  });
  const b = await extractFeatures(unet, taps, x, { batchSize: 1, engine: "tfjs" });
  assert.deepEqual(progress, [4, 6]);
  assert.deepEqual([...a.keys()], taps.map((t) => t.key));
  assert.deepEqual(a.get(taps[0].key)!.shape, [6, 8, 8, 64]);
  assert.deepEqual(a.get(taps[1].key)!.shape, [6, 64]);
  assert.deepEqual(a.get(taps[2].key)!.shape, [6, 2, 2, 64]);
  assert.deepEqual(a.get(taps[3].key)!.shape, [6, 32]);
  for (const t of taps) assert.ok(maxDiff(a.get(t.key)!, b.get(t.key)!) < 1e-5, t.key);

  // By hand: noise of (seed, index), the schedule's forward process, one forward pass.
  tf.tidy(() => {
    const noise = sampleNoise(0, 0, 6, [16, 16, 3]);
    const xt = unet.schedule.addNoise(x, 30, noise);
    const out = unet.forward(xt, 30, { capture: ["down_blocks.1.0", "up_blocks.0.1"] }).blocks;
    const map = out.get("down_blocks.1.0")!;
    assert.ok(maxDiff(a.get(taps[0].key)!, map) < 1e-5);
    assert.ok(maxDiff(a.get(taps[1].key)!, tf.mean(map, [1, 2])) < 1e-5);
    const up = out.get("up_blocks.0.1")!; // 8×8 → 2×2 averages of 4×4 windows
    const corner = tf.mean(up.slice([0, 0, 0, 0], [6, 4, 4, 64]), [1, 2]);
    assert.ok(
      maxDiff(a.get(taps[2].key)!.slice([0, 0, 0, 0], [6, 1, 1, 64]).reshape([6, 64]), corner) <
        1e-5,
    );
  });
  tf.dispose([...a.values(), ...b.values()]);
  assert.equal(tf.memory().numTensors, before, "extraction leaves numTensors unchanged");
  x.dispose();
});

Deno.test("an ensemble averages independent noise draws; draw 0 is the plain tap", async () => {
  const x = await images();
  const plain = tapBlock(100, 3), two = tapBlock(100, 3, { ensemble: 2 });
  const f = await extractFeatures(unet, [plain, two], x);
  const d = maxDiff(f.get(plain.key)!, f.get(two.key)!);
  assert.ok(d > 1e-4, "a second draw changes the average");
  tf.dispose([...f.values(), x]);
});

Deno.test("iterables of batches work and need a dataKey to be cached", async () => {
  const x = await images();
  const tap = tapBlock(30, 3);
  async function* batches() {
    yield x.slice([0], [4]);
    yield x.slice([4], [2]);
  }
  const f = await extractFeatures(unet, [tap], batches());
  const g = await extractFeatures(unet, [tap], x);
  assert.ok(maxDiff(f.get(tap.key)!, g.get(tap.key)!) < 1e-5);
  await assert.rejects(
    extractFeatures(unet, [tap], batches(), { cache: await Deno.makeTempDir() }),
    /needs options\.dataKey/,
  );
  tf.dispose([...f.values(), ...g.values(), x]);
});

Deno.test("an exhausted or short iterable is an error and never becomes a cache entry", async () => {
  const x = await images();
  const tap = tapBlock(30, 3);
  const made: tf.Tensor[] = [];
  function* batches() {
    yield made[made.push(x.slice([0], [4])) - 1];
    yield made[made.push(x.slice([4], [2])) - 1];
  }
  const dir = await Deno.makeTempDir();
  const options = { cache: dir, dataKey: "once", total: 6 };
  const gen = batches();
  const first = await extractFeatures(unet, [tap], gen, options);
  // The same generator again yields nothing: rejected, nothing written.
  const entries = async () => (await Array.fromAsync(Deno.readDir(dir))).map((e) => e.name).sort();
  const before = await entries();
  await assert.rejects(
    extractFeatures(unet, [tap], gen, { ...options, dataKey: "twice" }),
    (e: Error) =>
      e instanceof RangeError && /gave 0 samples, expected 6.*generator/.test(e.message),
  );
  assert.deepEqual(await entries(), before);
  // A different count than `total` is rejected too.
  await assert.rejects(
    extractFeatures(unet, [tap], batches(), { ...options, dataKey: "short", total: 8 }),
    /gave 6 samples, expected 8/,
  );
  // A cached entry of another length than `total` is recomputed, not returned.
  const cached = await extractFeatures(unet, [tap], batches(), options);
  assert.equal(cached.get(tap.key)!.shape[0], 6);
  await assert.rejects(
    extractFeatures(unet, [tap], batches(), { ...options, total: 7 }),
    /gave 6 samples, expected 7/,
  );
  tf.dispose([...first.values(), ...cached.values(), ...made, x]);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("bad taps and inputs fail with errors that name them", async () => {
  const x = await images();
  await assert.rejects(extractFeatures(unet, [tapBlock(30, 10)], x), /No block 10/);
  await assert.rejects(
    extractFeatures(unet, [tapBlock(30, 1, { pool: { size: 3 } })], x),
    { name: "RangeError", message: "Pooling size must divide block conv_in's 16×16 map, got 3" },
  );
  assert.throws(() => tapBlock(1000, 1), {
    name: "RangeError",
    message: "Timestep must be an integer in [0, 999], got 1000",
  });
  assert.throws(() => tapBlock(-1, 1), RangeError);
  assert.throws(() => tapBlock(3, 0), /Block number must be a positive integer, got 0/);
  const bad = tf.fill([1, 16, 16, 3], NaN);
  await assert.rejects(extractFeatures(unet, [tapBlock(30, 1)], bad), {
    name: "RangeError",
    message: "Features of tap t30/b1/mean/s0 must be finite, got NaN or ±Infinity for sample 0: " +
      "input sample 0 holds NaN at value 0",
  });
  tf.dispose([x, bad]);
});

Deno.test("the cache is read on a second run, and a corrupted entry is detected and recomputed", async () => {
  const x = await images();
  const dir = await Deno.makeTempDir({ prefix: "diffprobe-cache-" });
  const warnings: string[] = [];
  const cache = new FeatureCache(dir);
  cache.onCorrupt = (m) => warnings.push(m);
  const tap = tapBlock(30, 5);
  const first = await extractFeatures(unet, [tap], x, { cache, batchSize: 4 });
  const files = [...Deno.readDirSync(dir)].map((e) => e.name);
  assert.equal(files.length, 1, `one entry, chunks removed: ${files}`);
  // A second run reads the entry: prove it by making the backbone unusable.
  const broken = Object.create(unet, {
    forward: {
      value: () => {
        throw new Error("forward ran");
      },
    },
  });
  const second = await extractFeatures(broken, [tap], x, { cache });
  assert.deepEqual(second.get(tap.key)!.dataSync(), first.get(tap.key)!.dataSync());
  // Corrupt one byte of the features: detected by checksum, reported, recomputed.
  const path = `${dir}/${files[0]}`;
  const bytes = Deno.readFileSync(path);
  bytes[bytes.length - 3] ^= 0x55;
  Deno.writeFileSync(path, bytes);
  const third = await extractFeatures(unet, [tap], x, { cache });
  assert.equal(warnings.length, 1);
  assert.match(warnings[0], /is corrupted .*checksum/);
  assert.deepEqual(third.get(tap.key)!.dataSync(), first.get(tap.key)!.dataSync());
  // Truncation too.
  Deno.truncateSync(path, 100);
  const fourth = await extractFeatures(unet, [tap], x, { cache });
  assert.equal(warnings.length, 2);
  assert.deepEqual(fourth.get(tap.key)!.dataSync(), first.get(tap.key)!.dataSync());
  tf.dispose([...first.values(), ...second.values(), ...third.values(), ...fourth.values(), x]);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("an interrupted extraction resumes from the batches already written", async () => {
  const x = await images();
  const dir = await Deno.makeTempDir({ prefix: "diffprobe-cache-" });
  const tap = tapBlock(30, 5);
  let calls = 0;
  const dying = Object.create(unet, {
    forward: {
      value: (...args: Parameters<typeof unet.forward>) => {
        if (++calls === 3) throw new Error("interrupted");
        return unet.forward(...args);
      },
    },
  });
  await assert.rejects(
    extractFeatures(dying, [tap], x, { cache: dir, batchSize: 2, engine: "tfjs" }),
    /interrupted/,
  );
  let resumedCalls = 0;
  const counting = Object.create(unet, {
    forward: {
      value: (...args: Parameters<typeof unet.forward>) => (resumedCalls++, unet.forward(...args)),
    },
  });
  const resumed = await extractFeatures(counting, [tap], x, {
    cache: dir,
    batchSize: 2,
    engine: "tfjs",
  });
  assert.equal(resumedCalls, 1, "only the third batch is computed again");
  const fresh = await extractFeatures(unet, [tap], x, { batchSize: 2, engine: "tfjs" });
  assert.deepEqual(resumed.get(tap.key)!.dataSync(), fresh.get(tap.key)!.dataSync());
  tf.dispose([...resumed.values(), ...fresh.values(), x]);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("float16 cache entries hold the features rounded to half precision", async () => {
  const x = await images();
  const dir = await Deno.makeTempDir({ prefix: "diffprobe-cache-" });
  const tap = tapBlock(30, 5);
  const exact = await extractFeatures(unet, [tap], x);
  const first = await extractFeatures(unet, [tap], x, { cache: dir, float16: true });
  const again = await extractFeatures(unet, [tap], x, { cache: dir, float16: true });
  const e = exact.get(tap.key)!.dataSync(), h = again.get(tap.key)!.dataSync();
  for (let i = 0; i < e.length; i++) {
    assert.ok(Math.abs(e[i] - h[i]) <= Math.abs(e[i]) * 2 ** -11 + 1e-7);
  }
  tf.dispose([...exact.values(), ...first.values(), ...again.values(), x]);
  await Deno.remove(dir, { recursive: true });
});

Deno.test({
  name: "the onnx engine gives the tfjs engine's features (max abs error ≤ 1e-4)",
  ignore: !(await onnxRuntimeAvailable()) &&
    (console.log("skipped: onnxruntime-node is not loadable (needs --allow-ffi)"), true),
  async fn() {
    assert.equal(await resolveEngine("auto"), "onnx", "auto prefers onnx on a CPU backend");
    const x = await images();
    const before = tf.memory().numTensors;
    const taps = [
      tapBlock(30, 4, { pool: "none" }),
      tapBlock(30, "up_blocks.0.1", { pool: { size: 2 } }),
      tapBlock(500, 9),
      tapBlock(100, 3, { ensemble: 2 }),
    ];
    const viaOnnx = await extractFeatures(unet, taps, x, { batchSize: 4, engine: "onnx" });
    const viaTfjs = await extractFeatures(unet, taps, x, { batchSize: 4, engine: "tfjs" });
    for (const t of taps) {
      assert.deepEqual(viaOnnx.get(t.key)!.shape, viaTfjs.get(t.key)!.shape);
      const d = maxDiff(viaOnnx.get(t.key)!, viaTfjs.get(t.key)!);
      assert.ok(d <= 1e-4, `${t.key}: ${d}`);
    }
    tf.dispose([...viaOnnx.values(), ...viaTfjs.values()]);
    assert.equal(tf.memory().numTensors, before, "the onnx path leaks no tensors");
    x.dispose();
  },
});

Deno.test("batches are noised and pooled on JS arrays exactly as the tfjs ops do", () => {
  // Noise: bit-identical to NoiseSchedule.addNoise over sampleNoise.
  const x = tf.randomUniform([3, 4, 4, 3], -1, 1, "float32", 9);
  const x0 = x.dataSync() as Float32Array;
  for (const t of [0, 30, 999]) {
    const ours = noisedBatch(unet.schedule, x0, 3, t, 5, 17);
    const theirs = tf.tidy(() =>
      unet.schedule.addNoise(x, t, sampleNoise(5, 17, 3, [4, 4, 3])).dataSync()
    );
    assert.deepEqual(ours, theirs, `t=${t}`);
  }
  // Pooling: the means tf.mean / tf.avgPool compute, to float32 rounding.
  const block = { data: x0, shape: [3, 4, 4, 3] };
  for (
    const [pool, ref] of [
      ["mean", tf.tidy(() => tf.mean(x, [1, 2]))],
      [{ size: 2 }, tf.tidy(() => tf.avgPool(x as tf.Tensor4D, 2, 2, "valid"))],
      ["none", x],
    ] as const
  ) {
    const sum = new Float32Array(ref.size);
    addPooled(sum, block, pool, 0.5);
    addPooled(sum, block, pool, 0.5);
    assert.deepEqual(pooledShape([4, 4, 3], pool, "b"), ref.shape.slice(1));
    assert.ok(maxDiff(tf.tensor(sum, ref.shape), ref) < 1e-6, JSON.stringify(pool));
    if (ref !== x) ref.dispose();
  }
  x.dispose();
});
