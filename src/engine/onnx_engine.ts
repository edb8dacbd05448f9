/**
 * Fast frozen extraction with onnxruntime: the backbone is lowered to an ONNX graph that ends at
 * the deepest tapped block ({@linkcode buildOnnxGraph}) and run by `onnxruntime-node` on the CPU
 * or, with the `device` option, on CUDA (see `./device.ts`: never a silent fallback). `onnxruntime-node` is loaded by a
 * dynamic import, so code that never asks for this engine — or a machine where the package
 * cannot load — keeps the TensorFlow.js path; {@linkcode onnxRuntimeAvailable} tells which.
 * Under Deno the package needs `--allow-ffi` (it is a Node-API addon) besides read access.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import * as tf from "@tensorflow/tfjs";
 * import { createBackbone, createOnnxExtractor, onnxRuntimeAvailable } from "@diffprobe/core";
 *
 * const unet = createBackbone({
 *   _class_name: "UNet2DModel", block_out_channels: [32, 64], layers_per_block: 1,
 *   down_block_types: ["DownBlock2D", "AttnDownBlock2D"], up_block_types: ["AttnUpBlock2D", "UpBlock2D"],
 *   norm_num_groups: 8, sample_size: 16,
 * });
 * if (await onnxRuntimeAvailable()) {
 *   const extractor = await createOnnxExtractor(unet, [3, "up_blocks.0.0"]);
 *   const xt = new Float32Array(2 * 16 * 16 * 3).fill(0.5);
 *   const blocks = await extractor.run(xt, [2, 16, 16, 3], [30, 30]);
 *   assert.deepEqual(blocks.get("up_blocks.0.0")!.shape, [2, 8, 8, 64]);
 *   tf.dispose([...blocks.values()]);
 *   extractor.dispose();
 * }
 * unet.dispose();
 * ```
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import type { Backbone, BlockRef } from "../models/unet.ts";
import type { BlockInfo } from "../models/unet_plan.ts";
import { checkTimestep } from "../models/schedule.ts";
import type { BlockArray, Extractor } from "./extractor.ts";
import { checkDevice, type Device, type ResolvedDevice } from "../base/device.ts";
import { chooseDevice, createDeviceSession, type DeviceChoice } from "./device.ts";
import {
  asLowerable,
  buildOnnxGraph,
  type OnnxGraph,
  timeEmbeddingInput,
  type UpsampleLowering,
} from "./onnx_graph.ts";

import { loadOrt, type Ort } from "./ort.ts";

export { onnxRuntimeAvailable, OnnxRuntimeUnavailableError } from "./ort.ts";
type Session = Awaited<ReturnType<Ort["InferenceSession"]["create"]>>;

/** An execution provider this engine can run on (the device that ran). */
export type OnnxExecutionProvider = ResolvedDevice;

/** Options of {@linkcode createOnnxExtractor}. */
export interface OnnxExtractorOptions {
  /** Intra-op threads (default: `navigator.hardwareConcurrency`). */
  threads?: number;
  /**
   * Where the sessions run (default `"auto"`): `"cuda"` is an error naming what is missing when
   * CUDA cannot run here; `"auto"` takes CUDA when it loads, else the CPU, and says which once
   * on stderr. {@linkcode OnnxExtractor.device} reports the device that ran.
   */
  device?: Device;
  /**
   * Allow TF32 tensor-core maths on CUDA (default `false`: full fp32, via
   * `NVIDIA_TF32_OVERRIDE=0`, which needs `--allow-env=NVIDIA_TF32_OVERRIDE`). No effect on the CPU.
   */
  tf32?: boolean;
  /** onnxruntime's graph optimisation level (default `"all"`). */
  graphOptimizationLevel?: "disabled" | "basic" | "extended" | "all";
  /** Lowering of the upsamplers (see {@linkcode OnnxGraphOptions}); default `"subpixel"`. */
  upsample?: UpsampleLowering;
  /** Also return the noise prediction under the key `"eps"` (runs the whole network). */
  eps?: boolean;
  /**
   * Write onnxruntime's per-node profile (JSON; the file name starts with this prefix, the file
   * is written by {@linkcode OnnxExtractor.endProfiling}): it names the execution provider that
   * ran each node. Off by default.
   */
  profile?: string;
}

/**
 * Runs a backbone up to its deepest tapped block with onnxruntime: `extract` on JS arrays (the
 * {@linkcode Extractor} interface, no TensorFlow.js tensors involved), `run` on tensors.
 */
export interface OnnxExtractor extends Extractor {
  /** The tapped blocks, in execution order. */
  readonly blocks: readonly BlockInfo[];
  /** The device the sessions run on (decided at creation; `"auto"` resolved). */
  readonly device: ResolvedDevice;
  /** Why that device (GPU and library versions, or what CUDA is missing for `"auto"`). */
  readonly deviceReason: string;
  /** Whether TF32 maths is allowed (only ever on CUDA, when asked for). */
  readonly tf32: boolean;
  /** The same as {@linkcode OnnxExtractor.device} (kept for earlier callers). */
  readonly executionProvider: OnnxExecutionProvider;
  /**
   * Runs `xt` (`[N, H, W, C]` images or `[N, W, C]` signals, as a row-major `Float32Array`
   * with its `shape`, or a tensor of that shape) at timesteps `t` (one for all samples or one
   * per sample). Resolves to the tapped block outputs keyed by block name, NHWC (NWC), owned
   * by the caller.
   */
  run(
    xt: Float32Array | tf.Tensor,
    shape: readonly number[],
    t: number | ArrayLike<number>,
  ): Promise<Map<string, tf.Tensor>>;
  /** Ends profiling (with the `profile` option): onnxruntime writes the profile files. */
  endProfiling(): void;
  /** Releases this extractor's sessions (shared sessions are released by their last user). */
  dispose(): void;
}

interface SessionEntry {
  promise: Promise<
    { session: Session; graph: OnnxGraph; provider: OnnxExecutionProvider; reason: string }
  >;
  /** The session once created (so that `dispose` can release it synchronously). */
  session?: Session;
  refs: number;
}

/** Sessions shared by every extractor of the same weights, outputs, size and settings. */
const sessions = new WeakMap<Map<string, tf.Tensor>, Map<string, SessionEntry>>();

async function createSession(
  ort: Ort,
  graph: OnnxGraph,
  options: OnnxExtractorOptions,
  choice: DeviceChoice,
): Promise<{ session: Session; provider: OnnxExecutionProvider; reason: string }> {
  const threads = options.threads ?? navigator.hardwareConcurrency ?? 1;
  const base = {
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    executionMode: "sequential" as const,
    graphOptimizationLevel: options.graphOptimizationLevel ?? "all",
    enableCpuMemArena: true,
    enableMemPattern: true,
    logSeverityLevel: 3 as const,
    ...(options.profile ? { enableProfiling: true, profileFilePrefix: options.profile } : {}),
  };
  const { session, device, reason } = await createDeviceSession(
    (providers) =>
      ort.InferenceSession.create(graph.model, { ...base, executionProviders: providers }),
    choice,
    options.tf32 ?? false,
  );
  return { session, provider: device, reason };
}

/**
 * Creates an extractor that runs `backbone` up to the deepest of `blocks` with onnxruntime.
 * Rejects with an {@linkcode OnnxRuntimeUnavailableError} when `onnxruntime-node` cannot be
 * loaded, a `RangeError` for an unknown block. Sessions are built lazily per input size and
 * cached per set of outputs.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { createBackbone, createOnnxExtractor, onnxRuntimeAvailable } from "@diffprobe/core";
 *
 * const unet = createBackbone({ _class_name: "UNet2DModel", block_out_channels: [32, 32],
 *   down_block_types: ["DownBlock2D", "DownBlock2D"], up_block_types: ["UpBlock2D", "UpBlock2D"], norm_num_groups: 8 });
 * if (await onnxRuntimeAvailable()) {
 *   const extractor = await createOnnxExtractor(unet, ["down_blocks.0.0"], { threads: 2 });
 *   assert.deepEqual(extractor.blocks.map((b) => b.index), [2]);
 *   extractor.dispose();
 * }
 * unet.dispose();
 * ```
 */
export async function createOnnxExtractor(
  backbone: Backbone,
  blocks: readonly BlockRef[],
  options: OnnxExtractorOptions = {},
): Promise<OnnxExtractor> {
  // 1. The blocks (each once, in network order) and the options, checked before any work.
  const unet = asLowerable(backbone);
  const infos = [...new Map(blocks.map((r) => {
    const info = unet.block(r);
    return [info.position, info] as const;
  })).values()].sort((a, b) => a.position - b.position);
  if (infos.length === 0 && !options.eps) {
    throw new RangeError("Nothing to extract: give at least one block or set eps");
  }
  if (
    options.threads !== undefined && !(Number.isInteger(options.threads) && options.threads > 0)
  ) {
    throw new RangeError(`Thread count must be a positive integer, got ${options.threads}`);
  }
  const device = checkDevice(options.device);
  // 2. The runtime, the device, and the session table shared by extractors of these weights.
  const ort = await loadOrt();
  const choice = await chooseDevice(device, { tf32: options.tf32 });
  let table = sessions.get(unet.weights);
  if (!table) sessions.set(unet.weights, table = new Map());
  const core: ExtractorCore = {
    unet,
    infos,
    options,
    ort,
    choice,
    table,
    acquired: new Set(),
    provider: choice.device,
    reason: choice.reason,
    disposed: false,
    queue: Promise.resolve(),
  };
  return extractorOf(core);
}

/** The state of one {@linkcode createOnnxExtractor} extractor. */
interface ExtractorCore {
  readonly unet: ReturnType<typeof asLowerable>;
  readonly infos: readonly BlockInfo[];
  readonly options: OnnxExtractorOptions;
  readonly ort: Ort;
  readonly choice: DeviceChoice;
  /** The shared sessions of these weights, by settings. */
  readonly table: Map<string, SessionEntry>;
  /** The keys of `table` this extractor holds a reference to. */
  readonly acquired: Set<string>;
  /** The device that ran last, and why. */
  provider: OnnxExecutionProvider;
  reason: string;
  disposed: boolean;
  /** Runs one after another (a session runs one call at a time). */
  queue: Promise<unknown>;
}

/** The public face of an extractor's state. */
function extractorOf(s: ExtractorCore): OnnxExtractor {
  const extract = (
    xt: Float32Array | tf.Tensor,
    shape: readonly number[],
    t: number | ArrayLike<number>,
  ): Promise<Map<string, BlockArray>> => extractBlocks(s, xt, shape, t);
  return {
    blocks: s.infos,
    get device() {
      return s.provider;
    },
    get deviceReason() {
      return s.reason;
    },
    get tf32() {
      return s.provider === "cuda" && (s.options.tf32 ?? false);
    },
    get executionProvider() {
      return s.provider;
    },
    extract,
    async run(xt, shape, t): Promise<Map<string, tf.Tensor>> {
      const out = new Map<string, tf.Tensor>();
      for (const [name, block] of await extract(xt, shape, t)) {
        out.set(name, tf.tensor(block.data, block.shape));
      }
      return out;
    },
    endProfiling() {
      for (const key of s.acquired) s.table.get(key)?.session?.endProfiling();
    },
    dispose() {
      if (s.disposed) return;
      s.disposed = true;
      for (const key of s.acquired) {
        const entry = s.table.get(key);
        if (!entry) continue;
        if (--entry.refs === 0) {
          s.table.delete(key);
          // Released now when built (not in a later microtask: the runtime may be shutting
          // down), else by the builder when it finishes.
          entry.session?.release().catch(() => {});
        }
      }
      s.acquired.clear();
    },
  };
}

/** The session for inputs of spatial size `size`: shared when one exists, else built. */
function acquireSession(
  s: ExtractorCore,
  size: number[],
): Promise<{ session: Session; graph: OnnxGraph }> {
  const { options, choice, table } = s;
  const key = JSON.stringify({
    blocks: s.infos.map((b) => b.position),
    eps: options.eps ?? false,
    size,
    threads: options.threads ?? null,
    device: choice.device,
    tf32: choice.device === "cuda" && (options.tf32 ?? false),
    level: options.graphOptimizationLevel ?? "all",
    up: options.upsample ?? null,
    profile: options.profile ?? null,
  });
  let entry = table.get(key);
  if (!entry) {
    const promise = (async () => {
      const graph = buildOnnxGraph(s.unet, {
        blocks: s.infos.map((b) => b.name),
        eps: options.eps,
        size,
        upsample: options.upsample,
      });
      const { session, provider, reason } = await createSession(s.ort, graph, options, choice);
      // The encoded model is no longer needed once the session holds the weights.
      graph.model = new Uint8Array(0);
      return { session, graph, provider, reason };
    })();
    const created: SessionEntry = { promise, refs: 0 };
    entry = created;
    table.set(key, entry);
    promise.then((e) => {
      if (created.refs > 0) created.session = e.session;
      else e.session.release().catch(() => {}); // every user left while it was built
    }, () => table.delete(key));
  }
  if (!s.acquired.has(key)) {
    s.acquired.add(key);
    entry.refs++;
  }
  return entry.promise.then((e) => {
    s.provider = e.provider;
    s.reason = e.reason;
    return e;
  });
}

/** Checks an input against the network; resolves to its values and one timestep per sample. */
async function extractInput(
  s: ExtractorCore,
  xt: Float32Array | tf.Tensor,
  shape: readonly number[],
  t: number | ArrayLike<number>,
): Promise<{ data: Float32Array; ts: number[] }> {
  const { unet } = s;
  const oneD = unet.kind === "unet1d";
  const cin = unet.resolved.inChannels;
  const rank = oneD ? 3 : 4;
  const layout = oneD ? "[N, W, C]" : "[N, H, W, C]";
  if (
    shape.length !== rank || shape[rank - 1] !== cin ||
    shape.some((d) => !Number.isInteger(d) || d < 1)
  ) {
    throw new RangeError(
      `Input shape [${shape}] does not fit this ${unet.kind}: expected ${layout} with C = ${cin}`,
    );
  }
  if (xt instanceof tf.Tensor && xt.shape.join(",") !== shape.join(",")) {
    throw new RangeError(`Input tensor shape [${xt.shape}] differs from the given [${shape}]`);
  }
  const n = shape[0];
  const count = shape.reduce((a, b) => a * b, 1);
  const data = xt instanceof tf.Tensor ? await xt.data() as Float32Array : xt;
  if (data.length !== count) {
    throw new RangeError(`Input has ${data.length} values, but shape [${shape}] needs ${count}`);
  }
  const ts = typeof t === "number" ? new Array<number>(n).fill(t) : Array.from(t);
  if (ts.length !== n) throw new RangeError(`Got ${ts.length} timesteps for a batch of ${n}`);
  ts.forEach((ti) => checkTimestep(ti, unet.schedule.timesteps));
  return { data, ts };
}

/** One extraction: check the input, run the session (queued), return the blocks' arrays. */
async function extractBlocks(
  s: ExtractorCore,
  xt: Float32Array | tf.Tensor,
  shape: readonly number[],
  t: number | ArrayLike<number>,
): Promise<Map<string, BlockArray>> {
  // 1. Check the input and find (or build) the session for its size.
  if (s.disposed) throw new TypeError("This ONNX extractor was disposed");
  const { data, ts } = await extractInput(s, xt, shape, t);
  const n = shape[0];
  const { session, graph } = await acquireSession(s, shape.slice(1, -1));
  // 2. The feeds: the noisy input and its time embedding input.
  const { ort, unet } = s;
  const feeds = {
    [graph.inputs.xt]: new ort.Tensor("float32", data, [...shape]),
    [graph.inputs.temb]: new ort.Tensor(
      "float32",
      timeEmbeddingInput(unet, ts),
      [n, unet.resolved.channels[0]],
    ),
  };
  // 3. Preallocated outputs: onnxruntime writes each result (copied back from the GPU on CUDA)
  // straight into the buffer that becomes the returned tensor, with no copy in between.
  const buffers = graph.outputs.map((o) => new Float32Array(o.shape.reduce((a, b) => a * b, n)));
  const fetches = Object.fromEntries(graph.outputs.map((o, i) => [
    o.name,
    new ort.Tensor("float32", buffers[i], [n, ...o.shape]),
  ]));
  // 4. Run after the calls before it.
  const pending = s.queue.then(() => session.run(feeds, fetches));
  s.queue = pending.catch(() => {});
  await pending;
  const out = new Map<string, BlockArray>();
  graph.outputs.forEach((o, i) => out.set(o.name, { data: buffers[i], shape: [n, ...o.shape] }));
  return out;
}
