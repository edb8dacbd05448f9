/**
 * The download script's offline logic: checksums, HTTP range parsing for resumed downloads, and
 * tar reading that refuses entries escaping the target folder. The tar fixtures were made with
 * GNU tar 1.34 (`tar --format=ustar -cf tar-good.tar a` with `a/b.txt` = "hello", and
 * `tar --format=ustar --transform='s,^,../,' -cf tar-evil.tar evil.txt`).
 */
import assert from "node:assert/strict";
import { fileDigest, parseContentRange, readTar } from "../examples/cifar10/download.ts";
import { fixture } from "./_fixtures.ts";

Deno.test("fileDigest gives the standard MD5 and SHA-256 test vectors", async () => {
  const path = await Deno.makeTempFile();
  await Deno.writeTextFile(path, "abc");
  assert.equal(await fileDigest(path, "md5"), "900150983cd24fb0d6963f7d28e17f72");
  assert.equal(
    await fileDigest(path, "sha256"),
    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
  );
  await Deno.remove(path);
});

Deno.test("Content-Range headers of resumed downloads are parsed or rejected", () => {
  assert.deepEqual(parseContentRange("bytes 100-199/1000"), { start: 100, end: 199, total: 1000 });
  assert.deepEqual(parseContentRange("bytes 5-9/*"), { start: 5, end: 9, total: null });
  assert.equal(parseContentRange("bytes 9-5/10"), null);
  assert.equal(parseContentRange("items 1-2/3"), null);
  assert.equal(parseContentRange(null), null);
});

Deno.test("readTar reads GNU tar output and refuses entries that escape the folder", async () => {
  const good = readTar(await Deno.readFile(fixture("tar-good.tar")), "tar-good.tar");
  assert.deepEqual(good.map((e) => [e.name, e.type]), [["a/", "directory"], ["a/b.txt", "file"]]);
  assert.equal(new TextDecoder().decode(good[1].data), "hello");
  assert.throws(
    () => readTar(Deno.readFileSync(fixture("tar-evil.tar")), "tar-evil.tar"),
    /"\.\.\/evil\.txt" would be written outside the target folder/,
  );
  const truncated = (await Deno.readFile(fixture("tar-good.tar"))).slice(0, 1024 + 3);
  assert.throws(() => readTar(truncated, "t.tar"), /truncated/);
  const corrupt = (await Deno.readFile(fixture("tar-good.tar"))).slice();
  corrupt[3] ^= 1;
  assert.throws(() => readTar(corrupt, "c.tar"), /bad tar header checksum/);
});
