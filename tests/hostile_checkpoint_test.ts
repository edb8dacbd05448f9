/**
 * Hostile checkpoints: files that are not regular files, sparse giants, symbolic links out of
 * the model folder (and loops), contents that must never be echoed, weights that are not
 * finite in float32, and writes that fail. Each case asserts the error class and that the
 * message names the file (and the tensor or value where there is one), and that it comes
 * quickly: nothing here may read a large file, block or allocate from a declared size.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import assert from "node:assert/strict";
import { join } from "node:path";
import { SafetensorsError } from "../src/io/errors.ts";
import type { SafetensorsErrorCode } from "../src/io/errors.ts";
import {
  readSafetensorsFile,
  serializeSafetensors,
  type TensorToWrite,
  toFloat32,
  writeSafetensorsFile,
} from "../src/io/safetensors.ts";
import { readCheckpointTensors } from "../src/io/checkpoint_files.ts";
import { createBackbone, loadBackbone, saveBackbone } from "../src/models/backbone.ts";
import { fixture } from "./_fixtures.ts";

const TINY = fixture("tiny-unet2d");
/** Committed folders with symbolic links (see its README): Deno.symlink needs unscoped permissions. */
const HOSTILE = fixture("hostile");
const SECRET = "SECRET-CONTENT-7f3a";

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "diffprobe-hostile-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Awaits a rejection; checks its class (and code), that it names `parts`, and took < 2 s. */
async function rejects(
  run: () => Promise<unknown>,
  cls: abstract new (...args: never[]) => Error,
  parts: string[],
  code?: SafetensorsErrorCode,
): Promise<Error> {
  const started = performance.now();
  let caught: unknown;
  try {
    await run();
  } catch (error) {
    caught = error;
  }
  const seconds = (performance.now() - started) / 1000;
  assert.ok(caught instanceof cls, `expected a ${cls.name}, got ${String(caught)}`);
  if (code !== undefined) {
    assert.ok(caught instanceof SafetensorsError, String(caught));
    assert.equal(caught.code, code, caught.message);
  }
  for (const part of parts) {
    assert.ok(caught.message.includes(part), `"${caught.message}" does not name ${part}`);
  }
  assert.ok(
    !caught.message.includes(SECRET),
    `the message echoes file contents: ${caught.message}`,
  );
  assert.ok(seconds < 2, `took ${seconds.toFixed(1)} s`);
  return caught;
}

/** Collects every tensor name of a folder. */
async function names(folder: string, options = {}): Promise<string[]> {
  const out: string[] = [];
  for await (const { name } of readCheckpointTensors(folder, undefined, options)) out.push(name);
  return out;
}

const one = (v: number): TensorToWrite => ({
  dtype: "F32",
  shape: [1],
  data: new Float32Array([v]),
});

/** A sharded folder: shard a.safetensors holds "a", b.safetensors holds "b". */
async function shardedFolder(dir: string): Promise<string> {
  const folder = join(dir, "model");
  await Deno.mkdir(folder);
  await writeSafetensorsFile(join(folder, "a.safetensors"), { a: one(1) });
  await writeSafetensorsFile(join(folder, "b.safetensors"), { b: one(2) });
  await Deno.writeTextFile(
    join(folder, "diffusion_pytorch_model.safetensors.index.json"),
    JSON.stringify({ weight_map: { a: "a.safetensors", b: "b.safetensors" } }),
  );
  return folder;
}

/** A copy of the tiny model folder with its tensors edited (written as F32 unless changed). */
async function tinyCopy(
  dir: string,
  edit: (t: Map<string, TensorToWrite>) => void,
): Promise<string> {
  const folder = join(dir, "tiny");
  await Deno.mkdir(folder);
  await Deno.copyFile(join(TINY, "config.json"), join(folder, "config.json"));
  const file = await readSafetensorsFile(join(TINY, "diffusion_pytorch_model.safetensors"));
  const tensors = new Map<string, TensorToWrite>();
  for (const [name, e] of file.tensors) {
    tensors.set(name, { dtype: "F32", shape: e.shape, data: toFloat32(e) });
  }
  edit(tensors);
  await writeSafetensorsFile(join(folder, "diffusion_pytorch_model.safetensors"), tensors);
  return folder;
}

async function listNames(dir: string): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(dir)) out.push(e.name);
  return out.sort();
}

// 1. Bounded reads -------------------------------------------------------------------------------

Deno.test("hostile checkpoint: /dev/zero, or a link to it, is refused unopened", async () => {
  await rejects(
    () => readSafetensorsFile("/dev/zero"),
    SafetensorsError,
    ["/dev/zero", "character device"],
    "not-regular-file",
  );
  const link = join(HOSTILE, "zero-link/diffusion_pytorch_model.safetensors");
  await rejects(
    () => readSafetensorsFile(link),
    SafetensorsError,
    [link, "character device"],
    "not-regular-file",
  );
  // In a model folder the link leads outside it; followed on request, it is still refused.
  const folder = join(HOSTILE, "zero-link");
  await rejects(() => loadBackbone(folder), SafetensorsError, [link], "path-escape");
  await rejects(
    () => loadBackbone(folder, { allowExternalLinks: true }),
    SafetensorsError,
    [link, "character device"],
    "not-regular-file",
  );
});

Deno.test("hostile checkpoint: a directory named like a weights file is refused", async () => {
  await withTempDir(async (dir) => {
    const folder = join(dir, "m");
    await Deno.mkdir(join(folder, "diffusion_pytorch_model.safetensors"), { recursive: true });
    const path = join(folder, "diffusion_pytorch_model.safetensors");
    await rejects(
      () => readSafetensorsFile(path),
      SafetensorsError,
      [path, "directory"],
      "not-regular-file",
    );
    await rejects(() => names(folder), SafetensorsError, [path, "directory"], "not-regular-file");
  });
});

/** Whether this run may create a FIFO (`--allow-run=mkfifo`); Deno has no mkfifo of its own. */
const canMkfifo =
  Deno.permissions.querySync({ name: "run", command: "mkfifo" }).state === "granted";

Deno.test({
  name: "hostile checkpoint: a FIFO in place of a weights file fails at once instead of blocking",
  ignore: !canMkfifo, // creating a FIFO needs --allow-run=mkfifo
  async fn() {
    await withTempDir(async (dir) => {
      const path = join(dir, "fifo.safetensors");
      const made = await new Deno.Command("mkfifo", { args: [path] }).output();
      assert.ok(made.success);
      await rejects(
        () => readSafetensorsFile(path),
        SafetensorsError,
        [path, "FIFO"],
        "not-regular-file",
      );
    });
  },
});

/** An 8 GiB sparse file whose valid header declares one F32 tensor of 2^31 elements. */
async function sparseGiant(path: string, name = "huge"): Promise<number> {
  const header = new TextEncoder().encode(
    JSON.stringify({ [name]: { dtype: "F32", shape: [2 ** 31], data_offsets: [0, 2 ** 33] } }),
  );
  const prefix = new Uint8Array(8 + header.length);
  new DataView(prefix.buffer).setBigUint64(0, BigInt(header.length), true);
  prefix.set(header, 8);
  await Deno.writeFile(path, prefix);
  const size = prefix.length + 2 ** 33;
  await Deno.truncate(path, size); // sparse: takes no disk
  return size;
}

Deno.test("hostile checkpoint: an 8 GiB sparse file is judged by its header, its data never read", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "giant.safetensors");
    await sparseGiant(path);
    const error = await rejects(
      () => readSafetensorsFile(path, { maxDataBytes: 2 ** 30 }),
      SafetensorsError,
      [path, "8589934592 bytes", "1073741824"],
      "data-too-large",
    );
    assert.match(error.message, /declares 8589934592 bytes of tensor data/);

    // Zeros where the header should be: the 8-byte length says 0, refused at once.
    const zeros = join(dir, "zeros.safetensors");
    await Deno.writeFile(zeros, new Uint8Array(0));
    await Deno.truncate(zeros, 2 ** 33);
    await rejects(
      () => readSafetensorsFile(zeros),
      SafetensorsError,
      [zeros, "not valid JSON"],
      "invalid-json",
    );

    // A header that covers less than the file: the trailing 8 GiB are found from sizes alone.
    const trailing = join(dir, "trailing.safetensors");
    await Deno.writeFile(trailing, serializeSafetensors({ a: one(1) }));
    await Deno.truncate(trailing, 2 ** 33);
    await rejects(() => readSafetensorsFile(trailing), SafetensorsError, [
      trailing,
      "belong to no tensor",
    ], "data-hole");
  });
});

Deno.test("hostile checkpoint: loadBackbone checks a weights file's header against the config before its data", async () => {
  await withTempDir(async (dir) => {
    const folder = join(dir, "m");
    await Deno.mkdir(folder);
    await Deno.copyFile(join(TINY, "config.json"), join(folder, "config.json"));
    const path = join(folder, "diffusion_pytorch_model.safetensors");
    const before = tf.memory().numTensors;
    // An 8 GiB sparse file declaring a tensor the config does not have.
    await sparseGiant(path, "huge");
    await rejects(() => loadBackbone(folder), RangeError, [path, '"huge"', "no such parameter"]);
    // … or one it has, with a giant shape: refused from the header, naming both shapes.
    await sparseGiant(path, "conv_in.bias");
    await rejects(
      () => loadBackbone(folder),
      RangeError,
      [path, '"conv_in.bias"', "[2147483648]", "expects [32]"],
    );
    // Data beyond what the config can need (8 bytes × 702,499 parameters) is not read either.
    await rejects(
      () => readCheckpointTensors(folder, undefined, { maxDataBytes: 8 * 702_499 }).next(),
      SafetensorsError,
      [path, "8589934592 bytes", "5619992 bytes"],
      "data-too-large",
    );
    assert.equal(tf.memory().numTensors, before);
  });
});

// 2. Contained paths ------------------------------------------------------------------------------

Deno.test("hostile checkpoint: a shard linked outside the folder is refused before any read", async () => {
  const folder = join(HOSTILE, "escape"); // b.safetensors -> ../secret.txt
  const link = join(folder, "b.safetensors");
  const error = await rejects(
    () => names(folder),
    SafetensorsError,
    [link, "outside the model folder", folder],
    "path-escape",
  );
  assert.ok(!error.message.includes("secret.txt"), "the link's target is not shown");
  // Followed on request: the target is then read as a (bad) safetensors file, still unquoted:
  // not even its first 8 bytes as the header length they would be.
  const followed = await rejects(
    () => names(folder, { allowExternalLinks: true }),
    SafetensorsError,
    [link, "not a safetensors file"],
    "header-too-large",
  );
  assert.doesNotMatch(followed.message, /\d{11,}/);
});

Deno.test("hostile checkpoint: a shard in a sub-folder linked outside is refused", async () => {
  const folder = join(HOSTILE, "escape-dir"); // sub -> ../elsewhere
  await rejects(
    () => names(folder),
    SafetensorsError,
    [join(folder, "sub/b.safetensors")],
    "path-escape",
  );
  // Allowed when the caller says so (a Hugging Face cache snapshot links into ../../blobs).
  assert.deepEqual(await names(folder, { allowExternalLinks: true }), ["a", "b"]);
  // Links that stay inside the folder are followed as before.
  assert.deepEqual(await names(join(HOSTILE, "inside-link")), ["a", "b"]);
});

Deno.test("hostile checkpoint: loadBackbone refuses a weights file linked outside the folder", async () => {
  const folder = join(HOSTILE, "outside-weights"); // -> ../../tiny-unet2d/…
  const link = join(folder, "diffusion_pytorch_model.safetensors");
  const before = tf.memory().numTensors;
  await rejects(
    () => loadBackbone(folder),
    SafetensorsError,
    [link, "allowExternalLinks"],
    "path-escape",
  );
  assert.equal(tf.memory().numTensors, before);
  const unet = await loadBackbone(folder, { allowExternalLinks: true });
  assert.equal(unet.parameterCount(), 702_499);
  unet.dispose();
});

Deno.test("hostile checkpoint: a symbolic link loop is an error naming the path", async () => {
  const folder = join(HOSTILE, "loop"); // b.safetensors -> c.safetensors -> b.safetensors
  const b = join(folder, "b.safetensors");
  await rejects(
    () => names(folder),
    SafetensorsError,
    [b, "loop of symbolic links"],
    "read-failed",
  );
  await rejects(
    () => readSafetensorsFile(b),
    SafetensorsError,
    [b, "loop of symbolic links"],
    "read-failed",
  );
});

Deno.test("hostile checkpoint: malformed headers and indexes never echo the file's text", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "text.safetensors");
    const text = new TextEncoder().encode(`root:x:0:0:${SECRET}:/root:/bin/bash`);
    const bytes = new Uint8Array(8 + text.length);
    new DataView(bytes.buffer).setBigUint64(0, BigInt(text.length), true);
    bytes.set(text, 8);
    await Deno.writeFile(path, bytes);
    await rejects(
      () => readSafetensorsFile(path),
      SafetensorsError,
      [path, "not valid JSON"],
      "invalid-json",
    );

    const folder = await shardedFolder(dir);
    const index = join(folder, "diffusion_pytorch_model.safetensors.index.json");
    await Deno.writeTextFile(index, `{"weight_map": ${SECRET}}`);
    await rejects(
      () => names(folder),
      SafetensorsError,
      [index, "is not valid JSON"],
      "invalid-index",
    );
  });
});

// 4. Weights that are not finite in float32 ----------------------------------------------------

Deno.test("hostile checkpoint: F64 weights beyond float32, NaN and Infinity name file and tensor", async () => {
  await withTempDir(async (dir) => {
    const weights = (folder: string) => join(folder, "diffusion_pytorch_model.safetensors");
    const f64 = await tinyCopy(dir, (t) => {
      const data = new Float64Array(32).fill(0.5);
      data[7] = 1e300;
      t.set("conv_in.bias", { dtype: "F64", shape: [32], data });
    });
    const before = tf.memory().numTensors;
    await rejects(
      () => loadBackbone(f64),
      RangeError,
      [weights(f64), '"conv_in.bias"', "F64 value 1e+300", "overflows float32", "index 7"],
    );
    await Deno.remove(f64, { recursive: true });

    const nan = await tinyCopy(dir, (t) => {
      const data = new Float32Array(32);
      data[3] = NaN;
      t.set("conv_in.bias", { dtype: "F32", shape: [32], data });
    });
    await rejects(() => loadBackbone(nan), RangeError, [
      weights(nan),
      '"conv_in.bias"',
      "NaN",
      "index 3",
    ]);
    await Deno.remove(nan, { recursive: true });

    const inf = await tinyCopy(dir, (t) => {
      const bits = new Uint16Array(32);
      bits[0] = 0x7c00; // F16 +Infinity
      t.set("conv_in.bias", { dtype: "F16", shape: [32], data: bits });
    });
    await rejects(() => loadBackbone(inf), RangeError, [
      weights(inf),
      '"conv_in.bias"',
      "Infinity",
    ]);
    assert.equal(tf.memory().numTensors, before, "failed loads release what they read");
    await Deno.remove(inf, { recursive: true });

    // I8 (and every integer dtype) is finite in float32: it loads as its values.
    const int8 = await tinyCopy(dir, (t) => {
      t.set("conv_in.bias", { dtype: "I8", shape: [32], data: new Int8Array(32).fill(-128) });
    });
    const unet = await loadBackbone(int8);
    assert.deepEqual([...unet.weights.get("conv_in.bias")!.dataSync()], new Array(32).fill(-128));
    unet.dispose();
  });
});

// 5./6. Writes that fail name the path and leave no temporary file ------------------------------

Deno.test("hostile checkpoint: saveBackbone into a file, or over a config.json folder, names the path", async () => {
  const config = JSON.parse(await Deno.readTextFile(join(TINY, "config.json")));
  const unet = createBackbone(config);
  try {
    await withTempDir(async (dir) => {
      const file = join(dir, "taken");
      await Deno.writeTextFile(file, "x");
      await rejects(() => saveBackbone(unet, file), Deno.errors.AlreadyExists, [
        file,
        "not a folder",
      ]);

      const target = join(dir, "model");
      await Deno.mkdir(join(target, "config.json"), { recursive: true }); // EISDIR on the rename
      const error = await rejects(() => saveBackbone(unet, target), Error, [
        join(target, "config.json"),
      ]);
      assert.ok(!(error instanceof TypeError), String(error));
      assert.deepEqual(await listNames(target), [
        "config.json",
        "diffusion_pytorch_model.safetensors",
      ]);
      assert.deepEqual(await listNames(join(target, "config.json")), []);
    });
  } finally {
    unet.dispose();
  }
});

Deno.test("hostile checkpoint: a failed writeSafetensorsFile leaves no temporary file", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "w.safetensors");
    await Deno.mkdir(path);
    await rejects(() => writeSafetensorsFile(path, { a: one(1) }), Error, [path]);
    assert.deepEqual(await listNames(dir), ["w.safetensors"]);
    // A folder that does not exist: the temporary file cannot even be created.
    const missing = join(dir, "no/such/w.safetensors");
    await rejects(
      () => writeSafetensorsFile(missing, { a: one(1) }),
      Deno.errors.NotFound,
      [missing],
    );
    assert.deepEqual(await listNames(dir), ["w.safetensors"]);
  });
});
