/**
 * A head's optimisation step on onnxruntime: the same contract as the tfjs step, run by one ONNX
 * graph per batch size (`createOnnxHeadTrainer`: forward, loss, backward and AdamW, with the
 * head's weight-decay flags). The engine holds the weights as float32 arrays; `sync` writes them
 * into the head's variables (after every epoch, before validation). Internal to `src/heads/`.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { createOnnxHeadTrainer, headTrainSpec } from "../engine/train_engine.ts";
import type { AdamW } from "../optim/adamw.ts";
import type { DeviceChoice } from "../engine/device.ts";
import type { FitModel, HeadStepRunner } from "./_fit_loop.ts";
import type { PreparedTargets } from "./_targets.ts";

/** The onnx step over `model`, starting from its current weights and `optimizer`'s settings. */
export function onnxHeadStep(
  model: FitModel,
  x: tf.Tensor,
  targets: PreparedTargets,
  optimizer: AdamW,
  device?: DeviceChoice,
): Promise<HeadStepRunner> {
  const spec = headTrainSpec(model.head);
  spec.params = spec.params.map((p) => ({
    ...p,
    decay: model.decayed(model.weights.get(p.name)!),
  }));
  const initial = new Map([...model.weights].map(([n, v]) => [n, v.dataSync() as Float32Array]));
  const trainer = createOnnxHeadTrainer(spec, initial, {
    beta1: optimizer.beta1,
    beta2: optimizer.beta2,
    epsilon: optimizer.epsilon,
    weightDecay: optimizer.weightDecay,
    device,
  });
  const k = model.outputs;
  const values = targets.kind === "values" ? targets.values.dataSync() as Float32Array : null;
  const step = async (rows: Int32Array, learningRate: number): Promise<tf.Scalar> => {
    // Not through tf.tidy's return value: tidy walks a returned array element by element.
    const rowsTensor = tf.tidy(() => model.features(x, rows));
    const features = rowsTensor.dataSync() as Float32Array;
    rowsTensor.dispose();
    const y = new Float32Array(rows.length * k);
    rows.forEach((r, i) => {
      if (targets.kind === "labels") y[i * k + targets.labels[r]] = 1;
      else y.set(values!.subarray(r * k, (r + 1) * k), i * k);
    });
    return tf.scalar(await trainer.step(features, y, learningRate));
  };
  return Promise.resolve({
    step,
    device: () => trainer.device,
    sync() {
      const weights = trainer.weights();
      tf.tidy(() => {
        for (const [name, v] of model.weights) v.assign(tf.tensor(weights.get(name)!, v.shape));
      });
    },
    dispose: () => trainer.dispose(),
  });
}
