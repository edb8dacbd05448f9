/**
 * Lowering a loaded UNet to an ONNX graph, in TypeScript: the backbone's plan (the exact op
 * sequence of `UNet.forward`) becomes ONNX nodes, one lowering per plan op (`_lower_unet.ts`),
 * built with a small graph builder (`_graph_builder.ts`, encoded with protobufjs from a minimal
 * hand-written subset of `onnx.proto`). Weights become initializers (convolutions transposed
 * back to OIHW), the tapped blocks become graph outputs, and the graph stops at the deepest of
 * them. Inputs are `xt` (NHWC, or NWC for signals) and `temb`, the sinusoidal timestep embedding
 * (see {@linkcode timeEmbeddingInput}); outputs are NHWC (NWC), as on the TensorFlow.js path.
 *
 * Inside, the graph is NCHW so that onnxruntime's CPU provider can run its blocked-layout
 * (NCHWc) convolutions; a nearest-neighbour ×2 upsample followed by a 3×3 convolution is lowered
 * to four 2×2 convolutions (one per output phase) and a `DepthToSpace`, which is the same
 * function with 2.25× fewer multiply-adds.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { createBackbone } from "../models/backbone.ts";
 * import { buildOnnxGraph } from "./onnx_graph.ts";
 *
 * const unet = createBackbone({
 *   _class_name: "UNet2DModel", block_out_channels: [32, 64], layers_per_block: 1,
 *   down_block_types: ["DownBlock2D", "AttnDownBlock2D"], up_block_types: ["AttnUpBlock2D", "UpBlock2D"],
 *   norm_num_groups: 8, sample_size: 16,
 * });
 * const graph = buildOnnxGraph(unet, { blocks: [3] });
 * assert.deepEqual(graph.outputs.map((o) => o.name), ["down_blocks.0.downsample"]);
 * assert.ok(graph.model.byteLength > 0);
 * unet.dispose();
 * ```
 *
 * @module
 */
import type { ResolvedConfig } from "../models/config.ts";
import type { Backbone, BlockRef } from "../models/unet.ts";
import type { BlockInfo, UNetPlan } from "../models/unet_plan.ts";
import { timestepEmbedding } from "../nn/timestep_embedding.ts";
import { show } from "../base/validate.ts";
import { GraphBuilder } from "./_graph_builder.ts";
import {
  builderLowering,
  lowerOutput,
  lowerPlan,
  onnxWeights,
  type UpsampleLowering,
} from "./_lower_unet.ts";

export type { UpsampleLowering };

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
 * import assert from "node:assert/strict";
 * import { createBackbone } from "../models/backbone.ts";
 * import { asLowerable } from "./onnx_graph.ts";
 *
 * const unet = createBackbone({ _class_name: "UNet2DModel", block_out_channels: [32, 32],
 *   down_block_types: ["DownBlock2D", "DownBlock2D"], up_block_types: ["UpBlock2D", "UpBlock2D"], norm_num_groups: 8 });
 * assert.ok(asLowerable(unet).plan.ops.length > 0);
 * assert.throws(() => asLowerable({ kind: "unet2d" } as never), TypeError);
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
 * import assert from "node:assert/strict";
 * import { createBackbone } from "../models/backbone.ts";
 * import { timeEmbeddingInput } from "./onnx_graph.ts";
 *
 * const unet = createBackbone({ _class_name: "UNet2DModel", block_out_channels: [32, 32],
 *   down_block_types: ["DownBlock2D", "DownBlock2D"], up_block_types: ["UpBlock2D", "UpBlock2D"], norm_num_groups: 8 });
 * const temb = timeEmbeddingInput(unet, [30, 30]);
 * assert.equal(temb.length, 64); // 2 × block_out_channels[0]
 * assert.deepEqual(temb.slice(0, 32), temb.slice(32));
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

/**
 * Builds the ONNX graph of `backbone` with `options.blocks` as outputs, ending after the deepest
 * of them (or at `eps` when asked). Throws a `RangeError` for an unknown block or a bad size.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { createBackbone } from "../models/backbone.ts";
 * import { buildOnnxGraph } from "./onnx_graph.ts";
 *
 * const unet = createBackbone({ _class_name: "UNet2DModel", block_out_channels: [32, 32],
 *   down_block_types: ["DownBlock2D", "DownBlock2D"], up_block_types: ["UpBlock2D", "UpBlock2D"], norm_num_groups: 8 });
 * const early = buildOnnxGraph(unet, { blocks: [2] });
 * const full = buildOnnxGraph(unet, { blocks: [2], eps: true });
 * assert.ok(early.nodeCount < full.nodeCount);
 * assert.deepEqual(full.outputs.map((o) => o.name), ["down_blocks.0.0", "eps"]);
 * unet.dispose();
 * ```
 */
export function buildOnnxGraph(backbone: Backbone, options: OnnxGraphOptions): OnnxGraph {
  const unet = asLowerable(backbone);
  const cfg = unet.resolved;
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
  const size = graphSize(cfg, options.size);
  const g = new GraphBuilder();
  const L = builderLowering(g, cfg, onnxWeights(unet.weights), {
    fold: true,
    upsample: options.upsample,
  });
  const xt = g.input("xt", ["N", ...size, cfg.inChannels]);
  const temb = g.input("temb", ["N", cfg.channels[0]]);
  const outputs: OnnxGraphOutput[] = [];
  const eps = lowerPlan(L, unet.plan.ops, { xt, temb, size }, (position, value) => {
    const info = wanted.get(position);
    if (info) {
      outputs.push({ name: info.name, block: info, shape: lowerOutput(L, value, info.name) });
    }
    return position >= last;
  });
  if (eps) outputs.push({ name: "eps", block: null, shape: lowerOutput(L, eps, "eps") });
  return {
    model: g.encode("diffprobe_unet"),
    inputs: { xt, temb },
    outputs,
    size,
    nodeCount: g.nodes.length,
    opCounts: g.opCounts(),
  };
}

/** The input size of a graph: `size` checked, or the config's `sample_size`. */
function graphSize(cfg: ResolvedConfig, given: readonly number[] | undefined): number[] {
  const oneD = cfg.dims === 1;
  const size = given ? [...given] : oneD ? [cfg.sampleSize[1]] : [...cfg.sampleSize];
  if (size.length !== (oneD ? 1 : 2) || size.some((d) => !Number.isInteger(d) || d < 1)) {
    throw new RangeError(
      `Input size must be ${oneD ? "[W]" : "[H, W]"} of positive integers, got ${show(size)}`,
    );
  }
  const factor = 2 ** (cfg.channels.length - 1);
  if (size.some((d) => d % factor !== 0)) {
    throw new RangeError(
      `Input size must be a multiple of ${factor} on each side for ${cfg.channels.length} levels, got ${
        size.join("×")
      }`,
    );
  }
  return size;
}
