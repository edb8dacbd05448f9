/**
 * The opt-in CUDA provider install, without network: a tarball laid out like the npm package
 * (`package/Plugins/Linux/x64/…`) is built here with its own ustar writer and gzip, its digests
 * computed with WebCrypto (independently of the installer's node:crypto streaming), and installed
 * into a temporary folder. Also checks that the default target is the folder onnxruntime-node's
 * binding loads `libonnxruntime.so.1` — and so the providers — from.
 */
import assert from "node:assert/strict";
import {
  CUDA_PROVIDER_PACKAGE,
  installCudaProvider,
  onnxRuntimeFolder,
  PROVIDER_MANIFEST,
  type ProviderPins,
} from "../src/engine/cuda_provider.ts";

const DIR = "package/Plugins/Linux/x64";

/** One ustar member (header + body padded to 512). */
function tarMember(name: string, body: Uint8Array): Uint8Array<ArrayBuffer>[] {
  const header = new Uint8Array(512);
  const put = (at: number, text: string) => header.set(new TextEncoder().encode(text), at);
  put(0, name);
  put(100, "0000755\0");
  put(108, "0000000\0");
  put(116, "0000000\0");
  put(124, body.length.toString(8).padStart(11, "0") + "\0");
  put(136, "00000000000\0");
  put(156, "0");
  put(257, "ustar\u000000");
  put(148, "        ");
  const sum = header.reduce((a, b) => a + b, 0);
  put(148, sum.toString(8).padStart(6, "0") + "\0 ");
  const padded = new Uint8Array(Math.ceil(body.length / 512) * 512);
  padded.set(body);
  return [header, padded];
}

async function gzipTar(members: Record<string, Uint8Array>): Promise<Uint8Array<ArrayBuffer>> {
  const parts = Object.entries(members).flatMap(([n, b]) => tarMember(n, b));
  const stream = new Blob([...parts, new Uint8Array(1024)]).stream()
    .pipeThrough(new CompressionStream("gzip"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

const hex = (b: ArrayBuffer) =>
  [...new Uint8Array(b)].map((x) => x.toString(16).padStart(2, "0")).join("");
const sha256 = async (b: Uint8Array) => hex(await crypto.subtle.digest("SHA-256", b.slice()));
const integrity = async (b: Uint8Array) =>
  "sha512-" +
  btoa(String.fromCharCode(...new Uint8Array(await crypto.subtle.digest("SHA-512", b.slice()))));

function randomBytes(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  let s = seed;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1103515245) + 12345) | 0;
    out[i] = s >>> 24;
  }
  return out;
}

/** A fake provider package: a 3 MB "cuda" library (many chunks), a small "shared" one. */
async function fakePackage(dir: string, tamper = false) {
  const cuda = randomBytes(3 * 1024 * 1024 + 123, 1);
  const shared = randomBytes(14632, 2);
  const pins: ProviderPins = {
    ...CUDA_PROVIDER_PACKAGE,
    integrity: "",
    files: {
      "libonnxruntime_providers_cuda.so": {
        path: `${DIR}/libonnxruntime_providers_cuda.so`,
        sha256: await sha256(cuda),
        bytes: cuda.length,
      },
      "libonnxruntime_providers_shared.so": {
        path: `${DIR}/libonnxruntime_providers_shared.so`,
        sha256: await sha256(shared),
        bytes: shared.length,
      },
    },
  };
  const shipped = tamper ? cuda.slice() : cuda;
  if (tamper) shipped[2_000_000] ^= 1;
  const tgz = await gzipTar({
    "package/package.json": new TextEncoder().encode('{"name":"fake"}'),
    [`${DIR}/libonnxruntime_providers_tensorrt.so`]: randomBytes(1000, 3),
    [`${DIR}/libonnxruntime_providers_cuda.so`]: shipped,
    [`${DIR}/libonnxruntime_providers_shared.so`]: shared,
  });
  await Deno.writeFile(`${dir}/pkg.tgz`, tgz);
  return { pins: { ...pins, integrity: await integrity(tgz) }, cuda, shared, tgz };
}

const listing = (dir: string) => [...Deno.readDirSync(dir)].map((e) => e.name).sort();

Deno.test("cuda setup: finds the files in the tarball, verifies them, places them, records the install", async () => {
  const work = await Deno.makeTempDir();
  const target = await Deno.makeTempDir();
  try {
    const { pins, cuda, shared } = await fakePackage(work);
    const seen: number[] = [];
    const result = await installCudaProvider({
      folder: target,
      source: `${work}/pkg.tgz`,
      pins,
      onnxruntimeVersion: "1.29.0",
      onProgress: (bytes) => seen.push(bytes),
    });
    assert.equal(result.alreadyInstalled, false);
    assert.deepEqual(result.files.map((f) => f.name).sort(), Object.keys(pins.files).sort());
    assert.deepEqual(await Deno.readFile(`${target}/libonnxruntime_providers_cuda.so`), cuda);
    assert.deepEqual(await Deno.readFile(`${target}/libonnxruntime_providers_shared.so`), shared);
    // Only the two provider files and the record: no temporary files, not the TensorRT one.
    assert.deepEqual(listing(target), [
      PROVIDER_MANIFEST,
      "libonnxruntime_providers_cuda.so",
      "libonnxruntime_providers_shared.so",
    ]);
    const manifest = JSON.parse(await Deno.readTextFile(`${target}/${PROVIDER_MANIFEST}`));
    assert.equal(manifest.onnxruntime, "1.29.0");
    assert.equal(manifest.files["libonnxruntime_providers_cuda.so"], await sha256(cuda));
    assert.ok(seen.length > 0 && seen.at(-1) === (await Deno.stat(`${work}/pkg.tgz`)).size);
    assert.equal(
      (await Deno.stat(`${target}/libonnxruntime_providers_cuda.so`)).mode! & 0o111,
      0o111,
    );

    // The download path (fetch, streamed, hashed on the way), without network: a data: URL.
    const second = await Deno.makeTempDir();
    try {
      const tgz = await Deno.readFile(`${work}/pkg.tgz`);
      let base64 = "";
      for (let i = 0; i < tgz.length; i += 0x8000) {
        base64 += String.fromCharCode(...tgz.subarray(i, i + 0x8000));
      }
      const fetched = await installCudaProvider({
        folder: second,
        source: `data:application/gzip;base64,${btoa(base64)}`,
        pins,
        onnxruntimeVersion: "1.29.0",
      });
      assert.equal(fetched.alreadyInstalled, false);
      assert.deepEqual(await Deno.readFile(`${second}/libonnxruntime_providers_cuda.so`), cuda);
    } finally {
      await Deno.remove(second, { recursive: true });
    }

    // Installed files that match are kept: the source is not even opened.
    const again = await installCudaProvider({
      folder: target,
      source: `${work}/does-not-exist.tgz`,
      pins,
      onnxruntimeVersion: "1.29.0",
    });
    assert.equal(again.alreadyInstalled, true);
  } finally {
    await Deno.remove(work, { recursive: true });
    await Deno.remove(target, { recursive: true });
  }
});

Deno.test("cuda setup: refuses a tampered file and a tampered tarball, placing nothing", async () => {
  const work = await Deno.makeTempDir();
  const target = await Deno.makeTempDir();
  try {
    // One flipped bit in the 3 MB library: its SHA-256 no longer matches the pin.
    const { pins, cuda } = await fakePackage(work, true);
    await assert.rejects(
      installCudaProvider({
        folder: target,
        source: `${work}/pkg.tgz`,
        pins,
        onnxruntimeVersion: "1.29.0",
      }),
      (e: Error) => {
        assert.match(e.message, /^Refusing libonnxruntime_providers_cuda\.so/);
        assert.ok(
          e.message.includes(`expected ${pins.files["libonnxruntime_providers_cuda.so"].sha256}`),
        );
        assert.ok(e.message.includes(`${cuda.length} bytes`));
        return true;
      },
    );
    assert.deepEqual(listing(target), []);

    // The files are right but the tarball is not the pinned one.
    const honest = await fakePackage(work);
    await assert.rejects(
      installCudaProvider({
        folder: target,
        source: `${work}/pkg.tgz`,
        pins: { ...honest.pins, integrity: "sha512-AAAA" },
        onnxruntimeVersion: "1.29.0",
      }),
      /fails its integrity check: expected sha512-AAAA, got sha512-/,
    );
    assert.deepEqual(listing(target), []);

    // The real pins refuse this fake package: its files are not the pinned build.
    await assert.rejects(
      installCudaProvider({
        folder: target,
        source: `${work}/pkg.tgz`,
        onnxruntimeVersion: "1.29.0",
      }),
      new RegExp(
        `Refusing libonnxruntime_providers_(cuda|shared)\\.so.*expected (${
          Object.values(CUDA_PROVIDER_PACKAGE.files).map((f) => f.sha256).join("|")
        })`,
      ),
    );
    assert.deepEqual(listing(target), []);

    // A truncated tarball is an error too.
    await Deno.writeFile(`${work}/cut.tgz`, honest.tgz.subarray(0, honest.tgz.length >> 1));
    await assert.rejects(
      installCudaProvider({
        folder: target,
        source: `${work}/cut.tgz`,
        pins: honest.pins,
        onnxruntimeVersion: "1.29.0",
      }),
    );
    assert.deepEqual(listing(target), []);
  } finally {
    await Deno.remove(work, { recursive: true });
    await Deno.remove(target, { recursive: true });
  }
});

Deno.test("cuda setup: a provider built for another onnxruntime is refused before any download", async () => {
  const target = await Deno.makeTempDir();
  try {
    await assert.rejects(
      installCudaProvider({
        folder: target,
        source: "/nonexistent.tgz",
        onnxruntimeVersion: "1.22.0",
      }),
      /Version mismatch: the CUDA provider in com\.github\.asus4\.onnxruntime\.linux-x64-gpu@0\.4\.9 is built from onnxruntime 1\.29\.0, but onnxruntime-node here is 1\.22\.0/,
    );
    await assert.rejects(
      installCudaProvider({
        folder: `${target}/missing`,
        source: "/nonexistent.tgz",
        onnxruntimeVersion: "1.29.0",
      }),
      /does not exist/,
    );
  } finally {
    await Deno.remove(target, { recursive: true });
  }
});

Deno.test("cuda setup: the default target is where onnxruntime-node's binding loads libonnxruntime.so.1 (and providers) from", async () => {
  // Only the last step loads onnxruntime (one isolate per process may: run with --allow-ffi alone).
  const loadOrt = Deno.permissions.querySync({ name: "ffi" }).state === "granted";
  const { folder, version } = await onnxRuntimeFolder();
  assert.equal(version, CUDA_PROVIDER_PACKAGE.onnxruntime);
  // The folder holds the binding and the library it links with RUNPATH $ORIGIN; onnxruntime
  // loads providers from the directory of that library.
  const names = listing(folder);
  assert.ok(
    names.includes("onnxruntime_binding.node") && names.includes("libonnxruntime.so.1"),
    String(names),
  );
  // The package's JavaScript requires its binding from exactly this folder.
  const root = folder.replace(/\/bin\/napi-v6\/linux\/x64$/, "");
  assert.notEqual(root, folder);
  const bindingJs = await Deno.readTextFile(`${root}/dist/binding.js`);
  assert.ok(
    bindingJs.includes(
      "../bin/napi-v6/${process.platform}/${process.arch}/onnxruntime_binding.node",
    ),
  );
  // And it is the package Deno loads for the "onnxruntime-node" import.
  if (loadOrt) {
    const ort = await import("onnxruntime-node");
    assert.equal(ort.env.versions.node, version);
  }
});
