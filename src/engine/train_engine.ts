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
 * import { createBackbone } from "../models/backbone.ts";
 * import { createOnnxUNetTrainer } from "./train_engine.ts";
 * import { onnxRuntimeAvailable } from "./onnx_engine.ts";
 *
 * const unet = createBackbone({ _class_name: "DiffprobeUNet1DModel", in_channels: 1,
 *   out_channels: 1, sample_size: 16, block_out_channels: [8, 8], layers_per_block: 1,
 *   down_block_types: ["DownBlock1D", "DownBlock1D"], up_block_types: ["UpBlock1D", "UpBlock1D"],
 *   norm_num_groups: 4, dropout: 0 });
 * if (await onnxRuntimeAvailable()) {
 *   const trainer = await createOnnxUNetTrainer(unet, { batch: 2, threads: 1 });
 *   const x0 = new Float32Array(32).fill(0.5), noise = new Float32Array(32).fill(0.1);
 *   const { loss } = await trainer.step({ x0, noise, t: [10, 500] }, 1e-3);
 *   console.log(Number.isFinite(loss), trainer.iterations); // true 1
 *   trainer.dispose();
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
import { buildUNetTrainGraph } from "./_train_graph_unet.ts";
import { buildHeadTrainGraph, type HeadGraphSpec } from "./_train_graph_heads.ts";
import { TrainSession } from "./_train_session.ts";

export type { HeadGraphSpec } from "./_train_graph_heads.ts";

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
   * Dropout: the seed `UNet.forward` takes in training mode (resnet k draws with seed + k, as
   * `tf.dropout` does), or the multipliers themselves (one `[N, C, H, W]` array per resnet).
   * Default seed 0.
   */
  dropout?: number | Float32Array[];
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
  /** Steps taken. */
  readonly iterations: number;
  /** Runs one step at learning rate `lr`; resolves to the loss and the gradient norm. */
  step(input: UNetStepInput, lr: number): Promise<{ loss: number; gradNorm: number }>;
  /** The current weights by name (views of the engine's array: copy before changing). */
  weights(): Map<string, Float32Array>;
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
 * The dropout multipliers `tf.dropout(h, rate, undefined, seed + k)` draws in resnet `k` of
 * `UNet.forward` (`floor(u + keep) / keep`), as the NCHW arrays the training graph takes.
 */
export function dropoutMasks(
  shapes: readonly { shape: readonly number[] }[],
  rate: number,
  seed: number,
): Float32Array[] {
  return shapes.map(({ shape: [n, c, h, w] }, k) =>
    tf.tidy(() => {
      const keep = 1 - rate;
      const u = tf.randomUniform([n, h, w, c], 0, 1, "float32", seed + k);
      const mask = tf.floor(tf.add(u, keep)).div(keep).transpose([0, 3, 1, 2]);
      return Float32Array.from(mask.dataSync());
    })
  );
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
 * the weights are copied from the backbone (which is left as it is).
 */
export async function createOnnxUNetTrainer(
  backbone: Backbone,
  options: OnnxUNetTrainerOptions,
): Promise<OnnxUNetTrainer> {
  const unet: LowerableBackbone = asLowerable(backbone);
  const batch = options.batch;
  if (!Number.isInteger(batch) || batch < 1) {
    throw new RangeError(`Batch size must be a positive integer, got ${batch}`);
  }
  const hyper = hyperOf(options);
  const rate = options.dropout ?? unet.resolved.dropout;
  const graph = buildUNetTrainGraph(unet, batch, {
    adamw: hyper,
    clipNorm: options.gradClip ?? 1,
    dropout: rate,
  });
  const session = await TrainSession.create(graph.model, graph.shapes, {
    threads: options.threads,
  });
  graph.model = new Uint8Array(0);
  const names = graph.weights;
  const sizes = names.map((n) => unet.weights.get(n)!.size);
  const total = sizes.reduce((a, b) => a + b, 0);
  let params: Float32Array = new Float32Array(total);
  {
    let offset = 0;
    names.forEach((n, i) => {
      params.set(unet.weights.get(n)!.dataSync(), offset);
      offset += sizes[i];
    });
  }
  let m: Float32Array = new Float32Array(total);
  let v: Float32Array = new Float32Array(total);
  let t = 0;
  const sample = graph.shapes.get("xt")!.reduce((a, b) => a * b, 1);
  const alphas = unet.schedule.alphasCumprod;

  const step = async (input: UNetStepInput, lr: number) => {
    if (input.x0.length !== sample || input.noise.length !== sample) {
      throw new RangeError(
        `A step takes ${sample} values of x0 and noise ([${graph.shapes.get("xt")}]), got ` +
          `${input.x0.length} and ${input.noise.length}`,
      );
    }
    if (input.t.length !== batch) {
      throw new RangeError(`Got ${input.t.length} timesteps for a batch of ${batch}`);
    }
    // x_t = sqrt(ᾱ_t) · x0 + sqrt(1 − ᾱ_t) · noise, in float32 as the schedule's addNoise.
    const xt = new Float32Array(sample);
    const per = sample / batch;
    for (let i = 0; i < batch; i++) {
      const ab = alphas[input.t[i]];
      const a = Math.fround(Math.sqrt(ab)), b = Math.fround(Math.sqrt(Math.fround(1 - ab)));
      for (let j = i * per; j < (i + 1) * per; j++) {
        xt[j] = Math.fround(Math.fround(input.x0[j] * a) + Math.fround(input.noise[j] * b));
      }
    }
    const feeds: Record<string, Float32Array> = {
      xt,
      noise: input.noise,
      temb: timeEmbeddingInput(unet, input.t),
      adamw: adamwScalars(t + 1, lr, hyper),
    };
    const masks = Array.isArray(input.dropout)
      ? input.dropout
      : graph.dropout.length > 0
      ? dropoutMasks(graph.dropout, rate, input.dropout ?? 0)
      : [];
    graph.dropout.forEach((d, k) => (feeds[d.name] = masks[k]));
    feeds.params = params;
    feeds.m = m;
    feeds.v = v;
    const out = await session.run(feeds, graph.outputs);
    t++;
    params = out["params:new"];
    m = out["m:new"];
    v = out["v:new"];
    return { loss: out.loss[0], gradNorm: out.grad_norm[0] };
  };

  return {
    names,
    get iterations() {
      return t;
    },
    step,
    weights: () => split(params, names, sizes),
    setWeights(next) {
      params = join(next, names, sizes);
    },
    state: () => ({ iterations: t, m: split(m, names, sizes), v: split(v, names, sizes) }),
    loadState(state) {
      if (!Number.isInteger(state.iterations) || state.iterations < 0) {
        throw new RangeError(
          `Optimizer step count must be an integer >= 0, got ${state.iterations}`,
        );
      }
      const nextM = join(state.m, names, sizes);
      v = join(state.v, names, sizes);
      m = nextM;
      t = state.iterations;
    },
    dispose: () => session.release(),
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
}

/** A head's training step on onnxruntime (one session per batch size met). */
export interface OnnxHeadTrainer {
  /** Steps taken. */
  readonly iterations: number;
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

/** Creates a head trainer starting from `initial` weights (copied). */
export function createOnnxHeadTrainer(
  spec: HeadGraphSpec,
  initial: ReadonlyMap<string, ArrayLike<number>>,
  options: OnnxHeadTrainerOptions = {},
): OnnxHeadTrainer {
  const hyper = hyperOf(options);
  const names = spec.params.map((p) => p.name);
  const features = spec.inputShape.reduce((a, b) => a * b, 1);
  const sizes = spec.params.map((p) => p.shape.reduce((a, b) => a * b, 1));
  let params: Float32Array = join(initial, names, sizes);
  let m: Float32Array = new Float32Array(params.length);
  let v: Float32Array = new Float32Array(params.length);
  let t = 0;
  const sessions = new Map<number, Promise<{ session: TrainSession; outputs: string[] }>>();
  const sessionFor = (batch: number) => {
    let s = sessions.get(batch);
    if (!s) {
      s = (async () => {
        const graph = buildHeadTrainGraph(spec, batch, { adamw: hyper });
        const session = await TrainSession.create(graph.model, graph.shapes, {
          threads: options.threads,
        });
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
      const out = await session.run(feeds, outputs);
      t++;
      params = out["params:new"];
      m = out["m:new"];
      v = out["v:new"];
      return out.loss[0];
    },
    weights: () => split(params, names, sizes),
    dispose() {
      for (const s of sessions.values()) s.then((e) => e.session.release(), () => {});
      sessions.clear();
    },
  };
}
