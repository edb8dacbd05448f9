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
