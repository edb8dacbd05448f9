/**
 * Targets as heads use them: checked class labels or float32 regression values, the finiteness
 * check shared with features, and the per-sample loss. Internal to `src/heads/`.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { show } from "../base/validate.ts";
import type { HeadTargets, HeadTask } from "./head_options.ts";
import { formatShape, sizeOf, unravel } from "./_shape.ts";

/** Checked targets: labels, or a float32 `[N, outputs]` tensor owned by whoever prepared it. */
export type PreparedTargets =
  | { kind: "labels"; labels: Int32Array }
  | { kind: "values"; values: tf.Tensor2D };

/** Frees the tensor of prepared targets (nothing for labels). */
export function disposeTargets(targets: PreparedTargets | undefined): void {
  if (targets?.kind === "values") targets.values.dispose();
}

/**
 * Throws a RangeError naming the first non-finite value of `x` (rows are samples), e.g.
 * `Features contain a non-finite value (NaN) at sample 3, position [0, 1]`.
 */
export function assertFinite(x: tf.Tensor, what: "Features" | "Targets"): void {
  if (x.dtype !== "float32" || x.size === 0) return;
  const [anyBad, first] = tf.tidy(() => {
    const bad = tf.logicalNot(tf.isFinite(x)).reshape([-1]);
    return [bad.any(), bad.cast("int32").argMax()];
  });
  const found = anyBad.dataSync()[0];
  const index = first.dataSync()[0];
  tf.dispose([anyBad, first]);
  if (!found) return;
  const value = tf.tidy(() => x.reshape([-1]).slice([index], [1]).dataSync()[0]);
  const rowShape = x.shape.slice(1);
  const rowSize = sizeOf(rowShape);
  const sample = Math.floor(index / rowSize);
  const where = rowSize === 1 && what === "Targets"
    ? `at sample ${sample}`
    : `at sample ${sample}, ${what === "Targets" ? "output" : "position"} ${
      formatShape(unravel(index % rowSize, rowShape))
    }`;
  throw new RangeError(`${what} contain a non-finite value (${value}) ${where}`);
}

/** Checks class indices in [0, outputs), one per sample. */
function prepareLabels(y: HeadTargets, n: number, outputs: number): PreparedTargets {
  if (y instanceof tf.Tensor && y.rank !== 1) {
    throw new RangeError(
      `Labels must be a 1-D tensor of class indices [${n}], got shape ${formatShape(y.shape)}`,
    );
  }
  const values = y instanceof tf.Tensor ? y.dataSync() : y;
  if (values.length !== n) {
    throw new RangeError(`Labels must be one per sample (${n}), got ${values.length}`);
  }
  const labels = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const label = values[i];
    if (typeof label !== "number" || !Number.isInteger(label)) {
      throw new RangeError(
        `Label at index ${i} must be an integer class index in [0, ${outputs}), got ${show(label)}`,
      );
    }
    if (label < 0 || label >= outputs) {
      throw new RangeError(
        `Label at index ${i} must be a class index in [0, ${outputs}), got ${label}`,
      );
    }
    labels[i] = label;
  }
  return { kind: "labels", labels };
}

/** Checks regression targets `[N]` (one output) or `[N, outputs]`, all finite. */
function prepareValues(y: HeadTargets, n: number, outputs: number): PreparedTargets {
  const isTensor = y instanceof tf.Tensor;
  if (!isTensor && !y.every((v) => typeof v === "number")) {
    throw new TypeError("Regression targets given as an array must be numbers");
  }
  const shape = isTensor ? y.shape : [y.length];
  const ok = (shape.length === 1 && shape[0] === n && outputs === 1) ||
    (shape.length === 2 && shape[0] === n && shape[1] === outputs);
  if (!ok) {
    throw new RangeError(
      `Regression targets have shape ${formatShape(shape)}, expected [${n}, ${outputs}]${
        outputs === 1 ? ` or [${n}]` : ""
      }`,
    );
  }
  const values = tf.tidy(() =>
    (isTensor ? y : tf.tensor1d(y, "float32")).cast("float32").reshape([n, outputs])
  ) as tf.Tensor2D;
  try {
    assertFinite(values, "Targets");
  } catch (error) {
    values.dispose();
    throw error;
  }
  return { kind: "values", values };
}

/**
 * Validates targets for `n` samples of a head with `task` and `outputs`. Regression values
 * become a float32 `[N, outputs]` tensor the caller owns (see {@linkcode disposeTargets}); on
 * an error nothing is left allocated.
 */
export function prepareTargets(
  y: HeadTargets,
  n: number,
  task: HeadTask,
  outputs: number,
): PreparedTargets {
  if (!(y instanceof tf.Tensor) && !Array.isArray(y)) {
    throw new TypeError(`Targets must be a tf.Tensor or an array of numbers, got ${show(y)}`);
  }
  return task === "classification" ? prepareLabels(y, n, outputs) : prepareValues(y, n, outputs);
}

/** Per-sample loss `[B]` of `output` against rows `rows` of the targets. */
export function sampleLoss(
  output: tf.Tensor,
  targets: PreparedTargets,
  rows: Int32Array,
  outputs: number,
): tf.Tensor1D {
  if (targets.kind === "labels") {
    const labels = tf.tensor1d(rows.map((r) => targets.labels[r]), "int32");
    const oneHot = tf.oneHot(labels, outputs).cast("float32");
    return tf.logSoftmax(output).mul(oneHot).sum(-1).neg() as tf.Tensor1D;
  }
  const truth = tf.gather(targets.values, tf.tensor1d(rows, "int32"));
  return output.sub(truth).square().mean(-1) as tf.Tensor1D;
}
