/**
 * Frozen feature extraction speed: images/s by engine × tapped block depth × batch size, for the
 * 8.9M `ddpm-cifar10-small` checkpoint (from ../shared when present, else a random backbone of
 * the same config) and the 35.7M google/ddpm-cifar10-32 configuration (random weights).
 *
 * Engines: `onnx` (onnxruntime-node, CPU provider, 2 threads), `tfjs-wasm` (the TensorFlow.js
 * path on the wasm backend, main thread), `tfjs-wasm×2` (two Deno workers on wasm, each taking
 * half the batch) and `tfjs-cpu` (small sizes only). Depths: block 12 (end of the encoder),
 * block 17 (`up_blocks.1.0`) and the full forward pass. Each iteration is one batch; the table
 * printed at the end converts the measured times to images/s.
 *
 * ```sh
 * deno bench --allow-read --allow-write=/tmp --allow-env --allow-sys --allow-ffi bench/extract_bench.ts
 * deno bench ... bench/extract_bench.ts --filter "35.7M"   # one model
 * ```
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import {
  type Backbone,
  createBackbone,
  createOnnxExtractor,
  DDPM_CIFAR10_32_CONFIG,
  freeze,
  loadBackbone,
  type OnnxExtractor,
  onnxRuntimeAvailable,
  type UNet2DConfig,
  useBackend,
} from "../mod.ts";
import { DDPM_CIFAR10_SMALL } from "./_models.ts";

const SMALL_DIR = new URL("../../shared/fixtures/ddpm-cifar10-small", import.meta.url).pathname;
const smallPresent = await Deno.stat(SMALL_DIR).then(() => true, () => false);
const T = 30;
const THREADS = 2;
const DEPTHS = [12, 17, "full"] as const;
type Depth = (typeof DEPTHS)[number];

await useBackend("wasm");
const ortReady = await onnxRuntimeAvailable();
if (!ortReady) console.log("onnx benches skipped: onnxruntime-node cannot load (--allow-ffi?)");

interface Model {
  label: string;
  unet: Backbone;
  init: { config?: UNet2DConfig; model?: string; seed: number };
}
const models: Model[] = [
  {
    label: smallPresent ? "8.9M ddpm-cifar10-small" : "8.9M ddpm-cifar10-small config (random)",
    unet: freeze(
      smallPresent ? await loadBackbone(SMALL_DIR) : createBackbone(DDPM_CIFAR10_SMALL),
    ),
    init: smallPresent ? { model: SMALL_DIR, seed: 0 } : { config: DDPM_CIFAR10_SMALL, seed: 0 },
  },
  {
    label: "35.7M google/ddpm-cifar10-32 config (random)",
    unet: freeze(createBackbone(DDPM_CIFAR10_32_CONFIG, { seed: 0 })),
    init: { config: DDPM_CIFAR10_32_CONFIG, seed: 0 },
  },
];

function inputs(batch: number): Float32Array {
  const x = new Float32Array(batch * 32 * 32 * 3);
  let s = 12345;
  for (let i = 0; i < x.length; i++) {
    s = (Math.imul(s, 1103515245) + 12345) | 0;
    x[i] = ((s >>> 8) / 2 ** 24) * 2 - 1;
  }
  return x;
}

/** Two (or more) wasm workers splitting each batch. */
class WasmWorkers {
  #workers: Worker[] = [];
  #next = 0;
  #pending = new Map<number, (m: { data: Float32Array; error?: string }) => void>();

  static async create(count: number, init: Model["init"]): Promise<WasmWorkers> {
    const pool = new WasmWorkers();
    await Promise.all(Array.from({ length: count }, () =>
      new Promise<void>((ready, fail) => {
        const w = new Worker(new URL("./_wasm_worker.ts", import.meta.url), { type: "module" });
        w.onmessage = (e) => {
          if (e.data.ready) return ready();
          if (e.data.error && e.data.id === undefined) return fail(new Error(e.data.error));
          const done = pool.#pending.get(e.data.id);
          pool.#pending.delete(e.data.id);
          done?.(e.data);
        };
        w.postMessage({ init });
        pool.#workers.push(w);
      })));
    return pool;
  }

  async run(data: Float32Array, batch: number, block: Depth): Promise<void> {
    const per = Math.ceil(batch / this.#workers.length);
    const size = data.length / batch;
    await Promise.all(this.#workers.map((w, i) => {
      const n = Math.min(per, batch - i * per);
      if (n <= 0) return Promise.resolve();
      const id = this.#next++;
      const part = data.slice(i * per * size, (i * per + n) * size);
      return new Promise<void>((ok, fail) => {
        this.#pending.set(id, (m) => m.error ? fail(new Error(m.error)) : ok());
        w.postMessage({ id, data: part, shape: [n, 32, 32, 3], t: T, block }, [part.buffer]);
      });
    }));
  }

  terminate(): void {
    for (const w of this.#workers) w.terminate();
  }
}

/** The 1-minute load average (other processes share the CPUs), or "n/a" without --allow-sys. */
function loadAverage(): string {
  try {
    return Deno.loadavg()[0].toFixed(2);
  } catch {
    return "n/a";
  }
}

const results: { group: string; engine: string; batch: number; ms: number[] }[] = [];
function timed(group: string, engine: string, batch: number, run: () => Promise<void>) {
  const row = { group, engine, batch, ms: [] as number[] };
  results.push(row);
  return async () => {
    const start = performance.now();
    await run();
    row.ms.push(performance.now() - start);
  };
}

const onnx = new Map<string, OnnxExtractor>();
async function onnxExtractor(m: Model, depth: Depth): Promise<OnnxExtractor> {
  const key = `${m.label}/${depth}`;
  if (!onnx.has(key)) {
    onnx.set(
      key,
      await createOnnxExtractor(m.unet, depth === "full" ? [] : [depth], {
        eps: depth === "full",
        threads: THREADS,
        device: "cpu",
      }),
    );
  }
  return onnx.get(key)!;
}

async function tfjsRun(m: Model, data: Float32Array, batch: number, depth: Depth) {
  const x = tf.tensor(data, [batch, 32, 32, 3]);
  const out = depth === "full"
    ? m.unet.forward(x, T).eps!
    : m.unet.forward(x, T, { capture: [depth] }).blocks.values().next().value!;
  await out.data();
  tf.dispose([x, out]);
}

const workerPools = new Map<string, Promise<WasmWorkers>>();
const big = (m: Model) => m.label.startsWith("35.7M");

for (const m of models) {
  for (const depth of DEPTHS) {
    const tapName = depth === "full" ? "full forward" : `block ${depth}`;
    for (const batch of [16, 64]) {
      const group = `${m.label.split(" ")[0]} · ${tapName} · batch ${batch}`;
      const data = inputs(batch);
      const n = big(m) ? 3 : 5;
      Deno.bench({
        name: `onnx · ${m.label} · ${tapName} · batch ${batch}`,
        group,
        baseline: true,
        ignore: !ortReady,
        n,
        warmup: 1,
        fn: timed(group, "onnx", batch, async () => {
          const ex = await onnxExtractor(m, depth);
          const out = await ex.run(data, [batch, 32, 32, 3], T);
          tf.dispose([...out.values()]);
        }),
      });
      // The TensorFlow.js engines take seconds per image on the 35.7M network: batch 16 only.
      const tfjsBatch = !big(m) || batch === 16;
      Deno.bench({
        name: `tfjs-wasm · ${m.label} · ${tapName} · batch ${batch}`,
        group,
        ignore: !tfjsBatch,
        n: big(m) ? 2 : 3,
        warmup: 1,
        fn: timed(group, "tfjs-wasm", batch, async () => {
          if (tf.getBackend() !== "wasm") await tf.setBackend("wasm");
          await tfjsRun(m, data, batch, depth);
        }),
      });
      Deno.bench({
        name: `tfjs-wasm×2 workers · ${m.label} · ${tapName} · batch ${batch}`,
        group,
        ignore: !tfjsBatch || depth === 12,
        n: big(m) ? 2 : 3,
        warmup: 1,
        fn: timed(group, "tfjs-wasm×2 workers", batch, async () => {
          if (!workerPools.has(m.label)) workerPools.set(m.label, WasmWorkers.create(2, m.init));
          await (await workerPools.get(m.label)!).run(data, batch, depth);
        }),
      });
    }
  }
}

// The pure-JavaScript backend, small sizes only (last: switching moves the weights).
for (const depth of [12, 17] as const) {
  const m = models[0];
  const batch = 4;
  const group = `${m.label.split(" ")[0]} · block ${depth} · batch ${batch}`;
  const data = inputs(batch);
  if (ortReady) {
    Deno.bench({
      name: `onnx · ${m.label} · block ${depth} · batch ${batch}`,
      group,
      baseline: true,
      n: 5,
      warmup: 1,
      fn: timed(group, "onnx", batch, async () => {
        const out = await (await onnxExtractor(m, depth)).run(data, [batch, 32, 32, 3], T);
        tf.dispose([...out.values()]);
      }),
    });
  }
  Deno.bench({
    name: `tfjs-cpu · ${m.label} · block ${depth} · batch ${batch}`,
    group,
    n: 2,
    warmup: 1,
    fn: timed(group, "tfjs-cpu", batch, async () => {
      if (tf.getBackend() !== "cpu") await tf.setBackend("cpu");
      await tfjsRun(m, data, batch, depth);
    }),
  });
}

globalThis.addEventListener("unload", () => {
  const rows = results.filter((r) => r.ms.length > 0);
  if (rows.length === 0) return;
  // Deno.bench runs `warmup` iterations first: drop them.
  const median = (v: number[]) => [...v].sort((a, b) => a - b)[v.length >> 1];
  console.log(`\nload average (1 min) at the end: ${loadAverage()}`);
  console.log("\n| model · tap · batch | engine | images/s (median) | images/s (best) |");
  console.log("|---|---|---|---|");
  for (const r of rows) {
    const ms = r.ms.length > 1 ? r.ms.slice(1) : r.ms;
    console.log(
      `| ${r.group} | ${r.engine} | ${(r.batch / median(ms) * 1000).toFixed(2)} | ` +
        `${(r.batch / Math.min(...ms) * 1000).toFixed(2)} |`,
    );
  }
  for (const ex of onnx.values()) ex.dispose();
  for (const p of workerPools.values()) p.then((w) => w.terminate());
  for (const m of models) m.unet.dispose();
});
