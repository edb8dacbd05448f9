/**
 * Which device runs the onnxruntime sessions, decided up front and never silently: CUDA needs an
 * NVIDIA GPU with a driver for CUDA 13, onnxruntime's CUDA provider beside `libonnxruntime.so.1`
 * (`installCudaProvider`), and the CUDA 13 / cuDNN 9 libraries on the library search path.
 * {@linkcode cudaStatus} checks each of these itself (the files, `libcuda.so.1` through FFI for the
 * GPU and driver version, each library by `dlopen` as the provider would load it), so that a
 * missing piece is named with the search path that was tried, instead of onnxruntime's first
 * `dlopen` error. `"cuda"` asked for and unavailable is a {@linkcode CudaUnavailableError};
 * `"auto"` takes CUDA when it is available and says once on stderr which device runs and why.
 *
 * Precision: onnxruntime's CUDA provider enables TF32 for float32 matrix products and
 * convolutions by default, and the node binding cannot pass its `use_tf32` option. Full fp32 (the
 * default here) is therefore obtained with `NVIDIA_TF32_OVERRIDE=0`, which cuBLAS and cuDNN honour
 * over any programmatic setting; it is set in the process before the first CUDA session (grant
 * `--allow-env=NVIDIA_TF32_OVERRIDE`) and holds for the whole process.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { cudaStatus } from "@diffprobe/core";
 *
 * const status = await cudaStatus();
 * // Either everything is there, or each missing piece is named.
 * assert.equal(status.available, status.problems.length === 0);
 * ```
 *
 * @module
 */
import { notice } from "../base/notice.ts";
import type { Device, ResolvedDevice } from "../base/device.ts";
import {
  CUDA_PROVIDER_PACKAGE,
  fileSha256,
  onnxRuntimeFolder,
  PROVIDER_MANIFEST,
} from "./cuda_provider.ts";

/** What {@linkcode cudaStatus} found. */
export interface CudaStatus {
  /** Whether every piece the CUDA provider needs is there. */
  available: boolean;
  /** One entry per missing or mismatched piece, each naming it (empty when available). */
  problems: string[];
  /** The first GPU's name, when the driver answers. */
  gpu?: string;
  /** The CUDA version the driver supports (`"13.0"`), when it answers. */
  driverCuda?: string;
  /** The CUDA runtime found (`libcudart.so.13`'s version), when found. */
  runtimeCuda?: string;
  /** cuDNN's version (`"9.10.2"`) and the CUDA it was built for, when found. */
  cudnn?: string;
  /** The folder onnxruntime loads providers from. */
  folder?: string;
  /** Where `dlopen` looks for the CUDA libraries, in order. */
  searchPath: string[];
}

/** Thrown when CUDA is asked for and cannot run; the message names every missing piece. */
export class CudaUnavailableError extends Error {
  /** The findings behind the message. */
  readonly status?: CudaStatus;

  /**
   * Builds `"CUDA not available: <problem>; <problem>…"`.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { CudaUnavailableError } from "@diffprobe/core";
   *
   * const e = new CudaUnavailableError(["libcudnn.so.9 not found"]);
   * assert.equal(e.message, "CUDA not available: libcudnn.so.9 not found");
   * ```
   */
  constructor(problems: readonly string[], status?: CudaStatus, options?: ErrorOptions) {
    super(`CUDA not available: ${problems.join("; ")}`, options);
    this.name = "CudaUnavailableError";
    this.status = status;
  }
}

/** The libraries the pinned CUDA provider loads, in the order it needs them. */
const CUDA_LIBRARIES = [
  "libcudart.so.13",
  "libcublasLt.so.13",
  "libcublas.so.13",
  "libcurand.so.10",
  "libcudnn.so.9",
] as const;

const CU_ERRORS: Record<number, string> = {
  3: "CUDA_ERROR_NOT_INITIALIZED",
  34: "CUDA_ERROR_STUB_LIBRARY",
  35: "CUDA_ERROR_INSUFFICIENT_DRIVER",
  46: "CUDA_ERROR_DEVICES_UNAVAILABLE",
  100: "CUDA_ERROR_NO_DEVICE",
  101: "CUDA_ERROR_INVALID_DEVICE",
  304: "CUDA_ERROR_OPERATING_SYSTEM",
  999: "CUDA_ERROR_UNKNOWN",
};

const granted = (descriptor: Deno.PermissionDescriptor): boolean =>
  Deno.permissions.querySync(descriptor).state === "granted";

const version = (v: number, minorScale = 10): string =>
  `${Math.floor(v / 1000)}.${Math.floor((v % 1000) / minorScale)}`;

/** The places a bare-name `dlopen` searches on Linux, in order. */
function librarySearchPath(): string[] {
  const ld = granted({ name: "env", variable: "LD_LIBRARY_PATH" })
    ? Deno.env.get("LD_LIBRARY_PATH")
    : "(not readable: grant --allow-env=LD_LIBRARY_PATH)";
  return [
    `LD_LIBRARY_PATH=${ld === undefined || ld === "" ? "(unset)" : ld}`,
    "/etc/ld.so.cache",
    "/lib/x86_64-linux-gnu",
    "/usr/lib/x86_64-linux-gnu",
    "/lib64",
    "/usr/lib64",
  ];
}

/** The first line of a dlopen error, without Deno's repeated prefix. */
const dlError = (e: unknown): string =>
  String((e as Error).message ?? e).replace(/^(Could not open library: )+/, "").split("\n")[0];

function probeDriver(status: CudaStatus): void {
  const nodes = ["/dev/nvidiactl", "/dev/nvidia0"];
  const missingNodes = nodes.filter((n) =>
    granted({ name: "read", path: n }) && !(() => {
      try {
        Deno.statSync(n);
        return true;
      } catch {
        return false;
      }
    })()
  );
  let lib;
  try {
    lib = Deno.dlopen("libcuda.so.1", {
      cuDriverGetVersion: { parameters: ["buffer"], result: "i32" },
      cuInit: { parameters: ["u32"], result: "i32" },
      cuDeviceGetCount: { parameters: ["buffer"], result: "i32" },
      cuDeviceGet: { parameters: ["buffer", "i32"], result: "i32" },
      cuDeviceGetName: { parameters: ["buffer", "i32", "i32"], result: "i32" },
    });
  } catch (e) {
    const nodeNote = missingNodes.length > 0 ? `no ${missingNodes.join(", ")}; ` : "";
    status.problems.push(`no NVIDIA GPU or driver (${nodeNote}${dlError(e)})`);
    return;
  }
  try {
    const out = new Int32Array(1);
    if (lib.symbols.cuDriverGetVersion(out) === 0) status.driverCuda = version(out[0]);
    const init = lib.symbols.cuInit(0);
    if (init !== 0) {
      status.problems.push(
        `the NVIDIA driver finds no usable GPU (cuInit: ${CU_ERRORS[init] ?? `error ${init}`}` +
          (missingNodes.length > 0 ? `; no ${missingNodes.join(", ")}` : "") + ")",
      );
      return;
    }
    lib.symbols.cuDeviceGetCount(out);
    if (out[0] < 1) {
      status.problems.push("the NVIDIA driver reports no GPU (cuDeviceGetCount: 0)");
      return;
    }
    const name = new Uint8Array(256);
    const device = new Int32Array(1);
    if (
      lib.symbols.cuDeviceGet(device, 0) === 0 &&
      lib.symbols.cuDeviceGetName(name, name.length, device[0]) === 0
    ) {
      status.gpu = new TextDecoder().decode(name.subarray(0, name.indexOf(0)));
    }
    if (status.driverCuda !== undefined && Number(status.driverCuda.split(".")[0]) < 13) {
      status.problems.push(
        `version mismatch: the NVIDIA driver supports CUDA ${status.driverCuda}, the provider ` +
          "needs CUDA 13 (driver 580 or newer)",
      );
    }
  } finally {
    lib.close();
  }
}

async function probeProvider(status: CudaStatus, verify: boolean): Promise<void> {
  const pins = CUDA_PROVIDER_PACKAGE;
  let located;
  try {
    located = await onnxRuntimeFolder();
  } catch (e) {
    status.problems.push((e as Error).message);
    return;
  }
  status.folder = located.folder;
  if (located.version !== pins.onnxruntime) {
    status.problems.push(
      `version mismatch: onnxruntime-node is ${located.version}, the pinned CUDA provider is ` +
        `built from onnxruntime ${pins.onnxruntime}`,
    );
  }
  const missing: string[] = [];
  const wrong: string[] = [];
  for (const [name, pin] of Object.entries(pins.files)) {
    const path = `${located.folder}/${name}`;
    const size = await Deno.stat(path).then((s) => s.size, () => undefined);
    if (size === undefined) missing.push(name);
    else if (size !== pin.bytes || (verify && await fileSha256(path) !== pin.sha256)) {
      wrong.push(name);
    }
  }
  const setup = "run `deno task cuda:setup` or call installCudaProvider()";
  if (missing.length > 0) {
    status.problems.push(
      `CUDA provider files not installed in ${located.folder}: ${missing.join(", ")} (${setup})`,
    );
  }
  if (wrong.length > 0) {
    status.problems.push(
      `${wrong.join(", ")} in ${located.folder} ${wrong.length > 1 ? "are" : "is"} not the ` +
        `pinned build of ${pins.name}@${pins.version} (${setup} to replace)`,
    );
  } else if (missing.length === 0) {
    const manifest = await Deno.readTextFile(`${located.folder}/${PROVIDER_MANIFEST}`)
      .then(JSON.parse, () => undefined);
    if (manifest && manifest.onnxruntime !== located.version) {
      status.problems.push(
        `version mismatch: the provider files were installed for onnxruntime ` +
          `${manifest.onnxruntime}, onnxruntime-node is ${located.version} (${setup})`,
      );
    }
  }
}

function probeLibraries(status: CudaStatus): void {
  const missing: string[] = [];
  for (const name of CUDA_LIBRARIES) {
    try {
      if (name === "libcudart.so.13") {
        const lib = Deno.dlopen(name, {
          cudaRuntimeGetVersion: { parameters: ["buffer"], result: "i32" },
        });
        const out = new Int32Array(1);
        if (lib.symbols.cudaRuntimeGetVersion(out) === 0) status.runtimeCuda = version(out[0]);
        lib.close();
      } else if (name === "libcudnn.so.9") {
        const lib = Deno.dlopen(name, {
          cudnnGetVersion: { parameters: [], result: "usize" },
          cudnnGetCudartVersion: { parameters: [], result: "usize" },
        });
        const v = Number(lib.symbols.cudnnGetVersion());
        const cudart = Number(lib.symbols.cudnnGetCudartVersion());
        lib.close();
        const major = Math.floor(v / 10000);
        status.cudnn = `${major}.${Math.floor((v % 10000) / 100)}.${v % 100} ` +
          `for CUDA ${version(cudart)}`;
        if (major !== 9 || Math.floor(cudart / 1000) !== 13) {
          status.problems.push(
            `version mismatch: libcudnn.so.9 is cuDNN ${status.cudnn}, the provider needs ` +
              "cuDNN 9 for CUDA 13",
          );
        }
      } else {
        Deno.dlopen(name, {}).close();
      }
    } catch (e) {
      const reason = dlError(e);
      missing.push(reason.startsWith(name) ? name : `${name} (${reason})`);
    }
  }
  if (missing.length > 0) {
    status.problems.push(
      `CUDA libraries not found: ${missing.join(", ")} (searched ${
        status.searchPath.join(", ")
      }; install the CUDA 13 runtime, cuBLAS and cuDNN 9 for CUDA 13 and put their lib folders ` +
        "on LD_LIBRARY_PATH before starting deno)",
    );
  }
}

let cached: Promise<CudaStatus> | undefined;

/**
 * Checks every piece onnxruntime's CUDA provider needs here: Linux x86-64; an NVIDIA GPU and a
 * driver for CUDA 13 (`libcuda.so.1`, `cuInit`); the pinned provider files beside
 * `libonnxruntime.so.1` for this onnxruntime-node version (`verify` also checks their SHA-256);
 * `libcudart.so.13`, `libcublasLt.so.13`, `libcublas.so.13`, `libcurand.so.10` and
 * `libcudnn.so.9` (cuDNN 9 built for CUDA 13) on the library search path. Needs `--allow-ffi`
 * and read access to onnxruntime-node; the result is cached per process unless `refresh`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { cudaStatus } from "@diffprobe/core";
 *
 * const status = await cudaStatus();
 * assert.ok(status.searchPath[0].startsWith("LD_LIBRARY_PATH="));
 * if (!status.available) assert.ok(status.problems.length > 0);
 * ```
 */
export function cudaStatus(
  options: { verify?: boolean; refresh?: boolean } = {},
): Promise<CudaStatus> {
  if (cached && !options.refresh && !options.verify) return cached;
  const run = (async () => {
    const status: CudaStatus = {
      available: false,
      problems: [],
      searchPath: librarySearchPath(),
    };
    if (Deno.build.os !== "linux" || Deno.build.arch !== "x86_64") {
      status.problems.push(
        `the CUDA provider is built for Linux x86-64, this is ${Deno.build.os} ${Deno.build.arch}`,
      );
      return status;
    }
    if (!granted({ name: "ffi" })) {
      status.problems.push(
        "the CUDA checks load libcuda.so.1 and the CUDA libraries by name and need --allow-ffi " +
          "without a path (this run allows less)",
      );
      return status;
    }
    probeDriver(status);
    await probeProvider(status, options.verify ?? false);
    probeLibraries(status);
    status.available = status.problems.length === 0;
    return status;
  })();
  if (!options.verify) cached = run;
  return run;
}

/** A decided device and the reason, for results and for the one stderr line of `"auto"`. */
export interface DeviceChoice {
  /** The device that will run. */
  device: ResolvedDevice;
  /** Why (the GPU and CUDA versions, or what CUDA is missing). */
  reason: string;
  /** Whether `"auto"` was asked for (a CUDA session that fails then falls back, and says so). */
  auto: boolean;
}

/** Writes `line` to stderr once per process (a {@linkcode notice} keyed by its text). */
export function sayOnce(line: string): void {
  notice(line, line);
}

/** Whether full fp32 can be requested: `NVIDIA_TF32_OVERRIDE` must be writable. */
function tf32Problem(tf32: boolean): string | undefined {
  if (tf32 || granted({ name: "env", variable: "NVIDIA_TF32_OVERRIDE" })) return undefined;
  return "fp32 on CUDA sets NVIDIA_TF32_OVERRIDE=0 (onnxruntime's CUDA provider uses TF32 " +
    "otherwise): grant --allow-env=NVIDIA_TF32_OVERRIDE, or pass tf32: true";
}

/**
 * Decides where sessions run: `"cpu"` as asked; `"cuda"` when {@linkcode cudaStatus} finds
 * everything, else a {@linkcode CudaUnavailableError} naming what is missing; `"auto"` CUDA when
 * available, else the CPU — saying once on stderr which and why.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { chooseDevice, cudaStatus } from "./device.ts";
 *
 * assert.equal((await chooseDevice("cpu")).device, "cpu");
 * if (!(await cudaStatus()).available) {
 *   await assert.rejects(chooseDevice("cuda"), { name: "CudaUnavailableError" });
 *   assert.equal((await chooseDevice("auto")).device, "cpu");
 * }
 * ```
 */
export async function chooseDevice(
  device: Device,
  options: { tf32?: boolean } = {},
): Promise<DeviceChoice> {
  if (device === "cpu") return { device: "cpu", reason: "asked for", auto: false };
  const status = await cudaStatus();
  const tf32 = tf32Problem(options.tf32 ?? false);
  const problems = [...status.problems, ...(status.available && tf32 ? [tf32] : [])];
  if (problems.length === 0) {
    const reason = `${status.gpu ?? "NVIDIA GPU"}, driver for CUDA ${status.driverCuda}, ` +
      `runtime ${status.runtimeCuda}, cuDNN ${status.cudnn}`;
    if (device === "auto") sayOnce(`diffprobe: device "auto" → CUDA (${reason})`);
    return { device: "cuda", reason, auto: device === "auto" };
  }
  if (device === "cuda") throw new CudaUnavailableError(problems, status);
  const reason = `CUDA not available: ${problems.join("; ")}`;
  // One short line: the first missing piece without its details (device "cuda" gives them all).
  const first = problems[0].split(" (")[0];
  sayOnce(
    `diffprobe: device "auto" → CPU (CUDA not available: ${first}${
      problems.length > 1 ? ` and ${problems.length - 1} more` : ""
    }; device "cuda" says exactly what is missing)`,
  );
  return { device: "cpu", reason, auto: true };
}

let processTf32: boolean | undefined;

/**
 * Fixes this process's TF32 setting before its first CUDA session (see the module notes):
 * `false` sets `NVIDIA_TF32_OVERRIDE=0`. A second, different setting is an error, since cuBLAS
 * and cuDNN read it once.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { fixTf32 } from "./device.ts";
 *
 * assert.throws(() => fixTf32(true, () => "0"), /NVIDIA_TF32_OVERRIDE=0/);
 * ```
 */
export function fixTf32(
  tf32: boolean,
  read: () => string | undefined = () =>
    granted({ name: "env", variable: "NVIDIA_TF32_OVERRIDE" })
      ? Deno.env.get("NVIDIA_TF32_OVERRIDE")
      : undefined,
): void {
  if (processTf32 === tf32) return;
  if (processTf32 !== undefined) {
    throw new Error(
      `TF32 is already ${processTf32 ? "allowed" : "off"} for this process's CUDA sessions ` +
        "(cuBLAS and cuDNN read NVIDIA_TF32_OVERRIDE once): use one tf32 setting per process",
    );
  }
  const problem = tf32Problem(tf32);
  if (problem) throw new Error(problem);
  if (tf32 && read() === "0") {
    throw new Error("tf32: true asked for, but NVIDIA_TF32_OVERRIDE=0 is set, which forces fp32");
  }
  if (!tf32) Deno.env.set("NVIDIA_TF32_OVERRIDE", "0");
  processTf32 = tf32;
}

/**
 * Creates a session on the chosen device through `create` (given the onnxruntime execution
 * providers to use). On CUDA it first fixes the process's TF32 setting ({@linkcode fixTf32}); a
 * CUDA session that fails to start is a {@linkcode CudaUnavailableError} carrying onnxruntime's
 * message, or, for `"auto"`, a CPU session and one line on stderr saying so.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { createDeviceSession } from "./device.ts";
 *
 * const asked: string[][] = [];
 * const create = (providers: string[]) => {
 *   asked.push(providers);
 *   return Promise.resolve("session");
 * };
 * const made = await createDeviceSession(create, { device: "cpu", reason: "asked for", auto: false }, false);
 * assert.deepEqual([made.device, asked], ["cpu", [["cpu"]]]);
 * ```
 */
export async function createDeviceSession<S>(
  create: (providers: string[]) => Promise<S>,
  choice: DeviceChoice,
  tf32: boolean,
): Promise<{ session: S; device: ResolvedDevice; reason: string }> {
  if (choice.device === "cpu") {
    return { session: await create(["cpu"]), device: "cpu", reason: choice.reason };
  }
  fixTf32(tf32); // outside the try: a permission or consistency error is not a CUDA failure
  try {
    return { session: await create(["cuda"]), device: "cuda", reason: choice.reason };
  } catch (e) {
    const message = `the CUDA provider failed to start: ${dlError(e)}`;
    if (!choice.auto) throw new CudaUnavailableError([message], undefined, { cause: e });
    sayOnce(`diffprobe: device "auto" → CPU (${message})`);
    return { session: await create(["cpu"]), device: "cpu", reason: message };
  }
}
