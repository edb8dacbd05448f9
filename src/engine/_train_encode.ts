/**
 * Serialises a {@linkcode TrainGraph} as an ONNX `ModelProto` (opset 17) with protobufjs, from a
 * minimal hand-written subset of `onnx.proto`. Internal to `src/engine/`.
 *
 * @example
 * ```ts
 * import { TrainGraph } from "./_autodiff.ts";
 * import { encodeTrainGraph } from "./_train_encode.ts";
 *
 * const g = new TrainGraph();
 * const x = g.input("x", [2]);
 * g.output(g.unary("Neg", x), "y");
 * console.log(encodeTrainGraph(g, ["y"]).byteLength > 0); // true
 * ```
 *
 * @module
 */
import protobuf from "protobufjs";
import type { TrainGraph } from "./_autodiff.ts";

// TODO(merge): share the onnx.proto subset with the reusable graph builder once it lands.
const ONNX_PROTO = `
syntax = "proto3";
package onnx;
message AttributeProto { string name = 1; int32 type = 20; float f = 2; int64 i = 3; bytes s = 4;
  repeated float floats = 7; repeated int64 ints = 8; }
message ValueInfoProto { string name = 1; TypeProto type = 2; }
message NodeProto { repeated string input = 1; repeated string output = 2; string name = 3;
  string op_type = 4; string domain = 7; repeated AttributeProto attribute = 5; }
message OperatorSetIdProto { string domain = 1; int64 version = 2; }
message ModelProto { int64 ir_version = 1; repeated OperatorSetIdProto opset_import = 8;
  string producer_name = 2; string producer_version = 3; GraphProto graph = 7; }
message GraphProto { repeated NodeProto node = 1; string name = 2;
  repeated TensorProto initializer = 5; repeated ValueInfoProto input = 11;
  repeated ValueInfoProto output = 12; }
message TensorProto { repeated int64 dims = 1; int32 data_type = 2; string name = 8;
  bytes raw_data = 9; }
message TensorShapeProto { message Dimension { oneof value { int64 dim_value = 1; string dim_param = 2; } }
  repeated Dimension dim = 1; }
message TypeProto { message Tensor { int32 elem_type = 1; TensorShapeProto shape = 2; }
  oneof value { Tensor tensor_type = 1; } }
`;

const FLOAT = 1;
const INT64 = 7;

let modelType: protobuf.Type | undefined;

/** Encodes `graph` with `outputs` as graph outputs (inputs are the graph's declared inputs). */
export function encodeTrainGraph(graph: TrainGraph, outputs: readonly string[]): Uint8Array {
  modelType ??= protobuf.parse(ONNX_PROTO, { keepCase: true }).root.lookupType("onnx.ModelProto");
  const valueInfo = (name: string) => ({
    name,
    type: {
      tensor_type: {
        elem_type: FLOAT,
        shape: { dim: graph.shape(name).map((d) => ({ dim_value: d })) },
      },
    },
  });
  const node = graph.nodes.map((n) => ({
    input: n.inputs,
    output: n.outputs,
    name: n.outputs[0],
    op_type: n.op,
    domain: "",
    attribute: Object.entries(n.attrs).map(([name, v]) => {
      if (typeof v === "string") return { name, type: 3, s: new TextEncoder().encode(v) };
      if (Array.isArray(v)) return { name, type: 7, ints: v };
      if (typeof v === "object") return { name, type: 1, f: v.float };
      return { name, type: 2, i: v };
    }),
  }));
  const initializer = [...graph.constants].map(([name, c]) => ({
    name,
    dims: c.dims,
    data_type: c.data instanceof BigInt64Array ? INT64 : FLOAT,
    raw_data: new Uint8Array(c.data.buffer, c.data.byteOffset, c.data.byteLength),
  }));
  return modelType.encode({
    ir_version: 8,
    opset_import: [{ domain: "", version: 17 }],
    producer_name: "@diffprobe/core",
    producer_version: "0.1.0",
    graph: {
      name: "diffprobe_train",
      node,
      initializer,
      input: graph.inputs.map(valueInfo),
      output: outputs.map(valueInfo),
    },
  }).finish();
}
