/**
 * Parity with diffusers: every block output and the noise prediction of the reference fixtures
 * (made by diffusers' UNet2DModel in PyTorch) match ours to 1e-4, on the cpu and wasm backends.
 */
import * as tf from "@tensorflow/tfjs";
import "@tensorflow/tfjs-backend-wasm";
import assert from "node:assert/strict";
import { loadBackbone } from "../src/models/backbone.ts";
import type { Backbone } from "../src/models/unet.ts";
import { readSafetensorsFile, toFloat32 } from "../src/io/safetensors.ts";
import { fixture, shared, skipNote } from "./_fixtures.ts";

const TOLERANCE = 1e-4;

/** Reads a parity file: NCHW tensors converted to NHWC. */
async function readParity(path: string) {
  const file = await readSafetensorsFile(path);
  const get = (name: string) => {
    const e = file.tensors.get(name);
    if (!e) throw new Error(`Parity file has no ${name}`);
    return tf.tidy(() => tf.tensor(toFloat32(e), e.shape).transpose([0, 2, 3, 1]));
  };
  return {
    t: Number(file.metadata.t),
    order: JSON.parse(file.metadata.order) as string[],
    get,
  };
}

/** Max abs error per block and for eps on the current backend. */
export async function parityErrors(
  modelDir: string,
  parityPath: string,
): Promise<Map<string, number>> {
  const unet: Backbone = await loadBackbone(modelDir);
  const ref = await readParity(parityPath);
  const before = tf.memory().numTensors;
  const errors = new Map<string, number>();
  const xt = ref.get("input.xt");
  const out = unet.forward(xt, [ref.t, ref.t], { capture: ref.order, eps: true });
  for (const name of [...ref.order, "output.eps"]) {
    const ours = name === "output.eps" ? out.eps! : out.blocks.get(name)!;
    const theirs = ref.get(name.startsWith("output") ? name : `block.${name}`);
    assert.deepEqual(ours.shape, theirs.shape, `shape of ${name}`);
    const err = tf.tidy(() => tf.max(tf.abs(tf.sub(ours, theirs))).dataSync()[0]);
    errors.set(name, err);
    theirs.dispose();
  }
  out.eps?.dispose();
  for (const t of out.blocks.values()) t.dispose();
  xt.dispose();
  assert.equal(tf.memory().numTensors, before, "forward leaks no tensors");
  unet.dispose();
  return errors;
}

function assertClose(errors: Map<string, number>) {
  for (const [name, err] of errors) {
    assert.ok(err <= TOLERANCE, `${name}: max abs error ${err} > ${TOLERANCE}`);
  }
}

for (const backend of ["cpu", "wasm"]) {
  Deno.test(`tiny-unet2d matches diffusers on ${backend}`, async () => {
    await tf.setBackend(backend);
    const errors = await parityErrors(
      fixture("tiny-unet2d"),
      fixture("tiny-unet2d-parity-t500.safetensors"),
    );
    assert.equal(errors.size, 11);
    assertClose(errors);
  });

  Deno.test(`tiny-unet2d with legacy attention keys matches diffusers on ${backend}`, async () => {
    await tf.setBackend(backend);
    assertClose(
      await parityErrors(
        fixture("tiny-unet2d-legacy-keys"),
        fixture("tiny-unet2d-parity-t500.safetensors"),
      ),
    );
  });

  Deno.test({
    name: `ddpm-cifar10-small (real checkpoint, sharded) matches diffusers on ${backend}`,
    ignore: skipNote("fixtures/ddpm-cifar10-small"),
    async fn() {
      await tf.setBackend(backend);
      const errors = await parityErrors(
        shared("fixtures/ddpm-cifar10-small")!,
        shared("fixtures/ddpm-cifar10-small-parity-t30.safetensors")!,
      );
      assert.equal(errors.size, 29);
      console.log(
        `${backend} max abs error per block:\n` +
          [...errors].map(([n, e]) => `  ${n.padEnd(26)} ${e.toExponential(2)}`).join("\n"),
      );
      assertClose(errors);
    },
  });
}
