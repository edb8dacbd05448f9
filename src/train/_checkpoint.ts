/**
 * Training checkpoints: one folder per saved step, `<root>/step-00000100/`, holding
 *
 * - `ema/` and `model/`: the EMA and the raw weights, written by `saveBackbone` (diffusers
 *   layout, loadable by `loadBackbone` and by diffusers);
 * - `optimizer.safetensors`: AdamW's moments as `m.<weight name>` / `v.<weight name>` (float32,
 *   TensorFlow.js layout);
 * - `state.json`: the step, the run's settings, the random-stream description and the loss,
 *   learning-rate and gradient-norm history.
 *
 * A checkpoint is written into a temporary folder that is renamed into place last, so a
 * `step-*` folder is always complete. Internal to `src/train/`.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { join } from "node:path";
import { writeFileAtomic } from "../base/atomic_write.ts";
import { show } from "../base/validate.ts";
import { loadBackbone, saveBackbone } from "../models/backbone.ts";
import type { Backbone } from "../models/unet.ts";
import { readRegularFile } from "../io/bounded_read.ts";
import { readSafetensorsFile, toFloat32, writeSafetensorsFile } from "../io/safetensors.ts";
import type { TensorToWrite } from "../io/safetensors.ts";

/** What `state.json` holds. */
export interface TrainState {
  /** Format marker. */
  format: "diffprobe-train-state";
  /** Format version. */
  version: 1;
  /** Optimiser steps done (the next step to run). */
  step: number;
  /** The run's settings that must not change on resume. */
  run: {
    seed: number;
    batchSize: number;
    dataShape: number[];
    steps: number;
    config: unknown;
  };
  /** The optimiser's scalars. */
  optimizer: {
    iterations: number;
    beta1: number;
    beta2: number;
    epsilon: number;
    weightDecay: number;
  };
  /** The random streams: counter-based, so the step number is the whole state. */
  rng: { algorithm: "sfc32-counter"; seed: number; nextStep: number };
  /** Samples per forward/backward pass. */
  microBatchSize: number;
  /** Per-step history. */
  losses: number[];
  /** Learning rate of each step. */
  learningRates: number[];
  /** Global gradient norm (before clipping) of each step. */
  gradNorms: number[];
}

/** The folder name of the checkpoint of `step`. */
export function stepFolder(step: number): string {
  return `step-${String(step).padStart(8, "0")}`;
}

/** Writes a checkpoint of `step` under `root`; removes all but the newest `keep`. */
export async function saveCheckpoint(
  root: string,
  state: TrainState,
  model: Backbone,
  ema: Backbone,
  names: readonly string[],
  moments: { m: readonly tf.Tensor[]; v: readonly tf.Tensor[] },
  keep: number,
): Promise<string> {
  await Deno.mkdir(root, { recursive: true });
  const final = join(root, stepFolder(state.step));
  const tmp = join(root, `.${stepFolder(state.step)}.${crypto.randomUUID()}.tmp`);
  try {
    await saveBackbone(ema, join(tmp, "ema"));
    await saveBackbone(model, join(tmp, "model"));
    const tensors = new Map<string, TensorToWrite>();
    names.forEach((name, i) => {
      for (const [which, list] of [["m", moments.m], ["v", moments.v]] as const) {
        tensors.set(`${which}.${name}`, {
          dtype: "F32",
          shape: list[i].shape,
          data: list[i].dataSync() as Float32Array,
        });
      }
    });
    await writeSafetensorsFile(join(tmp, "optimizer.safetensors"), tensors, {
      iterations: String(state.optimizer.iterations),
    });
    await writeFileAtomic(join(tmp, "state.json"), JSON.stringify(state) + "\n");
    await Deno.remove(final, { recursive: true }).catch(() => {});
    await Deno.rename(tmp, final);
  } catch (e) {
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
    throw e;
  }
  const steps = await listCheckpoints(root);
  for (const old of steps.slice(0, Math.max(0, steps.length - keep))) {
    await Deno.remove(join(root, stepFolder(old)), { recursive: true });
  }
  return final;
}

/** The steps of the complete checkpoints under `root`, ascending. */
export async function listCheckpoints(root: string): Promise<number[]> {
  const steps: number[] = [];
  try {
    for await (const e of Deno.readDir(root)) {
      const m = /^step-(\d+)$/.exec(e.name);
      if (e.isDirectory && m) steps.push(Number(m[1]));
    }
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return [];
    throw e;
  }
  return steps.sort((a, b) => a - b);
}

/** A checkpoint folder: `dir` itself when it holds `state.json`, else its newest `step-*`. */
export async function resolveCheckpoint(dir: string): Promise<string> {
  try {
    if ((await Deno.stat(join(dir, "state.json"))).isFile) return dir;
  } catch {
    // Not a step folder: look for step-* inside.
  }
  const steps = await listCheckpoints(dir);
  if (steps.length === 0) {
    throw new RangeError(
      `No training checkpoint in "${dir}": expected state.json or step-* folders`,
    );
  }
  return join(dir, stepFolder(steps[steps.length - 1]));
}

/** Everything read back from a checkpoint folder. */
export interface LoadedCheckpoint {
  /** `state.json`. */
  state: TrainState;
  /** The raw weights. */
  model: Backbone;
  /** The EMA weights. */
  ema: Backbone;
  /** AdamW moments aligned with `names`. */
  m: tf.Tensor[];
  /** AdamW second moments aligned with `names`. */
  v: tf.Tensor[];
}

/** Reads a checkpoint folder (see {@linkcode resolveCheckpoint}). */
export async function loadCheckpoint(
  folder: string,
  names: readonly string[],
): Promise<LoadedCheckpoint> {
  const statePath = join(folder, "state.json");
  let state: TrainState;
  try {
    // A regular file of at most 1 MiB (the state is a few hundred bytes): never a FIFO or device.
    const bytes = await readRegularFile(statePath, 1 << 20, (_k, problem) => new Error(problem));
    state = JSON.parse(new TextDecoder().decode(bytes));
  } catch (e) {
    throw new TypeError(`Cannot read the training state "${statePath}": ${(e as Error).message}`);
  }
  if (state.format !== "diffprobe-train-state" || state.version !== 1) {
    throw new RangeError(
      `"${
        join(folder, "state.json")
      }" field format/version must be "diffprobe-train-state" / 1, got ${show(state.format)} / ${
        show(state.version)
      }`,
    );
  }
  const file = await readSafetensorsFile(join(folder, "optimizer.safetensors"));
  const read = (key: string) => {
    const e = file.tensors.get(key);
    if (!e) throw new RangeError(`Optimizer state "${folder}" has no tensor "${key}"`);
    return tf.tensor(toFloat32(e), e.shape, "float32");
  };
  const m: tf.Tensor[] = [], v: tf.Tensor[] = [];
  try {
    for (const name of names) {
      m.push(read(`m.${name}`));
      v.push(read(`v.${name}`));
    }
  } catch (e) {
    tf.dispose([...m, ...v]);
    throw e;
  }
  const model = await loadBackbone(join(folder, "model"));
  const ema = await loadBackbone(join(folder, "ema"));
  return { state, model, ema, m, v };
}
