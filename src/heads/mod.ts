/**
 * Probing heads: small trainable models on frozen diffusion features.
 *
 * `LinearHead`, `MLPHead` and `AttentionHead` share the {@linkcode Head} base: `fit` (AdamW
 * with warm-up and cosine decay), `predict`, `evaluate`, `save` / `load`, `dispose`.
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import { LinearHead } from "./mod.ts";
 * const x = tf.tensor2d([[0, 1], [1, 0], [0, 2], [2, 0]]);
 * const head = new LinearHead({ inputShape: [2], outputs: 2 });
 * await head.fit(x, [0, 1, 0, 1], { epochs: 50, learningRate: 0.1 });
 * console.log(head.evaluate(x, [0, 1, 0, 1]).accuracy);
 * head.dispose();
 * x.dispose();
 * ```
 *
 * @module
 */

export { AttentionHead, type AttentionHeadOptions } from "./attention_head.ts";
export {
  type ClassificationMetrics,
  type EpochLog,
  type FitHistory,
  type FitOptions,
  Head,
  type HeadManifest,
  type HeadMetrics,
  type HeadOptions,
  type HeadTargets,
  type HeadTask,
  type PredictOptions,
  readHeadManifest,
  type RegressionMetrics,
} from "./head.ts";
export {
  LinearHead,
  type LinearHeadOptions,
  type RidgeOptions,
  type RidgeResult,
} from "./linear_head.ts";
export { loadHead } from "./load_head.ts";
export { type MLPActivation, MLPHead, type MLPHeadOptions } from "./mlp_head.ts";
