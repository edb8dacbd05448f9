/**
 * Tests of the image datasets in `src/data/`: CIFAR-10 binaries, image folders,
 * the decode cache and the batch/checksum/subset helpers. Fixtures are written in
 * code; one test reads `../shared/data/cifar10-jpeg` when it exists.
 *
 * @module
 */

import { skipNote } from "./_fixtures.ts";
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import * as tf from "@tensorflow/tfjs";
import { encode as encodeJpeg } from "jpeg-js";
import { PNG } from "pngjs";
import { parseSafetensors, serializeSafetensors, toInt32 } from "../src/io/safetensors.ts";
import { CIFAR10_CLASSES, readCifar10Binary } from "../src/data/cifar10_binary.ts";
import {
  datasetChecksum,
  imageBatches,
  type ImageDataset,
  subset,
} from "../src/data/image_dataset.ts";
import { readImageFolder } from "../src/data/image_folder.ts";
import { balancedSubset } from "../src/data/balanced_subset.ts";
import { readCifar10 } from "../src/data/cifar10.ts";

// ---------------------------------------------------------------------------------------------
// Fixture helpers

const RECORD = 3073;

/** The value the fixture CIFAR records hold for record `r`, pixel `p` (0..1023), channel `c`. */
function cifarValue(r: number, p: number, c: number): number {
  return (r * 31 + c * 85 + p * 7) & 255;
}

/** CIFAR binary records with the given labels and pixels from `cifarValue(first + k, ...)`. */
function cifarRecords(labels: number[], first = 0): Uint8Array {
  const out = new Uint8Array(labels.length * RECORD);
  labels.forEach((label, k) => {
    const base = k * RECORD;
    out[base] = label;
    for (let c = 0; c < 3; c++) {
      for (let p = 0; p < 1024; p++) out[base + 1 + c * 1024 + p] = cifarValue(first + k, p, c);
    }
  });
  return out;
}

/** A PNG of `width × height` RGBA values, stored with the given colour type. */
function pngBytes(width: number, height: number, rgba: number[], colorType: 0 | 2 | 6): Uint8Array {
  assert.equal(rgba.length, width * height * 4);
  const png = new PNG({ width, height });
  png.data = Buffer.from(rgba);
  return new Uint8Array(PNG.sync.write(png, { colorType }));
}

/** RGBA values with full alpha from RGB triples. */
function opaque(rgb: number[]): number[] {
  const out: number[] = [];
  for (let i = 0; i < rgb.length; i += 3) out.push(rgb[i], rgb[i + 1], rgb[i + 2], 255);
  return out;
}

/** A solid-colour baseline JPEG. */
function jpegBytes(width: number, height: number, rgb: [number, number, number]): Uint8Array {
  const data = new Uint8Array(width * height * 4);
  for (let i = 0; i < width * height; i++) data.set([...rgb, 255], i * 4);
  return new Uint8Array(encodeJpeg({ width, height, data }, 100).data);
}

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "diffprobe_image_data_" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function writeFiles(root: string, files: Record<string, Uint8Array>): Promise<void> {
  for (const [rel, bytes] of Object.entries(files)) {
    const path = join(root, rel);
    await Deno.mkdir(join(path, ".."), { recursive: true });
    await Deno.writeFile(path, bytes);
  }
}

/** Captures console.warn output while `fn` runs. */
async function captureWarnings(fn: () => Promise<void>): Promise<string[]> {
  const original = console.warn;
  const messages: string[] = [];
  console.warn = (...args: unknown[]) => messages.push(args.map(String).join(" "));
  try {
    await fn();
  } finally {
    console.warn = original;
  }
  return messages;
}

// A 3×2 folder fixture: two classes, RGB / grayscale / RGBA PNGs, names out of order on disk.
const RGB_A0 = [255, 0, 0, 0, 255, 0, 0, 0, 255, 10, 20, 30, 40, 50, 60, 70, 80, 90];
const RGB_A1 = [1, 2, 3, 4, 5, 6, 7, 8, 9, 250, 251, 252, 253, 254, 255, 0, 128, 64];
const GRAY_B0 = [0, 17, 34, 51, 204, 255];
const RGBA_B1 = [
  [9, 8, 7, 0],
  [6, 5, 4, 128],
  [3, 2, 1, 255],
  [100, 110, 120, 1],
  [130, 140, 150, 254],
  [160, 170, 180, 77],
];

async function writeTinyFolder(root: string): Promise<void> {
  await writeFiles(root, {
    // Written in reverse name order so that the directory order is not the sorted one.
    "train/beta/z1.png": pngBytes(3, 2, RGBA_B1.flat(), 6),
    "train/beta/b0.png": pngBytes(3, 2, opaque(GRAY_B0.flatMap((g) => [g, g, g])), 0),
    "train/alpha/img1.PNG": pngBytes(3, 2, opaque(RGB_A1), 2),
    "train/alpha/img0.png": pngBytes(3, 2, opaque(RGB_A0), 2),
    "train/alpha/notes.txt": new TextEncoder().encode("not an image"),
    "train/.hidden/x.png": pngBytes(3, 2, opaque(RGB_A0), 2),
  });
}

const TINY_EXPECTED_PIXELS = [
  ...RGB_A0,
  ...RGB_A1,
  ...GRAY_B0.flatMap((g) => [g, g, g]),
  ...RGBA_B1.flatMap(([r, g, b]) => [r, g, b]),
];

// ---------------------------------------------------------------------------------------------
// CIFAR-10 binary

Deno.test("readCifar10Binary places the R, G and B planes in NHWC order", async () => {
  await withTempDir(async (dir) => {
    await Deno.writeFile(join(dir, "test_batch.bin"), cifarRecords([3, 0, 9]));
    const ds = await readCifar10Binary(dir, "test");
    assert.equal(ds.size, 3);
    assert.equal(ds.height, 32);
    assert.equal(ds.width, 32);
    assert.deepEqual(Array.from(ds.labels), [3, 0, 9]);
    assert.deepEqual(ds.classes, [...CIFAR10_CLASSES]);
    assert.equal(ds.pixels.length, 3 * 32 * 32 * 3);
    for (let i = 0; i < 3; i++) {
      for (let y = 0; y < 32; y++) {
        for (let x = 0; x < 32; x++) {
          for (let c = 0; c < 3; c++) {
            const got = ds.pixels[((i * 32 + y) * 32 + x) * 3 + c];
            if (got !== cifarValue(i, y * 32 + x, c)) {
              assert.fail(`image ${i} (${y}, ${x}) channel ${c}: ${got}`);
            }
          }
        }
      }
    }
    // Written out: image 1, row 0, column 1 holds (38, 123, 208).
    assert.deepEqual(Array.from(ds.pixels.subarray(3072 + 3, 3072 + 6)), [38, 123, 208]);
  });
});

Deno.test("readCifar10Binary reads the train batches in order from cifar-10-batches-bin/", async () => {
  await withTempDir(async (dir) => {
    const nested = join(dir, "cifar-10-batches-bin");
    await Deno.mkdir(nested);
    for (let k = 1; k <= 5; k++) {
      await Deno.writeFile(
        join(nested, `data_batch_${k}.bin`),
        cifarRecords([k, k - 1], 2 * (k - 1)),
      );
    }
    const names = ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"];
    await Deno.writeTextFile(join(nested, "batches.meta.txt"), names.join("\n") + "\n\n");
    const ds = await readCifar10Binary(dir, "train");
    assert.equal(ds.size, 10);
    assert.deepEqual(Array.from(ds.labels), [1, 0, 2, 1, 3, 2, 4, 3, 5, 4]);
    assert.deepEqual(ds.classes, names);
    for (let i = 0; i < 10; i++) {
      assert.equal(ds.pixels[i * 3072 + 2], cifarValue(i, 0, 2), `image ${i}`);
    }
  });
});

Deno.test("readCifar10Binary rejects a truncated file, naming the file and offset", async () => {
  await withTempDir(async (dir) => {
    const file = join(dir, "test_batch.bin");
    await Deno.writeFile(file, cifarRecords([1, 2]).subarray(0, 2 * RECORD - 5));
    await assert.rejects(() => readCifar10Binary(dir, "test"), (error: Error) => {
      assert.ok(error instanceof RangeError);
      assert.ok(error.message.includes(file), error.message);
      assert.ok(error.message.includes("record 1 at byte offset 3073"), error.message);
      return true;
    });
  });
});

Deno.test("readCifar10Binary rejects a label above 9, naming the file and record", async () => {
  await withTempDir(async (dir) => {
    const file = join(dir, "test_batch.bin");
    await Deno.writeFile(file, cifarRecords([1, 10, 2]));
    await assert.rejects(() => readCifar10Binary(dir, "test"), (error: Error) => {
      assert.ok(error instanceof RangeError);
      assert.ok(error.message.includes(file), error.message);
      assert.ok(error.message.includes("label 10 in record 1 (byte offset 3073)"), error.message);
      return true;
    });
  });
});

Deno.test("readCifar10Binary reports a missing batch file", async () => {
  await withTempDir(async (dir) => {
    await assert.rejects(() => readCifar10Binary(dir, "train"), Deno.errors.NotFound);
  });
});

// ---------------------------------------------------------------------------------------------
// Image folders

Deno.test("readImageFolder decodes PNGs exactly with sorted classes and files", async () => {
  await withTempDir(async (dir) => {
    await writeTinyFolder(dir);
    const ds = await readImageFolder(dir, { split: "train" });
    assert.deepEqual(ds.classes, ["alpha", "beta"]);
    assert.equal(ds.size, 4);
    assert.equal(ds.height, 2);
    assert.equal(ds.width, 3);
    assert.deepEqual(Array.from(ds.labels), [0, 0, 1, 1]);
    assert.deepEqual(ds.files, [
      join(dir, "train/alpha/img0.png"),
      join(dir, "train/alpha/img1.PNG"),
      join(dir, "train/beta/b0.png"),
      join(dir, "train/beta/z1.png"),
    ]);
    assert.deepEqual(Array.from(ds.pixels), TINY_EXPECTED_PIXELS);
  });
});

Deno.test("readImageFolder follows a given class order and works without a split", async () => {
  await withTempDir(async (dir) => {
    await writeTinyFolder(dir);
    const progress: number[][] = [];
    const ds = await readImageFolder(join(dir, "train"), {
      classes: ["beta", "alpha"],
      onProgress: (done, total) => progress.push([done, total]),
    });
    assert.deepEqual(ds.classes, ["beta", "alpha"]);
    assert.deepEqual(Array.from(ds.labels), [0, 0, 1, 1]);
    assert.deepEqual(ds.files!.map((f) => f.slice(dir.length)), [
      "/train/beta/b0.png",
      "/train/beta/z1.png",
      "/train/alpha/img0.png",
      "/train/alpha/img1.PNG",
    ]);
    assert.deepEqual(Array.from(ds.pixels.subarray(0, 18)), GRAY_B0.flatMap((g) => [g, g, g]));
    assert.deepEqual(progress.at(-1), [4, 4]);

    const onlyBeta = await readImageFolder(dir, { split: "train", classes: ["beta"] });
    assert.equal(onlyBeta.size, 2);
    assert.deepEqual(Array.from(onlyBeta.labels), [0, 0]);

    await assert.rejects(
      () => readImageFolder(dir, { split: "train", classes: ["gamma"] }),
      Deno.errors.NotFound,
    );
  });
});

Deno.test("readImageFolder gives the same result with decode workers", async () => {
  await withTempDir(async (dir) => {
    await writeTinyFolder(dir);
    const ds = await readImageFolder(dir, { split: "train", workers: 2 });
    assert.deepEqual(Array.from(ds.pixels), TINY_EXPECTED_PIXELS);
    assert.deepEqual(Array.from(ds.labels), [0, 0, 1, 1]);
  });
});

Deno.test("readImageFolder refuses asked-for workers without read access to their modules", async () => {
  await withTempDir(async (dir) => {
    await writeTinyFolder(dir);
    // A child process that may read the images but not the library's src/ folder.
    const src = fileURLToPath(new URL("../src/", import.meta.url));
    const script = `import { readImageFolder } from "${src}data/image_folder.ts";
      for (const workers of [2, 0]) {
        try {
          const ds = await readImageFolder(${JSON.stringify(dir)}, { split: "train", workers });
          console.log(workers, "read", ds.size);
        } catch (e) { console.log(workers, e.name, e.message); }
      }`;
    const main = join(dir, "main.ts");
    await Deno.writeTextFile(main, script);
    const out = await new Deno.Command("deno", {
      args: [
        "run",
        "-q",
        `--config=${fileURLToPath(new URL("../deno.json", import.meta.url))}`,
        `--allow-read=${dir}`,
        main,
      ],
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1" },
    }).output();
    const lines = new TextDecoder().decode(out.stdout).trim().split("\n");
    assert.equal(lines.length, 2, new TextDecoder().decode(out.stderr));
    assert.match(lines[0], /^2 TypeError Image decode workers need read access to .*src/);
    assert.match(lines[0], /--allow-read, or pass \{ workers: 0 \}/);
    assert.equal(lines[1], "0 read 4");
  });
});

Deno.test("readImageFolder decodes JPEGs and names a corrupt one", async () => {
  await withTempDir(async (dir) => {
    const good = jpegBytes(8, 8, [200, 40, 90]);
    await writeFiles(dir, { "a/0.jpg": good, "a/1.jpeg": good, "b/0.jpg": good });
    const ds = await readImageFolder(dir);
    assert.equal(ds.size, 3);
    assert.equal(ds.height, 8);
    for (let i = 0; i < ds.pixels.length; i += 3) {
      const [r, g, b] = ds.pixels.subarray(i, i + 3);
      assert.ok(Math.abs(r - 200) <= 3 && Math.abs(g - 40) <= 3 && Math.abs(b - 90) <= 3);
    }

    const bad = join(dir, "b", "1.jpg");
    await Deno.writeFile(bad, good.subarray(0, good.length - 40));
    for (const workers of [0, 1]) {
      await assert.rejects(() => readImageFolder(dir, { workers }), (error: Error) => {
        assert.ok(error instanceof TypeError, `${error}`);
        assert.ok(error.message.includes(bad), error.message);
        return true;
      });
    }
    await Deno.writeFile(bad, new TextEncoder().encode("definitely not a JPEG"));
    await assert.rejects(() => readImageFolder(dir), (error: Error) => {
      assert.ok(error.message.includes(bad), error.message);
      return true;
    });
  });
});

Deno.test("readImageFolder rejects mixed image sizes, naming the file and both sizes", async () => {
  await withTempDir(async (dir) => {
    await writeTinyFolder(dir);
    const odd = join(dir, "train/beta/b0.png");
    await Deno.writeFile(odd, pngBytes(2, 2, opaque(new Array(12).fill(7)), 2));
    for (const workers of [0, 1]) {
      await assert.rejects(
        () => readImageFolder(dir, { split: "train", workers }),
        (error: Error) => {
          assert.ok(error instanceof RangeError);
          assert.ok(error.message.includes(odd), error.message);
          assert.ok(error.message.includes("2×2") && error.message.includes("3×2"), error.message);
          return true;
        },
      );
    }
  });
});

Deno.test("readImageFolder rejects an empty class folder", async () => {
  await withTempDir(async (dir) => {
    await writeTinyFolder(dir);
    await Deno.mkdir(join(dir, "train/gamma"));
    await assert.rejects(() => readImageFolder(dir, { split: "train" }), /contains no/);
  });
});

// ---------------------------------------------------------------------------------------------
// Decode cache

Deno.test("readImageFolder's cache round-trips, is used, and is rebuilt when corrupt", async () => {
  await withTempDir(async (dir) => {
    const data = join(dir, "data");
    const cacheDir = join(dir, "cache");
    await writeTinyFolder(data);

    const first = await readImageFolder(data, { split: "train", cacheDir });
    assert.deepEqual(Array.from(first.pixels), TINY_EXPECTED_PIXELS);
    const entries = [...Deno.readDirSync(cacheDir)].map((e) => e.name);
    assert.equal(entries.length, 1, `${entries}`);
    assert.ok(entries[0].endsWith(".safetensors"));
    const cacheFile = join(cacheDir, entries[0]);
    const stored = parseSafetensors(await Deno.readFile(cacheFile), cacheFile);
    assert.deepEqual(stored.tensors.get("pixels")!.shape, [4, 2, 3, 3]);
    assert.deepEqual(Array.from(toInt32(stored.tensors.get("labels")!)), [0, 0, 1, 1]);
    assert.deepEqual(JSON.parse(stored.metadata.classes), ["alpha", "beta"]);
    assert.equal(stored.metadata.checksum, await datasetChecksum(first));

    // Prove the second read comes from the cache: rewrite it validly with one pixel changed.
    const pixels = stored.tensors.get("pixels")!.bytes.slice();
    pixels[0] = 77;
    const tampered: ImageDataset = { ...first, pixels };
    await Deno.writeFile(
      cacheFile,
      serializeSafetensors({
        pixels: { dtype: "U8", shape: [4, 2, 3, 3], data: pixels },
        labels: { dtype: "I32", shape: [4], data: first.labels },
      }, { ...stored.metadata, checksum: await datasetChecksum(tampered) }),
    );
    let second: ImageDataset | undefined;
    assert.deepEqual(
      await captureWarnings(async () => {
        second = await readImageFolder(data, { split: "train", cacheDir });
      }),
      [],
    );
    assert.equal(second!.pixels[0], 77);
    assert.deepEqual(Array.from(second!.pixels.subarray(1)), TINY_EXPECTED_PIXELS.slice(1));
    assert.deepEqual(second!.files, first.files);
    assert.deepEqual(second!.classes, first.classes);

    // A flipped pixel byte without a matching checksum is detected and rebuilt.
    const flipped = await Deno.readFile(cacheFile);
    const pixelsAt = parseSafetensors(flipped).tensors.get("pixels")!.bytes.byteOffset;
    flipped[pixelsAt + 5] ^= 0xff;
    await Deno.writeFile(cacheFile, flipped);
    let third: ImageDataset | undefined;
    const warnings = await captureWarnings(async () => {
      third = await readImageFolder(data, { split: "train", cacheDir });
    });
    assert.equal(warnings.length, 1, `${warnings}`);
    assert.match(warnings[0], /corrupt.*checksum/);
    assert.ok(warnings[0].includes(cacheFile));
    assert.deepEqual(Array.from(third!.pixels), TINY_EXPECTED_PIXELS);

    // A truncated cache file is detected and rebuilt, and the rebuilt one is valid.
    const full = await Deno.readFile(cacheFile);
    await Deno.writeFile(cacheFile, full.subarray(0, full.length - 7));
    let fourth: ImageDataset | undefined;
    const truncatedWarnings = await captureWarnings(async () => {
      fourth = await readImageFolder(data, { split: "train", cacheDir });
    });
    assert.equal(truncatedWarnings.length, 1, `${truncatedWarnings}`);
    assert.match(truncatedWarnings[0], /corrupt/);
    assert.deepEqual(Array.from(fourth!.pixels), TINY_EXPECTED_PIXELS);
    assert.deepEqual(await Deno.readFile(cacheFile), full);
    assert.deepEqual(
      [...Deno.readDirSync(cacheDir)].map((e) => e.name),
      entries,
      "no temporary files are left behind",
    );
  });
});

Deno.test("readImageFolder's cache misses when a source file changes", async () => {
  await withTempDir(async (dir) => {
    const data = join(dir, "data");
    const cacheDir = join(dir, "cache");
    await writeTinyFolder(data);
    await readImageFolder(data, { split: "train", cacheDir });
    const changed = join(data, "train/alpha/img0.png");
    const rgb = RGB_A0.slice();
    rgb[0] = 11;
    await Deno.writeFile(changed, pngBytes(3, 2, opaque(rgb), 2));
    await Deno.utime(changed, 1_000_000, 1_000_000);
    const ds = await readImageFolder(data, { split: "train", cacheDir });
    assert.equal(ds.pixels[0], 11);
    assert.equal([...Deno.readDirSync(cacheDir)].length, 2);
  });
});

// ---------------------------------------------------------------------------------------------
// Helpers

function smallDataset(): ImageDataset {
  // Three 1×2 images.
  return {
    pixels: new Uint8Array([
      0,
      255,
      51,
      204,
      127,
      128,
      1,
      254,
      100,
      2,
      3,
      4,
      10,
      20,
      30,
      40,
      50,
      60,
    ]),
    labels: new Int32Array([2, 0, 1]),
    classes: ["x", "y", "z"],
    size: 3,
    height: 1,
    width: 2,
    files: ["f0", "f1", "f2"],
  };
}

Deno.test("imageBatches scales to [-1, 1] exactly and leaks no tensors", () => {
  const ds = smallDataset();
  const before = tf.memory().numTensors;
  const shapes: number[][] = [];
  const values: number[] = [];
  for (const x of imageBatches(ds, 2)) {
    assert.equal(x.dtype, "float32");
    shapes.push(x.shape);
    values.push(...x.dataSync());
    x.dispose();
  }
  assert.equal(tf.memory().numTensors, before);
  assert.deepEqual(shapes, [[2, 1, 2, 3], [1, 1, 2, 3]]);
  assert.deepEqual(values, Array.from(ds.pixels, (v) => Math.fround(v / 127.5 - 1)));
  assert.equal(values[0], -1);
  assert.equal(values[1], 1);
  assert.equal(values[2], Math.fround(-0.6));
  assert.equal(values[3], Math.fround(0.6));
  assert.equal(values[4], Math.fround(-1 / 255));
  assert.equal(values[5], Math.fround(1 / 255));
  assert.ok(values.every((v) => v >= -1 && v <= 1));

  const ranged = [...imageBatches(ds, 5, { start: 1, end: 3 })];
  assert.equal(ranged.length, 1);
  assert.deepEqual(ranged[0].shape, [2, 1, 2, 3]);
  assert.deepEqual(
    Array.from(ranged[0].dataSync()),
    Array.from(ds.pixels.subarray(6), (v) => Math.fround(v / 127.5 - 1)),
  );
  tf.dispose(ranged);
  assert.deepEqual([...imageBatches(ds, 4, { start: 2, end: 2 })], []);
  assert.equal(tf.memory().numTensors, before);

  // autoDispose: each batch lives until the next is requested, and an early break frees the last.
  const live: tf.Tensor[] = [];
  for (const x of imageBatches(ds, 1, { autoDispose: true })) {
    assert.ok(live.every((b) => b.isDisposed), "the previous batch is gone");
    live.push(x);
    if (live.length === 2) break;
  }
  assert.ok(live.every((b) => b.isDisposed));
  assert.equal(tf.memory().numTensors, before);

  assert.throws(() => imageBatches(ds, 0).next(), RangeError);
  assert.throws(() => imageBatches(ds, 2, { end: 4 }).next(), RangeError);
  assert.throws(() => imageBatches(ds, 2, { start: 2, end: 1 }).next(), RangeError);
});

Deno.test("datasetChecksum is stable and sensitive to pixels and labels", async () => {
  const ds = smallDataset();
  const hex = await datasetChecksum(ds);
  assert.match(hex, /^[0-9a-f]{64}$/);
  assert.equal(await datasetChecksum(smallDataset()), hex);
  assert.equal(await datasetChecksum({ ...ds, classes: ["p", "q", "r"], files: undefined }), hex);
  assert.equal(await datasetChecksum(subset(ds, [0, 1, 2])), hex);
  const pixels = ds.pixels.slice();
  pixels[17] ^= 1;
  assert.notEqual(await datasetChecksum({ ...ds, pixels }), hex);
  assert.notEqual(await datasetChecksum({ ...ds, labels: new Int32Array([2, 0, 2]) }), hex);
  // Same bytes, different shape.
  assert.notEqual(await datasetChecksum({ ...ds, height: 2, width: 1 }), hex);
});

Deno.test("subset copies the chosen images, labels and files", () => {
  const ds = smallDataset();
  const s = subset(ds, [2, 0, 2]);
  assert.equal(s.size, 3);
  assert.deepEqual(Array.from(s.pixels), [
    ...ds.pixels.subarray(12, 18),
    ...ds.pixels.subarray(0, 6),
    ...ds.pixels.subarray(12, 18),
  ]);
  assert.deepEqual(Array.from(s.labels), [1, 2, 1]);
  assert.deepEqual(s.files, ["f2", "f0", "f2"]);
  assert.deepEqual(s.classes, ds.classes);
  s.pixels[0] = 99;
  assert.equal(ds.pixels[12], 10, "the subset is a copy");
  assert.equal(subset(ds, []).size, 0);
  assert.throws(() => subset(ds, [3]), RangeError);
  assert.throws(() => subset(ds, [0.5]), RangeError);
});

// ---------------------------------------------------------------------------------------------
// Real data from ../shared (absent in fresh clones)

const SHARED_CIFAR = fileURLToPath(new URL("../../shared/data/cifar10-jpeg/", import.meta.url));
const hasSharedCifar = !skipNote("data/cifar10-jpeg/test");

Deno.test({
  name: "readImageFolder decodes the 10,000 CIFAR-10 test JPEGs from ../shared",
  ignore: !hasSharedCifar,
  fn: async () => {
    const ds = await readImageFolder(SHARED_CIFAR, { split: "test" });
    assert.equal(ds.size, 10_000);
    assert.equal(ds.height, 32);
    assert.equal(ds.width, 32);
    assert.deepEqual(ds.classes, [
      "airplane",
      "automobile",
      "bird",
      "cat",
      "deer",
      "dog",
      "frog",
      "horse",
      "ship",
      "truck",
    ]);
    assert.deepEqual(ds.classes, [...CIFAR10_CLASSES]);
    const counts = new Array(10).fill(0);
    for (const label of ds.labels) counts[label]++;
    assert.deepEqual(counts, new Array(10).fill(1000));
    // Sorted by class, then by file name.
    assert.equal(ds.files![0], join(SHARED_CIFAR, "test/airplane/0000.jpg"));
    assert.equal(ds.files![9_999], join(SHARED_CIFAR, "test/truck/0999.jpg"));
    for (let i = 1; i < ds.size; i++) {
      if (ds.labels[i] < ds.labels[i - 1]) assert.fail(`labels decrease at ${i}`);
    }
    // Real photographs: not blank, using most of the range.
    let sum = 0;
    let max = 0;
    for (const v of ds.pixels) {
      sum += v;
      if (v > max) max = v;
    }
    const mean = sum / ds.pixels.length;
    assert.ok(mean > 90 && mean < 160, `mean ${mean}`);
    assert.equal(max, 255);
  },
});

// ---------------------------------------------------------------------------------------------
// balancedSubset and readCifar10

/** A dataset of 1×1 images whose pixel bytes all equal the image index (mod 256). */
function indexedDataset(labels: number[], classes: string[]): ImageDataset {
  const size = labels.length;
  return {
    pixels: Uint8Array.from({ length: size * 3 }, (_, i) => Math.floor(i / 3) & 255),
    labels: Int32Array.from(labels),
    classes,
    size,
    height: 1,
    width: 1,
  };
}

Deno.test("balancedSubset draws each class's quota, in dataset order, reproducibly per seed", () => {
  // Class 0 has 50 images, class 1 has 30, class 2 has 4 (interleaved).
  const labels = [...Array(50).fill(0), ...Array(30).fill(1), ...Array(4).fill(2)]
    .map((l, i) => ({ l, k: (i * 37) % 84 })).sort((a, b) => a.k - b.k).map((x) => x.l);
  const ds = indexedDataset(labels, ["a", "b", "c"]);
  const picked = balancedSubset(ds, 20, 7);
  // Quotas 7, 7, 6 — but class c has only 4 images, so it gives all 4: 18 in all.
  const counts = [0, 0, 0];
  for (const l of picked.labels) counts[l]++;
  assert.deepEqual(counts, [7, 7, 4]);
  const indices = Array.from(picked.pixels.filter((_, i) => i % 3 === 0));
  assert.deepEqual(indices, [...indices].sort((a, b) => a - b), "dataset order");
  assert.equal(new Set(indices).size, indices.length, "no image twice");
  indices.forEach((index, k) => assert.equal(picked.labels[k], labels[index], "labels follow"));
  assert.deepEqual(balancedSubset(ds, 20, 7).pixels, picked.pixels, "same seed, same subset");
  assert.notDeepEqual(balancedSubset(ds, 20, 8).pixels, picked.pixels, "another seed differs");
  assert.equal(balancedSubset(ds, 84, 7), ds);
  assert.throws(() => balancedSubset(ds, 0, 1), {
    name: "RangeError",
    message: "Subset size must be a positive integer, got 0",
  });
  assert.throws(() => balancedSubset(indexedDataset([0, 5], ["a"]), 1, 1), /got 5/);
});

Deno.test("readCifar10 reads the binary release and the image-folder layout alike", async () => {
  await withTempDir(async (dir) => {
    await writeFiles(join(dir, "bin/cifar-10-batches-bin"), {
      "test_batch.bin": cifarRecords([3, 9]),
    });
    const progress: [number, number][] = [];
    const bin = await readCifar10(join(dir, "bin"), "test", {
      onProgress: (done, total) => progress.push([done, total]),
    });
    assert.equal(bin.size, 2);
    assert.deepEqual(Array.from(bin.labels), [3, 9]);
    assert.deepEqual(progress, [[2, 2]]);

    const images: Record<string, Uint8Array> = {};
    for (const name of CIFAR10_CLASSES) {
      images[`img/test/${name}/0.png`] = pngBytes(1, 1, [1, 2, 3, 255], 6);
    }
    await writeFiles(dir, images);
    const folder = await readCifar10(join(dir, "img"), "test", { workers: 0 });
    assert.equal(folder.size, 10);
    assert.deepEqual(Array.from(folder.labels), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    assert.deepEqual(folder.classes, [...CIFAR10_CLASSES]);

    await assert.rejects(readCifar10(join(dir, "img"), "train"), (e: Error) => {
      assert.ok(e instanceof Deno.errors.NotFound);
      assert.match(e.message, /data_batch_1\.bin/);
      assert.match(e.message, /img\/train/);
      return true;
    });
    await assert.rejects(readCifar10(dir, "val" as "test"), {
      name: "TypeError",
      message: 'CIFAR-10 split must be one of "train", "test", got "val"',
    });
  });
});
