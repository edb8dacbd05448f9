/**
 * The CUDA route, checked end to end in one run (under 5 minutes on a GPU machine):
 *
 * 1. what CUDA needs here (`cudaStatus`, provider files verified by SHA-256) — when anything is
 *    missing it prints `CUDA not available: …` (and onnxruntime's own loader message) and exits 1;
 * 2. the execution provider that actually ran each node (onnxruntime's profile);
 * 3. max abs error CUDA vs CPU (and vs diffusers) over every tap of the `ddpm-cifar10-small`
 *    parity fixture — fp32 by default (`--tf32` allows TF32);
 * 4. images/s on CUDA for the 35.7M google/ddpm-cifar10-32 configuration (random weights) at
 *    batch 256: full forward and tap 17;
 * 5. the training step time at batch 128 on CUDA (`trainDiffusion`, onnx engine, 35.7M
 *    configuration; median of a few steps after the first).
 *
 * Exit status: 0 when CUDA ran everything and matched the CPU, 1 when CUDA did not run, 2 when it
 * ran but differed from the CPU beyond the tolerance. `--rehearse-on-cpu` runs steps 2–5 with the
 * CPU in CUDA's place (to try the script without a GPU; it still exits 1).
 *
 * ```sh
 * deno task cuda:check                      # from the repository root
 * deno run --allow-read --allow-write=/tmp --allow-ffi \
 *   --allow-env=LD_LIBRARY_PATH,NVIDIA_TF32_OVERRIDE bench/cuda_check.ts \
 *   [--fixtures DIR] [--batch 256] [--rounds 5] [--tf32] [--rehearse-on-cpu]
 * ```
 *
 * `--fixtures` is the folder holding `ddpm-cifar10-small/` and
 * `ddpm-cifar10-small-parity-t30.safetensors` (default: the shared fixtures beside the checkout).
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import {
  type Backbone,
  createBackbone,
  createOnnxExtractor,
  cudaStatus,
  DDPM_CIFAR10_32_CONFIG,
  freeze,
  loadBackbone,
  type OnnxExtractor,
  onnxRuntimeFolder,
  readSafetensorsFile,
  toFloat32,
  trainDiffusion,
} from "../mod.ts";
import { intFlag, parseCli } from "../examples/_cli.ts";

const args = parseCli({
  name: "deno task cuda:check",
  summary: "CUDA status, onnxruntime's providers, CUDA vs CPU parity on every tap, throughput.",
  flags: {
    fixtures: {
      type: "string",
      value: "dir",
      help: "folder with ddpm-cifar10-small and its parity tensors",
      defaultText: "the reference folder beside the repository",
    },
    batch: { type: "string", default: "256", value: "N", help: "images per throughput batch" },
    rounds: { type: "string", default: "5", value: "N", help: "throughput rounds" },
    tf32: { type: "boolean", help: "allow TF32 on the GPU (tolerance 1e-2 instead of 1e-4)" },
    "rehearse-on-cpu": {
      type: "boolean",
      help: "run every step with the CPU in CUDA's place (and still exit 1)",
    },
  },
});
/** `--rehearse-on-cpu` runs every step with the CPU in CUDA's place (and still exits 1). */
const rehearse = args["rehearse-on-cpu"];
const target = rehearse ? "cpu" : "cuda";
const batch = intFlag("batch", args.batch, 1, 65536);
const rounds = intFlag("rounds", args.rounds, 1, 1000);
const tf32 = args.tf32;
const fixtures = args.fixtures ??
  new URL("../../shared/fixtures", import.meta.url).pathname;
const TOLERANCE = tf32 ? 1e-2 : 1e-4;
const started = performance.now();
const elapsed = () => `${((performance.now() - started) / 1000).toFixed(1)} s`;

// --- 1. What CUDA needs -------------------------------------------------------------------
const { folder, version } = await onnxRuntimeFolder();
console.log(`onnxruntime-node ${version} (${folder})`);
const status = await cudaStatus({ verify: true });
console.log(
  `GPU: ${status.gpu ?? "none found"}; driver supports CUDA ${status.driverCuda ?? "?"}; ` +
    `CUDA runtime ${status.runtimeCuda ?? "not found"}; cuDNN ${status.cudnn ?? "not found"}`,
);
console.log(`library search path: ${status.searchPath.join(", ")}`);
if (!status.available && !rehearse) {
  console.log(`CUDA not available: ${status.problems.join("; ")}`);
  // onnxruntime's own attempt, for its loader message (it fails while adding the provider,
  // before reading the model, and logs the dlopen error on stderr).
  const ort = await import("onnxruntime-node");
  await ort.InferenceSession.create(new Uint8Array(1), { executionProviders: ["cuda"] }).then(
    () => console.log("onnxruntime: the CUDA provider was added"),
    (e) => console.log(`onnxruntime's own attempt: ${(e as Error).message.split("\n")[0]}`),
  );
  Deno.exit(1);
}

// --- 2 + 3. Parity: CUDA vs CPU vs diffusers on every tap, and the providers that ran ---------
const profileDir = await Deno.makeTempDir({ prefix: "diffprobe-cuda-check-" });
const parityFile = await readSafetensorsFile(
  `${fixtures}/ddpm-cifar10-small-parity-t30.safetensors`,
);
const ref = (name: string) => {
  const e = parityFile.tensors.get(name);
  if (!e) throw new Error(`The parity file has no ${name}`);
  return tf.tidy(() => tf.tensor(toFloat32(e), e.shape).transpose([0, 2, 3, 1]));
};
const t = Number(parityFile.metadata.t);
const order = JSON.parse(parityFile.metadata.order) as string[];
const small = freeze(await loadBackbone(`${fixtures}/ddpm-cifar10-small`));
const xt = ref("input.xt");
const run = async (extractor: OnnxExtractor) => await extractor.run(xt, xt.shape, t);
const onCpu = await createOnnxExtractor(small, order, { eps: true, device: "cpu" });
const onCuda = await createOnnxExtractor(small, order, {
  eps: true,
  device: target,
  tf32,
  profile: `${profileDir}/parity`,
});
const [cpuOut, cudaOut] = [await run(onCpu), await run(onCuda)];
onCuda.endProfiling();
let worstCpu = 0;
let worstRef = 0;
let worstName = "";
for (const name of [...order, "eps"]) {
  const theirs = ref(name === "eps" ? "output.eps" : `block.${name}`);
  const [vsCpu, vsRef] = tf.tidy(() => [
    tf.max(tf.abs(tf.sub(cudaOut.get(name)!, cpuOut.get(name)!))).dataSync()[0],
    tf.max(tf.abs(tf.sub(cudaOut.get(name)!, theirs))).dataSync()[0],
  ]);
  theirs.dispose();
  if (vsCpu > worstCpu) [worstCpu, worstName] = [vsCpu, name];
  worstRef = Math.max(worstRef, vsRef);
}
tf.dispose([...cpuOut.values(), ...cudaOut.values(), xt]);
onCpu.dispose();
onCuda.dispose();
small.dispose();

const providers = new Map<string, number>();
for await (const entry of Deno.readDir(profileDir)) {
  const events = JSON.parse(await Deno.readTextFile(`${profileDir}/${entry.name}`)) as {
    cat?: string;
    args?: { provider?: string };
  }[];
  for (const e of events) {
    if (e.cat === "Node" && e.args?.provider) {
      providers.set(e.args.provider, (providers.get(e.args.provider) ?? 0) + 1);
    }
  }
}
await Deno.remove(profileDir, { recursive: true });
const cudaNodes = providers.get("CUDAExecutionProvider") ?? 0;
console.log(
  `\nexecution providers that ran (node runs, from onnxruntime's profile): ${
    [...providers].map(([p, n]) => `${p} ${n}`).join(", ") || "none recorded"
  }`,
);
console.log(`device reported by the extractor: ${onCuda.device} (${onCuda.deviceReason})`);
console.log(`precision: ${tf32 ? "TF32 allowed" : "fp32 (NVIDIA_TF32_OVERRIDE=0)"}`);
console.log(
  `ddpm-cifar10-small, ${order.length} taps + eps, t = ${t}: max abs error CUDA vs CPU ` +
    `${worstCpu.toExponential(2)} (worst: ${worstName || "none, all equal"}), CUDA vs diffusers ` +
    `${worstRef.toExponential(2)}; tolerance ${TOLERANCE}  [${elapsed()}]`,
);

// --- 4. Throughput at batch 256, 35.7M configuration ----------------------------------------
const big: Backbone = freeze(createBackbone(DDPM_CIFAR10_32_CONFIG, { seed: 0 }));
const data = new Float32Array(batch * 32 * 32 * 3);
for (let i = 0; i < data.length; i++) data[i] = Math.sin(i * 12.9898) * 0.9;
console.log(
  `\n35.7M google/ddpm-cifar10-32 configuration (random weights), batch ${batch}, t = 30:`,
);
for (const [label, blocks, eps] of [["full forward", [], true], ["tap 17", [17], false]] as const) {
  const extractor = await createOnnxExtractor(big, [...blocks], { eps, device: target, tf32 });
  const times: number[] = [];
  for (let r = 0; r < rounds + 2; r++) { // two warm-up passes (session build, cuDNN tuning)
    const start = performance.now();
    const out = await extractor.run(data, [batch, 32, 32, 3], 30);
    times.push((performance.now() - start) / 1000);
    tf.dispose([...out.values()]);
  }
  const timed = times.slice(2).sort((a, b) => a - b);
  console.log(
    `  ${label.padEnd(12)} ${(batch / timed[timed.length >> 1]).toFixed(0)} images/s median, ` +
      `${(batch / timed[0]).toFixed(0)} best (${rounds} passes; first pass ` +
      `${times[0].toFixed(2)} s)  [${extractor.device}]`,
  );
  extractor.dispose();
}
big.dispose();

// --- 5. Training: the step time at batch 128, 35.7M configuration -------------------------
// trainDiffusion on the onnx engine (forward, backward, clipping, AdamW and EMA in one graph per
// step); each step's time is taken between `onStep` calls, the first step (session build) apart.
const TRAIN_BATCH = 128;
const trainSteps = Math.max(3, rounds) + 1;
let trainedOn = "none";
if (tf32 && !rehearse) {
  // cuBLAS and cuDNN read NVIDIA_TF32_OVERRIDE once per process; training sessions run fp32.
  console.log(
    `\ntraining step at batch ${TRAIN_BATCH}: not timed with --tf32 (training runs fp32)`,
  );
} else {
  const trainable = createBackbone(DDPM_CIFAR10_32_CONFIG, { seed: 0 });
  const images = tf.tidy(() =>
    tf.tensor(data.subarray(0, TRAIN_BATCH * 32 * 32 * 3), [TRAIN_BATCH, 32, 32, 3])
  );
  const marks: number[] = [performance.now()];
  const trained = await trainDiffusion(trainable, images, {
    steps: trainSteps,
    batchSize: TRAIN_BATCH,
    engine: "onnx",
    device: target,
    onStep: () => void marks.push(performance.now()),
  });
  trainedOn = trained.device;
  const stepTimes = marks.slice(1).map((m, i) => (m - marks[i]) / 1000);
  const timed = stepTimes.slice(1).sort((a, b) => a - b);
  console.log(
    `\ntraining step at batch ${TRAIN_BATCH}, 35.7M configuration, onnx engine: ` +
      `${(timed[timed.length >> 1] * 1000).toFixed(0)} ms median, ` +
      `${(timed[0] * 1000).toFixed(0)} ms best (${timed.length} steps; first step ` +
      `${stepTimes[0].toFixed(2)} s), loss ${trained.losses.at(-1)!.toFixed(4)}  [${trainedOn}]`,
  );
  trained.ema.dispose();
  images.dispose();
  trainable.dispose();
}

console.log(`\ndone in ${elapsed()}`);
if (cudaNodes === 0) {
  console.log("CUDA not available: the profile shows no node run by CUDAExecutionProvider");
  Deno.exit(1);
}
if (!tf32 && trainedOn !== "cuda") {
  console.log(`CUDA not available: the training step ran on ${trainedOn}`);
  Deno.exit(1);
}
if (!(worstCpu <= TOLERANCE)) {
  console.log(`CUDA differs from the CPU by ${worstCpu} > ${TOLERANCE}`);
  Deno.exit(2);
}
