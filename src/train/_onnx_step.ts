/**
 * The diffusion training step on onnxruntime: the same {@linkcode TrainStep} contract as the tfjs
 * step, run by one ONNX graph per step (`createOnnxUNetTrainer`: forward in training mode, MSE,
 * backward, clipping, AdamW and the EMA). The engine holds the weights, moments and EMA as
 * float32 arrays; {@linkcode OnnxStep.sync} copies them back into the run's tfjs variables and
 * optimiser (before a checkpoint and at the end), and a resumed run's state goes in at the start,
 * so checkpoints and exact resume work as on the tfjs engine. The step's draws are the same;
 * the dropout masks come from the step's dropout seed through `fastDropoutMasks` (the tfjs
 * engine draws its own with `tf.dropout`). Internal to `src/train/`.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { createOnnxUNetTrainer, type OnnxUNetTrainer } from "../engine/train_engine.ts";
import type { DeviceChoice } from "../engine/device.ts";
import type { ResolvedDevice } from "../base/device.ts";
import type { Draws } from "./_draws.ts";
import { emaDecayAt, type TfjsStepContext, type TrainStep } from "./_step.ts";

/** The onnx step and how to bring its state back into the run's tensors. */
export interface OnnxStep {
  /** Runs one step. */
  step: TrainStep;
  /** The device the sessions run on. */
  device: ResolvedDevice;
  /** Writes the engine's weights, EMA and optimiser state into the run's variables. */
  sync(): void;
  /** Releases the sessions. */
  dispose(): void;
}

/** Options the onnx step needs besides the tfjs step's context. */
export interface OnnxStepOptions {
  /** Samples per step. */
  batchSize: number;
  /** Samples per forward/backward pass. */
  microBatch: number;
  /** Intra-op threads (default: all cores). */
  threads?: number;
  /** Where the sessions run (default: the CPU). */
  device?: DeviceChoice;
}

/** Builds the onnx step over the run's context, starting from its current (resumed) state. */
export async function onnxTrainStep(
  context: TfjsStepContext,
  options: OnnxStepOptions,
): Promise<OnnxStep> {
  const { unet, data, variables, emaVariables, optimizer } = context;
  const trainer: OnnxUNetTrainer = await createOnnxUNetTrainer(unet, {
    batch: options.batchSize,
    microBatch: options.microBatch,
    beta1: optimizer.beta1,
    beta2: optimizer.beta2,
    epsilon: optimizer.epsilon,
    weightDecay: optimizer.weightDecay,
    gradClip: context.gradClip,
    ema: true,
    threads: options.threads,
    device: options.device,
  });
  const names = trainer.names;
  const read = (list: readonly tf.Tensor[]) =>
    new Map(names.map((n, i) => [n, list[i].dataSync() as Float32Array]));
  trainer.setWeights(read(variables));
  trainer.setEmaWeights(read(emaVariables));
  const state = optimizer.state();
  trainer.loadState({ iterations: state.iterations, m: read(state.m), v: read(state.v) });

  const values = data.dataSync() as Float32Array;
  const gather = (draws: Draws): Float32Array => gatherSamples(values, data.shape, draws);

  return {
    device: trainer.device,
    step: async (draws, learningRate) => {
      const emaDecay = emaDecayAt(trainer.iterations + 1, context.emaDecay, context.emaWarmup);
      return await trainer.step({
        x0: gather(draws),
        noise: draws.noise,
        t: draws.timesteps,
        dropout: draws.dropoutSeed,
        emaDecay,
      }, learningRate);
    },
    sync() {
      const weights = trainer.weights(), ema = trainer.emaWeights(), s = trainer.state();
      tf.tidy(() => {
        names.forEach((n, i) => {
          variables[i].assign(tf.tensor(weights.get(n)!, variables[i].shape));
          emaVariables[i].assign(tf.tensor(ema.get(n)!, emaVariables[i].shape));
        });
        optimizer.loadState({
          iterations: s.iterations,
          m: names.map((n, i) => tf.tensor(s.m.get(n)!, variables[i].shape)),
          v: names.map((n, i) => tf.tensor(s.v.get(n)!, variables[i].shape)),
        });
      });
    },
    dispose: () => trainer.dispose(),
  };
}

/**
 * The drawn samples of `values` (shape `shape`, row-major) gathered into one batch, each flipped
 * when drawn so: a flip reverses the columns of every row.
 */
function gatherSamples(
  values: Float32Array,
  shape: readonly number[],
  draws: Draws,
): Float32Array {
  const sampleShape = shape.slice(1);
  const per = sampleShape.reduce((a, b) => a * b, 1);
  // Rows of a sample and the values per column.
  const channels = sampleShape[sampleShape.length - 1];
  const width = sampleShape[sampleShape.length - 2];
  const rows = per / (width * channels);
  const batch = draws.indices.length;
  const x0 = new Float32Array(batch * per);
  for (let i = 0; i < batch; i++) {
    const src = values.subarray(draws.indices[i] * per, (draws.indices[i] + 1) * per);
    if (!draws.flips?.[i]) {
      x0.set(src, i * per);
      continue;
    }
    for (let r = 0; r < rows; r++) {
      for (let x = 0; x < width; x++) {
        const from = (r * width + x) * channels,
          to = i * per + (r * width + width - 1 - x) * channels;
        for (let c = 0; c < channels; c++) x0[to + c] = src[from + c];
      }
    }
  }
  return x0;
}
