/**
 * The TensorFlow.js namespace diffprobe computes with, re-exported so that users never load a
 * second copy (two copies of tfjs in one process share neither backends nor tensors). Importing
 * it through this module also silences tfjs' "Hi, looks like you are running TensorFlow.js in
 * Node.js" banner, which advertises a package we document separately (see the README).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { tf } from "./tf.ts";
 *
 * assert.deepEqual(tf.ones([2, 3]).shape, [2, 3]);
 * ```
 *
 * @module
 */
import * as tfjs from "@tensorflow/tfjs";
import { quietTfjs } from "./quiet.ts";

quietTfjs();

/**
 * The `@tensorflow/tfjs` 4.22.0 namespace that diffprobe itself uses: create inputs, read
 * features and dispose tensors with it instead of importing `@tensorflow/tfjs` yourself.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { tf } from "@diffprobe/core";
 *
 * const images = tf.randomUniform([2, 32, 32, 3], -1, 1); // NHWC in [-1, 1]
 * assert.deepEqual(images.shape, [2, 32, 32, 3]);
 * images.dispose();
 * ```
 */
export const tf: typeof tfjs = tfjs;

/**
 * TensorFlow.js' tensor types under the same name, so that `tf.Tensor`, `tf.Tensor2D`, … can be
 * written in type positions with only `import { tf } from "@diffprobe/core"`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { tf } from "@diffprobe/core";
 *
 * const x: tf.Tensor2D = tf.zeros([2, 3]);
 * assert.equal(x.rank, 2);
 * ```
 */
export declare namespace tf {
  /** A tensor's rank as a type ("R0" … "R6"). */
  export type Rank = tfjs.Rank;
  /** A tensor of any rank (`tf.Tensor` of `@tensorflow/tfjs`). */
  export type Tensor<R extends Rank = Rank> = tfjs.Tensor<R>;
  /** A rank-0 tensor. */
  export type Scalar = tfjs.Scalar;
  /** A rank-1 tensor. */
  export type Tensor1D = tfjs.Tensor1D;
  /** A rank-2 tensor. */
  export type Tensor2D = tfjs.Tensor2D;
  /** A rank-3 tensor. */
  export type Tensor3D = tfjs.Tensor3D;
  /** A rank-4 tensor (images: NHWC). */
  export type Tensor4D = tfjs.Tensor4D;
  /** A trainable tensor. */
  export type Variable = tfjs.Variable;
  /** A tensor's element type: "float32", "int32", "bool", "complex64" or "string". */
  export type DataType = tfjs.DataType;
}
