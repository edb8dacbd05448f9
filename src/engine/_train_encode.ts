/**
 * Serialises a {@linkcode TrainGraph} as an ONNX `ModelProto` (opset 17) through the engine's
 * one {@linkcode GraphBuilder}. Internal to `src/engine/`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { TrainGraph } from "./_autodiff.ts";
 * import { encodeTrainGraph } from "./_train_encode.ts";
 *
 * const g = new TrainGraph();
 * const x = g.input("x", [2]);
 * g.output(g.unary("Neg", x), "y");
 * assert.ok(encodeTrainGraph(g, ["y"]).byteLength > 0);
 * ```
 *
 * @module
 */
import type { TrainGraph } from "./_autodiff.ts";
import { GraphBuilder } from "./_graph_builder.ts";

/** Encodes `graph` with `outputs` as graph outputs (inputs are the graph's declared inputs). */
export function encodeTrainGraph(graph: TrainGraph, outputs: readonly string[]): Uint8Array {
  const b = new GraphBuilder();
  // int64 constants are shared by value in the builder, under its own names.
  const renamed = new Map<string, string>();
  for (const [name, c] of graph.constants) {
    if (c.data instanceof BigInt64Array) renamed.set(name, b.ints([...c.data].map(Number)));
    else b.floats(name, c.dims, c.data);
  }
  for (const name of graph.inputs) b.input(name, graph.shape(name));
  for (const n of graph.nodes) {
    b.node(n.op, n.inputs.map((i) => renamed.get(i) ?? i), n.attrs, n.outputs);
  }
  for (const name of outputs) b.output(name, graph.shape(name));
  return b.encode("diffprobe_train");
}
