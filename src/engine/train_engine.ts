/**
 * Training on onnxruntime: a whole diffusion training step of a UNet (forward in training mode,
 * eps-prediction MSE, backward, clipping to a global norm, AdamW) — or a head's step — runs as
 * one ONNX graph built in TypeScript and one onnxruntime session reused across steps. The
 * weights and AdamW's moments live in this engine as `Float32Array`s: each step feeds them in
 * and takes the updated ones out (no tfjs tensors are created per step). The learning-rate
 * schedule stays in JavaScript and enters each step as an input.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import {
 *   createBackbone, createOnnxHeadTrainer, createOnnxUNetTrainer, headTrainSpec, LinearHead,
 *   onnxRuntimeAvailable,
 * } from "@diffprobe/core";
 *
 * const unet = createBackbone({ _class_name: "DiffprobeUNet1DModel", in_channels: 1,
 *   out_channels: 1, sample_size: 16, block_out_channels: [8, 8], layers_per_block: 1,
 *   down_block_types: ["DownBlock1D", "DownBlock1D"], up_block_types: ["UpBlock1D", "UpBlock1D"],
 *   norm_num_groups: 4, dropout: 0 });
 * if (await onnxRuntimeAvailable()) {
 *   const trainer = await createOnnxUNetTrainer(unet, { batch: 2, threads: 1 });
 *   const x0 = new Float32Array(32).fill(0.5), noise = new Float32Array(32).fill(0.1);
 *   const { loss } = await trainer.step({ x0, noise, t: [10, 500] }, 1e-3);
 *   assert.ok(Number.isFinite(loss));
 *   assert.equal(trainer.iterations, 1);
 *   trainer.dispose();
 *
 *   // A head: 20 AdamW steps on a separable toy problem lower the loss.
 *   const head = new LinearHead({ inputShape: [2], outputs: 2 });
 *   const initial = new Map([...head.weights].map(([n, v]) => [n, v.dataSync()]));
 *   const headTrainer = createOnnxHeadTrainer(headTrainSpec(head), initial, { threads: 1 });
 *   const x = new Float32Array([1, 0, 0, 1]), y = new Float32Array([1, 0, 0, 1]);
 *   const first = await headTrainer.step(x, y, 0.1);
 *   let last = first;
 *   for (let i = 0; i < 20; i++) last = await headTrainer.step(x, y, 0.1);
 *   assert.ok(last < first);
 *   headTrainer.dispose();
 *   head.dispose();
 * }
 * unet.dispose();
 * ```
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import type { Backbone } from "../models/unet.ts";
import { asLowerable, type LowerableBackbone, timeEmbeddingInput } from "./onnx_graph.ts";
import { type AdamWHyper, adamwScalars } from "./_optim_graph.ts";
import { buildUNetTrainGraph, buildUpdateGraph, type UNetTrainGraph } from "./_train_graph_unet.ts";
import { buildHeadTrainGraph, type HeadGraphSpec } from "./_train_graph_heads.ts";
import { TrainSession, type TrainSessionOptions } from "./_train_session.ts";
import { Random } from "../base/random.ts";
import { oneOf } from "../base/validate.ts";
import { chooseDevice, type DeviceChoice, sayOnce } from "./device.ts";
import { onnxRuntimeAvailable, ortFfiGranted } from "./ort.ts";
import { checkDevice, type ResolvedDevice, type TfjsDevice, tfjsDevice } from "../base/device.ts";

export type { HeadGraphSpec } from "./_train_graph_heads.ts";

/** Which engine trains: onnxruntime graphs, TensorFlow.js, or the first that works here. */
export type TrainEngine = "auto" | "onnx" | "tfjs";

/**
 * Resolves a training engine: `"tfjs"` as asked; `"onnx"` when onnxruntime-node loads (else an
 * error saying what to install or grant); `"auto"` onnx when onnxruntime-node loads and the
 * process may load native addons, else tfjs. The choice and its reason are printed once per
 * process on stderr (for `"auto"`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { chooseTrainEngine } from "@diffprobe/core";
 *
 * assert.deepEqual(await chooseTrainEngine("tfjs"), { engine: "tfjs", reason: "asked for" });
 * assert.ok(["onnx", "tfjs"].includes((await chooseTrainEngine("auto")).engine));
 * ```
 */
export async function chooseTrainEngine(
  engine: TrainEngine = "auto",
): Promise<{ engine: "onnx" | "tfjs"; reason: string }> {
  oneOf(engine, "Training engine", ["auto", "onnx", "tfjs"] as const);
  if (engine === "tfjs") return { engine, reason: "asked for" };
  const ffi = await ortFfiGranted();
  const loads = ffi && await onnxRuntimeAvailable();
  if (engine === "onnx") {
    if (!loads) {
      throw new Error(
        `The onnx training engine needs onnxruntime-node${ffi ? "" : " and --allow-ffi"}; ` +
          'use engine "tfjs" otherwise',
      );
    }
    return { engine, reason: "asked for" };
  }
  const choice = loads ? { engine: "onnx" as const, reason: "onnxruntime-node loads" } : {
    engine: "tfjs" as const,
    reason: ffi ? "onnxruntime-node cannot be loaded" : "no --allow-ffi for onnxruntime-node",
  };
  sayOnce(`diffprobe: training on the ${choice.engine} engine (auto: ${choice.reason})`);
  return choice;
}

/** Where a training run goes: its engine and device (`choice` with the onnx engine). */
export interface TrainPlacement {
  /** The engine that trains. */
  engine: "onnx" | "tfjs";
  /** The device asked of the engine's sessions (tfjs: that of its backend). */
  device: TfjsDevice;
  /** With the onnx engine: the device decision its sessions are created with. */
  choice?: DeviceChoice;
}

/**
 * Resolves the engine ({@linkcode chooseTrainEngine}) and the device of a training run, before
 * any work. With the onnx engine the device is chosen as for extraction (`chooseDevice`):
 * `"cuda"` is CUDA or a `CudaUnavailableError` naming what is missing; `"auto"` CUDA when it
 * loads, else the CPU, said once; `"cpu"` the CPU. With the tfjs engine the device must be that
 * of the TensorFlow.js backend (`tfjsDevice`). `what` names the run in errors.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import * as tf from "@tensorflow/tfjs";
 * import { chooseTrainPlacement } from "./train_engine.ts";
 *
 * await tf.setBackend("cpu");
 * assert.deepEqual(await chooseTrainPlacement("tfjs", "auto", "Training"), {
 *   engine: "tfjs",
 *   device: "cpu",
 * });
 * ```
 */
export async function chooseTrainPlacement(
  engine: TrainEngine | undefined,
  device: unknown,
  what: string,
): Promise<TrainPlacement> {
  const asked = checkDevice(device ?? "auto", `${what} device`);
  const chosen = (await chooseTrainEngine(engine ?? "auto")).engine;
  if (chosen === "tfjs") return { engine: chosen, device: tfjsDevice(asked, what) };
  const choice = await chooseDevice(asked);
  return { engine: chosen, device: choice.device, choice };
}

/** Options of {@linkcode createOnnxUNetTrainer}. */
export interface OnnxUNetTrainerOptions {
  /** Samples per step (the graph is built for this batch size). */
  batch: number;
  /** AdamW's first-moment decay (default 0.9). */
  beta1?: number;
  /** AdamW's second-moment decay (default 0.999). */
  beta2?: number;
  /** AdamW's epsilon (default 1e-8). */
  epsilon?: number;
  /** Decoupled weight decay on every weight (default 0.01). */
  weightDecay?: number;
  /** Clip gradients to this global norm (default 1; 0 or Infinity: no clipping). */
  gradClip?: number;
  /** Dropout rate (default: the config's). */
  dropout?: number;
  /** Intra-op threads (default `navigator.hardwareConcurrency`). */
  threads?: number;
  /** Keep an exponential moving average of the weights (each step then needs `emaDecay`). */
  ema?: boolean;
  /**
   * Samples per forward/backward pass (default: the whole batch): the gradients of the
   * micro-batches are summed, each weighted by its share of the batch, and one update follows.
   * Dropout masks are drawn for the whole batch, so the micro-batch size changes only the
   * order of float additions.
   */
  microBatch?: number;
  /** Where the sessions run (default: the CPU); see {@linkcode chooseTrainPlacement}. */
  device?: DeviceChoice;
}

/** One step's data: clean samples, their noise and timesteps. */
export interface UNetStepInput {
  /** Clean samples `[N, H, W, C]` (signals `[N, W, C]`), row-major, in [-1, 1]. */
  x0: Float32Array;
  /** The Gaussian noise, same shape. */
  noise: Float32Array;
  /** One timestep per sample. */
  t: ArrayLike<number>;
  /**
   * Dropout: a seed for {@linkcode fastDropoutMasks} (default 0), or the multipliers themselves
   * (one `[N, C, H, W]` array per resnet, e.g. {@linkcode tfjsDropoutMasks} to reproduce the
   * TensorFlow.js engine's draws).
   */
  dropout?: number | Float32Array[];
  /** With `ema`: this step's decay d of `ema ← ema · d + weights · (1 − d)`. */
  emaDecay?: number;
}

/** The optimizer state: step count and moments by weight name. */
export interface OnnxTrainerState {
  /** Steps taken. */
  iterations: number;
  /** First moments. */
  m: ReadonlyMap<string, Float32Array>;
  /** Second moments. */
  v: ReadonlyMap<string, Float32Array>;
}

/** Views of a flat vector, one per weight. */
function split(
  flat: Float32Array,
  names: readonly string[],
  sizes: readonly number[],
): Map<string, Float32Array> {
  const out = new Map<string, Float32Array>();
  let offset = 0;
  names.forEach((n, i) => {
    out.set(n, flat.subarray(offset, offset + sizes[i]));
    offset += sizes[i];
  });
  return out;
}

/** Per-weight values copied into one flat vector; throws naming a missing or mis-sized one. */
function join(
  parts: ReadonlyMap<string, ArrayLike<number>>,
  names: readonly string[],
  sizes: readonly number[],
): Float32Array {
  const out = new Float32Array(sizes.reduce((a, b) => a + b, 0));
  let offset = 0;
  names.forEach((n, i) => {
    const w = parts.get(n);
    if (!w || w.length !== sizes[i]) {
      throw new RangeError(
        `Values for "${n}" are ${w ? `of size ${w.length}, expected ${sizes[i]}` : "missing"}`,
      );
    }
    out.set(w, offset);
    offset += sizes[i];
  });
  return out;
}

/** A UNet training step on onnxruntime, with the weights and AdamW state it updates. */
export interface OnnxUNetTrainer {
  /** The weight names in order (the UNet plan's). */
  readonly names: readonly string[];
  /** The device the sessions run on. */
  readonly device: ResolvedDevice;
  /** Steps taken. */
  readonly iterations: number;
  /** The dropout mask inputs in resnet order (`[N, C, H, W]`); empty without dropout. */
  readonly dropoutShapes: readonly { name: string; shape: number[] }[];
  /** Runs one step at learning rate `lr`; resolves to the loss and the gradient norm. */
  step(input: UNetStepInput, lr: number): Promise<{ loss: number; gradNorm: number }>;
  /** The current weights by name (views of the engine's array: copy before changing). */
  weights(): Map<string, Float32Array>;
  /** The moving average by name (with `ema`; views, as `weights`). */
  emaWeights(): Map<string, Float32Array>;
  /** Replaces the moving average (copied). */
  setEmaWeights(weights: ReadonlyMap<string, ArrayLike<number>>): void;
  /** Replaces the weights (copied). */
  setWeights(weights: ReadonlyMap<string, ArrayLike<number>>): void;
  /** The optimizer state (the engine's arrays). */
  state(): OnnxTrainerState;
  /** Restores an optimizer state (copied). */
  loadState(state: OnnxTrainerState): void;
  /** Releases the session. */
  dispose(): void;
}

/**
 * Dropout multipliers for one step, fast: resnet `k` draws from `Random.counter(seed, 5, k)`,
 * each 32-bit output giving two 16-bit uniforms; an entry is kept (multiplier 1 / (1 − rate))
 * when its uniform is below round((1 − rate) · 65536), else 0. Deterministic in `seed`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { fastDropoutMasks } from "@diffprobe/core";
 *
 * const [mask] = fastDropoutMasks([{ shape: [1, 4, 1, 250] }], 0.5, 7);
 * const kept = mask.filter((m) => m === 2).length;
 * assert.equal(mask.length, 1000);
 * assert.ok(kept > 400 && kept < 600);
 * assert.deepEqual(fastDropoutMasks([{ shape: [1, 4, 1, 250] }], 0.5, 7)[0], mask);
 * ```
 */
export function fastDropoutMasks(
  shapes: readonly { shape: readonly number[] }[],
  rate: number,
  seed: number,
): Float32Array[] {
  const keep = 1 - rate;
  const threshold = Math.round(keep * 65536);
  const scale = Math.fround(1 / keep);
  return shapes.map(({ shape }, k) => {
    const n = shape.reduce((a, b) => a * b, 1);
    const out = new Float32Array(n);
    const random = Random.counter(seed, 5, k);
    for (let i = 0; i < n; i += 2) {
      const bits = random.uint32();
      if ((bits & 0xffff) < threshold) out[i] = scale;
      if (i + 1 < n && bits >>> 16 < threshold) out[i + 1] = scale;
    }
    return out;
  });
}

/**
 * The dropout multipliers `tf.dropout(h, rate, undefined, seed + k)` draws in resnet `k` of
 * `UNet.forward` (`floor(u + keep) / keep`), as the NCHW arrays the training graph takes: the
 * TensorFlow.js engine's masks, for comparing the engines (slower than
 * {@linkcode fastDropoutMasks}).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { tfjsDropoutMasks } from "@diffprobe/core";
 *
 * const [mask] = tfjsDropoutMasks([{ shape: [2, 3, 1, 5] }], 0.1, 42);
 * assert.ok(mask.every((m) => m === 0 || Math.abs(m - 1 / 0.9) < 1e-6));
 * ```
 */
export function tfjsDropoutMasks(
  shapes: readonly { shape: readonly number[] }[],
  rate: number,
  seed: number,
): Float32Array[] {
  return shapes.map(({ shape: [n, c, h, w] }, k) => {
    const mask = tf.tidy(() => {
      const keep = 1 - rate;
      const u = tf.randomUniform([n, h, w, c], 0, 1, "float32", seed + k);
      return tf.floor(tf.add(u, keep)).div(keep).transpose([0, 3, 1, 2]);
    });
    // Read outside tf.tidy, which would walk a returned array element by element.
    const values = Float32Array.from(mask.dataSync());
    mask.dispose();
    return values;
  });
}

function hyperOf(o: {
  beta1?: number;
  beta2?: number;
  epsilon?: number;
  weightDecay?: number;
}): AdamWHyper {
  return {
    beta1: o.beta1 ?? 0.9,
    beta2: o.beta2 ?? 0.999,
    epsilon: o.epsilon ?? 1e-8,
    weightDecay: o.weightDecay ?? 0.01,
  };
}

/**
 * Builds the training graph of `backbone` for `options.batch` samples and opens its session;
 * the weights are copied from the backbone (which is left as it is). Rejects when
 * onnxruntime-node cannot be loaded.
 *
 * @example Runs one step (see the module example: onnxruntime allows one runtime per test
 * process, so only that example opens a session)
 * ```ts ignore
 * import assert from "node:assert/strict";
 * import { createBackbone, createOnnxUNetTrainer, onnxRuntimeAvailable } from "@diffprobe/core";
 *
 * const unet = createBackbone({ _class_name: "UNet2DModel", block_out_channels: [8, 8],
 *   down_block_types: ["DownBlock2D", "DownBlock2D"], up_block_types: ["UpBlock2D", "UpBlock2D"],
 *   norm_num_groups: 4, sample_size: 8 });
 * if (await onnxRuntimeAvailable()) {
 *   const trainer = await createOnnxUNetTrainer(unet, { batch: 1, threads: 1, ema: true });
 *   const x0 = new Float32Array(8 * 8 * 3), noise = new Float32Array(8 * 8 * 3).fill(1);
 *   const before = trainer.weights().get("conv_out.bias")!.slice();
 *   await trainer.step({ x0, noise, t: [999], emaDecay: 0.5 }, 1e-2);
 *   assert.notDeepEqual(trainer.weights().get("conv_out.bias"), before);
 *   trainer.dispose();
 * }
 * unet.dispose();
 * ```
 */
export async function createOnnxUNetTrainer(
  backbone: Backbone,
  options: OnnxUNetTrainerOptions,
): Promise<OnnxUNetTrainer> {
  // 1. Check the sizes before any graph is built.
  const unet: LowerableBackbone = asLowerable(backbone);
  const { batch, micro } = checkBatchSizes(options);
  const hyper = hyperOf(options);
  const rate = options.dropout ?? unet.resolved.dropout;
  const graphOptions = {
    adamw: hyper,
    clipNorm: options.gradClip ?? 1,
    dropout: rate,
    ema: options.ema,
  };
  const sessionOptions: TrainSessionOptions = { threads: options.threads, device: options.device };
  // 2. One fused graph per step, or (micro-batches) a gradient-accumulating graph per chunk size
  // and one update graph.
  const chunks = chunksOf(batch, micro);
  const stepGraphs: StepGraphs = new Map();
  const opened = await stepGraphOf(
    { unet, chunks, graphOptions, sessionOptions, stepGraphs },
    chunks[0][1],
  );
  const first = opened.graph;
  // Later sessions take the first one's device ("auto" falls back once, not per session).
  if (options.device) {
    sessionOptions.device = { ...options.device, device: opened.session.device, auto: false };
  }
  const names = first.weights;
  const sizes = names.map((n) => unet.weights.get(n)!.size);
  const total = sizes.reduce((a, b) => a + b, 0);
  let update: UNetTrainerCore["update"];
  if (chunks.length > 1) {
    const built = buildUpdateGraph(total, graphOptions);
    update = {
      session: await TrainSession.create(built.model, built.shapes, sessionOptions),
      outputs: built.outputs,
    };
  }
  // 3. The weights, the AdamW moments and the spare arrays a step writes into.
  const params = join(
    new Map(names.map((n) => [n, unet.weights.get(n)!.dataSync() as Float32Array])),
    names,
    sizes,
  );
  const inputShape = first.shapes.get("xt")!;
  const core: UNetTrainerCore = {
    unet,
    batch,
    rate,
    hyper,
    ema: options.ema === true,
    chunks,
    graphOptions,
    sessionOptions,
    stepGraphs,
    update,
    names,
    sizes,
    dropoutShapes: first.dropout.map((d) => ({
      name: d.name,
      shape: [batch, ...d.shape.slice(1)],
    })),
    inputShape,
    per: inputShape.slice(1).reduce((a, b) => a * b, 1),
    params,
    m: new Float32Array(total),
    v: new Float32Array(total),
    emaWeights: options.ema ? params.slice() : new Float32Array(0),
    spare: spareArrays(total, options.ema === true, chunks.length > 1),
    gradAcc: new Float32Array(chunks.length > 1 ? total : 0),
    t: 0,
  };
  return unetTrainerOf(core, opened.session.device);
}

/** The batch and micro-batch sizes of the options; throws naming a bad one. */
function checkBatchSizes(options: OnnxUNetTrainerOptions): { batch: number; micro: number } {
  const batch = options.batch;
  if (!Number.isInteger(batch) || batch < 1) {
    throw new RangeError(`Batch size must be a positive integer, got ${batch}`);
  }
  const micro = options.microBatch ?? batch;
  if (!Number.isInteger(micro) || micro < 1 || micro > batch) {
    throw new RangeError(`Micro-batch size must be an integer in [1, ${batch}], got ${micro}`);
  }
  return { batch, micro };
}

/** The micro-batches `[from, size]` of a batch. */
function chunksOf(batch: number, micro: number): [number, number][] {
  const chunks: [number, number][] = [];
  for (let from = 0; from < batch; from += micro) {
    chunks.push([from, Math.min(micro, batch - from)]);
  }
  return chunks;
}

/** The arrays a UNet trainer's step writes its new state into (empty when unused). */
function spareArrays(
  total: number,
  ema: boolean,
  accumulate: boolean,
): UNetTrainerCore["spare"] {
  return {
    params: new Float32Array(total),
    m: new Float32Array(total),
    v: new Float32Array(total),
    ema: new Float32Array(ema ? total : 0),
    grad: new Float32Array(accumulate ? total : 0),
  };
}

/** The step graphs (and their sessions) of a UNet trainer, by micro-batch size. */
type StepGraphs = Map<number, Promise<{ session: TrainSession; graph: UNetTrainGraph }>>;

/** What a UNet trainer needs to open a step graph for another micro-batch size. */
interface StepGraphSource {
  readonly unet: LowerableBackbone;
  readonly chunks: readonly (readonly [number, number])[];
  readonly graphOptions: Omit<Parameters<typeof buildUNetTrainGraph>[2], "accumulate">;
  readonly sessionOptions: TrainSessionOptions;
  readonly stepGraphs: StepGraphs;
}

/** The state of one {@linkcode createOnnxUNetTrainer} trainer, read and updated by its steps. */
interface UNetTrainerCore extends StepGraphSource {
  readonly batch: number;
  readonly rate: number;
  readonly hyper: AdamWHyper;
  readonly ema: boolean;
  readonly update: { session: TrainSession; outputs: string[] } | undefined;
  readonly names: readonly string[];
  readonly sizes: readonly number[];
  readonly dropoutShapes: { name: string; shape: number[] }[];
  /** One step graph's `xt` shape (its first entry is the micro-batch size). */
  readonly inputShape: readonly number[];
  /** Values per sample. */
  readonly per: number;
  params: Float32Array;
  m: Float32Array;
  v: Float32Array;
  emaWeights: Float32Array;
  /** A step writes the new state into these, then the two sets swap. */
  spare: Record<"params" | "m" | "v" | "ema" | "grad", Float32Array>;
  gradAcc: Float32Array;
  /** Steps taken. */
  t: number;
}

/** The step graph for `size` samples, built and opened on first use. */
function stepGraphOf(
  s: StepGraphSource,
  size: number,
): Promise<{ session: TrainSession; graph: UNetTrainGraph }> {
  let entry = s.stepGraphs.get(size);
  if (!entry) {
    entry = (async () => {
      const graph = buildUNetTrainGraph(s.unet, size, {
        ...s.graphOptions,
        accumulate: s.chunks.length > 1,
      });
      const session = await TrainSession.create(graph.model, graph.shapes, s.sessionOptions);
      graph.model = new Uint8Array(0);
      return { session, graph };
    })();
    s.stepGraphs.set(size, entry);
  }
  return entry;
}

/** The public face of a trainer's state. */
function unetTrainerOf(s: UNetTrainerCore, device: ResolvedDevice): OnnxUNetTrainer {
  const { names, sizes } = s;
  return {
    names,
    device,
    get iterations() {
      return s.t;
    },
    step: (input, lr) => unetTrainStep(s, input, lr),
    dropoutShapes: s.dropoutShapes,
    weights: () => split(s.params, names, sizes),
    setWeights(next) {
      s.params = join(next, names, sizes);
    },
    emaWeights: () => split(s.emaWeights, names, sizes),
    setEmaWeights(next) {
      if (!s.ema) throw new Error("This trainer keeps no moving average (option ema)");
      s.emaWeights = join(next, names, sizes);
    },
    state: () => ({ iterations: s.t, m: split(s.m, names, sizes), v: split(s.v, names, sizes) }),
    loadState(state) {
      if (!Number.isInteger(state.iterations) || state.iterations < 0) {
        throw new RangeError(
          `Optimizer step count must be an integer >= 0, got ${state.iterations}`,
        );
      }
      const nextM = join(state.m, names, sizes);
      s.v = join(state.v, names, sizes);
      s.m = nextM;
      s.t = state.iterations;
    },
    dispose() {
      for (const entry of s.stepGraphs.values()) entry.then((e) => e.session.release(), () => {});
      s.stepGraphs.clear();
      s.update?.session.release();
    },
  };
}

/** Throws when a step's input does not fit the trainer, before any work. */
function checkStepInput(s: UNetTrainerCore, input: UNetStepInput): void {
  const sample = s.per * s.batch;
  if (input.x0.length !== sample || input.noise.length !== sample) {
    throw new RangeError(
      `A step takes ${sample} values of x0 and noise ([${s.batch}, ${
        s.inputShape.slice(1)
      }]), got ${input.x0.length} and ${input.noise.length}`,
    );
  }
  if (input.t.length !== s.batch) {
    throw new RangeError(`Got ${input.t.length} timesteps for a batch of ${s.batch}`);
  }
  if (s.ema) {
    const d = input.emaDecay;
    if (d === undefined || !(d >= 0 && d <= 1)) {
      throw new RangeError(`EMA decay must be a number in [0, 1], got ${d}`);
    }
  }
}

/** x_t = sqrt(ᾱ_t) · x0 + sqrt(1 − ᾱ_t) · noise, in float32 as the schedule's addNoise. */
function noisySamples(s: UNetTrainerCore, input: UNetStepInput): Float32Array {
  const alphas = s.unet.schedule.alphasCumprod;
  const per = s.per;
  const xt = new Float32Array(per * s.batch);
  for (let i = 0; i < s.batch; i++) {
    const ab = alphas[input.t[i]];
    const a = Math.fround(Math.sqrt(ab)), b = Math.fround(Math.sqrt(Math.fround(1 - ab)));
    for (let j = i * per; j < (i + 1) * per; j++) {
      xt[j] = Math.fround(Math.fround(input.x0[j] * a) + Math.fround(input.noise[j] * b));
    }
  }
  return xt;
}

/** One training step: noisy inputs, forward/backward per micro-batch, the update, the swap. */
async function unetTrainStep(
  s: UNetTrainerCore,
  input: UNetStepInput,
  lr: number,
): Promise<{ loss: number; gradNorm: number }> {
  // 1. Check the input, then build the graph inputs shared by the micro-batches.
  checkStepInput(s, input);
  const xt = noisySamples(s, input);
  const temb = timeEmbeddingInput(s.unet, input.t);
  const masks = Array.isArray(input.dropout)
    ? input.dropout
    : s.dropoutShapes.length > 0
    ? fastDropoutMasks(s.dropoutShapes, s.rate, input.dropout ?? 0)
    : [];
  // 2. The optimizer state in, and the spare arrays the new state goes to.
  const state: Record<string, Float32Array> = {
    params: s.params,
    m: s.m,
    v: s.v,
    adamw: adamwScalars(s.t + 1, lr, s.hyper),
  };
  if (s.ema) {
    state.ema = s.emaWeights;
    state.ema_decay = new Float32Array([input.emaDecay!, 1 - input.emaDecay!]);
  }
  const into: Record<string, Float32Array> = {
    "params:new": s.spare.params,
    "m:new": s.spare.m,
    "v:new": s.spare.v,
  };
  if (s.ema) into["ema:new"] = s.spare.ema;
  // 3. Forward and backward per micro-batch (with one chunk, also the update).
  let { loss, gradNorm } = await runChunks(s, { xt, noise: input.noise, temb, masks }, state, into);
  // 4. With micro-batches: one update from the summed gradients.
  if (s.update) {
    const out = await s.update.session.run({ ...state, grad: s.gradAcc }, s.update.outputs, into);
    gradNorm = out.grad_norm[0];
  }
  // 5. The new state becomes current.
  s.t++;
  [s.params, s.spare.params] = [s.spare.params, s.params];
  [s.m, s.spare.m] = [s.spare.m, s.m];
  [s.v, s.spare.v] = [s.spare.v, s.v];
  if (s.ema) [s.emaWeights, s.spare.ema] = [s.spare.ema, s.emaWeights];
  return { loss, gradNorm };
}

/**
 * Runs the step graph on each micro-batch: the fused step (one chunk) writes the new state into
 * `into`; otherwise each chunk adds its weighted gradient to `s.gradAcc`.
 */
async function runChunks(
  s: UNetTrainerCore,
  whole: { xt: Float32Array; noise: Float32Array; temb: Float32Array; masks: Float32Array[] },
  state: Record<string, Float32Array>,
  into: Record<string, Float32Array>,
): Promise<{ loss: number; gradNorm: number }> {
  const { per, batch } = s;
  const tembWidth = whole.temb.length / batch;
  let loss = 0, gradNorm = 0;
  if (s.chunks.length > 1) s.gradAcc.fill(0);
  for (const [from, size] of s.chunks) {
    const { session, graph } = await stepGraphOf(s, size);
    const feeds: Record<string, Float32Array> = {
      xt: whole.xt.subarray(from * per, (from + size) * per),
      noise: whole.noise.subarray(from * per, (from + size) * per),
      temb: whole.temb.subarray(from * tembWidth, (from + size) * tembWidth),
    };
    graph.dropout.forEach((d, k) => {
      const n = d.shape.slice(1).reduce((a, b) => a * b, 1);
      feeds[d.name] = whole.masks[k].subarray(from * n, (from + size) * n);
    });
    if (s.chunks.length === 1) {
      const out = await session.run({ ...feeds, ...state }, graph.outputs, into);
      loss = out.loss[0];
      gradNorm = out.grad_norm[0];
    } else {
      // The micro-batch's share, as the TensorFlow.js engine weights it (float32).
      const weight = Math.fround(size / batch);
      feeds.params = s.params;
      feeds.grad_acc = s.gradAcc;
      feeds.weight = new Float32Array([weight]);
      const out = await session.run(feeds, graph.outputs, { "grad_acc:new": s.spare.grad });
      [s.gradAcc, s.spare.grad] = [s.spare.grad, s.gradAcc];
      loss = Math.fround(loss + Math.fround(out.loss[0] * weight));
    }
  }
  return { loss, gradNorm };
}

/** What {@linkcode headTrainSpec} reads from a head (any `Head` of `@diffprobe/core`). */
export interface HeadLike {
  /** `"LinearHead"`, `"MLPHead"` or `"AttentionHead"`. */
  readonly className: string;
  /** One sample's feature shape. */
  readonly inputShape: readonly number[];
  /** Classes or regressed values. */
  readonly outputs: number;
  /** The task. */
  readonly task: "classification" | "regression";
  /** The resolved options (hidden, activation, dim, heads, layers). */
  readonly options: object;
  /** The trainable weights in order. */
  readonly weights: ReadonlyMap<string, { readonly shape: readonly number[] }>;
}

/**
 * The training-graph description of a head: its class, options and weights, with AdamW's
 * weight decay on the weight matrices (rank 2) except the positional embedding, as the heads
 * declare them. Throws a `RangeError` for a head class without a training graph.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { AttentionHead, headTrainSpec } from "@diffprobe/core";
 *
 * const head = new AttentionHead({ inputShape: [2, 2, 4], outputs: 3, dim: 8, heads: 2, layers: 1 });
 * const spec = headTrainSpec(head);
 * assert.equal(spec.kind, "AttentionHead");
 * assert.equal(spec.params.find((p) => p.name === "pos_embed")!.decay, false);
 * assert.equal(spec.params.find((p) => p.name === "head.weight")!.decay, true);
 * head.dispose();
 * ```
 */
export function headTrainSpec(head: HeadLike): HeadGraphSpec {
  const kinds = ["LinearHead", "MLPHead", "AttentionHead"];
  if (!kinds.includes(head.className)) {
    throw new RangeError(
      `Head class must be one of ${
        kinds.join(", ")
      } to train on onnxruntime, got ${head.className}`,
    );
  }
  const o = head.options as Partial<HeadGraphSpec>;
  return {
    kind: head.className as HeadGraphSpec["kind"],
    inputShape: [...head.inputShape],
    outputs: head.outputs,
    task: head.task,
    params: [...head.weights].map(([name, w]) => ({
      name,
      shape: [...w.shape],
      decay: w.shape.length === 2 && name !== "pos_embed",
    })),
    hidden: o.hidden,
    activation: o.activation,
    dim: o.dim,
    heads: o.heads,
    layers: o.layers,
  };
}

/** Options of {@linkcode createOnnxHeadTrainer}. */
export interface OnnxHeadTrainerOptions {
  /** AdamW's first-moment decay (default 0.9). */
  beta1?: number;
  /** AdamW's second-moment decay (default 0.999). */
  beta2?: number;
  /** AdamW's epsilon (default 1e-8). */
  epsilon?: number;
  /** Decoupled weight decay on the parameters marked `decay` (default 0.01). */
  weightDecay?: number;
  /** Intra-op threads (default `navigator.hardwareConcurrency`). */
  threads?: number;
  /** Where the sessions run (default: the CPU); see {@linkcode chooseTrainPlacement}. */
  device?: DeviceChoice;
}

/** A head's training step on onnxruntime (one session per batch size met). */
export interface OnnxHeadTrainer {
  /** Steps taken. */
  readonly iterations: number;
  /** The device the sessions run on (before the first step: the one asked for). */
  readonly device: ResolvedDevice;
  /**
   * One AdamW step on standardised features `x` (`[B, ...inputShape]`) and targets `y`
   * (`[B, outputs]`: one-hot rows for classification); resolves to the batch's mean loss.
   */
  step(x: Float32Array, y: Float32Array, lr: number): Promise<number>;
  /** The current weights by name (the engine's arrays). */
  weights(): Map<string, Float32Array>;
  /** Releases the sessions. */
  dispose(): void;
}

/**
 * Creates a head trainer for `spec` (see {@linkcode headTrainSpec}) starting from `initial`
 * weights (copied); sessions open on the first step of each batch size.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { createOnnxHeadTrainer, headTrainSpec, LinearHead } from "@diffprobe/core";
 *
 * const head = new LinearHead({ inputShape: [2], outputs: 2 });
 * const initial = new Map([...head.weights].map(([n, v]) => [n, v.dataSync()]));
 * const trainer = createOnnxHeadTrainer(headTrainSpec(head), initial, { threads: 1 });
 * assert.equal(trainer.iterations, 0); // a session opens on the first step
 * assert.deepEqual(trainer.weights().get("linear.bias"), head.weights.get("linear.bias")!.dataSync());
 * trainer.dispose();
 * head.dispose();
 * ```
 */
export function createOnnxHeadTrainer(
  spec: HeadGraphSpec,
  initial: ReadonlyMap<string, ArrayLike<number>>,
  options: OnnxHeadTrainerOptions = {},
): OnnxHeadTrainer {
  // Just over 80 lines, kept whole on purpose: one small closure over the head's flat state
  // (weights, moments, spares, sessions by batch size); splitting it would only thread that
  // state through helpers, as createOnnxUNetTrainer must for its far larger step.
  const hyper = hyperOf(options);
  const names = spec.params.map((p) => p.name);
  const features = spec.inputShape.reduce((a, b) => a * b, 1);
  const sizes = spec.params.map((p) => p.shape.reduce((a, b) => a * b, 1));
  let params: Float32Array = join(initial, names, sizes);
  let m: Float32Array = new Float32Array(params.length);
  let v: Float32Array = new Float32Array(params.length);
  const spare: Record<"params" | "m" | "v", Float32Array> = {
    params: new Float32Array(params.length),
    m: new Float32Array(params.length),
    v: new Float32Array(params.length),
  };
  let t = 0;
  let choice = options.device;
  let device: ResolvedDevice = choice?.device ?? "cpu";
  const sessions = new Map<number, Promise<{ session: TrainSession; outputs: string[] }>>();
  const sessionFor = (batch: number) => {
    let s = sessions.get(batch);
    if (!s) {
      s = (async () => {
        const graph = buildHeadTrainGraph(spec, batch, { adamw: hyper });
        const session = await TrainSession.create(graph.model, graph.shapes, {
          threads: options.threads,
          device: choice,
        });
        // Later sessions take this one's device ("auto" falls back once, not per session).
        device = session.device;
        if (choice) choice = { ...choice, device, auto: false };
        return { session, outputs: graph.outputs };
      })();
      sessions.set(batch, s);
    }
    return s;
  };
  return {
    get iterations() {
      return t;
    },
    get device() {
      return device;
    },
    async step(x, y, lr) {
      const batch = x.length / features;
      if (!Number.isInteger(batch) || batch < 1 || y.length !== batch * spec.outputs) {
        throw new RangeError(
          `A step takes [B, ${features}] features and [B, ${spec.outputs}] targets, got ` +
            `${x.length} and ${y.length} values`,
        );
      }
      const { session, outputs } = await sessionFor(batch);
      const feeds: Record<string, Float32Array> = {
        x,
        y,
        params,
        m,
        v,
        adamw: adamwScalars(t + 1, lr, hyper),
      };
      const out = await session.run(feeds, outputs, {
        "params:new": spare.params,
        "m:new": spare.m,
        "v:new": spare.v,
      });
      t++;
      [params, spare.params] = [spare.params, params];
      [m, spare.m] = [spare.m, m];
      [v, spare.v] = [spare.v, v];
      return out.loss[0];
    },
    weights: () => split(params, names, sizes),
    dispose() {
      for (const s of sessions.values()) s.then((e) => e.session.release(), () => {});
      sessions.clear();
    },
  };
}
