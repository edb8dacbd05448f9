/**
 * What a head is measured by: accuracy and cross-entropy for classification, squared and
 * absolute error for regression, accumulated over batches.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import type { HeadTask } from "./head_options.ts";
import { type PreparedTargets, sampleLoss } from "./_targets.ts";

/** What `Head.evaluate` returns for a classification head. */
export interface ClassificationMetrics {
  /** The fraction of samples whose largest logit is the label. */
  accuracy: number;
  /** The mean softmax cross-entropy. */
  loss: number;
}

/** What `Head.evaluate` returns for a regression head. */
export interface RegressionMetrics {
  /** The mean squared error over all samples and outputs. */
  mse: number;
  /** The mean absolute error over all samples and outputs. */
  mae: number;
  /** The training loss, equal to `mse`. */
  loss: number;
}

/** The metrics of a head with task `T`. */
export type HeadMetrics<T extends HeadTask> = T extends "regression" ? RegressionMetrics
  : ClassificationMetrics;

/**
 * The metrics of `output(rows)` (the head's output on those rows of its features) against the
 * same rows of `targets`, in batches of `batchSize`.
 */
export function evaluateRows(
  output: (rows: Int32Array) => tf.Tensor,
  targets: PreparedTargets,
  rows: Int32Array,
  batchSize: number,
  outputs: number,
): ClassificationMetrics | RegressionMetrics {
  // Accumulates [loss sum, correct count or squared-error sum, absolute-error sum].
  let acc = tf.zeros([3]);
  for (let start = 0; start < rows.length; start += batchSize) {
    const batch = rows.slice(start, start + batchSize);
    const previous = acc;
    acc = tf.tidy(() => {
      const out = output(batch);
      const loss = sampleLoss(out, targets, batch, outputs).sum();
      let second: tf.Tensor, third: tf.Tensor;
      if (targets.kind === "labels") {
        const labels = tf.tensor1d(batch.map((r) => targets.labels[r]), "int32");
        second = out.argMax(-1).equal(labels).cast("float32").sum();
        third = tf.scalar(0);
      } else {
        const diff = out.sub(tf.gather(targets.values, tf.tensor1d(batch, "int32")));
        second = diff.square().sum();
        third = diff.abs().sum();
      }
      return previous.add(tf.stack([loss, second, third]));
    });
    previous.dispose();
  }
  const [lossSum, second, third] = acc.dataSync();
  acc.dispose();
  const n = rows.length;
  if (targets.kind === "labels") return { accuracy: second / n, loss: lossSum / n };
  const mse = second / (n * outputs);
  return { mse, mae: third / (n * outputs), loss: mse };
}
