/**
 * One optimiser step of diffusion training, as a replaceable strategy: {@linkcode TrainStep}
 * takes the step's draws and learning rate and returns its loss and gradient norm. The tfjs
 * step ({@linkcode tfjsTrainStep}) runs forward and backward per micro-batch, sums the
 * weighted gradients, clips them by their global norm (as `torch.nn.utils.clip_grad_norm_`),
 * applies AdamW and updates the EMA of the weights. Another engine can supply its own
 * `TrainStep` with the same contract. Internal to `src/train/`.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import type { UNet } from "../models/unet.ts";
import type { AdamW } from "../optim/adamw.ts";
import type { Draws } from "./_draws.ts";

/** What one step reports. */
export interface StepResult {
  /** The batch's loss (mean squared error of the noise prediction). */
  loss: number;
  /** The global gradient norm before clipping. */
  gradNorm: number;
}

/** One optimiser step: updates the weights, the optimiser and the EMA in place. */
export type TrainStep = (draws: Draws, learningRate: number) => Promise<StepResult>;

/** What the tfjs step works on. */
export interface TfjsStepContext {
  /** The model being trained (its weights are `variables`). */
  unet: UNet;
  /** The training data `[N, ...sampleShape]`. */
  data: tf.Tensor;
  /** The trainable weights, in the optimiser's order. */
  variables: readonly tf.Variable[];
  /** The EMA of each variable. */
  emaVariables: readonly tf.Variable[];
  /** The optimiser over `variables`. */
  optimizer: AdamW;
  /** `[start, size]` of the micro-batches of a batch. */
  chunks: readonly [number, number][];
  /** Global-norm clip (0 or Infinity: none). */
  gradClip: number;
  /** Largest EMA decay. */
  emaDecay: number;
  /** Whether the EMA decay ramps up as diffusers' `EMAModel`. */
  emaWarmup: boolean;
}

/** EMA decay for the `k`-th update (1-based), diffusers' `EMAModel.get_decay`. */
export function emaDecayAt(k: number, decay: number, warmup: boolean): number {
  if (!warmup) return decay;
  const step = k - 1;
  if (step <= 0) return 0;
  return Math.min(decay, (1 + step) / (10 + step));
}

/** The tfjs training step over `context`. */
export function tfjsTrainStep(context: TfjsStepContext): TrainStep {
  return async (draws, learningRate) => {
    const { grads, loss } = accumulateGradients(context, draws);
    const norm = applyUpdate(context, grads, learningRate);
    tf.dispose(grads);
    const result = { loss: (await loss.data())[0], gradNorm: (await norm.data())[0] };
    tf.dispose([loss, norm]);
    return result;
  };
}

/** The batch's gradients and loss, summed over micro-batches weighted by their size. */
function accumulateGradients(
  context: TfjsStepContext,
  draws: Draws,
): { grads: tf.Tensor[]; loss: tf.Tensor } {
  const batchSize = draws.indices.length;
  let gradSum: tf.Tensor[] | null = null;
  let lossSum: tf.Tensor | null = null;
  context.chunks.forEach(([from, size], c) => {
    const weight = size / batchSize;
    const acc = tf.tidy(() => {
      const { value, grads } = microBatchGradients(context, draws, from, size, c);
      const g = context.variables.map((v) =>
        weight === 1 ? grads[v.name] : tf.mul(grads[v.name], weight)
      );
      const l = weight === 1 ? value : tf.mul(value, weight);
      return {
        g: gradSum ? g.map((t, i) => tf.add(gradSum![i], t)) : g,
        l: lossSum ? tf.add(lossSum, l) : l,
      };
    });
    if (gradSum) tf.dispose(gradSum);
    if (lossSum) lossSum.dispose();
    gradSum = acc.g;
    lossSum = acc.l;
  });
  return { grads: gradSum!, loss: lossSum! };
}

/** Forward and backward of micro-batch `c` (samples `from .. from + size − 1` of the batch). */
function microBatchGradients(
  { unet, data, variables }: TfjsStepContext,
  draws: Draws,
  from: number,
  size: number,
  c: number,
): { value: tf.Scalar; grads: tf.NamedTensorMap } {
  const sampleShape = data.shape.slice(1);
  const sampleSize = sampleShape.reduce((p, d) => p * d, 1);
  const shape = [size, ...sampleShape];
  let x0 = tf.gather(data, draws.indices.subarray(from, from + size));
  if (draws.flips) {
    const ones = sampleShape.map(() => 1);
    const mask = tf.tensor(draws.flips.subarray(from, from + size), [size, ...ones], "bool");
    const widthAxis = unet.kind === "unet2d" ? 2 : 1;
    x0 = tf.where(tf.broadcastTo(mask, shape), tf.reverse(x0, widthAxis), x0);
  }
  const eps = tf.tensor(draws.noise.subarray(from * sampleSize, (from + size) * sampleSize), shape);
  const tc = draws.timesteps.subarray(from, from + size);
  const xt = unet.schedule.addNoise(x0, tc, eps);
  return tf.variableGrads(() => {
    const out = unet.forward(xt, tc, {
      eps: true,
      training: true,
      dropoutSeed: (draws.dropoutSeed + c * 4096) % 0x7fffffff,
    });
    return tf.mean(tf.squaredDifference(out.eps!, eps)) as tf.Scalar;
  }, [...variables]);
}

/** Clips, applies AdamW and updates the EMA; returns the norm before clipping. */
function applyUpdate(context: TfjsStepContext, g: tf.Tensor[], learningRate: number): tf.Tensor {
  const { gradClip, optimizer, variables, emaVariables } = context;
  return tf.tidy(() => {
    const norm = tf.sqrt(tf.addN(g.map((t) => tf.sum(tf.square(t)))));
    let clipped = g;
    if (gradClip > 0 && Number.isFinite(gradClip)) {
      // torch.nn.utils.clip_grad_norm_: scale by min(1, clip / (norm + 1e-6)).
      const scale = tf.minimum(1, tf.div(gradClip, tf.add(norm, 1e-6)));
      clipped = g.map((t) => tf.mul(t, scale));
    }
    optimizer.step(clipped, learningRate);
    const d = emaDecayAt(optimizer.iterations, context.emaDecay, context.emaWarmup);
    emaVariables.forEach((e, i) => {
      e.assign(d === 0 ? variables[i] : tf.add(tf.mul(e, d), tf.mul(variables[i], 1 - d)));
    });
    return norm;
  });
}
