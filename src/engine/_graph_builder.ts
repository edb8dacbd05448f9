/**
 * A small ONNX graph builder: a node list, initializers, unique value names, shared constants,
 * graph inputs and outputs, and the encoding to a `ModelProto` with protobufjs from a minimal
 * hand-written subset of `onnx.proto` (no code generation). Used by the UNet lowering
 * (`_lower_unet.ts`); it knows nothing about UNets.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { GraphBuilder } from "./_graph_builder.ts";
 *
 * const g = new GraphBuilder();
 * g.input("x", ["N", 4]);
 * const y = g.op("Relu", ["x"]);
 * g.node("Identity", [y], {}, ["y"]);
 * g.output("y", ["N", 4]);
 * assert.deepEqual(g.opCounts(), { Relu: 1, Identity: 1 });
 * assert.ok(g.encode("relu").byteLength > 0);
 * ```
 *
 * @module
 */
import protobuf from "protobufjs";

/** The subset of onnx.proto (IR version 8) this module writes; field numbers as in onnx.proto3. */
const ONNX_PROTO = `
syntax = "proto3";
package onnx;
message AttributeProto {
  string name = 1;
  int32 type = 20;
  float f = 2;
  int64 i = 3;
  bytes s = 4;
  repeated float floats = 7;
  repeated int64 ints = 8;
}
message ValueInfoProto {
  string name = 1;
  TypeProto type = 2;
}
message NodeProto {
  repeated string input = 1;
  repeated string output = 2;
  string name = 3;
  string op_type = 4;
  string domain = 7;
  repeated AttributeProto attribute = 5;
}
message OperatorSetIdProto {
  string domain = 1;
  int64 version = 2;
}
message ModelProto {
  int64 ir_version = 1;
  repeated OperatorSetIdProto opset_import = 8;
  string producer_name = 2;
  string producer_version = 3;
  string doc_string = 6;
  GraphProto graph = 7;
}
message GraphProto {
  repeated NodeProto node = 1;
  string name = 2;
  repeated TensorProto initializer = 5;
  repeated ValueInfoProto input = 11;
  repeated ValueInfoProto output = 12;
}
message TensorProto {
  repeated int64 dims = 1;
  int32 data_type = 2;
  string name = 8;
  bytes raw_data = 9;
}
message TensorShapeProto {
  message Dimension {
    oneof value {
      int64 dim_value = 1;
      string dim_param = 2;
    }
  }
  repeated Dimension dim = 1;
}
message TypeProto {
  message Tensor {
    int32 elem_type = 1;
    TensorShapeProto shape = 2;
  }
  oneof value {
    Tensor tensor_type = 1;
  }
}
`;

const IR_VERSION = 8;
/** The ONNX opset the graphs use. */
export const OPSET = 17;
const FLOAT = 1;
const INT64 = 7;
const ATTR_FLOAT = 1;
const ATTR_INT = 2;
const ATTR_STRING = 3;
const ATTR_INTS = 7;

let modelType: protobuf.Type | undefined;
function modelProto(): protobuf.Type {
  modelType ??= protobuf.parse(ONNX_PROTO, { keepCase: true }).root.lookupType("onnx.ModelProto");
  return modelType;
}

/** A node attribute: an int, a string, a list of ints, or `{ float }`. */
export type Attr = number | string | number[] | { float: number };

/** A dimension of a graph input or output: a size, or a symbolic name such as `"N"`. */
export type Dim = number | string;

/** One node as it is encoded. */
export interface NodeRecord {
  /** Input value names (`""` for an omitted optional input). */
  input: string[];
  /** Output value names. */
  output: string[];
  /** Node name (its first output). */
  name: string;
  /** Operator type. */
  op_type: string;
  /** Operator domain (`""`, the default ONNX domain). */
  domain: string;
  /** Encoded attributes. */
  attribute: Record<string, unknown>[];
}

/** A float32 initializer as it is encoded. */
export interface InitializerRecord {
  /** Value name. */
  name: string;
  /** Shape. */
  dims: number[];
  /** ONNX element type (1 float32, 7 int64). */
  data_type: number;
  /** Little-endian bytes. */
  raw_data: Uint8Array;
}

function encodeAttr(name: string, v: Attr): Record<string, unknown> {
  if (typeof v === "string") return { name, type: ATTR_STRING, s: new TextEncoder().encode(v) };
  if (Array.isArray(v)) return { name, type: ATTR_INTS, ints: v };
  if (typeof v === "object") return { name, type: ATTR_FLOAT, f: v.float };
  return { name, type: ATTR_INT, i: v };
}

function valueInfo(name: string, shape: readonly Dim[]): Record<string, unknown> {
  const dim = shape.map((d) => typeof d === "number" ? { dim_value: d } : { dim_param: d });
  return { name, type: { tensor_type: { elem_type: FLOAT, shape: { dim } } } };
}

/**
 * The ops a lowering emits, shared by the frozen-extraction {@linkcode GraphBuilder} and the
 * autodiff `TrainGraph` (`_autodiff.ts`), so that one lowering (`_lower_unet.ts`) builds both
 * graphs. Values are names; each sink infers what else it needs (`TrainGraph`: static shapes and
 * gradient rules). Reshape dims follow ONNX: 0 copies the input's dim, −1 is inferred.
 */
export interface OpSink {
  /** `a + b` (broadcasting). */
  add(a: string, b: string): string;
  /** `a − b` (broadcasting). */
  sub(a: string, b: string): string;
  /** `a · b` (broadcasting). */
  mul(a: string, b: string): string;
  /** `a / b` (broadcasting). */
  div(a: string, b: string): string;
  /** `x · sigmoid(x)`. */
  silu(x: string): string;
  /** A float32 scalar constant (shape `[]`). */
  scalar(value: number): string;
  /** Matrix product (`b` may be a matrix applied to the last axis of `a`). */
  matmul(a: string, b: string): string;
  /** `a · b + c` of a matrix `a` (`[M, K]`), `b` (`[K, N]`) and `c` (`[N]`). */
  gemm(a: string, b: string, c: string): string;
  /** Reshape (ONNX dims: 0 copies, −1 is inferred). */
  reshape(x: string, dims: readonly number[]): string;
  /** Transpose by `perm`. */
  transpose(x: string, perm: readonly number[]): string;
  /** Concatenation along `axis`. */
  concat(xs: string[], axis: number): string;
  /** Softmax over the last axis. */
  softmax(x: string): string;
  /** A 2-D NCHW convolution with an OIHW kernel (group 1, no dilation). */
  conv(x: string, kernel: string, bias: string, pads: number[], strides: number[]): string;
  /** Each `[n, g, :]` row of `x` (`[N, G, M]`) normalised to zero mean and unit variance. */
  normalizeRows(x: string, groups: number, epsilon: number): string;
  /** Nearest-neighbour upsampling of NCHW `x` by integer `factors` `[fh, fw]`. */
  upsampleNearest(x: string, factors: readonly number[], hint: string): string;
}

/**
 * Accumulates nodes, initializers, inputs and outputs with fresh value names (`"<hint>:<n>"`);
 * constants are shared by value. Inputs and outputs are float32.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { GraphBuilder } from "./_graph_builder.ts";
 *
 * const g = new GraphBuilder();
 * assert.equal(g.ints([0, -1]), g.ints([0, -1]), "constants are shared");
 * assert.equal(g.fill(2, []), "const:f32:2:[]");
 * const [a, b] = g.node("Split", ["x"], { axis: 1 }, 2);
 * assert.notEqual(a, b);
 * ```
 */
export class GraphBuilder implements OpSink {
  /** Nodes in the order they were added (a valid topological order). */
  readonly nodes: NodeRecord[] = [];
  /** Initializers. */
  readonly initializers: InitializerRecord[] = [];
  /** Graph inputs (value infos). */
  readonly inputs: Record<string, unknown>[] = [];
  /** Graph outputs (value infos). */
  readonly outputs: Record<string, unknown>[] = [];
  #count = 0;
  #consts = new Map<string, string>();
  #dims = new Map<string, number[]>();

  /** A value name not used before, from a hint. */
  fresh(hint: string): string {
    return `${hint}:${this.#count++}`;
  }

  /**
   * Adds a node; `outputs` is a count of fresh names or the names to use. Returns the outputs.
   */
  node(
    op: string,
    inputs: string[],
    attrs: Record<string, Attr> = {},
    outputs: number | string[] = 1,
  ): string[] {
    const out = typeof outputs === "number"
      ? Array.from({ length: outputs }, () => this.fresh(op))
      : outputs;
    const attribute = Object.entries(attrs).map(([name, v]) => encodeAttr(name, v));
    this.nodes.push({
      input: inputs,
      output: out,
      name: out[0],
      op_type: op,
      domain: "",
      attribute,
    });
    return out;
  }

  /** Adds a one-output node and returns its output. */
  op(op: string, inputs: string[], attrs: Record<string, Attr> = {}): string {
    return this.node(op, inputs, attrs, 1)[0];
  }

  /** A float32 initializer named `name` (added once; later calls return the name). */
  floats(name: string, dims: number[], data: Float32Array): string {
    if (this.#dims.has(name)) return name;
    this.#dims.set(name, dims);
    this.initializers.push({
      name,
      dims,
      data_type: FLOAT,
      raw_data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
    });
    return name;
  }

  /** Whether a float32 initializer of this name exists. */
  has(name: string): boolean {
    return this.#dims.has(name);
  }

  /** The shape of float32 initializer `name` (undefined when there is none). */
  dims(name: string): number[] | undefined {
    return this.#dims.get(name);
  }

  /** An int64 constant, shared by value. */
  ints(values: number[]): string {
    const key = values.join(",");
    let name = this.#consts.get(key);
    if (!name) {
      name = `const:i64:[${key}]`;
      const data = BigInt64Array.from(values.map((v) => BigInt(v)));
      this.initializers.push({
        name,
        dims: [values.length],
        data_type: INT64,
        raw_data: new Uint8Array(data.buffer),
      });
      this.#consts.set(key, name);
    }
    return name;
  }

  /** A float constant of the given shape filled with `value`, shared by value and shape. */
  fill(value: number, dims: number[]): string {
    const key = `f:${value}:${dims}`;
    let name = this.#consts.get(key);
    if (!name) {
      name = `const:f32:${value}:[${dims}]`;
      this.floats(name, dims, new Float32Array(dims.reduce((a, b) => a * b, 1)).fill(value));
      this.#consts.set(key, name);
    }
    return name;
  }

  /** Declares a float32 graph input. */
  input(name: string, shape: readonly Dim[]): string {
    this.inputs.push(valueInfo(name, shape));
    return name;
  }

  /** Declares a float32 graph output (a value some node produces). */
  output(name: string, shape: readonly Dim[]): string {
    this.outputs.push(valueInfo(name, shape));
    return name;
  }

  // --- OpSink: the ops of the UNet lowering, each one node ---
  /** `a + b`. */
  add(a: string, b: string): string {
    return this.op("Add", [a, b]);
  }
  /** `a − b`. */
  sub(a: string, b: string): string {
    return this.op("Sub", [a, b]);
  }
  /** `a · b`. */
  mul(a: string, b: string): string {
    return this.op("Mul", [a, b]);
  }
  /** `a / b`. */
  div(a: string, b: string): string {
    return this.op("Div", [a, b]);
  }
  /** `x · sigmoid(x)`. */
  silu(x: string): string {
    return this.op("Mul", [x, this.op("Sigmoid", [x])]);
  }
  /** A float32 scalar constant. */
  scalar(value: number): string {
    return this.fill(value, []);
  }
  /** `MatMul`. */
  matmul(a: string, b: string): string {
    return this.op("MatMul", [a, b]);
  }
  /** `Gemm` (`a · b + c`). */
  gemm(a: string, b: string, c: string): string {
    return this.op("Gemm", [a, b, c]);
  }
  /** `Reshape` to ONNX `dims` (an int64 constant). */
  reshape(x: string, dims: readonly number[]): string {
    return this.op("Reshape", [x, this.ints([...dims])]);
  }
  /** `Transpose`. */
  transpose(x: string, perm: readonly number[]): string {
    return this.op("Transpose", [x], { perm: [...perm] });
  }
  /** `Concat`. */
  concat(xs: string[], axis: number): string {
    return this.op("Concat", xs, { axis });
  }
  /** `Softmax` over the last axis. */
  softmax(x: string): string {
    return this.op("Softmax", [x], { axis: -1 });
  }
  /** `Conv`; the kernel must be an initializer (its shape gives `kernel_shape`). */
  conv(x: string, kernel: string, bias: string, pads: number[], strides: number[]): string {
    const dims = this.#dims.get(kernel);
    if (!dims) throw new RangeError(`Convolution kernel "${kernel}" is not an initializer`);
    return this.op("Conv", [x, kernel, bias], { kernel_shape: dims.slice(2), pads, strides });
  }
  /** `InstanceNormalization` of `[N, G, M]` with unit scale and zero shift. */
  normalizeRows(x: string, groups: number, epsilon: number): string {
    const scale = this.fill(1, [groups]);
    return this.op("InstanceNormalization", [x, scale, this.fill(0, [groups])], {
      epsilon: { float: epsilon },
    });
  }
  /** `Resize` (nearest, floor, asymmetric) with the scales constant `<hint>:scales`. */
  upsampleNearest(x: string, factors: readonly number[], hint: string): string {
    const scales = this.floats(`${hint}:scales`, [4], new Float32Array([1, 1, ...factors]));
    return this.op("Resize", [x, "", scales], {
      mode: "nearest",
      coordinate_transformation_mode: "asymmetric",
      nearest_mode: "floor",
    });
  }

  /** Nodes per operator type. */
  opCounts(): Record<string, number> {
    const counts: Record<string, number> = {};
    for (const n of this.nodes) counts[n.op_type] = (counts[n.op_type] ?? 0) + 1;
    return counts;
  }

  /** The serialised `ModelProto` (IR 8, opset {@linkcode OPSET}) of the graph so far. */
  encode(graphName: string): Uint8Array {
    return modelProto().encode({
      ir_version: IR_VERSION,
      opset_import: [{ domain: "", version: OPSET }],
      producer_name: "@diffprobe/core",
      producer_version: "0.1.0",
      graph: {
        name: graphName,
        node: this.nodes,
        initializer: this.initializers,
        input: this.inputs,
        output: this.outputs,
      },
    }).finish();
  }
}
