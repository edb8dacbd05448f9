/** Backend selection: what `auto` picks here, explicit failures, and wasm agreeing with cpu. */
import * as tf from "@tensorflow/tfjs";
import assert from "node:assert/strict";
import { useBackend } from "../src/backend/use_backend.ts";
import { loadBackbone } from "../src/models/backbone.ts";
import { fixture } from "./_fixtures.ts";

Deno.test("auto picks the fastest backend that works: wasm on a CPU-only machine", async () => {
  const name = await useBackend("auto");
  const gpu = await (navigator as { gpu?: { requestAdapter(): Promise<unknown> } }).gpu
    ?.requestAdapter() as { info?: { isFallbackAdapter?: boolean } } | null | undefined;
  const realGpu = gpu != null && !gpu.info?.isFallbackAdapter;
  // No tfjs-node is installed in this repository, so tensorflow is never chosen here.
  assert.equal(name, realGpu ? "webgpu" : "wasm");
  assert.equal(tf.getBackend(), name);
});

Deno.test("an explicit backend that cannot be set says why and how to fix it", async () => {
  await assert.rejects(
    useBackend("tensorflow"),
    (e: Error) =>
      /Cannot use the tensorflow backend/.test(e.message) && /--allow-ffi/.test(e.message),
  );
  // deno-lint-ignore no-explicit-any
  await assert.rejects(useBackend("metal" as any), /Unknown backend "metal"/);
  assert.equal(await useBackend("cpu"), "cpu");
});

Deno.test("a conv-heavy forward pass agrees between wasm and cpu", async () => {
  const unet = await loadBackbone(fixture("tiny-unet2d"));
  const run = async (backend: "wasm" | "cpu") => {
    await useBackend(backend);
    const x = tf.randomUniform([2, 16, 16, 3], -1, 1, "float32", 42);
    const { eps, blocks } = unet.forward(x, [10, 700], { capture: [4], eps: true });
    const out = { eps: await eps!.data(), block: await blocks.get("down_blocks.1.0")!.data() };
    tf.dispose([x, eps!, ...blocks.values()]);
    return out;
  };
  // Weights live on the backend that created them; tfjs moves them on first use.
  const wasm = await run("wasm");
  const cpu = await run("cpu");
  const maxDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => {
    let m = 0;
    for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
    return m;
  };
  assert.ok(maxDiff(wasm.eps, cpu.eps) < 1e-4, `eps differs by ${maxDiff(wasm.eps, cpu.eps)}`);
  assert.ok(maxDiff(wasm.block, cpu.block) < 1e-4);
  unet.dispose();
});

Deno.test("wasm matrix products with transposed operands equal the cpu backend's", async () => {
  await useBackend("wasm"); // installs the faster BatchMatMul (src/backend/wasm_kernels.ts)
  const before = tf.memory().numTensors;
  const buffers = tf.memory().numDataBuffers;
  const cases: [number[], number[], boolean, boolean][] = [
    [[37, 19], [37, 23], true, false],
    [[19, 37], [23, 37], false, true],
    [[37, 19], [23, 37], true, true],
    [[3, 5, 7], [3, 9, 7], false, true], // batched, as attention scores q·kᵀ
  ];
  const results: Float32Array[] = [];
  for (const backend of ["wasm", "cpu"] as const) {
    await useBackend(backend);
    for (const [sa, sb, ta, tb] of cases) {
      const a = tf.randomNormal(sa, 0, 1, "float32", 1),
        b = tf.randomNormal(sb, 0, 1, "float32", 2);
      const c = tf.matMul(a, b, ta, tb);
      results.push(c.dataSync() as Float32Array);
      tf.dispose([a, b, c]);
    }
  }
  for (let i = 0; i < cases.length; i++) {
    const w = results[i], c = results[i + cases.length];
    assert.equal(w.length, c.length);
    for (let j = 0; j < w.length; j++) assert.ok(Math.abs(w[j] - c[j]) < 1e-4, `case ${i}[${j}]`);
  }
  assert.equal(tf.memory().numTensors, before);
  assert.equal(tf.memory().numDataBuffers, buffers, "the wrapper frees its transposed copies");
});

Deno.test("wasm transposes above rank 4 equal the cpu backend's exactly and free their steps", async () => {
  const cases: [number[], number[]][] = [
    [[2, 17, 3, 8, 4], [2, 0, 3, 1, 4]], // attention's q/k/v split
    [[3, 2, 8, 17, 4], [1, 3, 0, 2, 4]], // and its gradient (the inverse)
    [[2, 3, 4, 5, 6], [4, 3, 2, 1, 0]],
    [[2, 3, 1, 5, 2, 3], [5, 0, 4, 2, 1, 3]],
    [[2, 3, 4, 5, 6], [0, 1, 2, 3, 4]], // identity
  ];
  const results: Float32Array[][] = [];
  for (const backend of ["wasm", "cpu"] as const) {
    await useBackend(backend);
    const before = tf.memory().numTensors;
    const buffers = tf.memory().numDataBuffers;
    const out: Float32Array[] = [];
    for (const [shape, perm] of cases) {
      const x = tf.tidy(() => tf.range(0, shape.reduce((a, b) => a * b, 1)).reshape(shape));
      const y = tf.transpose(x, perm);
      assert.deepEqual(y.shape, perm.map((p) => shape[p]));
      out.push(y.dataSync() as Float32Array);
      tf.dispose([x, y]);
    }
    assert.equal(tf.memory().numTensors, before);
    assert.equal(tf.memory().numDataBuffers, buffers, `${backend} frees the intermediate steps`);
    results.push(out);
  }
  for (let i = 0; i < cases.length; i++) {
    assert.deepEqual(Array.from(results[0][i]), Array.from(results[1][i]), `case ${i}`);
  }
});
