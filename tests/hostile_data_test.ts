/**
 * Hostile and malformed inputs to the data readers (NDBC, CSV, CIFAR-10 binaries, image folders):
 * special files and symbolic links where a data file should be, oversized and "bomb" files,
 * corrupt compression, realtime NDBC files, two-digit years, duplicate columns, values beyond
 * float32. Each case checks the error class and that the message names the file, field or value;
 * none may read a special file, hang, or decode a bomb.
 *
 * Cases that make FIFOs need `--allow-run=mkfifo`; cases that make symbolic links need unscoped
 * `--allow-write` or `--allow-run=ln` (Deno refuses symlinks under path-scoped write grants).
 * Without those permissions they are skipped; the device cases that need no link read
 * `/dev/zero` directly.
 *
 * @module
 */

import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { join } from "node:path";
import { deflateSync } from "node:zlib";
import { PNG } from "pngjs";
import { parseNdbcStdmet, readNdbcStdmet } from "../src/data/ndbc.ts";
import { parseCsvSeries, readCsvSeries } from "../src/data/csv_series.ts";
import { readCifar10Binary } from "../src/data/cifar10_binary.ts";
import { readImageFolder } from "../src/data/image_folder.ts";

// ---------------------------------------------------------------------------------------------
// Helpers

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "diffprobe_hostile_" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Asserts that `promise` rejects, within `ms`, with an instance of `Class` whose message matches every pattern. */
async function rejectsWith(
  promise: Promise<unknown>,
  Class: new (...args: never[]) => Error,
  patterns: (string | RegExp)[],
  ms = 10_000,
): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms (a hang)`)), ms);
  });
  try {
    await Promise.race([promise, timeout]).then(
      () => assert.fail("expected a rejection"),
      (error: Error) => {
        assert.ok(error instanceof Class, `expected ${Class.name}, got ${error.name}: ${error}`);
        for (const p of patterns) {
          if (typeof p === "string") assert.ok(error.message.includes(p), error.message);
          else assert.match(error.message, p);
        }
      },
    );
  } finally {
    clearTimeout(timer);
  }
}

const granted = (descriptor: Deno.PermissionDescriptor): boolean =>
  Deno.permissions.querySync(descriptor).state === "granted";
const canMkfifo = granted({ name: "run", command: "mkfifo" });
/** Deno.symlink needs unscoped write permission; `ln -s` is the fallback. */
const canSymlink = granted({ name: "write" }) || granted({ name: "run", command: "ln" });

async function symlink(target: string, path: string): Promise<void> {
  if (granted({ name: "write" })) return await Deno.symlink(target, path);
  const { success } = await new Deno.Command("ln", { args: ["-s", target, path] }).output();
  assert.ok(success, `ln -s ${target} ${path}`);
}

async function mkfifo(path: string): Promise<void> {
  const { success } = await new Deno.Command("mkfifo", { args: [path] }).output();
  assert.ok(success, `mkfifo ${path}`);
}

const NDBC_HEADER =
  "#YY  MM DD hh mm WDIR WSPD GST  WVHT   DPD   APD MWD   PRES  ATMP  WTMP  DEWP  VIS  TIDE\n" +
  "#yr  mo dy hr mn degT m/s  m/s     m   sec   sec degT   hPa  degC  degC  degC  nmi    ft\n";
const NDBC_ROW =
  "2017 01 01 00 50 230 14.5 18.1  7.39 13.79  9.74 125  985.7   2.7   3.9 999.0 99.0 99.00\n";

async function gzip(text: string): Promise<Uint8Array> {
  const stream = new Blob([text]).stream().pipeThrough(new CompressionStream("gzip"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/** A PNG chunk: length, type, data, CRC-32. */
function chunk(type: string, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + data.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, data.length);
  out.set(new TextEncoder().encode(type), 4);
  out.set(data, 8);
  view.setUint32(8 + data.length, crc32(out.subarray(4, 8 + data.length)));
  return out;
}

function crc32(bytes: Uint8Array): number {
  let c = ~0;
  for (const b of bytes) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = (c >>> 1) ^ (0xedb88320 & -(c & 1));
  }
  return ~c >>> 0;
}

/** A grayscale 8-bit PNG that declares `width × height` and holds `idat` as its image data. */
function pngWith(width: number, height: number, idat: Uint8Array, interlaced = false): Uint8Array {
  const ihdr = new Uint8Array(13);
  const view = new DataView(ihdr.buffer);
  view.setUint32(0, width);
  view.setUint32(4, height);
  ihdr.set([8, 0, 0, 0, interlaced ? 1 : 0], 8);
  const parts = [
    new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", ihdr),
    chunk("IDAT", idat),
    chunk("IEND", new Uint8Array(0)),
  ];
  return new Uint8Array(Buffer.concat(parts));
}

function smallPng(): Uint8Array {
  const png = new PNG({ width: 2, height: 2 });
  png.data = Buffer.alloc(16, 200);
  return new Uint8Array(PNG.sync.write(png));
}

/** A one-class image folder `<dir>/train/a/` holding `0.png` and whatever `extra` adds. */
async function imageFolder(dir: string): Promise<string> {
  const classDir = join(dir, "train", "a");
  await Deno.mkdir(classDir, { recursive: true });
  await Deno.writeFile(join(classDir, "0.png"), smallPng());
  return classDir;
}

// ---------------------------------------------------------------------------------------------
// Text series files (NDBC, CSV): special files, links, sizes, compression

Deno.test({
  name: "hostile NDBC: a path linked to /dev/zero is refused before reading",
  ignore: !canSymlink,
  fn: async () => {
    await withTempDir(async (dir) => {
      const link = join(dir, "46035h2017.txt");
      await symlink("/dev/zero", link);
      await rejectsWith(readNdbcStdmet([link]), TypeError, [link, "character device"]);
      // Also when found by listing the folder.
      await rejectsWith(readNdbcStdmet(dir), TypeError, [link, "must be a regular file"]);
    });
  },
});

Deno.test({
  name: "hostile CSV: a path linked to /dev/zero is refused before reading",
  ignore: !canSymlink,
  fn: async () => {
    await withTempDir(async (dir) => {
      const link = join(dir, "buoy.csv.gz");
      await symlink("/dev/zero", link);
      await rejectsWith(readCsvSeries(link), TypeError, [link, "character device"]);
    });
  },
});

Deno.test({
  name: "hostile NDBC and CSV: a FIFO is refused at once, not read (no hang)",
  ignore: !canMkfifo,
  fn: async () => {
    await withTempDir(async (dir) => {
      const fifo = join(dir, "46035h2017.txt");
      await mkfifo(fifo);
      await rejectsWith(readNdbcStdmet([fifo]), TypeError, [fifo, "FIFO"], 5_000);
      await rejectsWith(readCsvSeries([fifo]), TypeError, [fifo, "FIFO"], 5_000);
    });
  },
});

Deno.test({
  name: "hostile NDBC and CSV: a symbolic link loop names the file",
  ignore: !canSymlink,
  fn: async () => {
    await withTempDir(async (dir) => {
      const a = join(dir, "a.txt");
      const b = join(dir, "b.txt");
      await symlink(b, a);
      await symlink(a, b);
      await rejectsWith(readNdbcStdmet([a]), Deno.errors.FilesystemLoop, [a, "symbolic link loop"]);
      await rejectsWith(readCsvSeries(a), Deno.errors.FilesystemLoop, [a, "symbolic link loop"]);
    });
  },
});

Deno.test("hostile NDBC and CSV: a file over 256 MiB is refused by its size, unread", async () => {
  await withTempDir(async (dir) => {
    const big = join(dir, "big.csv");
    using file = await Deno.create(big);
    await file.truncate(300 * 1024 * 1024); // sparse: nothing written
    await rejectsWith(readCsvSeries(big), RangeError, [
      big,
      "at most 268435456 bytes",
      "314572800",
    ]);
  });
});

Deno.test("hostile NDBC and CSV: corrupt and truncated .gz files name the file", async () => {
  await withTempDir(async (dir) => {
    const corrupt = join(dir, "46035h2017.txt.gz");
    const garbage = new Uint8Array(200).map((_, i) => (i * 37 + 11) & 255);
    garbage.set([0x1f, 0x8b, 8, 0], 0); // a gzip signature over garbage
    await Deno.writeFile(corrupt, garbage);
    await rejectsWith(readNdbcStdmet([corrupt]), TypeError, [corrupt, "not valid gzip"]);

    const truncated = join(dir, "buoy.csv.gz");
    const whole = await gzip("time,hs\n" + "2017-01-01,1.0\n".repeat(1000));
    await Deno.writeFile(truncated, whole.subarray(0, whole.length - 12));
    await rejectsWith(readCsvSeries(truncated), TypeError, [truncated, "corrupt or truncated"]);
  });
});

// ---------------------------------------------------------------------------------------------
// NDBC content

Deno.test("hostile NDBC: realtime files' MM markers are missing values per column", () => {
  // The layout of NDBC realtime2 files (<station>.txt): newest first, MM where a value is missing,
  // and a PTDY column.
  const text = [
    "#YY  MM DD hh mm WDIR WSPD GST  WVHT   DPD   APD MWD   PRES  ATMP  WTMP  DEWP  VIS PTDY  TIDE",
    "#yr  mo dy hr mn degT m/s  m/s     m   sec   sec degT   hPa  degC  degC  degC  nmi  hPa    ft",
    "2024 05 01 02 50 290  7.0  9.0   1.9     9   6.2 300 1016.1  10.1  11.0   7.2   MM +0.4    MM",
    "2024 05 01 01 50  MM   MM   MM    MM    MM    MM  MM 1015.7  10.0  11.0   7.1   MM   MM    MM",
    "2024 05 01 00 50 280  6.0  8.0   2.1    10   6.5 290 1015.5   9.9  10.9   7.0   MM   MM    MM",
  ].join("\n");
  const r = parseNdbcStdmet(text, "46035.txt", { columns: ["WVHT", "DPD", "PTDY"] });
  assert.deepEqual(r.issues, []);
  assert.equal(r.rows, 3);
  assert.deepEqual(Array.from(r.series.times), [0, 1, 2].map((h) => Date.UTC(2024, 4, 1, h, 50)));
  const f = Math.fround;
  assert.deepEqual(Array.from(r.series.columns.WVHT), [f(2.1), NaN, f(1.9)]);
  assert.deepEqual(Array.from(r.series.columns.DPD), [10, NaN, 9]);
  assert.deepEqual(Array.from(r.series.columns.PTDY), [NaN, NaN, f(0.4)]);
});

Deno.test("hostile NDBC: two-digit years before 1970 are refused, naming line and year", () => {
  const text = "YY MM DD hh WD   WSPD GST  WVHT  DPD   APD  MWD  BAR    ATMP  WTMP  DEWP  VIS\n" +
    "05 01 01 00 169 09.9 12.1 03.40 11.10 07.80 999 0983.2  09.3 999.0 999.0 99.0\n" +
    "85 01 01 00 169 09.9 12.1 03.40 11.10 07.80 999 0983.2  09.3 999.0 999.0 99.0\n";
  const r = parseNdbcStdmet(text, "46035h2005.txt");
  assert.equal(r.rows, 1);
  assert.equal(r.series.times[0], Date.UTC(1985, 0, 1));
  assert.equal(r.issues.length, 1);
  assert.equal(r.issues[0].line, 2);
  assert.match(r.issues[0].reason, /two-digit year "05".*four digits/);
  assert.throws(() => parseNdbcStdmet(text, "46035h2005.txt", { strict: true }), (e: Error) => {
    assert.ok(e instanceof RangeError);
    assert.match(e.message, /46035h2005\.txt:2: two-digit year "05"/);
    return true;
  });
  // A four-digit year of 0005 is not 1905 either.
  const four = NDBC_HEADER + NDBC_ROW.replace("2017", "0005");
  assert.match(parseNdbcStdmet(four, "x.txt").issues[0].reason, /year "0005" is before 1900/);
});

Deno.test("hostile NDBC: values beyond float32 are ReadIssues, never Infinity", () => {
  const huge = "9".repeat(400);
  const r = parseNdbcStdmet(NDBC_HEADER + NDBC_ROW.replace(" 7.39", ` ${huge}`), "x.txt");
  assert.equal(r.rows, 0);
  assert.equal(r.issues.length, 1);
  assert.match(
    r.issues[0].reason,
    /value "9{37}\.\.\." in column WVHT is beyond the float32 range/,
  );
});

Deno.test("hostile NDBC: odd header names are refused, naming the file and name", () => {
  const text = "#YY  MM DD hh mm __proto__ WSPD\n2017 01 01 00 50 1 2\n";
  assert.throws(() => parseNdbcStdmet(text, "x.txt"), {
    name: "RangeError",
    message: /x\.txt:1: column name "__proto__"/,
  });
});

// ---------------------------------------------------------------------------------------------
// CSV content

Deno.test("hostile CSV: a duplicated column is an error naming it, not silently dropped", () => {
  const text = "time,hs,tp,hs\n2017-01-01,1,2,3\n";
  assert.throws(() => parseCsvSeries(text, "buoy.csv"), {
    name: "RangeError",
    message: 'Cannot read buoy.csv: column "hs" appears twice in the header (fields 2 and 4)',
  });
  assert.throws(() => parseCsvSeries("time,hs\n", "b.csv", { columns: ["hs", "hs"] }), {
    name: "RangeError",
    message: 'Option columns must list each column once, got ["hs","hs"]',
  });
});

Deno.test("hostile CSV: 1e400 and 1e39 are ReadIssues naming column and value, not Infinity", () => {
  const text = "time,hs,tp\n2017-01-01,1e400,1\n2017-01-02,1,-1e39\n2017-01-03,3.4e38,2\n";
  const r = parseCsvSeries(text, "buoy.csv");
  assert.deepEqual(r.issues, [
    { file: "buoy.csv", line: 2, reason: 'value "1e400" in column hs is beyond the float32 range' },
    { file: "buoy.csv", line: 3, reason: 'value "-1e39" in column tp is beyond the float32 range' },
  ]);
  assert.equal(r.rows, 1);
  assert.ok(Number.isFinite(r.series.columns.hs[0]));
  assert.throws(() => parseCsvSeries(text, "buoy.csv", { strict: true }), {
    name: "RangeError",
    message: /buoy\.csv:2: value "1e400" in column hs/,
  });
});

Deno.test("hostile CSV: ISO years below 100 are not moved to 19YY", () => {
  const r = parseCsvSeries("time,hs\n0005-03-01T12:00Z,1\n", "old.csv");
  assert.deepEqual(r.issues, []);
  assert.equal(r.series.times[0], new Date("0005-03-01T12:00:00Z").getTime());
  assert.equal(new Date(r.series.times[0]).getUTCFullYear(), 5);
});

Deno.test("hostile CSV: an invalid delimiter is a TypeError naming the file and option", () => {
  assert.throws(() => parseCsvSeries("a,b\n", "x.csv", { delimiter: "" }), {
    name: "TypeError",
    message: /Cannot read x\.csv: invalid CSV option .*delimiter/,
  });
});

// ---------------------------------------------------------------------------------------------
// CIFAR-10 binaries

Deno.test({
  name: "hostile CIFAR-10: a batch file linked to /dev/zero is refused before reading",
  ignore: !canSymlink,
  fn: async () => {
    await withTempDir(async (dir) => {
      const link = join(dir, "test_batch.bin");
      await symlink("/dev/zero", link);
      await rejectsWith(readCifar10Binary(dir, "test"), TypeError, [link, "character device"]);
    });
  },
});

Deno.test("hostile CIFAR-10: an oversized batch file is refused by its size, unread", async () => {
  await withTempDir(async (dir) => {
    const file = join(dir, "test_batch.bin");
    using f = await Deno.create(file);
    await f.truncate(10_001 * 3073); // sparse, a whole number of records
    await rejectsWith(readCifar10Binary(dir, "test"), RangeError, [
      file,
      "at most 30730000 bytes",
      "30733073",
    ]);
  });
});

Deno.test({
  name: "hostile CIFAR-10: a class file linked to /dev/zero, a batch link loop",
  ignore: !canSymlink,
  fn: async () => {
    await withTempDir(async (dir) => {
      await Deno.writeFile(join(dir, "test_batch.bin"), new Uint8Array(3073));
      const meta = join(dir, "batches.meta.txt");
      await symlink("/dev/zero", meta);
      await rejectsWith(readCifar10Binary(dir, "test"), TypeError, [meta, "character device"]);

      const loop = join(dir, "data_batch_1.bin");
      await symlink(loop, loop);
      await rejectsWith(readCifar10Binary(dir, "train"), Deno.errors.FilesystemLoop, [loop]);
    });
  },
});

Deno.test({
  name: "hostile CIFAR-10: a FIFO batch file is refused at once (no hang)",
  ignore: !canMkfifo,
  fn: async () => {
    await withTempDir(async (dir) => {
      const fifo = join(dir, "test_batch.bin");
      await mkfifo(fifo);
      await rejectsWith(readCifar10Binary(dir, "test"), TypeError, [fifo, "FIFO"], 5_000);
    });
  },
});

// ---------------------------------------------------------------------------------------------
// Image folders

Deno.test({
  name: "hostile images: links out of the folder and to devices are refused, named",
  ignore: !canSymlink,
  fn: async () => {
    await withTempDir(async (dir) => {
      const root = join(dir, "data");
      const classDir = await imageFolder(root);
      // A link to another image inside the folder is fine.
      await symlink(join(classDir, "0.png"), join(classDir, "1.png"));
      assert.equal((await readImageFolder(root, { split: "train", workers: 0 })).size, 2);

      const zero = join(classDir, "2.png");
      await symlink("/dev/zero", zero);
      await rejectsWith(readImageFolder(root, { split: "train" }), TypeError, [
        zero,
        "must stay inside the image folder",
        '"/dev/zero"',
      ]);
      await Deno.remove(zero);

      const outside = join(dir, "secret.png");
      await Deno.writeFile(outside, smallPng());
      const link = join(classDir, "3.png");
      await symlink(outside, link);
      await rejectsWith(readImageFolder(root, { split: "train" }), TypeError, [link, outside]);
      await Deno.remove(link);

      // A class folder that is a link to a folder elsewhere.
      await imageFolder(join(dir, "elsewhere"));
      await symlink(join(dir, "elsewhere", "train", "a"), join(root, "train", "b"));
      await rejectsWith(readImageFolder(root, { split: "train" }), TypeError, [
        "Class folder",
        join(root, "train", "b"),
      ]);
    });
  },
});

Deno.test({
  name: "hostile images: a FIFO named like an image is refused (no hang)",
  ignore: !canMkfifo,
  fn: async () => {
    await withTempDir(async (dir) => {
      const classDir = await imageFolder(dir);
      const fifo = join(classDir, "1.png");
      await mkfifo(fifo);
      await rejectsWith(readImageFolder(dir, { split: "train" }), TypeError, [fifo, "FIFO"], 5_000);
    });
  },
});

Deno.test("hostile images: a PNG bomb is refused from its header, before decoding", async () => {
  await withTempDir(async (dir) => {
    const classDir = await imageFolder(dir);
    // 8192 × 8192 grayscale zeros: 67 MB of image data deflated into a file of about 65 KB.
    const side = 8192;
    const bomb = pngWith(side, side, deflateSync(new Uint8Array((side + 1) * side)));
    assert.ok(bomb.length < 200_000, `bomb is ${bomb.length} bytes`);
    const file = join(classDir, "1.png");
    await Deno.writeFile(file, bomb);
    await rejectsWith(readImageFolder(dir, { split: "train", workers: 0 }), RangeError, [
      file,
      "at most 33554432 pixels",
      "8192×8192",
    ]);
    // A header alone declaring 100000 × 100000 is refused the same way.
    await Deno.writeFile(file, pngWith(100_000, 100_000, new Uint8Array(0)));
    await rejectsWith(readImageFolder(dir, { split: "train", workers: 0 }), RangeError, [
      file,
      "100000×100000",
    ]);
  });
});

Deno.test("hostile images: an interlaced PNG whose data inflates far past its size is refused", async () => {
  await withTempDir(async (dir) => {
    const classDir = await imageFolder(dir);
    const file = join(classDir, "1.png");
    await Deno.writeFile(
      file,
      pngWith(16, 16, deflateSync(new Uint8Array(64 * 1024 * 1024)), true),
    );
    await rejectsWith(readImageFolder(dir, { split: "train", workers: 0 }), RangeError, [
      file,
      "16×16",
      "decompression bomb",
    ]);
  });
});

Deno.test("hostile images: a JPEG header declaring 60000 × 60000 is refused before decoding", async () => {
  await withTempDir(async (dir) => {
    const classDir = await imageFolder(dir);
    const jpeg = new Uint8Array([
      0xff,
      0xd8, // SOI
      0xff,
      0xe0,
      0x00,
      0x10,
      0x4a,
      0x46,
      0x49,
      0x46,
      0x00,
      1,
      1,
      0,
      0,
      1,
      0,
      1,
      0,
      0, // APP0
      0xff,
      0xc0,
      0x00,
      0x11,
      8,
      0xea,
      0x60,
      0xea,
      0x60,
      3,
      1,
      0x11,
      0,
      2,
      0x11,
      0,
      3,
      0x11,
      0,
      0xff,
      0xd9, // EOI
    ]);
    const file = join(classDir, "1.jpg");
    await Deno.writeFile(file, jpeg);
    await rejectsWith(readImageFolder(dir, { split: "train", workers: 0 }), RangeError, [
      file,
      "JPEG",
      "60000×60000",
    ]);
  });
});

Deno.test("hostile NDBC, CSV and images: a device path is refused before reading", async () => {
  await rejectsWith(readNdbcStdmet(["/dev/zero"]), TypeError, ['"/dev/zero"', "character device"]);
  await rejectsWith(readCsvSeries("/dev/zero"), TypeError, ['"/dev/zero"', "must be a regular"]);
  await rejectsWith(readCsvSeries(["/dev/null"]), TypeError, ['"/dev/null"', "character device"]);
});
