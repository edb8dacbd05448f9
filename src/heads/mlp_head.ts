/**
 * The multi-layer perceptron probe: flattened features, hidden layers with GELU or ReLU,
 * then a linear output layer.
 *
 * @module
 */

import * as tf from "@tensorflow/tfjs";
import { Head } from "./head.ts";
import {
  checkHeadOptions,
  type HeadOptions,
  type HeadTask,
  MAX_HEAD_SIZE,
} from "./head_options.ts";
import { readSavedHead } from "./head_file.ts";
import { formatShape } from "./_shape.ts";
import { dense, gelu, initLinearUniform } from "./_layers.ts";
import { Random } from "../base/random.ts";
import { show } from "../base/validate.ts";

/** The hidden-layer non-linearity of an {@linkcode MLPHead}. */
export type MLPActivation = "gelu" | "relu";

/** Options of {@linkcode MLPHead}. */
export interface MLPHeadOptions<T extends HeadTask = HeadTask> extends HeadOptions<T> {
  /** The widths of the hidden layers, in order. Default `[512]`. */
  hidden?: number[];
  /** The non-linearity after each hidden layer. Default `"gelu"` (the exact, erf-based one). */
  activation?: MLPActivation;
}

/**
 * An MLP probe: features `[N, ...inputShape]` are flattened (row-major) and passed through
 * `hidden.length` dense layers, each followed by the activation, then a dense output layer.
 * Weights are named `layers.<i>.weight` / `layers.<i>.bias` (`[in, out]` / `[out]`, the output
 * layer last) and start as PyTorch's `nn.Linear` does.
 *
 * @example XOR, which no linear probe can solve
 * ```ts
 * import assert from "node:assert/strict";
 * import * as tf from "@tensorflow/tfjs";
 * import { MLPHead } from "@diffprobe/core";
 *
 * const x = tf.tensor2d([[0, 0], [0, 1], [1, 0], [1, 1]]).tile([16, 1]);
 * const y = Array.from({ length: 64 }, (_, i) => [0, 1, 1, 0][i % 4]);
 * const head = new MLPHead({ inputShape: [2], outputs: 2, hidden: [16], seed: 1 });
 * await head.fit(x, y, { epochs: 100, batchSize: 16, learningRate: 0.02 });
 * assert.equal(head.evaluate(x, y).accuracy, 1);
 * head.dispose();
 * x.dispose();
 * ```
 */
export class MLPHead<T extends HeadTask = "classification"> extends Head<T> {
  /** Always `"MLPHead"`. */
  override readonly className: string = "MLPHead";
  /** The resolved options. */
  override readonly options: Required<MLPHeadOptions<T>>;
  #layers: { weight: tf.Variable; bias: tf.Variable }[] = [];

  /**
   * Creates a randomly initialised MLP head.
   *
   * @param options Input shape, outputs, task, seed, hidden widths and activation.
   */
  constructor(options: MLPHeadOptions<T>) {
    super(checkMLPOptions(options));
    const hidden = [...(options.hidden ?? [512])];
    const activation = options.activation ?? "gelu";
    this.options = {
      inputShape: [...this.inputShape],
      outputs: this.outputs,
      task: this.task,
      seed: this.seed,
      hidden,
      activation,
    };
    const rng = Random.seeded(this.seed);
    const widths = [this.featureSize, ...hidden, this.outputs];
    for (let i = 0; i + 1 < widths.length; i++) {
      const { weight, bias } = initLinearUniform(rng, widths[i], widths[i + 1]);
      this.#layers.push({
        weight: this.addWeight(`layers.${i}.weight`, [widths[i], widths[i + 1]], weight, true),
        bias: this.addWeight(`layers.${i}.bias`, [widths[i + 1]], bias, false),
      });
    }
  }

  /** Flattens, then dense → activation for each hidden layer, then the output layer. */
  protected override forward(x: tf.Tensor): tf.Tensor {
    let h = x.reshape([-1, this.featureSize]);
    const last = this.#layers.length - 1;
    this.#layers.forEach(({ weight, bias }, i) => {
      h = dense(h, weight, bias);
      if (i < last) h = this.options.activation === "gelu" ? gelu(h) : tf.relu(h);
    });
    return h;
  }

  /**
   * Loads a head saved by {@linkcode Head.save}.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { MLPHead } from "@diffprobe/core";
   *
   * const dir = await Deno.makeTempDir();
   * const head = new MLPHead({ inputShape: [3], outputs: 2, hidden: [4] });
   * await head.save(dir);
   * const loaded = await MLPHead.load(dir);
   * assert.deepEqual(loaded.options, head.options);
   * head.dispose();
   * loaded.dispose();
   * await Deno.remove(dir, { recursive: true });
   * ```
   *
   * @param dir The folder.
   * @returns The head, with its weights and standardisation statistics.
   */
  static async load(dir: string): Promise<MLPHead<HeadTask>> {
    const saved = await readSavedHead(dir, "MLPHead", MLPHead.weightShapes);
    const head = new MLPHead<HeadTask>(saved.manifest.options as MLPHeadOptions);
    head.restore(saved);
    return head;
  }

  /**
   * The names and shapes of the weights an MLP head with `options` has (checks the options;
   * allocates nothing).
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { MLPHead } from "@diffprobe/core";
   *
   * const shapes = MLPHead.weightShapes({ inputShape: [6], outputs: 2, hidden: [8] });
   * assert.deepEqual([...shapes.values()], [[6, 8], [8], [8, 2], [2]]);
   * ```
   */
  static weightShapes(options: MLPHeadOptions): Map<string, number[]> {
    const { featureSize, outputs } = checkHeadOptions(checkMLPOptions(options));
    const widths = [featureSize, ...(options.hidden ?? [512]), outputs];
    const shapes = new Map<string, number[]>();
    for (let i = 0; i + 1 < widths.length; i++) {
      shapes.set(`layers.${i}.weight`, [widths[i], widths[i + 1]]);
      shapes.set(`layers.${i}.bias`, [widths[i + 1]]);
    }
    return shapes;
  }
}

/** Checks the MLP's own options (allocates nothing). */
function checkMLPOptions<T extends HeadTask>(options: MLPHeadOptions<T>): MLPHeadOptions<T> {
  const hidden = options?.hidden;
  if (
    hidden !== undefined &&
    (!Array.isArray(hidden) ||
      !hidden.every((d) => Number.isInteger(d) && d > 0 && d <= MAX_HEAD_SIZE))
  ) {
    throw new RangeError(
      `Hidden widths must be an array of integers in [1, ${MAX_HEAD_SIZE}], got ${
        Array.isArray(hidden) ? formatShape(hidden) : String(hidden)
      }`,
    );
  }
  const activation = options?.activation;
  if (activation !== undefined && activation !== "gelu" && activation !== "relu") {
    throw new RangeError(`Activation must be "gelu" or "relu", got ${show(activation)}`);
  }
  return options;
}
