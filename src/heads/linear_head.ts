/**
 * The linear probe: flattened features, one affine map to the outputs.
 *
 * @module
 */

import type * as tf from "@tensorflow/tfjs";
import { Head, type HeadOptions, type HeadTask, readHeadManifest } from "./head.ts";
import { dense, initLinearUniform } from "./_layers.ts";
import { Rng } from "./_random.ts";

/** Options of {@linkcode LinearHead}: only the common ones. */
export type LinearHeadOptions<T extends HeadTask = HeadTask> = HeadOptions<T>;

/**
 * A linear probe: features `[N, ...inputShape]` are flattened (row-major) and mapped by
 * `x · W + b`, with `W: [features, outputs]` saved as `linear.weight` and `b` as
 * `linear.bias`. Weights start as PyTorch's `nn.Linear` does (uniform in ±1/√features).
 *
 * @example A linear probe on pooled features
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import { LinearHead } from "./linear_head.ts";
 * const x = tf.randomNormal([64, 16], 0, 1, "float32", 1);
 * const labels = Array.from(x.dataSync().filter((_, i) => i % 16 === 0), (v) => (v > 0 ? 1 : 0));
 * const head = new LinearHead({ inputShape: [16], outputs: 2 });
 * await head.fit(x, labels, { epochs: 30, learningRate: 0.05, batchSize: 16 });
 * const { accuracy } = head.evaluate(x, labels);
 * console.log(accuracy); // close to 1
 * head.dispose();
 * x.dispose();
 * ```
 */
export class LinearHead<T extends HeadTask = "classification"> extends Head<T> {
  /** Always `"LinearHead"`. */
  override readonly className: string = "LinearHead";
  /** The resolved options. */
  override readonly options: Required<LinearHeadOptions<T>>;
  #weight: tf.Variable;
  #bias: tf.Variable;

  /**
   * Creates a randomly initialised linear head.
   *
   * @param options Input shape, outputs, task and seed.
   */
  constructor(options: LinearHeadOptions<T>) {
    super(options);
    this.options = {
      inputShape: [...this.inputShape],
      outputs: this.outputs,
      task: this.task,
      seed: this.seed,
    };
    const { weight, bias } = initLinearUniform(new Rng(this.seed), this.featureSize, this.outputs);
    this.#weight = this.addWeight("linear.weight", [this.featureSize, this.outputs], weight, true);
    this.#bias = this.addWeight("linear.bias", [this.outputs], bias, false);
  }

  /** Flattens and applies the affine map. */
  protected override forward(x: tf.Tensor): tf.Tensor {
    return dense(x.reshape([-1, this.featureSize]), this.#weight, this.#bias);
  }

  /**
   * Loads a head saved by {@linkcode Head.save}.
   *
   * @example
   * ```ts ignore
   * const head = await LinearHead.load("out/linear-probe");
   * ```
   *
   * @param dir The folder.
   * @returns The head, with its weights and standardisation statistics.
   */
  static async load(dir: string): Promise<LinearHead<HeadTask>> {
    const manifest = await readHeadManifest(dir, "LinearHead");
    const head = new LinearHead<HeadTask>(manifest.options);
    await head.restore(dir, manifest);
    return head;
  }
}
