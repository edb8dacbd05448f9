/**
 * Hostile feature caches: entries copied or linked from another tap, stale or re-shaped chunks,
 * NaN values under a valid signature, float16 overflow, links to /dev/zero and other non-regular
 * files, and weights changed under the same weight map. Each is refused with an error naming the
 * file, or reported and recomputed — never returned as features.
 */
import * as tf from "@tensorflow/tfjs";
import assert from "node:assert/strict";
import { join } from "node:path";
import { loadBackbone } from "../src/models/backbone.ts";
import { freeze } from "../src/probe/freeze.ts";
import { extractFeatures, weightChecksum } from "../src/probe/extract.ts";
import { FeatureCache } from "../src/probe/feature_cache.ts";
import { tapBlock } from "../src/probe/tap.ts";
import { sha256Hex } from "../src/io/checksum.ts";
import { writeSafetensorsFile } from "../src/io/safetensors.ts";
import { fixture } from "./_fixtures.ts";

const unet = freeze(await loadBackbone(fixture("tiny-unet2d")));
const x = tf.randomUniform([3, 16, 16, 3], -1, 1, "float32", 11);

/** A cache that records its complaints. */
function quietCache(dir: string, float16 = false): { cache: FeatureCache; warnings: string[] } {
  const cache = new FeatureCache(dir, { float16 });
  const warnings: string[] = [];
  cache.onCorrupt = (m) => warnings.push(m);
  return { cache, warnings };
}

/** Writes an entry signed as the cache signs it, but with any shape and values. */
async function forge(cache: FeatureCache, name: string, data: Float32Array, shape: number[]) {
  const header = `diffprobe-features-v2\n${name}\nF32\n${JSON.stringify(shape)}\n`;
  await Deno.mkdir(join(cache.path(name), ".."), { recursive: true });
  await writeSafetensorsFile(cache.path(name), { features: { dtype: "F32", shape, data } }, {
    sha256: await sha256Hex(header, data),
  });
}

const entryFiles = (dir: string) =>
  [...Deno.readDirSync(dir)].filter((e) => e.name.endsWith(".safetensors")).map((e) => e.name);

Deno.test("another tap's entry copied over an entry is detected by its name-bound signature and recomputed", async () => {
  const dir = await Deno.makeTempDir({ prefix: "diffprobe-hostile-" });
  const { cache, warnings } = quietCache(dir);
  const a = tapBlock(30, 3), b = tapBlock(30, 2); // both [3, 32]: only the signature tells
  const fa = await extractFeatures(unet, [a], x, { cache, engine: "tfjs" });
  const [fileA] = entryFiles(dir);
  const fb = await extractFeatures(unet, [b], x, { cache, engine: "tfjs" });
  const fileB = entryFiles(dir).find((f) => f !== fileA)!;
  // A valid entry of another tap, copied over B's.
  Deno.copyFileSync(join(dir, fileA), join(dir, fileB));
  const again = await extractFeatures(unet, [b], x, { cache, engine: "tfjs" });
  assert.equal(warnings.length, 1);
  assert.ok(warnings[0].includes(join(dir, fileB)), warnings[0]);
  assert.match(warnings[0], /checksum .* over its name/);
  assert.deepEqual(again.get(b.key)!.dataSync(), fb.get(b.key)!.dataSync());
  tf.dispose([...fa.values(), ...fb.values(), ...again.values()]);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("an entry re-signed with another shape, or holding NaN, is reported and recomputed", async () => {
  const dir = await Deno.makeTempDir({ prefix: "diffprobe-hostile-" });
  const { cache, warnings } = quietCache(dir);
  const tap = tapBlock(30, 3);
  const fresh = await extractFeatures(unet, [tap], x, { cache, engine: "tfjs" });
  const name = entryFiles(dir)[0].replace(/\.safetensors$/, "");
  // Re-signed for its own name but with another shape: [3, 32] → [2, 48].
  await forge(cache, name, new Float32Array(96), [2, 48]);
  const reshaped = await extractFeatures(unet, [tap], x, { cache, engine: "tfjs" });
  assert.match(warnings[0], /its shape \[2,48\] is not the expected \[3, 32\]/);
  assert.deepEqual(reshaped.get(tap.key)!.dataSync(), fresh.get(tap.key)!.dataSync());
  // Properly signed, right shape, one NaN.
  const bad = new Float32Array(96);
  bad[7] = NaN;
  await forge(cache, name, bad, [3, 32]);
  const nan = await extractFeatures(unet, [tap], x, { cache, engine: "tfjs" });
  assert.match(warnings[1], /value 7 is NaN, not finite/);
  assert.ok(warnings[1].includes(cache.path(name)));
  assert.deepEqual(nan.get(tap.key)!.dataSync(), fresh.get(tap.key)!.dataSync());
  tf.dispose([...fresh.values(), ...reshaped.values(), ...nan.values()]);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("a stale chunk of another batch size is never used to resume", async () => {
  const dir = await Deno.makeTempDir({ prefix: "diffprobe-hostile-" });
  const { cache, warnings } = quietCache(dir);
  const tap = tapBlock(30, 3);
  const fresh = await extractFeatures(unet, [tap], x, { engine: "tfjs" });
  // Learn the entry name, then plant a chunk for batch 0 holding 1 sample instead of 2.
  const once = await extractFeatures(unet, [tap], x, { cache, engine: "tfjs" });
  const name = entryFiles(dir)[0].replace(/\.safetensors$/, "");
  await Deno.remove(cache.path(name));
  await forge(cache, `${name}/b2-000000000`, new Float32Array(32).fill(5), [1, 32]);
  const resumed = await extractFeatures(unet, [tap], x, { cache, batchSize: 2, engine: "tfjs" });
  assert.match(warnings[0], /b2-000000000\.safetensors" is corrupted .*not the expected \[2, 32\]/);
  assert.deepEqual(resumed.get(tap.key)!.dataSync(), fresh.get(tap.key)!.dataSync());
  tf.dispose([...fresh.values(), ...once.values(), ...resumed.values()]);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("entries that are links (to /dev/zero, to another entry) or not regular files are refused before reading", async () => {
  // Committed links (creating one needs unscoped write permission): see tests/fixtures/README.md.
  const { cache } = quietCache(fixture("hostile-cache"));
  assert.deepEqual((await cache.read("real"))!.data, new Float32Array([1, 2]));
  for (
    const [name, kind] of [
      ["zero", "a symbolic link"],
      ["alias", "a symbolic link"],
      ["folder", "not a regular file"],
    ]
  ) {
    await assert.rejects(cache.read(name), {
      name: "TypeError",
      message: `Feature cache entry "${
        cache.path(name)
      }" is ${kind}: refusing to read it (remove it to recompute)`,
    });
  }
  // Through extraction: a folder planted at a tap's entry stops it, with the file named.
  const dir = await Deno.makeTempDir({ prefix: "diffprobe-hostile-" });
  const tap = tapBlock(30, 3);
  const first = await extractFeatures(unet, [tap], x, { cache: dir, engine: "tfjs" });
  const entry = join(dir, entryFiles(dir)[0]);
  Deno.removeSync(entry);
  Deno.mkdirSync(entry);
  await assert.rejects(extractFeatures(unet, [tap], x, { cache: dir, engine: "tfjs" }), {
    name: "TypeError",
    message: `Feature cache entry "${entry}" is not a regular file: refusing to read it ` +
      "(remove it to recompute)",
  });
  tf.dispose([...first.values()]);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("an entry grown to 8 GB (sparse) is refused from its header, without reading it", async () => {
  const dir = await Deno.makeTempDir({ prefix: "diffprobe-hostile-" });
  const { cache, warnings } = quietCache(dir);
  await cache.write("big", new Float32Array([1, 2, 3]), [3]);
  await Deno.truncate(cache.path("big"), 8e9);
  const start = performance.now();
  assert.equal(await cache.read("big", [3]), null);
  assert.ok(performance.now() - start < 2000, "not read");
  assert.equal(warnings.length, 1);
  assert.match(
    warnings[0],
    /"[^"]+big\.safetensors" is corrupted \(it has 8000000000 bytes, its header describes \d+\)/,
  );
  await Deno.remove(dir, { recursive: true });
});

Deno.test("a float16 cache stores values beyond 65504 as float32 instead of turning them into Infinity", async () => {
  const dir = await Deno.makeTempDir({ prefix: "diffprobe-hostile-" });
  const { cache } = quietCache(dir, true);
  const warn = console.warn;
  const said: string[] = [];
  console.warn = (m: string) => said.push(m);
  try {
    await cache.write("big", new Float32Array([1e5, -7e4, 1]), [3]);
    await cache.write("big2", new Float32Array([1e6]), [1]);
    await cache.write("small", new Float32Array([1.5, 65504]), [2]);
  } finally {
    console.warn = warn;
  }
  assert.deepEqual((await cache.read("big"))!.data, new Float32Array([1e5, -7e4, 1]));
  assert.deepEqual((await cache.read("small"))!.data, new Float32Array([1.5, 65504]));
  assert.equal(said.length, 1, "said once");
  assert.match(said[0], /features up to 100000 exceed float16's range \(65504\)/);
  await assert.rejects(cache.write("nan", new Float32Array([NaN]), [1]), {
    name: "RangeError",
    message: 'Feature cache entry "nan" value 0 must be finite, got NaN',
  });
  await assert.rejects(cache.write("short", new Float32Array(3), [2, 2]), {
    name: "RangeError",
    message: 'Feature cache entry "short" shape [2,2] needs 4 values, got 3',
  });
  await Deno.remove(dir, { recursive: true });
});

Deno.test("weightChecksum follows the tensors in use: a weight swapped in the same Map or assigned changes it", async () => {
  const owned = await loadBackbone(fixture("tiny-unet2d"));
  const before = await weightChecksum(owned);
  assert.equal(await weightChecksum(owned), before, "memoised: same tensors, same checksum");
  const key = "conv_in.bias";
  const old = owned.weights.get(key)!;
  const swapped = tf.add(old, 1);
  owned.weights.set(key, swapped);
  const afterSwap = await weightChecksum(owned);
  assert.notEqual(afterSwap, before);
  // In place, as trainDiffusion's optimiser does: a Variable assigned a new value.
  const v = tf.variable(swapped);
  owned.weights.set(key, v);
  assert.equal(await weightChecksum(owned), afterSwap, "same values, same checksum");
  v.assign(tf.zerosLike(v));
  assert.notEqual(await weightChecksum(owned), afterSwap);
  // Features cached under the old weights are not returned for the new ones.
  const dir = await Deno.makeTempDir({ prefix: "diffprobe-hostile-" });
  const tap = tapBlock(30, 1);
  const a = await extractFeatures(owned, [tap], x, { cache: dir, engine: "tfjs" });
  v.assign(tf.onesLike(v));
  const b = await extractFeatures(owned, [tap], x, { cache: dir, engine: "tfjs" });
  const c = await extractFeatures(owned, [tap], x, { engine: "tfjs" });
  assert.notDeepEqual(b.get(tap.key)!.dataSync(), a.get(tap.key)!.dataSync());
  assert.deepEqual(b.get(tap.key)!.dataSync(), c.get(tap.key)!.dataSync());
  tf.dispose([old, swapped, ...a.values(), ...b.values(), ...c.values()]);
  owned.dispose();
  await Deno.remove(dir, { recursive: true });
});
