/**
 * The `device` option of the onnx engine: `"cuda"` where CUDA cannot run is an error naming each
 * missing piece (checked here against an independent `dlopen` of every library the pinned
 * provider needs), never a CPU run; `"auto"` runs on the CPU and says so once on stderr; the
 * extractor reports the device that ran. On a machine where CUDA is available the CPU-only
 * assertions are skipped and `"cuda"` must match the CPU.
 */
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import {
  createBackbone,
  createOnnxExtractor,
  cudaStatus,
  CudaUnavailableError,
  extractFeatures,
  type ExtractionDevice,
  LinearHead,
  onnxRuntimeAvailable,
  onnxRuntimeFolder,
  sweep,
  tapBlock,
  trainDiffusion,
  type UNet2DConfig,
} from "../mod.ts";
import { chooseDevice, createDeviceSession, fixTf32 } from "../src/engine/device.ts";
import { checkDevice } from "../src/base/device.ts";

const ortReady = await onnxRuntimeAvailable();
const status = ortReady ? await cudaStatus() : undefined;
const cpuOnly = ortReady && !status!.available;

const config: UNet2DConfig = {
  _class_name: "UNet2DModel",
  block_out_channels: [32, 32],
  down_block_types: ["DownBlock2D", "DownBlock2D"],
  up_block_types: ["UpBlock2D", "UpBlock2D"],
  norm_num_groups: 8,
  sample_size: 8,
};

/** Whether this process can load `name` — the same search the CUDA provider's loader does. */
function loads(name: string): boolean {
  try {
    Deno.dlopen(name, {}).close();
    return true;
  } catch {
    return false;
  }
}

// First in the file: "auto" says once on stderr why it runs on the CPU.
Deno.test({
  name: 'device "auto" runs on the CPU here, gives the CPU\'s numbers and says why once on stderr',
  ignore: !cpuOnly,
  fn: async () => {
    const unet = createBackbone(config, { seed: 3 });
    const lines: string[] = [];
    const original = console.error;
    console.error = (...a: unknown[]) => lines.push(a.join(" "));
    let auto, again;
    try {
      auto = await createOnnxExtractor(unet, [2], { device: "auto", threads: 1 });
      again = await createOnnxExtractor(unet, ["down_blocks.1.0"], { threads: 1 }); // default: auto
    } finally {
      console.error = original;
    }
    const cpu = await createOnnxExtractor(unet, [2], { device: "cpu", threads: 1 });
    try {
      assert.equal(lines.length, 1, lines.join("\n"));
      assert.match(lines[0], /^diffprobe: device "auto" → CPU \(CUDA not available: /);
      assert.ok(lines[0].includes(status!.problems[0].split(" (")[0]), lines[0]);
      assert.match(lines[0], /device "cuda" says exactly what is missing\)$/);
      assert.equal(auto.device, "cpu");
      assert.equal(auto.executionProvider, "cpu");
      assert.equal(again.device, "cpu");
      assert.equal(auto.tf32, false);
      assert.match(auto.deviceReason, /^CUDA not available: /);
      assert.equal(cpu.device, "cpu");
      assert.equal(cpu.deviceReason, "asked for");
      const x = new Float32Array(2 * 8 * 8 * 3).map((_, i) => Math.sin(i));
      const [a, b] = [await auto.run(x, [2, 8, 8, 3], 10), await cpu.run(x, [2, 8, 8, 3], 10)];
      assert.deepEqual(
        await a.get("down_blocks.0.0")!.data(),
        await b.get("down_blocks.0.0")!.data(),
      );
      tf.dispose([...a.values(), ...b.values()]);
    } finally {
      auto.dispose();
      again.dispose();
      cpu.dispose();
      unet.dispose();
    }
  },
});

Deno.test({
  name: 'device "cuda" here is an error naming each missing CUDA piece, not a CPU run',
  ignore: !cpuOnly,
  fn: async () => {
    const unet = createBackbone(config, { seed: 3 });
    try {
      const error = await createOnnxExtractor(unet, [2], { device: "cuda", threads: 1 }).then(
        () => assert.fail("device cuda gave an extractor on a machine without CUDA"),
        (e) => e,
      );
      assert.ok(error instanceof CudaUnavailableError, String(error));
      const message = error.message;
      assert.match(message, /^CUDA not available: /);
      // Every library the provider needs that this process cannot load is named, with the
      // search path that was tried.
      const libs = [
        "libcudart.so.13",
        "libcublasLt.so.13",
        "libcublas.so.13",
        "libcurand.so.10",
        "libcudnn.so.9",
      ];
      const missing = libs.filter((l) => !loads(l));
      for (const lib of missing) {
        assert.ok(message.includes(lib), `${lib} not named in: ${message}`);
      }
      for (const lib of libs.filter((l) => !missing.includes(l))) {
        assert.ok(!message.includes(`${lib},`) && !message.includes(`${lib} (`), message);
      }
      if (missing.length > 0) {
        assert.match(message, /CUDA libraries not found: .*\(searched LD_LIBRARY_PATH=/);
        assert.ok(message.includes("/etc/ld.so.cache"));
      }
      if (!loads("libcuda.so.1")) {
        assert.match(
          message,
          /no NVIDIA GPU or driver \(.*libcuda\.so\.1: cannot open shared object file/,
        );
      }
      const { folder } = await onnxRuntimeFolder();
      const installed = await Deno.stat(`${folder}/libonnxruntime_providers_cuda.so`).then(
        () => true,
        () => false,
      );
      assert.equal(
        message.includes(`CUDA provider files not installed in ${folder}`),
        !installed,
        message,
      );
      if (!installed) assert.ok(message.includes("deno task cuda:setup"));
    } finally {
      unet.dispose();
    }
  },
});

Deno.test({
  name: "fp32 on CUDA needs NVIDIA_TF32_OVERRIDE: without --allow-env it is a clear error",
  ignore: Deno.permissions.querySync({ name: "env", variable: "NVIDIA_TF32_OVERRIDE" }).state ===
    "granted",
  fn: async () => {
    if (status?.available) {
      await assert.rejects(chooseDevice("cuda"), /--allow-env=NVIDIA_TF32_OVERRIDE/);
    }
    assert.throws(
      () => fixTf32(false),
      /grant --allow-env=NVIDIA_TF32_OVERRIDE, or pass tf32: true/,
    );
    assert.throws(
      () => fixTf32(true, () => "0"),
      /NVIDIA_TF32_OVERRIDE=0 is set, which forces fp32/,
    );
  },
});

Deno.test({
  name:
    "a CUDA session that fails to start: an error with onnxruntime's reason, or for auto the CPU and one line",
  ignore: !ortReady,
  fn: async () => {
    const failing = (providers: string[]) =>
      providers[0] === "cuda"
        ? Promise.reject(
          new Error("libcublasLt.so.13: cannot open shared object file: No such file"),
        )
        : Promise.resolve(`session on ${providers}`);
    fixTf32(true); // no NVIDIA_TF32_OVERRIDE needed for TF32 (the provider's default)
    await assert.rejects(
      createDeviceSession(failing, { device: "cuda", reason: "test", auto: false }, true),
      (e: Error) =>
        e instanceof CudaUnavailableError &&
        e.message === "CUDA not available: the CUDA provider failed to start: " +
            "libcublasLt.so.13: cannot open shared object file: No such file",
    );
    const lines: string[] = [];
    const original = console.error;
    console.error = (...a: unknown[]) => lines.push(a.join(" "));
    try {
      const made = await createDeviceSession(
        failing,
        { device: "cuda", reason: "t", auto: true },
        true,
      );
      assert.deepEqual([made.session, made.device], ["session on cpu", "cpu"]);
      assert.match(made.reason, /failed to start: libcublasLt\.so\.13/);
    } finally {
      console.error = original;
    }
    assert.deepEqual(lines, [
      'diffprobe: device "auto" → CPU (the CUDA provider failed to start: ' +
      "libcublasLt.so.13: cannot open shared object file: No such file)",
    ]);
    // The TF32 choice is per process: asking for fp32 now is an error, not a silent TF32 run.
    assert.throws(() => fixTf32(false), /TF32 is already allowed for this process/);
  },
});

Deno.test("device option: bad values are TypeErrors that list the choices", async () => {
  assert.throws(() => checkDevice("gpu"), {
    name: "TypeError",
    message: 'Device must be one of "auto", "cpu", "cuda", got "gpu"',
  });
  assert.equal((await chooseDevice("cpu")).device, "cpu");
  if (!ortReady) return;
  const unet = createBackbone(config, { seed: 3 });
  try {
    await assert.rejects(
      // deno-lint-ignore no-explicit-any
      createOnnxExtractor(unet, [2], { device: "GPU" as any }),
      /Device must be one of "auto", "cpu", "cuda", got "GPU"/,
    );
  } finally {
    unet.dispose();
  }
});

// The `device` option of extraction, sweeps, head training and pre-training.

Deno.test({
  name:
    'extractFeatures: device "cuda" here is the named CUDA error before any batch; "auto" reports the CPU',
  ignore: !cpuOnly,
  fn: async () => {
    const unet = createBackbone(config, { seed: 3 });
    const images = tf.randomUniform([3, 8, 8, 3], -1, 1, "float32", 4);
    const tap = tapBlock(10, 2);
    try {
      const before = tf.memory().numTensors;
      let batches = 0;
      await assert.rejects(
        extractFeatures(unet, [tap], images, {
          device: "cuda",
          onProgress: () => batches++,
        }),
        (e: Error) =>
          e instanceof CudaUnavailableError && e.message.startsWith("CUDA not available: "),
      );
      assert.equal(batches, 0);
      assert.equal(tf.memory().numTensors, before);
      // The tfjs engine on a CPU backend cannot honour "cuda" either, and says why.
      await assert.rejects(
        extractFeatures(unet, [tap], images, { device: "cuda", engine: "tfjs" }),
        /on device "cuda" needs TensorFlow\.js on CUDA .*CUDA 11\.2 and cuDNN 8\.1/,
      );
      const seen: ExtractionDevice[] = [];
      const out = await extractFeatures(unet, [tap], images, {
        device: "auto",
        engine: "onnx",
        onDevice: (d) => seen.push(d),
      });
      assert.deepEqual(seen.map((d) => [d.engine, d.device, d.tf32, d.batchSize]), [
        ["onnx", "cpu", false, 64],
      ]);
      assert.match(seen[0].reason, /^CUDA not available: /);
      const cpu = await extractFeatures(unet, [tap], images, { device: "cpu", engine: "onnx" });
      assert.deepEqual(await out.get(tap.key)!.data(), await cpu.get(tap.key)!.data());
      tf.dispose([...out.values(), ...cpu.values()]);
      await assert.rejects(
        // deno-lint-ignore no-explicit-any
        extractFeatures(unet, [tap], images, { device: "gpu" as any }),
        /Extraction device must be one of "auto", "cpu", "cuda", got "gpu"/,
      );
    } finally {
      images.dispose();
      unet.dispose();
    }
  },
});

Deno.test('head fit and trainDiffusion, tfjs engine: device "cuda" without TensorFlow.js on CUDA is a clear error; "cpu" runs and is reported', async () => {
  await tf.setBackend("cpu");
  const x = tf.randomNormal([8, 4], 0, 1, "float32", 1);
  const head = new LinearHead({ inputShape: [4], outputs: 2 });
  const unet = createBackbone(config, { seed: 3 });
  const images = tf.randomUniform([2, 8, 8, 3], -1, 1, "float32", 2);
  try {
    await assert.rejects(
      head.fit(x, [0, 1, 0, 1, 0, 1, 0, 1], { epochs: 1, device: "cuda", engine: "tfjs" }),
      /Head training on device "cuda" needs TensorFlow\.js on CUDA .* the TensorFlow\.js backend is "cpu"/,
    );
    const history = await head.fit(x, [0, 1, 0, 1, 0, 1, 0, 1], {
      epochs: 1,
      device: "cpu",
      engine: "tfjs",
    });
    assert.equal(history.device, "cpu");
    await assert.rejects(
      trainDiffusion(unet, images, { steps: 1, batchSize: 2, device: "cuda", engine: "tfjs" }),
      /Training on device "cuda" needs TensorFlow\.js on CUDA .* the TensorFlow\.js backend is "cpu"/,
    );
    const trained = await trainDiffusion(unet, images, {
      steps: 1,
      batchSize: 2,
      device: "auto",
      engine: "tfjs",
    });
    assert.equal(trained.device, "cpu");
    trained.ema.dispose();
  } finally {
    tf.dispose([x, images]);
    head.dispose();
    unet.dispose();
  }
});

Deno.test({
  name:
    'head fit and trainDiffusion, onnx engine: device "cuda" here is the CUDA error naming the missing library before any step; "auto" trains on the CPU',
  ignore: !cpuOnly,
  fn: async () => {
    await tf.setBackend("cpu");
    const x = tf.randomNormal([8, 4], 0, 1, "float32", 1);
    const head = new LinearHead({ inputShape: [4], outputs: 2 });
    const unet = createBackbone(config, { seed: 3 });
    const images = tf.randomUniform([2, 8, 8, 3], -1, 1, "float32", 2);
    // What must be named: the first library the provider needs that does not load here (an
    // independent dlopen), else the missing driver.
    const missing = [
      "libcudart.so.13",
      "libcublasLt.so.13",
      "libcublas.so.13",
      "libcurand.so.10",
      "libcudnn.so.9",
    ].filter((l) => !loads(l));
    const named = (e: Error) => {
      assert.ok(e instanceof CudaUnavailableError, String(e));
      assert.match(e.message, /^CUDA not available: /);
      for (const lib of missing) assert.ok(e.message.includes(lib), `${lib} not in ${e.message}`);
      if (!loads("libcuda.so.1")) assert.match(e.message, /libcuda\.so\.1/);
      return true;
    };
    try {
      const labels = [0, 1, 0, 1, 0, 1, 0, 1];
      const before = head.weights.get("linear.bias")!.dataSync().slice();
      let epochs = 0, steps = 0;
      await assert.rejects(
        head.fit(x, labels, {
          epochs: 1,
          device: "cuda",
          engine: "onnx",
          onEpoch: () => void epochs++,
        }),
        named,
      );
      assert.equal(epochs, 0);
      assert.deepEqual(head.weights.get("linear.bias")!.dataSync(), before);
      await assert.rejects(
        trainDiffusion(unet, images, {
          steps: 1,
          batchSize: 2,
          device: "cuda",
          engine: "onnx",
          onStep: () => void steps++,
        }),
        named,
      );
      assert.equal(steps, 0);
      const history = await head.fit(x, labels, { epochs: 1, device: "auto", engine: "onnx" });
      assert.equal(history.device, "cpu");
      assert.notDeepEqual(head.weights.get("linear.bias")!.dataSync(), before);
      const trained = await trainDiffusion(unet, images, {
        steps: 1,
        batchSize: 2,
        device: "auto",
        engine: "onnx",
        onStep: () => void steps++,
      });
      assert.deepEqual([trained.device, steps], ["cpu", 1]);
      assert.ok(Number.isFinite(trained.losses[0]));
      trained.ema.dispose();
    } finally {
      tf.dispose([x, images]);
      head.dispose();
      unet.dispose();
    }
  },
});

Deno.test({
  name:
    'sweep: device "cuda" here fails with the named CUDA error; the result reports the device that ran',
  ignore: !cpuOnly,
  fn: async () => {
    const unet = createBackbone(config, { seed: 3 });
    const x = tf.randomUniform([4, 8, 8, 3], -1, 1, "float32", 5);
    const split = { data: x, labels: [0, 1, 0, 1] };
    const head = () => ({
      fit: () => Promise.resolve(),
      evaluate: () => ({ mse: 1 }),
      dispose: () => {},
    });
    try {
      await assert.rejects(
        sweep(unet, { train: split, test: split }, { ts: [10], blocks: [2], head, device: "cuda" }),
        (e: Error) => e instanceof CudaUnavailableError,
      );
      const result = await sweep(unet, { train: split, test: split }, {
        ts: [10],
        blocks: [2],
        head,
        device: "cpu",
        engine: "onnx",
      });
      assert.deepEqual(
        [result.device?.engine, result.device?.device, result.device?.batchSize],
        ["onnx", "cpu", 64],
      );
    } finally {
      x.dispose();
      unet.dispose();
    }
  },
});
