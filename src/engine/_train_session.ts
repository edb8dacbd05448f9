/**
 * One onnxruntime session for a training graph, reused across steps: float32 feeds in, float32
 * outputs out. Internal to `src/engine/`.
 *
 * @module
 */

import { loadOrt, type Ort } from "./ort.ts";
import { createDeviceSession, type DeviceChoice } from "./device.ts";
import type { ResolvedDevice } from "../base/device.ts";

type Session = Awaited<ReturnType<Ort["InferenceSession"]["create"]>>;

/** Options of {@linkcode TrainSession.create}. */
export interface TrainSessionOptions {
  /** Intra-op threads (default `navigator.hardwareConcurrency`). */
  threads?: number;
  /** onnxruntime's graph optimisation level (default `"all"`). */
  graphOptimizationLevel?: "disabled" | "basic" | "extended" | "all";
  /**
   * Where the session runs (default: the CPU), as decided by `chooseDevice`: CUDA, or for
   * `"auto"` the CPU when the CUDA provider fails to start (said once on stderr).
   */
  device?: DeviceChoice;
}

/** A session with static input and output shapes. */
export class TrainSession {
  #ort: Ort;
  #session: Session;
  #shapes: Map<string, number[]>;
  #released = false;
  /** The device the session runs on. */
  readonly device: ResolvedDevice;

  private constructor(
    ort: Ort,
    session: Session,
    shapes: Map<string, number[]>,
    device: ResolvedDevice,
  ) {
    this.#ort = ort;
    this.#session = session;
    this.#shapes = shapes;
    this.device = device;
  }

  /** Creates a session for `model` whose inputs and outputs have the given shapes. */
  static async create(
    model: Uint8Array,
    shapes: Map<string, number[]>,
    options: TrainSessionOptions = {},
  ): Promise<TrainSession> {
    const ort = await loadOrt();
    const choice: DeviceChoice = options.device ??
      { device: "cpu", reason: "asked for", auto: false };
    const made = await createDeviceSession(
      (providers) =>
        ort.InferenceSession.create(model, {
          intraOpNumThreads: options.threads ?? navigator.hardwareConcurrency ?? 1,
          interOpNumThreads: 1,
          executionMode: "sequential",
          graphOptimizationLevel: options.graphOptimizationLevel ?? "all",
          enableCpuMemArena: true,
          enableMemPattern: true,
          logSeverityLevel: 3,
          executionProviders: providers,
          // Idle pool threads sleep instead of spinning: between steps the JavaScript side (the
          // next batch, TensorFlow.js work) needs the cores.
          extra: { session: { intra_op: { allow_spinning: "0" } } },
        }),
      choice,
      false, // fp32 on CUDA (NVIDIA_TF32_OVERRIDE=0), as for extraction by default
    );
    return new TrainSession(ort, made.session, shapes, made.device);
  }

  /**
   * Runs one step: every input by name; resolves to the requested outputs. Outputs found in
   * `into` are written by onnxruntime straight into those arrays (no allocation, no copy); the
   * others are returned fresh.
   */
  async run(
    feeds: Record<string, Float32Array>,
    outputs: readonly string[],
    into: Record<string, Float32Array> = {},
  ): Promise<Record<string, Float32Array>> {
    if (this.#released) throw new Error("This training session was released");
    const ortFeeds: Record<string, InstanceType<Ort["Tensor"]>> = {};
    for (const [name, data] of Object.entries(feeds)) {
      const shape = this.#shapes.get(name);
      if (!shape) throw new RangeError(`The training graph has no input "${name}"`);
      ortFeeds[name] = new this.#ort.Tensor("float32", data, shape);
    }
    const fetches: Record<string, InstanceType<Ort["Tensor"]> | null> = {};
    for (const name of outputs) {
      const buffer = into[name];
      fetches[name] = buffer
        ? new this.#ort.Tensor("float32", buffer, this.#shapes.get(name)!)
        : null;
    }
    const results = await this.#session.run(ortFeeds, fetches);
    const out: Record<string, Float32Array> = {};
    for (const name of outputs) out[name] = into[name] ?? results[name].data as Float32Array;
    return out;
  }

  /** Releases the native session. Idempotent. */
  release(): void {
    if (this.#released) return;
    this.#released = true;
    this.#session.release().catch(() => {});
  }
}
