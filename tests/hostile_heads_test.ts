/**
 * Hostile and malformed inputs to the probing heads: fitting on features too large for float32,
 * failed fits leaving the head as it was, tampered or oversized saved heads refused at load
 * (before anything of their size is allocated) with the file, field and value named, paths that
 * are folders or devices, failed saves leaving no temporary file, and no leaked tensors.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import assert from "node:assert/strict";
import { join } from "node:path";
import { AttentionHead, type Head, type HeadTask, LinearHead, loadHead, MLPHead } from "../mod.ts";
import { serializeSafetensors } from "../src/io/safetensors.ts";

/** A copy of everything a head holds: weights by name and its statistics. */
function stateOf(head: Head<HeadTask>): unknown {
  return {
    weights: [...head.weights].map(([name, v]) => [name, Array.from(v.dataSync())]),
    standardization: head.standardization,
  };
}

/** A saved LinearHead folder ([16] → 2, standardised), for tampering. */
async function savedLinear(): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "hostile_heads_" });
  const head = new LinearHead({ inputShape: [16], outputs: 2, seed: 1 });
  const x = tf.randomNormal([32, 16], 0, 1, "float32", 3);
  await head.fit(x, Array.from({ length: 32 }, (_, i) => i % 2), { epochs: 1 });
  await head.save(dir);
  x.dispose();
  head.dispose();
  return dir;
}

/** The parts of `head.json` the tests tamper with. */
interface EditableManifest {
  options: Record<string, unknown>;
  standardization: { mean: unknown[]; std: unknown[] } | null;
}

async function editManifest(dir: string, edit: (m: EditableManifest) => void): Promise<void> {
  const file = join(dir, "head.json");
  const manifest = JSON.parse(await Deno.readTextFile(file));
  edit(manifest);
  await Deno.writeTextFile(file, JSON.stringify(manifest));
}

Deno.test("fit on features of 3e38 throws a clear error and leaves the head as it was", async () => {
  const head = new LinearHead({ inputShape: [4], outputs: 2 });
  const good = tf.randomNormal([16, 4], 0, 1, "float32", 1);
  const y = Array.from({ length: 16 }, (_, i) => i % 2);
  await head.fit(good, y, { epochs: 2 });
  const before = stateOf(head);
  const tensors = tf.memory().numTensors;
  const huge = tf.fill([16, 4], 3e38);
  await assert.rejects(head.fit(huge, y, { epochs: 2 }), {
    name: "RangeError",
    message: /too large to standardise in float32: feature \[0\] has mean Infinity/,
  });
  assert.deepEqual(stateOf(head), before);
  // Without standardisation the loss overflows: the divergence is caught at the first epoch.
  await assert.rejects(head.fit(huge, y, { epochs: 2, standardize: false }), {
    name: "RangeError",
    message: /Training diverged: the mean loss of epoch 1 is (NaN|Infinity); the head is left/,
  });
  assert.deepEqual(stateOf(head), before);
  assert.equal(tf.memory().numTensors, tensors + 1); // only `huge`
  tf.dispose([good, huge]);
  head.dispose();
});

Deno.test("a fit whose onEpoch throws leaves the head as it was, and nothing leaks", async () => {
  const head = new MLPHead({ inputShape: [3], outputs: 1, task: "regression", hidden: [4] });
  const x = tf.randomNormal([12, 3], 0, 1, "float32", 2);
  const before = stateOf(head);
  const tensors = tf.memory().numTensors;
  await assert.rejects(
    head.fit(x, Array.from({ length: 12 }, (_, i) => i / 12), {
      epochs: 3,
      onEpoch: ({ epoch }) => {
        if (epoch === 2) throw new Error("stop at epoch 2");
      },
    }),
    /stop at epoch 2/,
  );
  assert.deepEqual(stateOf(head), before);
  assert.equal(tf.memory().numTensors, tensors);
  x.dispose();
  head.dispose();
});

Deno.test("a failed fitRidge leaves the head unchanged and leaks no tensor", async () => {
  const head = new LinearHead({ inputShape: [2], outputs: 1, task: "regression" });
  const x = tf.tensor2d([[1, 2], [2, 4], [3, 6]]); // second feature = 2 × first: singular
  await head.fitRidge(tf.tensor2d([[1, 0], [0, 1], [1, 1]]), [1, 2, 3], { penalties: [0.1] });
  const before = stateOf(head);
  const tensors = tf.memory().numTensors;
  await assert.rejects(head.fitRidge(x, [1, 2, 3], { penalties: [0] }), {
    name: "RangeError",
    message: /no positive definite system for penalties \[0\]/,
  });
  assert.deepEqual(stateOf(head), before); // the standardisation too, not only the weights
  await assert.rejects(head.fitRidge(x, [1, NaN, 3], { penalties: [1] }), {
    name: "RangeError",
    message: /Targets contain a non-finite value \(NaN\) at sample 1/,
  });
  await assert.rejects(
    head.fitRidge(x, [1, 2, 3], { penalties: [1], validationData: { x, y: [1, Infinity, 2] } }),
    /Targets contain a non-finite value \(Infinity\) at sample 1/,
  );
  assert.deepEqual(stateOf(head), before);
  assert.equal(tf.memory().numTensors, tensors);
  x.dispose();
  head.dispose();
});

Deno.test("fit and evaluate with non-finite targets leak no tensor", async () => {
  const head = new LinearHead({ inputShape: [2], outputs: 2, task: "regression" });
  const x = tf.ones([3, 2]);
  const y = tf.tensor2d([[1, 2], [3, NaN], [5, 6]]);
  const tensors = tf.memory().numTensors;
  await assert.rejects(
    head.fit(x, y),
    /Targets contain a non-finite value \(NaN\) at sample 1, output \[1\]/,
  );
  assert.throws(() => head.evaluate(x, y), /non-finite value \(NaN\)/);
  assert.equal(tf.memory().numTensors, tensors);
  tf.dispose([x, y]);
  head.dispose();
});

Deno.test("loading refuses bad standardisation statistics, naming file, field and value", async () => {
  const dir = await savedLinear();
  try {
    const file = join(dir, "head.json");
    const original = await Deno.readTextFile(file);
    const cases: [unknown, RegExp][] = [
      [0, /std\[3\] must be a finite float32 number >= .* got 0$/],
      [-2, /std\[3\] must be .* got -2$/],
      ["1", /std\[3\] must be .* got "1"$/],
      [1e-40, /std\[3\] must be .*\(positive, normal in float32\), got 1e-40$/],
      [null, /std\[3\] must be .* got null$/],
      [1e39, /std\[3\] must be .* got 1e\+39$/],
    ];
    for (const [value, message] of cases) {
      await Deno.writeTextFile(file, original);
      await editManifest(dir, (m) => m.standardization!.std[3] = value);
      const tensors = tf.memory().numTensors;
      await assert.rejects(loadHead(dir), (e: Error) => {
        assert.equal(e.name, "RangeError");
        assert.ok(e.message.includes(`"${file}" field standardization.std[3]`), e.message);
        assert.match(e.message, message);
        return true;
      });
      assert.equal(tf.memory().numTensors, tensors);
    }
    await Deno.writeTextFile(file, original);
    await editManifest(dir, (m) => m.standardization!.mean = m.standardization!.mean.slice(1));
    await assert.rejects(LinearHead.load(dir), {
      name: "RangeError",
      message: /field standardization\.mean must be an array of 16 numbers, got 15 entries/,
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("loading refuses NaN or infinite weights, naming the file and the tensor", async () => {
  const dir = await savedLinear();
  try {
    const weight = new Float32Array(32).fill(0.5);
    weight[7] = NaN;
    const file = join(dir, "head.safetensors");
    await Deno.writeFile(
      file,
      serializeSafetensors({
        "linear.weight": { dtype: "F32", shape: [16, 2], data: weight },
        "linear.bias": { dtype: "F32", shape: [2], data: new Float32Array(2) },
      }),
    );
    await assert.rejects(loadHead(dir), {
      name: "RangeError",
      message: `"${file}" tensor "linear.weight" must hold finite values, got NaN at index 7`,
    });
    // F64 values beyond float32 would become Infinity: refused as well.
    await Deno.writeFile(
      file,
      serializeSafetensors({
        "linear.weight": { dtype: "F64", shape: [16, 2], data: new Float64Array(32).fill(1e300) },
        "linear.bias": { dtype: "F32", shape: [2], data: new Float32Array(2) },
      }),
    );
    await assert.rejects(loadHead(dir), /"linear\.weight" must hold finite values, got Infinity/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("an edited inputShape is refused: the weights' metadata records the trained shape", async () => {
  const dir = await savedLinear();
  try {
    await editManifest(dir, (m) => m.options.inputShape = [4, 4]); // same 16 features
    await assert.rejects(loadHead(dir), {
      name: "RangeError",
      message: new RegExp(
        `"${join(dir, "head.json")}" field options\\.inputShape must be \\[16\\] .*got \\[4,4\\]`,
      ),
    });
    const attention = new AttentionHead({
      inputShape: [4, 4, 8],
      outputs: 2,
      dim: 8,
      heads: 2,
      layers: 1,
    });
    const folder = join(dir, "attention");
    await attention.save(folder);
    attention.dispose();
    await editManifest(folder, (m) => m.options.inputShape = [2, 8, 8]); // same weight shapes
    await assert.rejects(loadHead(folder), /options\.inputShape must be \[4,4,8\].*got \[2,8,8\]/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("head.json sizes are checked against the weights file before anything is allocated", async () => {
  const dir = await savedLinear();
  try {
    const file = join(dir, "head.json");
    const original = await Deno.readTextFile(file);
    const bytes = tf.memory().numBytes;
    // 2^24 features: plausible, but not what head.safetensors holds.
    await editManifest(dir, (m) => {
      m.options.inputShape = [4096, 4096];
      m.standardization = null;
    });
    await assert.rejects(loadHead(dir), {
      name: "RangeError",
      message: /field options\.inputShape must be \[16\]/,
    });
    assert.equal(tf.memory().numBytes, bytes);
    // Beyond the feature limit, or absurd hidden widths: refused by the option checks.
    await Deno.writeTextFile(file, original);
    await editManifest(dir, (m) => m.options.inputShape = [1e6, 1e6]);
    await assert.rejects(loadHead(dir), {
      name: "RangeError",
      message: new RegExp(`"${file}" field options: Input shape must hold at most 268435456`),
    });
    await Deno.writeTextFile(file, original);
    await editManifest(dir, (m) => m.options.outputs = "2");
    await assert.rejects(
      loadHead(dir),
      /field options: Outputs must be a positive integer, got "2"/,
    );
    const mlp = new MLPHead({ inputShape: [2], outputs: 2, hidden: [3] });
    const folder = join(dir, "mlp");
    await mlp.save(folder);
    mlp.dispose();
    await editManifest(folder, (m) => m.options.hidden = [1e9]);
    await assert.rejects(
      loadHead(folder),
      /Hidden widths must be an array of integers in \[1, 65536\], got \[1000000000\]/,
    );
    assert.equal(tf.memory().numBytes, bytes);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("an oversized or non-regular weights file is refused before it is read", async () => {
  const dir = await savedLinear();
  try {
    const file = join(dir, "head.safetensors");
    await Deno.truncate(file, 2 ** 31); // sparse: 2 GB on paper, nothing on disk
    await assert.rejects(loadHead(dir), {
      name: "RangeError",
      message: new RegExp(
        `Cannot read head weights "${file}": the file is 2147483648 bytes, above the limit of \\d+`,
      ),
    });
    await Deno.remove(file);
    await Deno.mkdir(file);
    await assert.rejects(loadHead(dir), {
      name: "TypeError",
      message: `Cannot read head weights "${file}": it is a directory, not a regular file`,
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a head.json that is a folder, a device, missing, malformed or pointing outside is named", async () => {
  const dir = await Deno.makeTempDir({ prefix: "hostile_heads_" });
  try {
    const file = join(dir, "head.json");
    await assert.rejects(loadHead(dir), {
      name: "NotFound",
      message: `Cannot read head.json "${file}": the file does not exist`,
    });
    await Deno.mkdir(file);
    await assert.rejects(loadHead(dir), {
      name: "TypeError",
      message: `Cannot read head.json "${file}": it is a directory, not a regular file`,
    });
    await Deno.remove(file);
    await Deno.writeTextFile(file, "{ not json");
    await assert.rejects(loadHead(dir), {
      name: "SyntaxError",
      message: new RegExp(`"${file}" is not valid JSON`),
    });
    const manifest = {
      format: "diffprobe-head",
      version: 1,
      className: "LinearHead",
      options: { inputShape: [2], outputs: 2 },
      standardization: null,
      weights: "../../etc/passwd",
    };
    await Deno.writeTextFile(file, JSON.stringify(manifest));
    await assert.rejects(loadHead(dir), {
      name: "TypeError",
      message: `"${file}" field weights must be a file name in the folder, got "../../etc/passwd"`,
    });
    await Deno.writeTextFile(file, JSON.stringify({ ...manifest, version: 2 }));
    await assert.rejects(loadHead(dir), {
      name: "TypeError",
      message: /field version must be 1, got 2/,
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a weights file linked to /dev/zero is refused without reading it", async () => {
  const folder = new URL("./fixtures/hostile_heads/zero-weights/", import.meta.url).pathname;
  await assert.rejects(LinearHead.load(folder), {
    name: "TypeError",
    message: `Cannot read head weights "${
      join(folder, "head.safetensors")
    }": it is a character device, not a regular file`,
  });
});

Deno.test("saving onto a file or over a folder fails naming the path and leaves no temporary file", async () => {
  const dir = await Deno.makeTempDir({ prefix: "hostile_heads_" });
  const head = new LinearHead({ inputShape: [2], outputs: 2 });
  try {
    const taken = join(dir, "a-file");
    await Deno.writeTextFile(taken, "x");
    await assert.rejects(head.save(taken), (e: Error) => {
      assert.ok(
        e instanceof Deno.errors.AlreadyExists || e instanceof Deno.errors.NotADirectory,
        e.name,
      );
      assert.ok(e.message.startsWith(`Cannot save a head to "${taken}": `), e.message);
      return true;
    });
    const folder = join(dir, "head");
    await Deno.mkdir(join(folder, "head.json"), { recursive: true }); // where the file should go
    await assert.rejects(head.save(folder), (e: Error) => {
      assert.ok(e.message.includes(join(folder, "head.json")), e.message);
      return true;
    });
    const left = [...Deno.readDirSync(folder)].map((e) => e.name).sort();
    assert.deepEqual(left, ["head.json", "head.safetensors"]); // no *.tmp
  } finally {
    head.dispose();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("weightShapes gives exactly the weights each head class allocates", () => {
  const heads: [Head<HeadTask>, Map<string, number[]>][] = [
    [
      new LinearHead({ inputShape: [3, 2], outputs: 4 }),
      LinearHead.weightShapes({ inputShape: [3, 2], outputs: 4 }),
    ],
    [
      new MLPHead({ inputShape: [5], outputs: 2, hidden: [7, 3] }),
      MLPHead.weightShapes({ inputShape: [5], outputs: 2, hidden: [7, 3] }),
    ],
    [
      new AttentionHead({ inputShape: [2, 3, 4], outputs: 3, dim: 8, heads: 2, layers: 2 }),
      AttentionHead.weightShapes({
        inputShape: [2, 3, 4],
        outputs: 3,
        dim: 8,
        heads: 2,
        layers: 2,
      }),
    ],
  ];
  for (const [head, shapes] of heads) {
    assert.deepEqual(
      [...head.weights].map(([name, v]) => [name, v.shape]),
      [...shapes],
      head.className,
    );
    head.dispose();
  }
});
