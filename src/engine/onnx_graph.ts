/**
 * Lowering a loaded UNet to an ONNX graph, in TypeScript: the backbone's plan (the exact op
 * sequence of `UNet.forward`) becomes ONNX nodes, its weights become initializers (convolutions
 * transposed back to OIHW), the tapped blocks become graph outputs, and the graph stops at the
 * deepest of them. Inputs are `xt` (NHWC, or NWC for signals) and `temb`, the sinusoidal
 * timestep embedding (see {@linkcode timeEmbeddingInput}); outputs are NHWC (NWC), as on the
 * TensorFlow.js path. The model is encoded with protobufjs from a minimal hand-written subset of
 * `onnx.proto` (no code generation).
 *
 * Inside, the graph is NCHW so that onnxruntime's CPU provider can run its blocked-layout
 * (NCHWc) convolutions; a nearest-neighbour ×2 upsample followed by a 3×3 convolution is lowered
 * to four 2×2 convolutions (one per output phase) and a `DepthToSpace`, which is the same
 * function with 2.25× fewer multiply-adds.
 *
 * @example
 * ```ts
 * import { createBackbone } from "../models/backbone.ts";
 * import { buildOnnxGraph } from "./onnx_graph.ts";
 *
 * const unet = createBackbone({
 *   _class_name: "UNet2DModel", block_out_channels: [32, 64], layers_per_block: 1,
 *   down_block_types: ["DownBlock2D", "AttnDownBlock2D"], up_block_types: ["AttnUpBlock2D", "UpBlock2D"],
 *   norm_num_groups: 8, sample_size: 16,
 * });
 * const graph = buildOnnxGraph(unet, { blocks: [3] });
 * console.log(graph.outputs.map((o) => o.name), graph.model.byteLength > 0); // ["down_blocks.0.downsample"] true
 * unet.dispose();
 * ```
 *
 * @module
 */
import type * as tf from "@tensorflow/tfjs";
import protobuf from "protobufjs";
import type { ResolvedConfig } from "../models/config.ts";
import type { Backbone, BlockRef } from "../models/unet.ts";
import type { BlockInfo, UNetPlan } from "../models/unet_plan.ts";
import { timestepEmbedding } from "../nn/timestep_embedding.ts";

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
const OPSET = 17;
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

/** How nearest ×2 upsampling + 3×3 convolution is lowered (both compute the same function). */
export type UpsampleLowering = "subpixel" | "resize";

/** Options of {@linkcode buildOnnxGraph}. */
export interface OnnxGraphOptions {
  /** Blocks whose outputs become graph outputs; the graph ends after the deepest of them. */
  blocks: readonly BlockRef[];
  /** Also output the noise prediction `eps` (runs the whole network). Default false. */
  eps?: boolean;
  /**
   * Spatial size of the inputs: `[H, W]` for images, `[W]` for signals (default: the config's
   * `sample_size`). Each side must be a multiple of 2^(levels − 1).
   */
  size?: readonly number[];
  /**
   * Nearest ×2 upsampling then 3×3 convolution as four 2×2 phase convolutions and a
   * `DepthToSpace` (`"subpixel"`, the default for images) or as `Resize` then `Conv`
   * (`"resize"`, always used for signals).
   */
  upsample?: UpsampleLowering;
}

/** One graph output. */
export interface OnnxGraphOutput {
  /** Output name: the block name (or `"eps"`). */
  name: string;
  /** The block, or null for `eps`. */
  block: BlockInfo | null;
  /** Per-sample output shape: `[H, W, C]` (images) or `[W, C]` (signals). */
  shape: number[];
}

/** An encoded ONNX model of a backbone truncated after its deepest output. */
export interface OnnxGraph {
  /** The serialised `ModelProto`. */
  model: Uint8Array;
  /** Graph inputs: `xt` (`[N, ...size, C]`) and `temb` (`[N, block_out_channels[0]]`). */
  inputs: { xt: string; temb: string };
  /** Graph outputs in execution order. */
  outputs: OnnxGraphOutput[];
  /** Input size used (`[H, W]` or `[W]`). */
  size: number[];
  /** Number of nodes. */
  nodeCount: number;
  /** Nodes per operator type. */
  opCounts: Record<string, number>;
}

/** A backbone built by `createBackbone`/`loadBackbone` (or frozen from one): plan and config. */
export interface LowerableBackbone extends Backbone {
  /** The resolved config. */
  readonly resolved: ResolvedConfig;
  /** The plan of operations. */
  readonly plan: UNetPlan;
}

/**
 * Narrows a backbone to one whose plan can be lowered; throws a `TypeError` otherwise.
 *
 * @example
 * ```ts
 * import { createBackbone } from "../models/backbone.ts";
 * import { asLowerable } from "./onnx_graph.ts";
 *
 * const unet = createBackbone({ _class_name: "UNet2DModel", block_out_channels: [32, 32],
 *   down_block_types: ["DownBlock2D", "DownBlock2D"], up_block_types: ["UpBlock2D", "UpBlock2D"], norm_num_groups: 8 });
 * console.log(asLowerable(unet).plan.ops.length > 0); // true
 * unet.dispose();
 * ```
 */
export function asLowerable(backbone: Backbone): LowerableBackbone {
  const b = backbone as Partial<LowerableBackbone>;
  if (!b.plan || !b.resolved || !Array.isArray(b.plan.ops)) {
    throw new TypeError(
      "Backbone cannot be lowered to ONNX: it has no plan (use one made by loadBackbone or createBackbone)",
    );
  }
  return backbone as LowerableBackbone;
}

/**
 * The `temb` input of the graph for timesteps `t`: diffusers' sinusoidal embedding computed in
 * float32 (`[t.length, block_out_channels[0]]`, row-major).
 *
 * @example
 * ```ts
 * import { createBackbone } from "../models/backbone.ts";
 * import { timeEmbeddingInput } from "./onnx_graph.ts";
 *
 * const unet = createBackbone({ _class_name: "UNet2DModel", block_out_channels: [32, 32],
 *   down_block_types: ["DownBlock2D", "DownBlock2D"], up_block_types: ["UpBlock2D", "UpBlock2D"], norm_num_groups: 8 });
 * console.log(timeEmbeddingInput(unet, [30, 30]).length); // 64
 * unet.dispose();
 * ```
 */
export function timeEmbeddingInput(backbone: Backbone, t: ArrayLike<number>): Float32Array {
  const cfg = asLowerable(backbone).resolved;
  const emb = timestepEmbedding(t, cfg.channels[0], {
    flipSinToCos: cfg.flipSinToCos,
    freqShift: cfg.freqShift,
  });
  const data = emb.dataSync().slice() as Float32Array;
  emb.dispose();
  return data;
}

type Attr = number | string | number[] | { float: number };

interface NodeRecord {
  input: string[];
  output: string[];
  name: string;
  op_type: string;
  domain: string;
  attribute: Record<string, unknown>[];
}

/** Accumulates nodes and initializers with fresh value names. */
class GraphBuilder {
  readonly nodes: NodeRecord[] = [];
  readonly initializers: Record<string, unknown>[] = [];
  #count = 0;
  #consts = new Map<string, string>();
  #names = new Set<string>();

  fresh(hint: string): string {
    return `${hint}:${this.#count++}`;
  }

  node(
    op: string,
    inputs: string[],
    attrs: Record<string, Attr> = {},
    outputs: number | string[] = 1,
  ): string[] {
    const out = typeof outputs === "number"
      ? Array.from({ length: outputs }, () => this.fresh(op))
      : outputs;
    const attribute = Object.entries(attrs).map(([name, v]) => {
      if (typeof v === "string") return { name, type: ATTR_STRING, s: new TextEncoder().encode(v) };
      if (Array.isArray(v)) return { name, type: ATTR_INTS, ints: v };
      if (typeof v === "object") return { name, type: ATTR_FLOAT, f: v.float };
      return { name, type: ATTR_INT, i: v };
    });
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

  op(op: string, inputs: string[], attrs: Record<string, Attr> = {}): string {
    return this.node(op, inputs, attrs, 1)[0];
  }

  floats(name: string, dims: number[], data: Float32Array): string {
    if (this.#names.has(name)) return name;
    this.#names.add(name);
    this.initializers.push({
      name,
      dims,
      data_type: FLOAT,
      raw_data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
    });
    return name;
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
}

/** Reads a weight as float32 in PyTorch layout (OIHW convolutions, `[in, out]` linears kept). */
function readWeights(backbone: LowerableBackbone) {
  const get = (key: string): tf.Tensor => {
    const w = backbone.weights.get(key);
    if (!w) throw new RangeError(`Missing weight "${key}": the backbone is incomplete or disposed`);
    return w;
  };
  return {
    /** A convolution kernel `[kh, kw, in, out]` as OIHW data (signals: `[O, I, 1, k]`). */
    conv(key: string): { dims: number[]; data: Float32Array } {
      const w = get(key);
      const [kh, kw, ci, co] = w.shape;
      const src = w.dataSync() as Float32Array;
      const data = new Float32Array(src.length);
      // [kh, kw, ci, co] -> [co, ci, kh, kw]
      for (let y = 0; y < kh; y++) {
        for (let x = 0; x < kw; x++) {
          for (let i = 0; i < ci; i++) {
            const from = ((y * kw + x) * ci + i) * co;
            const to = (i * kh + y) * kw + x;
            for (let o = 0; o < co; o++) data[o * ci * kh * kw + to] = src[from + o];
          }
        }
      }
      return { dims: [co, ci, kh, kw], data };
    },
    /** Any other weight as stored (linears `[in, out]`, vectors). */
    raw(key: string): { dims: number[]; data: Float32Array } {
      const w = get(key);
      return { dims: [...w.shape], data: w.dataSync().slice() as Float32Array };
    },
  };
}

/**
 * Builds the ONNX graph of `backbone` with `options.blocks` as outputs, ending after the deepest
 * of them (or at `eps` when asked). Throws a `RangeError` for an unknown block or a bad size.
 *
 * @example
 * ```ts
 * import { createBackbone } from "../models/backbone.ts";
 * import { buildOnnxGraph } from "./onnx_graph.ts";
 *
 * const unet = createBackbone({ _class_name: "UNet2DModel", block_out_channels: [32, 32],
 *   down_block_types: ["DownBlock2D", "DownBlock2D"], up_block_types: ["UpBlock2D", "UpBlock2D"], norm_num_groups: 8 });
 * const early = buildOnnxGraph(unet, { blocks: [2] });
 * const full = buildOnnxGraph(unet, { blocks: [2], eps: true });
 * console.log(early.nodeCount < full.nodeCount, full.outputs.map((o) => o.name)); // true ["down_blocks.0.0", "eps"]
 * unet.dispose();
 * ```
 */
export function buildOnnxGraph(backbone: Backbone, options: OnnxGraphOptions): OnnxGraph {
  const unet = asLowerable(backbone);
  const cfg = unet.resolved;
  const oneD = cfg.dims === 1;
  const wanted = new Map<number, BlockInfo>();
  for (const ref of options.blocks) {
    const info = unet.block(ref);
    wanted.set(info.position, info);
  }
  const withEps = options.eps ?? false;
  if (wanted.size === 0 && !withEps) {
    throw new RangeError("Nothing to compute: give at least one block or set eps");
  }
  const last = withEps ? Infinity : Math.max(...wanted.keys());
  const factor = 2 ** (cfg.channels.length - 1);
  const size = options.size ? [...options.size] : oneD ? [cfg.sampleSize[1]] : [...cfg.sampleSize];
  if (size.length !== (oneD ? 1 : 2) || size.some((d) => !Number.isInteger(d) || d < 1)) {
    throw new RangeError(
      `Input size [${size}] is not valid: expected ${oneD ? "[W]" : "[H, W]"} of positive integers`,
    );
  }
  if (size.some((d) => d % factor !== 0)) {
    throw new RangeError(
      `Input size ${
        size.join("×")
      } must be a multiple of ${factor} for ${cfg.channels.length} levels`,
    );
  }
  const upMode: UpsampleLowering = oneD ? "resize" : options.upsample ?? "subpixel";
  const w = readWeights(unet);
  const g = new GraphBuilder();

  let h = oneD ? 1 : size[0];
  let wd = oneD ? size[0] : size[1];
  const cin = cfg.inChannels;

  // --- inputs: NHWC (NWC) to NCHW (N, C, 1, W) ---
  let x = oneD
    ? g.op("Reshape", [g.op("Transpose", ["xt"], { perm: [0, 2, 1] }), g.ints([0, cin, 1, wd])])
    : g.op("Transpose", ["xt"], { perm: [0, 3, 1, 2] });
  if (cfg.centerInput) {
    x = g.op("Sub", [g.op("Mul", [x, g.fill(2, [])]), g.fill(1, [])]);
  }
  let channels = cin;

  const param = (key: string): string => {
    const { dims, data } = w.raw(key);
    return g.floats(key, dims, data);
  };
  const perChannel = (key: string, c: number): string => {
    const { data } = w.raw(key);
    return g.floats(`${key}:c11`, [c, 1, 1], data);
  };
  const linear = (input: string, prefix: string): string =>
    g.op("Gemm", [input, param(`${prefix}.weight`), param(`${prefix}.bias`)]);
  const silu = (v: string): string => g.op("Mul", [v, g.op("Sigmoid", [v])]);
  const conv = (
    input: string,
    prefix: string,
    pads: [number, number, number, number],
    stride = 1,
  ): string => {
    const { dims, data } = w.conv(`${prefix}.weight`);
    const kernel = g.floats(`${prefix}.weight`, dims, data);
    return g.op("Conv", [input, kernel, param(`${prefix}.bias`)], {
      kernel_shape: dims.slice(2),
      pads,
      strides: [oneD ? 1 : stride, stride],
    });
  };
  const same = (k: number): [number, number, number, number] =>
    k === 1 ? [0, 0, 0, 0] : oneD ? [0, 1, 0, 1] : [1, 1, 1, 1];
  /**
   * GroupNorm as onnxruntime runs it fastest: `InstanceNormalization` over `[N, G, −1]` (one
   * statistic per sample and group), then the per-channel affine. An `addend` (`[N, C]`,
   * constant over positions: the projected time embedding) is added first.
   */
  const groupNorm = (
    input: string,
    prefix: string,
    c: number,
    groups: number,
    addend?: string,
  ): string => {
    if (addend) {
      input = g.op("Add", [input, g.op("Reshape", [addend, g.ints([0, c, 1, 1])])]);
    }
    const grouped = g.op("Reshape", [input, g.ints([0, groups, -1])]);
    const normed = g.op("InstanceNormalization", [
      grouped,
      g.fill(1, [groups]),
      g.fill(0, [groups]),
    ], { epsilon: { float: cfg.eps } });
    const back = g.op("Reshape", [normed, g.ints([0, c, h, wd])]);
    return g.op("Add", [
      g.op("Mul", [back, perChannel(`${prefix}.weight`, c)]),
      perChannel(`${prefix}.bias`, c),
    ]);
  };

  // --- time embedding MLP: temb [N, ch0] -> silu(linear_2(silu(linear_1(temb)))) ---
  const temb = linear(
    silu(linear("temb", "time_embedding.linear_1")),
    "time_embedding.linear_2",
  );
  let tembAct: string | undefined;
  const tembSilu = (): string => (tembAct ??= silu(temb));

  const skips: string[] = [];
  const outputs: OnnxGraphOutput[] = [];
  const emitOutput = (value: string, name: string, block: BlockInfo | null, c: number): void => {
    if (oneD) {
      const flat = g.op("Reshape", [value, g.ints([0, c, wd])]);
      g.node("Transpose", [flat], { perm: [0, 2, 1] }, [name]);
    } else g.node("Transpose", [value], { perm: [0, 2, 3, 1] }, [name]);
    outputs.push({ name, block, shape: oneD ? [wd, c] : [h, wd, c] });
  };

  let done = false;
  for (const op of unet.plan.ops) {
    if (done) break;
    switch (op.op) {
      case "conv_in":
        x = conv(x, "conv_in", same(3));
        channels = op.cout;
        break;
      case "resnet": {
        if (op.popSkip) {
          const skip = skips.pop()!;
          x = g.op("Concat", [x, skip], { axis: 1 });
        }
        const p = op.prefix;
        let v = silu(groupNorm(x, `${p}.norm1`, op.cin, cfg.groups));
        v = conv(v, `${p}.conv1`, same(3));
        const proj = linear(tembSilu(), `${p}.time_emb_proj`);
        v = silu(groupNorm(v, `${p}.norm2`, op.cout, cfg.groups, proj));
        v = conv(v, `${p}.conv2`, same(3));
        const shortcut = op.cin !== op.cout ? conv(x, `${p}.conv_shortcut`, same(1)) : x;
        x = g.op("Add", [shortcut, v]);
        if (op.scale !== 1) x = g.op("Div", [x, g.fill(op.scale, [])]);
        channels = op.cout;
        break;
      }
      case "attention":
        x = attention(x, op.prefix, op.channels, op.heads, op.groups, op.rescale);
        break;
      case "downsample": {
        const pads: [number, number, number, number] = cfg.downsamplePadding === 0
          ? [0, 0, oneD ? 0 : 1, 1]
          : oneD
          ? [0, 1, 0, 1]
          : [1, 1, 1, 1];
        x = conv(x, op.prefix, pads, 2);
        const half = (n: number) =>
          Math.floor((n + (cfg.downsamplePadding === 0 ? 1 : 2) - 3) / 2) + 1;
        if (!oneD) h = half(h);
        wd = half(wd);
        break;
      }
      case "upsample":
        x = upMode === "subpixel" ? subpixelUpsample(x, op.prefix) : resizeUpsample(x, op.prefix);
        if (!oneD) h *= 2;
        wd *= 2;
        break;
      case "emit": {
        if (op.pushSkip) skips.push(x);
        const info = wanted.get(op.block);
        if (info) emitOutput(x, info.name, info, channels);
        if (op.block >= last) done = true;
        break;
      }
      case "conv_out": {
        let v = silu(groupNorm(x, "conv_norm_out", op.cin, cfg.groups));
        v = conv(v, "conv_out", same(3));
        emitOutput(v, "eps", null, op.cout);
        done = true;
        break;
      }
    }
  }

  function attention(
    input: string,
    prefix: string,
    c: number,
    heads: number,
    groups: number,
    rescale: number,
  ): string {
    const d = c / heads;
    const length = h * wd;
    // Fold 1/sqrt(d) into the query projection; fuse q, k, v into one [C, 3C] MatMul.
    const scale = Math.fround(1 / Math.sqrt(d));
    const parts = ["to_q", "to_k", "to_v"].map((p) => ({
      weight: w.raw(`${prefix}.${p}.weight`).data,
      bias: w.raw(`${prefix}.${p}.bias`).data,
    }));
    const wqkv = new Float32Array(c * 3 * c);
    const bqkv = new Float32Array(3 * c);
    parts.forEach(({ weight, bias }, j) => {
      const s = j === 0 ? scale : 1;
      for (let i = 0; i < c; i++) {
        for (let o = 0; o < c; o++) wqkv[i * 3 * c + j * c + o] = weight[i * c + o] * s;
      }
      for (let o = 0; o < c; o++) bqkv[j * c + o] = bias[o] * s;
    });
    const normed = groupNorm(input, `${prefix}.group_norm`, c, groups);
    const tokens = g.op("Transpose", [g.op("Reshape", [normed, g.ints([0, c, length])])], {
      perm: [0, 2, 1],
    });
    const qkv = g.op("Add", [
      g.op("MatMul", [tokens, g.floats(`${prefix}.to_qkv.weight`, [c, 3 * c], wqkv)]),
      g.floats(`${prefix}.to_qkv.bias`, [3 * c], bqkv),
    ]);
    const [q, k, v] = g.node("Split", [qkv], { axis: 2 }, 3);
    let attended: string;
    if (heads === 1) {
      const scores = g.op("MatMul", [q, g.op("Transpose", [k], { perm: [0, 2, 1] })]);
      attended = g.op("MatMul", [g.op("Softmax", [scores], { axis: -1 }), v]);
    } else {
      const split = (t: string, perm: number[]) =>
        g.op("Transpose", [g.op("Reshape", [t, g.ints([0, 0, heads, d])])], { perm });
      const scores = g.op("MatMul", [split(q, [0, 2, 1, 3]), split(k, [0, 2, 3, 1])]);
      const o = g.op("MatMul", [g.op("Softmax", [scores], { axis: -1 }), split(v, [0, 2, 1, 3])]);
      attended = g.op("Reshape", [
        g.op("Transpose", [o], { perm: [0, 2, 1, 3] }),
        g.ints([0, 0, c]),
      ]);
    }
    const projected = g.op("Add", [
      g.op("MatMul", [attended, param(`${prefix}.to_out.0.weight`)]),
      param(`${prefix}.to_out.0.bias`),
    ]);
    const spatial = g.op("Reshape", [
      g.op("Transpose", [projected], { perm: [0, 2, 1] }),
      g.ints([0, c, h, wd]),
    ]);
    const sum = g.op("Add", [spatial, input]);
    return rescale === 1 ? sum : g.op("Div", [sum, g.fill(rescale, [])]);
  }

  function resizeUpsample(input: string, prefix: string): string {
    const wide = g.op("Resize", [
      input,
      "",
      g.floats(`${prefix}:scales`, [4], new Float32Array([1, 1, oneD ? 1 : 2, 2])),
    ], {
      mode: "nearest",
      coordinate_transformation_mode: "asymmetric",
      nearest_mode: "floor",
    });
    return conv(wide, prefix, same(3));
  }

  /**
   * Nearest ×2 then a 3×3 convolution (padding 1): output pixel (2i + a, 2j + b) only sees input
   * rows {i − 1, i} (a = 0) or {i, i + 1} (a = 1), with the kernel rows that land on the same
   * input row summed; likewise for columns. So each of the 4 phases is a 2×2 convolution of the
   * input, and `DepthToSpace` (DCR) interleaves them.
   */
  function subpixelUpsample(input: string, prefix: string): string {
    const { dims, data } = w.conv(`${prefix}.weight`);
    const [o, i] = dims;
    const bias = param(`${prefix}.bias`);
    // Row (or column) taps of phase a: which kernel rows sum into each of the 2 input rows.
    const taps = [[[0], [1, 2]], [[0, 1], [2]]];
    const phases: string[] = [];
    for (const a of [0, 1]) {
      for (const b of [0, 1]) {
        const k = new Float32Array(o * i * 4);
        for (let oc = 0; oc < o; oc++) {
          for (let ic = 0; ic < i; ic++) {
            const base = (oc * i + ic) * 9;
            for (let r = 0; r < 2; r++) {
              for (let s = 0; s < 2; s++) {
                let sum = 0;
                for (const kr of taps[a][r]) {
                  for (const ks of taps[b][s]) sum += data[base + kr * 3 + ks];
                }
                k[(oc * i + ic) * 4 + r * 2 + s] = sum;
              }
            }
          }
        }
        const kernel = g.floats(`${prefix}.weight:phase${a}${b}`, [o, i, 2, 2], k);
        phases.push(g.op("Conv", [input, kernel, bias], {
          kernel_shape: [2, 2],
          pads: [a === 0 ? 1 : 0, b === 0 ? 1 : 0, a === 0 ? 0 : 1, b === 0 ? 0 : 1],
          strides: [1, 1],
        }));
      }
    }
    return g.op("DepthToSpace", [g.op("Concat", phases, { axis: 1 })], {
      blocksize: 2,
      mode: "DCR",
    });
  }

  const dim = (v: number | string) => typeof v === "number" ? { dim_value: v } : { dim_param: v };
  const valueInfo = (name: string, shape: (number | string)[]) => ({
    name,
    type: { tensor_type: { elem_type: FLOAT, shape: { dim: shape.map(dim) } } },
  });
  const graph = {
    name: "diffprobe_unet",
    node: g.nodes,
    initializer: g.initializers,
    input: [
      valueInfo("xt", ["N", ...size, cin]),
      valueInfo("temb", ["N", cfg.channels[0]]),
    ],
    output: outputs.map((o) => valueInfo(o.name, ["N", ...o.shape])),
  };
  const type = modelProto();
  const model = type.encode({
    ir_version: IR_VERSION,
    opset_import: [{ domain: "", version: OPSET }],
    producer_name: "@diffprobe/core",
    producer_version: "0.1.0",
    graph,
  }).finish();
  const opCounts: Record<string, number> = {};
  for (const n of g.nodes) opCounts[n.op_type] = (opCounts[n.op_type] ?? 0) + 1;
  return {
    model,
    inputs: { xt: "xt", temb: "temb" },
    outputs,
    size,
    nodeCount: g.nodes.length,
    opCounts,
  };
}
