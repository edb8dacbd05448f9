/**
 * Loading and saving backbones: bit-exact round trips, F16/BF16 checkpoints, legacy key names,
 * and errors that name the bad key and both shapes.
 */
import * as tf from "@tensorflow/tfjs";
import assert from "node:assert/strict";
import { join } from "node:path";
import { createBackbone, loadBackbone, saveBackbone } from "../src/models/backbone.ts";
import {
  float32ToFloat16Bits,
  readSafetensorsFile,
  type TensorToWrite,
  toFloat32,
  writeSafetensorsFile,
} from "../src/io/safetensors.ts";
import { fixture } from "./_fixtures.ts";

async function copyModel(
  from: string,
  edit: (tensors: Map<string, TensorToWrite>) => void,
): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "diffprobe-test-" });
  await Deno.copyFile(join(from, "config.json"), join(dir, "config.json"));
  const file = await readSafetensorsFile(join(from, "diffusion_pytorch_model.safetensors"));
  const tensors = new Map<string, TensorToWrite>();
  for (const [name, e] of file.tensors) {
    tensors.set(name, { dtype: "F32", shape: e.shape, data: toFloat32(e) });
  }
  edit(tensors);
  await writeSafetensorsFile(join(dir, "diffusion_pytorch_model.safetensors"), tensors);
  return dir;
}

function weightArrays(unet: { weights: Map<string, tf.Tensor> }): Map<string, Float32Array> {
  return new Map([...unet.weights].map(([k, v]) => [k, v.dataSync() as Float32Array]));
}

Deno.test("save → load round-trips bit-exactly and the saved file is in PyTorch layout", async () => {
  const before = tf.memory().numTensors;
  const original = await loadBackbone(fixture("tiny-unet2d"));
  const dir = await Deno.makeTempDir({ prefix: "diffprobe-test-" });
  await saveBackbone(original, dir);
  const again = await loadBackbone(dir);
  const a = weightArrays(original), b = weightArrays(again);
  assert.deepEqual([...a.keys()].sort(), [...b.keys()].sort());
  for (const [k, v] of a) assert.deepEqual(b.get(k), v, k);
  // The saved tensors are the diffusers tensors byte for byte (same shapes, same values).
  const ref = await readSafetensorsFile(fixture("tiny-unet2d/diffusion_pytorch_model.safetensors"));
  const ours = await readSafetensorsFile(join(dir, "diffusion_pytorch_model.safetensors"));
  assert.equal(ours.tensors.size, ref.tensors.size);
  for (const [name, e] of ref.tensors) {
    const o = ours.tensors.get(name)!;
    assert.deepEqual(o.shape, e.shape, name);
    assert.deepEqual(o.bytes, e.bytes, name);
  }
  const config = JSON.parse(await Deno.readTextFile(join(dir, "config.json")));
  assert.equal(config._class_name, "UNet2DModel");
  assert.deepEqual(config.block_out_channels, [32, 64]);
  original.dispose();
  again.dispose();
  assert.equal(tf.memory().numTensors, before);
});

Deno.test("legacy attention keys load to the same weights as current ones", async () => {
  const current = await loadBackbone(fixture("tiny-unet2d"));
  const legacy = await loadBackbone(fixture("tiny-unet2d-legacy-keys"));
  const a = weightArrays(current), b = weightArrays(legacy);
  for (const [k, v] of a) assert.deepEqual(b.get(k), v, k);
  current.dispose();
  legacy.dispose();
});

Deno.test("F16 and BF16 checkpoints load as the float32 values they encode", async () => {
  const ref = await loadBackbone(fixture("tiny-unet2d"));
  const f16Dir = await copyModel(fixture("tiny-unet2d"), (tensors) => {
    for (const [name, t] of tensors) {
      tensors.set(name, {
        dtype: "F16",
        shape: t.shape,
        data: float32ToFloat16Bits(t.data as Float32Array),
      });
    }
  });
  const bf16Dir = await copyModel(fixture("tiny-unet2d"), (tensors) => {
    for (const [name, t] of tensors) {
      const bits = new Uint32Array((t.data as Float32Array).slice().buffer);
      tensors.set(name, {
        dtype: "BF16",
        shape: t.shape,
        data: Uint16Array.from(bits, (b) => b >>> 16),
      });
    }
  });
  const f16 = await loadBackbone(f16Dir);
  const bf16 = await loadBackbone(bf16Dir);
  for (const [name, w] of ref.weights) {
    const exact = w.dataSync() as Float32Array;
    const h = f16.weights.get(name)!.dataSync();
    const b = bf16.weights.get(name)!.dataSync();
    for (let i = 0; i < exact.length; i++) {
      // BF16 is float32 with the low 16 bits cut off: compare bit patterns.
      const truncated = new Float32Array(
        new Uint32Array([new Uint32Array(new Float32Array([exact[i]]).buffer)[0] & 0xffff0000])
          .buffer,
      )[0];
      assert.equal(b[i], truncated, `${name}[${i}] bf16`);
      // F16 keeps 11 significant bits: the relative error is at most 2^-11 (normal range).
      if (Math.abs(exact[i]) > 6.2e-5) {
        assert.ok(Math.abs(h[i] - exact[i]) <= Math.abs(exact[i]) * 2 ** -11, `${name}[${i}] f16`);
      }
    }
  }
  tf.dispose([ref, f16, bf16].map((u) => [...u.weights.values()]).flat());
});

Deno.test("missing, unexpected and mis-shaped weights name the key and both shapes", async () => {
  const missing = await copyModel(
    fixture("tiny-unet2d"),
    (t) => t.delete("mid_block.resnets.1.conv2.weight"),
  );
  await assert.rejects(
    loadBackbone(missing),
    /missing 1 weight\(s\): mid_block\.resnets\.1\.conv2\.weight/,
  );
  const unexpected = await copyModel(
    fixture("tiny-unet2d"),
    (t) =>
      t.set("down_blocks.0.resnets.7.conv1.bias", {
        dtype: "F32",
        shape: [2],
        data: new Float32Array(2),
      }),
  );
  await assert.rejects(
    loadBackbone(unexpected),
    /Unexpected weight "down_blocks\.0\.resnets\.7\.conv1\.bias"/,
  );
  const misshaped = await copyModel(
    fixture("tiny-unet2d"),
    (t) =>
      t.set("conv_in.weight", { dtype: "F32", shape: [32, 3, 1, 1], data: new Float32Array(96) }),
  );
  await assert.rejects(
    loadBackbone(misshaped),
    /"conv_in\.weight" .* has shape \[32,3,1,1\], the config expects \[32,3,3,3\]/,
  );
  await assert.rejects(loadBackbone("/nonexistent/model"), /Cannot read the model config/);
  const leaks = tf.memory().numTensors;
  await assert.rejects(loadBackbone(misshaped));
  assert.equal(tf.memory().numTensors, leaks, "a failed load releases what it read");
});

Deno.test("createBackbone is deterministic for a seed and differs across seeds", () => {
  const config = JSON.parse(Deno.readTextFileSync(fixture("tiny-unet2d/config.json")));
  const a = createBackbone(config, { seed: 4 }), b = createBackbone(config, { seed: 4 });
  const c = createBackbone(config, { seed: 5 });
  const w = (u: typeof a) => u.weights.get("conv_in.weight")!.dataSync();
  assert.deepEqual(w(a), w(b));
  assert.notDeepEqual(w(a), w(c));
  // PyTorch's default init: |w| <= 1/sqrt(fan_in) = 1/sqrt(3·3·3).
  assert.ok(Math.max(...w(a).map(Math.abs)) <= 1 / Math.sqrt(27));
  a.dispose();
  b.dispose();
  c.dispose();
});
